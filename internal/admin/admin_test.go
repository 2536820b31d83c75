package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"warden/internal/auth"
	"warden/internal/events"
	"warden/internal/problem"
	"warden/internal/ratelimit"
	"warden/internal/store/sqlite"
)

// TestRoutesDeclarePermissions: every admin route names a permission, and
// the OpenAPI document lists every route with it.
func TestRoutesDeclarePermissions(t *testing.T) {
	a := &API{}
	doc := a.OpenAPI()
	paths := doc["paths"].(map[string]any)
	for _, rt := range a.Routes() {
		if rt.Permission == "" {
			t.Errorf("%s declares no permission", rt.Pattern)
		}
		if rt.Permission == PermPublic {
			if rt.Pattern != "POST /v1/login" && rt.Pattern != "GET /healthz" {
				t.Errorf("%s is public; only POST /v1/login and GET /healthz may be", rt.Pattern)
			}
		} else if !allowed("admin", rt.Permission) {
			t.Errorf("%s needs %q, which the admin role lacks", rt.Pattern, rt.Permission)
		}
		if allowed("", rt.Permission) || allowed("nosuchrole", rt.Permission) {
			t.Errorf("%s: a role with no permissions is allowed", rt.Pattern)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("OpenAPI lacks %s", path)
			continue
		}
		op, ok := item[strings.ToLower(method)].(map[string]any)
		if !ok || op["x-warden-permission"] != rt.Permission {
			t.Errorf("OpenAPI %s: operation %v, want permission %s", rt.Pattern, op, rt.Permission)
		}
	}
}

func TestBearer(t *testing.T) {
	cases := map[string]struct {
		h    string
		want string
		ok   bool
	}{
		"ok":         {"Bearer abc", "abc", true},
		"lowercase":  {"bearer abc", "abc", true},
		"basic":      {"Basic abc", "", false},
		"empty":      {"", "", false},
		"no token":   {"Bearer ", "", false},
		"no space":   {"Bearerabc", "", false},
		"short junk": {"B", "", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newReq(c.h)
			got, ok := bearer(r)
			if got != c.want || ok != c.ok {
				t.Fatalf("bearer(%q) = %q, %v; want %q, %v", c.h, got, ok, c.want, c.ok)
			}
		})
	}
}

