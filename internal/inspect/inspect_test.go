package inspect

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"

	"warden/internal/dlp"
	"warden/internal/events"
)

const secret = "inspect-test-secret-0a1b2c3d4e5f"

type secrets struct{ err error }

func (s secrets) SecretScanners(context.Context) (*dlp.Scanner, *dlp.Scanner, error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	v := [][]byte{[]byte(secret)}
	return dlp.New(dlp.Options{Exact: v}), dlp.New(dlp.Options{Exact: v, ExactOnly: true}), nil
}

func newInspector(t *testing.T) (*Inspector, *events.Memory) {
	t.Helper()
	ev := events.NewMemory()
	in, err := New(Config{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	return in, ev
}

func TestNewNeedsEvents(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without events = nil error")
	}
}

// TestSecretInEveryModeAndEncoding: whatever the mode, a function's secret
// never passes, as text or in the encodings a careless or hostile function
// would use.
func TestSecretInEveryModeAndEncoding(t *testing.T) {
	in, ev := newInspector(t)
	fn := Function{Namespace: "default", Name: "fn", Version: 1, Secrets: secrets{}}
	encs := map[string]string{
		"plain":     secret,
		"base64":    base64.StdEncoding.EncodeToString([]byte("x" + secret)),
		"base64url": base64.RawURLEncoding.EncodeToString([]byte("xy" + secret)),
		"hex":       hex.EncodeToString([]byte(secret)),
		"HEX":       strings.ToUpper(hex.EncodeToString([]byte(secret))),
	}
	for _, mode := range []string{ModeOff, ModeRedact, ModeBlock, ""} {
		for name, enc := range encs {
			for _, ct := range []string{"application/json", "image/png"} {
				a := &Answer{Header: http.Header{"Content-Type": {ct}}, Body: []byte(`{"v":"` + enc + `"}`)}
				ref := in.Check(context.Background(), fn, mode, Origin{RequestID: "r1", Channel: "test"}, a)
				if ref == nil && strings.Contains(string(a.Body), enc) {
					t.Errorf("mode %q, %s, %s: the secret passed", mode, name, ct)
				}
				if (mode == ModeBlock || ct == "image/png") && (ref == nil || ref.Status != http.StatusBadGateway) {
					t.Errorf("mode %q, %s, %s: refusal %v, want 502", mode, name, ct, ref)
				}
			}
		}
	}
	for _, e := range ev.Events() {
		if e.Type != events.TypeDLP || e.Labels["channel"] != "test" || strings.Contains(e.Reason, secret) {
			t.Fatalf("event %+v: want a dlp.response naming the channel and no value", e)
		}
	}
}

func TestSecretInHeaderRefused(t *testing.T) {
	in, _ := newInspector(t)
	fn := Function{Name: "fn", Secrets: secrets{}}
	a := &Answer{Header: http.Header{"Set-Cookie": {"t=" + secret}}, Body: []byte("ok")}
	if ref := in.Check(context.Background(), fn, ModeOff, Origin{}, a); ref == nil || ref.Status != http.StatusBadGateway {
		t.Fatalf("secret in a header with dlp off: %v, want 502", ref)
	}
}

func TestModeOffSkipsPatternsOnly(t *testing.T) {
	in, _ := newInspector(t)
	card := `{"card":"4111 1111 1111 1111"}`
	a := &Answer{Header: http.Header{}, Body: []byte(card)}
	if ref := in.Check(context.Background(), Function{Name: "fn"}, ModeOff, Origin{}, a); ref != nil || string(a.Body) != card {
		t.Fatalf("dlp off without secrets: %v %s, want the body as it is", ref, a.Body)
	}
	a = &Answer{Header: http.Header{}, Body: []byte(card)}
	if ref := in.Check(context.Background(), Function{Name: "fn"}, ModeRedact, Origin{}, a); ref != nil || string(a.Body) == card {
		t.Fatalf("dlp redact: %v %s, want the card redacted", ref, a.Body)
	}
}

func TestUncheckableAnswerRefused(t *testing.T) {
	in, ev := newInspector(t)
	fn := Function{Name: "fn", Secrets: secrets{err: errors.New("vault down")}}
	a := &Answer{Header: http.Header{}, Body: []byte("anything")}
	ref := in.Check(context.Background(), fn, ModeOff, Origin{}, a)
	if ref == nil || ref.Status != http.StatusServiceUnavailable || strings.Contains(ref.Detail, "vault down") {
		t.Fatalf("secrets unavailable: %v, want 503 without the cause", ref)
	}
	if len(ev.Events()) != 1 || ev.Events()[0].Outcome != events.OutcomeFailure {
		t.Fatalf("events %+v, want one failure", ev.Events())
	}
}

func TestUnrecordableFindingRefused(t *testing.T) {
	in, ev := newInspector(t)
	ev.SetUnavailable("stalled")
	a := &Answer{Header: http.Header{}, Body: []byte(`{"v":"` + secret + `"}`)}
	ref := in.Check(context.Background(), Function{Name: "fn", Secrets: secrets{}}, ModeRedact, Origin{}, a)
	if ref == nil || ref.Status != http.StatusServiceUnavailable {
		t.Fatalf("finding that cannot be recorded: %v, want 503", ref)
	}
}

func TestTextual(t *testing.T) {
	for ct, want := range map[string]bool{"": true, "text/html; charset=utf-8": true, "application/problem+json": true,
		"APPLICATION/JSON": true, "application/xml": true, "image/png": false, "application/octet-stream": false, "application/zip": false} {
		if got := Textual(ct); got != want {
			t.Errorf("Textual(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestSecretInHeaderNameRefused(t *testing.T) {
	in, _ := newInspector(t)
	a := &Answer{Header: http.Header{http.CanonicalHeaderKey(secret): {"1"}}, Body: []byte("ok")}
	if ref := in.Check(context.Background(), Function{Name: "fn", Secrets: secrets{}}, ModeOff, Origin{}, a); ref == nil {
		t.Fatal("a secret in a header name passed")
	}
}

// TestEncodedBodyRefused: gzip hides everything from the detectors, so an
// answer with a Content-Encoding is refused wherever a check must run.
func TestEncodedBodyRefused(t *testing.T) {
	in, _ := newInspector(t)
	for _, tc := range []struct {
		fn   Function
		mode string
		want bool // refused
	}{
		{Function{Name: "fn", Secrets: secrets{}}, ModeOff, true},
		{Function{Name: "fn"}, ModeRedact, true},
		{Function{Name: "fn"}, ModeOff, false}, // nothing to check
	} {
		a := &Answer{Header: http.Header{"Content-Encoding": {"gzip"}, "Content-Type": {"application/json"}}, Body: []byte{0x1f, 0x8b, 1, 2}}
		ref := in.Check(context.Background(), tc.fn, tc.mode, Origin{}, a)
		if (ref != nil) != tc.want {
			t.Errorf("gzip answer, secrets %v, mode %s: refusal %v, want refused %v", tc.fn.Secrets != nil, tc.mode, ref, tc.want)
		}
	}
}

func TestBlockModeChecksBinaryForPatterns(t *testing.T) {
	in, _ := newInspector(t)
	a := &Answer{Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: []byte("card 4111 1111 1111 1111")}
	if ref := in.Check(context.Background(), Function{Name: "fn"}, ModeBlock, Origin{}, a); ref == nil || ref.Status != http.StatusBadGateway {
		t.Fatalf("dlp block, binary body with a card: %v, want 502", ref)
	}
}
