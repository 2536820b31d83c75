package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"warden/internal/config"
	"warden/internal/events"
)

// TestShutdownKeepsEventsOfSlowCalls: in-flight calls that outlast the
// drain timeout are cut off, and every event about them is still stored:
// the flush has its own deadline after the drain, and handlers still
// running finish their events before the recorder closes.
func TestShutdownKeepsEventsOfSlowCalls(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	in := startWith(t, data, func(c *config.Config) { c.FlushTimeout = 20 * time.Second })
	in.mustCLI("deploy", "-f", fixture(t, "attack", nil))

	const calls = 2 // the attack manifest's concurrency
	var wg sync.WaitGroup
	ids := make(chan string, calls)
	for range calls {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "https://"+in.srv.PublicAddr()+"/attack?t=loop", nil)
			resp, err := in.client.Do(req)
			if err == nil {
				ids <- resp.Header.Get("X-Request-Id")
				resp.Body.Close()
			}
		})
	}
	// Wait until both invocations are running.
	deadline := time.Now().Add(20 * time.Second)
	for in.srv.SandboxStats().BusyInstances < calls {
		if time.Now().After(deadline) {
			t.Fatalf("invocations did not start: %+v", in.srv.SandboxStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	in.once.Do(func() {
		in.srv.Shutdown(ctx) // the drain times out: that is the point
		<-in.done
	})
	wg.Wait()
	close(ids)

	// Restart on the same data: every cut-off call left its event.
	again := start(t, data)
	got := again.eventsOf(events.TypeLimitTimeout)
	if len(got) < calls {
		t.Fatalf("after restart %d %s events, want %d (one per cut-off call)", len(got), events.TypeLimitTimeout, calls)
	}
	for id := range ids { // calls whose answer arrived name their request id
		found := false
		for _, e := range got {
			found = found || e.RequestID == id
		}
		if id != "" && !found {
			t.Errorf("no stored event for request %s", id)
		}
	}
	for _, e := range got {
		if e.Function != "attack" {
			t.Errorf("event %+v, want one about the attack function", e)
		}
	}
}
