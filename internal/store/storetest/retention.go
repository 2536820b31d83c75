package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"warden/internal/events"
	"warden/internal/store"
)

const day = 24 * time.Hour

// refusalAt is a request-class event at t. Events made by refusalAt (and by
// auditAt) differ only in their time, in whole seconds, so that each has
// the same stored size.
func refusalAt(t time.Time, marker string) events.Event {
	return events.Event{Time: t, Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied, Reason: "invalid API key " + marker,
		SourceIP: "192.0.2.1", Namespace: "default", Function: "orders", Version: 1, RequestID: "req-0123456789"}
}

// auditAt is an audit-class event at t.
func auditAt(t time.Time, marker string) events.Event {
	return events.Event{Time: t, Type: events.TypeFunctionDeploy, Outcome: events.OutcomeSuccess, Actor: "alice " + marker,
		Namespace: "default", Function: "orders", Version: 2}
}

func eventsSize(t *testing.T, s store.Store) int64 {
	t.Helper()
	n, err := s.EventsSize(ctx(t))
	if err != nil {
		t.Fatalf("EventsSize = %v", err)
	}
	return n
}

func prune(t *testing.T, s store.Store, p store.PrunePolicy) store.PruneResult {
	t.Helper()
	res, err := s.PruneEvents(ctx(t), p)
	if err != nil {
		t.Fatalf("PruneEvents(%+v) = %v", p, err)
	}
	return res
}

// appendEach appends evs and returns the size each one added to EventsSize.
func appendEach(t *testing.T, s store.Store, evs ...events.Event) []int64 {
	t.Helper()
	sizes := make([]int64, len(evs))
	for i := range evs {
		before := eventsSize(t, s)
		appendEvents(t, s, evs[i:i+1])
		sizes[i] = eventsSize(t, s) - before
	}
	return sizes
}

func testEventsSize(t *testing.T, s store.Store) {
	if n := eventsSize(t, s); n != 0 {
		t.Errorf("EventsSize of an empty store = %d, want 0", n)
	}
	small := appendEach(t, s, refusalAt(base, "x"))[0]
	big := refusalAt(base, "x"+strings.Repeat("y", 1000))
	large := appendEach(t, s, big)[0]
	if small <= 0 || large < small+1000 {
		t.Errorf("sizes of a small and a 1000-byte larger event = %d, %d; want positive, and the second at least 1000 more", small, large)
	}
	// Same content, same size; a batch counts like its events one by one.
	batch := []events.Event{refusalAt(base.Add(time.Second), "x"), refusalAt(base.Add(2*time.Second), "x")}
	before := eventsSize(t, s)
	appendEvents(t, s, batch)
	if got := eventsSize(t, s) - before; got != 2*small {
		t.Errorf("a batch of two events like the first added %d, want %d", got, 2*small)
	}
}

func testPruneByAge(t *testing.T, s store.Store) {
	now := base
	evs := appendEvents(t, s, []events.Event{
		refusalAt(now.Add(-31*day), "r-old"),                                          // 0 deleted: request, older than 30d
		auditAt(now.Add(-31*day), "a-31d"),                                            // 1 kept: audit, younger than 400d
		refusalAt(now.Add(-29*day), "r-new"),                                          // 2 kept
		auditAt(now.Add(-401*day), "a-old"),                                           // 3 deleted
		refusalAt(now.Add(-40*day), "r-older"),                                        // 4 deleted: later id, older time
		refusalAt(now.Add(-30*day), "r-at-cutoff"),                                    // 5 kept: not older than 30d
		auditAt(now.Add(-time.Hour), "a-new"),                                         // 6 kept
		{Time: now.Add(-45 * day), Type: "limit.rate", Outcome: events.OutcomeDenied}, // 7 deleted: limit.* is request class
	})
	before := eventsSize(t, s)
	p := store.PrunePolicy{Now: now, RequestMaxAge: 30 * day, AuditMaxAge: 400 * day}
	res := prune(t, s, p)

	want := []int64{evs[1].ID, evs[2].ID, evs[5].ID, evs[6].ID}
	if got := ids(query(t, s, store.EventQuery{})); !slices.Equal(got, want) {
		t.Errorf("after pruning by age, IDs %v remain, want %v", got, want)
	}
	if r := res.Request; r.Events != 3 || r.FirstID != evs[0].ID || r.LastID != evs[7].ID || r.Bytes <= 0 {
		t.Errorf("Request = %+v, want 3 events, ids %d..%d, bytes > 0", r, evs[0].ID, evs[7].ID)
	}
	if a := res.Audit; a.Events != 1 || a.FirstID != evs[3].ID || a.LastID != evs[3].ID || a.Bytes <= 0 {
		t.Errorf("Audit = %+v, want 1 event, id %d, bytes > 0", a, evs[3].ID)
	}
	after := eventsSize(t, s)
	if res.Size != after || before-after != res.Request.Bytes+res.Audit.Bytes {
		t.Errorf("size %d before, %d after, result %+v: want Size = after and before-after = bytes freed", before, after, res)
	}
	if res.Deleted() != 4 || res.Batches < 2 {
		t.Errorf("Deleted() = %d, Batches = %d; want 4 and at least one batch per class", res.Deleted(), res.Batches)
	}
	if again := prune(t, s, p); again.Deleted() != 0 || again.Batches != 0 || again.Size != after {
		t.Errorf("pruning again = %+v, want nothing deleted and Size %d", again, after)
	}
	// Each age applies to its class only.
	if res := prune(t, s, store.PrunePolicy{Now: now, AuditMaxAge: time.Minute}); res.Request.Events != 0 || res.Audit.Events != 2 {
		t.Errorf("AuditMaxAge alone = %+v, want only the 2 audit events deleted", res)
	}
}

