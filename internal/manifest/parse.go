package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits on the YAML itself, checked before the manifest is interpreted.
const (
	// MaxSize is the largest manifest Parse accepts, in bytes.
	MaxSize = 64 << 10
	// maxTokens bounds the work of the YAML parser, which is quadratic in
	// the number of entries of a mapping (BenchmarkParseLargest); a
	// realistic manifest has a few hundred tokens. Comments do not count.
	maxTokens = 8192
	// maxDepth bounds flow nesting ([ and {) and maxIndent block nesting;
	// the deepest manifest field is four levels down.
	maxDepth  = 32
	maxIndent = 128
)

// Parse parses and validates one manifest. filename is used only in error
// messages. On success every default is filled in (see types.go). On
// failure the error is an *Error when there is one problem, or an
// ErrorList with every problem found, sorted by line.
//
// # Notes
//   - Parse is safe for concurrent use and for untrusted input: it refuses
//     input over MaxSize, anchors, aliases, merge keys, tags, directives and
//     more than one document, and it bounds nesting and token count.
//   - Parse reads nothing but data.
func Parse(filename string, data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: filename, Msg: fmt.Sprintf("manifest is %d bytes; the limit is %d (64 KiB)", len(data), MaxSize)}
	}
	d := &decoder{file: filename}
	var m *Manifest
	if root := d.yaml(data); root != nil {
		m = d.manifest(root)
	}
	if err := d.errs.sort().truncate().err(); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseFile reads the manifest at path and parses it with Parse, using path
// in error messages. It reads at most MaxSize+1 bytes.
func ParseFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Parse(path, data)
}

// ArtifactPath returns the artifact's path on the local filesystem,
// resolved against the directory of the manifest at manifestPath.
func (m *Manifest) ArtifactPath(manifestPath string) string {
	return resolve(manifestPath, m.Artifact)
}

// SchemaPath returns the route's JSON Schema path on the local filesystem,
// resolved against the directory of the manifest at manifestPath, or "" when
// the route has no schema.
func (r *Route) SchemaPath(manifestPath string) string {
	if r.Schema == "" {
		return ""
	}
	return resolve(manifestPath, r.Schema)
}

func resolve(manifestPath, rel string) string {
	return filepath.Join(filepath.Dir(manifestPath), filepath.FromSlash(rel))
}

