package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"warden/internal/events"
	"warden/internal/store"
)

// Events stored before migration 00007 get the class events.ClassOf gives
// their type and the size AppendEvents would record, and event_totals
// starts from their sums.
func TestRetentionMigrationBackfills(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fs.Sub(migrations, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, old, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatalf("migrate to version 6 = %v", err)
	}
	types := []string{
		events.TypeRouteAuth, events.TypeRequestInvalid, events.TypeFunctionTrap, events.TypeDLP,
		"capability.denied", "egress.request", events.TypeLimitRate, events.TypeLimitMemory, "limit.future",
		events.TypeAdminAuth, events.TypeFunctionDeploy, "secret.read", "user.login", "masterkey.rotate",
		events.TypeRateLimitBackend, "limit", "limits.x", "unknown.type",
	}
	var want []events.Event
	for i, typ := range types {
		e := events.Event{Time: time.Unix(int64(i), 0).UTC(), Type: typ, Outcome: events.OutcomeDenied,
			Namespace: "ns", Function: "fn", RequestID: "req-é", Reason: "réason"}
		body, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.ExecContext(ctx,
			`INSERT INTO events (time, type, outcome, namespace, function, request_id, body) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.Time.UnixNano(), e.Type, e.Outcome, e.Namespace, e.Function, e.RequestID, string(body)); err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open (migrating to the newest version) = %v", err)
	}
	defer db.Close()
	rows, err := db.r.QueryContext(ctx, `SELECT type, class, size, body FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var total int64
	i := 0
	for ; rows.Next(); i++ {
		var typ, class, body string
		var size int64
		if err := rows.Scan(&typ, &class, &size, &body); err != nil {
			t.Fatal(err)
		}
		if want := string(events.ClassOf(typ)); class != want {
			t.Errorf("migrated class of %q = %q, want %q (events.ClassOf)", typ, class, want)
		}
		if want := eventSize(want[i], []byte(body)); size != want {
			t.Errorf("migrated size of %q = %d, want %d (eventSize)", typ, size, want)
		}
		total += size
	}
	if err := rows.Err(); err != nil || i != len(types) {
		t.Fatalf("read %d migrated rows (%v), want %d", i, err, len(types))
	}
	if got, err := db.EventsSize(ctx); err != nil || got != total {
		t.Errorf("EventsSize after migration = %d, %v; want %d", got, err, total)
	}
	res, err := db.PruneEvents(ctx, store.PrunePolicy{MaxBytes: 1})
	if err != nil || res.Deleted() != int64(len(types)) || res.Batches != 2 {
		t.Errorf("pruning every migrated event = %+v, %v; want %d deleted in 2 batches (one per class)", res, err, len(types))
	}
	// What is left is the two batches' records, and Size is their bytes.
	var n, recBytes int64
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE type = ?`, events.TypeEventsPrune).Scan(&n, &recBytes); err != nil {
		t.Fatal(err)
	}
	if n != 2 || res.Size != recBytes || rowCount(t, db) != 2 {
		t.Errorf("after pruning: %d records of %d bytes, %d rows, Size %d; want 2 records, no other row, Size their bytes", n, recBytes, rowCount(t, db), res.Size)
	}
	checkTotals(t, db)
}

func rowCount(t *testing.T, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.r.QueryRow(`SELECT COUNT(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkTotals checks that event_totals, which EventsSize reads, matches the
// rows: a batch and its record keep it exact.
func checkTotals(t *testing.T, db *DB) {
	t.Helper()
	rows, err := db.r.Query(`SELECT t.class, t.events, t.bytes, COUNT(e.id), COALESCE(SUM(e.size), 0)
		FROM event_totals t LEFT JOIN events e ON e.class = t.class GROUP BY t.class`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var class string
		var n, bytes, rowsN, rowsBytes int64
		if err := rows.Scan(&class, &n, &bytes, &rowsN, &rowsBytes); err != nil {
			t.Fatal(err)
		}
		if n != rowsN || bytes != rowsBytes {
			t.Errorf("event_totals for %s = %d events, %d bytes; the rows hold %d, %d", class, n, bytes, rowsN, rowsBytes)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// A batch and its events.prune record commit together: when the record
// cannot be stored (a trigger refuses it here), the batch deletes nothing,
// and the batches committed before stand with their records.
func TestPruneRecordSameTransaction(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	defer db.Close()
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []events.Event
	for i := range 3 {
		evs = append(evs, events.Event{Time: old.Add(time.Duration(i) * time.Second), Type: events.TypeRouteAuth,
			Outcome: events.OutcomeDenied, Reason: strings.Repeat("x", 2000)})
	}
	if err := db.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	size, err := db.EventsSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(when string) {
		t.Helper()
		if _, err := db.w.ExecContext(ctx, `DROP TRIGGER IF EXISTS refuse_prune_record`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.w.ExecContext(ctx, `CREATE TRIGGER refuse_prune_record BEFORE INSERT ON events
			WHEN NEW.type = 'events.prune' AND `+when+` BEGIN SELECT RAISE(ABORT, 'record refused'); END`); err != nil {
			t.Fatal(err)
		}
	}
	now := old.Add(time.Hour)
	for _, p := range []store.PrunePolicy{
		{Now: now, RequestMaxAge: time.Minute},
		{Now: now, MaxBytes: 1},
	} {
		refuse("1")
		res, err := db.PruneEvents(ctx, p)
		if err == nil || !strings.Contains(err.Error(), "record refused") || res.Deleted() != 0 || res.Batches != 0 {
			t.Errorf("PruneEvents(%+v) with the record refused = %+v, %v; want nothing deleted and the error", p, res, err)
		}
		if n, got := rowCount(t, db), mustSize(t, db); n != 3 || got != size || res.Size != size {
			t.Errorf("after the refused batch: %d rows, EventsSize %d, Size %d; want 3 rows and %d", n, got, res.Size, size)
		}
		checkTotals(t, db)
	}

	// The first batch's record goes in, the second's is refused: the
	// first batch stands, and PruneEvents says what it deleted.
	refuse("(SELECT COUNT(*) FROM events WHERE type = 'events.prune') >= 1")
	res, err := db.PruneEvents(ctx, store.PrunePolicy{Now: now, RequestMaxAge: time.Minute, BatchSize: 1})
	if err == nil || res.Deleted() != 1 || res.Batches != 1 || res.Request.FirstID != evs[0].ID {
		t.Errorf("PruneEvents with the second record refused = %+v, %v; want the first event deleted in 1 batch and the error", res, err)
	}
	var recs int64
	if err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE type = 'events.prune'`).Scan(&recs); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, db); n != 3 || recs != 1 {
		t.Errorf("%d rows, %d records; want the 2 events the refused batch left and 1 record", n, recs)
	}
	checkTotals(t, db)
}

func mustSize(t *testing.T, db *DB) int64 {
	t.Helper()
	n, err := db.EventsSize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// storedSize, by which a size-bound batch counts its record in advance,
// is the size insertEvents stores.
func TestStoredSizeMatchesAppend(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	defer db.Close()
	at := time.Date(2030, 6, 1, 12, 0, 0, 123456789, time.UTC)
	p := store.PrunePolicy{RequestMaxAge: time.Hour, MaxBytes: 1 << 30}
	for name, e := range map[string]events.Event{
		"record":            pruneRecord(p, at, events.ClassRequest, store.Pruned{Events: 12, Bytes: 3456, FirstID: 7, LastID: 99}, 123456),
		"record, zero time": pruneRecord(p, time.Time{}, events.ClassAudit, store.Pruned{}, 0),
		"refusal": {Time: at, Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied, Reason: "réason \"quoted\" <tag>",
			Namespace: "ns", Function: "fn", RequestID: "req-1", Labels: map[string]string{"b": "2", "a": "1"}},
	} {
		db.now = func() time.Time { return at }
		want, err := db.storedSize(e)
		if err != nil {
			t.Fatal(err)
		}
		before := mustSize(t, db)
		if err := db.AppendEvents(ctx, []events.Event{e}); err != nil {
			t.Fatal(err)
		}
		if got := mustSize(t, db) - before; got != want {
			t.Errorf("%s: AppendEvents added %d bytes, storedSize = %d", name, got, want)
		}
	}
}

// Ids of pruned events are not reused after a restart either.
func TestPrunedIDsNotReusedAfterReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warden.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	evs := []events.Event{{Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied}, {Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied}}
	if err := db.AppendEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if res, err := db.PruneEvents(ctx, store.PrunePolicy{Now: time.Now().Add(time.Hour), RequestMaxAge: time.Minute}); err != nil || res.Deleted() != 2 {
		t.Fatalf("PruneEvents = %+v, %v; want 2 deleted", res, err)
	}
	// Pruning leaves its record as the newest row; remove it too, so that
	// only AUTOINCREMENT keeps the newest id from coming back.
	var top int64
	if err := db.w.QueryRowContext(ctx, `DELETE FROM events WHERE type = ? RETURNING id`, events.TypeEventsPrune).Scan(&top); err != nil || top <= evs[1].ID {
		t.Fatalf("deleting the prune record = id %d, %v; want one record, newer than id %d", top, err, evs[1].ID)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	next := []events.Event{{Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied}}
	if err := db.AppendEvents(ctx, next); err != nil {
		t.Fatal(err)
	}
	if next[0].ID <= top {
		t.Errorf("id after deleting up to %d and reopening = %d, want greater", top, next[0].ID)
	}
	if err := db.Check(ctx); err != nil {
		t.Errorf("Check = %v", err)
	}
}

// BenchmarkRecorderStore measures events stored per second through the
// whole pipeline: many producers calling TryEmit on a Recorder whose sink is
// a real SQLite store (WAL, synchronous=FULL) in a temporary directory.
func BenchmarkRecorderStore(b *testing.B) {
	db := openTemp(b)
	defer db.Close()
	r := events.NewRecorder(db, events.Options{MaxWait: time.Minute})
	var refused atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := events.Event{Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied, Reason: "invalid API key",
				Namespace: "default", Function: "orders", Version: 3, RequestID: "req-0123456789abcdef", SourceIP: "192.0.2.1"}
			// Backpressure, not loss: wait for room like a producer that
			// retries would; the figure is what the store sustains.
			for r.TryEmit(e) != nil {
				refused.Add(1)
			}
		}
	})
	if err := r.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := r.Stats()
	if err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if st.Stored != uint64(b.N) {
		b.Fatalf("stored %d events, want %d", st.Stored, b.N)
	}
	b.ReportMetric(float64(st.Stored)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(refused.Load())/float64(b.N), "refusals/op")
}

// BenchmarkPruneEvents measures events deleted per second by age, in
// batches of the default size.
func BenchmarkPruneEvents(b *testing.B) {
	db := openTemp(b)
	defer db.Close()
	ctx := context.Background()
	batch := make([]events.Event, 1000)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	var deleted int64
	for b.Loop() {
		b.StopTimer()
		for range 20 {
			for i := range batch {
				batch[i] = events.Event{Time: old, Type: events.TypeRouteAuth, Outcome: events.OutcomeDenied,
					Reason: "invalid API key", Namespace: "default", Function: "orders", RequestID: "req-0123456789"}
			}
			if err := db.AppendEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := db.PruneEvents(ctx, store.PrunePolicy{Now: old.Add(time.Hour), RequestMaxAge: time.Minute})
		if err != nil || res.Request.Events != 20000 {
			b.Fatalf("PruneEvents = %+v, %v; want 20000 deleted", res, err)
		}
		deleted += res.Request.Events
	}
	b.ReportMetric(float64(deleted)/b.Elapsed().Seconds(), "events/s")
}
