package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"warden/internal/capability"
	"warden/internal/events"
)

// capsManifest deploys the sandbox's capability test guest; the test
// replaces PERMISSIONS and DLP.
const capsManifest = `name: caps
abi: reactor
artifact: ./caps.wasm
http:
  - route: "/sdk/"
    auth: none
    dlp: DLP
PERMISSIONS
`

// Values the test stores; none may ever appear in the data directory.
const (
	grantedValue = "granted-secret-0f5e1d2c-MARKER"
	rotatedValue = "rotated-secret-7a8b9c0d-MARKER"
	otherValue   = "other-secret-3e4f5a6b-MARKER"
	kvValue      = "kv-value-9d8c7b6a-MARKER"
)

func capsFixture(t *testing.T, perms, dlp string) string {
	return fixture(t, "caps", func(m string) string {
		return strings.NewReplacer("PERMISSIONS", perms, "DLP", dlp).Replace(m)
	})
}

// sdk invokes the caps guest's SDK endpoint and returns its body and the
// name of the error the guest got ("" on success).
func (in *instance) sdk(method, path string, body string) (string, string) {
	in.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	resp := in.public(method, path, r, nil)
	b := readBody(in.t, resp)
	if resp.StatusCode != 200 {
		in.t.Fatalf("%s %s = %d", method, path, resp.StatusCode)
	}
	return b, resp.Header.Get("X-Err")
}