// decoder walks the YAML AST of one manifest, collecting every problem.
type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) add(line, col int, field, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// errorf reports a problem with the value n of the field at path.
func (d *decoder) errorf(n ast.Node, path, format string, args ...any) {
	line, col := pos(n)
	d.add(line, col, path, format, args...)
}

// yaml checks the raw bytes and tokens, parses them, and returns the root
// mapping, or nil after reporting why there is none.
func (d *decoder) yaml(data []byte) ast.Node {
	if !utf8.Valid(data) {
		line, col := offsetPos(data, invalidUTF8(data))
		d.add(line, col, "", "the manifest is not valid UTF-8")
		return nil
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	tokens, ok := d.tokens(data)
	if !ok {
		return nil
	}
	f, err := parseTokens(tokens)
	if err != nil {
		var yerr interface {
			GetToken() *token.Token
			GetMessage() string
		}
		if errors.As(err, &yerr) {
			line, col := tokenPos(yerr.GetToken())
			msg := yerr.GetMessage()
			if strings.Contains(msg, "'\t'") {
				msg = "a tab cannot indent YAML; indent with spaces"
			}
			d.add(line, col, "", "invalid YAML: %s", msg)
		} else {
			d.add(0, 0, "", "invalid YAML: %v", err)
		}
		return nil
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	switch {
	case len(docs) > 1:
		line, col := pos(docs[1])
		if docs[1].Start != nil {
			line, col = tokenPos(docs[1].Start)
		}
		d.add(line, col, "", "a manifest is a single YAML document; remove the second document (---)")
		return nil
	case len(docs) == 0 || docs[0].Body == nil:
		d.add(1, 1, "", "the manifest is empty; it needs at least name, artifact and abi")
		return nil
	}
	root := docs[0].Body
	if _, ok := root.(*ast.MappingNode); !ok {
		d.errorf(root, "", "a manifest must be a mapping of fields like \"name: orders\", not %s", describe(root))
		return nil
	}
	return root
}

// tokens lexes data and refuses, before any parsing, the YAML features a
// manifest does not need and an attacker could use: anchors and aliases
// (alias bombs), merge keys, tags and directives, and excessive size or
// nesting.
func (d *decoder) tokens(data []byte) (tokens token.Tokens, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			tokens, ok = nil, false
			d.add(0, 0, "", "invalid YAML: the lexer failed: %v", r)
		}
	}()
	tokens = lexer.Tokenize(string(data))
	depth, lastLine, anchors, count := 0, 0, false, 0
	n := len(d.errs)
	for _, tk := range tokens {
		line, col := tokenPos(tk)
		if tk.Type == token.CommentType {
			continue
		}
		if count++; count > maxTokens {
			d.add(line, col, "", "the manifest is too complex: more than %d YAML tokens", maxTokens)
			return nil, false
		}
		switch tk.Type {
		case token.AnchorType, token.AliasType:
			if !anchors { // one report is enough, and there may be thousands
				d.add(line, col, "", "anchors and aliases (&name, *name) are not allowed; write the value out")
				anchors = true
			}
		case token.MergeKeyType:
			d.add(line, col, "", "merge keys (<<) are not allowed; write the fields out")
		case token.TagType:
			d.add(line, col, "", "tags (%s) are not allowed; remove the tag", tk.Value)
		case token.DirectiveType:
			d.add(line, col, "", "directives (%%) are not allowed")
		case token.SequenceStartType, token.MappingStartType:
			if depth++; depth > maxDepth {
				d.add(line, col, "", "the manifest is nested more than %d levels deep", maxDepth)
				return nil, false
			}
		case token.SequenceEndType, token.MappingEndType:
			depth--
		}
		if line != lastLine && depth <= 0 && col > maxIndent {
			d.add(line, col, "", "the manifest is indented more than %d columns deep", maxIndent)
			return nil, false
		}
		lastLine = line
	}
	return tokens, len(d.errs) == n
}

// parseTokens runs the YAML parser, turning a panic in it into an error:
// the input is untrusted and the parser is not ours.
func parseTokens(tokens token.Tokens) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the parser failed: %v", r)
		}
	}()
	// Duplicate keys are reported by the decoder, with the field path and
	// together with every other problem.
	return parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
}

// invalidUTF8 returns the offset of the first invalid UTF-8 sequence.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// offsetPos converts a byte offset to a 1-based line and column (in runes).
func offsetPos(b []byte, off int) (line, col int) {
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[lineStart:]) + 1
}

func tokenPos(tk *token.Token) (line, col int) {
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}

// pos returns where a node starts: the first key of a block mapping (the
// parser places those at the first ':'), the key of a key/value pair, the
// token of anything else.
func pos(n ast.Node) (line, col int) {
	switch v := n.(type) {
	case nil:
		return 0, 0
	case *ast.MappingNode:
		if v == nil {
			return 0, 0
		}
		if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0] != nil {
			return pos(v.Values[0])
		}
	case *ast.MappingValueNode:
		if v == nil {
			return 0, 0
		}
		return pos(v.Key)
	case *ast.DocumentNode:
		if v == nil {
			return 0, 0
		}
		if v.Body != nil {
			return pos(v.Body)
		}
		return tokenPos(v.Start)
	}
	defer func() {
		if recover() != nil { // a typed nil node
			line, col = 0, 0
		}
	}()
	return tokenPos(n.GetToken())
}

// describe names the YAML type of n for error messages, with an article.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer (" + v.Token.Value + ")"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number (" + v.GetToken().Value + ")"
	case *ast.BoolNode:
		return "a boolean (" + v.Token.Value + ")"
	case *ast.NullNode:
		return "null"
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode:
		return "a mapping"
	}
	return "an unsupported YAML node"
}

