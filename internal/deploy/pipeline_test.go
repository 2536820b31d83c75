package deploy

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"warden/internal/events"
	"warden/internal/store"
	"warden/internal/vulndb"
)

// moduleWithData is module(tag) with one active data segment holding data
// at address 0 (where a real module keeps its strings and build info).
func moduleWithData(tag string, data []byte) []byte {
	b := module(tag)
	// Insert the data section (id 11) right after the code section, before
	// the trailing custom section.
	codeEnd := strings.Index(string(b), "\x0a\x04\x01\x02\x00\x0b") + 6
	if codeEnd < 6 {
		panic("moduleWithData: no code section in module()")
	}
	seg := []byte{1, 0, 0x41, 0, 0x0b}
	seg = appendULEB(seg, uint64(len(data)))
	seg = append(seg, data...)
	sec := append([]byte{11}, appendULEB(nil, uint64(len(seg)))...)
	sec = append(sec, seg...)
	out := append([]byte{}, b[:codeEnd]...)
	out = append(out, sec...)
	return append(out, b[codeEnd:]...)
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// buildInfo is a Go module-info block as the linker writes it: the text
// debug.BuildInfo.String prints, between its two 16-byte sentinels.
func buildInfo(deps ...string) []byte {
	text := "go\tgo1.26.0\npath\texample.com/fn\nmod\texample.com/fn\t(devel)\t\n"
	for _, d := range deps {
		path, ver, _ := strings.Cut(d, "@")
		text += "dep\t" + path + "\t" + ver + "\t\n"
	}
	start := "\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6"
	end := "\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2"
	return []byte("padding" + start + text + end + "padding")
}

// advisory loads one real advisory from the vulnerability package's test
// database.
func advisory(t *testing.T, id string) *vulndb.Entry {
	t.Helper()
	b, err := os.ReadFile("../vulndb/testdata/vulndb/ID/" + id + ".json")
	if err != nil {
		t.Fatal(err)
	}
	e, err := vulndb.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pipelineFixture is a service with a vulnerability index the test sets.
func pipelineFixture(t testing.TB) (*fixture, *Vulns) {
	t.Helper()
	f := newFixture(t)
	v := &Vulns{}
	s, err := New(Config{Store: f.db, Engine: f.eng, Events: f.ev, Trust: f.db, Vulns: v})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	f.svc = s
	return f, v
}

func (f *fixture) deployModule(m string, wasm []byte, mayGrant bool) (Result, error) {
	return f.svc.Deploy(context.Background(), Request{ManifestName: "warden.yaml", Manifest: []byte(m), Artifact: wasm,
		Origin: Origin{Actor: "deployer", MayGrant: mayGrant}})
}

func wantRefusal(t *testing.T, err error, step, want string) *Error {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) || de.Step != step || !strings.Contains(de.Msg, want) {
		t.Fatalf("Deploy = %v, want a refusal at step %s naming %q", err, step, want)
	}
	return de
}

// TestDefaultPolicyRefuses: the built-in policy refuses a module embedding
// a cloud credential and one whose dependency has a fixable high
// vulnerability, each at the policy step with the finding named, leaving
// the active version.
func TestDefaultPolicyRefuses(t *testing.T) {
	f, vulns := pipelineFixture(t)
	ctx := context.Background()
	if err := f.db.DeletePolicy(ctx, "default"); err != nil { // the built-in policy
		t.Fatal(err)
	}
	if _, err := f.deployModule(baseManifest, moduleWithData("v1", buildInfo("golang.org/x/text@v0.3.8")), false); err != nil {
		t.Fatalf("clean deploy: %v", err)
	}
	vulns.Set(vulndb.NewIndex([]*vulndb.Entry{advisory(t, "GO-2022-1059")}))

	key := "AKIA" + "Q3EGRDXUMZ7W5PYV" // shaped like an access key id, not a real one
	_, err := f.deployModule(baseManifest, moduleWithData("v2", []byte("config: aws_access_key_id="+key+"\n")), true)
	de := wantRefusal(t, err, StepPolicy, "embedded credential")
	if strings.Contains(de.Msg, key) || strings.Contains(strings.Join(de.Details, " "), key[4:]) {
		t.Fatalf("the refusal shows the credential: %q", de.Msg)
	}
	_, err = f.deployModule(baseManifest, moduleWithData("v3", buildInfo("golang.org/x/text@v0.3.7")), true)
	wantRefusal(t, err, StepPolicy, "GO-2022-1059")
	for _, e := range f.ev.Events() {
		if strings.Contains(e.Reason, key) || strings.Contains(strings.Join(mapValues(e.Labels), " "), key) {
			t.Fatalf("an event shows the credential: %+v", e)
		}
	}
	if fn, _ := f.db.Function(ctx, "default", "fn"); fn.ActiveVersion != 1 {
		t.Fatalf("active version = %d, want 1", fn.ActiveVersion)
	}
	pol := find(f.ev, TypeDeployPolicy)
	if len(pol) != 3 || pol[1].Outcome != events.OutcomeDenied || pol[2].Outcome != events.OutcomeDenied {
		t.Fatalf("policy events = %+v, want a success then two denials", pol)
	}
	// The fixed version passes, and its SBOM names the dependency.
	res, err := f.deployModule(baseManifest, moduleWithData("v4", buildInfo("golang.org/x/text@v0.3.8")), false)
	if err != nil {
		t.Fatalf("deploy with the fixed dependency: %v", err)
	}
	v, _ := f.db.Version(ctx, "default", "fn", res.Version.Version)
	if !strings.Contains(string(v.SBOM), "pkg:golang/golang.org/x/text@v0.3.8") || len(v.Scan) == 0 {
		t.Fatalf("stored SBOM %q / scan %q, want the dependency's purl", v.SBOM, v.Scan)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestRescanFindsNewAdvisories: a version deployed clean gets a finding
// when an advisory that matches it arrives later, and the finding keeps
// when it was first seen.
func TestRescanFindsNewAdvisories(t *testing.T) {
	f, vulns := pipelineFixture(t)
	ctx := context.Background()
	if _, err := f.deployModule(baseManifest, moduleWithData("v1", buildInfo("golang.org/x/text@v0.3.7")), false); err != nil {
		t.Fatalf("deploy before the advisory is known: %v", err)
	}
	open := func() []store.Finding {
		fs, err := f.db.Findings(ctx, "default", "fn", true)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Finding
		for _, x := range fs {
			if x.Kind == KindVulnerability {
				out = append(out, x)
			}
		}
		return out
	}
	if got := open(); len(got) != 0 {
		t.Fatalf("vulnerability findings before the import = %+v", got)
	}
	vulns.Set(vulndb.NewIndex([]*vulndb.Entry{advisory(t, "GO-2022-1059")}))
	if n, err := f.svc.Rescan(ctx); err != nil || n != 1 {
		t.Fatalf("Rescan = %d, %v; want 1 version", n, err)
	}
	got := open()
	if len(got) != 1 || got[0].Rule != "GO-2022-1059" || got[0].Found != "v0.3.7" || got[0].Fixed != "v0.3.8" {
		t.Fatalf("findings after the import = %+v", got)
	}
	first := got[0].FirstSeen
	if _, err := f.svc.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	if again := open(); len(again) != 1 || !again[0].FirstSeen.Equal(first) {
		t.Fatalf("a second rescan changed the finding: %+v", again)
	}
	// The advisory withdrawn from the index: resolved.
	vulns.Set(vulndb.NewIndex(nil))
	if _, err := f.svc.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	if got := open(); len(got) != 0 {
		t.Fatalf("findings after the advisory left = %+v", got)
	}
}

// TestNamespacePolicy: a namespace's own policy decides; one that cannot
// run refuses (fail closed).
func TestNamespacePolicy(t *testing.T) {
	f, _ := pipelineFixture(t)
	ctx := context.Background()
	set := func(src string) {
		t.Helper()
		if err := f.db.SetPolicy(ctx, store.Policy{Namespace: "default", Source: []byte(src), Digest: fingerprint(src), SetBy: "root"}); err != nil {
			t.Fatal(err)
		}
	}
	set(`package warden.deploy

deny contains "no new functions on this namespace" if object.get(input, "previous", 0) == 0
`)
	_, err := f.deployModule(baseManifest, module("v1"), true)
	wantRefusal(t, err, StepPolicy, "no new functions on this namespace")

	set(`package warden.deploy

deny contains msg if {
	some f in input.findings
	f.kind == "lint"
	msg := sprintf("lint: %s", [f.rule])
}

approve contains "new code needs a second look" if input.diff.newCode
`)
	// baseManifest is lint-clean: allowed, but new code needs a second
	// person's approval: stored pending, not served.
	res, err := f.deployModule(baseManifest, module("v1"), true)
	if err != nil || !res.Pending || res.Version.Approval == nil || res.Version.Approval.Reasons[0] != "new code needs a second look" {
		t.Fatalf("deploy needing approval = %+v, %v; want pending with the reason", res, err)
	}
	if _, ok := f.svc.Get("default", "fn"); ok {
		t.Fatal("a pending version is served")
	}
	if _, err := f.svc.Approve(ctx, "default", "fn", 1, Origin{Actor: "second", MayGrant: true}, ""); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	// auth: none on a POST route is a lint finding this policy denies.
	writeOpen := strings.Replace(baseManifest, `"GET /fn"`, `"POST /fn"`, 1)
	writeOpen = strings.Replace(writeOpen, "auth: apikey\n    scopes: [fn:read]\n", "auth: none\n", 1)
	_, err = f.deployModule(writeOpen, module("v2"), true)
	wantRefusal(t, err, StepPolicy, "lint: lint.auth-none-write")

	// A stored policy that no longer compiles, one whose rule fails at
	// run time: refused.
	set("package warden.deploy\n\ndeny contains msg if {\n")
	_, err = f.deployModule(baseManifest, module("v3"), true)
	wantRefusal(t, err, StepPolicy, "cannot run")
	set(`package warden.deploy

deny contains msg if {
	x := 1 / count([])
	msg := sprintf("%v", [x])
}
`)
	_, err = f.deployModule(baseManifest, module("v3"), true)
	wantRefusal(t, err, StepPolicy, "failed to evaluate")
	if fn, _ := f.db.Function(ctx, "default", "fn"); fn.ActiveVersion != 1 {
		t.Fatalf("active version = %d, want 1", fn.ActiveVersion)
	}
}

// TestGivenSBOM: a module warden cannot read the build info of (another
// language) brings its SBOM: the SBOM is stored, and its Go components are
// matched; an SBOM that is not CycloneDX is refused at the scan step.
func TestGivenSBOM(t *testing.T) {
	f, vulns := pipelineFixture(t)
	ctx := context.Background()
	if err := f.db.DeletePolicy(ctx, "default"); err != nil { // the built-in policy
		t.Fatal(err)
	}
	vulns.Set(vulndb.NewIndex([]*vulndb.Entry{advisory(t, "GO-2022-1059")}))
	bom := func(text string) []byte {
		return []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[
			{"type":"library","name":"left-pad","version":"1.3.0","purl":"pkg:npm/left-pad@1.3.0"},
			{"type":"library","name":"golang.org/x/text","version":"` + text + `","purl":"pkg:golang/golang.org/x/text@` + text + `"}]}`)
	}
	req := func(tag string, sbom []byte) Request {
		return Request{ManifestName: "warden.yaml", Manifest: []byte(baseManifest), Artifact: module(tag), SBOM: sbom,
			Origin: Origin{Actor: "dev", MayGrant: true}}
	}
	_, err := f.svc.Deploy(ctx, req("v1", bom("v0.3.7")))
	wantRefusal(t, err, StepPolicy, "GO-2022-1059")
	res, err := f.svc.Deploy(ctx, req("v1", bom("v0.3.8")))
	if err != nil {
		t.Fatalf("deploy with a clean SBOM: %v", err)
	}
	v, _ := f.db.Version(ctx, "default", "fn", res.Version.Version)
	if !strings.Contains(string(v.SBOM), "pkg:npm/left-pad@1.3.0") {
		t.Fatalf("stored SBOM = %s, want the one given", v.SBOM)
	}
	_, err = f.svc.Deploy(ctx, req("v2", []byte(`{"spdxVersion":"SPDX-2.3"}`)))
	wantRefusal(t, err, StepScan, "sbom")
}
