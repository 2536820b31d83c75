package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"warden/internal/admin"
	"warden/internal/events"
)

// cliStdin runs the command line with input on stdin (passwords are never
// flag values). The CLI reads os.Stdin itself, so the swap holds stdinMu
// against command lines of tests running in parallel.
func (in *instance) cliStdin(input string, args ...string) (stdout, stderr string, code int) {
	r, w, err := os.Pipe()
	if err != nil {
		in.t.Fatal(err)
	}
	go func() { w.WriteString(input); w.Close() }()
	stdinMu.Lock()
	defer stdinMu.Unlock()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	return in.cliAtLocked(in.srv.AdminAddr(), args...)
}

func (in *instance) mustCLIStdin(input string, args ...string) string {
	in.t.Helper()
	out, errOut, code := in.cliStdin(input, args...)
	if code != 0 {
		in.t.Fatalf("warden %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestUsersRolesAndSessions is the operator-account story end to end: users
// of every role created with the bootstrap token, TOTP enrollment and login
// for the admin, a walk of every admin route for every role with a real
// session, lockout, revocation of the bootstrap token, and no password, TOTP
// seed or token in any event.
func TestUsersRolesAndSessions(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	users := []struct{ name, role, password string }{
		{"ada", "admin", "ada's admin password"},
		{"dan", "deployer", "dan deploys things"},
		{"aud", "auditor", "aud reads the log"},
		{"vic", "viewer", "vic only looks around"},
		{"lou", "viewer", "lou forgets passwords"},
	}
	secrets := []string{in.token[len(in.token)-43:]}
	for _, u := range users {
		out := in.mustCLIStdin(u.password+"\n", "users", "add", u.name, "--role", u.role, "--password-stdin")
		if !strings.Contains(out, "created user "+u.name) || strings.Contains(out, u.password) {
			t.Fatalf("users add %s printed %q", u.name, out)
		}
		secrets = append(secrets, u.password)
	}
	if _, _, code := in.cliStdin("short pw\n", "users", "add", "sam", "--role", "viewer"); code != 1 {
		t.Fatalf("users add with an 8-character password: exit %d, want 1", code)
	}
	if _, _, code := in.cliStdin("a long enough password\n", "users", "add", "sam", "--role", "root"); code != 1 {
		t.Fatalf("users add with an unknown role: exit %d, want 1", code)
	}
	if _, _, code := in.cliStdin("", "users", "add", "sam", "--role", "viewer"); code != 2 {
		t.Fatalf("users add with nothing on stdin: exit %d, want 2", code)
	}
	if _, _, code := in.cliStdin("a long enough password\n", "users", "add", "ada", "--role", "viewer"); code != 1 {
		t.Fatalf("users add of an existing name: exit %d, want 1", code)
	}

	// The bootstrap token stays until an admin user has MFA.
	if _, errOut, code := in.cli("tokens", "revoke-bootstrap"); code != 1 || !strings.Contains(errOut, "409") {
		t.Fatalf("revoke-bootstrap with no MFA admin: exit %d %s, want 1 and HTTP 409", code, errOut)
	}
	// An admin cannot log in before enrolling TOTP, and the answer does not
	// tell that the password was right.
	if _, errOut, code := in.cliStdin(users[0].password+"\n", "login", "--user", "ada", "--code", "123456"); code != 1 || !strings.Contains(errOut, "invalid user, password or code (HTTP 401") {
		t.Fatalf("admin login before enrollment: exit %d %s", code, errOut)
	}

	// Enroll the admin with the bootstrap token.
	var en admin.TOTPEnrollment
	if err := json.Unmarshal([]byte(in.mustCLI("users", "mfa", "ada", "--json")), &en); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(en.URI)
	if err != nil || u.Scheme != "otpauth" {
		t.Fatalf("enrollment URI does not parse as otpauth (%v)", err)
	}
	seed := u.Query().Get("secret")
	secrets = append(secrets, seed)
	now := time.Now()
	code0, _ := totp.GenerateCode(seed, now)
	in.mustCLI("users", "mfa", "ada", "--code", code0)
	if _, _, code := in.cli("users", "mfa", "ada"); code != 1 {
		t.Fatalf("a second enrollment of an enrolled user: exit %d, want 1", code)
	}

	// Log in: the admin with the next step's code (the current one was spent
	// on enrollment), saving the session for the CLI.
	code1, _ := totp.GenerateCode(seed, now.Add(30*time.Second))
	out := in.mustCLIStdin(users[0].password+"\n", "login", "--user", "ada", "--password-stdin", "--code", code1, "--save")
	if !strings.Contains(out, "logged in as ada (admin)") {
		t.Fatalf("login --save printed %q", out)
	}
	sessPath := filepath.Join(in.data, "session.token")
	st, err := os.Stat(sessPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("session.token: %v, mode %v; want 0600", err, st.Mode())
	}
	b, _ := os.ReadFile(sessPath)
	tokens := map[string]string{"admin": strings.TrimSpace(string(b))}
	if _, _, code := in.cliStdin(users[0].password+"\n", "login", "--user", "ada", "--code", code1); code != 1 {
		t.Fatalf("a login reusing a TOTP code: exit %d, want 1", code)
	}
	for _, u := range users[1:4] {
		tok := strings.TrimSpace(in.mustCLIStdin(u.password+"\n", "login", "--user", u.name, "--password-stdin"))
		if !strings.HasPrefix(tok, "wdn_ses_") {
			t.Fatalf("login %s printed %q, want a session token", u.name, tok)
		}
		tokens[u.role] = tok
	}
	for _, tok := range tokens {
		secrets = append(secrets, tok[len(tok)-43:])
	}

	// The CLI now uses the saved session (it is preferred over admin.token):
	// revoke the bootstrap token with it.
	in.mustCLI("tokens", "revoke-bootstrap")
	wantProblem(t, in.admin("GET", "/v1/functions", in.token, nil), http.StatusUnauthorized)

	in.walkRoutes(tokens, map[string]string{"admin": "ada", "deployer": "dan", "auditor": "aud", "viewer": "vic"})

	// Only one's own TOTP without users:manage.
	wantProblem(t, in.admin("POST", "/v1/users/dan/totp", tokens["viewer"], nil), http.StatusForbidden)

	// Lockout after five failures: 429 with Retry-After, even with the
	// right password, and the same for a name that does not exist.
	for _, name := range []string{"lou", "ghost"} {
		for i := 1; i <= 5; i++ {
			resp := in.admin("POST", "/v1/login", "", strings.NewReader(`{"user":"`+name+`","password":"wrong wrong wrong"}`))
			want := http.StatusUnauthorized
			if i == 5 {
				want = http.StatusTooManyRequests
			}
			p := wantProblem(t, resp, want)
			if i == 1 && p.Detail != "invalid user, password or code" {
				t.Fatalf("failed login detail %q", p.Detail)
			}
		}
		resp := in.admin("POST", "/v1/login", "", strings.NewReader(`{"user":"`+name+`","password":"lou forgets passwords"}`))
		ra := resp.Header.Get("Retry-After")
		wantProblem(t, resp, http.StatusTooManyRequests)
		if ra != "60" && ra != "59" {
			t.Fatalf("%s locked: Retry-After %q, want about 60", name, ra)
		}
	}
	if ls := in.mustCLI("users", "ls"); !strings.Contains(ls, "lou") || !strings.Contains(ls, "ada") || strings.Contains(ls, "$argon2id") {
		t.Fatalf("users ls = %q", ls)
	}
	var infos []admin.UserInfo
	if err := json.Unmarshal([]byte(in.mustCLI("users", "ls", "--json")), &infos); err != nil {
		t.Fatal(err)
	}
	for _, ui := range infos {
		if ui.Name == "lou" && (ui.LockedUntil == nil || ui.FailedAttempts != 5) {
			t.Fatalf("users ls: lou %+v, want locked after 5 failures", ui)
		}
		if ui.Name == "ada" && !ui.MFAEnrolled {
			t.Fatalf("users ls: ada %+v, want MFA enrolled", ui)
		}
	}

	// A deployer's session deploys but manages no users.
	if _, _, code := in.cli("--token", tokens["deployer"], "functions", "ls"); code != 0 {
		t.Fatalf("deployer functions ls: exit %d", code)
	}
	if _, errOut, code := in.cli("--token", tokens["deployer"], "users", "ls"); code != 1 || !strings.Contains(errOut, "403") {
		t.Fatalf("deployer users ls: exit %d %s, want 1 and 403", code, errOut)
	}
	// Deleting a user ends their sessions.
	in.mustCLI("users", "rm", "vic")
	wantProblem(t, in.admin("GET", "/v1/functions", tokens["viewer"], nil), http.StatusUnauthorized)
	if _, _, code := in.cli("users", "rm", "vic"); code != 1 {
		t.Fatalf("users rm of a deleted user: exit %d, want 1", code)
	}

	// Events: every step recorded, no secret anywhere.
	var all []events.Event
	for _, typ := range []string{"user.", "token.", "admin."} {
		all = append(all, in.eventsOf(typ)...)
	}
	// Nor in the data directory: passwords and tokens are hashed, the TOTP
	// seed sealed (the token files the CLI reads are the exception).
	filepath.WalkDir(in.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "admin.token" || d.Name() == "session.token" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a password, TOTP seed or token in plaintext", path)
			}
		}
		return nil
	})
	count := map[string]int{}
	for _, e := range all {
		b, _ := json.Marshal(e)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Fatalf("an event holds a password, TOTP seed or token: %s", b)
			}
		}
		count[e.Type+":"+e.Outcome]++
	}
	for k, min := range map[string]int{
		"user.create:success": 5, "user.create:failure": 1, "user.login:success": 4, "user.login:failure": 12,
		"user.mfa_enroll:success": 2, "token.revoke:success": 1, "token.revoke:denied": 1, "user.delete:success": 1,
	} {
		if count[k] < min {
			t.Errorf("%d %s events, want at least %d (all: %v)", count[k], k, min, count)
		}
	}
}

