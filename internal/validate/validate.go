// Package validate owns request validation against a route's JSON Schema
// (draft 2020-12) before a function runs.
//
// validate never loads a schema or a $ref from a file or the network (a
// schema is self-contained, uploaded with its version), and never puts a
// value from the request into what it reports: only where validation failed
// and which keyword failed.
package validate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxSchemaSize bounds a schema document.
const MaxSchemaSize = 1 << 20

// maxProblems bounds the problems reported for one body.
const maxProblems = 20

// ErrNotJSON means the body is not a JSON document.
var ErrNotJSON = errors.New("body is not valid JSON")

// Schema is a compiled schema. Safe for concurrent use.
type Schema struct{ s *jsonschema.Schema }

type denyLoader struct{}

func (denyLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas may not refer to other documents (%s)", url)
}

// Compile compiles a schema document; name (the path in the manifest) is
// used in error messages. A document over MaxSchemaSize, not JSON, not a
// valid schema, or referring to any other document is refused.
func Compile(name string, doc []byte) (*Schema, error) {
	if len(doc) > MaxSchemaSize {
		return nil, fmt.Errorf("schema %s: larger than %d bytes", name, MaxSchemaSize)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema %s: not JSON", name)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(denyLoader{})
	url := "https://schema.warden.invalid/route.json" // never fetched: the loader refuses every URL
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("schema %s: %v", name, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %v", name, err)
	}
	return &Schema{s: s}, nil
}

// Validate checks body. It returns ErrNotJSON for a body that does not
// parse, and otherwise the failing places ("/items/0/qty: minimum"), sorted,
// at most 20, with no values in them; none when the body is valid.
func (s *Schema) Validate(body []byte) ([]string, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return nil, ErrNotJSON
	}
	err = s.s.Validate(v)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{"/: invalid"}, nil
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, pointer(e.InstanceLocation)+": "+keyword(e))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxProblems {
		out = append(out[:maxProblems], fmt.Sprintf("… and %d more", len(out)-maxProblems))
	}
	return out, nil
}

// pointer is a JSON Pointer (RFC 6901) to the instance location.
func pointer(loc []string) string {
	if len(loc) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, p := range loc {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

func keyword(e *jsonschema.ValidationError) string {
	if e.ErrorKind == nil {
		return "invalid"
	}
	kp := e.ErrorKind.KeywordPath()
	if len(kp) == 0 {
		return "invalid"
	}
	return strings.Join(kp, "/")
}

// JSONContentType reports whether a Content-Type names JSON
// (application/json or application/*+json).
func JSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}
