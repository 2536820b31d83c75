package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"warden/internal/events"
	"warden/internal/store"
)

// eventRowOverhead is the part of an event's size (eventSize) that stands
// for its row header, id, time, class, size and index entries.
const eventRowOverhead = 64

// eventSize estimates the bytes an event's row holds: its JSON body, the
// indexed copies of its fields and eventRowOverhead. Migration 00007
// computes the same for rows stored before it.
func eventSize(e events.Event, body []byte) int64 {
	return int64(len(body) + len(e.Type) + len(e.Outcome) + len(e.Namespace) + len(e.Function) +
		len(e.RequestID) + eventRowOverhead)
}

// classTotals accumulates changes of event_totals within one transaction.
type classTotals map[events.Class][2]int64

func (t *classTotals) add(class events.Class, n, bytes int64) {
	if *t == nil {
		*t = make(classTotals, 2)
	}
	c := (*t)[class]
	(*t)[class] = [2]int64{c[0] + n, c[1] + bytes}
}

func (t classTotals) apply(ctx context.Context, tx *sql.Tx) error {
	for class, c := range t {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO event_totals (class, events, bytes) VALUES (?, ?, ?)
			 ON CONFLICT (class) DO UPDATE SET events = events + excluded.events, bytes = bytes + excluded.bytes`,
			string(class), c[0], c[1]); err != nil {
			return err
		}
	}
	return nil
}

// EventsSize implements store.EventRetention.
func (db *DB) EventsSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM event_totals`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: events size: %w", err)
	}
	return n, nil
}

// PruneEvents implements store.EventRetention: first by age, request class
// then audit class, then by size, request class then audit class. Each
// batch is one write transaction of at most policy.BatchSize rows, taken in
// (time, id) order through the events_class_time index.
func (db *DB) PruneEvents(ctx context.Context, p store.PrunePolicy) (store.PruneResult, error) {
	var res store.PruneResult
	if err := p.Validate(); err != nil {
		return res, fmt.Errorf("sqlite: prune events: %w", err)
	}
	now := p.Now
	if now.IsZero() {
		now = db.now()
	}
	batch := p.BatchSize
	if batch == 0 {
		batch = store.DefaultPruneBatch
	}
	result := func(class events.Class) *store.Pruned {
		if class == events.ClassRequest {
			return &res.Request
		}
		return &res.Audit
	}
	type step struct {
		class  events.Class
		byAge  bool  // delete rows with time < before
		before int64 // Unix ns
		bySize bool  // delete only until the total is at most p.MaxBytes
	}
	var steps []step
	if p.RequestMaxAge > 0 {
		steps = append(steps, step{class: events.ClassRequest, byAge: true, before: now.Add(-p.RequestMaxAge).UnixNano()})
	}
	if p.AuditMaxAge > 0 {
		steps = append(steps, step{class: events.ClassAudit, byAge: true, before: now.Add(-p.AuditMaxAge).UnixNano()})
	}
	if p.MaxBytes > 0 {
		steps = append(steps, step{class: events.ClassRequest, bySize: true}, step{class: events.ClassAudit, bySize: true})
	}
	var err error
	for _, st := range steps {
		for {
			var got store.Pruned
			var more bool
			got, more, err = db.pruneBatch(ctx, st.class, st.byAge, st.before, st.bySize, p.MaxBytes, batch)
			if err != nil {
				break
			}
			if got.Events > 0 {
				res.Batches++
				result(st.class).Add(got)
			}
			if !more {
				break
			}
		}
		if err != nil {
			break
		}
	}
	size, serr := db.EventsSize(ctx)
	res.Size = size
	if err = errors.Join(err, serr); err != nil {
		return res, fmt.Errorf("sqlite: prune events: %w", err)
	}
	return res, nil
}

// pruneBatch deletes, in one transaction, at most limit of the oldest
// events of class: those with time < before (byAge), or just enough to
// bring the total size to maxBytes (bySize). more reports whether another
// batch may find more to delete.
func (db *DB) pruneBatch(ctx context.Context, class events.Class, byAge bool, before int64, bySize bool, maxBytes int64, limit int) (got store.Pruned, more bool, err error) {
	if err := ctx.Err(); err != nil {
		return got, false, err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		got, more = store.Pruned{}, false
		n := limit
		if bySize {
			var total int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM event_totals`).Scan(&total); err != nil {
				return err
			}
			if total <= maxBytes {
				return nil
			}
			var err error
			if n, err = rowsToFree(ctx, tx, class, total-maxBytes, limit); err != nil || n == 0 {
				return err
			}
		}
		q := `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE class = ?`
		args := []any{string(class)}
		if byAge {
			q += ` AND time < ?`
			args = append(args, before)
		}
		q += ` ORDER BY time, id LIMIT ?) RETURNING id, size`
		args = append(args, n)
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, size int64
			if err := rows.Scan(&id, &size); err != nil {
				rows.Close()
				return err
			}
			got.Add(store.Pruned{Events: 1, Bytes: size, FirstID: id, LastID: id})
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if got.Events == 0 {
			return nil
		}
		// A full batch may leave more; a size-bound batch may have met
		// rows deleted meanwhile, and is checked again by the next.
		more = got.Events == int64(n) || bySize
		var t classTotals
		t.add(class, -got.Events, -got.Bytes)
		return t.apply(ctx, tx)
	})
	if err != nil {
		return store.Pruned{}, false, err
	}
	return got, more, nil
}

// rowsToFree returns how many of class's oldest rows (at most limit) hold
// at least need bytes, or all of the first limit if they hold less.
func rowsToFree(ctx context.Context, tx *sql.Tx, class events.Class, need int64, limit int) (int, error) {
	rows, err := tx.QueryContext(ctx,
		`SELECT size FROM events WHERE class = ? ORDER BY time, id LIMIT ?`, string(class), limit)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() && need > 0 {
		var size int64
		if err := rows.Scan(&size); err != nil {
			return 0, err
		}
		n++
		need -= size
	}
	return n, rows.Err()
}
