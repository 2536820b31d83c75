package sign_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode"

	"warden/internal/sign"
)

var algorithms = []sign.Algorithm{sign.Ed25519, sign.ECDSAP256}

func TestRoundTrip(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			privPEM, pubPEM, err := sign.GenerateKey(alg)
			if err != nil {
				t.Fatalf("GenerateKey(%q) = %v", alg, err)
			}
			priv, err := sign.ParsePrivateKey(privPEM)
			if err != nil {
				t.Fatalf("ParsePrivateKey = %v", err)
			}
			pub, err := sign.ParsePublicKey(pubPEM)
			if err != nil {
				t.Fatalf("ParsePublicKey = %v", err)
			}
			other := fixedKey(t, sign.Ed25519, 9)

			d := sampleDeploy()
			c := claimFor("shop", "orders", d)
			c.Provenance = sampleProvenance()
			env, err := sign.Sign(c, priv)
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}

			// The deploy lists its files in another order and no provenance.
			want := claimFor("shop", "orders", d)
			want.Subjects[0], want.Subjects[3] = want.Subjects[3], want.Subjects[0]
			v, err := sign.Verify(env, []*sign.PublicKey{other.pub, pub}, want)
			if err != nil {
				t.Fatalf("Verify = %v, want success", err)
			}
			if v.Key != pub || v.Key.ID != priv.Public.ID {
				t.Errorf("Verified.Key = %s, want the trusted key %s", v.Key.ID, priv.Public.ID)
			}
			if v.Key.Algorithm != alg {
				t.Errorf("Verified.Key.Algorithm = %q, want %q", v.Key.Algorithm, alg)
			}
			if v.Claim.Namespace != "shop" || v.Claim.Function != "orders" {
				t.Errorf("Verified target = %s/%s, want shop/orders", v.Claim.Namespace, v.Claim.Function)
			}
			if !sameSubjects(v.Claim.Subjects, d.subjects()) {
				t.Errorf("Verified subjects = %v, want %v", v.Claim.Subjects, d.subjects())
			}
			checkProvenance(t, v.Claim.Provenance, c.Provenance)

			// Without provenance, none comes back.
			env, err = sign.Sign(claimFor("shop", "orders", d), priv)
			if err != nil {
				t.Fatalf("Sign = %v", err)
			}
			v, err = sign.Verify(env, []*sign.PublicKey{pub}, want)
			if err != nil {
				t.Fatalf("Verify = %v, want success", err)
			}
			if v.Claim.Provenance != nil {
				t.Errorf("Verified.Claim.Provenance = %+v, want nil when none was signed", v.Claim.Provenance)
			}
		})
	}
}

func checkProvenance(t *testing.T, got, want *sign.Provenance) {
	t.Helper()
	if got == nil {
		t.Fatal("Verified.Claim.Provenance = nil, want the signed provenance")
	}
	if got.BuilderID != want.BuilderID || got.BuildType != want.BuildType || got.SourceURI != want.SourceURI || got.InvocationID != want.InvocationID {
		t.Errorf("provenance = %+v, want %+v", got, want)
	}
	if len(got.SourceDigest) != len(want.SourceDigest) || got.SourceDigest["gitCommit"] != want.SourceDigest["gitCommit"] {
		t.Errorf("provenance.SourceDigest = %v, want %v", got.SourceDigest, want.SourceDigest)
	}
	if got.StartedOn == nil || !got.StartedOn.Equal(*want.StartedOn) || got.FinishedOn == nil || !got.FinishedOn.Equal(*want.FinishedOn) {
		t.Errorf("provenance times = %v, %v, want %v, %v", got.StartedOn, got.FinishedOn, want.StartedOn, want.FinishedOn)
	}
}

// fixture is a valid signed deploy from the attacker's point of view: the
// envelope the real signer made, the deploy it covers, and a second key
// the namespace does not trust.
type fixture struct {
	signer, other testKey
	d             deploy
	env           []byte     // signer's envelope for shop/orders over d
	want          sign.Claim // what the server checks: shop/orders, d
}

func newFixture(t *testing.T, alg sign.Algorithm) fixture {
	t.Helper()
	f := fixture{signer: fixedKey(t, alg, 1), other: fixedKey(t, alg, 2), d: sampleDeploy()}
	f.want = claimFor("shop", "orders", f.d)
	f.env = mustSign(t, f.want, f.signer)
	return f
}

func (f fixture) trusted() []*sign.PublicKey { return []*sign.PublicKey{f.signer.pub} }

// signDoc signs a hand-made statement document with the trusted key.
func (f fixture) signDoc(t *testing.T, doc map[string]any) []byte {
	t.Helper()
	return handEnvelope(t, sign.PayloadType, mustJSON(t, doc), true, f.signer.raw)
}

// edit decodes env, lets fn change it and encodes it again.
func edit(t *testing.T, env []byte, fn func(*wireEnvelope)) []byte {
	t.Helper()
	w := decodeEnvelope(t, env)
	fn(&w)
	return mustJSON(t, w)
}

// editPayload changes the signed payload without signing again.
func editPayload(t *testing.T, env []byte, fn func(doc map[string]any)) []byte {
	t.Helper()
	return edit(t, env, func(w *wireEnvelope) {
		body, err := base64.StdEncoding.DecodeString(w.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatal(err)
		}
		fn(doc)
		w.Payload = base64.StdEncoding.EncodeToString(mustJSON(t, doc))
	})
}

