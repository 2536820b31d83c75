package connlimit

import (
	"io"
	"net"
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
	l := New(raw, 3, func(ip string) {
		if ip != "127.0.0.1" {
			t.Errorf("refused ip %q", ip)
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
	l := New(raw, 0, nil)
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
