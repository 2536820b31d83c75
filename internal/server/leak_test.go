package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/dlp"
	"warden/internal/events"
)

// leakValue is the secret a deployer tries to read.
const leakValue = "leak-target-6c1d0e9f-MARKER-secret"

// TestDeployerCannotReadSecrets is the hardening issue's first item from the
// deployer's side. A user with the deployer role may invoke and deploy but
// may not read secrets. A function holding a secret, deployed by an admin,
// returns it (plain, base64, base64url, hex, at every base64 alignment).
// Every way the deployer has of seeing that answer either never shows the
// value in any of those encodings, or is refused at deploy with the reason
// and an event.
func TestDeployerCannotReadSecrets(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLIStdin("deployer-pass-0123456789\n", "users", "add", "dev", "--role", "deployer", "--password-stdin")
	tok := strings.TrimSpace(in.mustCLIStdin("deployer-pass-0123456789\n", "login", "--user", "dev", "--password-stdin"))
	in.mustCLIStdin(leakValue, "secrets", "set", "API_TOKEN", "--from-stdin")
	asDev := func(args ...string) (string, string, int) {
		return in.cli(append([]string{"--token", tok}, args...)...)
	}
	perms := "permissions:\n  secrets: [API_TOKEN]\n"
	in.mustCLI("deploy", "-f", capsFixture(t, perms, "redact"))

	forms := dlp.EncodedForms([]byte(leakValue))
	leaks := func(body string) bool {
		for _, f := range forms {
			if strings.Contains(body, f) {
				return true
			}
		}
		return false
	}
	type try struct{ enc, ctype string }
	var tries []try
	for _, enc := range []string{"plain", "base64", "base64url", "rawurl", "hex", "HEX"} {
		for _, ct := range []string{"application/json", "application/octet-stream"} {
			tries = append(tries, try{enc, ct})
		}
	}
	check := func(t *testing.T, channel string) {
		t.Helper()
		for _, tr := range tries {
			for prefix := range 3 {
				q := fmt.Sprintf("/sdk/secret-encoded?name=API_TOKEN&enc=%s&prefix=%d&type=%s", tr.enc, prefix, tr.ctype)
				var body string
				var status int
				switch channel {
				case "route":
					resp := in.public("GET", q, nil, nil)
					body, status = readBody(t, resp), resp.StatusCode
				case "admin invoke": // as an admin: a deployer may not invoke a secret holder
					out, errOut, code := in.cli("invoke", "caps", "--method", "GET", "--path", q)
					body, status = out+errOut, 200
					if code != 0 {
						status = 502
					}
				}
				if leaks(body) {
					t.Errorf("%s %s (%s, prefix %d): the secret left warden (status %d)", channel, tr.enc, tr.ctype, prefix, status)
				}
				if status == 200 && !strings.Contains(body, "REDACTED") {
					t.Errorf("%s %s (%s, prefix %d): status 200 without a redaction", channel, tr.enc, tr.ctype, prefix)
				}
			}
		}
	}

	t.Run("public route", func(t *testing.T) { check(t, "route") })
	t.Run("admin invoke by a deployer is refused", func(t *testing.T) {
		out, errOut, code := asDev("invoke", "caps", "--method", "GET", "--path", "/sdk/secret?name=API_TOKEN")
		if code != 1 || !strings.Contains(errOut, "HTTP 403") || leaks(out+errOut) {
			t.Fatalf("deployer invoking a function holding a secret: exit %d %s, want 403", code, errOut)
		}
	})
	t.Run("admin invoke", func(t *testing.T) { check(t, "admin invoke") })

	t.Run("dlp off by the deployer is refused", func(t *testing.T) {
		_, errOut, code := asDev("deploy", "-f", capsFixture(t, perms, "off"))
		if code != 1 || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "dlp redact → off") {
			t.Fatalf("deployer turning dlp off: exit %d %s, want 403 naming the relaxation", code, errOut)
		}
		in.waitEvent(events.TypeFunctionDeploy, func(e events.Event) bool {
			return e.Outcome == events.OutcomeFailure && strings.Contains(e.Reason, "dlp redact → off") && strings.HasPrefix(e.Actor, "dev")
		})
	})

	t.Run("dlp off still checks the secrets", func(t *testing.T) {
		in.mustCLI("deploy", "-f", capsFixture(t, perms, "off")) // the admin may
		check(t, "route")
		check(t, "admin invoke")
		in.mustCLI("deploy", "-f", capsFixture(t, perms, "redact"))
	})

	t.Run("new code by the deployer is refused", func(t *testing.T) {
		active := func() int {
			t.Helper()
			var fn struct {
				Active int `json:"activeVersion"`
			}
			if err := json.Unmarshal([]byte(in.mustCLI("--json", "functions", "get", "caps")), &fn); err != nil || fn.Active == 0 {
				t.Fatalf("functions get caps: active version %d, %v", fn.Active, err)
			}
			return fn.Active
		}
		before := active()
		m := capsFixture(t, perms, "redact")
		withCustomSection(t, filepath.Join(filepath.Dir(m), "caps.wasm"))
		_, errOut, code := asDev("deploy", "-f", m)
		if code != 1 || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "new code") {
			t.Fatalf("deployer shipping new code for a function holding a secret: exit %d %s, want 403", code, errOut)
		}
		in.waitEvent(events.TypeFunctionDeploy, func(e events.Event) bool {
			return e.Outcome == events.OutcomeFailure && strings.Contains(e.Reason, "new code")
		})
		if after := active(); after != before {
			t.Errorf("a refused deploy moved the active version %d → %d", before, after)
		}
	})

	t.Run("env change and new route by the deployer are refused", func(t *testing.T) {
		env := capsFixture(t, perms+"env:\n  DEBUG: \"1\"\n", "redact")
		if _, errOut, code := asDev("deploy", "-f", env); code != 1 || !strings.Contains(errOut, "env changed") {
			t.Fatalf("deployer changing env of a function holding a secret: exit %d %s, want 403", code, errOut)
		}
		route := fixture(t, "caps", func(m string) string {
			m = strings.NewReplacer("PERMISSIONS", perms, "DLP", "redact").Replace(m)
			return strings.Replace(m, "http:\n", "http:\n  - route: \"/debug/\"\n    auth: apikey\n", 1)
		})
		if _, errOut, code := asDev("deploy", "-f", route); code != 1 || !strings.Contains(errOut, `new route "/debug/"`) {
			t.Fatalf("deployer adding a route to a function holding a secret: exit %d %s, want 403", code, errOut)
		}
	})
}

// withCustomSection appends a custom section to the module at path, so it
// is new code (another digest) that behaves the same.
func withCustomSection(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := "warden-test"
	sec := append([]byte{0, byte(1 + len(name) + 4), byte(len(name))}, name...)
	sec = append(sec, "new!"...)
	if err := os.WriteFile(path, append(b, sec...), 0o644); err != nil {
		t.Fatal(err)
	}
}
