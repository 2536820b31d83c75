package validate

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const order = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["item", "qty"],
  "additionalProperties": false,
  "properties": {
    "item": {"type": "string", "maxLength": 20},
    "qty": {"type": "integer", "minimum": 1},
    "tags": {"type": "array", "items": {"type": "string"}}
  }
}`

func TestValidate(t *testing.T) {
	s, err := Compile("./order.schema.json", []byte(order))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, body string
		want       []string
		notJSON    bool
	}{
		{"valid", `{"item":"tea","qty":2}`, nil, false},
		{"missing", `{"item":"tea"}`, []string{"/: required"}, false},
		{"wrong type", `{"item":"tea","qty":"two"}`, []string{"/qty: type"}, false},
		{"below minimum", `{"item":"tea","qty":0}`, []string{"/qty: minimum"}, false},
		{"extra field", `{"item":"tea","qty":1,"admin":true}`, []string{"/: additionalProperties"}, false},
		{"nested", `{"item":"tea","qty":1,"tags":["a",7]}`, []string{"/tags/1: type"}, false},
		{"not json", `{"item":`, nil, true},
		{"trailing garbage", `{"item":"tea","qty":1} x`, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Validate([]byte(c.body))
			if c.notJSON {
				if !errors.Is(err, ErrNotJSON) {
					t.Fatalf("Validate(%q) err = %v, want ErrNotJSON", c.body, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("Validate(%q) = %q, %v; want %q", c.body, got, err, c.want)
			}
		})
	}
	// Values never appear in the problems.
	got, _ := s.Validate([]byte(`{"item":"SECRET-VALUE-123456789012345","qty":-5}`))
	if strings.Contains(strings.Join(got, " "), "SECRET") || strings.Contains(strings.Join(got, " "), "-5") {
		t.Fatalf("problems %q hold a value from the body", got)
	}
}

func TestCompileRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":     `{"type":`,
		"bad schema":   `{"type": 12}`,
		"file ref":     `{"$ref": "file:///etc/passwd"}`,
		"http ref":     `{"$ref": "http://127.0.0.1:1/schema.json"}`,
		"oversize":     `{"description": "` + strings.Repeat("x", MaxSchemaSize) + `"}`,
		"relative ref": `{"$ref": "other.json"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile("s.json", []byte(doc)); err == nil {
				t.Fatalf("Compile(%s) succeeded", name)
			}
		})
	}
	// A local $ref inside the document is fine.
	if _, err := Compile("s.json", []byte(`{"$defs":{"n":{"type":"integer"}},"$ref":"#/$defs/n"}`)); err != nil {
		t.Fatalf("local $ref: %v", err)
	}
}

func TestJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON": true,
		"application/problem+json": true, "text/plain": false, "": false, "application/xml": false, "text/json": false,
	} {
		if got := JSONContentType(ct); got != want {
			t.Errorf("JSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	s, err := Compile("order", []byte(order))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"item":"tea","qty":2}`))
	f.Add([]byte(`[1,2,{"a":null}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		problems, err := s.Validate(body)
		if err != nil && !errors.Is(err, ErrNotJSON) {
			t.Fatalf("Validate err = %v", err)
		}
		if len(problems) > maxProblems+1 {
			t.Fatalf("%d problems, want at most %d", len(problems), maxProblems+1)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	s, _ := Compile("order", []byte(order))
	body := []byte(`{"item":"tea","qty":2,"tags":["a","b"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if p, _ := s.Validate(body); p != nil {
			b.Fatal(p)
		}
	}
}
