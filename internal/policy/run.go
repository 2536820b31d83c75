package policy

import (
	"context"
	"fmt"
	"runtime"
)

// limiter bounds the evaluations in flight, counting those abandoned at
// their deadline until they actually stop.
type limiter chan struct{}

// evaluations is shared by every Policy: abandoned evaluations can keep at
// most GOMAXPROCS (at least 2) goroutines busy, however many deploys try.
var evaluations = make(limiter, max(2, runtime.GOMAXPROCS(0)))

// run calls f in a goroutine holding a slot of l and returns its result, or
// ctx's cause as soon as ctx is done, whether or not f has returned.
//
// OPA checks for cancellation between evaluation steps, not inside a
// builtin call, and one call can run far past the deadline (json.marshal of
// a value built by sharing one array many times over, say). run returns on
// time anyway, so the caller's deadline holds and the deploy is refused; the
// abandoned call keeps its slot until it ends, so runaway policies cannot
// pile up goroutines without bound: once every slot is taken, run waits
// for one until ctx is done.
//
// A panic in f is returned as an error rather than crashing the process.
func run[T any](ctx context.Context, l limiter, f func() (T, error)) (T, error) {
	var zero T
	select {
	case l <- struct{}{}:
	case <-ctx.Done():
		return zero, fmt.Errorf("no evaluation slot free (%d in flight): %w", cap(l), context.Cause(ctx))
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r = result{err: fmt.Errorf("policy evaluation panicked: %v", p)}
				}
			}()
			r.v, r.err = f()
		}()
		<-l // free the slot before the caller can ask for another
		done <- r
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, context.Cause(ctx)
	}
}
