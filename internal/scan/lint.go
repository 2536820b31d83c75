package scan

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"warden/internal/manifest"
)

// lint reports risky manifest settings.
func (s *scanner) lint() {
	m := s.in.Manifest
	if m == nil {
		return
	}
	for i, rt := range m.HTTP {
		route := fmt.Sprintf("http[%d]", i)
		if rt.Auth == manifest.AuthNone {
			if writes(rt.Method) {
				method := rt.Method
				if method == "" {
					method = "any method"
				}
				s.add(KindLint, "lint.auth-none-write", High, s.manifestLoc(route+".auth"),
					fmt.Sprintf("route %q accepts %s without authentication (auth: none): anyone can change state through it; use apikey, jwt or mtls", rt.Pattern, method))
			}
			if rt.RateLimit == nil {
				s.add(KindLint, "lint.no-rate-limit", Medium, s.manifestLoc(route),
					fmt.Sprintf("route %q has no authentication and no rateLimit: only the server-wide limits stop one client from exhausting the function", rt.Pattern))
			}
		}
		if rt.DLP == "off" {
			s.add(KindLint, "lint.dlp-off", Medium, s.manifestLoc(route+".dlp"),
				fmt.Sprintf("route %q turns DLP off: responses are checked only for the function's own secret values, not for card numbers, keys or other sensitive data", rt.Pattern))
		}
	}
	for i, origin := range m.Permissions.Egress {
		path := fmt.Sprintf("permissions.egress[%d]", i)
		switch wildcardLabels(origin) {
		case 0:
		case 1, 2:
			s.add(KindLint, "lint.egress-wildcard", High, s.manifestLoc(path),
				fmt.Sprintf("egress origin %s allows every host (or a whole top-level domain): anything the function reads can be sent anywhere; list each origin it calls", origin))
		default:
			s.add(KindLint, "lint.egress-subdomain-wildcard", Medium, s.manifestLoc(path),
				fmt.Sprintf("egress origin %s allows every subdomain of a domain: list the hosts the function calls if you can", origin))
		}
	}
}

// writes reports whether a route with this method (from its pattern; ""
// matches every method) can change state.
func writes(method string) bool {
	switch method {
	case "", http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// wildcardLabels returns 0 when origin's host is not a wildcard, 1 for "*",
// and else 1 + the number of labels after "*." (2 for "*.com", 3 for
// "*.example.com").
func wildcardLabels(origin string) int {
	_, hostport, ok := strings.Cut(origin, "://")
	if !ok {
		hostport = origin
	}
	host := hostport
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		host = hostport[:i]
	}
	switch {
	case host == "*":
		return 1
	case strings.HasPrefix(host, "*."):
		return 1 + len(strings.Split(strings.TrimSuffix(host[2:], "."), "."))
	}
	return 0
}

// manifestLoc returns where the field at path (e.g. "http[1].auth") is in
// the manifest: "warden.yaml:12 (http[1].auth)", or without the line when
// it cannot be found.
func (s *scanner) manifestLoc(path string) string {
	if s.loc == nil {
		s.loc = newLocator(s.in.ManifestRaw)
	}
	if line := s.loc.line(path); line > 0 {
		return fmt.Sprintf("%s:%d (%s)", s.in.ManifestName, line, path)
	}
	return fmt.Sprintf("%s (%s)", s.in.ManifestName, path)
}

// locator finds fields in the manifest's YAML.
type locator struct {
	root ast.Node // nil when there is no readable manifest
}

func newLocator(raw []byte) (l *locator) {
	l = &locator{}
	if len(raw) == 0 || len(raw) > manifest.MaxSize {
		return l
	}
	defer func() {
		if recover() != nil { // the parser is not ours; a panic costs only line numbers
			l.root = nil
		}
	}()
	f, err := parser.ParseBytes(raw, 0)
	if err != nil || f == nil || len(f.Docs) == 0 || f.Docs[0] == nil {
		return l
	}
	l.root = f.Docs[0].Body
	return l
}

// line returns the 1-based line of the field at path, or 0.
func (l *locator) line(path string) (line int) {
	defer func() {
		if recover() != nil {
			line = 0
		}
	}()
	n := l.root
	var at ast.Node = n
	for _, el := range splitPath(path) {
		if n == nil {
			return 0
		}
		if idx, err := strconv.Atoi(el); err == nil {
			seq, ok := n.(*ast.SequenceNode)
			if !ok || idx < 0 || idx >= len(seq.Values) {
				return 0
			}
			n, at = seq.Values[idx], seq.Values[idx]
			continue
		}
		var values []*ast.MappingValueNode
		switch m := n.(type) {
		case *ast.MappingNode:
			values = m.Values
		case *ast.MappingValueNode:
			values = []*ast.MappingValueNode{m}
		default:
			return 0
		}
		found := false
		for _, mv := range values {
			if mv != nil && mv.Key != nil && keyString(mv.Key) == el {
				n, at, found = mv.Value, mv.Key, true
				break
			}
		}
		if !found {
			return 0
		}
	}
	return nodeLine(at)
}

// splitPath splits "http[1].auth" into "http", "1", "auth".
func splitPath(path string) []string {
	return strings.FieldsFunc(path, func(r rune) bool { return r == '.' || r == '[' || r == ']' })
}

func keyString(k ast.MapKeyNode) string {
	if s, ok := k.(*ast.StringNode); ok {
		return s.Value
	}
	if tk := k.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// nodeLine returns the line where n starts: a mapping's first key, a
// node's own token.
func nodeLine(n ast.Node) int {
	switch v := n.(type) {
	case nil:
		return 0
	case *ast.MappingNode:
		if len(v.Values) > 0 && v.Values[0] != nil && !v.IsFlowStyle {
			return nodeLine(v.Values[0])
		}
	case *ast.MappingValueNode:
		return nodeLine(v.Key)
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}
