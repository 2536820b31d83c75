package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"io/fs"
	"path/filepath"
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
	if err != nil || res.Deleted() != int64(len(types)) || res.Size != 0 {
		t.Errorf("pruning every migrated event = %+v, %v; want %d deleted and Size 0", res, err, len(types))
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
	if res, err := db.PruneEvents(ctx, store.PrunePolicy{MaxBytes: 1}); err != nil || res.Deleted() != 2 {
		t.Fatalf("PruneEvents = %+v, %v; want 2 deleted", res, err)
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
	if next[0].ID <= evs[1].ID {
		t.Errorf("id after pruning up to %d and reopening = %d, want greater", evs[1].ID, next[0].ID)
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