func newReq(auth string) *http.Request {
	r := httptest.NewRequest("GET", "https://x/v1/functions", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

// TestRoleTable pins the role table: what each role may do, and that only
// admin requires MFA (unknown roles require it too: fail closed).
func TestRoleTable(t *testing.T) {
	want := map[string][]string{
		"admin":    {PermRead, PermDeploy, PermDelete, PermInvoke, PermEvents, PermMetadata, PermKeys, PermUsers, PermMFA, PermTokens},
		"deployer": {PermRead, PermDeploy, PermInvoke, PermMetadata, PermMFA},
		"auditor":  {PermRead, PermEvents, PermMetadata, PermMFA},
		"viewer":   {PermRead, PermMetadata, PermMFA},
	}
	all := []string{PermRead, PermDeploy, PermDelete, PermInvoke, PermEvents, PermMetadata, PermKeys, PermUsers, PermMFA, PermTokens, PermPublic}
	if got := Roles(); !slices.Equal(got, []string{"admin", "auditor", "deployer", "viewer"}) {
		t.Fatalf("Roles() = %v", got)
	}
	for role, perms := range want {
		for _, p := range all {
			if got := RoleAllows(role, p); got != slices.Contains(perms, p) {
				t.Errorf("RoleAllows(%q, %q) = %v, want %v", role, p, got, !got)
			}
		}
	}
	for role, mfa := range map[string]bool{"admin": true, "deployer": false, "auditor": false, "viewer": false, "": true, "root": true} {
		if got := RequiresMFA(role); got != mfa {
			t.Errorf("RequiresMFA(%q) = %v, want %v", role, got, mfa)
		}
	}
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newUsersAPI is an API with a real store, a fake clock and light password
// hashing; it serves the routes that need neither deploys nor the sandbox.
func newUsersAPI(t *testing.T) (*API, *auth.Users, *testClock, *events.Memory) {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &testClock{t: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	users := &auth.Users{Store: db, Now: clk.Now, RequireMFA: RequiresMFA,
		PasswordParams: auth.PasswordParams{Memory: 1 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
	mem := events.NewMemory()
	return newAPI(Config{Store: db, Auth: &auth.Admin{Store: db}, Users: users, Events: mem}), users, clk, mem
}

func call(t *testing.T, a *API, method, path, token string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	r := httptest.NewRequest(method, "https://admin"+path, rd)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.Handler().ServeHTTP(w, r)
	return w
}

func detail(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var p problem.Details
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body.String(), err)
	}
	return p.Detail
}

// TestLoginLockoutHTTP: through the HTTP API with a fake clock, failures
// answer 401 alike for unknown users and wrong passwords, the fifth locks
// the account (429, Retry-After counting down), the lock ends on time, and
// no event holds the password or the token.
func TestLoginLockoutHTTP(t *testing.T) {
	a, users, clk, mem := newUsersAPI(t)
	const pw = "viewer password 1"
	if _, err := users.Create(context.Background(), "vic", auth.RoleViewer, pw); err != nil {
		t.Fatal(err)
	}
	login := func(user, password string) *httptest.ResponseRecorder {
		return call(t, a, "POST", "/v1/login", "", LoginRequest{User: user, Password: password})
	}
	if w := call(t, a, "POST", "/v1/login", "", map[string]string{"user": "vic"}); w.Code != 400 {
		t.Fatalf("login without a password = %d, want 400", w.Code)
	}
	if w := call(t, a, "POST", "/v1/login", "", map[string]string{"user": "vic", "password": pw, "extra": "x"}); w.Code != 400 {
		t.Fatalf("login with an unknown field = %d, want 400", w.Code)
	}
	wrong, unknown := login("vic", "not the password"), login("nobody", pw)
	if wrong.Code != 401 || unknown.Code != 401 || detail(t, wrong) != detail(t, unknown) {
		t.Fatalf("wrong password %d %q, unknown user %d %q: want the same 401", wrong.Code, detail(t, wrong), unknown.Code, detail(t, unknown))
	}
	for i := 2; i < auth.DefaultMaxFailures; i++ {
		if w := login("vic", "not the password"); w.Code != 401 {
			t.Fatalf("failure %d = %d, want 401", i, w.Code)
		}
	}
	w := login("vic", "not the password")
	if w.Code != 429 || w.Header().Get("Retry-After") != "60" {
		t.Fatalf("fifth failure = %d Retry-After %q, want 429 and 60", w.Code, w.Header().Get("Retry-After"))
	}
	clk.Add(45 * time.Second)
	if w := login("vic", pw); w.Code != 429 || w.Header().Get("Retry-After") != "15" {
		t.Fatalf("right password while locked = %d Retry-After %q, want 429 and 15", w.Code, w.Header().Get("Retry-After"))
	}
	clk.Add(15 * time.Second)
	w = login("vic", pw)
	if w.Code != 200 {
		t.Fatalf("login after the lock = %d %s", w.Code, w.Body)
	}
	var out LoginResponse
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || !auth.IsSessionToken(out.Token) || out.User != "vic" || out.Role != "viewer" ||
		!out.ExpiresAt.Equal(clk.Now().Add(8*time.Hour)) {
		t.Fatalf("login answer: %v, user %q role %q expires %v", err, out.User, out.Role, out.ExpiresAt)
	}
	if strings.Contains(w.Body.String(), pw) {
		t.Fatal("the login answer holds the password")
	}
	// The session works for what a viewer may do, and only that.
	if w := call(t, a, "GET", "/v1/users", out.Token, nil); w.Code != 403 {
		t.Fatalf("viewer GET /v1/users = %d, want 403", w.Code)
	}
	if w := call(t, a, "POST", "/v1/users/vic/totp", out.Token, nil); w.Code != 200 || !strings.Contains(w.Body.String(), "otpauth://") {
		t.Fatalf("viewer enrolling their own TOTP = %d %s", w.Code, w.Body)
	}
	if w := call(t, a, "POST", "/v1/users/other/totp", out.Token, nil); w.Code != 403 {
		t.Fatalf("viewer enrolling another user's TOTP = %d, want 403", w.Code)
	}
	if w := call(t, a, "GET", "/v1/users", out.Token[:len(out.Token)-1]+"x", nil); w.Code != 401 {
		t.Fatalf("a tampered session token = %d, want 401", w.Code)
	}
	clk.Add(8 * time.Hour)
	if w := call(t, a, "POST", "/v1/users/vic/totp", out.Token, nil); w.Code != 401 {
		t.Fatalf("an expired session token = %d, want 401", w.Code)
	}

	var reasons []string
	for _, e := range mem.Events() {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), pw) || strings.Contains(string(b), out.Token[8:]) || strings.Contains(string(b), "not the password") {
			t.Fatalf("an event holds a password or the token: %s", b)
		}
		if e.Type == TypeUserLogin {
			reasons = append(reasons, e.Outcome+":"+e.Reason)
		}
	}
	want := []string{"failure:wrong password", "failure:unknown user", "failure:wrong password", "failure:wrong password",
		"failure:wrong password", "failure:wrong password", "failure:locked out", "success:"}
	if !slices.Equal(reasons, want) {
		t.Fatalf("user.login events = %q, want %q", reasons, want)
	}
}

// TestBootstrapRevocation: refused (409) until an admin user has TOTP
// enrolled; afterwards the bootstrap token answers 401, and the last MFA
// admin can no longer be deleted.
func TestBootstrapRevocation(t *testing.T) {
	a, users, clk, _ := newUsersAPI(t)
	ctx := context.Background()
	db := a.cfg.Store
	boot, c, err := auth.NewAdminToken("bootstrap", auth.RoleAdmin, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	if w := call(t, a, "DELETE", "/v1/tokens/bootstrap", boot, nil); w.Code != 409 {
		t.Fatalf("revoke with no admin user = %d, want 409", w.Code)
	}
	if w := call(t, a, "POST", "/v1/users", boot, UserRequest{Name: "ada", Role: "admin", Password: "admin password 1"}); w.Code != 201 {
		t.Fatalf("create admin = %d %s", w.Code, w.Body)
	}
	if w := call(t, a, "DELETE", "/v1/tokens/bootstrap", boot, nil); w.Code != 409 {
		t.Fatalf("revoke with an admin user without MFA = %d, want 409", w.Code)
	}
	w := call(t, a, "POST", "/v1/users/ada/totp", boot, nil)
	var en TOTPEnrollment
	if err := json.Unmarshal(w.Body.Bytes(), &en); w.Code != 200 || err != nil {
		t.Fatalf("start enrollment = %d %v", w.Code, err)
	}
	u, _ := url.Parse(en.URI)
	code, err := totp.GenerateCode(u.Query().Get("secret"), clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if w := call(t, a, "POST", "/v1/users/ada/totp/verify", boot, TOTPVerifyRequest{Code: code}); w.Code != 200 {
		t.Fatalf("verify = %d %s", w.Code, w.Body)
	}
	if w := call(t, a, "DELETE", "/v1/tokens/bootstrap", boot, nil); w.Code != 204 {
		t.Fatalf("revoke = %d %s", w.Code, w.Body)
	}
	if w := call(t, a, "GET", "/v1/users", boot, nil); w.Code != 401 {
		t.Fatalf("bootstrap token after revocation = %d, want 401", w.Code)
	}
	clk.Add(30 * time.Second)
	code, _ = totp.GenerateCode(u.Query().Get("secret"), clk.Now())
	s, err := users.Login(ctx, "ada", "admin password 1", code)
	if err != nil {
		t.Fatal(err)
	}
	if w := call(t, a, "DELETE", "/v1/users/ada", s.Token, nil); w.Code != 409 {
		t.Fatalf("deleting the last MFA admin = %d, want 409", w.Code)
	}
	if w := call(t, a, "DELETE", "/v1/users/ada/totp", s.Token, nil); w.Code != 409 {
		t.Fatalf("removing the last MFA admin's TOTP = %d, want 409", w.Code)
	}
	if w := call(t, a, "DELETE", "/v1/tokens/bootstrap", s.Token, nil); w.Code != 404 {
		t.Fatalf("revoking again = %d, want 404", w.Code)
	}
}

// TestChangesRefusedWhileEventsUnavailable: while the event log cannot
// record, a login or any change is refused (503 with the reason) before it
// is made; reads still answer; /healthz needs no credential.
func TestChangesRefusedWhileEventsUnavailable(t *testing.T) {
	a, users, _, mem := newUsersAPI(t)
	if _, err := users.Create(context.Background(), "vic", auth.RoleViewer, "viewer password 1"); err != nil {
		t.Fatal(err)
	}
	mem.SetUnavailable("the event store stalled")
	w := call(t, a, "POST", "/v1/login", "", LoginRequest{User: "vic", Password: "viewer password 1"})
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "stalled") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("login while events are unavailable = %d %s, want 503 naming the reason", w.Code, w.Body)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if w := call(t, a, m, "/v1/users", "", nil); w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s while events are unavailable = %d, want 503 before authentication", m, w.Code)
		}
	}
	// A refusal that cannot be recorded is not given either.
	if w := call(t, a, "GET", "/v1/users", "", nil); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET without a credential = %d, want 503 (its refusal cannot be recorded)", w.Code)
	}
	mem.SetUnavailable("")
	if w := call(t, a, "POST", "/v1/login", "", LoginRequest{User: "vic", Password: "viewer password 1"}); w.Code != 200 {
		t.Fatalf("login after recovery = %d %s", w.Code, w.Body)
	}
}

// TestAdminAddressLimit: the admin listener bounds requests per address
// before authentication, so no address floods the audit trail.
func TestAdminAddressLimit(t *testing.T) {
	a, _, _, mem := newUsersAPI(t)
	a.cfg.Limit = Limit{Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}), Rule: ratelimit.Rule{Rate: 3, Per: time.Minute, Burst: 3}}
	for i := range 3 {
		if w := call(t, a, "GET", "/v1/users", "", nil); w.Code != http.StatusUnauthorized {
			t.Fatalf("request %d = %d, want 401", i, w.Code)
		}
	}
	for i := range 5 {
		w := call(t, a, "GET", "/v1/users", "wdn_adm_guess", nil)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Fatalf("request over the limit %d = %d, want 429 with Retry-After", i, w.Code)
		}
	}
	var auths, limits int
	for _, e := range mem.Events() {
		switch e.Type {
		case events.TypeAdminAuth:
			auths++
		case events.TypeLimitRate:
			limits++
		}
	}
	if auths != 3 || limits != 1 {
		t.Fatalf("%d admin.auth and %d limit.rate events, want 3 and 1", auths, limits)
	}
}
