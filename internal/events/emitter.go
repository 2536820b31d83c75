package events

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// ErrUnavailable is returned (wrapped) by TryEmit and Health when the event
// pipeline cannot accept an event now: its buffer is above its high-water
// mark, its sink has been failing for too long, or it is closed. The
// wrapping error's text says which, and is safe to show to a client: it
// never holds an event's contents or the sink's internal error.
//
// A caller that gets it fails closed: the request that caused the event is
// answered 503, an admin change is refused.
var ErrUnavailable = errors.New("event pipeline unavailable")

// Emitter is what producers of events depend on.
//
// # Notes
//   - Emit is safe for concurrent use and never returns an error: delivery
//     is the implementation's job. Use it where the caller cannot act on a
//     failure (the decision is already made, for example an admin change
//     already committed); use Checked.TryEmit where it can refuse instead.
//   - Emit takes ownership of e.Labels; the caller must not modify the map
//     afterwards.
//   - Emit may wait for buffer room, but only for a bounded time (see
//     Recorder); it never drops a security event silently: a loss is
//     counted, logged and, for the Recorder, itself stored as an event.
type Emitter interface {
	Emit(Event)
}

// Checked is an Emitter that lets a caller fail closed when the pipeline
// cannot accept: the gateway calls TryEmit for the event of a request and
// answers 503 on ErrUnavailable; the admin API asks Health before a change
// and refuses it when the pipeline is unhealthy.
//
// # Notes
//   - TryEmit either accepts e (same ownership and delivery as Emit) and
//     returns nil, or does not take it and returns an error wrapping
//     ErrUnavailable. It waits for room only for a bounded time.
//   - Health returns nil when TryEmit would accept now, else an error
//     wrapping ErrUnavailable whose text names the reason.
//   - Both are safe for concurrent use and cheap (no I/O).
type Checked interface {
	Emitter
	TryEmit(Event) error
	Health() error
}

// Discard is an Emitter that drops every event and is always healthy. Use
// it only where events are deliberately not wanted (benchmarks, tools);
// tests should prefer Memory so that they can assert on what was emitted.
var Discard Checked = discard{}

type discard struct{}

func (discard) Emit(Event)          {}
func (discard) TryEmit(Event) error { return nil }
func (discard) Health() error       { return nil }

// Memory is an Emitter that keeps every event in memory, in emit order, for
// tests. It is safe for concurrent use. The zero value is not usable; call
// NewMemory.
//
// SetUnavailable simulates a pipeline that cannot accept: TryEmit then
// refuses (and does not record), Health reports the reason, and plain Emit
// still records, as a Recorder with buffer room left above its high-water
// mark would.
type Memory struct {
	mu          sync.Mutex
	evs         []Event
	unavailable string // "" while healthy
	refused     int
}

var (
	_ Checked = (*Memory)(nil)
	_ Checked = discard{}
)

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{} }

// Emit records a copy of e (Labels cloned). A zero Time is set to the current
// time in UTC.
func (m *Memory) Emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Labels = maps.Clone(e.Labels)
	m.mu.Lock()
	m.evs = append(m.evs, e)
	m.mu.Unlock()
}

// TryEmit records e like Emit, or, while SetUnavailable is in effect,
// counts a refusal and returns an error wrapping ErrUnavailable.
func (m *Memory) TryEmit(e Event) error {
	m.mu.Lock()
	if m.unavailable != "" {
		m.refused++
		reason := m.unavailable
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnavailable, reason)
	}
	m.mu.Unlock()
	m.Emit(e)
	return nil
}

// Health returns nil, or while SetUnavailable is in effect an error
// wrapping ErrUnavailable.
func (m *Memory) Health() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unavailable != "" {
		return fmt.Errorf("%w: %s", ErrUnavailable, m.unavailable)
	}
	return nil
}

// SetUnavailable makes TryEmit refuse and Health fail with reason; an empty
// reason makes m healthy again.
func (m *Memory) SetUnavailable(reason string) {
	m.mu.Lock()
	m.unavailable = reason
	m.mu.Unlock()
}

// Refused returns how many TryEmit calls were refused.
func (m *Memory) Refused() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused
}

// Events returns a copy of the recorded events, oldest first.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Event, len(m.evs))
	for i, e := range m.evs {
		e.Labels = maps.Clone(e.Labels)
		out[i] = e
	}
	return out
}

// Types returns the Type of each recorded event, oldest first.
func (m *Memory) Types() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.evs))
	for i, e := range m.evs {
		out[i] = e.Type
	}
	return out
}

// Reset forgets every recorded event and the refusal count (not the
// SetUnavailable state).
func (m *Memory) Reset() {
	m.mu.Lock()
	m.evs = nil
	m.refused = 0
	m.mu.Unlock()
}
