package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Sink stores events durably; store.Store implements it.
//
// # Notes
//   - AppendEvents stores the whole batch or nothing, in order, and may set
//     evs[i].ID. It must not keep evs after it returns: the Recorder reuses
//     the slice.
//   - It must return promptly once ctx is done; the Recorder cancels ctx
//     when Close's deadline passes.
type Sink interface {
	AppendEvents(ctx context.Context, evs []Event) error
}

// Options configure a Recorder. Zero fields take their defaults.
type Options struct {
	Buffer int // events queued at most; default 8192
	// HighWater is the queue length from which TryEmit refuses and Health
	// reports unhealthy; the Buffer-HighWater slots above it stay for plain
	// Emit (events about decisions already made, such as an admin change
	// already committed). Default 3/4 of Buffer; at most Buffer.
	HighWater int
	// MaxWait bounds how long Emit and TryEmit wait for room in the queue;
	// default 100ms.
	MaxWait time.Duration
	// StallAfter is how long a batch may go unstored (the sink failing,
	// or one call not returning) before Health reports unhealthy and
	// TryEmit refuses; default 5s.
	StallAfter    time.Duration
	BatchSize     int           // events per AppendEvents call at most; default 256
	FlushInterval time.Duration // how long an event may wait for a fuller batch; default 50ms
	Logger        *slog.Logger  // default slog.Default()
	Now           func() time.Time
}

// Defaults for Options.
const (
	DefaultBuffer        = 8192
	DefaultBatchSize     = 256
	DefaultFlushInterval = 50 * time.Millisecond
	DefaultMaxWait       = 100 * time.Millisecond
	DefaultStallAfter    = 5 * time.Second
)

// Retry backoff after a sink error: doubles from minBackoff up to maxBackoff.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// dropLogInterval is how often at most Emit logs that it dropped events.
const dropLogInterval = 10 * time.Second