// subjectsOf returns the subject list of a statement document.
func subjectsOf(doc map[string]any) []any { return doc["subject"].([]any) }

func withSubject(c sign.Claim, name, digest string) sign.Claim {
	c.Subjects = append(append([]sign.Subject(nil), c.Subjects...), sign.Subject{Name: name, SHA256: digest})
	return c
}

func TestVerifyRefuses(t *testing.T) {
	type build func(t *testing.T, f fixture) (env []byte, trusted []*sign.PublicKey, want sign.Claim)
	tests := []struct {
		name  string
		build build
		err   error
		msg   string
	}{
		{"artifact changed by one byte", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			d := f.d.clone()
			d["orders.wasm"][20] ^= 1
			return f.env, f.trusted(), claimFor("shop", "orders", d)
		}, sign.ErrSubjects, "orders.wasm: digest differs"},
		{"artifact digest one hex digit changed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			want := claimFor("shop", "orders", f.d)
			for i, s := range want.Subjects {
				if s.Name == "orders.wasm" {
					b := []byte(s.SHA256)
					b[63] = map[bool]byte{true: '1', false: '0'}[b[63] == '0'] // another hex digit
					want.Subjects[i].SHA256 = string(b)
				}
			}
			return f.env, f.trusted(), want
		}, sign.ErrSubjects, "orders.wasm: digest differs"},
		{"manifest changed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			d := f.d.clone()
			d["warden.yaml"] = append(d["warden.yaml"], "egress: ['*']\n"...)
			return f.env, f.trusted(), claimFor("shop", "orders", d)
		}, sign.ErrSubjects, "warden.yaml: digest differs"},
		{"schema changed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			d := f.d.clone()
			d["schemas/order.json"] = []byte(`{}`)
			return f.env, f.trusted(), claimFor("shop", "orders", d)
		}, sign.ErrSubjects, "schemas/order.json: digest differs"},
		{"deployed file not signed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			d := f.d.clone()
			d["schemas/extra.json"] = []byte(`{"type":"string"}`)
			return f.env, f.trusted(), claimFor("shop", "orders", d)
		}, sign.ErrSubjects, "schemas/extra.json: not signed"},
		{"signed file not deployed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			env := mustSign(t, withSubject(f.want, "extra.txt", sign.Digest([]byte("x"))), f.signer)
			return env, f.trusted(), f.want
		}, sign.ErrSubjects, "extra.txt: signed but not deployed"},
		{"subject signed twice", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["subject"] = append(subjectsOf(doc), subjectsOf(doc)[0])
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrSubjects, "orders.wasm: signed twice"},
		{"one name signed with two digests", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(withSubject(f.want, "orders.wasm", sign.Digest([]byte("evil"))))
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrSubjects, "orders.wasm: signed twice"},
		{"wrong key trusted", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, []*sign.PublicKey{f.other.pub}, f.want
		}, sign.ErrUntrusted, "which is not trusted here"},
		{"no trusted keys", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, nil, f.want
		}, sign.ErrUntrusted, "shop/orders trusts no signing key"},
		{"nil trusted key", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, []*sign.PublicKey{nil}, f.want
		}, sign.ErrUntrusted, "not made by ParsePublicKey"},
		{"trusted key written as a literal", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, []*sign.PublicKey{{ID: f.signer.pub.ID, Algorithm: f.signer.alg}}, f.want
		}, sign.ErrUntrusted, "not made by ParsePublicKey"},
		{"another function", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, f.trusted(), claimFor("shop", "refunds", f.d)
		}, sign.ErrWrongTarget, "signed for shop/orders, deploying shop/refunds"},
		{"another namespace", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, f.trusted(), claimFor("bank", "orders", f.d)
		}, sign.ErrWrongTarget, "signed for shop/orders, deploying bank/orders"},
		{"deploy without a function", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, f.trusted(), claimFor("shop", "", f.d)
		}, sign.ErrWrongTarget, "function is empty"},
		{"deploy without files", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, f.trusted(), sign.Claim{Namespace: "shop", Function: "orders"}
		}, sign.ErrSubjects, "no subjects"},
		{"payloadType changed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) { w.PayloadType = "application/json" }), f.trusted(), f.want
		}, sign.ErrMalformed, "payloadType is application/json, want application/vnd.in-toto+json"},
		{"payload retargeted after signing", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			env := editPayload(t, f.env, func(doc map[string]any) { doc["predicate"].(map[string]any)["function"] = "refunds" })
			return env, f.trusted(), claimFor("shop", "refunds", f.d)
		}, sign.ErrUntrusted, "signature by key " + "%ID" + " does not verify"},
		{"artifact swapped in the payload after signing", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			d := f.d.clone()
			d["orders.wasm"] = []byte("\x00asm evil")
			env := editPayload(t, f.env, func(doc map[string]any) {
				for _, s := range subjectsOf(doc) {
					if s := s.(map[string]any); s["name"] == "orders.wasm" {
						s["digest"] = map[string]any{"sha256": sign.Digest(d["orders.wasm"])}
					}
				}
			})
			return env, f.trusted(), claimFor("shop", "orders", d)
		}, sign.ErrUntrusted, "does not verify"},
		{"signature byte flipped", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) {
				sig, _ := base64.StdEncoding.DecodeString(w.Signatures[0].Sig)
				sig[len(sig)/2] ^= 0x01
				w.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
			}), f.trusted(), f.want
		}, sign.ErrUntrusted, "does not verify"},
		{"signature truncated", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) {
				sig, _ := base64.StdEncoding.DecodeString(w.Signatures[0].Sig)
				w.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig[:len(sig)-1])
			}), f.trusted(), f.want
		}, sign.ErrUntrusted, "does not verify"},
		{"keyid of the trusted key, signature by another", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			env := mustSign(t, f.want, f.other)
			return edit(t, env, func(w *wireEnvelope) { w.Signatures[0].KeyID = f.signer.pub.ID }), f.trusted(), f.want
		}, sign.ErrUntrusted, "signature by key %ID does not verify"},
		{"no keyid, signature by another key", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return handEnvelope(t, sign.PayloadType, payloadOf(t, f.env), false, f.other.raw), f.trusted(), f.want
		}, sign.ErrUntrusted, "no signature verifies under any of the 1 trusted keys"},
		{"trusted signature under an untrusted keyid", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) { w.Signatures[0].KeyID = f.other.pub.ID }), f.trusted(), f.want
		}, sign.ErrUntrusted, "not trusted here"},
		{"statement predicateType is SLSA", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["predicateType"] = "https://slsa.dev/provenance/v1"
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "predicateType is https://slsa.dev/provenance/v1"},
		{"statement _type v0.1", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["_type"] = "https://in-toto.io/Statement/v0.1"
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "_type is https://in-toto.io/Statement/v0.1"},
		{"statement without _type", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			delete(doc, "_type")
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, `_type is ""`},
		{"statement field by its proto name", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["predicate_type"] = doc["predicateType"]
			delete(doc, "predicateType")
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "unknown field predicate_type"},
		{"statement field in another case", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["Subject"] = doc["subject"]
			delete(doc, "subject")
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "unknown field Subject"},
		{"subject with a uri", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			subjectsOf(doc)[1].(map[string]any)["uri"] = "https://evil.example/x.wasm"
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "unknown field uri in subject[]"},
		{"subject digest sha512 only", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			subjectsOf(doc)[0].(map[string]any)["digest"] = map[string]any{"sha512": strings.Repeat("ab", 64)}
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "unknown field sha512 in subject[].digest"},
		{"subject digest uppercase", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			s := subjectsOf(doc)[0].(map[string]any)
			s["digest"] = map[string]any{"sha256": strings.ToUpper(sign.Digest(f.d["orders.wasm"]))}
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "not 64 lowercase hex digits"},
		{"subject name not clean", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			subjectsOf(doc)[0].(map[string]any)["name"] = "./orders.wasm"
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "./orders.wasm is not a clean relative path"},
		{"subject name escapes", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			subjectsOf(doc)[0].(map[string]any)["name"] = "../orders.wasm"
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "is not a clean relative path"},
		{"no subjects", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["subject"] = []any{}
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "0 subjects"},
		{"predicate without function", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			delete(doc["predicate"].(map[string]any), "function")
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "function is missing"},
		{"predicate with a number for namespace", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["predicate"].(map[string]any)["namespace"] = 7
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "namespace is not a string"},
		{"predicate with an unknown field", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["predicate"].(map[string]any)["allowEgress"] = "*"
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "unknown field allowEgress in predicate"},
		{"provenance time not RFC 3339", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			doc := statementDoc(f.want)
			doc["predicate"].(map[string]any)["provenance"] = map[string]any{"startedOn": "yesterday"}
			return f.signDoc(t, doc), f.trusted(), f.want
		}, sign.ErrMalformed, "startedOn is not an RFC 3339 time"},
		{"signed payload not JSON", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return handEnvelope(t, sign.PayloadType, []byte("namespace=shop function=orders"), true, f.signer.raw), f.trusted(), f.want
		}, sign.ErrMalformed, "signed statement is not valid JSON"},
		{"signed payload duplicate predicate", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			body := payloadOf(t, f.env)
			body = append(body[:len(body)-1], `,"predicate":{"namespace":"shop","function":"refunds"}}`...)
			return handEnvelope(t, sign.PayloadType, body, true, f.signer.raw), f.trusted(), claimFor("shop", "refunds", f.d)
		}, sign.ErrMalformed, "field predicate appears twice"},
		{"truncated envelope", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env[:len(f.env)/2], f.trusted(), f.want
		}, sign.ErrMalformed, "truncated"},
		{"oversized envelope", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			env := append(bytes.Repeat([]byte(" "), sign.MaxEnvelope+1-len(f.env)), f.env...)
			return env, f.trusted(), f.want
		}, sign.ErrMalformed, fmt.Sprintf("envelope is %d bytes, more than %d", sign.MaxEnvelope+1, sign.MaxEnvelope)},
		{"not JSON", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return []byte("-----BEGIN SIGNATURE-----"), f.trusted(), f.want
		}, sign.ErrMalformed, "envelope is not valid JSON (at byte "},
		{"empty", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return nil, f.trusted(), f.want
		}, sign.ErrMalformed, "envelope is empty"},
		{"JSON array", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return append(append([]byte("["), f.env...), ']'), f.trusted(), f.want
		}, sign.ErrMalformed, "envelope is not a JSON object"},
		{"unknown envelope field", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return append([]byte(`{"threshold":0,`), f.env[1:]...), f.trusted(), f.want
		}, sign.ErrMalformed, "envelope: unknown field threshold"},
		{"unknown signature field", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return bytes.Replace(f.env, []byte(`"keyid"`), []byte(`"cert":"x","keyid"`), 1), f.trusted(), f.want
		}, sign.ErrMalformed, "envelope: unknown field cert in signatures[]"},
		{"envelope field in another case", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return bytes.Replace(f.env, []byte(`"payloadType"`), []byte(`"PayloadType"`), 1), f.trusted(), f.want
		}, sign.ErrMalformed, "unknown field PayloadType"},
		{"second payload after the signed one", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			evil := base64.StdEncoding.EncodeToString(mustJSON(t, statementDoc(claimFor("shop", "refunds", f.d))))
			env := bytes.Replace(f.env, []byte(`"signatures"`), []byte(`"payload":"`+evil+`","signatures"`), 1)
			return env, f.trusted(), claimFor("shop", "refunds", f.d)
		}, sign.ErrMalformed, "field payload appears twice"},
		{"data after the envelope", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return append(bytes.Clone(f.env), f.env...), f.trusted(), f.want
		}, sign.ErrMalformed, "data after its JSON object"},
		{"null signatures", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return []byte(`{"payloadType":"` + sign.PayloadType + `","payload":"e30=","signatures":null}`), f.trusted(), f.want
		}, sign.ErrMalformed, "signatures is null"},
		{"no signatures", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) { w.Signatures = []wireSig{} }), f.trusted(), f.want
		}, sign.ErrUntrusted, "envelope carries no signatures"},
		{"17 signatures", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) {
				for len(w.Signatures) < 17 {
					w.Signatures = append(w.Signatures, w.Signatures[0])
				}
			}), f.trusted(), f.want
		}, sign.ErrMalformed, "17 signatures, at most 16"},
		{"signature not base64", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) { w.Signatures[0].Sig = "not base64!" }), f.trusted(), f.want
		}, sign.ErrMalformed, "signature 0 is not base64"},
		{"payload not base64", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) { w.Payload = "{" + w.Payload }), f.trusted(), f.want
		}, sign.ErrMalformed, "payload is not base64"},
		{"payload is a number", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return []byte(`{"payloadType":"` + sign.PayloadType + `","payload":5,"signatures":[]}`), f.trusted(), f.want
		}, sign.ErrMalformed, "payload is not a string"},
		{"nested too deeply", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
			return []byte(`{"signatures":` + deep + `}`), f.trusted(), f.want
		}, sign.ErrMalformed, "nested too deeply"},
	}
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			f := newFixture(t, alg)
			if _, err := sign.Verify(f.env, f.trusted(), f.want); err != nil {
				t.Fatalf("Verify(valid envelope) = %v; the refusals below would prove nothing", err)
			}
			payload := decodeEnvelope(t, f.env).Payload
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					env, trusted, want := tt.build(t, f)
					v, err := sign.Verify(env, trusted, want)
					if !errors.Is(err, tt.err) {
						t.Fatalf("Verify = %v, %v; want an error wrapping %q", v, err, tt.err)
					}
					if v != nil {
						t.Errorf("Verify returned %+v with its error", v)
					}
					msg := strings.ReplaceAll(tt.msg, "%ID", f.signer.pub.ID)
					if !strings.Contains(err.Error(), msg) {
						t.Errorf("Verify error = %q, want it to say %q", err, msg)
					}
					checkShowable(t, err, payload)
				})
			}
		})
	}
}

