package events

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// within runs f and fails the test if it takes longer than limit; it
// returns how long f took.
func within(t *testing.T, what string, limit time.Duration, f func()) time.Duration {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("%s did not return within %v", what, limit)
		return 0
	}
}

func droppedCount(t *testing.T, evs []Event) (records int, total uint64) {
	t.Helper()
	for _, e := range evs {
		if e.Type != TypeEventsDropped {
			continue
		}
		n, err := strconv.ParseUint(e.Labels["dropped.count"], 10, 64)
		if err != nil {
			t.Fatalf("events.dropped label dropped.count = %q: %v", e.Labels["dropped.count"], err)
		}
		records++
		total += n
	}
	return records, total
}

// A sink that never returns: TryEmit refuses within MaxWait once the queue
// is at its high-water mark, plain Emit drops after MaxWait once the whole
// buffer is full (and the loss is recorded later), and Health names the
// reason; once the sink recovers, everything accepted is stored.
func TestRecorderBoundedBehindBlockedSink(t *testing.T) {
	const maxWait = 30 * time.Millisecond
	clock := newFakeClock()
	sink := &fakeSink{gate: make(chan struct{}), first: make(chan struct{})}
	r := NewRecorder(sink, Options{Buffer: 4, HighWater: 2, BatchSize: 1, MaxWait: maxWait, Now: clock.Now, Logger: quietLogger()})

	if err := r.TryEmit(Event{Type: TypeRouteAuth, Version: 0}); err != nil {
		t.Fatalf("TryEmit on an empty recorder = %v, want nil", err)
	}
	<-sink.first // the writer holds event 0 inside the blocked sink
	for i := 1; i <= 2; i++ {
		if err := r.TryEmit(Event{Type: TypeRouteAuth, Version: i}); err != nil {
			t.Fatalf("TryEmit %d below the high-water mark = %v, want nil", i, err)
		}
	}
	if err := r.Health(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "high-water") {
		t.Errorf("Health with the queue at its high-water mark = %v, want ErrUnavailable naming the high-water mark", err)
	}
	var err error
	took := within(t, "TryEmit on a queue at its high-water mark", 10*time.Second, func() {
		err = r.TryEmit(Event{Type: TypeRouteAuth, Version: 99})
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("TryEmit on a queue at its high-water mark = %v, want ErrUnavailable", err)
	}
	if took < maxWait {
		t.Errorf("TryEmit refused after %v, want it to wait MaxWait %v for room first", took, maxWait)
	}

	// Plain Emit uses the room above the high-water mark without waiting...
	within(t, "Emit into the room above the high-water mark", 10*time.Second, func() {
		r.Emit(Event{Type: TypeFunctionDeploy, Version: 3})
		r.Emit(Event{Type: TypeFunctionDeploy, Version: 4})
	})
	// ...and gives up after MaxWait once the buffer is full.
	took = within(t, "Emit on a full buffer", 10*time.Second, func() {
		for i := 5; i < 8; i++ {
			r.Emit(Event{Type: TypeFunctionDeploy, Version: i})
		}
	})
	if took < 3*maxWait {
		t.Errorf("3 Emits on a full buffer returned after %v, want each to wait MaxWait %v", took, maxWait)
	}
	if st := r.Stats(); st.Emitted != 5 || st.Overflowed != 3 || st.Dropped != 3 || st.Refused != 1 || st.Stored != 0 {
		t.Errorf("Stats = %+v, want Emitted 5, Overflowed 3, Dropped 3, Refused 1, Stored 0", st)
	}

	// The sink has now stored nothing for StallAfter.
	clock.Advance(DefaultStallAfter)
	err = r.Health()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "stored nothing for 5s") {
		t.Errorf("Health with a stalled sink = %v, want ErrUnavailable saying the store stored nothing for 5s", err)
	}
	took = within(t, "TryEmit with a stalled sink", 10*time.Second, func() { err = r.TryEmit(Event{Type: TypeRouteAuth}) })
	if !errors.Is(err, ErrUnavailable) || took >= maxWait {
		t.Errorf("TryEmit with a stalled sink = %v after %v, want ErrUnavailable at once", err, took)
	}

	// Recovery.
	close(sink.gate)
	waitFor(t, "Health to recover", func() bool { return r.Health() == nil })
	if err := r.TryEmit(Event{Type: TypeRouteAuth, Version: 100}); err != nil {
		t.Errorf("TryEmit after recovery = %v, want nil", err)
	}
	if err := r.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush after overflow = %v, want nil (dropped events are not waited for)", err)
	}
	closeRecorder(t, r)
	got := sink.events()
	var versions []int
	for _, e := range got {
		if e.Type != TypeEventsDropped {
			versions = append(versions, e.Version)
		}
	}
	if want := []int{0, 1, 2, 3, 4, 100}; !equalInts(versions, want) {
		t.Errorf("stored versions %v, want %v", versions, want)
	}
	if records, total := droppedCount(t, got); records == 0 || total != 3 {
		t.Errorf("events.dropped records = %d counting %d, want at least one counting 3", records, total)
	}
	if st := r.Stats(); st.Stored != 6 || st.Emitted != 6 {
		t.Errorf("Stats = %+v, want Emitted 6, Stored 6 (records of drops not counted)", st)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A failing sink: Health is fine during the first StallAfter of failures,
// unhealthy after it (and TryEmit refuses), healthy again once a batch is
// stored.
func TestRecorderHealthFollowsSinkFailures(t *testing.T) {
	clock := newFakeClock()
	var logs bytes.Buffer
	var logMu sync.Mutex
	sink := &fakeSink{}
	sink.failing.Store(true)
	r := NewRecorder(sink, Options{Now: clock.Now, Logger: loggerTo(&logs, &logMu)})

	r.Emit(Event{Type: TypeAdminAuth, Reason: "marker-do-not-show", Version: 1})
	waitFor(t, "a sink error", func() bool { return r.Stats().SinkErrors > 0 })
	if err := r.Health(); err != nil {
		t.Errorf("Health after failures for 0s = %v, want nil (below StallAfter)", err)
	}
	clock.Advance(DefaultStallAfter - time.Millisecond)
	if err := r.Health(); err != nil {
		t.Errorf("Health after failures for just under StallAfter = %v, want nil", err)
	}
	clock.Advance(time.Millisecond)
	err := r.Health()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Health after failures for StallAfter = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "disk on fire") || strings.Contains(err.Error(), "marker-do-not-show") {
		t.Errorf("Health = %q, want neither the sink's error nor event contents", err)
	}
	if err := r.TryEmit(Event{Type: TypeRouteAuth}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("TryEmit with a failing sink = %v, want ErrUnavailable", err)
	}

	sink.failing.Store(false)
	waitFor(t, "Health to recover after the sink recovers", func() bool { return r.Health() == nil })
	if err := r.TryEmit(Event{Type: TypeRouteAuth, Version: 2}); err != nil {
		t.Errorf("TryEmit after recovery = %v, want nil", err)
	}
	closeRecorder(t, r)
	if got := sink.events(); len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 {
		t.Errorf("stored %+v, want the event emitted during the failure, then the one after", got)
	}
	if st := r.Stats(); st.Refused != 1 || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want Refused 1, Dropped 0", st)
	}
}

