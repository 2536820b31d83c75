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

// pad makes an event's stored size many times that of an events.prune
// record, so that a size bound counts whole events: the record a batch
// writes is smaller than half such an event.
var pad = strings.Repeat("p", 4000)

// records returns the stored events.prune records, oldest first.
func records(t *testing.T, s store.Store) []events.Event {
	t.Helper()
	return query(t, s, store.EventQuery{Type: events.TypeEventsPrune, Limit: store.MaxEventLimit})
}

// contentIDs returns the ids of the stored events other than events.prune
// records.
func contentIDs(t *testing.T, s store.Store) []int64 {
	t.Helper()
	var out []int64
	for _, e := range query(t, s, store.EventQuery{Limit: store.MaxEventLimit}) {
		if e.Type != events.TypeEventsPrune {
			out = append(out, e.ID)
		}
	}
	return out
}

// storedSizes returns the size each of evs holds in s, by appending a copy
// of each (same content, so the same size: see testEventsSize). The copies
// stay stored, so tests call it last.
func storedSizes(t *testing.T, s store.Store, evs []events.Event) []int64 {
	t.Helper()
	return appendEach(t, s, slices.Clone(evs)...)
}

// checkRecord checks that e is the events.prune record of one batch that
// deleted want of class, written at now, and holds no pruned content.
func checkRecord(t *testing.T, e events.Event, now time.Time, class events.Class, want store.Pruned) {
	t.Helper()
	if e.Type != events.TypeEventsPrune || events.ClassOf(e.Type) != events.ClassAudit || e.Outcome != events.OutcomeSuccess || !e.Time.Equal(now) {
		t.Errorf("record %d = type %s, outcome %s, time %v; want %s (audit class), %s, %v",
			e.ID, e.Type, e.Outcome, e.Time, events.TypeEventsPrune, events.OutcomeSuccess, now)
	}
	other := events.ClassAudit
	if class == events.ClassAudit {
		other = events.ClassRequest
	}
	pre, zero := "prune."+string(class)+".", "prune."+string(other)+"."
	labels := map[string]string{
		"prune.batches": "1",
		pre + "events":  fmt.Sprint(want.Events), pre + "bytes": fmt.Sprint(want.Bytes),
		pre + "first_id": fmt.Sprint(want.FirstID), pre + "last_id": fmt.Sprint(want.LastID),
		zero + "events": "0", zero + "bytes": "0", zero + "first_id": "0", zero + "last_id": "0",
	}
	for k, v := range labels {
		if e.Labels[k] != v {
			t.Errorf("record %d label %s = %q, want %q", e.ID, k, e.Labels[k], v)
		}
	}
	if s := fmt.Sprintf("%+v", e); strings.Contains(s, "marker") {
		t.Errorf("record %s holds pruned content", s)
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

	if got, want := contentIDs(t, s), []int64{evs[1].ID, evs[2].ID, evs[5].ID, evs[6].ID}; !slices.Equal(got, want) {
		t.Errorf("after pruning by age, IDs %v remain besides records, want %v", got, want)
	}
	if r := res.Request; r.Events != 3 || r.FirstID != evs[0].ID || r.LastID != evs[7].ID || r.Bytes <= 0 {
		t.Errorf("Request = %+v, want 3 events, ids %d..%d, bytes > 0", r, evs[0].ID, evs[7].ID)
	}
	if a := res.Audit; a.Events != 1 || a.FirstID != evs[3].ID || a.LastID != evs[3].ID || a.Bytes <= 0 {
		t.Errorf("Audit = %+v, want 1 event, id %d, bytes > 0", a, evs[3].ID)
	}
	if res.Deleted() != 4 || res.Batches != 2 {
		t.Errorf("Deleted() = %d, Batches = %d; want 4 and one batch per class", res.Deleted(), res.Batches)
	}
	// One record per batch, written after what it describes and at Now, so
	// that the audit-age step of the same call does not take the record of
	// the request-age step.
	recs := records(t, s)
	if len(recs) != 2 {
		t.Fatalf("%d prune records stored, want 2 (one per batch)", len(recs))
	}
	checkRecord(t, recs[0], now, events.ClassRequest, res.Request)
	checkRecord(t, recs[1], now, events.ClassAudit, res.Audit)
	if recs[0].ID <= evs[7].ID {
		t.Errorf("first record id %d, want above every event's (%d)", recs[0].ID, evs[7].ID)
	}
	after := eventsSize(t, s)
	if res.Size != after {
		t.Errorf("Size = %d, EventsSize = %d; want equal", res.Size, after)
	}

	if again := prune(t, s, p); again.Deleted() != 0 || again.Batches != 0 || again.Size != after || len(records(t, s)) != 2 {
		t.Errorf("pruning again = %+v, %d records; want nothing deleted, Size %d and no new record", again, len(records(t, s)), after)
	}
	// Each age applies to its class only; records written at now are not
	// older than a minute.
	res2 := prune(t, s, store.PrunePolicy{Now: now, AuditMaxAge: time.Minute})
	if res2.Request.Events != 0 || res2.Audit.Events != 2 || res2.Audit.FirstID != evs[1].ID || res2.Audit.LastID != evs[6].ID {
		t.Errorf("AuditMaxAge alone = %+v, want only the 2 audit events (ids %d, %d) deleted", res2, evs[1].ID, evs[6].ID)
	}
	if n := len(records(t, s)); n != 3 {
		t.Errorf("%d records after a third pruning, want 3", n)
	}

	// Size counts the records: what pruning freed, less what the records
	// hold.
	rs := storedSizes(t, s, recs)
	if want := before - res.Request.Bytes - res.Audit.Bytes + rs[0] + rs[1]; after != want {
		t.Errorf("size after pruning = %d, want %d (%d before, %d freed, records of %v bytes)",
			after, want, before, res.Request.Bytes+res.Audit.Bytes, rs)
	}
}

// By size: the oldest request-class events go first, even when audit-class
// events are older; audit-class ones only once no request-class one is left.
// The bound counts the records the batches write.
func testPruneBySize(t *testing.T, s store.Store) {
	var reqs, audits []events.Event
	for i := range 6 {
		reqs = append(reqs, refusalAt(base.Add(time.Duration(i-10)*day), "r"+pad))
	}
	for i := range 4 {
		audits = append(audits, auditAt(base.Add(time.Duration(i-20)*day), "a"+pad))
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

	// Free 2.5 request events' worth and room for the record: the 3 oldest
	// request events go, in one batch.
	limit := total - 5*R/2
	res := prune(t, s, store.PrunePolicy{MaxBytes: limit})
	if res.Request.Events != 3 || res.Audit.Events != 0 || res.Request.Bytes != 3*R || res.Batches != 1 {
		t.Errorf("MaxBytes %d = %+v, want the 3 oldest request events (%d bytes) in 1 batch and no audit event", limit, res, 3*R)
	}
	rec := res.Size - (total - 3*R) // the record's size
	if res.Size > limit || res.Size != eventsSize(t, s) || rec <= 0 || rec >= R/2 {
		t.Fatalf("Size after = %d, EventsSize %d: want at most MaxBytes %d, and %d plus a record of less than %d bytes",
			res.Size, eventsSize(t, s), limit, total-3*R, R/2)
	}
	if got, want := contentIDs(t, s), []int64{reqs[3].ID, reqs[4].ID, reqs[5].ID, audits[0].ID, audits[1].ID, audits[2].ID, audits[3].ID}; !slices.Equal(got, want) {
		t.Errorf("events left %v, want the newest three request events and the audit events %v", got, want)
	}

	// At the bound: nothing to do, and no record.
	if again := prune(t, s, store.PrunePolicy{MaxBytes: res.Size}); again.Deleted() != 0 || again.Batches != 0 || len(records(t, s)) != 1 {
		t.Errorf("MaxBytes at the size = %+v, %d records; want nothing deleted and 1 record", again, len(records(t, s)))
	}

	// Below what the audit events alone hold: every request event, then
	// the oldest audit events until the rest, with three records (each
	// within a few bytes of rec), fits.
	limit = 3*rec + 2*A + A/2
	res = prune(t, s, store.PrunePolicy{MaxBytes: limit})
	if res.Request.Events != 3 || res.Audit.Events != 2 || res.Audit.FirstID != audits[0].ID || res.Audit.LastID != audits[1].ID || res.Batches != 2 {
		t.Errorf("MaxBytes %d = %+v, want the 3 request events and the 2 oldest audit events (ids %d..%d), in 2 batches",
			limit, res, audits[0].ID, audits[1].ID)
	}
	if got, want := contentIDs(t, s), []int64{audits[2].ID, audits[3].ID}; !slices.Equal(got, want) {
		t.Errorf("events left %v, want the newest two audit events %v", got, want)
	}
	if n := len(records(t, s)); n != 3 || res.Size > limit || res.Size != eventsSize(t, s) || res.Size <= 2*A {
		t.Errorf("%d records, Size after = %d, EventsSize = %d; want 3 records and Size at most %d, above the %d bytes of the audit events left",
			n, res.Size, eventsSize(t, s), limit, 2*A)
	}
}

// A size bound counts the record of the batch: when enough events are
// there, one batch brings the total to the bound and deletes no more than
// that needs, also when the events are smaller than the record.
func testPruneBySizeCountsRecord(t *testing.T, s store.Store) {
	var evs []events.Event
	for i := range 20 {
		evs = append(evs, refusalAt(base.Add(time.Duration(i)*time.Second), "x"))
	}
	R := appendEach(t, s, evs...)[0]
	total := eventsSize(t, s)
	limit := total - 5*R/2
	res := prune(t, s, store.PrunePolicy{MaxBytes: limit})
	k := res.Request.Events
	if res.Batches != 1 || res.Size > limit || k < 3 || k >= 20 || res.Request.FirstID != evs[0].ID || res.Request.LastID != evs[k-1].ID {
		t.Fatalf("MaxBytes %d over 20 events of %d bytes = %+v; want one batch of the oldest events, at least 3, leaving at most the bound",
			limit, R, res)
	}
	// One event fewer (whose record would be within a few bytes of this
	// one's) would not have been enough.
	if res.Size+R+32 <= limit {
		t.Errorf("Size after = %d with %d events deleted; one fewer (%d bytes each) would have met MaxBytes %d", res.Size, k, R, limit)
	}
	if n := len(records(t, s)); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

// events.prune records are never deleted for size, so a size bound below
// what they hold ends with every other event gone and the records kept;
// they go by age, and a pruning never takes its own record.
func testPruneBySizeKeepsRecords(t *testing.T, s store.Store) {
	appendEvents(t, s, []events.Event{refusalAt(base.Add(-60*day), "old-1"), refusalAt(base.Add(-60*day), "old-2")})
	if res := prune(t, s, store.PrunePolicy{Now: base, RequestMaxAge: 30 * day}); res.Deleted() != 2 || len(records(t, s)) != 1 {
		t.Fatalf("pruning 2 old events = %+v, want 2 deleted and 1 record", res)
	}
	var evs []events.Event
	for i := range 4 {
		evs = append(evs, auditAt(base.Add(time.Duration(i-100)*day), "a"+pad), refusalAt(base.Add(time.Duration(i)*time.Second), "r"+pad))
	}
	appendEvents(t, s, evs)
	c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	res, err := s.PruneEvents(c, store.PrunePolicy{MaxBytes: 1, BatchSize: 1})
	if err != nil {
		t.Fatalf("PruneEvents(MaxBytes 1, BatchSize 1) = %v; want it to end, deleting all but records", err)
	}
	recs := records(t, s)
	if res.Request.Events != 4 || res.Audit.Events != 4 || res.Batches != 8 || len(recs) != 9 {
		t.Errorf("MaxBytes 1 = %+v, %d records; want 4 request and 4 audit events deleted in 8 batches, 9 records", res, len(recs))
	}
	if got := contentIDs(t, s); len(got) != 0 {
		t.Errorf("events %v left besides records, want none", got)
	}
	if res.Size <= 1 || res.Size != eventsSize(t, s) {
		t.Errorf("Size = %d, EventsSize = %d; want equal, the records' bytes (above MaxBytes 1)", res.Size, eventsSize(t, s))
	}
	if again := prune(t, s, store.PrunePolicy{MaxBytes: 1}); again.Deleted() != 0 || again.Batches != 0 || again.Size != res.Size || len(records(t, s)) != 9 {
		t.Errorf("pruning again with only records over MaxBytes 1 = %+v, %d records; want nothing deleted, Size %d, 9 records",
			again, len(records(t, s)), res.Size)
	}

	// By age they go, oldest (by time, then id) first, one batch each, and
	// the records of that pruning stay.
	slices.SortStableFunc(recs, func(a, b events.Event) int { return a.Time.Compare(b.Time) })
	later := base.Add(1000 * day)
	res = prune(t, s, store.PrunePolicy{Now: later, AuditMaxAge: day, BatchSize: 1})
	if res.Audit.Events != 9 || res.Batches != 9 || res.Audit.FirstID != slices.Min(ids(recs)) || res.Audit.LastID != slices.Max(ids(recs)) {
		t.Errorf("AuditMaxAge with 9 old records %v = %+v, want the 9 deleted in 9 batches", ids(recs), res)
	}
	left := records(t, s)
	if len(left) != 9 {
		t.Fatalf("%d records left, want 9: one per batch of the last pruning", len(left))
	}
	var freed int64
	for i, e := range left {
		n := labelInt(t, e, "prune.audit.bytes")
		freed += n
		checkRecord(t, e, later, events.ClassAudit, store.Pruned{Events: 1, Bytes: n, FirstID: recs[i].ID, LastID: recs[i].ID})
	}
	if freed != res.Audit.Bytes {
		t.Errorf("records count %d bytes freed, the result %d; want equal", freed, res.Audit.Bytes)
	}
}

// labelInt returns e's label k as an integer.
func labelInt(t *testing.T, e events.Event, k string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(e.Labels[k], &n); err != nil {
		t.Fatalf("record %d label %s = %q: %v", e.ID, k, e.Labels[k], err)
	}
	return n
}

// With RequestMaxAge set, the size bound takes audit-class events only
// once they are older than that: a flood of new events cannot push out a
// recent audit trail, even if the bound is then not met.
func testPruneBySizeSparesRecentAudit(t *testing.T, s store.Store) {
	now := base
	evs := appendEvents(t, s, []events.Event{
		auditAt(now.Add(-40*day), "a-old"+pad),       // 0
		auditAt(now.Add(-30*day), "a-at-cutoff"+pad), // 1: not older than 30d
		auditAt(now.Add(-day), "a-new"+pad),          // 2
	})
	var flood []events.Event
	for i := range 5 {
		flood = append(flood, refusalAt(now.Add(time.Duration(i-60)*time.Second), "flood"+pad))
	}
	appendEvents(t, s, flood)
	for _, tc := range []struct {
		name      string
		p         store.PrunePolicy
		audit     []int // indexes in evs of the audit events deleted
		remaining []int64
	}{
		{"recent audit kept", store.PrunePolicy{Now: now, RequestMaxAge: 30 * day, MaxBytes: 1},
			[]int{0}, []int64{evs[1].ID, evs[2].ID}},
		{"without RequestMaxAge", store.PrunePolicy{Now: now, MaxBytes: 1},
			[]int{1, 2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := prune(t, s, tc.p)
			if res.Audit.Events != int64(len(tc.audit)) || res.Audit.FirstID != evs[tc.audit[0]].ID || res.Audit.LastID != evs[tc.audit[len(tc.audit)-1]].ID {
				t.Errorf("PruneEvents(%+v) deleted audit events %+v, want those at %v of %v", tc.p, res.Audit, tc.audit, ids(evs))
			}
			if got := contentIDs(t, s); !slices.Equal(got, tc.remaining) {
				t.Errorf("events left %v, want %v", got, tc.remaining)
			}
		})
	}
	if n := len(flood); n != 5 || len(query(t, s, store.EventQuery{Type: events.TypeRouteAuth})) != 0 {
		t.Errorf("request events left after both prunings, want none (the flood goes first)")
	}
}

// A size-bound pruning with BatchSize 1 ends: every batch that deletes
// frees more than the record it writes, so the total only goes down, and
// deleting an event smaller than a record would not.
func testPruneBySizeBatchOfOne(t *testing.T, s store.Store) {
	var big, small []events.Event
	for i := range 5 {
		big = append(big, refusalAt(base.Add(time.Duration(i-100)*time.Second), fmt.Sprint("big", i, pad)))
		small = append(small, refusalAt(base.Add(time.Duration(i)*time.Second), fmt.Sprint("small", i)))
	}
	appendEvents(t, s, big)
	appendEvents(t, s, small)
	before := eventsSize(t, s)
	c, cancel := context.WithTimeout(ctx(t), 30*time.Second)
	defer cancel()
	res, err := s.PruneEvents(c, store.PrunePolicy{MaxBytes: 1, BatchSize: 1})
	if err != nil {
		t.Fatalf("PruneEvents(MaxBytes 1, BatchSize 1) = %v; want it to end", err)
	}
	recs := records(t, s)
	if res.Request.Events < 5 || res.Request.FirstID != big[0].ID || res.Batches != int(res.Deleted()) || len(recs) != res.Batches {
		t.Errorf("MaxBytes 1, BatchSize 1 = %+v, %d records; want the 5 big events first, one event and one record per batch", res, len(recs))
	}
	if got := contentIDs(t, s); slices.Contains(got, big[4].ID) || res.Size >= before || res.Size != eventsSize(t, s) {
		t.Errorf("events left %v, Size %d before, %d after (EventsSize %d): want the big events gone and Size lower", got, before, res.Size, eventsSize(t, s))
	}
	if again := prune(t, s, store.PrunePolicy{MaxBytes: 1, BatchSize: 1}); again.Deleted() != 0 || again.Size != res.Size {
		t.Errorf("pruning again = %+v, want nothing more deleted and Size %d", again, res.Size)
	}
	// No batch grew the log: each freed more than its record holds.
	for i, rs := range storedSizes(t, s, recs) {
		if n := labelInt(t, recs[i], "prune.request.events"); n != 1 {
			t.Errorf("record %d counts %d events, want 1", recs[i].ID, n)
		}
		if freed := labelInt(t, recs[i], "prune.request.bytes"); freed <= rs {
			t.Errorf("record %d: its batch freed %d bytes and the record holds %d; want it to free more", recs[i].ID, freed, rs)
		}
	}
}

func testPruneBatches(t *testing.T, s store.Store) {
	var evs []events.Event
	for i := range 10 {
		evs = append(evs, refusalAt(base.Add(time.Duration(i)*time.Second), fmt.Sprint(i)))
	}
	appendEvents(t, s, evs)
	res := prune(t, s, store.PrunePolicy{Now: base.Add(time.Hour), RequestMaxAge: time.Minute, BatchSize: 3})
	if res.Request.Events != 10 || res.Batches != 4 || len(records(t, s)) != 4 {
		t.Errorf("10 old events with BatchSize 3 = %+v, %d records; want 10 deleted in 4 batches, one record each", res, len(records(t, s)))
	}
	for i := range 7 {
		appendEvents(t, s, []events.Event{auditAt(base.Add(time.Duration(i)*time.Second), fmt.Sprint("a", pad))})
	}
	res = prune(t, s, store.PrunePolicy{MaxBytes: 1, BatchSize: 2})
	if res.Audit.Events != 7 || res.Batches != 4 || len(records(t, s)) != 8 || len(contentIDs(t, s)) != 0 {
		t.Errorf("7 events over MaxBytes with BatchSize 2 = %+v, %d records; want 7 deleted in 4 batches, 8 records and nothing else left",
			res, len(records(t, s)))
	}
	if res.Size != eventsSize(t, s) || res.Size <= 0 {
		t.Errorf("Size = %d, EventsSize = %d; want equal, the records' bytes", res.Size, eventsSize(t, s))
	}
}

// Ids of pruned events are never given again. Pruning leaves its record as
// the newest row, so a new event's id must pass both.
func testPruneNeverReusesIDs(t *testing.T, s store.Store) {
	var evs []events.Event
	for i := range 5 {
		evs = append(evs, refusalAt(base.Add(time.Duration(i)*time.Second), "x"))
	}
	appendEvents(t, s, evs)
	res := prune(t, s, store.PrunePolicy{Now: base.Add(time.Hour), RequestMaxAge: time.Minute})
	recs := records(t, s)
	if res.Deleted() != 5 || res.Request.LastID != evs[4].ID || len(contentIDs(t, s)) != 0 || len(recs) != 1 {
		t.Fatalf("pruning everything = %+v, %d records; want all 5 deleted up to id %d and 1 record", res, len(recs), evs[4].ID)
	}
	next := appendEvents(t, s, []events.Event{refusalAt(base, "y")})
	if next[0].ID <= recs[0].ID || recs[0].ID <= evs[4].ID {
		t.Errorf("ids: pruned up to %d, record %d, next %d; want each greater than the one before (never reused)", evs[4].ID, recs[0].ID, next[0].ID)
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
		t.Errorf("%d events left after refused prunes, want 2 (no record either)", got)
	}
}

// The store writes one record per batch, with that batch's counts, bytes
// and id range, never the pruned events' contents; each is audit-class and
// outlives what it describes. The size each record gives as prune.size_after
// is the total left by its batch's deletion, before the record is added.
func testPruneRecord(t *testing.T, s store.Store) {
	var reqs, audits []events.Event
	for i := range 5 {
		reqs = append(reqs, refusalAt(base.Add(-60*day+time.Duration(i)*time.Second), "marker-request"))
	}
	for i := range 3 {
		audits = append(audits, auditAt(base.Add(-500*day+time.Duration(i)*time.Second), "marker-audit"))
	}
	R := appendEach(t, s, reqs...)[0]
	A := appendEach(t, s, audits...)[0]
	kept := appendEvents(t, s, []events.Event{refusalAt(base, "kept"), auditAt(base, "kept")})
	before := eventsSize(t, s)
	p := store.PrunePolicy{Now: base, RequestMaxAge: 30 * day, AuditMaxAge: 400 * day, BatchSize: 2}
	res := prune(t, s, p)
	if res.Request.Events != 5 || res.Audit.Events != 3 || res.Batches != 5 {
		t.Fatalf("PruneEvents(%+v) = %+v, want 5 request and 3 audit events deleted in 5 batches", p, res)
	}
	recs := records(t, s)
	if len(recs) != res.Batches {
		t.Fatalf("%d records stored, want one per batch (%d)", len(recs), res.Batches)
	}
	type batch struct {
		class     events.Class
		from, to  events.Event
		n, bytesE int64
	}
	want := []batch{
		{events.ClassRequest, reqs[0], reqs[1], 2, R}, {events.ClassRequest, reqs[2], reqs[3], 2, R}, {events.ClassRequest, reqs[4], reqs[4], 1, R},
		{events.ClassAudit, audits[0], audits[1], 2, A}, {events.ClassAudit, audits[2], audits[2], 1, A},
	}
	for i, w := range want {
		checkRecord(t, recs[i], base, w.class, store.Pruned{Events: w.n, Bytes: w.n * w.bytesE, FirstID: w.from.ID, LastID: w.to.ID})
		if recs[i].Labels["policy.request_age"] != (30*day).String() || recs[i].Labels["policy.audit_age"] != (400*day).String() {
			t.Errorf("record %d policy labels %v, want the policy's ages", recs[i].ID, recs[i].Labels)
		}
		if recs[i].ID <= kept[1].ID {
			t.Errorf("record id %d, want above every earlier event's (%d)", recs[i].ID, kept[1].ID)
		}
	}
	if got, want := contentIDs(t, s), ids(kept); !slices.Equal(got, want) {
		t.Errorf("events left %v besides records, want %v", got, want)
	}

	// Stored, they survive the pruning of what they describe.
	if again := prune(t, s, p); again.Deleted() != 0 || len(records(t, s)) != len(recs) {
		t.Errorf("pruning again = %+v, %d records; want nothing deleted and the %d records kept", again, len(records(t, s)), len(recs))
	}

	// Size accounting: each batch frees its bytes and adds its record's.
	size := before
	for i, rs := range storedSizes(t, s, recs) {
		size -= labelInt(t, recs[i], "prune."+string(want[i].class)+".bytes")
		if got := labelInt(t, recs[i], "prune.size_after"); got != size {
			t.Errorf("record %d prune.size_after = %d, want %d", recs[i].ID, got, size)
		}
		size += rs
	}
	if res.Size != size {
		t.Errorf("Size after pruning = %d, want %d: %d before, less what the batches freed, plus their records", res.Size, size, before)
	}
}
