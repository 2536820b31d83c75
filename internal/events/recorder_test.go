package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSink records batches. It can fail its first calls and block every call
// on a gate.
type fakeSink struct {
	mu      sync.Mutex
	batches [][]Event
	calls   int
	failN   int           // the first failN calls fail
	always  bool          // every call fails
	failing atomic.Bool   // calls fail while set
	gate    chan struct{} // when non-nil, each call waits for a receive from it
	entered chan struct{} // when non-nil, each call sends on it first
	first   chan struct{} // when non-nil, closed when the first call starts
	once    sync.Once
}

func (s *fakeSink) AppendEvents(ctx context.Context, evs []Event) error {
	if s.first != nil {
		s.once.Do(func() { close(s.first) })
	}
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.always || s.calls <= s.failN || s.failing.Load() {
		return errors.New("disk on fire")
	}
	s.batches = append(s.batches, append([]Event(nil), evs...))
	return nil
}

func (s *fakeSink) events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

func (s *fakeSink) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func closeRecorder(t *testing.T, r *Recorder) {
	t.Helper()
	if err := r.Close(testCtx(t)); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
}

func TestRecorderKeepsOrder(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{BatchSize: 7, Logger: quietLogger()})
	const n = 1000
	for i := range n {
		r.Emit(Event{Type: TypeAdminAuth, Outcome: OutcomeSuccess, Version: i})
	}
	if err := r.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	got := sink.events()
	if len(got) != n {
		t.Fatalf("sink has %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Version != i {
			t.Fatalf("event %d has Version %d, want %d (order lost)", i, e.Version, i)
		}
	}
	for _, size := range sink.batchSizes() {
		if size > 7 {
			t.Errorf("batch of %d events, want at most BatchSize 7", size)
		}
	}
	closeRecorder(t, r)
}

func TestRecorderBatchesBehindSlowSink(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{}), entered: make(chan struct{})}
	r := NewRecorder(sink, Options{FlushInterval: time.Millisecond, Logger: quietLogger()})
	r.Emit(Event{Type: TypeAdminAuth, Version: 0})
	<-sink.entered // the writer is inside the sink with a batch of one
	for i := 1; i <= 100; i++ {
		r.Emit(Event{Type: TypeAdminAuth, Version: i})
	}
	go func() {
		for {
			select {
			case sink.gate <- struct{}{}:
			case <-sink.entered:
			case <-r.done:
				return
			}
		}
	}()
	if err := r.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	// Everything emitted while the first call was blocked was queued, so the
	// writer takes all of it in the next batch.
	sizes := sink.batchSizes()
	if len(sizes) != 2 || sizes[1] < 2 {
		t.Fatalf("batch sizes = %v, want two batches, the second > 1", sizes)
	}
	if got := len(sink.events()); got != 101 {
		t.Errorf("stored %d events, want 101", got)
	}
	closeRecorder(t, r)
}

func TestFlushDoesNotWaitForInterval(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{FlushInterval: time.Hour, Logger: quietLogger()})
	ctx := testCtx(t)
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush on an idle recorder = %v, want nil", err)
	}
	for i := range 3 {
		r.Emit(Event{Type: TypeFunctionDeploy, Version: i})
	}
	start := time.Now()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if got := len(sink.events()); got != 3 {
		t.Fatalf("after Flush the sink has %d events, want 3", got)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Flush took %v, want well under the 1h FlushInterval", d)
	}
	if st := r.Stats(); st.Stored != 3 || st.Emitted != 3 {
		t.Errorf("Stats = %+v, want Emitted 3, Stored 3", st)
	}
	closeRecorder(t, r)
}

func TestFlushHonoursContext(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{})}
	r := NewRecorder(sink, Options{Logger: quietLogger()})
	r.Emit(Event{Type: TypeAdminAuth})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with a blocked sink = %v, want DeadlineExceeded", err)
	}
	close(sink.gate)
	closeRecorder(t, r)
	if got := len(sink.events()); got != 1 {
		t.Errorf("stored %d events, want 1", got)
	}
}

