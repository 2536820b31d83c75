package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestAggregator returns an aggregator on a fake clock whose sweeper
// never fires on its own (tests call sweep).
func newTestAggregator(t *testing.T, next Checked, opt AggregatorOptions) (*Aggregator, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	opt.Now = clock.Now
	if opt.SweepEvery == 0 {
		opt.SweepEvery = time.Hour
	}
	a, err := NewAggregator(next, opt)
	if err != nil {
		t.Fatalf("NewAggregator = %v", err)
	}
	t.Cleanup(a.Close)
	return a, clock
}

func refusal(source string) Event {
	return Event{Type: TypeRouteAuth, Outcome: OutcomeDenied, Reason: "invalid API key", SourceIP: source,
		Namespace: "default", Function: "orders", Version: 3, RequestID: "req-" + source}
}

func count(t *testing.T, e Event) int {
	t.Helper()
	n, err := strconv.Atoi(e.Labels[LabelAggregateCount])
	if err != nil {
		t.Fatalf("aggregate %+v: label %s = %q: %v", e, LabelAggregateCount, e.Labels[LabelAggregateCount], err)
	}
	return n
}

// 1000 identical refusals within a window reach the store as two events:
// the first as it came, then one aggregate counting the other 999.
func TestAggregatorStoresFirstAndCount(t *testing.T) {
	sink := &fakeSink{}
	r := NewRecorder(sink, Options{Logger: quietLogger()})
	a, clock := newTestAggregator(t, r, AggregatorOptions{})
	start := clock.Now()
	for i := range 1000 {
		e := refusal("192.0.2.7")
		e.RequestID = fmt.Sprint("req-", i)
		if err := a.TryEmit(e); err != nil {
			t.Fatalf("TryEmit %d = %v", i, err)
		}
		clock.Advance(50 * time.Millisecond) // 1000 events in 50s: one window
	}
	a.Close()
	closeRecorder(t, r)

	got := sink.events()
	if len(got) != 2 {
		t.Fatalf("stored %d events, want 2 (the first and one aggregate)", len(got))
	}
	if got[0].RequestID != "req-0" || got[0].Labels[LabelAggregateCount] != "" {
		t.Errorf("first stored event = %+v, want the first refusal as emitted", got[0])
	}
	agg := got[1]
	if n := count(t, agg); n != 999 {
		t.Errorf("aggregate count = %d, want 999", n)
	}
	if agg.Type != TypeRouteAuth || agg.Outcome != OutcomeDenied || agg.SourceIP != "192.0.2.7" ||
		agg.Function != "orders" || agg.Reason != "invalid API key" || agg.RequestID != "" {
		t.Errorf("aggregate = %+v, want the key's fields and no request id", agg)
	}
	wantFirst, wantLast := start.Add(50*time.Millisecond), start.Add(999*50*time.Millisecond)
	if agg.Labels[LabelAggregateFirst] != wantFirst.Format(time.RFC3339Nano) ||
		agg.Labels[LabelAggregateLast] != wantLast.Format(time.RFC3339Nano) || !agg.Time.Equal(wantLast) {
		t.Errorf("aggregate labels %v, time %v; want first %v, last %v and time = last", agg.Labels, agg.Time, wantFirst, wantLast)
	}
	if st := a.Stats(); st.Passed != 1 || st.Suppressed != 999 || st.Aggregates != 1 {
		t.Errorf("Stats = %+v, want Passed 1, Suppressed 999, Aggregates 1", st)
	}
}

// The sweeper's work: when a window ends, its aggregate goes out and the
// key starts afresh; the next event of the key is passed on at once.
func TestAggregatorWindowEnds(t *testing.T) {
	m := NewMemory()
	a, clock := newTestAggregator(t, m, AggregatorOptions{Window: time.Minute})
	for range 3 {
		a.Emit(refusal("192.0.2.1"))
	}
	clock.Advance(59 * time.Second)
	a.sweep(clock.Now())
	if got := len(m.Events()); got != 1 {
		t.Fatalf("after a sweep inside the window: %d events, want 1", got)
	}
	clock.Advance(time.Second)
	a.sweep(clock.Now())
	evs := m.Events()
	if len(evs) != 2 || count(t, evs[1]) != 2 {
		t.Fatalf("after the window: %+v, want the first and an aggregate counting 2", evs)
	}
	a.mu.Lock()
	keys, bytes := len(a.exact), a.bytes
	a.mu.Unlock()
	if keys != 0 || bytes != 0 {
		t.Errorf("after the window's sweep: %d keys holding %d bytes, want none", keys, bytes)
	}
	a.sweep(clock.Now()) // nothing pending: no empty aggregate
	a.Emit(refusal("192.0.2.1"))
	if evs := m.Events(); len(evs) != 3 || evs[2].Labels[LabelAggregateCount] != "" {
		t.Errorf("first event of a new window: %+v, want it passed on as emitted", evs)
	}
}

