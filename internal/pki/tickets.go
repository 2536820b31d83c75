package pki

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"time"
)

// TicketLifetime is how long a TLS session ticket stays usable at most.
const TicketLifetime = 24 * time.Hour

// RotateTickets gives cfg fresh session ticket keys now and every
// lifetime/2 until ctx ends, keeping only the current and the previous key.
// A ticket is accepted only while its key is one of those two, so no ticket
// older than lifetime resumes a session. cfg must be the configuration the
// listener really uses (not a copy made before the call).
func RotateTickets(ctx context.Context, cfg *tls.Config, lifetime time.Duration) {
	var prev [32]byte
	rotate := func() {
		var next [32]byte
		rand.Read(next[:]) // never fails (crypto/rand)
		keys := [][32]byte{next}
		if prev != ([32]byte{}) {
			keys = append(keys, prev)
		}
		cfg.SetSessionTicketKeys(keys)
		prev = next
	}
	rotate()
	go func() {
		t := time.NewTicker(lifetime / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				rotate()
			}
		}
	}()
}