// entry is one key/value pair of a YAML mapping, or one item of a list
// (key is then "").
type entry struct {
	key     string
	path    string
	keyNode ast.Node
	value   ast.Node
}

// at returns where to report a problem with e's value: the value itself,
// or the key when the value was left out ("name:").
func (e entry) at() ast.Node {
	if n, ok := e.value.(*ast.NullNode); ok && e.keyNode != nil && (n.Token == nil || n.Token.Type == token.ImplicitNullType) {
		return e.keyNode
	}
	if e.value == nil {
		return e.keyNode
	}
	return e.value
}

// child returns the field path of key under path.
func child(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key) && plain; i++ {
		c := key[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
	}
	if !plain {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// entries returns the pairs of the mapping n at path, reporting keys that
// are not plain scalars and duplicate keys (the later one is dropped). A
// null value is an empty mapping. ok is false if n is not a mapping.
func (d *decoder) entries(n ast.Node, path string) (out []entry, ok bool) {
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.NullNode:
		return nil, true
	case *ast.MappingNode:
		values = v.Values
	default:
		d.errorf(n, path, "must be a mapping, not %s", describe(n))
		return nil, false
	}
	firstLine := map[string]int{}
	for _, mv := range values {
		if mv == nil {
			continue
		}
		var key string
		switch k := mv.Key.(type) {
		case *ast.StringNode:
			key = k.Value
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode, *ast.InfinityNode, *ast.NanNode:
			key = k.GetToken().Value
		case *ast.MappingKeyNode:
			d.errorf(mv.Key, path, "explicit keys (? key) are not allowed; write key: value")
			continue
		default:
			d.errorf(mv.Key, path, "keys must be plain strings, not %s", describe(mv.Key))
			continue
		}
		p := child(path, key)
		if line, dup := firstLine[key]; dup {
			d.errorf(mv.Key, p, "duplicate key; it is already set on line %d", line)
			continue
		}
		firstLine[key], _ = pos(mv.Key)
		out = append(out, entry{key: key, path: p, keyNode: mv.Key, value: mv.Value})
	}
	return out, true
}

// object decodes the mapping n at path with the given known fields,
// calling set for each and reporting unknown ones. It returns the fields
// present, or ok false if n is not a mapping.
func (d *decoder) object(n ast.Node, path string, known []string, set func(entry)) (present map[string]bool, ok bool) {
	es, ok := d.entries(n, path)
	if !ok {
		return nil, false
	}
	present = map[string]bool{}
	for _, e := range es {
		if !contains(known, e.key) {
			if s := suggest(e.key, known); s != "" {
				d.errorf(e.keyNode, e.path, "unknown field; did you mean %s?", s)
			} else {
				d.errorf(e.keyNode, e.path, "unknown field; expected one of %s", strings.Join(known, ", "))
			}
			continue
		}
		present[e.key] = true
		set(e)
	}
	return present, true
}

// require reports each of fields missing from the mapping n at path.
func (d *decoder) require(n ast.Node, path string, present map[string]bool, fields ...string) {
	for _, f := range fields {
		if !present[f] {
			d.errorf(n, child(path, f), "required field is missing")
		}
	}
}

// list returns the items of the list e, reporting a value that is not a
// list. A null value is an empty list.
func (d *decoder) list(e entry) (items []entry, ok bool) {
	switch v := e.value.(type) {
	case *ast.NullNode:
		return nil, true
	case *ast.SequenceNode:
		for i, item := range v.Values {
			items = append(items, entry{path: fmt.Sprintf("%s[%d]", e.path, i), value: item})
		}
		return items, true
	case *ast.StringNode:
		d.errorf(e.at(), e.path, "must be a list, not a string; write [%s]", v.Value)
	default:
		d.errorf(e.at(), e.path, "must be a list, not %s", describe(e.value))
	}
	return nil, false
}

// str returns the string value of e.
func (d *decoder) str(e entry) (string, bool) {
	switch v := e.value.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value != nil {
			return v.Value.Value, true
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		tv := v.GetToken().Value
		d.errorf(e.at(), e.path, "must be a string, not %s; quote it: %q", describe(e.value), tv)
		return "", false
	case *ast.NullNode:
		d.errorf(e.at(), e.path, "has no value; it must be a string")
		return "", false
	}
	d.errorf(e.at(), e.path, "must be a string, not %s", describe(e.value))
	return "", false
}

// integer returns the integer value of e, which must be written in plain
// decimal: YAML would read 010 as octal, and 0x10 and 1_000 surprise.
func (d *decoder) integer(e entry) (int64, bool) {
	switch v := e.value.(type) {
	case *ast.IntegerNode:
		s := v.Token.Value
		digits := strings.TrimPrefix(s, "-")
		if digits == "" || strings.Trim(digits, "0123456789") != "" || len(digits) > 1 && digits[0] == '0' {
			d.errorf(e.at(), e.path, "write %s as a plain decimal integer", s)
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.errorf(e.at(), e.path, "%s is too large", s)
			return 0, false
		}
		return n, true
	case *ast.StringNode:
		if v.Token != nil && v.Token.Type == token.StringType && v.Value != "" && strings.Trim(v.Value, "0123456789") == "" {
			d.errorf(e.at(), e.path, "%s is too large", v.Value)
			return 0, false
		}
		d.errorf(e.at(), e.path, "must be an integer, not a string (%q)", v.Value)
		return 0, false
	case *ast.NullNode:
		d.errorf(e.at(), e.path, "has no value; it must be an integer")
		return 0, false
	}
	d.errorf(e.at(), e.path, "must be an integer, not %s", describe(e.value))
	return 0, false
}

// scalarText returns the text of a string or number node, for fields
// (sizes, durations) whose syntax the manifest checks itself.
func (d *decoder) scalarText(e entry, what string) (string, bool) {
	switch v := e.value.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode:
		return v.GetToken().Value, true
	case *ast.NullNode:
		d.errorf(e.at(), e.path, "has no value; it must be %s", what)
		return "", false
	}
	d.errorf(e.at(), e.path, "must be %s, not %s", what, describe(e.value))
	return "", false
}

