package sandbox

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// invocationCtx is an invocation's context: its parent's values and
// cancellation, the call state (callStateKey) and the function's time
// limit.
//
// context.WithTimeoutCause costs a timer, a registration with the parent's
// cancellation and about 900 bytes per invocation, a few percent of a small
// request, while most invocations never wait on Done: metered guests check
// Err at their yields and a guest without host calls never blocks. So the
// timer context is created only when Done is first asked for (a host call
// that blocks, a wait for an instance, an unmetered guest); until then Err
// answers from the clock and the parent. Err, Done and Cause say the same
// as a context.WithTimeoutCause(parent, limit, errTimeout) would, except
// that before Done is asked for, context.Cause cannot see the deadline:
// use invocationCause.
type invocationCtx struct {
	parent context.Context
	at     time.Time
	cs     *callState

	armMu sync.Mutex
	armed atomic.Pointer[armedCtx]
}

type armedCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

type invocationCtxKey struct{}

func newInvocationCtx(parent context.Context, limit time.Duration, cs *callState) *invocationCtx {
	return &invocationCtx{parent: parent, at: time.Now().Add(limit), cs: cs}
}

func (c *invocationCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.at) {
		return d, true
	}
	return c.at, true
}

func (c *invocationCtx) Done() <-chan struct{} { return c.arm().Done() }

func (c *invocationCtx) Err() error {
	if a := c.armed.Load(); a != nil {
		return a.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.at) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *invocationCtx) Value(key any) any {
	switch key.(type) {
	case callStateKey:
		return c.cs
	case invocationCtxKey:
		return c
	}
	if a := c.armed.Load(); a != nil {
		return a.ctx.Value(key) // context.Cause finds the timer context's cause
	}
	return c.parent.Value(key)
}

// arm returns the timer context, creating it on first use.
func (c *invocationCtx) arm() context.Context {
	if a := c.armed.Load(); a != nil {
		return a.ctx
	}
	c.armMu.Lock()
	defer c.armMu.Unlock()
	if a := c.armed.Load(); a != nil {
		return a.ctx
	}
	ctx, cancel := context.WithDeadlineCause(c.parent, c.at, errTimeout)
	c.armed.Store(&armedCtx{ctx: ctx, cancel: cancel})
	return ctx
}

// stop releases the timer context, if there is one.
func (c *invocationCtx) stop() {
	if a := c.armed.Load(); a != nil {
		a.cancel()
	}
}

// cause is context.Cause for this context.
func (c *invocationCtx) cause() error {
	if a := c.armed.Load(); a != nil {
		return context.Cause(a.ctx)
	}
	if err := c.parent.Err(); err != nil {
		return context.Cause(c.parent)
	}
	if !time.Now().Before(c.at) {
		return errTimeout
	}
	return nil
}

// invocationCause is context.Cause for ctx, which may be (or be derived
// from) an invocationCtx.
func invocationCause(ctx context.Context) error {
	if c, ok := ctx.Value(invocationCtxKey{}).(*invocationCtx); ok {
		return c.cause()
	}
	return context.Cause(ctx)
}