// TestCapabilityAcceptance is issue 4's acceptance: a guest tries each
// capability without the grant, with it, and with a grant for something
// else; exactly the granted calls succeed. A rotated secret is read without
// redeploying; responses are checked for the secret's exact value; no value
// is stored in plaintext anywhere in the data directory.
func TestCapabilityAcceptance(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	in := start(t, data)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello from the third party"))
	}))
	defer origin.Close()

	in.mustCLIStdin(grantedValue+"\n", "secrets", "set", "GRANTED_KEY", "--from-stdin")
	in.mustCLIStdin(otherValue, "secrets", "set", "default/OTHER_KEY", "--from-stdin")
	in.mustCLIStdin("unused-but-granted-value", "secrets", "set", "UNUSED_KEY", "--from-stdin")
	in.mustCLIStdin(kvValue, "kv", "set", "catalog", "item-1", "--from-stdin")
	if _, _, code := in.cli("secrets", "set", "GRANTED_KEY"); code != 2 {
		t.Fatalf("secrets set without --from-file/--from-stdin: exit %d, want 2 (values are never arguments)", code)
	}

	// Version 1: no permissions at all. Everything is denied.
	in.mustCLI("deploy", "-f", capsFixture(t, "", "off"))
	denied := []struct{ method, path, body string }{
		{"GET", "/sdk/secret?name=GRANTED_KEY", ""},
		{"GET", "/sdk/kv/get?b=catalog&k=item-1", ""},
		{"POST", "/sdk/kv/set?b=orders&k=o1", "tea"},
		{"GET", "/sdk/kv/list?b=orders", ""},
		{"GET", "/sdk/fetch?m=GET&u=" + url.QueryEscape(origin.URL+"/"), ""},
	}
	for _, d := range denied {
		if body, e := in.sdk(d.method, d.path, d.body); e != "denied" || body != "" {
			t.Errorf("v1 (no grants) %s %s: error %q, want denied", d.method, d.path, e)
		}
	}

	// Version 2: grants for one secret, two buckets, one origin; plus
	// grants never used (for the review).
	perms := "permissions:\n  secrets: [GRANTED_KEY, UNUSED_KEY]\n  kv: {orders: write, catalog: read, spare: write}\n  egress: [\"" + origin.URL + "\"]\n"
	// A grant of a secret that does not exist is refused at deploy.
	typo := strings.Replace(perms, "UNUSED_KEY", "UNUSED_KYE", 1)
	if _, errOut, code := in.cli("deploy", "-f", capsFixture(t, typo, "off")); code != 1 || !strings.Contains(errOut, "UNUSED_KYE") {
		t.Fatalf("deploy granting a missing secret: exit %d %s, want 1 naming it", code, errOut)
	}
	in.mustCLI("deploy", "-f", capsFixture(t, perms, "off"))
	// Removing a granted secret afterwards is the operator's call: the
	// function then gets not_found.
	in.mustCLI("secrets", "rm", "UNUSED_KEY")
	cases := []struct {
		name, method, path, body string
		wantErr                  string
		wantBody                 string
	}{
		{"granted secret", "GET", "/sdk/secret?name=GRANTED_KEY&digest=1", "", "", digestOf(grantedValue)},
		{"another secret", "GET", "/sdk/secret?name=OTHER_KEY", "", "denied", ""},
		{"granted but unset", "GET", "/sdk/secret?name=UNUSED_KEY", "", "not_found", ""},
		{"read grant read", "GET", "/sdk/kv/get?b=catalog&k=item-1", "", "", kvValue},
		{"read grant used to write", "POST", "/sdk/kv/set?b=catalog&k=item-2", "x", "denied", ""},
		{"read grant used to delete", "POST", "/sdk/kv/delete?b=catalog&k=item-1", "", "denied", ""},
		{"write grant write", "POST", "/sdk/kv/set?b=orders&k=o1", "tea", "", ""},
		{"write grant read", "GET", "/sdk/kv/get?b=orders&k=o1", "", "", "tea"},
		{"write grant list", "GET", "/sdk/kv/list?b=orders", "", "", "o1"},
		{"another bucket", "GET", "/sdk/kv/get?b=users&k=u1", "", "denied", ""},
		{"granted origin", "GET", "/sdk/fetch?m=GET&u=" + url.QueryEscape(origin.URL+"/"), "", "", "hello from the third party"},
		{"another origin", "GET", "/sdk/fetch?m=GET&u=" + url.QueryEscape("https://example.com/"), "", "denied", ""},
		{"metadata address", "GET", "/sdk/fetch?m=GET&u=" + url.QueryEscape("http://169.254.169.254/latest/meta-data/"), "", "denied", ""},
	}
	for _, c := range cases {
		body, e := in.sdk(c.method, c.path, c.body)
		if e != c.wantErr || body != c.wantBody {
			t.Errorf("%s: error %q, body of %d bytes; want error %q and the expected body", c.name, e, len(body), c.wantErr)
		}
	}

	// Rotation is visible without redeploying; the previous version stays
	// readable as NAME@previous during the grace period.
	in.mustCLIStdin(rotatedValue, "secrets", "rotate", "GRANTED_KEY", "--from-stdin")
	// (dlp off still redacts the function's own secrets: the guest answers
	// with a digest of what it read.)
	if body, e := in.sdk("GET", "/sdk/secret?name=GRANTED_KEY&digest=1", ""); e != "" || body != digestOf(rotatedValue) {
		t.Errorf("after rotate: error %q, body of %d bytes; want the new value", e, len(body))
	}
	if body, e := in.sdk("GET", "/sdk/secret?name=GRANTED_KEY@previous&digest=1", ""); e != "" || body != digestOf(grantedValue) {
		t.Errorf("previous version: error %q; want the first value", e)
	}

	// The gateway checks responses for the exact values the function holds.
	in.mustCLIStdin("unused-but-granted-value-2", "secrets", "set", "UNUSED_KEY", "--from-stdin")
	in.mustCLI("deploy", "-f", capsFixture(t, perms, "redact"))
	if body, _ := in.sdk("GET", "/sdk/secret?name=GRANTED_KEY", ""); strings.Contains(body, rotatedValue) || !strings.Contains(body, "[REDACTED:secret]") {
		t.Errorf("dlp redact: the secret's value was not redacted (%d bytes)", len(body))
	}
	// A header holding the value is blocked even in redact mode.
	resp := in.public("GET", "/sdk/secret-header?name=GRANTED_KEY", nil, nil)
	if p := wantProblem(t, resp, http.StatusBadGateway); resp.Header.Get("X-Debug-Token") != "" {
		t.Errorf("the secret header went out: %+v", p)
	}
	in.mustCLI("deploy", "-f", capsFixture(t, perms, "block"))
	resp = in.public("GET", "/sdk/secret?name=GRANTED_KEY", nil, nil)
	wantProblem(t, resp, http.StatusBadGateway)

	// Events: denials name function, version, capability and target;
	// reads name the secret and its version; none holds a value.
	d := in.waitEvent(capability.TypeDenied, func(e events.Event) bool {
		return e.Version == 2 && e.Labels["capability"] == "kv.set" && e.Labels["target"] == "catalog"
	})
	if d.Function != "caps" || d.RequestID == "" {
		t.Errorf("denial event = %+v", d)
	}
	in.waitEvent(capability.TypeSecretRead, func(e events.Event) bool {
		return e.Labels["secret"] == "GRANTED_KEY" && e.Labels["secret.version"] == "2" && e.RequestID != ""
	})
	all := in.mustCLI("events", "--json")
	for _, v := range []string{grantedValue, rotatedValue, otherValue, kvValue} {
		if strings.Contains(all, v) {
			t.Fatal("an event holds a stored value")
		}
	}

	// Operator views never show values.
	ls := in.mustCLI("secrets", "ls")
	if !strings.Contains(ls, "GRANTED_KEY") || !strings.Contains(ls, "caps") || strings.Contains(ls, "MARKER") {
		t.Errorf("secrets ls = %q, want names and grants, no values", ls)
	}
	hist := in.mustCLI("secrets", "history", "GRANTED_KEY")
	if !strings.Contains(hist, "current") || !strings.Contains(hist, "previous") || strings.Contains(hist, "MARKER") {
		t.Errorf("secrets history = %q", hist)
	}
	if got := in.mustCLI("kv", "get", "orders", "o1"); got != "tea" {
		t.Errorf("kv get = %q, want tea", got)
	}
	// Keys with slashes and spaces survive the admin API's paths.
	in.mustCLIStdin("nested", "kv", "set", "orders", "2026/11 a b", "--from-stdin")
	if got := in.mustCLI("kv", "get", "orders", "2026/11 a b"); got != "nested" {
		t.Errorf("kv get of a key with a slash = %q", got)
	}
	// Bad input to the admin API: problem+json, nothing stored.
	resp = in.admin("POST", "/v1/secrets/default/TOO_BIG", in.token, bytes.NewReader(make([]byte, 70<<10)))
	wantProblem(t, resp, http.StatusRequestEntityTooLarge)
	resp = in.admin("POST", "/v1/secrets/default/lower-case", in.token, strings.NewReader("value-of-a-bad-name"))
	wantProblem(t, resp, http.StatusBadRequest)
	resp = in.admin("POST", "/v1/secrets/default/GRANTED_KEY", in.token, strings.NewReader("would-overwrite"))
	wantProblem(t, resp, http.StatusConflict)
	resp = in.admin("POST", "/v1/secrets/default/NO_TOKEN", "", strings.NewReader("value"))
	wantProblem(t, resp, http.StatusUnauthorized)
	if ls := in.mustCLI("secrets", "ls"); strings.Contains(ls, "TOO_BIG") || strings.Contains(ls, "NO_TOKEN") || strings.Contains(ls, "lower-case") {
		t.Errorf("a refused secret was stored: %s", ls)
	}
	if got := in.mustCLI("kv", "ls", "orders"); !strings.Contains(got, `"o1"`) {
		t.Errorf("kv ls orders = %q", got)
	}
	if got := in.mustCLI("egress", "caps"); !strings.Contains(got, origin.URL) {
		t.Errorf("egress caps = %q, want the origin", got)
	}

	// Access review: the unused grants are found and a tightened block
	// printed (catalog and orders used; spare and UNUSED_KEY not).
	rev := in.mustCLI("access", "review", "caps")
	for _, want := range []string{"UNUSED_KEY", "never used", "Tightened", "secrets: [GRANTED_KEY]", "kv: {catalog: read, orders: write}"} {
		if !strings.Contains(rev, want) {
			t.Errorf("access review lacks %q:\n%s", want, rev)
		}
	}

	// No value in plaintext anywhere in the data directory: the database,
	// its WAL, keys, cache, everything; while running and after shutdown.
	if files := grepData(t, data); !slices.Contains(files, filepath.Join(data, "warden.db-wal")) {
		t.Errorf("the running server's WAL was not among the files searched: %v", files)
	}
	in.stop()
	grepData(t, data)
}

