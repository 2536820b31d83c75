package events

import (
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AggregatorOptions configure an Aggregator. Zero fields take their defaults.
type AggregatorOptions struct {
	// Window is how long after the first event of a key later ones are
	// counted instead of passed on; default 60s.
	Window time.Duration
	// MaxKeys bounds the exact keys held at once; default 65536. When it
	// is reached, new keys fall back to a coarse key (type, outcome,
	// namespace and function only), bounded by MaxCoarseKeys (default
	// MaxKeys/16); when both are full, events pass on unaggregated.
	MaxKeys       int
	MaxCoarseKeys int
	// MaxKeyBytes bounds the approximate memory the exact keys hold (their
	// strings, labels and a fixed overhead each); default 32 MiB. A new
	// key that would pass it falls back to a coarse key like one past
	// MaxKeys. Coarse keys hold only type, outcome, namespace and function,
	// so MaxCoarseKeys bounds their memory.
	MaxKeyBytes int
	// Aggregatable says which events may be aggregated; nil means
	// DefaultAggregatable. It is consulted only for request-class types
	// (ClassOf): audit-class events are never aggregated.
	Aggregatable func(Event) bool
	// SweepEvery is how often the background goroutine emits the
	// aggregates of windows that have ended; default Window/4.
	SweepEvery time.Duration
	Now        func() time.Time // default time.Now
}

// Defaults for AggregatorOptions.
const (
	DefaultAggregateWindow = 60 * time.Second
	DefaultAggregateKeys   = 65536
	DefaultAggregateBytes  = 32 << 20
)

// aggEntryOverhead approximates what an entry costs besides its strings.
const aggEntryOverhead = 256

// Labels of an aggregate event.
const (
	LabelAggregateCount  = "aggregate.count"  // events counted (not stored one by one), decimal
	LabelAggregateFirst  = "aggregate.first"  // time of the first counted event, RFC 3339 (ns), UTC
	LabelAggregateLast   = "aggregate.last"   // time of the last counted event
	LabelAggregateWindow = "aggregate.window" // the window, as a Go duration
	LabelAggregateKey    = "aggregate.key"    // "exact", or "coarse" when the key table was full
)

// DefaultAggregatable reports whether e is a refusal of a kind that a
// client can repeat at will: route.auth, request.invalid, limit.*,
// function.trap, function.quarantined, capability.denied and dlp.response,
// with outcome denied or failure.
func DefaultAggregatable(e Event) bool {
	if e.Outcome != OutcomeDenied && e.Outcome != OutcomeFailure {
		return false
	}
	switch e.Type {
	case TypeRouteAuth, TypeRequestInvalid, TypeFunctionTrap, TypeFunctionQuarantined, TypeDLP, "capability.denied":
		return true
	}
	return strings.HasPrefix(e.Type, "limit.")
}

// AggregatorStats are an Aggregator's counters since it was created.
type AggregatorStats struct {
	Passed     uint64 // events passed on as they came
	Suppressed uint64 // events counted into an aggregate instead
	Aggregates uint64 // aggregate events emitted
	Coarse     uint64 // keys opened under a coarse key because the exact table was full
	Unkeyed    uint64 // aggregatable events passed on because both key tables were full
}

// Aggregator is a Checked emitter in front of another that folds repeated
// refusals into one counted event: for an aggregatable event (see
// AggregatorOptions.Aggregatable) keyed by type, outcome, source address,
// namespace, function, version, reason and actor, the first of a window is
// passed on at once; the later ones in the window are counted, and when the
// window ends (or on Flush or Close) one event is passed on for them: a
// copy of the first counted event without its request id, at the time of
// the last, with the Labels aggregate.count, .first, .last, .window and
// .key (LabelAggregateCount...). Other events are passed on unchanged.
//
// # Notes
//   - Safe for concurrent use. Emit and TryEmit never wait on a lock held
//     during I/O: aggregates are passed on outside the lock.
//   - Nothing is dropped: every event is passed on or counted into an
//     aggregate that is passed on within about Window+SweepEvery, or at
//     Flush or Close. Memory is bounded by MaxKeys exact entries holding
//     at most about MaxKeyBytes, plus MaxCoarseKeys small coarse ones;
//     beyond them events pass on unaggregated.
//   - TryEmit fails closed like the next emitter: an event that would be
//     counted is refused (not counted) when next.Health reports an error;
//     one that would be passed on is refused when next.TryEmit refuses it.
//   - Aggregates are passed on with next.Emit: they stand for events
//     already accepted.
//   - Close stops the sweeper and passes on every pending aggregate; after
//     Close every event passes on unaggregated. The Aggregator never
//     closes next.
//   - Lock order: Aggregator.mu before next's own locks (next.Health is
//     called under it; next never calls back).
type Aggregator struct {
	next Checked
	opt  AggregatorOptions

	mu     sync.Mutex
	exact  map[aggKey]*aggEntry
	coarse map[aggKey]*aggEntry
	bytes  int // approximate memory of the exact entries
	closed bool

	passed, suppressed, aggregates, coarseN, unkeyed atomic.Uint64

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

var _ Checked = (*Aggregator)(nil)

type aggKey struct {
	typ, outcome, source, namespace, function, reason, actor string
	version                                                  int
	coarse                                                   bool
}

type aggEntry struct {
	start       time.Time // when the window opened
	count       int       // events counted
	first, last time.Time // of the counted events
	tmpl        Event     // the first counted event, without what the aggregate drops
	cost        int       // approximate bytes, counted in Aggregator.bytes for exact keys
	flushed     time.Time // when a flush last passed on its counts (zero: never)
}

// cost approximates the memory an exact entry opened by e holds.
func cost(e Event) int {
	n := aggEntryOverhead + len(e.Type) + len(e.Outcome) + len(e.SourceIP) + len(e.Namespace) + len(e.Function) +
		len(e.Reason) + len(e.Actor)
	for k, v := range e.Labels {
		n += len(k) + len(v) + 16
	}
	return n
}

// NewAggregator returns an Aggregator passing events on to next and starts
// its sweeper goroutine; call Close to stop it.
func NewAggregator(next Checked, opt AggregatorOptions) (*Aggregator, error) {
	if next == nil {
		return nil, errors.New("events: aggregator: no next emitter")
	}
	if opt.Window < 0 || opt.MaxKeys < 0 || opt.MaxCoarseKeys < 0 || opt.MaxKeyBytes < 0 || opt.SweepEvery < 0 {
		return nil, errors.New("events: aggregator: negative window, key bound or sweep interval")
	}
	if opt.Window == 0 {
		opt.Window = DefaultAggregateWindow
	}
	if opt.MaxKeys == 0 {
		opt.MaxKeys = DefaultAggregateKeys
	}
	if opt.MaxCoarseKeys == 0 {
		opt.MaxCoarseKeys = max(1, opt.MaxKeys/16)
	}
	if opt.MaxKeyBytes == 0 {
		opt.MaxKeyBytes = DefaultAggregateBytes
	}
	if opt.Aggregatable == nil {
		opt.Aggregatable = DefaultAggregatable
	}
	if opt.SweepEvery == 0 {
		opt.SweepEvery = max(time.Millisecond, opt.Window/4)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	a := &Aggregator{
		next:   next,
		opt:    opt,
		exact:  make(map[aggKey]*aggEntry),
		coarse: make(map[aggKey]*aggEntry),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go a.run()
	return a, nil
}

// admission is what admit decided for one event.
type admission struct {
	pass   bool      // pass e on
	agg    *Event    // an ended window's aggregate, to pass on first
	opened *aggEntry // the entry e opened, if any
	key    aggKey
	err    error // refused: next is unhealthy
}

// Emit passes e on, or counts it into its key's aggregate.
func (a *Aggregator) Emit(e Event) {
	d := a.admit(e, false)
	if d.agg != nil {
		a.next.Emit(*d.agg)
	}
	if d.pass {
		a.next.Emit(e)
	}
}

// TryEmit is Emit that fails closed (see the type's notes); on error e was
// neither passed on nor counted.
func (a *Aggregator) TryEmit(e Event) error {
	d := a.admit(e, true)
	if d.err != nil {
		return d.err
	}
	if d.agg != nil {
		a.next.Emit(*d.agg)
	}
	if !d.pass {
		return nil
	}
	if err := a.next.TryEmit(e); err != nil {
		if d.opened != nil {
			a.forget(d.key, d.opened)
		}
		return err
	}
	return nil
}

// Health returns next's health.
func (a *Aggregator) Health() error { return a.next.Health() }

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() AggregatorStats {
	return AggregatorStats{
		Passed: a.passed.Load(), Suppressed: a.suppressed.Load(), Aggregates: a.aggregates.Load(),
		Coarse: a.coarseN.Load(), Unkeyed: a.unkeyed.Load(),
	}
}

// flushesPerWindow bounds the partial aggregates flushes pass on for one
// key: after its first, at most one per Window/flushesPerWindow.
const flushesPerWindow = 6

// Flush passes on the counts of the keys with counted events now, so that
// a query sees them. The keys and their windows stay open: a refusal after
// a flush is counted into its window, not passed on as the first event of
// a new one; and a key's counts are passed on at most once per
// Window/flushesPerWindow after its first flush (the rest at its window's
// end). So a client reading or following the event log (each query
// flushes) cannot undo the aggregation of a flood: a key stores at most a
// few events per window however often the log is read.
func (a *Aggregator) Flush() {
	now := a.opt.Now()
	every := a.opt.Window / flushesPerWindow
	a.mu.Lock()
	var aggs []Event
	for _, m := range []map[aggKey]*aggEntry{a.exact, a.coarse} {
		for k, ent := range m {
			if ent.count > 0 && (ent.flushed.IsZero() || now.Sub(ent.flushed) >= every) {
				aggs = append(aggs, a.aggregate(k, ent))
				ent.count, ent.first, ent.last, ent.tmpl, ent.flushed = 0, time.Time{}, time.Time{}, Event{}, now
			}
		}
	}
	a.mu.Unlock()
	a.emitAll(aggs)
}

// Close stops the sweeper and passes on every pending aggregate. After
// Close, events are passed on unaggregated. It may be called more than
// once.
func (a *Aggregator) Close() {
	a.closeOnce.Do(func() {
		close(a.stop)
		<-a.done
	})
	a.mu.Lock()
	a.closed = true
	aggs := a.takeAll()
	a.mu.Unlock()
	a.emitAll(aggs)
}

func (a *Aggregator) run() {
	defer close(a.done)
	t := time.NewTicker(a.opt.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.sweep(a.opt.Now())
		case <-a.stop:
			return
		}
	}
}

// sweep passes on the aggregates of windows ended at now and forgets
// their keys.
func (a *Aggregator) sweep(now time.Time) {
	var aggs []Event
	a.mu.Lock()
	for _, m := range []map[aggKey]*aggEntry{a.exact, a.coarse} {
		for k, ent := range m {
			if now.Sub(ent.start) < a.opt.Window {
				continue
			}
			if ent.count > 0 {
				aggs = append(aggs, a.aggregate(k, ent))
			}
			a.remove(m, k, ent)
		}
	}
	a.mu.Unlock()
	a.emitAll(aggs)
}

func (a *Aggregator) emitAll(aggs []Event) {
	for _, e := range aggs {
		a.next.Emit(e)
	}
}

// takeAll returns the aggregates of every key and forgets all keys; a.mu
// must be held.
func (a *Aggregator) takeAll() []Event {
	var aggs []Event
	for _, m := range []map[aggKey]*aggEntry{a.exact, a.coarse} {
		for k, ent := range m {
			if ent.count > 0 {
				aggs = append(aggs, a.aggregate(k, ent))
			}
		}
		clear(m)
	}
	a.bytes = 0
	return aggs
}

// remove deletes k's entry ent from m; a.mu must be held.
func (a *Aggregator) remove(m map[aggKey]*aggEntry, k aggKey, ent *aggEntry) {
	delete(m, k)
	if !k.coarse {
		a.bytes -= ent.cost
	}
}

func (a *Aggregator) admit(e Event, checked bool) admission {
	if ClassOf(e.Type) != ClassRequest || !a.opt.Aggregatable(e) {
		a.passed.Add(1)
		return admission{pass: true}
	}
	now := a.opt.Now()
	k := aggKey{typ: e.Type, outcome: e.Outcome, source: e.SourceIP, namespace: e.Namespace, function: e.Function,
		reason: e.Reason, actor: e.Actor, version: e.Version}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		a.passed.Add(1)
		return admission{pass: true}
	}
	m := a.exact
	ent, ok := m[k]
	c := 0
	if !ok {
		c = cost(e)
	}
	if !ok && (len(m) >= a.opt.MaxKeys || a.bytes+c > a.opt.MaxKeyBytes) {
		k = aggKey{typ: e.Type, outcome: e.Outcome, namespace: e.Namespace, function: e.Function, coarse: true}
		m = a.coarse
		if ent, ok = m[k]; !ok && len(m) >= a.opt.MaxCoarseKeys {
			a.unkeyed.Add(1)
			a.passed.Add(1)
			return admission{pass: true}
		}
	}
	var d admission
	if ok && now.Sub(ent.start) >= a.opt.Window {
		// The window ended before the sweeper came by.
		if ent.count > 0 {
			agg := a.aggregate(k, ent)
			d.agg = &agg
		}
		a.remove(m, k, ent)
		ok = false
		c = cost(e)
	}
	if !ok {
		ent = &aggEntry{start: now}
		m[k] = ent
		if k.coarse {
			a.coarseN.Add(1)
		} else {
			ent.cost = c
			a.bytes += c
		}
		a.passed.Add(1)
		d.pass, d.opened, d.key = true, ent, k
		return d
	}
	if checked {
		if err := a.next.Health(); err != nil {
			d.err = err
			return d
		}
	}
	t := e.Time
	if t.IsZero() {
		t = now
	}
	if ent.count == 0 {
		// What the aggregate does not carry is not kept.
		e.RequestID = ""
		if k.coarse {
			e.SourceIP, e.Actor, e.Version, e.Reason = "", "", 0, ""
		}
		ent.first, ent.tmpl = t, e
	}
	ent.count++
	ent.last = t
	a.suppressed.Add(1)
	return d
}

// forget removes the entry opened by an event next refused, unless events
// were counted into it meanwhile.
func (a *Aggregator) forget(k aggKey, opened *aggEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.exact
	if k.coarse {
		m = a.coarse
	}
	if ent := m[k]; ent == opened && ent.count == 0 {
		a.remove(m, k, ent)
	}
}

// aggregate builds the event for ent's counted events; a.mu must be held.
func (a *Aggregator) aggregate(k aggKey, ent *aggEntry) Event {
	a.aggregates.Add(1)
	e := ent.tmpl
	e.ID, e.RequestID, e.Time = 0, "", ent.last
	labels := maps.Clone(e.Labels)
	if labels == nil {
		labels = make(map[string]string, 5)
	}
	labels[LabelAggregateCount] = strconv.Itoa(ent.count)
	labels[LabelAggregateFirst] = ent.first.UTC().Format(time.RFC3339Nano)
	labels[LabelAggregateLast] = ent.last.UTC().Format(time.RFC3339Nano)
	labels[LabelAggregateWindow] = a.opt.Window.String()
	labels[LabelAggregateKey] = "exact"
	if k.coarse {
		labels[LabelAggregateKey] = "coarse"
		e.SourceIP, e.Actor, e.Version = "", "", 0
		e.Reason = "repeated refusals from many sources (the aggregation table was full)"
	}
	e.Labels = labels
	return e
}
