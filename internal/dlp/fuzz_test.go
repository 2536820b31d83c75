package dlp

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// fuzzExact are the fixed secrets every fuzz scanner matches.
var fuzzExact = []string{"fuzz-secret-0001", `q"uo<te>d/sec`, "SECRETVALUE"}

// FuzzRedact checks, for any body and any extra exact secret: no panic,
// the input is not modified, a body with no findings comes back as the same
// slice, Scan reports what Redact reports, the output has nothing left to
// find (Redact is idempotent), and the output holds no exact secret.
func FuzzRedact(f *testing.F) {
	for _, tc := range cases {
		f.Add([]byte(tc.in), []byte("extra-secret-99"))
	}
	for _, s := range []string{
		"SECRETVALUE4111111111111111",
		"fuzz-secret-0001fuzz-secret-0001",
		"Bearer fuzz-secret-0001-abc",
		"-----BEGIN RSA PRIVATE KEY-----" + strings.Repeat("-----BEGIN RSA PRIVATE KEY-----", 3),
		"[REDACTED:card]4111111111111111",
		string(cleanJSON(1024)),
	} {
		f.Add([]byte(s), []byte("]1234567"))
	}
	markers := New(Options{}).markers
	f.Fuzz(func(t *testing.T, body, extra []byte) {
		exact := [][]byte{extra}
		for _, e := range fuzzExact {
			exact = append(exact, []byte(e))
		}
		s := New(Options{Exact: exact})
		orig := bytes.Clone(body)

		out, found := s.Redact(body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("Redact modified its input")
		}
		if scanned := s.Scan(body); !reflect.DeepEqual(scanned, found) {
			t.Fatalf("Scan(%q) = %v, Redact findings = %v", body, scanned, found)
		}
		if found == nil && !sameSlice(out, body) {
			t.Fatalf("Redact(%q) with no findings = %q, want the input itself", body, out)
		}
		if found != nil && bytes.Equal(out, body) {
			t.Fatalf("Redact(%q) reported %v but changed nothing", body, found)
		}
		for _, fd := range found {
			if fd.Count <= 0 {
				t.Fatalf("Redact(%q) finding %v has count <= 0", body, fd)
			}
		}
		if again := s.Scan(out); again != nil {
			t.Fatalf("Scan(Redact(%q)) = %v on %q, want nothing", body, again, out)
		}
		if out2, f2 := s.Redact(out); f2 != nil || !sameSlice(out2, out) {
			t.Fatalf("Redact(Redact(%q)) = %q, %v; want unchanged", body, out2, f2)
		}
		for _, e := range exact {
			if len(e) < MinExactLen || inAny(markers[:], e) {
				continue // documented as not matched
			}
			if bytes.Contains(out, e) {
				t.Fatalf("Redact(%q) = %q still contains exact secret %q", body, out, e)
			}
		}
	})
}

func inAny(ms [][]byte, e []byte) bool {
	for _, m := range ms {
		if bytes.Contains(m, e) {
			return true
		}
	}
	return false
}
