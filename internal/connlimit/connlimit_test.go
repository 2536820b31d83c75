package connlimit

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPerIPLimit(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	l := New(raw, 3, 0, func(ip, key string) {
		if ip != "127.0.0.1" || key != "127.0.0.1" {
			t.Errorf("refused ip %q key %q", ip, key)
		}
		refused.Add(1)
	})
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var clients, servers []net.Conn
	for range 3 {
		clients = append(clients, dial())
		servers = append(servers, <-accepted)
	}
	// The fourth is closed by the server without being handed to Accept's caller.
	extra := dial()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on the connection over the limit = %v, want EOF", err)
	}
	if refused.Load() != 1 || l.Open("127.0.0.1") != 3 {
		t.Fatalf("refused %d, open %d; want 1 and 3", refused.Load(), l.Open("127.0.0.1"))
	}
	// Closing one (server side) frees a slot.
	select {
	case c := <-accepted:
		t.Fatalf("a connection over the limit was accepted: %v", c.RemoteAddr())
	default:
	}
	clients[0].Close()
	servers[0].Close()
	servers[0].Close() // closing twice releases once
	if n := l.Open("127.0.0.1"); n != 2 {
		t.Fatalf("open after one close = %d, want 2", n)
	}
	next := dial()
	defer next.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("a freed slot was not reused")
	}
}

func TestNoLimit(t *testing.T) {
	raw, _ := net.Listen("tcp", "127.0.0.1:0")
	l := New(raw, 0, 0, nil)
	defer l.Close()
	go func() {
		for range 5 {
			c, _ := net.Dial("tcp", raw.Addr().String())
			defer c.Close()
		}
	}()
	for range 5 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// fakeListener hands out connections from whatever remote addresses the
// test chooses.
type fakeListener struct {
	conns chan net.Conn
}

func (f *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-f.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}
func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv6loopback, Port: 443} }

// fakeConn is a connection from remote; it records whether it was closed.
type fakeConn struct {
	net.Conn // nil: only the methods below are used
	remote   net.Addr
	mu       sync.Mutex
	closed   bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// TestIPv6NetworkSharesBound, from the attacker's side: a client holding an
// IPv6 /64 opens connections from many of its addresses. They all count
// against one bound; another /64 keeps its own.
func TestIPv6NetworkSharesBound(t *testing.T) {
	tests := []struct {
		name      string
		prefix    int
		perAddr   int
		addrs     func(i int) string
		wantOpen  int
		other     string // an address that must still be admitted
		openCheck string // an address whose count is wantOpen
	}{
		{"/64 default", 0, 4, func(i int) string { return fmt.Sprintf("2001:db8:1:2:%x:%x::%x", i, i*3, i) }, 4,
			"2001:db8:1:3::1", "2001:db8:1:2::abcd"},
		{"/48 flag", 48, 4, func(i int) string { return fmt.Sprintf("2001:db8:1:%x::%x", i, i) }, 4,
			"2001:db8:2::1", "2001:db8:1:ffff::1"},
		{"IPv4-mapped counts as IPv4", 64, 4, func(i int) string {
			if i%2 == 0 {
				return "::ffff:192.0.2.7"
			}
			return "192.0.2.7"
		}, 4, "192.0.2.8", "192.0.2.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := &fakeListener{conns: make(chan net.Conn)}
			defer close(fl.conns)
			// Each connection handed to the listener ends as one result:
			// the admitted connection, or nil (sent by onRefuse).
			results := make(chan net.Conn)
			var refusedKeys []string
			l := New(fl, tt.perAddr, tt.prefix, func(ip, key string) {
				refusedKeys = append(refusedKeys, key)
				results <- nil
			})
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					results <- c
				}
			}()
			var admitted []net.Conn
			var fakes []*fakeConn
			accept := func(addr string) (net.Conn, *fakeConn) {
				fc := &fakeConn{remote: &net.TCPAddr{IP: net.ParseIP(addr), Port: 40000}}
				fl.conns <- fc
				return <-results, fc
			}
			for i := range 100 {
				c, fc := accept(tt.addrs(i))
				fakes = append(fakes, fc)
				if c != nil {
					admitted = append(admitted, c)
				}
			}
			if len(admitted) != tt.perAddr {
				t.Fatalf("100 connections from one network: %d admitted, want %d (one bound)", len(admitted), tt.perAddr)
			}
			if n := l.Open(tt.openCheck); n != tt.wantOpen {
				t.Errorf("Open(%s) = %d, want %d", tt.openCheck, n, tt.wantOpen)
			}
			if len(refusedKeys) != 100-tt.perAddr {
				t.Errorf("onRefuse called %d times, want %d", len(refusedKeys), 100-tt.perAddr)
			}
			if c, _ := accept(tt.other); c == nil {
				t.Errorf("a connection from %s (another network) was refused", tt.other)
			}
			// Accept closes a refused connection after reporting it, before
			// it takes the next: all are closed by now.
			for _, fc := range fakes[tt.perAddr:] {
				if !fc.isClosed() {
					t.Fatal("a refused connection was not closed")
				}
			}
			// Closing one frees a place for any address of the network.
			admitted[0].Close()
			if c, _ := accept(tt.addrs(1000)); c == nil {
				t.Error("after one close, a new connection from the network was refused")
			}
		})
	}
}
