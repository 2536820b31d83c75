package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGoldenValid parses testdata/valid/*.yaml and compares the Manifest,
// as indented JSON, with the .json file next to it.
func TestGoldenValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 12 {
		t.Fatalf("found %d valid cases, want at least 12", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse("warden.yaml", data)
			if err != nil {
				t.Fatalf("Parse(%s) = %v, want success", file, err)
			}
			got, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			compareGolden(t, strings.TrimSuffix(file, ".yaml")+".json", got)
		})
	}
}

// TestGoldenInvalid parses testdata/invalid/*.yaml and compares the error
// text with the .err file next to it.
func TestGoldenInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 35 {
		t.Fatalf("found %d invalid cases, want at least 35", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if name == "oversize" {
				// Kept small in the repository; grown past MaxSize here.
				data = append(data, bytes.Repeat([]byte("# padding\n"), MaxSize/10+1)...)
			}
			m, err := Parse("warden.yaml", data)
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", file, m)
			}
			var one *Error
			if !errors.As(err, &one) {
				t.Fatalf("Parse(%s) error is %T, want *Error or ErrorList", file, err)
			}
			compareGolden(t, strings.TrimSuffix(file, ".yaml")+".err", []byte(err.Error()+"\n"))
		})
	}
}

func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update to accept):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}