// oneOf returns the string value of e if it is one of allowed.
func (d *decoder) oneOf(e entry, what string, allowed ...string) (string, bool) {
	s, ok := d.str(e)
	if !ok {
		return "", false
	}
	if !contains(allowed, s) {
		d.errorf(e.at(), e.path, "%q is not %s; use %s", s, what, orList(allowed))
		return "", false
	}
	return s, true
}

func (d *decoder) size(e entry, lo, hi int64, multiple int64) (int64, bool) {
	s, ok := d.scalarText(e, "a size")
	if !ok {
		return 0, false
	}
	n, err := parseSize(s)
	if err != nil {
		d.errorf(e.at(), e.path, "%v", err)
		return 0, false
	}
	switch {
	case n < lo:
		d.errorf(e.at(), e.path, "%s is below the minimum %s", formatSize(n), formatSize(lo))
	case n > hi:
		d.errorf(e.at(), e.path, "%s is above the maximum %s", formatSize(n), formatSize(hi))
	case n%multiple != 0:
		below := n / multiple * multiple
		d.errorf(e.at(), e.path, "%s is not a multiple of %s (the wasm page size); use %s or %s", formatSize(n), formatSize(multiple), formatSize(below), formatSize(below+multiple))
	default:
		return n, true
	}
	return 0, false
}

// stringList decodes a list of strings, each checked by check, reporting
// repeats.
func (d *decoder) stringList(e entry, check func(string) error) []string {
	items, _ := d.list(e)
	var out []string
	first := map[string]string{}
	for _, it := range items {
		s, ok := d.str(it)
		if !ok {
			continue
		}
		if err := check(s); err != nil {
			d.errorf(it.value, it.path, "%v", err)
			continue
		}
		if prev, dup := first[s]; dup {
			d.errorf(it.value, it.path, "%q is listed twice (also %s)", s, prev)
			continue
		}
		first[s] = it.path
		out = append(out, s)
	}
	return out
}