// grepData searches every file under data for the stored values and
// returns the files it read.
func grepData(t *testing.T, data string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, path)
		for _, v := range []string{grantedValue, rotatedValue, otherValue, kvValue, "MARKER"} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a stored value in plaintext", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("walked %d files; the data directory is not where the test thinks", len(files))
	}
	return files
}

// TestDeployerCannotWidenGrants: whoever may deploy must not be able to
// read a secret by deploying a function that returns it. A deployer may
// change code and keep or narrow grants; widening them needs the admin
// role (grants:approve), for deploys and for rollbacks alike.
func TestDeployerCannotWidenGrants(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLIStdin("deployer-pass-0123456789\n", "users", "add", "dev", "--role", "deployer", "--password-stdin")
	tok := strings.TrimSpace(in.mustCLIStdin("deployer-pass-0123456789\n", "login", "--user", "dev", "--password-stdin"))
	in.mustCLIStdin("a-secret-value-0123", "secrets", "set", "DB_PASSWORD", "--from-stdin")
	asDev := func(args ...string) (string, int) {
		_, errOut, code := in.cli(append([]string{"--token", tok}, args...)...)
		return errOut, code
	}
	withSecret := "permissions:\n  secrets: [DB_PASSWORD]\n"
	withEgress := withSecret + "  egress: [\"https://attacker.example\"]\n"

	// A new function with a grant: refused for the deployer.
	if errOut, code := asDev("deploy", "-f", capsFixture(t, withSecret, "off")); code != 1 || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "secret DB_PASSWORD") {
		t.Fatalf("deployer deploying a secret grant: exit %d %s, want 403 naming the grant", code, errOut)
	}
	// Without grants: fine.
	if errOut, code := asDev("deploy", "-f", capsFixture(t, "", "off")); code != 0 {
		t.Fatalf("deployer deploying without grants: exit %d %s", code, errOut)
	}
	// The admin grants; the deployer then ships new code with the same
	// grants, or fewer.
	in.mustCLI("deploy", "-f", capsFixture(t, withSecret, "off"))
	if errOut, code := asDev("deploy", "-f", capsFixture(t, withSecret, "redact")); code != 0 {
		t.Fatalf("deployer redeploying the same grants: exit %d %s", code, errOut)
	}
	// Adding egress (a way out for the secret) is refused.
	if errOut, code := asDev("deploy", "-f", capsFixture(t, withEgress, "redact")); code != 1 || !strings.Contains(errOut, "egress https://attacker.example") {
		t.Fatalf("deployer adding egress: exit %d %s", code, errOut)
	}
	// Rolling back from no grants to a version with grants widens too.
	if errOut, code := asDev("deploy", "-f", capsFixture(t, "", "block")); code != 0 {
		t.Fatalf("deployer narrowing grants: exit %d %s", code, errOut)
	}
	if errOut, code := asDev("rollback", "caps"); code != 1 || !strings.Contains(errOut, "HTTP 403") {
		t.Fatalf("deployer rolling back to a version with grants: exit %d %s, want 403", code, errOut)
	}
	in.mustCLI("rollback", "caps") // the admin may
	in.waitEvent("function.deploy", func(e events.Event) bool {
		return e.Outcome == events.OutcomeFailure && strings.Contains(e.Reason, "needs grants:approve")
	})
}

func digestOf(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}
