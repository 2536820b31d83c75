package dlp

import (
	"bytes"
	"fmt"
	"testing"
)

// mixedDoc returns about n bytes of JSON, logs and prose with a finding of
// some kind roughly every 2 KiB.
func mixedDoc(n int) []byte {
	hits := []string{
		`"pan":"4111 1111 1111 1111"`,
		`"ssn":"219-09-9999"`,
		`"key":"` + awsKeyID + `"`,
		`"Authorization":"Bearer abcdef0123456789abcdef"`,
		`"token":"` + jwtToken + `"`,
		`"gh":"` + ghToken + `"`,
		`"pem":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrY\n-----END EC PRIVATE KEY-----"`,
		`"note":"exact-secret-value-1"`,
	}
	clean := cleanJSON(2048)
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.Write(clean[:len(clean)-2])
		fmt.Fprintf(&b, ",%s}\n2024-01-15T10:30:00Z INFO request id=123e4567-e89b-12d3-a456-426614174000 took 12.5ms version v1.2.3\n", hits[i%len(hits)])
	}
	return b.Bytes()[:n]
}

func BenchmarkScan(b *testing.B) {
	s := New(Options{Exact: [][]byte{[]byte("exact-secret-value-1"), []byte("exact-secret-value-2")}})
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"clean_json_1KiB", cleanJSON(1024)},
		{"mixed_64KiB", mixedDoc(64 << 10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				s.Scan(bc.body)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(len(bc.body))/1024), "ns/KiB")
		})
	}
}

func BenchmarkRedact(b *testing.B) {
	s := New(Options{Exact: [][]byte{[]byte("exact-secret-value-1"), []byte("exact-secret-value-2")}})
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"clean_json_1KiB", cleanJSON(1024)},
		{"mixed_64KiB", mixedDoc(64 << 10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				s.Redact(bc.body)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(len(bc.body))/1024), "ns/KiB")
		})
	}
}

func TestBenchInputs(t *testing.T) {
	s := New(Options{Exact: [][]byte{[]byte("exact-secret-value-1")}})
	if f := s.Scan(cleanJSON(1024)); f != nil {
		t.Errorf("Scan(cleanJSON) = %v, want nil", f)
	}
	f := s.Scan(mixedDoc(64 << 10))
	if len(f) < 8 {
		t.Errorf("Scan(mixedDoc) = %v, want findings of every planted kind", f)
	}
}