func TestFlushIntervalWritesWithoutFlush(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{FlushInterval: 5 * time.Millisecond, Logger: quietLogger()})
	r.Emit(Event{Type: TypeAdminAuth})
	waitFor(t, "the interval to store the event", func() bool { return len(sink.events()) == 1 })
	closeRecorder(t, r)
}

func TestCloseDrainsConcurrentEmitters(t *testing.T) {
	sink := &fakeSink{}
	// A small buffer makes emitters wait on backpressure; MaxWait is long
	// enough that none gives up.
	r := NewRecorder(sink, Options{Buffer: 16, BatchSize: 32, MaxWait: time.Minute, Logger: quietLogger()})
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r.Emit(Event{Type: TypeRouteAuth, Actor: fmt.Sprint(g), Version: i})
			}
		})
	}
	wg.Wait()
	closeRecorder(t, r)

	got := sink.events()
	if len(got) != goroutines*each {
		t.Fatalf("sink has %d events, want %d", len(got), goroutines*each)
	}
	next := map[string]int{}
	for _, e := range got {
		if e.Version != next[e.Actor] {
			t.Fatalf("goroutine %s: event %d stored where %d was expected", e.Actor, e.Version, next[e.Actor])
		}
		next[e.Actor]++
	}
	st := r.Stats()
	if st.Emitted != goroutines*each || st.Stored != goroutines*each || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want Emitted = Stored = %d, Dropped 0", st, goroutines*each)
	}
}

func TestCloseRacingEmitters(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{Buffer: 8, MaxWait: time.Minute, Logger: quietLogger()})
	const goroutines, each = 8, 300
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				r.Emit(Event{Type: TypeRouteAuth})
			}
		})
	}
	waitFor(t, "some events", func() bool { return r.Stats().Emitted > 0 })
	closeRecorder(t, r)
	wg.Wait()
	st := r.Stats()
	if st.Emitted+st.Dropped != goroutines*each {
		t.Errorf("Emitted %d + Dropped %d = %d, want %d", st.Emitted, st.Dropped, st.Emitted+st.Dropped, goroutines*each)
	}
	if st.Stored != st.Emitted || uint64(len(sink.events())) != st.Stored {
		t.Errorf("Stats = %+v, sink has %d: want every accepted event stored", st, len(sink.events()))
	}
}

func TestEmitWaitsForRoomUpToMaxWait(t *testing.T) {
	sink := &fakeSink{gate: make(chan struct{})}
	r := NewRecorder(sink, Options{Buffer: 1, BatchSize: 1, MaxWait: time.Hour, Logger: quietLogger()})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			r.Emit(Event{Type: TypeLimitConcurrency, Version: i})
		}
	}()
	// One event in the sink, one in the buffer, the third Emit blocked.
	waitFor(t, "three emits", func() bool { return r.Stats().Emitted == 3 })
	select {
	case <-done:
		t.Fatal("all Emits returned while the sink was blocked and the buffer full; want them to wait up to MaxWait")
	default:
	}
	close(sink.gate)
	<-done
	closeRecorder(t, r)
	if got := len(sink.events()); got != 10 {
		t.Errorf("stored %d events, want 10", got)
	}
}