// checkShowable fails when an error message is not fit to show a user: a
// control character, or a piece of the payload.
func checkShowable(t *testing.T, err error, payload string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsFunc(msg, unicode.IsControl) {
		t.Errorf("error %q holds a control character", msg)
	}
	if len(payload) >= 24 && strings.Contains(msg, payload[:24]) {
		t.Errorf("error %q quotes the payload", msg)
	}
}

// payloadOf returns the signed body of an envelope.
func payloadOf(t testing.TB, env []byte) []byte {
	t.Helper()
	body, err := base64.StdEncoding.DecodeString(decodeEnvelope(t, env).Payload)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestVerifyAccepts(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, f fixture) (env []byte, trusted []*sign.PublicKey, want sign.Claim)
	}{
		{"as signed", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return f.env, f.trusted(), f.want
		}},
		{"URL-safe base64", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) {
				body, _ := base64.StdEncoding.DecodeString(w.Payload)
				sig, _ := base64.StdEncoding.DecodeString(w.Signatures[0].Sig)
				w.Payload = base64.URLEncoding.EncodeToString(body)
				w.Signatures[0].Sig = base64.URLEncoding.EncodeToString(sig)
			}), f.trusted(), f.want
		}},
		{"no keyid", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) { w.Signatures[0].KeyID = "" }), []*sign.PublicKey{f.other.pub, f.signer.pub}, f.want
		}},
		{"untrusted signature first", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return handEnvelope(t, sign.PayloadType, payloadOf(t, f.env), true, f.other.raw, f.signer.raw), f.trusted(), f.want
		}},
		{"bad signature of a trusted key first", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			return edit(t, f.env, func(w *wireEnvelope) {
				bad := w.Signatures[0]
				bad.Sig = base64.StdEncoding.EncodeToString([]byte("not a signature"))
				w.Signatures = append([]wireSig{bad}, w.Signatures...)
			}), f.trusted(), f.want
		}},
		{"deploy lists a file twice", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			want := f.want
			want.Subjects = append(append([]sign.Subject(nil), want.Subjects...), want.Subjects[2])
			return f.env, f.trusted(), want
		}},
		{"want provenance ignored", func(t *testing.T, f fixture) ([]byte, []*sign.PublicKey, sign.Claim) {
			want := f.want
			want.Provenance = sampleProvenance()
			return f.env, f.trusted(), want
		}},
	}
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			f := newFixture(t, alg)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					env, trusted, want := tt.build(t, f)
					v, err := sign.Verify(env, trusted, want)
					if err != nil {
						t.Fatalf("Verify = %v, want success", err)
					}
					if v.Key != f.signer.pub {
						t.Errorf("Verified.Key = %s, want %s", v.Key.ID, f.signer.pub.ID)
					}
					if !sameSubjects(v.Claim.Subjects, want.Subjects) {
						t.Errorf("Verified subjects = %v, want %v", v.Claim.Subjects, want.Subjects)
					}
					if v.Claim.Provenance != nil {
						t.Errorf("Verified provenance = %+v, want nil (none was signed)", v.Claim.Provenance)
					}
				})
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	k := fixedKey(t, sign.Ed25519, 1)
	d := sampleDeploy()
	good := claimFor("shop", "orders", d)
	tests := []struct {
		name string
		c    sign.Claim
		k    *sign.PrivateKey
		msg  string
	}{
		{"no namespace", claimFor("", "orders", d), k.priv, "namespace is empty"},
		{"function with a slash", claimFor("shop", "a/b", d), k.priv, `function a/b holds a '/'`},
		{"function with a newline", claimFor("shop", "a\nb", d), k.priv, `function "a\nb" holds`},
		{"no subjects", sign.Claim{Namespace: "shop", Function: "orders"}, k.priv, "no subjects"},
		{"uppercase digest", withSubject(good, "x.json", strings.ToUpper(sign.Digest(nil))), k.priv, "x.json: sha256 digest is not 64 lowercase hex digits"},
		{"short digest", withSubject(good, "x.json", "abc"), k.priv, "x.json: sha256 digest"},
		{"dot-slash name", withSubject(good, "./x.json", sign.Digest(nil)), k.priv, "not a clean relative path"},
		{"dot-dot name", withSubject(good, "../x.json", sign.Digest(nil)), k.priv, "not a clean relative path"},
		{"absolute name", withSubject(good, "/etc/passwd", sign.Digest(nil)), k.priv, "is absolute"},
		{"empty name", withSubject(good, "", sign.Digest(nil)), k.priv, "subject name is empty"},
		{"one name, two digests", withSubject(good, "orders.wasm", sign.Digest(nil)), k.priv, "orders.wasm: listed with two digests"},
		{"nil key", good, nil, "not made by ParsePrivateKey"},
		{"zero key", good, &sign.PrivateKey{}, "not made by ParsePrivateKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := sign.Sign(tt.c, tt.k)
			if err == nil {
				t.Fatalf("Sign(%s) = %.40s…, want an error", tt.name, env)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Sign error = %q, want it to say %q", err, tt.msg)
			}
		})
	}
}

