package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/events"
)

// TestLimitsThroughGateway: every limit of the manifest is enforced on the
// public path with a problem+json answer and an event naming the function,
// and the server and other functions live on after each.
func TestLimitsThroughGateway(t *testing.T) {
	in := start(t, t.TempDir())
	in.mustCLI("deploy", "-f", fixture(t, "attack", nil))
	in.mustCLI("deploy", "-f", fixture(t, "ping", nil))

	healthy := func(t *testing.T) {
		t.Helper()
		if resp := in.public("GET", "/ping", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("ping after attack: %d", resp.StatusCode)
		}
		if body := readBody(t, in.public("GET", "/attack?t=ok", nil, nil)); body != "ok" {
			t.Fatalf("attack?t=ok after attack = %q", body)
		}
	}
	cases := []struct {
		name, query string
		body        string
		status      int
		event       string
		maxTime     time.Duration
	}{
		{"infinite loop", "t=loop", "", http.StatusGatewayTimeout, events.TypeLimitTimeout, 10 * time.Second},
		{"allocate past the ceiling", "t=alloc", "", http.StatusBadGateway, events.TypeLimitMemory, 10 * time.Second},
		{"100 MB response", "t=big", "", http.StatusBadGateway, events.TypeLimitResponse, 10 * time.Second},
		{"panic", "t=panic", "", http.StatusBadGateway, events.TypeFunctionTrap, 10 * time.Second},
		{"oversized body", "t=ok", strings.Repeat("x", 2048), http.StatusRequestEntityTooLarge, events.TypeLimitRequestBody, 5 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			method := "GET"
			if c.body != "" {
				body, method = strings.NewReader(c.body), "POST"
			}
			t0 := time.Now()
			p := wantProblem(t, in.public(method, "/attack?"+c.query, body, nil), c.status)
			d := time.Since(t0)
			if d > c.maxTime {
				t.Fatalf("took %s, want under %s", d, c.maxTime)
			}
			if c.event == events.TypeLimitTimeout && d < 3*time.Second {
				t.Fatalf("stopped after %s, before the 3s deadline", d)
			}
			e := in.waitEvent(c.event, func(e events.Event) bool { return e.RequestID == p.RequestID })
			if e.Function != "attack" || e.Namespace != "default" || e.Version != 1 || e.SourceIP != "127.0.0.1" {
				t.Fatalf("event %+v: want function default/attack v1 from 127.0.0.1", e)
			}
			healthy(t)
		})
	}

	t.Run("concurrency", func(t *testing.T) {
		// Two slow calls fill the limit of 2; a third is refused at once.
		slow := fixture(t, "attack", func(m string) string {
			m = strings.Replace(m, "name: attack", "name: slow", 1)
			m = strings.Replace(m, "timeout: 3s", "timeout: 20s", 1)
			return strings.Replace(m, `route: "/attack"`, `route: "/slow"`, 1)
		})
		in.mustCLI("deploy", "-f", slow)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				readBody(t, in.public("GET", "/slow?t=sleep&ms=3000", nil, nil))
			}()
		}
		deadline := time.Now().Add(15 * time.Second)
		for in.srv.SandboxStats().BusyInstances < 2 {
			if time.Now().After(deadline) {
				t.Fatal("the two slow invocations never ran at once")
			}
			time.Sleep(5 * time.Millisecond)
		}
		resp := in.public("GET", "/slow?t=ok", nil, nil)
		if resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d without Retry-After, want 429 with it", resp.StatusCode)
		}
		p := wantProblem(t, resp, http.StatusTooManyRequests)
		wg.Wait()
		in.waitEvent(events.TypeLimitConcurrency, func(e events.Event) bool { return e.RequestID == p.RequestID && e.Function == "slow" })
	})

	t.Run("deny by default inside", func(t *testing.T) {
		body := readBody(t, in.public("GET", "/attack?t=passwd", nil, nil))
		if strings.Contains(body, "root:") || !strings.Contains(body, "passwd: error") {
			t.Fatalf("guest read /etc/passwd: %q", body)
		}
		t.Setenv("WARDEN_HOST_SECRET_MARKER", "leak")
		body = readBody(t, in.public("GET", "/attack?t=env", nil, nil))
		if strings.Contains(body, "WARDEN_HOST_SECRET_MARKER") || strings.Contains(body, "PATH=") || !strings.Contains(body, "VISIBLE=yes") {
			t.Fatalf("guest environment: %q", body)
		}
	})
}

// TestGracefulShutdown: an invocation in flight when shutdown starts
// completes, and its answer reaches the client.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLI("deploy", "-f", fixture(t, "attack", func(m string) string { return strings.Replace(m, "timeout: 3s", "timeout: 5s", 1) }))
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "https://"+in.srv.PublicAddr()+"/attack?t=sleep&ms=700", nil)
		resp, err := in.client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	// Wait until the invocation is running.
	deadline := time.Now().Add(10 * time.Second)
	for in.srv.SandboxStats().BusyInstances == 0 {
		if time.Now().After(deadline) {
			t.Fatal("invocation never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "slept" {
		t.Fatalf("in-flight request: %+v, want 200 slept", r)
	}
}
