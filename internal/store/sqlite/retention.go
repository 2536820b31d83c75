package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
// (time, id) order through the events_class_time index, that also stores
// the batch's events.prune record.
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
	var steps []pruneStep
	if p.RequestMaxAge > 0 {
		steps = append(steps, pruneStep{class: events.ClassRequest, byAge: true, before: now.Add(-p.RequestMaxAge).UnixNano()})
	}
	if p.AuditMaxAge > 0 {
		steps = append(steps, pruneStep{class: events.ClassAudit, byAge: true, before: now.Add(-p.AuditMaxAge).UnixNano()})
	}
	if p.MaxBytes > 0 {
		// The size bound takes the oldest per-request events first; audit
		// events only once they are older than per-request events may be,
		// so a flood of new events cannot push out a recent audit trail.
		audit := pruneStep{class: events.ClassAudit, bySize: true}
		if p.RequestMaxAge > 0 {
			audit.byAge, audit.before = true, now.Add(-p.RequestMaxAge).UnixNano()
		}
		steps = append(steps, pruneStep{class: events.ClassRequest, bySize: true}, audit)
	}
	var err error
	for _, st := range steps {
		for {
			var got store.Pruned
			var more bool
			got, more, err = db.pruneBatch(ctx, p, now, st, batch)
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

// pruneStep is one pass of PruneEvents over one class.
type pruneStep struct {
	class  events.Class
	byAge  bool  // delete only rows with time < before
	before int64 // Unix ns
	bySize bool  // delete only until the total is at most MaxBytes; never events.prune rows
}

// where returns the condition, and its arguments, selecting the rows st
// may delete.
func (st pruneStep) where() (string, []any) {
	q, args := `class = ?`, []any{string(st.class)}
	if st.bySize {
		// Pruning records go only by age: pruning them for size would
		// write new ones, and the record that content went must stay.
		q += ` AND type != ?`
		args = append(args, events.TypeEventsPrune)
	}
	if st.byAge {
		q += ` AND time < ?`
		args = append(args, st.before)
	}
	return q, args
}

// pruneBatch deletes, in one transaction, at most limit of the oldest
// events st selects: those with time < st.before (byAge), and just enough
// to bring the total size to p.MaxBytes counting the batch's own record
// (bySize). The same transaction stores the events.prune record of what it
// deleted, with time now: the record that content went can never be lost
// apart from the deletion, and no step of the same PruneEvents call is old
// enough to delete it. more reports whether another batch may find more to
// delete.
//
// # Notes
//   - A size-bound batch deletes nothing when its rows would not free more
//     bytes than its record adds, so every size-bound batch that deletes
//     lowers the total and a size-bound step ends even with limit 1.
func (db *DB) pruneBatch(ctx context.Context, p store.PrunePolicy, now time.Time, st pruneStep, limit int) (got store.Pruned, more bool, err error) {
	if err := ctx.Err(); err != nil {
		return got, false, err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		got, more = store.Pruned{}, false
		var total int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(bytes), 0) FROM event_totals`).Scan(&total); err != nil {
			return err
		}
		if st.bySize && total <= p.MaxBytes {
			return nil
		}
		where, args := st.where()
		n := limit
		var want store.Pruned
		if st.bySize {
			oldest, err := oldestRows(ctx, tx, where, args, limit)
			if err != nil {
				return err
			}
			if n, err = db.rowsToFree(p, now, st.class, oldest, total); err != nil || n == 0 {
				return err
			}
			for _, r := range oldest[:n] {
				want.Add(r)
			}
		}
		rows, err := tx.QueryContext(ctx,
			`DELETE FROM events WHERE id IN (SELECT id FROM events WHERE `+where+` ORDER BY time, id LIMIT ?) RETURNING id, size`,
			append(args, n)...)
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
		if st.bySize && got != want {
			// The writer holds the database: this cannot happen.
			return fmt.Errorf("size-bound batch deleted %+v, selected %+v", got, want)
		}
		// A full batch may leave more; a size-bound batch lowered the
		// total, and the next checks it again.
		more = got.Events == int64(n) || st.bySize
		var t classTotals
		t.add(st.class, -got.Events, -got.Bytes)
		if err := t.apply(ctx, tx); err != nil {
			return err
		}
		rec := []events.Event{pruneRecord(p, now, st.class, got, total-got.Bytes)}
		return db.insertEvents(ctx, tx, rec, make([]int64, 1), make([]time.Time, 1))
	})
	if err != nil {
		return store.Pruned{}, false, err
	}
	return got, more, nil
}

// pruneRecord returns the events.prune record of one batch that deleted
// got of class, leaving sizeAfter bytes before the record is added.
func pruneRecord(p store.PrunePolicy, now time.Time, class events.Class, got store.Pruned, sizeAfter int64) events.Event {
	r := store.PruneResult{Batches: 1, Size: sizeAfter}
	if class == events.ClassRequest {
		r.Request = got
	} else {
		r.Audit = got
	}
	e := r.Event(p)
	e.Time = now
	return e
}

// oldestRows returns the id and size of the oldest rows (at most limit)
// that match where.
func oldestRows(ctx context.Context, tx *sql.Tx, where string, args []any, limit int) ([]store.Pruned, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, size FROM events WHERE `+where+` ORDER BY time, id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Pruned
	for rows.Next() {
		r := store.Pruned{Events: 1}
		if err := rows.Scan(&r.FirstID, &r.Bytes); err != nil {
			return nil, err
		}
		r.LastID = r.FirstID
		out = append(out, r)
	}
	return out, rows.Err()
}

// rowsToFree returns how many of oldest (rows of class in deletion order) a
// size-bound batch deletes when the total is total: the fewest that free
// the excess over p.MaxBytes plus the size of the batch's own record, or
// all of them if they hold less. It returns 0 when deleting those would not
// free more bytes than the record adds.
func (db *DB) rowsToFree(p store.PrunePolicy, now time.Time, class events.Class, oldest []store.Pruned, total int64) (int, error) {
	over := total - p.MaxBytes
	// The record's size depends on the rows it counts (digits of counts,
	// bytes and ids): grow the estimate until the rows cover it. rec only
	// grows and a record's size is bounded, so this ends.
	var rec int64
	for {
		var got store.Pruned
		n := 0
		for n < len(oldest) && got.Bytes < over+rec {
			got.Add(oldest[n])
			n++
		}
		size, err := db.storedSize(pruneRecord(p, now, class, got, total-got.Bytes))
		if err != nil {
			return 0, err
		}
		if size <= rec || n == len(oldest) {
			if got.Bytes <= size {
				return 0, nil
			}
			return n, nil
		}
		rec = size
	}
}

// storedSize returns the size insertEvents records for e.
func (db *DB) storedSize(e events.Event) (int64, error) {
	e.ID = 0
	e.Time = fromNanos(db.nanos(e.Time))
	body, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	return eventSize(e, body), nil
}
