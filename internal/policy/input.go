package policy

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the document a policy sees as `input`.
//
// The JSON tags are the wire form (what `warden policy test --input` reads).
// The policy's view differs from encoding/json in one way: every field is
// present, fields tagged omitempty included, and a nil slice or map is an
// empty array or object. A policy can therefore test `f.fixed == ""` or
// `count(input.diff.addedEgress) > 0` without guarding against an absent
// field or null, and a rule never silently fails to match because of one.
type Input struct {
	Namespace string         `json:"namespace"`
	Function  string         `json:"function"`
	Version   int            `json:"version"`            // the version this deploy would create (0 when unknown)
	Previous  int            `json:"previous,omitempty"` // the active version, 0 for a new function
	Manifest  map[string]any `json:"manifest"`           // the parsed manifest as JSON (field names as in warden.yaml)
	Findings  []Finding      `json:"findings"`
	Signer    Signer         `json:"signer"`
	Diff      Diff           `json:"diff"`
	Actor     Actor          `json:"actor"`
	Time      time.Time      `json:"time"` // RFC 3339 in the JSON
}

// Finding is one thing a scan found in the artifact or its dependencies.
type Finding struct {
	Kind     string   `json:"kind"`               // "vulnerability", "patch", "credential", "wasm", "lint"
	Rule     string   `json:"rule"`               // e.g. "GO-2023-2102", "aws-access-token", "lint.auth-none-write"
	Severity string   `json:"severity"`           // "critical","high","medium","low","info" ("" = unknown)
	Message  string   `json:"message"`            // a sentence for people
	Location string   `json:"location,omitempty"` // where in the artifact or source
	Module   string   `json:"module,omitempty"`   // vulnerabilities and patch notices: the module path ("stdlib" for the toolchain)
	Version  string   `json:"version,omitempty"`  // the version found
	Fixed    string   `json:"fixed,omitempty"`    // the fixed version ("" = no fix known)
	Aliases  []string `json:"aliases,omitempty"`  // other identifiers, e.g. CVE numbers
}

// Signer describes the deploy's signature check.
type Signer struct {
	Status  string `json:"status"` // "verified", "unverified", "unsigned"
	Mode    string `json:"mode"`   // the namespace's signing mode: "enforce", "warn", "off"
	KeyID   string `json:"keyId,omitempty"`
	KeyName string `json:"keyName,omitempty"`
}

// Diff is what the deploy changes relative to the active version.
type Diff struct {
	AddedSecrets []string `json:"addedSecrets"` // secret grants the active version does not hold
	AddedKV      []string `json:"addedKV"`      // "bucket:read|write" grants widened
	AddedEgress  []string `json:"addedEgress"`  // egress origins added
	Widened      []string `json:"widened"`      // every widening, as sentences
	Relaxed      []string `json:"relaxed"`      // relaxed route protection, as sentences
	NewCode      bool     `json:"newCode"`      // the artifact differs from the active version's
}

// Actor is who asked for the deploy.
type Actor struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

// value builds the document the policy sees directly as an AST value: it
// is the hot path of Eval, and building it by hand costs a fraction of a
// JSON round trip. TestDocumentMatchesJSON keeps it equal to the wire form.
func (in *Input) value() (ast.Value, error) {
	manifest := ast.NewObject()
	if len(in.Manifest) > 0 {
		v, err := ast.InterfaceToValue(in.Manifest)
		if err != nil {
			return nil, fmt.Errorf("input manifest: %w", err)
		}
		manifest = v.(ast.Object)
	}
	if y := in.Time.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("input time %v: year outside [0,9999]", in.Time)
	}
	findings := make([]*ast.Term, len(in.Findings))
	for i := range in.Findings {
		f := &in.Findings[i]
		findings[i] = ast.ObjectTerm(
			item("kind", f.Kind),
			item("rule", f.Rule),
			item("severity", f.Severity),
			item("message", f.Message),
			item("location", f.Location),
			item("module", f.Module),
			item("version", f.Version),
			item("fixed", f.Fixed),
			[2]*ast.Term{str("aliases"), strs(f.Aliases)},
		)
	}
	return ast.NewObject(
		item("namespace", in.Namespace),
		item("function", in.Function),
		[2]*ast.Term{str("version"), ast.InternedTerm(in.Version)},
		[2]*ast.Term{str("previous"), ast.InternedTerm(in.Previous)},
		[2]*ast.Term{str("manifest"), ast.NewTerm(manifest)},
		[2]*ast.Term{str("findings"), ast.ArrayTerm(findings...)},
		[2]*ast.Term{str("signer"), ast.ObjectTerm(
			item("status", in.Signer.Status),
			item("mode", in.Signer.Mode),
			item("keyId", in.Signer.KeyID),
			item("keyName", in.Signer.KeyName),
		)},
		[2]*ast.Term{str("diff"), ast.ObjectTerm(
			[2]*ast.Term{str("addedSecrets"), strs(in.Diff.AddedSecrets)},
			[2]*ast.Term{str("addedKV"), strs(in.Diff.AddedKV)},
			[2]*ast.Term{str("addedEgress"), strs(in.Diff.AddedEgress)},
			[2]*ast.Term{str("widened"), strs(in.Diff.Widened)},
			[2]*ast.Term{str("relaxed"), strs(in.Diff.Relaxed)},
			[2]*ast.Term{str("newCode"), ast.InternedTerm(in.Diff.NewCode)},
		)},
		[2]*ast.Term{str("actor"), ast.ObjectTerm(
			item("name", in.Actor.Name),
			[2]*ast.Term{str("roles"), strs(in.Actor.Roles)},
		)},
		item("time", in.Time.Format(time.RFC3339Nano)),
	), nil
}

func item(k, v string) [2]*ast.Term {
	return [2]*ast.Term{str(k), str(v)}
}

// strs is a string array term; nil is the empty array.
func strs(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = str(s)
	}
	return ast.ArrayTerm(ts...)
}

// str is a string term, shared for the field names of Input and the
// values that recur in every input (kinds, severities, signer states), so
// building a document allocates only for what varies. Terms are immutable
// once built (OPA shares its own interned terms the same way), so sharing
// them between concurrent evaluations is safe.
func str(s string) *ast.Term {
	if t, ok := common[s]; ok {
		return t
	}
	return ast.StringTerm(s)
}

var common = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	var fields func(reflect.Type)
	fields = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Slice:
			fields(t.Elem())
		case reflect.Struct:
			for f := range t.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				m[name] = ast.StringTerm(name)
				fields(f.Type)
			}
		}
	}
	fields(reflect.TypeFor[Input]())
	for _, v := range []string{
		"", "vulnerability", "patch", "credential", "wasm", "lint", "stdlib",
		"critical", "high", "medium", "low", "info",
		"verified", "unverified", "unsigned", "enforce", "warn", "off",
	} {
		m[v] = ast.StringTerm(v)
	}
	return m
}()

// inputSchema is the JSON schema of Input, derived from the Go types so it
// cannot drift from them. The compiler type-checks a policy against it: a
// reference to a field Input does not have (`input.signer.staus`) is a
// compile error, not a rule that silently never matches.
func inputSchema() map[string]any {
	return schemaOf(reflect.TypeFor[Input]())
}

func schemaOf(t reflect.Type) map[string]any {
	if t == reflect.TypeFor[time.Time]() {
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		// The manifest: any JSON object.
		return map[string]any{"type": "object"}
	case reflect.Struct:
		props := map[string]any{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			props[name] = schemaOf(f.Type)
		}
		return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	}
	panic("policy: no schema for " + t.String())
}