// Without a sweep, the next event of a key whose window ended passes the
// ended window's aggregate on first.
func TestAggregatorWindowEndsWithoutSweep(t *testing.T) {
	m := NewMemory()
	a, clock := newTestAggregator(t, m, AggregatorOptions{Window: time.Minute})
	for range 4 {
		a.Emit(refusal("192.0.2.1"))
	}
	clock.Advance(2 * time.Minute)
	e := refusal("192.0.2.1")
	e.RequestID = "the-new-one"
	a.Emit(e)
	evs := m.Events()
	if len(evs) != 3 || count(t, evs[1]) != 3 || evs[2].RequestID != "the-new-one" {
		t.Errorf("events = %+v, want first, aggregate counting 3, then the new event", evs)
	}
}

func TestAggregatorKeys(t *testing.T) {
	base := refusal("192.0.2.1")
	tests := []struct {
		name   string
		change func(e *Event)
	}{
		{"source", func(e *Event) { e.SourceIP = "192.0.2.2" }},
		{"function", func(e *Event) { e.Function = "payments" }},
		{"namespace", func(e *Event) { e.Namespace = "other" }},
		{"version", func(e *Event) { e.Version = 4 }},
		{"reason", func(e *Event) { e.Reason = "missing scope orders:write" }},
		{"actor", func(e *Event) { e.Actor = "apikey:k2" }},
		{"type", func(e *Event) { e.Type = TypeRequestInvalid }},
		{"outcome", func(e *Event) { e.Outcome = OutcomeFailure }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory()
			a, _ := newTestAggregator(t, m, AggregatorOptions{})
			other := base
			tc.change(&other)
			for range 5 {
				a.Emit(base)
				a.Emit(other)
			}
			if got := len(m.Events()); got != 2 {
				t.Errorf("events differing in %s: %d passed on, want 2 (one per key)", tc.name, got)
			}
			a.Flush()
			evs := m.Events()
			if len(evs) != 4 || count(t, evs[2]) != 4 || count(t, evs[3]) != 4 {
				t.Errorf("after Flush: %+v, want two aggregates counting 4 each", evs)
			}
		})
	}
	// The request id is not part of the key.
	m := NewMemory()
	a, _ := newTestAggregator(t, m, AggregatorOptions{})
	for i := range 5 {
		e := base
		e.RequestID = fmt.Sprint(i)
		a.Emit(e)
	}
	if got := len(m.Events()); got != 1 {
		t.Errorf("events differing only in request id: %d passed on, want 1", got)
	}
}

// Audit-class events are never aggregated, whatever the predicate says;
// successes and types outside the default list are not aggregated by
// default.
func TestAggregatorPassesWhatItMustNotAggregate(t *testing.T) {
	tests := []struct {
		name string
		opt  AggregatorOptions
		e    Event
	}{
		{"admin auth failure", AggregatorOptions{Aggregatable: func(Event) bool { return true }},
			Event{Type: TypeAdminAuth, Outcome: OutcomeFailure, Reason: "invalid credential", SourceIP: "192.0.2.1"}},
		{"deploy refused", AggregatorOptions{Aggregatable: func(Event) bool { return true }},
			Event{Type: TypeFunctionDeploy, Outcome: OutcomeDenied, Reason: "needs grants:approve"}},
		{"secret read", AggregatorOptions{Aggregatable: func(Event) bool { return true }},
			Event{Type: "secret.read", Outcome: OutcomeSuccess, Function: "orders"}},
		{"grant change", AggregatorOptions{Aggregatable: func(Event) bool { return true }},
			Event{Type: "grant.approve", Outcome: OutcomeDenied}},
		{"prune record", AggregatorOptions{Aggregatable: func(Event) bool { return true }},
			Event{Type: TypeEventsPrune, Outcome: OutcomeSuccess}},
		{"route auth success", AggregatorOptions{},
			Event{Type: TypeRouteAuth, Outcome: OutcomeSuccess, SourceIP: "192.0.2.1"}},
		{"redaction", AggregatorOptions{},
			Event{Type: TypeDLP, Outcome: OutcomeSuccess, Reason: "redacted email"}},
		{"egress call", AggregatorOptions{},
			Event{Type: "egress.request", Outcome: OutcomeFailure}},
		{"predicate says no", AggregatorOptions{Aggregatable: func(Event) bool { return false }},
			refusal("192.0.2.1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory()
			a, _ := newTestAggregator(t, m, tc.opt)
			for range 10 {
				a.Emit(tc.e)
			}
			a.Flush()
			if got := len(m.Events()); got != 10 {
				t.Errorf("10 × %s/%s: %d passed on, want all 10", tc.e.Type, tc.e.Outcome, got)
			}
		})
	}
}