var (
	topFields        = []string{"name", "namespace", "artifact", "abi", "limits", "http", "waf", "permissions", "env"}
	limitFields      = []string{"memory", "timeout", "concurrency", "requestBody", "responseBody"}
	routeFields      = []string{"route", "auth", "scopes", "rateLimit", "schema", "dlp"}
	rateLimitFields  = []string{"rate", "burst", "by"}
	wafFields        = []string{"mode", "paranoia"}
	permissionFields = []string{"secrets", "kv", "egress"}
)

func (d *decoder) manifest(root ast.Node) *Manifest {
	m := &Manifest{
		Namespace: DefaultNamespace,
		Limits: Limits{
			Memory:       DefaultMemory,
			Timeout:      DefaultTimeout,
			Concurrency:  DefaultConcurrency,
			RequestBody:  DefaultRequestBody,
			ResponseBody: DefaultResponseBody,
		},
		WAF: WAF{Mode: DefaultWAFMode, Paranoia: DefaultParanoia},
	}
	present, ok := d.object(root, "", topFields, func(e entry) {
		switch e.key {
		case "name":
			m.Name, _ = d.name(e, false)
		case "namespace":
			m.Namespace, _ = d.name(e, false)
		case "artifact":
			if s, ok := d.str(e); ok {
				if err := checkRelPath(s); err != nil {
					d.errorf(e.at(), e.path, "%v", err)
				}
				m.Artifact = s
			}
		case "abi":
			if s, ok := d.oneOf(e, "an ABI", string(ABIReactor), string(ABIWagi)); ok {
				m.ABI = ABI(s)
			}
		case "limits":
			d.limits(e, &m.Limits)
		case "http":
			m.HTTP = d.routes(e)
		case "waf":
			d.waf(e, &m.WAF)
		case "permissions":
			d.permissions(e, &m.Permissions)
		case "env":
			m.Env = d.env(e)
		}
	})
	if ok {
		d.require(root, "", present, "name", "artifact", "abi")
	}
	return m
}

// name decodes a function, namespace or issuer-like name.
func (d *decoder) name(e entry, allowUnderscore bool) (string, bool) {
	s, ok := d.str(e)
	if !ok {
		return "", false
	}
	if err := checkName(s, allowUnderscore); err != nil {
		d.errorf(e.at(), e.path, "%v", err)
		return "", false
	}
	return s, true
}

func (d *decoder) limits(e entry, l *Limits) {
	d.object(e.value, e.path, limitFields, func(e entry) {
		switch e.key {
		case "memory":
			if n, ok := d.size(e, MinMemory, MaxMemory, MemoryPage); ok {
				l.Memory = n
			}
		case "timeout":
			s, ok := d.scalarText(e, "a duration")
			if !ok {
				return
			}
			t, err := parseDuration(s)
			switch {
			case err != nil:
				d.errorf(e.at(), e.path, "%v", err)
			case t < MinTimeout:
				d.errorf(e.at(), e.path, "%s is below the minimum %s", formatDuration(t), formatDuration(MinTimeout))
			case t > MaxTimeout:
				d.errorf(e.at(), e.path, "%s is above the maximum %s", formatDuration(t), formatDuration(MaxTimeout))
			default:
				l.Timeout = t
			}
		case "concurrency":
			if n, ok := d.integer(e); ok {
				if n < MinConcurrency || n > MaxConcurrency {
					d.errorf(e.at(), e.path, "%d is out of range; use %d to %d", n, MinConcurrency, MaxConcurrency)
					return
				}
				l.Concurrency = int(n)
			}
		case "requestBody":
			if n, ok := d.size(e, 1, MaxBody, 1); ok {
				l.RequestBody = n
			}
		case "responseBody":
			if n, ok := d.size(e, 1, MaxBody, 1); ok {
				l.ResponseBody = n
			}
		}
	})
}

// routeAt is a decoded route with the node of its pattern, for conflicts.
type routeAt struct {
	path string
	node ast.Node
}

