// Package connlimit owns connection-level protection on warden's listeners:
// a bound on concurrent connections per client IP, so one client (a
// slowloris, a connection flood) cannot take every connection the server
// can hold.
//
// connlimit never reads from a connection and never delays Accept for
// other clients: a connection over the limit is closed at once.
package connlimit

import (
	"net"
	"sync"
)

// Listener limits concurrent connections per remote IP. Safe for
// concurrent use.
type Listener struct {
	net.Listener
	perIP    int
	onRefuse func(ip string)

	mu    sync.Mutex
	count map[string]int
}

// New wraps ln. perIP <= 0 means no limit. onRefuse (may be nil) is called
// for each refused connection, outside any lock; it must be cheap.
func New(ln net.Listener, perIP int, onRefuse func(ip string)) *Listener {
	return &Listener{Listener: ln, perIP: perIP, onRefuse: onRefuse, count: map[string]int{}}
}

// Accept returns the next connection within its IP's limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.perIP <= 0 {
			return c, err
		}
		ip := hostOf(c.RemoteAddr())
		l.mu.Lock()
		n := l.count[ip]
		ok := n < l.perIP
		if ok {
			l.count[ip] = n + 1
		}
		l.mu.Unlock()
		if ok {
			return &conn{Conn: c, l: l, ip: ip}, nil
		}
		// Report before closing, so that whoever sees the connection end
		// also sees it counted.
		if l.onRefuse != nil {
			l.onRefuse(ip)
		}
		c.Close()
	}
}

// Open returns the number of open connections from ip.
func (l *Listener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[ip]
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	if n := l.count[ip] - 1; n > 0 {
		l.count[ip] = n
	} else {
		delete(l.count, ip)
	}
	l.mu.Unlock()
}

type conn struct {
	net.Conn
	l    *Listener
	ip   string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
