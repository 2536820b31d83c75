package sign_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"

	"warden/internal/sign"
)

// fuzzClaim is a small deploy: the minimizer's work grows with the square
// of an input's length, and a full sample deploy makes each new input take
// the whole of a short fuzz run to minimize.
func fuzzClaim() sign.Claim {
	return claimFor("s", "f", deploy{"f.wasm": []byte("\x00asm"), "w.yaml": []byte("name: f\n")})
}

var sentinels = []error{sign.ErrMalformed, sign.ErrUntrusted, sign.ErrSubjects, sign.ErrWrongTarget}

// FuzzVerify feeds Verify arbitrary envelopes, seeded with valid ones for
// both algorithms and mutations of them. Verify must never panic; a refusal
// must wrap exactly one sentinel with a showable message; a success must
// be backed by a signature that verifies by hand under the returned
// trusted key, over a payload that encoding/json reads as the same claim,
// whose subjects are exactly want's.
func FuzzVerify(f *testing.F) {
	ed, ec := fixedKey(f, sign.Ed25519, 1), fixedKey(f, sign.ECDSAP256, 1)
	untrusted := fixedKey(f, sign.Ed25519, 2)
	trusted := []*sign.PublicKey{ed.pub, ec.pub}
	want := fuzzClaim()

	signed := want
	signed.Provenance = &sign.Provenance{BuilderID: "b", SourceDigest: map[string]string{"c": "d"}}
	envEd, envEc := mustSign(f, signed, ed), mustSign(f, want, ec)
	body := payloadOf(f, envEd)
	doc := statementDoc(want)
	doc["subject"] = append(subjectsOf(doc), subjectsOf(doc)[0])
	urlSafe := mustJSON(f, wireEnvelope{
		PayloadType: sign.PayloadType,
		Payload:     base64.URLEncoding.EncodeToString(body),
		Signatures:  []wireSig{{Sig: base64.URLEncoding.EncodeToString(rawSign(f, ed.raw, pae(sign.PayloadType, body)))}},
	})
	for _, seed := range [][]byte{
		envEd,
		envEc,
		urlSafe,
		handEnvelope(f, sign.PayloadType, body, false, untrusted.raw, ed.raw),
		handEnvelope(f, sign.PayloadType, mustJSON(f, doc), true, ed.raw),
		envEd[:len(envEd)/2],
		bytes.Replace(envEd, []byte(`"payloadType"`), []byte(`"payloadtype"`), 1),
		bytes.Replace(envEd, []byte(`"signatures"`), []byte(`"payload":"e30=","signatures"`), 1),
		bytes.Replace(envEc, []byte(sign.PayloadType), []byte("application/json"), 1),
		append(bytes.Clone(envEd), '\n'),
		[]byte(`{}`),
		[]byte(`null`),
		[]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[{"sig":""}]}`),
		[]byte(strings.Repeat("[", 64)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := sign.Verify(data, trusted, want)
		if err != nil {
			if v != nil {
				t.Fatalf("Verify returned %+v with error %v", v, err)
			}
			checkRefusal(t, err)
			return
		}
		if v.Key != ed.pub && v.Key != ec.pub {
			t.Fatalf("Verified.Key = %+v, not one of the trusted keys", v.Key)
		}
		checkSuccess(t, data, v, want)
	})
}

// FuzzSignedPayload reaches the statement parser, which Verify enters only
// after a trusted signature verifies: it signs arbitrary payloads with the
// trusted key. Verify must never panic or blame the signature, and what it
// accepts must read the same through encoding/json.
func FuzzSignedPayload(f *testing.F) {
	k := fixedKey(f, sign.Ed25519, 1)
	trusted := []*sign.PublicKey{k.pub}
	want := fuzzClaim()
	signed := want
	signed.Provenance = sampleProvenance()
	signed.Provenance.SourceURI = ""
	body := payloadOf(f, mustSign(f, signed, k))
	f.Add(body)
	f.Add(payloadOf(f, mustSign(f, want, k)))
	for _, edit := range []func(map[string]any){
		func(d map[string]any) { d["subject"] = append(subjectsOf(d), subjectsOf(d)[0]) },
		func(d map[string]any) { d["predicate_type"] = d["predicateType"]; delete(d, "predicateType") },
		func(d map[string]any) { d["type"] = d["_type"]; delete(d, "_type") },
		func(d map[string]any) {
			d["predicate"].(map[string]any)["provenance"] = map[string]any{"sourceDigest": map[string]any{"x": 1}}
		},
		func(d map[string]any) { subjectsOf(d)[0].(map[string]any)["annotations"] = map[string]any{} },
		func(d map[string]any) { d["predicate"] = nil },
	} {
		doc := statementDoc(want)
		edit(doc)
		f.Add(mustJSON(f, doc))
	}
	f.Add(bytes.Replace(body, []byte(`"namespace"`), []byte(`"Namespace"`), 1))
	f.Add(bytes.Replace(body, []byte(`"function":"f"`), []byte(`"function":"f","function":"g"`), 1))
	f.Fuzz(func(t *testing.T, body []byte) {
		env := handEnvelope(t, sign.PayloadType, body, true, k.raw)
		v, err := sign.Verify(env, trusted, want)
		if err != nil {
			if v != nil {
				t.Fatalf("Verify returned %+v with error %v", v, err)
			}
			if errors.Is(err, sign.ErrUntrusted) {
				t.Fatalf("Verify(validly signed payload) = %v, blaming the signature", err)
			}
			checkRefusal(t, err)
			return
		}
		if v.Key != k.pub {
			t.Fatalf("Verified.Key = %s, want %s", v.Key.ID, k.pub.ID)
		}
		checkSuccess(t, env, v, want)
	})
}

// checkRefusal checks that err wraps exactly one sentinel and can be shown.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("Verify error %q wraps %d sentinels, want exactly 1", err, n)
	}
	if strings.ContainsFunc(err.Error(), unicode.IsControl) {
		t.Fatalf("Verify error %q holds a control character", err)
	}
}

// checkSuccess checks an accepted envelope independently of package sign:
// encoding/json reads it, a signature verifies by hand under v.Key, and
// the payload states want's target and exactly want's subjects.
func checkSuccess(t *testing.T, env []byte, v *sign.Verified, want sign.Claim) {
	t.Helper()
	var w wireEnvelope
	if err := json.Unmarshal(env, &w); err != nil {
		t.Fatalf("Verify accepted an envelope encoding/json refuses: %v", err)
	}
	if w.PayloadType != sign.PayloadType {
		t.Fatalf("Verify accepted payloadType %q", w.PayloadType)
	}
	body, err := b64(w.Payload)
	if err != nil {
		t.Fatalf("Verify accepted a payload that is not base64: %v", err)
	}
	msg := pae(w.PayloadType, body)
	ok := false
	for _, s := range w.Signatures {
		if s.KeyID != "" && s.KeyID != v.Key.ID {
			continue
		}
		sig, err := b64(s.Sig)
		if err != nil {
			continue
		}
		ok = ok || verifyByHand(t, v.Key, msg, sig)
	}
	if !ok {
		t.Fatalf("Verify accepted an envelope with no signature by key %s that verifies by hand", v.Key.ID)
	}
	var st struct {
		Type    string `json:"_type"`
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string `json:"predicateType"`
		Predicate     struct {
			Namespace string `json:"namespace"`
			Function  string `json:"function"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("Verify accepted a payload encoding/json refuses: %v", err)
	}
	if st.Type != sign.StatementType || st.PredicateType != sign.PredicateType {
		t.Fatalf("Verify accepted _type %q, predicateType %q", st.Type, st.PredicateType)
	}
	if st.Predicate.Namespace != want.Namespace || st.Predicate.Function != want.Function ||
		v.Claim.Namespace != want.Namespace || v.Claim.Function != want.Function {
		t.Fatalf("Verify accepted %s/%s (encoding/json reads %s/%s), want %s/%s",
			v.Claim.Namespace, v.Claim.Function, st.Predicate.Namespace, st.Predicate.Function, want.Namespace, want.Function)
	}
	var read []sign.Subject
	for _, s := range st.Subject {
		read = append(read, sign.Subject{Name: s.Name, SHA256: s.Digest["sha256"]})
	}
	if !sameSubjects(v.Claim.Subjects, want.Subjects) || !sameSubjects(read, want.Subjects) {
		t.Fatalf("Verify accepted subjects %v (encoding/json reads %v), want exactly %v", v.Claim.Subjects, read, want.Subjects)
	}
}

func b64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.URLEncoding.DecodeString(s)
	}
	return b, err
}

// verifyByHand checks sig over msg with the crypto library, given a key
// package sign parsed (re-read from its PEM).
func verifyByHand(t *testing.T, k *sign.PublicKey, msg, sig []byte) bool {
	t.Helper()
	raw := rawPublic(t, k)
	switch pub := raw.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(pub, msg, sig)
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(pub, sum[:], sig)
	}
	t.Fatalf("unexpected key type %T", raw)
	return false
}
