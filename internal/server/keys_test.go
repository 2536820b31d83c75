package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"warden/internal/events"
)

// TestAPIKeys: a route with auth apikey admits exactly the keys that hold
// its scopes, by either header; revocation takes effect on the next
// request; the function sees the identity, never the key; no event or
// listing ever contains a key.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLI("deploy", "-f", fixture(t, "attack", func(m string) string {
		return strings.Replace(m, "    auth: none\n", "    auth: apikey\n    scopes: [attack:run]\n", 1)
	}))
	create := func(name, scopes string, extra ...string) (id, key string) {
		var out struct{ ID, Key string }
		args := append([]string{"keys", "create", name, "--scopes", scopes, "--json"}, extra...)
		if err := json.Unmarshal([]byte(in.mustCLI(args...)), &out); err != nil || out.Key == "" {
			t.Fatalf("keys create %s: %v %+v", name, err, out)
		}
		return out.ID, out.Key
	}
	goodID, good := create("good", "attack:run,other")
	_, weak := create("weak", "other")
	call := func(hdr map[string]string) *http.Response { return in.public("GET", "/attack?t=env", nil, hdr) }

	resp := call(map[string]string{"Authorization": "Bearer " + good})
	body := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("valid key: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "X_WARDEN_IDENTITY=apikey:"+goodID) || !strings.Contains(body, "X_WARDEN_SCOPES=attack:run other") {
		t.Fatalf("the function does not see the verified identity:\n%s", body)
	}
	if strings.Contains(body, good[len(good)-20:]) {
		t.Fatal("the function saw the key itself")
	}
	if resp := call(map[string]string{"X-API-Key": good}); resp.StatusCode != 200 {
		t.Fatalf("X-API-Key: %d", resp.StatusCode)
	}
	wantProblem(t, call(map[string]string{"Authorization": "Bearer " + weak}), http.StatusForbidden)
	wantProblem(t, call(nil), http.StatusUnauthorized)
	wantProblem(t, call(map[string]string{"Authorization": "Bearer " + in.token}), http.StatusUnauthorized) // an admin token is not an API key
	wantProblem(t, call(map[string]string{"Authorization": "Bearer " + good[:len(good)-2] + "xx"}), http.StatusUnauthorized)
	// And an API key is not an admin token.
	wantProblem(t, in.admin("GET", "/v1/functions", good, nil), http.StatusUnauthorized)

	in.mustCLI("keys", "revoke", goodID)
	wantProblem(t, call(map[string]string{"Authorization": "Bearer " + good}), http.StatusUnauthorized)

	ls := in.mustCLI("keys", "ls")
	if !strings.Contains(ls, goodID) || !strings.Contains(ls, "revoked") {
		t.Fatalf("keys ls = %q", ls)
	}
	var evs []string
	for _, typ := range []string{"route.", "apikey.", "admin."} {
		for _, e := range in.eventsOf(typ) {
			b, _ := json.Marshal(e)
			evs = append(evs, string(b))
		}
	}
	all := strings.Join(evs, "\n") + ls
	for _, k := range []string{good, weak} {
		if strings.Contains(all, k[len(k)-43:]) {
			t.Fatal("a key's secret appears in an event or listing")
		}
	}
	denied := 0
	for _, e := range in.eventsOf(events.TypeRouteAuth) {
		if e.Outcome == events.OutcomeDenied {
			denied++
		}
	}
	if denied != 5 {
		t.Fatalf("%d route.auth denials, want 5", denied)
	}
	if n := len(in.eventsOf(events.TypeAPIKeyCreate)); n != 2 {
		t.Fatalf("%d apikey.create events, want 2", n)
	}
	if _, _, code := in.cli("keys", "create", "bad name!", "--scopes", "x"); code != 1 {
		t.Fatalf("keys create with a bad name: exit %d, want 1", code)
	}
	if _, _, code := in.cli("keys", "revoke", "000000000000"); code != 1 {
		t.Fatalf("revoke of an unknown key: exit %d, want 1", code)
	}
}