// The key tables stay within their bounds; past them events fall back to a
// coarse key, then pass on unaggregated. Every event is accounted for.
func TestAggregatorKeyBound(t *testing.T) {
	m := NewMemory()
	a, _ := newTestAggregator(t, m, AggregatorOptions{MaxKeys: 4, MaxCoarseKeys: 1})
	const sources, each = 10, 3
	emitted := 0
	for s := range sources {
		for range each {
			a.Emit(refusal(fmt.Sprintf("192.0.2.%d", s)))
			emitted++
		}
	}
	// Another function: the coarse table is full too.
	for range each {
		e := refusal("198.51.100.1")
		e.Function = "payments"
		a.Emit(e)
		emitted++
	}
	a.mu.Lock()
	exact, coarse := len(a.exact), len(a.coarse)
	a.mu.Unlock()
	if exact != 4 || coarse != 1 {
		t.Errorf("key tables hold %d exact and %d coarse keys, want 4 and 1 (their bounds)", exact, coarse)
	}
	st := a.Stats()
	if st.Passed != 4+1+each || st.Coarse != 1 || st.Unkeyed != each || st.Suppressed != 4*(each-1)+6*each-1 {
		t.Errorf("Stats = %+v, want Passed %d, Coarse 1, Unkeyed %d, Suppressed %d", st, 4+1+each, each, 4*(each-1)+6*each-1)
	}
	a.Flush()
	represented := 0
	var coarseAgg *Event
	for _, e := range m.Events() {
		if e.Labels[LabelAggregateCount] == "" {
			represented++
			continue
		}
		represented += count(t, e)
		if e.Labels[LabelAggregateKey] == "coarse" {
			coarseAgg = &e
		}
	}
	if represented != emitted {
		t.Errorf("events passed on plus counted = %d, want %d (none lost)", represented, emitted)
	}
	if coarseAgg == nil || coarseAgg.SourceIP != "" || coarseAgg.Function != "orders" || count(t, *coarseAgg) != 6*each-1 {
		t.Errorf("coarse aggregate = %+v, want function orders, no source, counting %d", coarseAgg, 6*each-1)
	}
}

// Keys with long fields count against MaxKeyBytes: past it, new keys fall
// back to the coarse key although MaxKeys is not reached.
func TestAggregatorKeyBytesBound(t *testing.T) {
	m := NewMemory()
	one := cost(refusal("192.0.2.1"))
	a, _ := newTestAggregator(t, m, AggregatorOptions{MaxKeyBytes: 3 * one})
	for s := range 5 {
		for range 2 {
			a.Emit(refusal(fmt.Sprintf("192.0.2.%d", s)))
		}
	}
	a.mu.Lock()
	exact, coarse, bytes := len(a.exact), len(a.coarse), a.bytes
	a.mu.Unlock()
	if exact != 3 || coarse != 1 || bytes > 3*one {
		t.Errorf("%d exact keys holding %d bytes and %d coarse keys, want 3 exact within %d bytes and 1 coarse", exact, bytes, coarse, 3*one)
	}
	m, one = NewMemory(), cost(refusal("192.0.2.1"))
	a, _ = newTestAggregator(t, m, AggregatorOptions{MaxKeyBytes: 3 * one})
	long := refusal("192.0.2.9")
	long.Reason = strings.Repeat("x", 4*one)
	a.Emit(long)
	a.Emit(long)
	if st := a.Stats(); st.Coarse != 1 {
		t.Errorf("a key larger than MaxKeyBytes: Stats = %+v, want it under a coarse key (Coarse 1)", st)
	}
}

// A flush (every event query makes one) passes on the counts but keeps the
// windows: the next refusals of a source are counted, not stored again as
// the first of a new window, and a source's counts are passed on at most
// once per sixth of a window however often the log is read. Nothing is
// lost.
func TestAggregatorFlushKeepsWindows(t *testing.T) {
	m := NewMemory()
	a, clock := newTestAggregator(t, m, AggregatorOptions{Window: time.Minute})
	for range 3 {
		a.Emit(refusal("192.0.2.1"))
	}
	a.Flush()
	if evs := m.Events(); len(evs) != 2 || count(t, evs[1]) != 2 {
		t.Fatalf("after the first flush: %+v, want the first event and an aggregate of 2", evs)
	}
	// A client following the log: a query every half second.
	for range 100 {
		a.Emit(refusal("192.0.2.1"))
		clock.Advance(500 * time.Millisecond)
		a.Flush()
	}
	evs := m.Events()
	if len(evs) > 2+6 {
		t.Fatalf("%d events after 50 s of refusals read every half second, want at most 8", len(evs))
	}
	if st := a.Stats(); st.Passed != 1 {
		t.Fatalf("Stats = %+v, want one event passed on (the first)", st)
	}
	a.Close()
	total := 0
	for _, e := range m.Events() {
		if e.Labels[LabelAggregateCount] == "" {
			total++
			continue
		}
		total += count(t, e)
	}
	if total != 103 {
		t.Fatalf("events passed on plus counted = %d, want 103 (none lost)", total)
	}
}