func TestSinkErrorsAreRetried(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	sink := &fakeSink{failN: 3}
	r := NewRecorder(sink, Options{Logger: logger})
	for i := range 10 {
		r.Emit(Event{Type: TypeAdminAuth, Reason: "marker-do-not-log", Actor: "alice", Version: i})
	}
	if err := r.Flush(testCtx(t)); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	closeRecorder(t, r)
	got := sink.events()
	if len(got) != 10 {
		t.Fatalf("stored %d events, want 10 (each once)", len(got))
	}
	for i, e := range got {
		if e.Version != i {
			t.Fatalf("event %d has Version %d after retries, want %d", i, e.Version, i)
		}
	}
	if st := r.Stats(); st.SinkErrors != 3 || st.Stored != 10 || st.Dropped != 0 {
		t.Errorf("Stats = %+v, want SinkErrors 3, Stored 10, Dropped 0", st)
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if !strings.Contains(out, "disk on fire") {
		t.Errorf("log = %q, want the sink error", out)
	}
	if strings.Contains(out, "marker-do-not-log") || strings.Contains(out, "alice") {
		t.Errorf("log = %q, want no event contents", out)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestCloseDeadlineCountsLostEvents(t *testing.T) {
	sink := &fakeSink{always: true}
	r := NewRecorder(sink, Options{Logger: quietLogger()})
	for range 5 {
		r.Emit(Event{Type: TypeAdminAuth})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := r.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "5 events not stored") {
		t.Fatalf("Close with a failing sink = %v, want DeadlineExceeded and 5 events not stored", err)
	}
	if st := r.Stats(); st.Dropped != 5 || st.Stored != 0 || st.SinkErrors == 0 {
		t.Errorf("Stats = %+v, want Dropped 5, Stored 0, SinkErrors > 0", st)
	}
	if err := r.Flush(testCtx(t)); err == nil {
		t.Error("Flush after losing events = nil, want an error")
	}
}

func TestEmitAfterClose(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{Logger: quietLogger()})
	r.Emit(Event{Type: TypeAdminAuth})
	closeRecorder(t, r)
	r.Emit(Event{Type: TypeAdminAuth})
	r.Emit(Event{Type: TypeAdminAuth})
	if st := r.Stats(); st.Emitted != 1 || st.Stored != 1 || st.Dropped != 2 {
		t.Errorf("Stats = %+v, want Emitted 1, Stored 1, Dropped 2", st)
	}
	if got := len(sink.events()); got != 1 {
		t.Errorf("sink has %d events, want 1", got)
	}
	if err := r.Close(testCtx(t)); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := r.Flush(testCtx(t)); err != nil {
		t.Errorf("Flush after Close = %v, want nil", err)
	}
}

func TestEmitFillsTime(t *testing.T) {
	fixed := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{Now: func() time.Time { return fixed }, Logger: quietLogger()})
	given := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Emit(Event{Type: TypeAdminAuth})
	r.Emit(Event{Type: TypeAdminAuth, Time: given})
	closeRecorder(t, r)
	got := sink.events()
	if len(got) != 2 {
		t.Fatalf("sink has %d events, want 2", len(got))
	}
	if !got[0].Time.Equal(fixed) || got[0].Time.Location() != time.UTC {
		t.Errorf("filled Time = %v, want %v in UTC", got[0].Time, fixed.UTC())
	}
	if !got[1].Time.Equal(given) {
		t.Errorf("given Time = %v, want %v kept", got[1].Time, given)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Buffer != 8192 || o.HighWater != 6144 || o.MaxWait != 100*time.Millisecond || o.StallAfter != 5*time.Second ||
		o.BatchSize != 256 || o.FlushInterval != 50*time.Millisecond || o.Logger == nil || o.Now == nil {
		t.Errorf("Options{}.withDefaults() = %+v, want 8192, high water 6144, 100ms, 5s, 256, 50ms, a logger and a clock", o)
	}
	for _, tc := range []struct{ buffer, high, want int }{{1, 0, 1}, {4, 0, 3}, {10, 50, 10}, {10, 2, 2}} {
		if got := (Options{Buffer: tc.buffer, HighWater: tc.high}).withDefaults().HighWater; got != tc.want {
			t.Errorf("Options{Buffer: %d, HighWater: %d}.withDefaults().HighWater = %d, want %d", tc.buffer, tc.high, got, tc.want)
		}
	}
}

type nopSink struct{}

func (nopSink) AppendEvents(context.Context, []Event) error { return nil }

func BenchmarkEmit(b *testing.B) {
	r := NewRecorder(nopSink{}, Options{Logger: quietLogger()})
	e := Event{Type: TypeRouteAuth, Outcome: OutcomeSuccess, Namespace: "default", Function: "orders", RequestID: "r-1"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Emit(e)
		}
	})
	b.StopTimer()
	if err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if st := r.Stats(); st.Stored != st.Emitted {
		b.Fatalf("Stats = %+v, want every event stored", st)
	}
}
