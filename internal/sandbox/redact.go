package sandbox

import (
	"bytes"
	"strings"
	"sync"
)

// Redaction of secret values in guest output.
const (
	// minRedact is the shortest value redacted: shorter ones would mangle
	// ordinary log text (the response DLP uses the same bound).
	minRedact = 8
	// maxRedact bounds how many distinct values a function version keeps
	// for redaction; the oldest goes first.
	maxRedact = 64
	// redactMarker replaces a secret value in a log line.
	redactMarker = "[REDACTED:secret]"
)

// secretSet holds the secret values a function version's guests have read
// through secret_get, so that its stdout/stderr and warden.log lines never
// carry them into warden's log, even when an instance cached a value and
// logs it in a later invocation. Safe for concurrent use.
type secretSet struct {
	mu   sync.Mutex
	vals [][]byte // copies, oldest first
}

// add remembers v (copied) if it is long enough and new.
func (s *secretSet) add(v []byte) {
	if s == nil || len(v) < minRedact {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.vals {
		if bytes.Equal(have, v) {
			return
		}
	}
	if len(s.vals) == maxRedact {
		clear(s.vals[0])
		s.vals = append(s.vals[:0], s.vals[1:]...)
	}
	s.vals = append(s.vals, bytes.Clone(v))
}

// redact replaces every remembered value in text.
func (s *secretSet) redact(text string) string {
	if s == nil {
		return text
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vals {
		if strings.Contains(text, string(v)) {
			text = strings.ReplaceAll(text, string(v), redactMarker)
		}
	}
	return text
}
