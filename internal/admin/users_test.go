package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"warden/internal/auth"
	"warden/internal/events"
	"warden/internal/problem"
)

// TestLoginMFANotEnrolledHTTP, from the attacker's side: guessing the
// password of an admin who has not enrolled TOTP yet. The right password
// gets the answer a wrong one gets (status, headers, body apart from the
// request id), and counts toward the lockout the same way; only the event
// tells the operator why.
func TestLoginMFANotEnrolledHTTP(t *testing.T) {
	a, users, _, mem := newUsersAPI(t)
	const pw = "admin password 123"
	for _, name := range []string{"ada", "bob"} {
		if _, err := users.Create(context.Background(), name, auth.RoleAdmin, pw); err != nil {
			t.Fatal(err)
		}
	}
	login := func(user, password string) *httptest.ResponseRecorder {
		return call(t, a, "POST", "/v1/login", "", LoginRequest{User: user, Password: password, TOTP: "123456"})
	}
	answer := func(w *httptest.ResponseRecorder) string {
		t.Helper()
		var p problem.Details
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body %q: %v", w.Body.String(), err)
		}
		p.RequestID, p.Instance = "", ""
		b, _ := json.Marshal(p)
		return w.Result().Status + " Retry-After=" + w.Header().Get("Retry-After") + " Content-Type=" + w.Header().Get("Content-Type") + " " + string(b)
	}
	for i := 1; i <= auth.DefaultMaxFailures+1; i++ {
		right, wrong := login("ada", pw), login("bob", "not the password")
		if r, w := answer(right), answer(wrong); r != w {
			t.Fatalf("attempt %d: right password without MFA answered %s; wrong password %s: want the same", i, r, w)
		}
		want := 401
		if i >= auth.DefaultMaxFailures {
			want = 429 // the fifth failure locks, for both
		}
		if right.Code != want {
			t.Fatalf("attempt %d: right password without MFA = %d, want %d", i, right.Code, want)
		}
	}
	// The operator sees why in the event.
	var reasons []string
	for _, e := range mem.Events() {
		if e.Type == TypeUserLogin && e.Actor == "ada" {
			reasons = append(reasons, e.Outcome+":"+e.Reason)
		}
	}
	if len(reasons) == 0 || reasons[0] != events.OutcomeFailure+":"+auth.ReasonMFANotEnrolled {
		t.Errorf("ada's login events = %q, want the first a failure with reason %q", reasons, auth.ReasonMFANotEnrolled)
	}
}