// walkRoutes calls every admin route with every role's session and checks
// the answer against the role table: a role holding the route's permission
// gets an answer other than 401 and 403 (2xx, or a 4xx about the request,
// which is deliberately harmless: unknown names, empty bodies); a role
// lacking it gets 403.
func (in *instance) walkRoutes(tokens, self map[string]string) {
	t := in.t
	t.Helper()
	routes := (&admin.API{}).Routes()
	if len(routes) < 20 {
		t.Fatalf("only %d admin routes", len(routes))
	}
	for _, role := range admin.Roles() {
		tok := tokens[role]
		if tok == "" {
			t.Fatalf("no session for role %s", role)
		}
		for _, rt := range routes {
			method, pattern, _ := strings.Cut(rt.Pattern, " ")
			name := "no-such-thing"
			if strings.HasPrefix(pattern, "/v1/users/{name}/totp") && method == http.MethodPost {
				name = self[role] // one's own account: the only one without users:manage
			}
			path := strings.NewReplacer("{namespace}", "default", "{name}", name, "{id}", "000000000000").Replace(pattern)
			var body io.Reader
			if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
				body = bytes.NewReader([]byte(`{}`))
			}
			resp := in.admin(method, path, tok, body)
			resp.Body.Close()
			allowed := rt.Permission == admin.PermPublic || admin.RoleAllows(role, rt.Permission)
			got := resp.StatusCode
			switch {
			case allowed && (got == 401 || got == 403 || got >= 500):
				t.Errorf("%s %s as %s (holds %s): %d, want 2xx or a 4xx other than 401/403", method, path, role, rt.Permission, got)
			case !allowed && got != 403:
				t.Errorf("%s %s as %s (lacks %s): %d, want 403", method, path, role, rt.Permission, got)
			}
		}
	}
}