func (o Options) withDefaults() Options {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.HighWater <= 0 {
		o.HighWater = max(1, o.Buffer*3/4)
	}
	o.HighWater = min(o.HighWater, o.Buffer)
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.StallAfter <= 0 {
		o.StallAfter = DefaultStallAfter
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// RecorderStats are a Recorder's counters since it was created.
type RecorderStats struct {
	Emitted    uint64 // events accepted by Emit and TryEmit
	Stored     uint64 // events the sink stored (not counting events.dropped records)
	Dropped    uint64 // events lost: emitted after Close, Overflowed, or abandoned when Close's deadline passed
	Overflowed uint64 // events Emit dropped because the queue stayed full for MaxWait (part of Dropped)
	Refused    uint64 // TryEmit calls that returned ErrUnavailable (the caller knew; not in Dropped)
	SinkErrors uint64 // failed AppendEvents calls (each was retried)
}

// Recorder is an Emitter that delivers events to a Sink asynchronously, in
// batches, from one background goroutine. It implements Checked.
//
// # Notes
//   - Safe for concurrent use. Events are stored in the order their Emit
//     calls enqueued them; events from one goroutine keep their order.
//   - Emit and TryEmit never do I/O, and never wait longer than MaxWait:
//     a store fault or a flood slows the requests that cause events by at
//     most MaxWait, never stalls them.
//   - TryEmit accepts while the queue is below HighWater and the sink is
//     not stalled; otherwise it waits up to MaxWait for the queue to fall
//     below HighWater and then refuses with ErrUnavailable, so that the
//     caller fails closed (503, refused admin change). It refuses at once
//     while the sink is stalled or after Close.
//   - Emit may use the whole buffer. When the buffer stays full for
//     MaxWait it drops the event: the loss is counted in Overflowed and
//     Dropped, logged at most once per 10s (a count, no contents), and
//     stored as one events.dropped event (label dropped.count) with the
//     next batch the sink accepts.
//   - Health is unhealthy from HighWater on, and while a batch has gone
//     unstored for StallAfter (the sink failing, or a call not returning).
//     Its error names the reason, never an event or the sink's error.
//   - A failed batch is retried, whole and in order, with backoff bounded by
//     2s, until it is stored or Close's deadline passes: accepted events
//     are kept while the store is down; memory stays bounded by Buffer
//     because Emit and TryEmit stop accepting. Errors are logged without
//     event contents.
//   - Events accepted are lost only when Close's context ends before they
//     are stored; they are then counted in Dropped, logged with their
//     number and reported by Close's error.
type Recorder struct {
	sink Sink
	opt  Options

	mu       sync.RWMutex // held for reading while sending on ch; for writing to close it
	closed   bool
	isClosed atomic.Bool // closed, readable without mu (Health)
	ch       chan Event

	// emitted counts events being or having been enqueued. An Emit that
	// gives up decrements it again; see Flush.
	emitted    atomic.Uint64
	stored     atomic.Uint64
	dropped    atomic.Uint64
	overflowed atomic.Uint64
	refused    atomic.Uint64
	sinkErrors atomic.Uint64
	warnedDrop atomic.Bool

	lastDropLog  atomic.Int64 // Now() in Unix ns of the last overflow log line
	pendingSince atomic.Int64 // Now() in Unix ns when the unstored batch was first tried; 0: none
	reported     uint64       // overflowed events already recorded as events.dropped; writer only

	urgent atomic.Uint64 // a Flush waits until stored reaches this
	wake   chan struct{} // nudges the writer when urgent changes or events overflowed

	pmu      sync.Mutex
	progress chan struct{} // closed and replaced whenever the queue shrinks or stored advances

	abortCtx context.Context // canceled when Close gives up
	abort    context.CancelFunc

	closeOnce sync.Once
	done      chan struct{} // closed when the writer has exited
}

var _ Checked = (*Recorder)(nil)

// NewRecorder returns a Recorder writing to sink and starts its writer
// goroutine. Call Close to stop it.
func NewRecorder(sink Sink, opt Options) *Recorder {
	opt = opt.withDefaults()
	r := &Recorder{
		sink:     sink,
		opt:      opt,
		ch:       make(chan Event, opt.Buffer),
		wake:     make(chan struct{}, 1),
		progress: make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.abortCtx, r.abort = context.WithCancel(context.Background())
	go r.run()
	return r
}

// Emit queues e for storage, waiting at most MaxWait for room; if none
// frees up it drops e (see the type's notes). A zero Time is set from
// Options.Now, in UTC. After Close, Emit drops e and counts it in
// Stats().Dropped.
func (r *Recorder) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = r.opt.Now().UTC()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Add(1)
		if !r.warnedDrop.Swap(true) {
			r.opt.Logger.Error("events: event emitted after the recorder closed; dropped", "type", e.Type)
		}
		return
	}
	// Counted before the send: see Flush.
	r.emitted.Add(1)
	select {
	case r.ch <- e:
		return
	default:
	}
	t := time.NewTimer(r.opt.MaxWait)
	defer t.Stop()
	select {
	case r.ch <- e:
	case <-t.C:
		r.emitted.Add(^uint64(0))
		r.overflowed.Add(1)
		r.dropped.Add(1)
		r.nudge()
		r.logOverflow()
	}
}

// TryEmit queues e for storage like Emit, or returns an error wrapping
// ErrUnavailable without taking e: after Close, while the sink is stalled,
// or when the queue has not fallen below HighWater within MaxWait.
func (r *Recorder) TryEmit(e Event) error {
	if e.Time.IsZero() {
		e.Time = r.opt.Now().UTC()
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.refused.Add(1)
		return errClosed
	}
	if err := r.stalled(); err != nil {
		r.refused.Add(1)
		return err
	}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for len(r.ch) >= r.opt.HighWater {
		progress := r.progressChan()
		if len(r.ch) < r.opt.HighWater {
			break
		}
		if t == nil {
			t = time.NewTimer(r.opt.MaxWait)
		}
		select {
		case <-progress:
		case <-t.C:
			r.refused.Add(1)
			return r.fullError()
		}
	}
	r.emitted.Add(1) // before the send: see Flush
	select {
	case r.ch <- e:
		return nil
	default:
	}
	// Concurrent TryEmits passed the mark together and Emits filled the rest.
	if t == nil {
		t = time.NewTimer(r.opt.MaxWait)
	}
	select {
	case r.ch <- e:
		return nil
	case <-t.C:
		r.emitted.Add(^uint64(0))
		r.refused.Add(1)
		return r.fullError()
	}
}

var errClosed = fmt.Errorf("%w: the event recorder is closed", ErrUnavailable)

func (r *Recorder) fullError() error {
	return fmt.Errorf("%w: the event queue is full (%d of %d)", ErrUnavailable, len(r.ch), cap(r.ch))
}

// Health returns nil while TryEmit would accept, else an error wrapping
// ErrUnavailable that names the reason: closed, the sink stalled (no batch
// stored for StallAfter), or the queue at or above HighWater.
func (r *Recorder) Health() error {
	if r.isClosed.Load() {
		return errClosed
	}
	if err := r.stalled(); err != nil {
		return err
	}
	if n := len(r.ch); n >= r.opt.HighWater {
		return fmt.Errorf("%w: the event queue is above its high-water mark (%d of %d)", ErrUnavailable, n, cap(r.ch))
	}
	return nil
}

// stalled returns an error when a batch has gone unstored for StallAfter.
func (r *Recorder) stalled() error {
	since := r.pendingSince.Load()
	if since == 0 {
		return nil
	}
	if d := time.Duration(r.opt.Now().UnixNano() - since); d >= r.opt.StallAfter {
		return fmt.Errorf("%w: the event store has stored nothing for %s", ErrUnavailable, d.Truncate(time.Second))
	}
	return nil
}

// nudge wakes the writer without blocking.
func (r *Recorder) nudge() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// logOverflow logs the overflow count at most once per dropLogInterval.
func (r *Recorder) logOverflow() {
	now := r.opt.Now().UnixNano()
	last := r.lastDropLog.Load()
	if last != 0 && now-last < int64(dropLogInterval) {
		return
	}
	if r.lastDropLog.CompareAndSwap(last, now) {
		r.opt.Logger.Error("events: the event queue stayed full; events dropped",
			"dropped_total", r.overflowed.Load(), "max_wait", r.opt.MaxWait)
	}
}

// Flush waits until every event whose Emit or TryEmit returned (accepted)
// before the call is stored. It returns ctx's error if ctx ends first, and
// an error if the recorder stopped with those events unstored.
func (r *Recorder) Flush(ctx context.Context) error {
	// Emitted is incremented before an event is enqueued, so the first
	// `target` events in queue order include every event whose Emit has
	// returned; the writer stores in queue order.
	target := r.emitted.Load()
	for {
		cur := r.urgent.Load()
		if cur >= target || r.urgent.CompareAndSwap(cur, target) {
			break
		}
	}
	r.nudge()
	for {
		progress := r.progressChan()
		// An Emit that gave up lowers emitted again: never wait for an
		// event that was not enqueued. emitted only counts sends completed
		// or in progress, so every event accepted before this call is
		// still among the first emitted-now events in queue order.
		target = min(target, r.emitted.Load())
		if r.stored.Load() >= target {
			return nil
		}
		select {
		case <-progress:
		case <-r.done:
			if r.stored.Load() >= min(target, r.emitted.Load()) {
				return nil
			}
			return fmt.Errorf("events: flush: recorder stopped with %d events not stored", target-r.stored.Load())
		case <-ctx.Done():
			return fmt.Errorf("events: flush: %w", ctx.Err())
		}
	}
}

// Close stops accepting events, stores everything already emitted, stops
// the writer and returns. If ctx ends first, Close abandons the events not
// yet stored (counting them in Dropped and logging their number) and
// returns an error wrapping ctx's error. Close may be called more than once.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.isClosed.Store(true)
		// Taking the write lock waits for Emits waiting on a full buffer
		// (at most MaxWait; the writer keeps draining, so they finish).
		go func() {
			r.mu.Lock()
			r.closed = true
			close(r.ch)
			r.mu.Unlock()
		}()
	})
	var ctxErr error
	select {
	case <-r.done:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		r.abort()
		<-r.done
	}
	if lost := r.emitted.Load() - r.stored.Load(); lost > 0 {
		if ctxErr == nil {
			ctxErr = errors.New("recorder aborted")
		}
		return fmt.Errorf("events: close: %d events not stored: %w", lost, ctxErr)
	}
	return nil
}