func (d *decoder) routes(e entry) []Route {
	items, _ := d.list(e)
	var out []Route
	var at []routeAt
	for _, it := range items {
		r, node, ok := d.route(it)
		if ok {
			out = append(out, r)
			at = append(at, routeAt{path: it.path + ".route", node: node})
		}
	}
	// A ServeMux refuses a pattern that conflicts with one it holds; that
	// is exactly the check the router will make when it serves them.
	mux := http.NewServeMux()
	byPattern := map[string]int{}
	for i, r := range out {
		if j, dup := byPattern[r.Pattern]; dup {
			line, _ := pos(at[j].node)
			d.errorf(at[i].node, at[i].path, "%q is already declared by %s on line %d", r.Pattern, strings.TrimSuffix(at[j].path, ".route"), line)
			continue
		}
		if err := register(mux, r.Pattern); err != nil {
			other, why := conflict(err)
			j, known := byPattern[other]
			if !known {
				d.errorf(at[i].node, at[i].path, "%q conflicts with another route: %s", r.Pattern, why)
				continue
			}
			line, _ := pos(at[j].node)
			d.errorf(at[i].node, at[i].path, "%q conflicts with %s (%q on line %d): %s", r.Pattern, strings.TrimSuffix(at[j].path, ".route"), other, line, why)
			continue
		}
		byPattern[r.Pattern] = i
	}
	return out
}

// conflict extracts the other pattern and the explanation from a ServeMux
// conflict error, leaving out the source locations it names.
func conflict(err error) (other, why string) {
	msg := err.Error()
	head, why, _ := strings.Cut(msg, "\n")
	why = strings.Join(strings.Fields(why), " ")
	const marker = "conflicts with pattern "
	if i := strings.Index(head, marker); i >= 0 {
		if q, err := strconv.QuotedPrefix(head[i+len(marker):]); err == nil {
			other, _ = strconv.Unquote(q)
		}
	}
	if why == "" {
		why = "they match the same requests"
	}
	return other, why
}

func (d *decoder) route(it entry) (r Route, node ast.Node, ok bool) {
	r.Auth, r.DLP = AuthAPIKey, DefaultDLP
	valid := true
	var scopes entry
	present, isMap := d.object(it.value, it.path, routeFields, func(e entry) {
		switch e.key {
		case "route":
			s, ok := d.str(e)
			if !ok {
				valid = false
				return
			}
			method, path, err := parsePattern(s)
			if err != nil {
				d.errorf(e.at(), e.path, "%v", err)
				valid = false
				return
			}
			r.Pattern, r.Method, r.Path, node = s, method, path, e.at()
		case "auth":
			s, ok := d.str(e)
			if !ok {
				return
			}
			switch {
			case s == AuthAPIKey || s == AuthNone || s == AuthMTLS:
				r.Auth = s
			case s == AuthJWT || s == AuthJWT+":":
				d.errorf(e.at(), e.path, "jwt needs an issuer; write jwt:<issuer-name>")
			case strings.HasPrefix(s, AuthJWT+":"):
				issuer := strings.TrimPrefix(s, AuthJWT+":")
				if err := checkName(issuer, false); err != nil {
					d.errorf(e.at(), e.path, "issuer %v", err)
					return
				}
				r.Auth, r.Issuer = AuthJWT, issuer
			default:
				d.errorf(e.at(), e.path, "%q is not an auth kind; use apikey, jwt:<issuer-name>, mtls or none", s)
			}
		case "scopes":
			scopes = e
			r.Scopes = d.stringList(e, checkScope)
		case "rateLimit":
			r.RateLimit = d.rateLimit(e)
		case "schema":
			if s, ok := d.str(e); ok {
				if err := checkRelPath(s); err != nil {
					d.errorf(e.at(), e.path, "%v", err)
					return
				}
				r.Schema = s
			}
		case "dlp":
			if s, ok := d.oneOf(e, "a DLP mode", "redact", "block", "off"); ok {
				r.DLP = s
			}
		}
	})
	if !isMap {
		return r, nil, false
	}
	d.require(it.value, it.path, present, "route")
	if r.Auth == AuthNone && len(r.Scopes) > 0 {
		d.errorf(scopes.at(), scopes.path, "scopes need an authenticated caller, but auth is none")
	}
	return r, node, valid && present["route"]
}

