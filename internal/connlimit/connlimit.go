// Package connlimit owns connection-level protection on warden's listeners:
// a bound on concurrent connections per client address, so one client (a
// slowloris, a connection flood) cannot take every connection the server
// can hold. A client address is one IPv4 address or one IPv6 network
// (a /64 by default), as ratelimit.AddrKey defines it.
//
// connlimit never reads from a connection and never delays Accept for
// other clients: a connection over the limit is closed at once.
package connlimit

import (
	"net"
	"sync"

	"warden/internal/ratelimit"
)

// Listener limits concurrent connections per client address. Safe for
// concurrent use.
//
// # Notes
//
//   - Connections are counted under ratelimit.AddrKey(ip, v6Prefix): every
//     address of one IPv6 /64 (by default) shares one count, so a client
//     cannot multiply its bound by rotating through its network.
//   - The counts hold one entry per address key with an open connection,
//     and so are bounded by the connections open.
type Listener struct {
	net.Listener
	perAddr  int
	v6Prefix int
	onRefuse func(ip, key string)

	mu    sync.Mutex
	count map[string]int
}

// New wraps ln. perAddr <= 0 means no limit. v6Prefix is the IPv6 prefix
// length an address is counted by (outside 1..128:
// ratelimit.DefaultIPv6Prefix). onRefuse (may be nil) is called for each
// refused connection with its IP and the address key it was counted under,
// outside any lock; it must be cheap.
func New(ln net.Listener, perAddr, v6Prefix int, onRefuse func(ip, key string)) *Listener {
	return &Listener{Listener: ln, perAddr: perAddr, v6Prefix: v6Prefix, onRefuse: onRefuse, count: map[string]int{}}
}

// Accept returns the next connection within its address's limit.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.perAddr <= 0 {
			return c, err
		}
		ip := hostOf(c.RemoteAddr())
		key := ratelimit.AddrKey(ip, l.v6Prefix)
		l.mu.Lock()
		n := l.count[key]
		ok := n < l.perAddr
		if ok {
			l.count[key] = n + 1
		}
		l.mu.Unlock()
		if ok {
			return &conn{Conn: c, l: l, key: key}, nil
		}
		// Report before closing, so that whoever sees the connection end
		// also sees it counted.
		if l.onRefuse != nil {
			l.onRefuse(ip, key)
		}
		c.Close()
	}
}

// Open returns the number of open connections counted against ip's address
// key: for an IPv6 address, those of its whole network.
func (l *Listener) Open(ip string) int {
	key := ratelimit.AddrKey(ip, l.v6Prefix)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[key]
}

func (l *Listener) release(key string) {
	l.mu.Lock()
	if n := l.count[key] - 1; n > 0 {
		l.count[key] = n
	} else {
		delete(l.count, key)
	}
	l.mu.Unlock()
}

type conn struct {
	net.Conn
	l    *Listener
	key  string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
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
