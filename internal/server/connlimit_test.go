package server_test

import (
	"io"
	"net"
	"testing"
	"time"

	"warden/internal/config"
	"warden/internal/events"
)

// TestConnectionsPerIP: connections over the per-address bound are closed
// at once, the ones within it keep working, and the refusal is an event.
func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	in := startWith(t, t.TempDir(), func(c *config.Config) { c.MaxConnsPerIP = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", in.srv.PublicAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The two held connections are accepted; a third is closed unread.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", in.srv.PublicAddr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err == io.EOF {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third connection was not refused (read: %v)", err)
		}
	}
	for _, c := range held {
		c.Close()
	}
	// With the slots free again, HTTPS works (the client may need a retry
	// while the server notices the closed connections).
	ok := false
	for time.Now().Before(deadline) && !ok {
		resp, err := in.client.Get("https://" + in.srv.PublicAddr() + "/nothing")
		if err == nil {
			readBody(t, resp)
			ok = resp.StatusCode == 404
		}
	}
	if !ok {
		t.Fatal("the listener did not serve again after the held connections closed")
	}
	if len(in.eventsOf(events.TypeLimitConnections)) != 1 {
		t.Fatalf("want one limit.connections event")
	}
}
