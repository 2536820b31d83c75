// Package policy compiles and evaluates deploy policies written in Rego:
// each namespace may set one, and warden evaluates it (or the built-in
// default) at every deploy to allow or deny it and to name the approvals a
// second person must give.
//
// It owns the policy contract (package warden.deploy, `deny` and `approve`
// as sets of strings), the input document a policy sees, the sandbox a policy
// runs in, and the default policy (default.rego).
//
// It must never let a policy reach outside the input it is given: no network
// (http.send, net.lookup_ip_addr, JSON-schema $refs), no host filesystem or
// environment (opa.runtime, file:// $refs), no output (print is discarded),
// no data but the policy's own rules. And it must never turn a failure into
// an allow: a policy that does not compile is refused when set, and one that
// errors, returns the wrong shape or runs past its deadline is an Eval
// error, on which the caller refuses the deploy.
//
// # Notes
//
//   - A Policy is immutable; Eval is safe for concurrent use.
//   - Eval returns by its deadline (the caller's or EvalBudget) even when
//     OPA is stuck inside one builtin call; the abandoned call runs on in a
//     bounded pool (see run) until OPA notices the cancellation or the call
//     ends.
//   - Evaluation is bounded in time, not in memory. The capabilities remove
//     the builtins that amplify a tiny argument into an unbounded result,
//     but a policy can still build a value by sharing one array many times
//     over and ask for it to be formatted, which allocates without bound.
//     Until evaluation runs in a memory-limited process, setting a policy
//     must be an action for people trusted not to take the server down.
//   - TestBuiltins pins the builtins a policy may call; an OPA upgrade that
//     adds one fails it until someone has checked what the new one reaches.
package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

const (
	// MaxSourceSize bounds a policy's source.
	MaxSourceSize = 256 << 10
	// EvalBudget bounds one evaluation, whatever the caller's deadline.
	EvalBudget = 2 * time.Second
	// maxInputSize bounds the JSON document Test reads.
	maxInputSize = 4 << 20
)

// ErrBudget is the cause when an evaluation runs past EvalBudget. It wraps
// context.DeadlineExceeded.
var ErrBudget = fmt.Errorf("policy evaluation exceeded its %v budget: %w", EvalBudget, context.DeadlineExceeded)

// Decision is a policy's answer.
type Decision struct {
	Allow     bool     `json:"allow"`     // no deny reason
	Deny      []string `json:"deny"`      // sorted, deduplicated
	Approvals []string `json:"approvals"` // reasons a second person holding grants:approve must approve; sorted, deduplicated
	// Remediation is what to do with an active version the policy denies
	// when it is evaluated again (a vulnerability import, a policy
	// change): RemediateNotify (the default when the policy names none),
	// RemediateQuarantine or RemediateRollback.
	Remediation string `json:"remediation"`
}

// Remediations a policy's `remediation` rule may name.
const (
	RemediateNotify     = "notify"     // an event and the findings; the version keeps serving
	RemediateQuarantine = "quarantine" // its routes answer 503 until it passes again
	RemediateRollback   = "rollback"   // the newest earlier version that passes becomes active (quarantine when none does)
)

// Policy is a compiled policy. It is immutable and safe for concurrent Eval.
type Policy struct {
	name   string
	src    []byte
	digest string
	query  rego.PreparedEvalQuery
	budget time.Duration // EvalBudget; shorter only in tests
}

// pkgPath is the package every deploy policy declares.
var pkgPath = ast.MustParseRef("data.warden.deploy")

// Source returns a copy of the policy's source.
func (p *Policy) Source() []byte { return bytes.Clone(p.src) }

// Digest returns the lowercase hex sha256 of the policy's source.
func (p *Policy) Digest() string { return p.digest }

