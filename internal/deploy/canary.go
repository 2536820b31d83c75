package deploy

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"warden/internal/events"
)

// TypeDeployCanary is the event of a canary: started, promoted (success),
// rolled back or aborted (denied), with the figures that decided it.
const TypeDeployCanary = "deploy.canary"

// CanaryMargins say how much worse than the stable version a canary may do
// before it is rolled back.
type CanaryMargins struct {
	// ErrorRate: the canary's share of 5xx answers may exceed the stable
	// version's by this much (0.05 = five percentage points).
	ErrorRate float64 `json:"errorRate"`
	// P99: the canary's 99th percentile latency may be this many times
	// the stable version's.
	P99 float64 `json:"p99"`
	// Signals: the canary's rate of security signals (capability denials,
	// response-check hits, traps, timeouts) may exceed the stable
	// version's by this much (0: any excess rolls it back).
	Signals float64 `json:"signals"`
	// MinRequests is how many requests each side needs before the error
	// rate and latency are compared (security signals are compared from
	// the first request).
	MinRequests int `json:"minRequests"`
}

// DefaultCanaryMargins are used where a deploy gives none.
var DefaultCanaryMargins = CanaryMargins{ErrorRate: 0.05, P99: 2, Signals: 0, MinRequests: 20}

// CanarySpec asks a deploy to start as a canary.
type CanarySpec struct {
	Percent int           // of clients, 1..99
	For     time.Duration // until automatic promotion; 0: 10 minutes
	Margins *CanaryMargins
}

// Canary is a version serving a share of a function's clients beside the
// stable one. Safe for concurrent use.
type Canary struct {
	Stable, Next *Active
	Percent      int
	Started      time.Time
	Until        time.Time
	Margins      CanaryMargins
	StartedBy    string
	stats        [2]sideStats // 0: stable, 1: next
	done         atomic.Bool
}

type sideStats struct {
	requests, errors, signals atomic.Int64
	mu                        sync.Mutex
	lat                       []time.Duration // the last latencySamples
	next                      int
}

const latencySamples = 2048

// Pick returns the version serving clientKey: a hash of the key decides,
// so one client always sees the same version.
func (c *Canary) Pick(clientKey string) *Active {
	h := fnv.New32a()
	h.Write([]byte(c.Next.Key()))
	h.Write([]byte{0})
	h.Write([]byte(clientKey))
	if int(h.Sum32()%100) < c.Percent {
		return c.Next
	}
	return c.Stable
}

func (c *Canary) side(version int) *sideStats {
	if version == c.Next.Version.Version {
		return &c.stats[1]
	}
	if version == c.Stable.Version.Version {
		return &c.stats[0]
	}
	return nil
}

// Record counts one answer of a version: its status and latency.
func (c *Canary) Record(version, status int, d time.Duration) {
	st := c.side(version)
	if st == nil {
		return
	}
	st.requests.Add(1)
	if status >= 500 {
		st.errors.Add(1)
	}
	st.mu.Lock()
	if len(st.lat) < latencySamples {
		st.lat = append(st.lat, d)
	} else {
		st.lat[st.next] = d
		st.next = (st.next + 1) % latencySamples
	}
	st.mu.Unlock()
}

// Signal counts one security signal of a version.
func (c *Canary) Signal(version int) {
	if st := c.side(version); st != nil {
		st.signals.Add(1)
	}
}