// TryEmit fails closed: nothing is counted or passed on while the next
// emitter is unavailable, and a refused first event does not open a key.
func TestAggregatorTryEmitFailsClosed(t *testing.T) {
	m := NewMemory()
	a, _ := newTestAggregator(t, m, AggregatorOptions{})
	m.SetUnavailable("queue full")
	if err := a.TryEmit(refusal("192.0.2.1")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("TryEmit with next unavailable = %v, want ErrUnavailable", err)
	}
	if err := a.Health(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Health with next unavailable = %v, want ErrUnavailable", err)
	}
	m.SetUnavailable("")
	if err := a.TryEmit(refusal("192.0.2.1")); err != nil {
		t.Fatalf("TryEmit after recovery = %v, want nil", err)
	}
	if evs := m.Events(); len(evs) != 1 || evs[0].Labels[LabelAggregateCount] != "" {
		t.Fatalf("events = %+v, want the event passed on as a first (the refused one opened no key)", evs)
	}
	if err := a.TryEmit(refusal("192.0.2.1")); err != nil {
		t.Fatalf("TryEmit of a repeat = %v, want nil (counted)", err)
	}
	m.SetUnavailable("store stalled")
	if err := a.TryEmit(refusal("192.0.2.1")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("TryEmit of a repeat with next unavailable = %v, want ErrUnavailable", err)
	}
	m.SetUnavailable("")
	a.Flush()
	evs := m.Events()
	if len(evs) != 2 || count(t, evs[1]) != 1 {
		t.Errorf("events = %+v, want the first and an aggregate counting only the accepted repeat", evs)
	}
}

func TestAggregatorCloseFlushesAndPassesThrough(t *testing.T) {
	m := NewMemory()
	a, _ := newTestAggregator(t, m, AggregatorOptions{})
	for range 3 {
		a.Emit(refusal("192.0.2.1"))
	}
	a.Close()
	a.Close()
	if evs := m.Events(); len(evs) != 2 || count(t, evs[1]) != 2 {
		t.Fatalf("after Close: %+v, want the first and an aggregate counting 2", evs)
	}
	a.Emit(refusal("192.0.2.1"))
	a.Emit(refusal("192.0.2.1"))
	if got := len(m.Events()); got != 4 {
		t.Errorf("after Close, %d events, want each new one passed on (4)", got)
	}
}

func TestAggregatorConcurrent(t *testing.T) {
	m := NewMemory()
	a, clock := newTestAggregator(t, m, AggregatorOptions{Window: time.Second, MaxKeys: 8, MaxCoarseKeys: 2})
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e := refusal(fmt.Sprintf("192.0.2.%d", (g*each+i)%13))
				if i%3 == 0 {
					_ = a.TryEmit(e) // Memory is healthy: never refused
				} else {
					a.Emit(e)
				}
				if i%100 == 0 {
					clock.Advance(300 * time.Millisecond)
					a.sweep(clock.Now())
				}
			}
		})
	}
	wg.Wait()
	a.Close()
	represented := 0
	for _, e := range m.Events() {
		if e.Labels[LabelAggregateCount] == "" {
			represented++
		} else {
			represented += count(t, e)
		}
	}
	if represented != goroutines*each {
		t.Errorf("events passed on plus counted = %d, want %d", represented, goroutines*each)
	}
}

func TestNewAggregatorChecksArguments(t *testing.T) {
	if _, err := NewAggregator(nil, AggregatorOptions{}); err == nil {
		t.Error("NewAggregator(nil) = nil error, want an error")
	}
	if _, err := NewAggregator(NewMemory(), AggregatorOptions{Window: -time.Second}); err == nil {
		t.Error("NewAggregator(Window: -1s) = nil error, want an error")
	}
	a, err := NewAggregator(NewMemory(), AggregatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.opt.Window != time.Minute || a.opt.MaxKeys != 65536 || a.opt.MaxCoarseKeys != 4096 || a.opt.SweepEvery != 15*time.Second ||
		a.opt.MaxKeyBytes != 32<<20 {
		t.Errorf("defaults = %+v, want window 1m, 65536 keys, 4096 coarse, 32 MiB, sweep every 15s", a.opt)
	}
}

func BenchmarkAggregatorEmit(b *testing.B) {
	a, err := NewAggregator(Discard, AggregatorOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	e := refusal("192.0.2.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Emit(e)
		}
	})
}
