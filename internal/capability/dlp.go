package capability

import (
	"bytes"
	"context"
	"sync"

	"warden/internal/dlp"
)

// dlpCache holds a function's response scanners built from the exact values
// of its secrets, rebuilt when a value changes (rotation).
type dlpCache struct {
	mu        sync.Mutex
	values    [][]byte
	full      *dlp.Scanner // patterns and the exact values
	exactOnly *dlp.Scanner // the exact values only ("dlp: off")
}

// SecretScanners returns the function's answer scanners: full finds the
// usual patterns and the exact values of the secrets the function holds
// (current and, in the grace period, previous versions, in every encoding
// dlp.EncodedForms lists); exact finds only those values. Both are nil when
// the function holds no secret. An error means the values could not be
// read: the caller must not pass the answer unchecked.
func (h *Host) SecretScanners(ctx context.Context) (full, exact *dlp.Scanner, err error) {
	if len(h.secretsSorted) == 0 {
		return nil, nil, nil
	}
	vals, err := h.SecretValues(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := &h.dlp
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full != nil && sameValues(c.values, vals) {
		for _, v := range vals {
			clear(v)
		}
		return c.full, c.exactOnly, nil
	}
	for _, v := range c.values {
		clear(v)
	}
	c.values = vals
	c.full = dlp.New(dlp.Options{Exact: vals})
	c.exactOnly = dlp.New(dlp.Options{Exact: vals, ExactOnly: true})
	return c.full, c.exactOnly, nil
}

func sameValues(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
