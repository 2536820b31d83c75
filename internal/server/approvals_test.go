package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"warden/internal/admin"
	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/store"
)

// TestTwoPersonApprovals: under the built-in policy a deploy adding egress
// is stored pending and does not serve; its deployer cannot approve it, the
// bootstrap token cannot once an admin user exists, and a second person
// (an admin user) approves it, which activates it.
func TestTwoPersonApprovals(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLI("policy", "rm", "default") // the built-in policy, with its two-person rule
	m := fixture(t, "ping", func(m string) string { return m + "permissions:\n  egress: [\"https://api.example\"]\n" })
	out := in.mustCLI("deploy", "-f", m)
	if !strings.Contains(out, "PENDING approval") || !strings.Contains(out, "adds egress to https://api.example") {
		t.Fatalf("deploy adding egress printed %q", out)
	}
	if resp := in.public("GET", "/ping", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a pending version answers: %d", resp.StatusCode)
	}
	var pending []store.Version
	if err := json.Unmarshal([]byte(in.mustCLI("--json", "approvals", "ls")), &pending); err != nil || len(pending) != 1 || pending[0].Version != 1 {
		t.Fatalf("approvals ls = %+v, %v", pending, err)
	}
	// The deployer (here the bootstrap token) cannot approve its own.
	if _, errOut, code := in.cli("approve", "ping", "1"); code != 1 || !strings.Contains(errOut, "second person") {
		t.Fatalf("self-approval: exit %d, %q", code, errOut)
	}

	// An admin user with MFA: from now on the bootstrap token decides
	// nothing, and ada is the second person.
	pw := "ada's admin password"
	in.mustCLIStdin(pw+"\n", "users", "add", "ada", "--role", "admin", "--password-stdin")
	var en admin.TOTPEnrollment
	if err := json.Unmarshal([]byte(in.mustCLI("users", "mfa", "ada", "--json")), &en); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(en.URI)
	seed := u.Query().Get("secret")
	now := time.Now()
	code0, _ := totp.GenerateCode(seed, now)
	in.mustCLI("users", "mfa", "ada", "--code", code0)
	code1, _ := totp.GenerateCode(seed, now.Add(30*time.Second))
	ada := strings.TrimSpace(in.mustCLIStdin(pw+"\n", "login", "--user", "ada", "--password-stdin", "--code", code1))

	if _, errOut, code := in.cli("reject", "ping", "1"); code != 1 || !strings.Contains(errOut, "bootstrap token cannot reject") {
		t.Fatalf("bootstrap reject with an admin user present: exit %d, %q", code, errOut)
	}
	if out := in.mustCLI("--token", ada, "approve", "ping", "1", "--comment", "origin reviewed"); !strings.Contains(out, "approved default/ping version 1") {
		t.Fatalf("approve printed %q", out)
	}
	if resp := in.public("GET", "/ping", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("the approved version answers %d, want 200", resp.StatusCode)
	}
	ev := in.waitEvent(deploy.TypeDeployApproval, func(e events.Event) bool { return e.Labels["decision"] == "approve" && e.Outcome == "success" })
	if !strings.HasPrefix(ev.Actor, "ada") || !strings.Contains(ev.Reason, "adds egress") {
		t.Fatalf("approval event = %+v", ev)
	}
}