// By size: the oldest request-class events go first, even when audit-class
// events are older; audit-class ones only once no request-class one is left.
func testPruneBySize(t *testing.T, s store.Store) {
	var reqs, audits []events.Event
	for i := range 6 {
		reqs = append(reqs, refusalAt(base.Add(time.Duration(i-10)*day), "r"))
	}
	for i := range 4 {
		audits = append(audits, auditAt(base.Add(time.Duration(i-20)*day), "a"))
	}
	rs := appendEach(t, s, reqs...)
	as := appendEach(t, s, audits...)
	R, A := rs[0], as[0]
	for _, n := range append(rs, as...)[1:] {
		if n != R && n != A {
			t.Fatalf("event sizes %v %v: want one size per class (test setup)", rs, as)
		}
	}
	total := eventsSize(t, s)

	// Free 2.5 request events' worth: the 3 oldest request events go.
	limit := total - 5*R/2
	res := prune(t, s, store.PrunePolicy{MaxBytes: limit})
	if res.Request.Events != 3 || res.Audit.Events != 0 || res.Request.Bytes != 3*R {
		t.Errorf("MaxBytes %d = %+v, want the 3 oldest request events (%d bytes) and no audit event", limit, res, 3*R)
	}
	if res.Size > limit || res.Size != total-3*R {
		t.Errorf("Size after = %d, want %d (at most MaxBytes %d)", res.Size, total-3*R, limit)
	}
	left := query(t, s, store.EventQuery{Type: events.TypeRouteAuth})
	if got, want := ids(left), []int64{reqs[3].ID, reqs[4].ID, reqs[5].ID}; !slices.Equal(got, want) {
		t.Errorf("request events left %v, want the newest three %v", got, want)
	}

	// Under the bound: nothing to do.
	if res := prune(t, s, store.PrunePolicy{MaxBytes: total}); res.Deleted() != 0 {
		t.Errorf("MaxBytes above the size = %+v, want nothing deleted", res)
	}

	// Below what the audit events alone hold: every request event, then
	// the oldest audit events until the rest fits.
	limit = 4*A - 3*A/2
	res = prune(t, s, store.PrunePolicy{MaxBytes: limit})
	if res.Request.Events != 3 || res.Audit.Events != 2 || res.Audit.FirstID != audits[0].ID || res.Audit.LastID != audits[1].ID {
		t.Errorf("MaxBytes %d = %+v, want the 3 request events and the 2 oldest audit events (ids %d..%d)",
			limit, res, audits[0].ID, audits[1].ID)
	}
	if got, want := ids(query(t, s, store.EventQuery{})), []int64{audits[2].ID, audits[3].ID}; !slices.Equal(got, want) {
		t.Errorf("events left %v, want the newest two audit events %v", got, want)
	}
	if res.Size != 2*A || eventsSize(t, s) != 2*A {
		t.Errorf("Size after = %d, EventsSize = %d; want %d", res.Size, eventsSize(t, s), 2*A)
	}
}

func testPruneBatches(t *testing.T, s store.Store) {
	var evs []events.Event
	for i := range 10 {
		evs = append(evs, refusalAt(base.Add(time.Duration(i)*time.Second), fmt.Sprint(i)))
	}
	appendEvents(t, s, evs)
	res := prune(t, s, store.PrunePolicy{Now: base.Add(time.Hour), RequestMaxAge: time.Minute, BatchSize: 3})
	if res.Request.Events != 10 || res.Batches != 4 {
		t.Errorf("10 old events with BatchSize 3 = %+v, want 10 deleted in 4 batches", res)
	}
	for i := range 7 {
		appendEvents(t, s, []events.Event{auditAt(base.Add(time.Duration(i)*time.Second), "a")})
	}
	res = prune(t, s, store.PrunePolicy{MaxBytes: 1, BatchSize: 2})
	if res.Audit.Events != 7 || res.Batches != 4 || res.Size != 0 {
		t.Errorf("7 events over MaxBytes with BatchSize 2 = %+v, want 7 deleted in 4 batches and Size 0", res)
	}
}

