package server_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/pki"
)

// TestCanaryRollbackOnDenials is the canary acceptance: a canary version
// that triggers capability denials is rolled back within its window, and
// the stable version served every request of the clients outside the
// canary.
func TestCanaryRollbackOnDenials(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	in := start(t, data)
	in.mustCLI("deploy", "-f", capsFixture(t, "permissions:\n  kv: {orders: write}\n", "redact"))
	// The canary: the same code without the grant, so its KV calls are
	// denied.
	out := in.mustCLI("deploy", "-f", capsFixture(t, "", "redact"), "--canary", "50%", "--for", "1h")
	if !strings.Contains(out, "as a canary for 50% of clients") {
		t.Fatalf("canary deploy printed %q", out)
	}

	pool, err := pki.CertPool(filepath.Join(data, "tls", pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	// Twenty clients, each from its own loopback address, call once
	// before the watcher (every second) can act: the ones on the stable
	// version get the list, the ones on the canary a denial.
	type client struct {
		c      *http.Client
		canary bool
	}
	clients := make([]*client, 20)
	call := func(cl *client) string {
		resp, err := cl.c.Get("https://" + in.srv.PublicAddr() + "/sdk/kv/list?b=orders")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return resp.Header.Get("X-Err")
	}
	for i := range clients {
		src := net.IPv4(127, 2, 0, byte(1+i))
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		clients[i] = &client{c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	}
	onCanary := 0
	for _, cl := range clients {
		switch e := call(cl); e {
		case "denied":
			cl.canary = true
			onCanary++
		case "":
		default:
			t.Fatalf("unexpected guest error %q", e)
		}
	}
	if onCanary == 0 || onCanary == len(clients) {
		t.Fatalf("%d of %d clients on the canary: want a split", onCanary, len(clients))
	}
	// Rolled back within a few ticks of the watcher.
	ev := in.waitEvent(deploy.TypeDeployCanary, func(e events.Event) bool { return e.Labels["decision"] == "rollback" })
	if ev.Outcome != events.OutcomeDenied || !strings.Contains(ev.Reason, "security signals") || ev.Actor != "warden" {
		t.Fatalf("rollback event = %+v", ev)
	}
	// Every client, in the canary or not, now gets the stable version; the
	// ones outside it never saw anything else.
	for _, cl := range clients {
		for range 3 {
			if e := call(cl); e != "" {
				t.Fatalf("after the rollback a client (canary %v) got %q", cl.canary, e)
			}
		}
	}
	if out := in.mustCLI("canary", "status"); strings.Contains(out, "caps") {
		t.Fatalf("canary status after the rollback = %q", out)
	}
}