// CanaryFigures are one side's figures.
type CanaryFigures struct {
	Version    int     `json:"version"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Signals    int64   `json:"signals"`
	ErrorRate  float64 `json:"errorRate"`
	SignalRate float64 `json:"signalRate"`
	P99MS      float64 `json:"p99Ms"`
}

func (c *Canary) figures(i int, version int) CanaryFigures {
	st := &c.stats[i]
	f := CanaryFigures{Version: version, Requests: st.requests.Load(), Errors: st.errors.Load(), Signals: st.signals.Load()}
	if f.Requests > 0 {
		f.ErrorRate = float64(f.Errors) / float64(f.Requests)
		f.SignalRate = float64(f.Signals) / float64(f.Requests)
	}
	st.mu.Lock()
	lat := slices.Clone(st.lat)
	st.mu.Unlock()
	if len(lat) > 0 {
		slices.Sort(lat)
		f.P99MS = float64(lat[(len(lat)*99)/100]) / float64(time.Millisecond)
	}
	return f
}

// CanaryStatus describes a canary.
type CanaryStatus struct {
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Percent   int           `json:"percent"`
	Started   time.Time     `json:"started"`
	Until     time.Time     `json:"until"`
	StartedBy string        `json:"startedBy"`
	Margins   CanaryMargins `json:"margins"`
	Stable    CanaryFigures `json:"stable"`
	Canary    CanaryFigures `json:"canary"`
}

// Status returns the canary's figures.
func (c *Canary) Status() CanaryStatus {
	return CanaryStatus{Namespace: c.Next.Version.Namespace, Name: c.Next.Version.Name, Percent: c.Percent, Started: c.Started,
		Until: c.Until, StartedBy: c.StartedBy, Margins: c.Margins,
		Stable: c.figures(0, c.Stable.Version.Version), Canary: c.figures(1, c.Next.Version.Version)}
}

// trip says why the canary must be rolled back, or "".
func (c *Canary) trip() string {
	st := c.Status()
	s, n, m := st.Stable, st.Canary, c.Margins
	if n.Requests > 0 && n.SignalRate > s.SignalRate+m.Signals {
		return fmt.Sprintf("security signals: %d in %d requests (%.1f%%) against the stable version's %d in %d (%.1f%%), margin %.1f%%",
			n.Signals, n.Requests, 100*n.SignalRate, s.Signals, s.Requests, 100*s.SignalRate, 100*m.Signals)
	}
	if n.Requests < int64(m.MinRequests) || s.Requests < int64(m.MinRequests) {
		return ""
	}
	if n.ErrorRate > s.ErrorRate+m.ErrorRate {
		return fmt.Sprintf("error rate %.1f%% (%d of %d) against the stable version's %.1f%% (%d of %d), margin %.1f points",
			100*n.ErrorRate, n.Errors, n.Requests, 100*s.ErrorRate, s.Errors, s.Requests, 100*m.ErrorRate)
	}
	if s.P99MS > 0 && n.P99MS > s.P99MS*m.P99 {
		return fmt.Sprintf("p99 latency %.1f ms against the stable version's %.1f ms, margin %.1f×", n.P99MS, s.P99MS, m.P99)
	}
	return ""
}

// Canaries returns the running canaries.
func (s *Service) Canaries() []*Canary {
	var out []*Canary
	for _, a := range s.List() {
		if a.Canary != nil {
			out = append(out, a.Canary)
		}
	}
	return out
}

// CanarySignal counts a security signal of a version (a capability denial
// the capability host reports); a version without a canary ignores it.
func (s *Service) CanarySignal(namespace, name string, version int) {
	if a, ok := s.Get(namespace, name); ok && a.Canary != nil {
		a.Canary.Signal(version)
	}
}

// startCanary installs next beside the active version prev as a canary.
// Called with s.mu held, next bound and loaded, the version stored.
func (s *Service) startCanary(cur *state, k string, prev, next *Active, spec CanarySpec, o Origin) (*Canary, error) {
	margins := DefaultCanaryMargins
	if spec.Margins != nil {
		margins = *spec.Margins
	}
	d := spec.For
	if d <= 0 {
		d = 10 * time.Minute
	}
	now := s.now()
	stable := *prev
	c := &Canary{Stable: &stable, Next: next, Percent: spec.Percent, Started: now, Until: now.Add(d), Margins: margins, StartedBy: o.Actor}
	stable.Canary = c
	active := with(cur.active, k, &stable)
	routes, err := buildRoutes(active, k)
	if err != nil {
		return nil, err
	}
	s.cur.Store(&state{active: active, routes: routes})
	return c, nil
}

// EndCanary promotes (the canary becomes the active version) or rolls back
// (the stable version serves everyone, the canary's module is released) a
// function's canary; reason and the figures go into the event.
func (s *Service) EndCanary(ctx context.Context, namespace, name string, promote bool, reason string, o Origin) (CanaryStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(namespace, name)
	cur := s.cur.Load()
	a := cur.active[k]
	if a == nil || a.Canary == nil || !a.Canary.done.CompareAndSwap(false, true) {
		return CanaryStatus{}, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("%s has no canary", k)}
	}
	c := a.Canary
	st := c.Status()
	labels := map[string]string{
		"canary.version": strconv.Itoa(c.Next.Version.Version), "stable.version": strconv.Itoa(c.Stable.Version.Version),
		"canary.requests": strconv.FormatInt(st.Canary.Requests, 10), "stable.requests": strconv.FormatInt(st.Stable.Requests, 10),
		"canary.errors": strconv.FormatInt(st.Canary.Errors, 10), "canary.signals": strconv.FormatInt(st.Canary.Signals, 10),
		"stable.signals": strconv.FormatInt(st.Stable.Signals, 10),
		"canary.p99_ms":  strconv.FormatFloat(st.Canary.P99MS, 'f', 1, 64), "stable.p99_ms": strconv.FormatFloat(st.Stable.P99MS, 'f', 1, 64),
	}
	if promote {
		if err := s.cfg.Store.Activate(ctx, namespace, name, c.Next.Version.Version); err != nil {
			c.done.Store(false)
			return st, &Error{Msg: "promote failed; the canary keeps running", Err: err}
		}
		next := *c.Next
		active := with(cur.active, k, &next)
		routes, err := buildRoutes(active, k)
		if err != nil {
			c.done.Store(false)
			return st, &Error{Kind: KindConflict, Msg: err.Error(), Err: err}
		}
		s.cur.Store(&state{active: active, routes: routes})
		go c.Stable.Fn.Close()
		labels["decision"] = "promote"
		s.emitLabels(TypeDeployCanary, events.OutcomeSuccess, "promoted: "+reason, namespace, name, c.Next.Version.Version, o, labels)
		return st, nil
	}
	stable := *c.Stable
	stable.Canary = nil
	active := with(cur.active, k, &stable)
	routes, err := buildRoutes(active, k)
	if err != nil {
		c.done.Store(false)
		return st, err
	}
	s.cur.Store(&state{active: active, routes: routes})
	go c.Next.Fn.Close()
	labels["decision"] = "rollback"
	s.emitLabels(TypeDeployCanary, events.OutcomeDenied, "rolled back: "+reason, namespace, name, c.Next.Version.Version, o, labels)
	return st, nil
}

// WatchCanaries checks every running canary each interval until ctx ends:
// one that trips a margin is rolled back at once, one whose time is up
// is promoted.
func (s *Service) WatchCanaries(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.CheckCanaries(ctx)
	}
}

// CheckCanaries decides every running canary once.
func (s *Service) CheckCanaries(ctx context.Context) {
	warden := Origin{Actor: "warden"}
	for _, c := range s.Canaries() {
		ns, name := c.Next.Version.Namespace, c.Next.Version.Name
		if why := c.trip(); why != "" {
			if _, err := s.EndCanary(ctx, ns, name, false, why, warden); err != nil {
				s.log.Error("canary rollback failed", "function", key(ns, name), "err", err)
			}
			continue
		}
		if !s.now().Before(c.Until) {
			if _, err := s.EndCanary(ctx, ns, name, true, "its time is up with every figure within its margins", warden); err != nil {
				s.log.Error("canary promotion failed", "function", key(ns, name), "err", err)
			}
		}
	}
}