// Compile compiles a Rego v1 policy; name is the file name errors cite.
//
// The module must declare `package warden.deploy`, define `deny` and may
// define `approve`, each only with partial set rules (`deny contains msg if
// { ... }`) whose elements type-check as strings. It may import only
// rego.v1 and future.keywords, read no `data` outside its own package, and
// call only the builtins in capabilities (see the package doc). It is
// type-checked against Input, so a reference to a field Input lacks is an
// error. Errors name the file and line.
func Compile(name string, src []byte) (_ *Policy, err error) {
	defer func() {
		// The source is untrusted: a panic in OPA's parser or compiler is
		// a refused policy, not a crashed server.
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: compiling the policy panicked: %v", name, r)
		}
	}()
	if len(src) > MaxSourceSize {
		return nil, fmt.Errorf("%s: policy is %d bytes; the limit is %d", name, len(src), MaxSourceSize)
	}
	caps := capabilities()
	mod, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: caps})
	if err != nil {
		return nil, err
	}
	if err := checkModule(name, mod); err != nil {
		return nil, err
	}
	schemas := ast.NewSchemaSet()
	schemas.Put(ast.SchemaRootRef, inputSchema())
	c := ast.NewCompiler().
		WithCapabilities(caps).
		WithSchemas(schemas).
		WithEnablePrintStatements(false)
	if c.Compile(map[string]*ast.Module{name: mod}); c.Failed() {
		return nil, c.Errors
	}
	query := "deny := data.warden.deploy.deny; is_set(deny)"
	if firstRule(mod, "approve") != nil {
		query += "; approve := data.warden.deploy.approve; is_set(approve)"
	}
	if r := firstRule(mod, "remediation"); r != nil {
		if t := c.TypeEnv.Get(pkgPath.Append(ast.InternedTerm("remediation"))); types.Compare(t, types.S) != 0 && types.Compare(t, types.A) != 0 {
			return nil, fmt.Errorf("%s:%d: remediation is %s; it must be a string: notify, quarantine or rollback", name, r.Location.Row, types.Sprint(t))
		}
		query += `; remediation := [r | r := data.warden.deploy.remediation]` // [] when undefined
	}
	for _, rule := range []ast.Var{"deny", "approve"} {
		r := firstRule(mod, rule)
		if r == nil {
			continue
		}
		if t := c.TypeEnv.Get(pkgPath.Append(ast.InternedTerm(string(rule)))); !isStringSet(t) {
			return nil, fmt.Errorf("%s:%d: %s is %s; it must be a set of strings", name, r.Location.Row, rule, types.Sprint(t))
		}
	}
	pq, err := rego.New(
		rego.Compiler(c),
		rego.Query(query),
		rego.Capabilities(caps),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
		rego.EnablePrintStatements(false),
	).PrepareForEval(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	sum := sha256.Sum256(src)
	return &Policy{name: name, src: bytes.Clone(src), digest: hex.EncodeToString(sum[:]), query: pq, budget: EvalBudget}, nil
}

// checkModule enforces what the compiler does not: the package, the
// imports, the shape of deny and approve, and no data outside the package.
func checkModule(name string, mod *ast.Module) error {
	at := func(loc *ast.Location) string {
		if loc == nil {
			return name
		}
		return fmt.Sprintf("%s:%d", name, loc.Row)
	}
	if !mod.Package.Path.Equal(pkgPath) {
		return fmt.Errorf("%s: %v: a deploy policy must be package warden.deploy", at(mod.Package.Location), mod.Package)
	}
	for _, imp := range mod.Imports {
		if !allowedImport(imp) {
			return fmt.Errorf("%s: import %v: a deploy policy may import only rego.v1 and future.keywords", at(imp.Location), imp.Path)
		}
	}
	var deny bool
	for _, r := range mod.Rules {
		ref := r.Head.Ref()
		head, ok := ref[0].Value.(ast.Var)
		if ok && head == "remediation" {
			if len(ref) != 1 || r.Head.RuleKind() != ast.SingleValue || len(r.Head.Args) > 0 {
				return fmt.Errorf("%s: remediation must be a single string (remediation := \"quarantine\")", at(r.Location))
			}
			continue
		}
		if !ok || head != "deny" && head != "approve" {
			continue
		}
		if len(ref) != 1 || r.Head.RuleKind() != ast.MultiValue || len(r.Head.Args) > 0 || r.Default {
			return fmt.Errorf("%s: %s must be a set of strings defined by partial set rules (%s contains msg if { ... })", at(r.Location), head, head)
		}
		deny = deny || head == "deny"
	}
	if !deny {
		return fmt.Errorf("%s: policy defines no deny rule (deny contains msg if { ... })", name)
	}
	var err error
	visit := func(t *ast.Term) bool {
		if err != nil {
			return true
		}
		v, ok := t.Value.(ast.Ref)
		if !ok || !v[0].Equal(ast.DefaultRootDocument) {
			return false
		}
		if len(v) == 1 {
			err = fmt.Errorf("%s: a deploy policy may not read data as a whole", at(t.Location))
		} else if !v.HasPrefix(pkgPath) || len(v) == len(pkgPath) {
			err = fmt.Errorf("%s: %v: a deploy policy may read only its own rules from data", at(t.Location), v)
		}
		return true
	}
	for _, r := range mod.Rules {
		ast.WalkTerms(r, visit)
	}
	return err
}

// allowedImport reports whether imp is rego.v1 or future.keywords[.kw],
// without an alias.
func allowedImport(imp *ast.Import) bool {
	path, ok := imp.Path.Value.(ast.Ref)
	if !ok || imp.Alias != "" {
		return false
	}
	if path.Equal(ast.RegoV1CompatibleRef) {
		return true
	}
	return len(path) >= 2 && len(path) <= 3 &&
		path[0].Equal(ast.FutureRootDocument) && path[1].Equal(ast.InternedTerm("keywords"))
}

// isStringSet reports whether t is a set whose elements are strings or
// of a type the checker cannot know (the runtime check in Eval covers those).
func isStringSet(t types.Type) bool {
	s, ok := t.(*types.Set)
	return ok && (types.Compare(s.Of(), types.S) == 0 || types.Compare(s.Of(), types.A) == 0)
}

