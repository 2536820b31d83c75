package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	Buffer        int           // events queued before Emit blocks; default 8192
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
)

// Retry backoff after a sink error: doubles from minBackoff up to maxBackoff.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 2 * time.Second
)

func (o Options) withDefaults() Options {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
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
	Emitted    uint64 // events accepted by Emit
	Stored     uint64 // events the sink stored
	Dropped    uint64 // events emitted after Close, or abandoned when Close's deadline passed
	SinkErrors uint64 // failed AppendEvents calls (each was retried)
}

// Recorder is an Emitter that delivers events to a Sink asynchronously, in
// batches, from one background goroutine.
//
// # Notes
//   - Safe for concurrent use. Events are stored in the order their Emit
//     calls enqueued them; events from one goroutine keep their order.
//   - Emit never does I/O. When the buffer is full it blocks until the
//     writer catches up (backpressure): a security event is never dropped
//     to keep a request fast.
//   - A failed batch is retried, whole and in order, with backoff bounded by
//     2s, until it is stored or Close's deadline passes. Errors are logged
//     without event contents.
//   - Events are lost only when Close's context ends before they are
//     stored; they are then counted in Dropped, logged with their number and
//     reported by Close's error.
type Recorder struct {
	sink Sink
	opt  Options

	mu     sync.RWMutex // held for reading while sending on ch; for writing to close it
	closed bool
	ch     chan Event

	emitted    atomic.Uint64
	stored     atomic.Uint64
	dropped    atomic.Uint64
	sinkErrors atomic.Uint64
	warnedDrop atomic.Bool

	urgent atomic.Uint64 // a Flush waits until stored reaches this
	wake   chan struct{} // nudges the writer when urgent changes

	pmu      sync.Mutex
	progress chan struct{} // closed and replaced whenever stored advances

	abortCtx context.Context // canceled when Close gives up
	abort    context.CancelFunc

	closeOnce sync.Once
	done      chan struct{} // closed when the writer has exited
}

var _ Emitter = (*Recorder)(nil)

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

// Emit queues e for storage. A zero Time is set from Options.Now, in UTC.
// After Close, Emit drops e and counts it in Stats().Dropped.
func (r *Recorder) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = r.opt.Now().UTC()
	}
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		r.dropped.Add(1)
		if !r.warnedDrop.Swap(true) {
			r.opt.Logger.Error("events: event emitted after the recorder closed; dropped", "type", e.Type)
		}
		return
	}
	// Counted before the send: see Flush.
	r.emitted.Add(1)
	r.ch <- e
	r.mu.RUnlock()
}

// Flush waits until every event whose Emit returned before the call is
// stored. It returns ctx's error if ctx ends first, and an error if the
// recorder stopped with those events unstored.
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
	select {
	case r.wake <- struct{}{}:
	default:
	}
	for {
		progress := r.progressChan()
		if r.stored.Load() >= target {
			return nil
		}
		select {
		case <-progress:
		case <-r.done:
			if r.stored.Load() >= target {
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
		// Taking the write lock waits for Emits blocked on a full buffer;
		// the writer keeps draining, so they finish.
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
	batch := make([]Event, 0, r.opt.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	open := true
	for open {
		e, ok := <-r.ch
		if !ok {
			break
		}
		batch = append(batch[:0], e)
		timer.Reset(r.opt.FlushInterval)
	fill:
		for len(batch) < r.opt.BatchSize {
			select {
			case e, ok := <-r.ch:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, e)
				continue
			default:
			}
			// The queue is empty: write now if a Flush is waiting,
			// otherwise wait a little for a fuller batch.
			if r.urgent.Load() > r.stored.Load() {
				break fill
			}
			select {
			case e, ok := <-r.ch:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, e)
			case <-r.wake:
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		if !r.write(batch) {
			r.drain()
			return
		}
	}
}

// write stores batch, retrying with backoff. It returns false if the
// recorder was aborted, after counting the batch as dropped.
func (r *Recorder) write(batch []Event) bool {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		err := r.sink.AppendEvents(r.abortCtx, batch)
		if err == nil {
			r.stored.Add(uint64(len(batch)))
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
		r.dropped.Add(uint64(len(batch)))
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
