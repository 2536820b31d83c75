package sqlite

import (
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"warden/internal/events"
	"warden/internal/store"
	"warden/internal/store/storetest"
)

func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "warden.db"))
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestOpenConfiguresConnections(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := context.Background()
	check := func(name, pragma, want string) {
		t.Helper()
		for _, p := range []struct {
			name string
			q    func(string) (string, error)
		}{
			{"writer", func(q string) (s string, err error) { err = db.w.QueryRowContext(ctx, q).Scan(&s); return }},
			{"reader", func(q string) (s string, err error) { err = db.r.QueryRowContext(ctx, q).Scan(&s); return }},
		} {
			got, err := p.q("PRAGMA " + pragma)
			if err != nil {
				t.Fatalf("%s: PRAGMA %s = %v", p.name, pragma, err)
			}
			if !strings.EqualFold(got, want) {
				t.Errorf("%s: PRAGMA %s = %q, want %q (%s)", p.name, pragma, got, want, name)
			}
		}
	}
	check("WAL mode", "journal_mode", "wal")
	check("foreign keys on", "foreign_keys", "1")
	check("synchronous=FULL", "synchronous", "2")
	check("busy timeout", "busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))

	var qo int
	if err := db.r.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != 1 {
		t.Errorf("reader PRAGMA query_only = %d, %v; want 1", qo, err)
	}
	if _, err := db.r.ExecContext(ctx, "DELETE FROM events"); err == nil {
		t.Error("a write through the reader pool succeeded, want it refused")
	}
	if n := db.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", n)
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if db, err := Open(p); !errors.Is(err, store.ErrInvalid) {
			if db != nil {
				db.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warden.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := storeArtifact(t, db, []byte("v1"))
	if _, err := db.CreateVersion(ctx, store.Version{Namespace: "default", Name: "f", ArtifactDigest: d}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := db.Function(ctx, "default", "f"); err == nil {
		t.Error("Function after Close succeeded, want an error")
	}

	db, err = Open(path) // migrations already applied: must be a no-op
	if err != nil {
		t.Fatalf("reopen = %v", err)
	}
	defer db.Close()
	f, err := db.Function(ctx, "default", "f")
	if err != nil || f.ActiveVersion != 1 {
		t.Errorf("after reopen Function = %+v, %v; want active version 1", f, err)
	}
	files, _ := fs.Glob(migrations, "migrations/sqlite/*.sql")
	var newest int64
	for _, f := range files {
		n, _ := strconv.ParseInt(strings.SplitN(strings.TrimPrefix(f, "migrations/sqlite/"), "_", 2)[0], 10, 64)
		newest = max(newest, n)
	}
	var version int64
	if err := db.r.QueryRowContext(ctx, "SELECT MAX(version_id) FROM goose_db_version").Scan(&version); err != nil || version != newest || newest < 1 {
		t.Errorf("goose version = %d, %v; want %d (the newest migration)", version, err, newest)
	}
	if err := db.Check(ctx); err != nil {
		t.Errorf("Check = %v", err)
	}
}

// Readers use their own pool: a long write transaction must not block queries.
func TestReadsDoNotWaitForWriter(t *testing.T) {
	db := openTemp(t)
	defer db.Close()
	ctx := context.Background()
	if err := db.AppendEvents(ctx, []events.Event{{Type: "a.b", Outcome: events.OutcomeSuccess}}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.w.BeginTx(ctx, nil) // holds the only writer connection and the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO events (time, type, outcome, body) VALUES (0, 'x.y', 'success', '{}')"); err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	evs, err := db.QueryEvents(qctx, store.EventQuery{})
	if err != nil {
		t.Fatalf("QueryEvents during a write transaction = %v, want no wait", err)
	}
	if len(evs) != 1 || evs[0].Type != "a.b" {
		t.Errorf("QueryEvents during a write = %+v, want only the committed event", evs)
	}
	// A writer queued behind the open transaction waits, and fails only when its context ends.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer wcancel()
	if err := db.AppendEvents(wctx, []events.Event{{Type: "c.d"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AppendEvents while the writer is busy = %v, want to wait until DeadlineExceeded", err)
	}
}

func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "sqlite.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package sqlite ") {
		t.Errorf("sqlite.go has no package doc comment starting with %q", "Package sqlite ")
	}
}

func BenchmarkAppendEvents(b *testing.B) {
	db := openTemp(b)
	defer db.Close()
	ctx := context.Background()
	batch := make([]events.Event, 256)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = events.Event{Type: events.TypeRouteAuth, Outcome: events.OutcomeSuccess, Namespace: "default",
				Function: "orders", RequestID: "req-0123456789", SourceIP: "192.0.2.1", Labels: map[string]string{"route": "POST /orders"}}
		}
		if err := db.AppendEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