// firstRule returns the module's first rule named name, or nil.
func firstRule(mod *ast.Module, name ast.Var) *ast.Rule {
	i := slices.IndexFunc(mod.Rules, func(r *ast.Rule) bool { return r.Head.Ref()[0].Value.Compare(name) == 0 })
	if i < 0 {
		return nil
	}
	return mod.Rules[i]
}

// Eval evaluates p for in. It stops at ctx's deadline or after EvalBudget,
// whichever is first.
//
// Any error is a reason to refuse the deploy: the input cannot be
// represented, a builtin errors (builtin errors are strict: a type error or
// division by zero is an error, not an undefined rule), the time runs out
// (the error wraps context.DeadlineExceeded, and ErrBudget when the budget
// ran out), or the result is not sets of strings.
func (p *Policy) Eval(ctx context.Context, in Input) (Decision, error) {
	v, err := in.value()
	if err != nil {
		return Decision{}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, p.budget, ErrBudget)
	defer cancel()
	rs, err := run(ctx, evaluations, func() (rego.ResultSet, error) {
		return p.query.Eval(ctx, rego.EvalParsedInput(v))
	})
	if ctx.Err() != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", p.name, context.Cause(ctx))
	}
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", p.name, err)
	}
	if len(rs) != 1 {
		return Decision{}, fmt.Errorf("evaluate %s: deny is undefined or not a set (%d results)", p.name, len(rs))
	}
	d := Decision{}
	if d.Deny, err = stringSet(rs[0].Bindings["deny"], "deny"); err != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", p.name, err)
	}
	if d.Approvals, err = stringSet(rs[0].Bindings["approve"], "approve"); err != nil {
		return Decision{}, fmt.Errorf("evaluate %s: %w", p.name, err)
	}
	d.Remediation = RemediateNotify
	if list, ok := rs[0].Bindings["remediation"].([]any); ok && len(list) > 0 {
		v := list[0]
		s, _ := v.(string)
		switch s {
		case RemediateNotify, RemediateQuarantine, RemediateRollback:
			d.Remediation = s
		default:
			return Decision{}, fmt.Errorf("evaluate %s: remediation is %q; want notify, quarantine or rollback", p.name, fmt.Sprint(v))
		}
	}
	d.Allow = len(d.Deny) == 0
	return d, nil
}

// stringSet converts a set result to a sorted, deduplicated slice,
// refusing any element that is not a string. nil (approve not defined) is
// the empty set.
func stringSet(v any, rule string) ([]string, error) {
	if v == nil {
		return []string{}, nil
	}
	elems, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is %T, not a set of strings", rule, v)
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s, ok := e.(string)
		if !ok {
			v := fmt.Sprint(e)
			if len(v) > 80 {
				v = v[:80] + "…"
			}
			return nil, fmt.Errorf("%s contains %s (%T), not a string", rule, v, e)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Test evaluates p against a JSON input document, as `warden policy test`
// does. The document is decoded strictly into Input: an unknown field, a
// value of the wrong type or trailing data is an error that names it.
func (p *Policy) Test(ctx context.Context, inputJSON []byte) (Decision, error) {
	if len(inputJSON) > maxInputSize {
		return Decision{}, fmt.Errorf("input is %d bytes; the limit is %d", len(inputJSON), maxInputSize)
	}
	dec := json.NewDecoder(bytes.NewReader(inputJSON))
	dec.DisallowUnknownFields()
	var in Input
	if err := dec.Decode(&in); err != nil {
		return Decision{}, fmt.Errorf("input: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Decision{}, errors.New("input: data after the JSON document")
	}
	return p.Eval(ctx, in)
}

//go:embed default.rego
var defaultSource []byte

var defaultPolicy = sync.OnceValue(func() *Policy {
	p, err := Compile("default.rego", defaultSource)
	if err != nil {
		panic("policy: the built-in default policy does not compile: " + err.Error())
	}
	return p
})

// Default returns the built-in policy, default.rego, which applies to a
// namespace that sets none. It is compiled once, on first use.
func Default() *Policy { return defaultPolicy() }

// denied are the builtins a policy may not call.
var denied = map[string]string{
	"http.send":          "reaches the network",
	"net.lookup_ip_addr": "reaches the network (DNS)",
	"opa.runtime":        "reads the host's environment and OPA's configuration",
	// A file:// $ref reads the host filesystem whatever allow_net says.
	"json.match_schema":  "resolves $refs on the network and the host filesystem",
	"json.verify_schema": "resolves $refs on the network and the host filesystem",
	// Neither checks for cancellation, and a tiny argument asks for an
	// unbounded result: bits.lsh(1, 1e15), nested {{range}}s.
	"bits.lsh":                "allocates in proportion to its argument's value, uninterruptibly",
	"strings.render_template": "runs a Go template without bound, uninterruptibly",
}

// capabilities is this OPA's capabilities less the denied builtins, with
// no host allowed for network access.
var capabilities = sync.OnceValue(func() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool { _, no := denied[b.Name]; return no })
	caps.AllowNet = []string{}
	return caps
})