func (d *decoder) rateLimit(e entry) *RateLimit {
	rl := &RateLimit{By: DefaultRateLimitBy}
	burstSet := false
	present, ok := d.object(e.value, e.path, rateLimitFields, func(e entry) {
		switch e.key {
		case "rate":
			if s, ok := d.str(e); ok {
				n, per, err := parseRate(s)
				if err != nil {
					d.errorf(e.at(), e.path, "%v", err)
					return
				}
				rl.Rate, rl.Per = n, per
			}
		case "burst":
			if n, ok := d.integer(e); ok {
				if n < 1 || n > MaxRateCount {
					d.errorf(e.at(), e.path, "%d is out of range; use 1 to %d", n, MaxRateCount)
					return
				}
				rl.Burst, burstSet = int(n), true
			}
		case "by":
			if s, ok := d.oneOf(e, "a rate limit key", "client", "ip", "key"); ok {
				rl.By = s
			}
		}
	})
	if !ok {
		return nil
	}
	d.require(e.at(), e.path, present, "rate")
	if !burstSet {
		rl.Burst = rl.Rate
	}
	return rl
}

func (d *decoder) waf(e entry, w *WAF) {
	d.object(e.value, e.path, wafFields, func(e entry) {
		switch e.key {
		case "mode":
			if s, ok := d.oneOf(e, "a WAF mode", "block", "detect", "off"); ok {
				w.Mode = s
			}
		case "paranoia":
			if n, ok := d.integer(e); ok {
				if n < 1 || n > MaxParanoia {
					d.errorf(e.at(), e.path, "%d is out of range; use 1 to %d", n, MaxParanoia)
					return
				}
				w.Paranoia = int(n)
			}
		}
	})
}

func (d *decoder) permissions(e entry, p *Permissions) {
	d.object(e.value, e.path, permissionFields, func(e entry) {
		switch e.key {
		case "secrets":
			p.Secrets = d.stringList(e, checkSecretName)
		case "kv":
			es, _ := d.entries(e.value, e.path)
			for _, b := range es {
				if err := checkName(b.key, true); err != nil {
					d.errorf(b.keyNode, b.path, "bucket %v", err)
					continue
				}
				if mode, ok := d.oneOf(b, "a KV access mode", "read", "write"); ok {
					if p.KV == nil {
						p.KV = map[string]string{}
					}
					p.KV[b.key] = mode
				}
			}
		case "egress":
			items, _ := d.list(e)
			first := map[string]string{}
			for _, it := range items {
				s, ok := d.str(it)
				if !ok {
					continue
				}
				canon, err := parseOrigin(s)
				if err != nil {
					d.errorf(it.value, it.path, "%v", err)
					continue
				}
				if prev, dup := first[canon]; dup {
					d.errorf(it.value, it.path, "%q is the same origin as %s", s, prev)
					continue
				}
				first[canon] = it.path
				p.Egress = append(p.Egress, s)
			}
		}
	})
}

func (d *decoder) env(e entry) map[string]string {
	es, _ := d.entries(e.value, e.path)
	var env map[string]string
	for _, v := range es {
		if err := checkEnvKey(v.key); err != nil {
			d.errorf(v.keyNode, v.path, "%v", err)
			continue
		}
		s, ok := d.str(v)
		if !ok {
			continue
		}
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			d.errorf(v.at(), v.path, "the value contains a NUL byte or invalid UTF-8")
			continue
		}
		if env == nil {
			env = map[string]string{}
		}
		env[v.key] = s
	}
	return env
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// orList writes "a, b or c".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// suggest returns the known field closest to key, if it is close: equal
// but for case, or at most two edits away.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if dist := editDistance(strings.ToLower(key), strings.ToLower(k), bestDist); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, or limit when
// it is at least limit (or a is too long to bother).
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(a)-len(b) >= limit || len(b)-len(a) >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