func TestSignIsSetAndDeterministic(t *testing.T) {
	k := fixedKey(t, sign.Ed25519, 1)
	c := claimFor("shop", "orders", sampleDeploy())
	env1 := mustSign(t, c, k)
	// The same files in another order, one listed twice: the same set.
	c2 := c
	c2.Subjects = append([]sign.Subject{c.Subjects[3], c.Subjects[3]}, c.Subjects[:3]...)
	env2 := mustSign(t, c2, k)
	if !bytes.Equal(env1, env2) {
		t.Errorf("Sign(same set in another order) =\n%s\nwant\n%s", env2, env1)
	}
	var st struct {
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(payloadOf(t, env1), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Subject) != 4 || st.Subject[0].Name != "orders.wasm" || st.Subject[3].Name != "warden.yaml" {
		t.Errorf("signed subjects = %+v, want the 4 files sorted by name", st.Subject)
	}
}

// TestInterop proves the wire format is standard DSSE and in-toto: an
// envelope made with nothing but the crypto library, encoding/json and the
// PAE written out by hand verifies, and Sign's output checks the same way.
func TestInterop(t *testing.T) {
	d := sampleDeploy()
	c := claimFor("shop", "orders", d)
	body := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[` +
		`{"name":"orders.wasm","digest":{"sha256":"` + sign.Digest(d["orders.wasm"]) + `"}},` +
		`{"name":"schemas/order.json","digest":{"sha256":"` + sign.Digest(d["schemas/order.json"]) + `"}},` +
		`{"name":"schemas/refund.json","digest":{"sha256":"` + sign.Digest(d["schemas/refund.json"]) + `"}},` +
		`{"name":"warden.yaml","digest":{"sha256":"` + sign.Digest(d["warden.yaml"]) + `"}}],` +
		`"predicateType":"urn:warden:attestation:function:v1",` +
		`"predicate":{"namespace":"shop","function":"orders","provenance":{"builderId":"make","sourceDigest":{"gitCommit":"abc"}}}}`)

	for _, alg := range algorithms {
		t.Run(string(alg)+"/by hand", func(t *testing.T) {
			k := fixedKey(t, alg, 5)
			msg := []byte("DSSEv1 28 application/vnd.in-toto+json " + fmt.Sprint(len(body)) + " " + string(body))
			var sig []byte
			switch raw := k.raw.(type) {
			case ed25519.PrivateKey:
				sig = ed25519.Sign(raw, msg)
			case *ecdsa.PrivateKey:
				sum := sha256.Sum256(msg)
				var err error
				if sig, err = ecdsa.SignASN1(rand.Reader, raw, sum[:]); err != nil {
					t.Fatal(err)
				}
			}
			der, err := x509.MarshalPKIXPublicKey(k.raw.Public())
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(der)
			env, err := json.Marshal(map[string]any{
				"payloadType": "application/vnd.in-toto+json",
				"payload":     base64.StdEncoding.EncodeToString(body),
				"signatures":  []map[string]string{{"keyid": hex.EncodeToString(sum[:]), "sig": base64.StdEncoding.EncodeToString(sig)}},
			})
			if err != nil {
				t.Fatal(err)
			}
			v, err := sign.Verify(env, []*sign.PublicKey{k.pub}, c)
			if err != nil {
				t.Fatalf("Verify(hand-made envelope) = %v, want success", err)
			}
			if v.Key.ID != hex.EncodeToString(sum[:]) {
				t.Errorf("Verified.Key.ID = %s, want sha256(PKIX DER) %x", v.Key.ID, sum)
			}
			if p := v.Claim.Provenance; p == nil || p.BuilderID != "make" || p.SourceDigest["gitCommit"] != "abc" {
				t.Errorf("Verified provenance = %+v, want builderId make, gitCommit abc", p)
			}
		})
		t.Run(string(alg)+"/checked by hand", func(t *testing.T) {
			k := fixedKey(t, alg, 5)
			w := decodeEnvelope(t, mustSign(t, c, k))
			if w.PayloadType != "application/vnd.in-toto+json" || len(w.Signatures) != 1 {
				t.Fatalf("envelope = %+v, want one signature over an in-toto payload", w)
			}
			if w.Signatures[0].KeyID != keyID(t, k.raw.Public()) {
				t.Errorf("keyid = %q, want sha256 of the PKIX DER %q", w.Signatures[0].KeyID, keyID(t, k.raw.Public()))
			}
			payload, err := base64.StdEncoding.Strict().DecodeString(w.Payload)
			if err != nil {
				t.Fatalf("payload is not standard base64: %v", err)
			}
			sig, err := base64.StdEncoding.Strict().DecodeString(w.Signatures[0].Sig)
			if err != nil {
				t.Fatalf("sig is not standard base64: %v", err)
			}
			msg := pae(w.PayloadType, payload)
			var ok bool
			switch pub := k.raw.Public().(type) {
			case ed25519.PublicKey:
				ok = ed25519.Verify(pub, msg, sig)
			case *ecdsa.PublicKey:
				sum := sha256.Sum256(msg)
				ok = ecdsa.VerifyASN1(pub, sum[:], sig)
			}
			if !ok {
				t.Error("Sign's signature does not verify over the PAE computed by hand")
			}
			var st struct {
				Type          string `json:"_type"`
				PredicateType string `json:"predicateType"`
				Predicate     struct {
					Namespace string `json:"namespace"`
					Function  string `json:"function"`
				} `json:"predicate"`
			}
			if err := json.Unmarshal(payload, &st); err != nil {
				t.Fatalf("payload is not JSON: %v", err)
			}
			if st.Type != sign.StatementType || st.PredicateType != sign.PredicateType || st.Predicate.Namespace != "shop" || st.Predicate.Function != "orders" {
				t.Errorf("statement = %+v, want an in-toto v1 warden statement for shop/orders", st)
			}
		})
	}
}

// rsaKey and p384Key are generated once: RSA generation is slow.
var (
	rsaKey  = sync.OnceValue(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 1024); return k })
	p384Key = sync.OnceValue(func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader); return k })
)

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkix(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pkcs8(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParsePublicKey(t *testing.T) {
	ed := fixedKey(t, sign.Ed25519, 1)
	ec := fixedKey(t, sign.ECDSAP256, 1)
	edPEM := pemOf("PUBLIC KEY", pkix(t, ed.raw.Public()))
	tests := []struct {
		name string
		in   []byte
		msg  string // "" when the key is accepted
		alg  sign.Algorithm
	}{
		{"ed25519", edPEM, "", sign.Ed25519},
		{"ecdsa p-256", pemOf("PUBLIC KEY", pkix(t, ec.raw.Public())), "", sign.ECDSAP256},
		{"surrounding blank lines", append(append([]byte("\n\n"), edPEM...), "\n\n"...), "", sign.Ed25519},
		{"rsa", pemOf("PUBLIC KEY", pkix(t, &rsaKey().PublicKey)), "RSA keys are not supported", ""},
		{"rsa pkcs1", pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey().PublicKey)), "RSA keys are not supported", ""},
		{"p-384", pemOf("PUBLIC KEY", pkix(t, &p384Key().PublicKey)), "ECDSA curve P-384 is not supported", ""},
		{"garbage", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"), "not PEM", ""},
		{"empty", nil, "no PEM block found", ""},
		{"trailing private key", append(bytes.Clone(edPEM), ed.pem...), "found 2 PEM blocks", ""},
		{"second public key", append(bytes.Clone(edPEM), pemOf("PUBLIC KEY", pkix(t, ec.raw.Public()))...), "found 2 PEM blocks", ""},
		{"text after", append(bytes.Clone(edPEM), "# comment\n"...), "text after the PEM block", ""},
		{"private key given", ed.pem, "found a private key", ""},
		{"certificate", pemOf("CERTIFICATE", []byte{0x30, 0}), "found a certificate", ""},
		{"bad DER", pemOf("PUBLIC KEY", []byte("not DER")), "not valid PKIX DER", ""},
		{"damaged base64", bytes.Replace(edPEM, []byte("MC"), []byte("M!"), 1), "damaged PEM block", ""},
		{"damaged then good", append(bytes.Replace(bytes.Clone(edPEM), []byte("MC"), []byte("M!"), 1), edPEM...), "damaged PEM block", ""},
		{"headers", []byte("-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\n" + strings.Join(strings.Split(string(edPEM), "\n")[1:], "\n")), "headers", ""},
		{"odd block type", pemOf("WEIRD\x01TYPE", []byte{1}), "found a PEM block of type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := sign.ParsePublicKey(tt.in)
			if tt.msg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("ParsePublicKey(%s) = %v, %v; want an error saying %q", tt.name, k, err, tt.msg)
				}
				if k != nil {
					t.Errorf("ParsePublicKey returned a key with its error")
				}
				if strings.ContainsFunc(err.Error(), unicode.IsControl) {
					t.Errorf("error %q holds a control character", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKey(%s) = %v, want success", tt.name, err)
			}
			if k.Algorithm != tt.alg {
				t.Errorf("Algorithm = %q, want %q", k.Algorithm, tt.alg)
			}
			block, _ := pem.Decode(tt.in)
			if want := fmt.Sprintf("%x", sha256.Sum256(block.Bytes)); k.ID != want {
				t.Errorf("ID = %s, want sha256 of the PKIX DER %s", k.ID, want)
			}
			again, err := sign.ParsePublicKey(k.PEM)
			if err != nil || again.ID != k.ID || !bytes.Equal(again.PEM, k.PEM) {
				t.Errorf("ParsePublicKey(k.PEM) = %v, %v; want the same key", again, err)
			}
		})
	}
}

func TestParsePrivateKey(t *testing.T) {
	ec := fixedKey(t, sign.ECDSAP256, 1)
	sec1, err := x509.MarshalECPrivateKey(ec.raw.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	p384sec1, err := x509.MarshalECPrivateKey(p384Key())
	if err != nil {
		t.Fatal(err)
	}
	ecParams := pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
	ed := fixedKey(t, sign.Ed25519, 1)
	edDER := pkcs8(t, ed.raw)
	corrupt := bytes.Clone(edDER)
	corrupt[1] ^= 0x55 // the outer length
	tests := []struct {
		name string
		in   []byte
		msg  string
		id   string // the public key ID when accepted
	}{
		{"ed25519 pkcs8", ed.pem, "", ed.pub.ID},
		{"p-256 pkcs8", ec.pem, "", ec.pub.ID},
		{"p-256 sec1", pemOf("EC PRIVATE KEY", sec1), "", ec.pub.ID},
		{"p-256 sec1 with parameters", append(bytes.Clone(ecParams), pemOf("EC PRIVATE KEY", sec1)...), "", ec.pub.ID},
		{"rsa pkcs8", pemOf("PRIVATE KEY", pkcs8(t, rsaKey())), "RSA keys are not supported", ""},
		{"rsa pkcs1", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey())), "RSA keys are not supported", ""},
		{"p-384 pkcs8", pemOf("PRIVATE KEY", pkcs8(t, p384Key())), "ECDSA curve P-384 is not supported", ""},
		{"p-384 sec1", pemOf("EC PRIVATE KEY", p384sec1), "ECDSA curve P-384 is not supported", ""},
		{"encrypted pkcs8", pemOf("ENCRYPTED PRIVATE KEY", edDER), "encrypted PKCS#8 is not supported", ""},
		{"openssh", pemOf("OPENSSH PRIVATE KEY", edDER), "OpenSSH format is not supported", ""},
		{"public key given", pemOf("PUBLIC KEY", pkix(t, ed.raw.Public())), "found a public key", ""},
		{"corrupt DER", pemOf("PRIVATE KEY", corrupt), "not valid PKCS#8 DER", ""},
		{"truncated DER", pemOf("PRIVATE KEY", edDER[:len(edDER)-3]), "not valid PKCS#8 DER", ""},
		{"sec1 in a pkcs8 block", pemOf("PRIVATE KEY", sec1), "not valid PKCS#8 DER", ""},
		{"pkcs8 in a sec1 block", pemOf("EC PRIVATE KEY", edDER), "not valid SEC1 DER", ""},
		{"two keys", append(bytes.Clone(ed.pem), ec.pem...), "more than one key block", ""},
		{"only parameters", ecParams, "no key block", ""},
		{"damaged base64", bytes.Replace(ed.pem, []byte("MC"), []byte("M*"), 1), "damaged PEM block", ""},
		{"raw base64", []byte(base64.StdEncoding.EncodeToString(edDER)), "not PEM", ""},
		{"text after", append(bytes.Clone(ed.pem), base64.StdEncoding.EncodeToString(edDER)...), "text after the PEM block", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := sign.ParsePrivateKey(tt.in)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("ParsePrivateKey(%s) = %v, want success", tt.name, err)
				}
				if k.Public.ID != tt.id {
					t.Errorf("Public.ID = %s, want %s", k.Public.ID, tt.id)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParsePrivateKey(%s) = %v; want an error saying %q", tt.name, err, tt.msg)
			}
			if k != nil {
				t.Errorf("ParsePrivateKey returned a key with its error")
			}
			checkNoKeyMaterial(t, err.Error(), tt.in)
		})
	}
}

// checkNoKeyMaterial fails when text holds any 8 consecutive characters of
// the base64 body of a PEM input, or of its DER in hex, or the raw input.
func checkNoKeyMaterial(t *testing.T, text string, in []byte) {
	t.Helper()
	var b64 strings.Builder
	var der []byte
	for rest := in; ; {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		der = append(der, block.Bytes...)
		rest = r
	}
	for _, line := range strings.Split(string(in), "\n") {
		if !strings.HasPrefix(line, "-----") {
			b64.WriteString(strings.TrimSpace(line))
		}
	}
	for _, s := range []string{b64.String(), hex.EncodeToString(der)} {
		for i := 0; i+8 <= len(s); i++ {
			if strings.Contains(text, s[i:i+8]) {
				t.Fatalf("error %q contains key material %q", text, s[i:i+8])
			}
		}
	}
}

func TestPrivateKeyDoesNotPrint(t *testing.T) {
	for _, alg := range algorithms {
		k := fixedKey(t, alg, 7)
		out := fmt.Sprintf("%v %+v %#v %v %+v", k.priv, k.priv, k.priv, *k.priv, *k.priv)
		var secret []byte
		switch raw := k.raw.(type) {
		case ed25519.PrivateKey:
			secret = raw.Seed()
		case *ecdsa.PrivateKey:
			secret = raw.D.Bytes()
		}
		for _, form := range []string{strings.Trim(fmt.Sprint(secret[:4]), "[]"), fmt.Sprintf("%x", secret[:4]), base64.StdEncoding.EncodeToString(secret)[:8]} {
			if strings.Contains(out, form) {
				t.Errorf("%s: fmt of a PrivateKey = %q, holds the key as %q", alg, out, form)
			}
		}
	}
}

func TestGenerateKey(t *testing.T) {
	ids := map[sign.Algorithm]string{}
	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			privPEM, pubPEM, err := sign.GenerateKey(alg)
			if err != nil {
				t.Fatalf("GenerateKey(%q) = %v", alg, err)
			}
			if b, _ := pem.Decode(privPEM); b == nil || b.Type != "PRIVATE KEY" {
				t.Errorf("private key PEM = %q…, want a PRIVATE KEY block", privPEM[:min(30, len(privPEM))])
			}
			if b, _ := pem.Decode(pubPEM); b == nil || b.Type != "PUBLIC KEY" {
				t.Errorf("public key PEM = %q, want a PUBLIC KEY block", pubPEM)
			}
			priv, err := sign.ParsePrivateKey(privPEM)
			if err != nil {
				t.Fatalf("ParsePrivateKey(generated) = %v", err)
			}
			pub, err := sign.ParsePublicKey(pubPEM)
			if err != nil {
				t.Fatalf("ParsePublicKey(generated) = %v", err)
			}
			if priv.Public.ID != pub.ID || pub.Algorithm != alg || priv.Public.Algorithm != alg {
				t.Errorf("private key's public half %s (%s), public key %s (%s), want one %s key", priv.Public.ID, priv.Public.Algorithm, pub.ID, pub.Algorithm, alg)
			}
			if !bytes.Equal(pub.PEM, pubPEM) {
				t.Errorf("PublicKey.PEM = %q, want the generated PEM %q", pub.PEM, pubPEM)
			}
			again, _ := sign.ParsePublicKey(pubPEM)
			if again.ID != pub.ID {
				t.Errorf("ID changed between parses: %s, %s", pub.ID, again.ID)
			}
			if len(pub.ID) != 64 || strings.Trim(pub.ID, "0123456789abcdef") != "" {
				t.Errorf("ID = %q, want 64 lowercase hex digits", pub.ID)
			}
			_, pub2PEM, _ := sign.GenerateKey(alg)
			if pub2, _ := sign.ParsePublicKey(pub2PEM); pub2 == nil || pub2.ID == pub.ID {
				t.Errorf("two generated %s keys share ID %s", alg, pub.ID)
			}
			ids[alg] = pub.ID
		})
	}
	if ids[sign.Ed25519] == ids[sign.ECDSAP256] {
		t.Errorf("ed25519 and ecdsa keys share ID %s", ids[sign.Ed25519])
	}
	if _, _, err := sign.GenerateKey("rsa-2048"); err == nil || !strings.Contains(err.Error(), "unknown algorithm rsa-2048") {
		t.Errorf("GenerateKey(rsa-2048) = %v, want an unknown algorithm error", err)
	}
}

// TestFixedKeyIDs pins the IDs of two fixed keys (checked against
// `openssl pkey -pubin -outform DER | sha256sum`), so that a change in how
// IDs are computed, which would orphan every key a namespace trusts, fails.
func TestFixedKeyIDs(t *testing.T) {
	for _, tt := range []struct {
		alg sign.Algorithm
		id  string
	}{
		{sign.Ed25519, "fd110d301d2f077de1414b8f99f441b1403fab207b2052fbd2c065e4ee8e7dc2"},
		{sign.ECDSAP256, "f857ae4ed6e34e33761aea25caaee3fe54a15960fb92dcd63a375ab121deb2a9"},
	} {
		if k := fixedKey(t, tt.alg, 1); k.pub.ID != tt.id {
			t.Errorf("%s fixed key: ID = %s, want %s", tt.alg, k.pub.ID, tt.id)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range algorithms {
		b.Run(string(alg), func(b *testing.B) {
			k := fixedKey(b, alg, 1)
			other := fixedKey(b, alg, 2)
			c := claimFor("shop", "orders", sampleDeploy())
			c.Provenance = sampleProvenance()
			env := mustSign(b, c, k)
			trusted := []*sign.PublicKey{other.pub, k.pub}
			want := claimFor("shop", "orders", sampleDeploy())
			b.ReportAllocs()
			b.SetBytes(int64(len(env)))
			for b.Loop() {
				if _, err := sign.Verify(env, trusted, want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
