package scan

import "testing"

// BenchmarkScan scans examples/echo-json (a 3.3 MB Go reactor with about
// 0.9 MB of data in 37,000 segments): parsing, build info and the
// credential rules over its data.
func BenchmarkScan(b *testing.B) {
	wasm := exampleModule(b)
	if err := loadDetectors(); err != nil { // built once per process, not per scan
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Scan(Input{Wasm: wasm}); err != nil {
			b.Fatal(err)
		}
	}
}