// Ids of pruned events are never given again, also when the newest ones
// were pruned.
func testPruneNeverReusesIDs(t *testing.T, s store.Store) {
	var evs []events.Event
	for i := range 5 {
		evs = append(evs, refusalAt(base.Add(time.Duration(i)*time.Second), "x"))
	}
	appendEvents(t, s, evs)
	res := prune(t, s, store.PrunePolicy{MaxBytes: 1})
	if res.Deleted() != 5 || res.Request.LastID != evs[4].ID || len(query(t, s, store.EventQuery{})) != 0 {
		t.Fatalf("pruning everything = %+v, want all 5 deleted up to id %d", res, evs[4].ID)
	}
	next := appendEvents(t, s, []events.Event{refusalAt(base, "y")})
	if next[0].ID <= evs[4].ID {
		t.Errorf("id after pruning ids up to %d = %d, want greater (never reused)", evs[4].ID, next[0].ID)
	}
}

func testPrunePolicyErrors(t *testing.T, s store.Store) {
	appendEvents(t, s, []events.Event{refusalAt(base.Add(-365*day), "x"), auditAt(base.Add(-1000*day), "x")})
	for _, p := range []store.PrunePolicy{
		{RequestMaxAge: -time.Second}, {AuditMaxAge: -time.Second}, {MaxBytes: -1}, {BatchSize: -1},
	} {
		if _, err := s.PruneEvents(ctx(t), p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PruneEvents(%+v) = %v, want ErrInvalid", p, err)
		}
	}
	if res := prune(t, s, store.PrunePolicy{}); res.Deleted() != 0 {
		t.Errorf("PruneEvents(zero policy) = %+v, want nothing deleted", res)
	}
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	if res, err := s.PruneEvents(c, store.PrunePolicy{Now: base, RequestMaxAge: day, AuditMaxAge: day}); !errors.Is(err, context.Canceled) || res.Deleted() != 0 {
		t.Errorf("PruneEvents(canceled) = %+v, %v; want nothing deleted and context.Canceled", res, err)
	}
	if got := len(query(t, s, store.EventQuery{})); got != 2 {
		t.Errorf("%d events left after refused prunes, want 2", got)
	}
}

// The record of a pruning names counts, bytes and id bounds, never the
// pruned events' contents, and is itself audit-class.
func testPruneRecord(t *testing.T, s store.Store) {
	evs := appendEvents(t, s, []events.Event{
		refusalAt(base.Add(-60*day), "marker-request"), auditAt(base.Add(-500*day), "marker-audit"),
	})
	p := store.PrunePolicy{Now: base, RequestMaxAge: 30 * day, AuditMaxAge: 400 * day}
	res := prune(t, s, p)
	e := res.Event(p)
	if e.Type != events.TypeEventsPrune || events.ClassOf(e.Type) != events.ClassAudit || e.Outcome != events.OutcomeSuccess {
		t.Errorf("prune record = %+v, want type %s, audit class, success", e, events.TypeEventsPrune)
	}
	want := map[string]string{
		"prune.request.events": "1", "prune.request.first_id": fmt.Sprint(evs[0].ID), "prune.request.last_id": fmt.Sprint(evs[0].ID),
		"prune.audit.events": "1", "prune.audit.first_id": fmt.Sprint(evs[1].ID), "prune.audit.last_id": fmt.Sprint(evs[1].ID),
		"prune.request.bytes": fmt.Sprint(res.Request.Bytes), "prune.audit.bytes": fmt.Sprint(res.Audit.Bytes),
		"prune.batches": fmt.Sprint(res.Batches), "policy.request_age": (30 * day).String(),
	}
	for k, v := range want {
		if e.Labels[k] != v {
			t.Errorf("prune record label %s = %q, want %q", k, e.Labels[k], v)
		}
	}
	if s := fmt.Sprintf("%+v", e); strings.Contains(s, "marker") {
		t.Errorf("prune record %s holds pruned content", s)
	}
	// Stored, it survives the pruning of what it describes.
	e.Time = base
	appendEvents(t, s, []events.Event{e})
	if res := prune(t, s, p); res.Deleted() != 0 || len(query(t, s, store.EventQuery{Type: events.TypeEventsPrune})) != 1 {
		t.Errorf("pruning again = %+v, want the fresh prune record kept", res)
	}
}