// Stats returns the recorder's counters.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{
		Emitted:    r.emitted.Load(),
		Stored:     r.stored.Load(),
		Dropped:    r.dropped.Load(),
		Overflowed: r.overflowed.Load(),
		Refused:    r.refused.Load(),
		SinkErrors: r.sinkErrors.Load(),
	}
}

func (r *Recorder) progressChan() chan struct{} {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	return r.progress
}

func (r *Recorder) notify() {
	r.pmu.Lock()
	close(r.progress)
	r.progress = make(chan struct{})
	r.pmu.Unlock()
}

// run is the writer goroutine: it collects batches from ch and stores them.
func (r *Recorder) run() {
	defer close(r.done)
	defer r.notify()
	// One slot more than a batch: the events.dropped record.
	batch := make([]Event, 0, r.opt.BatchSize+1)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for open := true; open; {
		batch = batch[:0]
		select {
		case e, ok := <-r.ch:
			if !ok {
				open = false
				break
			}
			batch = append(batch, e)
		case <-r.wake: // a Flush (handled by fill) or an overflow to record
		}
		if len(batch) > 0 {
			open = r.fill(&batch, timer)
		}
		n := len(batch)
		lost := r.overflowed.Load() - r.reported
		if lost > 0 {
			batch = append(batch, r.droppedEvent(lost))
		}
		if len(batch) == 0 {
			continue
		}
		r.notify() // the queue shrank: TryEmit may find room
		if !r.write(batch, n) {
			r.drain()
			return
		}
		r.reported += lost
	}
}

