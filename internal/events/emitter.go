package events

import (
	"maps"
	"sync"
	"time"
)

// Emitter is what producers of events depend on.
//
// # Notes
//   - Emit is safe for concurrent use and never returns an error: delivery
//     is the implementation's job.
//   - Emit takes ownership of e.Labels; the caller must not modify the map
//     afterwards.
//   - Emit may block (backpressure) but never drops a security event
//     silently.
type Emitter interface {
	Emit(Event)
}

// Discard is an Emitter that drops every event. Use it only where events are
// deliberately not wanted (benchmarks, tools); tests should prefer Memory so
// that they can assert on what was emitted.
var Discard Emitter = discard{}

type discard struct{}

func (discard) Emit(Event) {}

// Memory is an Emitter that keeps every event in memory, in emit order, for
// tests. It is safe for concurrent use. The zero value is not usable; call
// NewMemory.
type Memory struct {
	mu  sync.Mutex
	evs []Event
}

var (
	_ Emitter = (*Memory)(nil)
	_ Emitter = discard{}
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

// Reset forgets every recorded event.
func (m *Memory) Reset() {
	m.mu.Lock()
	m.evs = nil
	m.mu.Unlock()
}
