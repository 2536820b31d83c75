package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"warden/internal/events"
)

// TestDLP: a response carrying a card number is redacted by default,
// blocked with dlp: block and passed with dlp: off; every hit is an event
// naming the kind and count, never the value.
func TestDLP(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	const card = "4111 1111 1111 1111"
	deploy := func(name, dlp string) {
		in.mustCLI("deploy", "-f", fixture(t, "attack", func(m string) string {
			m = strings.Replace(m, "name: attack", "name: "+name, 1)
			m = strings.Replace(m, `route: "/attack"`, `route: "/`+name+`"`, 1)
			if dlp != "" {
				m = strings.Replace(m, "    auth: none\n", "    auth: none\n    dlp: "+dlp+"\n", 1)
			}
			return strings.Replace(m, "env: {VISIBLE: yes}", `env: {VISIBLE: yes, CARD: "`+card+`"}`, 1)
		}))
	}
	deploy("redacted", "")
	deploy("blocked", "block")
	deploy("open", "off")

	body := readBody(t, in.public("GET", "/redacted?t=env", nil, nil))
	if strings.Contains(body, card) || !strings.Contains(body, "CARD=[REDACTED:card]") || !strings.Contains(body, "VISIBLE=yes") {
		t.Fatalf("redact: body\n%s", body)
	}
	p := wantProblem(t, in.public("GET", "/blocked?t=env", nil, nil), http.StatusBadGateway)
	if strings.Contains(p.Detail, card) {
		t.Fatal("the problem holds the card number")
	}
	if body := readBody(t, in.public("GET", "/open?t=env", nil, nil)); !strings.Contains(body, card) {
		t.Fatalf("dlp off altered the body:\n%s", body)
	}
	// A clean response is untouched.
	if body := readBody(t, in.public("GET", "/redacted?t=ok", nil, nil)); body != "ok" {
		t.Fatalf("clean response = %q", body)
	}
	evs := in.eventsOf(events.TypeDLP)
	if len(evs) != 2 {
		t.Fatalf("%d dlp events, want 2 (redact and block)", len(evs))
	}
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "4111") || e.Labels["dlp.card"] != "1" {
			t.Fatalf("dlp event %s: want the kind and count, never the value", b)
		}
	}
	if evs[1].Outcome != events.OutcomeDenied || evs[1].Function != "blocked" || evs[1].RequestID != p.RequestID {
		t.Fatalf("block event %+v", evs[1])
	}
}