// fill adds queued events to *batch, up to BatchSize, until the queue is
// empty and either a Flush is waiting or FlushInterval has passed. It
// returns false once the queue is closed.
func (r *Recorder) fill(batch *[]Event, timer *time.Timer) (open bool) {
	timer.Reset(r.opt.FlushInterval)
	defer timer.Stop()
	for len(*batch) < r.opt.BatchSize {
		select {
		case e, ok := <-r.ch:
			if !ok {
				return false
			}
			*batch = append(*batch, e)
			continue
		default:
		}
		// The queue is empty: write now if a Flush is waiting,
		// otherwise wait a little for a fuller batch.
		if r.urgent.Load() > r.stored.Load() {
			return true
		}
		select {
		case e, ok := <-r.ch:
			if !ok {
				return false
			}
			*batch = append(*batch, e)
		case <-r.wake:
		case <-timer.C:
			return true
		}
	}
	return true
}

// droppedEvent is the record of n events Emit dropped.
func (r *Recorder) droppedEvent(n uint64) Event {
	return Event{
		Time: r.opt.Now().UTC(), Type: TypeEventsDropped, Outcome: OutcomeFailure,
		Reason: "the event queue stayed full: events were dropped",
		Labels: map[string]string{"dropped.count": strconv.FormatUint(n, 10)},
	}
}

// write stores batch, retrying with backoff; its first n events are
// emitted ones (the rest are the recorder's own records). It returns false
// if the recorder was aborted, after counting those n as dropped.
func (r *Recorder) write(batch []Event, n int) bool {
	r.pendingSince.Store(r.opt.Now().UnixNano())
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		err := r.sink.AppendEvents(r.abortCtx, batch)
		if err == nil {
			r.pendingSince.Store(0)
			r.stored.Add(uint64(n))
			r.notify()
			return true
		}
		r.sinkErrors.Add(1)
		if r.abortCtx.Err() == nil {
			// The error describes the failure, never the events.
			r.opt.Logger.Warn("events: storing a batch failed; retrying",
				"err", err, "events", len(batch), "attempt", attempt, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				backoff = min(backoff*2, maxBackoff)
				continue
			case <-r.abortCtx.Done():
				t.Stop()
			}
		}
		r.dropped.Add(uint64(n))
		r.opt.Logger.Error("events: recorder aborted; batch not stored", "events", len(batch), "attempts", attempt)
		return false
	}
}

// drain counts everything still queued as dropped once the recorder was
// aborted, until Close has closed the queue.
func (r *Recorder) drain() {
	var n uint64
	for range r.ch {
		n++
	}
	if n > 0 {
		r.dropped.Add(n)
		r.opt.Logger.Error("events: recorder aborted; queued events not stored", "events", n)
	}
}
