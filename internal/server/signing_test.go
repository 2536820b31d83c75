package server_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/admin"
	"warden/internal/events"
)

// TestSignedDeploys drives signing end to end through the command line:
// keys, trust, sign, deploy, and the refusals an attacker meets.
func TestSignedDeploys(t *testing.T) {
	in := start(t, t.TempDir())
	keys := t.TempDir()
	ci, laptop := filepath.Join(keys, "ci"), filepath.Join(keys, "laptop")
	if out := in.mustCLI("signing", "keygen", "--out", ci); !strings.Contains(out, "key id ") {
		t.Fatalf("keygen printed %q", out)
	}
	in.mustCLI("signing", "keygen", "--algorithm", "ecdsa-p256", "--out", laptop)
	if fi, err := os.Stat(ci + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	before, _ := os.ReadFile(ci + ".key")
	if _, _, code := in.cli("signing", "keygen", "--out", ci); code != 2 {
		t.Fatalf("keygen over an existing key: exit %d, want 2", code)
	}
	if after, _ := os.ReadFile(ci + ".key"); !bytes.Equal(before, after) {
		t.Fatal("keygen overwrote a private key")
	}

	// Before any key is trusted, namespace default verifies nothing.
	m := fixture(t, "ping", nil)
	if out := in.mustCLI("deploy", "-f", m); !strings.Contains(out, "deployed default/ping version 1") {
		t.Fatalf("deploy before trust: %q", out)
	}
	out := in.mustCLI("trust", "add", "default", "--key", ci+".pub", "--name", "ci")
	if !strings.Contains(out, "namespace default trusts key") {
		t.Fatalf("trust add printed %q", out)
	}
	if out := in.mustCLI("trust", "ls"); !strings.Contains(out, "enforce (default)") || !strings.Contains(out, "ci") {
		t.Fatalf("trust ls = %q, want default enforcing with key ci", out)
	}
	if ev := in.waitEvent(admin.TypeTrustKeyAdd, func(events.Event) bool { return true }); ev.Outcome != events.OutcomeSuccess || ev.Actor == "" || ev.Labels["key.name"] != "ci" {
		t.Fatalf("trust event = %+v", ev)
	}

	// New code, unsigned: refused at the signature step.
	wasm := filepath.Join(filepath.Dir(m), "ping.wasm")
	appendByte(t, wasm)
	_, errOut, code := in.cli("deploy", "-f", m)
	if code != 1 || !strings.Contains(errOut, "step signature") || !strings.Contains(errOut, "not signed") {
		t.Fatalf("unsigned deploy: exit %d, %q; want a refusal at step signature", code, errOut)
	}
	// Signed by ci: accepted, and the answer names the signer.
	if out := in.mustCLI("sign", "-f", m, "--key", ci+".key", "--source-digest", "gitCommit=0123abcd"); !strings.Contains(out, "warden.dsse.json") {
		t.Fatalf("sign printed %q", out)
	}
	if out := in.mustCLI("deploy", "-f", m); !strings.Contains(out, "version 2") || !strings.Contains(out, "signed by ci") {
		t.Fatalf("signed deploy printed %q", out)
	}
	// One byte of the module changed after signing: refused, and through
	// the API the problem names the step and the file.
	appendByte(t, wasm)
	_, errOut, code = in.cli("deploy", "-f", m)
	if code != 1 || !strings.Contains(errOut, "ping.wasm: digest differs") {
		t.Fatalf("deploy of a changed module: exit %d, %q", code, errOut)
	}
	body, ctype := deployBody(t, m, filepath.Join(filepath.Dir(m), "warden.dsse.json"))
	req, _ := http.NewRequest("POST", "https://"+in.srv.AdminAddr()+"/v1/functions", body)
	req.Header.Set("Authorization", "Bearer "+in.token)
	req.Header.Set("Content-Type", ctype)
	resp, err := in.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p := wantProblem(t, resp, 403)
	if p.Step != "signature" || p.RequestID == "" || !strings.Contains(p.Detail, "digest differs") {
		t.Fatalf("problem = %+v, want step signature, a request id and the reason", p)
	}
	// A key the namespace does not trust.
	in.mustCLI("sign", "-f", m, "--key", laptop+".key")
	if _, errOut, code = in.cli("deploy", "-f", m); code != 1 || !strings.Contains(errOut, "not trusted") {
		t.Fatalf("deploy signed by an untrusted key: exit %d, %q", code, errOut)
	}
	// Revoked: what ci signs no longer deploys.
	in.mustCLI("sign", "-f", m, "--key", ci+".key")
	id := keyID(t, in.mustCLI("--json", "trust", "ls", "default"))
	in.mustCLI("trust", "revoke", "default", id[:12])
	if _, errOut, code = in.cli("deploy", "-f", m); code != 1 || !strings.Contains(errOut, "revoked") {
		t.Fatalf("deploy signed by a revoked key: exit %d, %q", code, errOut)
	}
	var info admin.FunctionInfo
	if err := json.Unmarshal([]byte(in.mustCLI("--json", "functions", "get", "ping")), &info); err != nil || info.ActiveVersion != 2 {
		t.Fatalf("active version after the refusals = %d, %v; want 2", info.ActiveVersion, err)
	}
	// Warn: accepted, and the answer says the signature was not verified.
	in.mustCLI("trust", "mode", "default", "warn")
	if out := in.mustCLI("deploy", "-f", m); !strings.Contains(out, "NOT verified") || !strings.Contains(out, "revoked") {
		t.Fatalf("deploy in warn mode printed %q", out)
	}
	if ev := in.waitEvent(admin.TypeTrustMode, func(events.Event) bool { return true }); ev.Labels["mode"] != "warn" || ev.Labels["mode.before"] != "enforce" {
		t.Fatalf("mode event = %+v", ev)
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A custom section of one empty name: still a valid module, new bytes.
	if _, err := f.Write([]byte{0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// deployBody builds a deploy's multipart body as warden deploy does.
func deployBody(t *testing.T, manifestPath, envelopePath string) (*bytes.Buffer, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ field, path string }{
		{"manifest", manifestPath}, {"artifact", filepath.Join(filepath.Dir(manifestPath), "ping.wasm")}, {"signature", envelopePath},
	} {
		b, err := os.ReadFile(part.path)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := mw.CreateFormFile(part.field, filepath.Base(part.path))
		w.Write(b)
	}
	mw.Close()
	return &body, mw.FormDataContentType()
}

func keyID(t *testing.T, listing string) string {
	t.Helper()
	i := strings.Index(listing, `"id": "`)
	if i < 0 {
		t.Fatalf("no key id in %s", listing)
	}
	return listing[i+7 : i+7+64]
}
