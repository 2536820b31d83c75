package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestInvocationCtx: the lazily armed context says what
// context.WithTimeoutCause would, armed or not.
func TestInvocationCtx(t *testing.T) {
	cs := &callState{}
	t.Run("values and deadline", func(t *testing.T) {
		type k struct{}
		parent := context.WithValue(context.Background(), k{}, "v")
		c := newInvocationCtx(parent, time.Hour, cs)
		defer c.stop()
		if c.Value(k{}) != "v" || callStateFrom(c) != cs {
			t.Error("values of the parent or the call state are lost")
		}
		if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
			t.Errorf("Deadline = %v, %v; want in about an hour", d, ok)
		}
		early, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if d, _ := newInvocationCtx(early, time.Hour, cs).Deadline(); time.Until(d) > 2*time.Minute {
			t.Errorf("Deadline = %v, want the parent's earlier one", d)
		}
		if c.Err() != nil || invocationCause(c) != nil {
			t.Errorf("Err, cause = %v, %v before the deadline", c.Err(), invocationCause(c))
		}
	})
	for _, armed := range []bool{false, true} {
		name := map[bool]string{false: "unarmed", true: "armed"}[armed]
		t.Run("deadline passes, "+name, func(t *testing.T) {
			c := newInvocationCtx(context.Background(), 20*time.Millisecond, cs)
			defer c.stop()
			if armed {
				select {
				case <-c.Done():
					t.Fatal("done before the deadline")
				default:
				}
			}
			time.Sleep(40 * time.Millisecond)
			if !errors.Is(c.Err(), context.DeadlineExceeded) || invocationCause(c) != errTimeout {
				t.Errorf("Err, cause = %v, %v; want DeadlineExceeded, errTimeout", c.Err(), invocationCause(c))
			}
			select {
			case <-c.Done():
			case <-time.After(time.Second):
				t.Error("Done not closed after the deadline")
			}
			// A context derived from it (as the wagi path derives one)
			// sees the same cause.
			d, cancel := context.WithCancelCause(c)
			defer cancel(nil)
			if invocationCause(d) != errTimeout || !errors.Is(d.Err(), context.DeadlineExceeded) {
				t.Errorf("derived: Err, cause = %v, %v", d.Err(), invocationCause(d))
			}
		})
		t.Run("parent canceled, "+name, func(t *testing.T) {
			parent, cancel := context.WithCancel(context.Background())
			c := newInvocationCtx(parent, time.Hour, cs)
			defer c.stop()
			if armed {
				c.Done()
			}
			cancel()
			if !errors.Is(c.Err(), context.Canceled) || invocationCause(c) != context.Canceled {
				t.Errorf("Err, cause = %v, %v; want Canceled", c.Err(), invocationCause(c))
			}
			select {
			case <-c.Done():
			case <-time.After(time.Second):
				t.Error("Done not closed after the parent's cancel")
			}
		})
	}
}