// loggerTo logs into buf, guarded by mu.
func loggerTo(buf *bytes.Buffer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: buf, mu: mu}, nil))
}

// Overflow is logged at most once per interval, with a count and no contents.
func TestOverflowLogIsRateLimited(t *testing.T) {
	clock := newFakeClock()
	var logs bytes.Buffer
	var logMu sync.Mutex
	sink := &fakeSink{gate: make(chan struct{}), first: make(chan struct{})}
	r := NewRecorder(sink, Options{Buffer: 1, BatchSize: 1, MaxWait: time.Millisecond, Now: clock.Now,
		Logger: loggerTo(&logs, &logMu)})
	r.Emit(Event{Type: TypeRouteAuth})
	<-sink.first
	r.Emit(Event{Type: TypeRouteAuth}) // fills the buffer
	for range 5 {
		r.Emit(Event{Type: TypeRouteAuth, Reason: "marker-do-not-log"})
	}
	clock.Advance(dropLogInterval)
	r.Emit(Event{Type: TypeRouteAuth})
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if n := strings.Count(out, "events dropped"); n != 2 {
		t.Errorf("log has %d overflow lines for 6 drops over one interval, want 2:\n%s", n, out)
	}
	if strings.Contains(out, "marker-do-not-log") {
		t.Errorf("log = %q, want no event contents", out)
	}
	close(sink.gate)
	closeRecorder(t, r)
	if records, total := droppedCount(t, sink.events()); records == 0 || total != 6 {
		t.Errorf("events.dropped records = %d counting %d, want at least one counting 6", records, total)
	}
}

func TestTryEmitAfterClose(t *testing.T) {
	r := NewRecorder(&fakeSink{}, Options{Logger: quietLogger()})
	closeRecorder(t, r)
	if err := r.TryEmit(Event{Type: TypeRouteAuth}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("TryEmit after Close = %v, want ErrUnavailable", err)
	}
	if err := r.Health(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Health after Close = %v, want ErrUnavailable", err)
	}
	if st := r.Stats(); st.Refused != 1 || st.Emitted != 0 {
		t.Errorf("Stats = %+v, want Refused 1, Emitted 0", st)
	}
}

// Many goroutines mixing Emit and TryEmit against a slow sink and a small
// buffer: every event is accounted for exactly once, and Flush and Close
// never wait for an event that was not enqueued.
func TestRecorderAccountingUnderPressure(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{Buffer: 8, HighWater: 4, BatchSize: 4, MaxWait: 50 * time.Microsecond, Logger: quietLogger()})
	const goroutines, each = 8, 300
	var wg sync.WaitGroup
	var refused sync.Map
	for g := range goroutines {
		wg.Go(func() {
			n := 0
			for i := range each {
				if i%2 == 0 {
					r.Emit(Event{Type: TypeRouteAuth})
				} else if r.TryEmit(Event{Type: TypeRouteAuth}) != nil {
					n++
				}
				if i%50 == 0 {
					if err := r.Flush(testCtx(t)); err != nil {
						t.Errorf("Flush = %v", err)
					}
				}
			}
			refused.Store(g, n)
		})
	}
	wg.Wait()
	closeRecorder(t, r)
	var nRefused uint64
	refused.Range(func(_, v any) bool { nRefused += uint64(v.(int)); return true })
	st := r.Stats()
	if st.Refused != nRefused {
		t.Errorf("Stats.Refused = %d, want %d (the TryEmit errors seen)", st.Refused, nRefused)
	}
	if st.Emitted+st.Overflowed+st.Refused != goroutines*each || st.Stored != st.Emitted {
		t.Errorf("Stats = %+v: want Emitted+Overflowed+Refused = %d and Stored = Emitted", st, goroutines*each)
	}
	got := sink.events()
	_, dropped := droppedCount(t, got)
	if dropped != st.Overflowed {
		t.Errorf("events.dropped records count %d, want Overflowed %d", dropped, st.Overflowed)
	}
}
