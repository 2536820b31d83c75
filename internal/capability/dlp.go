package capability

import (
	"bytes"
	"context"
	"sync"

	"warden/internal/dlp"
)

// dlpCache is a function's response scanner with the exact values of its
// secrets, rebuilt when a value changes (rotation).
type dlpCache struct {
	mu      sync.Mutex
	values  [][]byte
	scanner *dlp.Scanner
}

// DLP returns a response scanner that, besides the usual patterns, finds
// the exact values of the secrets the function holds (current and, in the
// grace period, previous versions); nil when the function holds none. An
// error means the values could not be read: the caller must not pass the
// response unchecked.
func (h *Host) DLP(ctx context.Context) (*dlp.Scanner, error) {
	if len(h.secretsSorted) == 0 {
		return nil, nil
	}
	vals, err := h.SecretValues(ctx)
	if err != nil {
		return nil, err
	}
	c := &h.dlp
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.scanner != nil && sameValues(c.values, vals) {
		for _, v := range vals {
			clear(v)
		}
		return c.scanner, nil
	}
	for _, v := range c.values {
		clear(v)
	}
	c.values = vals
	c.scanner = dlp.New(dlp.Options{Exact: vals})
	return c.scanner, nil
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
