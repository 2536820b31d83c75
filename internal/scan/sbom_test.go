package scan

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

var sbomReport = &Report{
	GoVersion: "go1.26.0",
	Main:      &Module{Path: "example.com/fn", Version: "(devel)"},
	Modules: []Module{
		{Path: "github.com/a/b", Version: "v1.2.3", Sum: "h1:abcd="},
		{Path: "github.com/Old/Thing", Version: "v2.0.0+incompatible"},
		{Path: "../local/fork", Version: ""},
	},
}

const digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestSBOM(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 0, 0, time.FixedZone("CET", 3600))
	out, err := SBOM(sbomReport, "shop", "orders", "v7", "sha256:"+digest, at)
	if err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("decode SBOM: %v\n%s", err, out)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != sbomSpec {
		t.Errorf("format %q version %v, want CycloneDX %v", bom.BOMFormat, bom.SpecVersion, sbomSpec)
	}
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(bom.SerialNumber) {
		t.Errorf("serial number %q is not a version 5 UUID URN", bom.SerialNumber)
	}
	md := bom.Metadata
	if md == nil || md.Component == nil {
		t.Fatalf("metadata = %+v, want a component", md)
	}
	if md.Timestamp != "2026-03-01T11:30:00Z" {
		t.Errorf("timestamp = %q, want 2026-03-01T11:30:00Z", md.Timestamp)
	}
	c := md.Component
	if c.Name != "shop/orders" || c.Version != "v7" || c.Type != cdx.ComponentTypeApplication {
		t.Errorf("metadata component = %+v, want application shop/orders v7", c)
	}
	if c.Hashes == nil || len(*c.Hashes) != 1 || (*c.Hashes)[0].Algorithm != cdx.HashAlgoSHA256 || (*c.Hashes)[0].Value != digest {
		t.Errorf("metadata hashes = %+v, want SHA-256 %s", c.Hashes, digest)
	}
	purls := map[string]string{} // name -> purl
	var refs []string
	for _, comp := range *bom.Components {
		purls[comp.Name] = comp.PackageURL
		refs = append(refs, comp.BOMRef)
		if comp.Type != cdx.ComponentTypeLibrary {
			t.Errorf("component %s type = %s, want library", comp.Name, comp.Type)
		}
	}
	wantPurls := map[string]string{
		"example.com/fn":       "pkg:golang/example.com/fn",
		"stdlib":               "pkg:golang/stdlib@go1.26.0",
		"github.com/a/b":       "pkg:golang/github.com/a/b@v1.2.3",
		"github.com/Old/Thing": "pkg:golang/github.com/Old/Thing@v2.0.0%2Bincompatible",
		"../local/fork":        "",
	}
	for name, want := range wantPurls {
		got, ok := purls[name]
		if !ok || got != want {
			t.Errorf("component %s purl = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if len(purls) != len(wantPurls) {
		t.Errorf("components = %v, want %d", purls, len(wantPurls))
	}
	deps := *bom.Dependencies
	if len(deps) != 1 || deps[0].Ref != c.BOMRef || deps[0].Dependencies == nil || !slices.Equal(*deps[0].Dependencies, refs) {
		t.Errorf("dependencies = %+v, want %s -> %q", deps, c.BOMRef, refs)
	}

	// Deterministic: the same arguments give the same bytes; another time
	// gives another serial number and timestamp and nothing else.
	again, err := SBOM(sbomReport, "shop", "orders", "v7", digest, at.UTC())
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("SBOM is not deterministic (err %v):\n%s\n---\n%s", err, out, again)
	}
	later, err := SBOM(sbomReport, "shop", "orders", "v7", digest, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	json.Unmarshal(out, &a)
	json.Unmarshal(later, &b)
	if a["serialNumber"] == b["serialNumber"] {
		t.Error("SBOMs at different times share a serial number")
	}
	delete(a, "serialNumber")
	delete(b, "serialNumber")
	a["metadata"].(map[string]any)["timestamp"] = nil
	b["metadata"].(map[string]any)["timestamp"] = nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Errorf("SBOMs at different times differ beyond serial and timestamp:\n%s\n%s", ja, jb)
	}
}

func TestSBOMErrors(t *testing.T) {
	at := time.Unix(0, 0)
	tests := []struct {
		name             string
		r                *Report
		ns, fn, artifact string
		want             string
	}{
		{"nil report", nil, "ns", "fn", digest, "no report"},
		{"no name", &Report{}, "ns", "", digest, "name"},
		{"short digest", &Report{}, "ns", "fn", digest[:60], "not a SHA-256"},
		{"not hex", &Report{}, "ns", "fn", strings.Repeat("z", 64), "not a SHA-256"},
		{"other algorithm", &Report{}, "ns", "fn", "sha512:" + digest, "not a SHA-256"},
	}
	for _, tt := range tests {
		_, err := SBOM(tt.r, tt.ns, tt.fn, "v1", tt.artifact, at)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: SBOM error = %v, want one saying %q", tt.name, err, tt.want)
		}
	}
	// A report with no Go information is still a valid BOM.
	out, err := SBOM(&Report{}, "ns", "fn", "", digest, at)
	if err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil || bom.Components != nil {
		t.Errorf("SBOM of an empty report = %s (err %v), want no components", out, err)
	}
}

// TestSBOMFromScan runs the whole path on a real Go module.
func TestSBOMFromScan(t *testing.T) {
	r := mustScan(t, Input{Wasm: exampleModule(t)})
	out, err := SBOM(r, "default", "echo-json", "1", digest, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"purl": "pkg:golang/warden"`, `"purl": "pkg:golang/stdlib@` + r.GoVersion + `"`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("SBOM lacks %s:\n%s", want, out)
		}
	}
}
