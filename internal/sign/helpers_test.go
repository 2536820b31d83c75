package sign_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"warden/internal/sign"
)

// testKey is one key pair, both as the crypto library holds it (to sign
// envelopes by hand) and as package sign parsed it.
type testKey struct {
	alg  sign.Algorithm
	raw  crypto.Signer
	priv *sign.PrivateKey
	pub  *sign.PublicKey
	pem  []byte // the private key as PKCS#8 PEM
}

// fixedKey returns a deterministic key of alg derived from seed, so that
// fuzz seeds and failures replay with the same keys.
func fixedKey(tb testing.TB, alg sign.Algorithm, seed byte) testKey {
	tb.Helper()
	var raw crypto.Signer
	switch alg {
	case sign.Ed25519:
		raw = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	case sign.ECDSAP256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{seed}, 32))
		if err != nil {
			tb.Fatal(err)
		}
		raw = k
	default:
		tb.Fatalf("fixedKey: unknown algorithm %q", alg)
	}
	return keyFrom(tb, alg, raw)
}

// keyFrom parses raw through package sign's parsers.
func keyFrom(tb testing.TB, alg sign.Algorithm, raw crypto.Signer) testKey {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(raw)
	if err != nil {
		tb.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	priv, err := sign.ParsePrivateKey(privPEM)
	if err != nil {
		tb.Fatalf("ParsePrivateKey: %v", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(raw.Public())
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := sign.ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	if err != nil {
		tb.Fatalf("ParsePublicKey: %v", err)
	}
	return testKey{alg: alg, raw: raw, priv: priv, pub: pub, pem: privPEM}
}

// deploy is the set of files one deploy is made of.
type deploy map[string][]byte

func sampleDeploy() deploy {
	return deploy{
		"warden.yaml":         []byte("name: orders\nartifact: orders.wasm\nschemas: [schemas/order.json, schemas/refund.json]\n"),
		"orders.wasm":         append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{0x2a}, 64)...),
		"schemas/order.json":  []byte(`{"type":"object","required":["id"]}`),
		"schemas/refund.json": []byte(`{"type":"object","required":["order"]}`),
	}
}

// subjects returns d's files as subjects, in name order.
func (d deploy) subjects() []sign.Subject {
	var out []sign.Subject
	for name, b := range d {
		out = append(out, sign.Subject{Name: name, SHA256: sign.Digest(b)})
	}
	slices.SortFunc(out, func(a, b sign.Subject) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (d deploy) clone() deploy {
	out := deploy{}
	for k, v := range d {
		out[k] = bytes.Clone(v)
	}
	return out
}

func claimFor(ns, fn string, d deploy) sign.Claim {
	return sign.Claim{Namespace: ns, Function: fn, Subjects: d.subjects()}
}

func sampleProvenance() *sign.Provenance {
	start := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	end := start.Add(97 * time.Second)
	return &sign.Provenance{
		BuilderID:    "https://ci.example/runners/7",
		BuildType:    "https://warden.example/build/tinygo@v1",
		SourceURI:    "git+https://git.example/shop/orders.git@refs/heads/main",
		SourceDigest: map[string]string{"gitCommit": "0123456789abcdef0123456789abcdef01234567"},
		InvocationID: "run-4242",
		StartedOn:    &start,
		FinishedOn:   &end,
	}
}

// mustSign signs c with k or fails the test.
func mustSign(tb testing.TB, c sign.Claim, k testKey) []byte {
	tb.Helper()
	env, err := sign.Sign(c, k.priv)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	return env
}

// pae computes the DSSE pre-authentication encoding by the spec, without
// package dsse: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func pae(payloadType string, body []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(body), body)
}

// rawSign signs the PAE bytes as the DSSE profile here says: Ed25519 over
// the bytes, ECDSA over their SHA-256 with an ASN.1 DER signature.
func rawSign(tb testing.TB, k crypto.Signer, msg []byte) []byte {
	tb.Helper()
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		sum := sha256.Sum256(msg)
		sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
	tb.Fatalf("rawSign: %T", k)
	return nil
}

// keyID computes a key's DSSE keyid by hand: hex SHA-256 of its PKIX DER.
func keyID(tb testing.TB, pub crypto.PublicKey) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// wireSig and wireEnvelope are the DSSE envelope as the spec writes it,
// declared here so that the test does not lean on package dsse.
type wireSig struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"`
}

type wireEnvelope struct {
	PayloadType string    `json:"payloadType"`
	Payload     string    `json:"payload"`
	Signatures  []wireSig `json:"signatures"`
}

// handEnvelope builds an envelope over body, signed by every key in keys
// with its keyid when withID is set.
func handEnvelope(tb testing.TB, payloadType string, body []byte, withID bool, keys ...crypto.Signer) []byte {
	tb.Helper()
	env := wireEnvelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(body), Signatures: []wireSig{}}
	for _, k := range keys {
		s := wireSig{Sig: base64.StdEncoding.EncodeToString(rawSign(tb, k, pae(payloadType, body)))}
		if withID {
			s.KeyID = keyID(tb, k.Public())
		}
		env.Signatures = append(env.Signatures, s)
	}
	out, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// statementDoc returns an in-toto statement for c as a generic JSON
// document, for tests to bend before signing it by hand.
func statementDoc(c sign.Claim) map[string]any {
	var subj []any
	for _, s := range c.Subjects {
		subj = append(subj, map[string]any{"name": s.Name, "digest": map[string]any{"sha256": s.SHA256}})
	}
	return map[string]any{
		"_type":         sign.StatementType,
		"subject":       subj,
		"predicateType": sign.PredicateType,
		"predicate":     map[string]any{"namespace": c.Namespace, "function": c.Function},
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// decodeEnvelope reads an envelope with encoding/json, as any DSSE tool
// would.
func decodeEnvelope(tb testing.TB, env []byte) wireEnvelope {
	tb.Helper()
	var w wireEnvelope
	if err := json.Unmarshal(env, &w); err != nil {
		tb.Fatalf("envelope is not DSSE JSON: %v", err)
	}
	return w
}

// sameSubjects reports whether signed holds exactly the set want: every
// subject of want, nothing else, and no name twice.
func sameSubjects(signed, want []sign.Subject) bool {
	byName := func(x, y sign.Subject) int { return strings.Compare(x.Name+" "+x.SHA256, y.Name+" "+y.SHA256) }
	a, b := slices.Clone(signed), slices.Clone(want)
	slices.SortFunc(a, byName)
	slices.SortFunc(b, byName)
	for i := 1; i < len(a); i++ {
		if a[i].Name == a[i-1].Name {
			return false
		}
	}
	return slices.Equal(a, slices.Compact(b))
}

// rawPublic re-reads a parsed public key's PEM with crypto/x509.
func rawPublic(tb testing.TB, k *sign.PublicKey) crypto.PublicKey {
	tb.Helper()
	block, _ := pem.Decode(k.PEM)
	if block == nil {
		tb.Fatalf("PublicKey.PEM %q is not PEM", k.PEM)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return pub
}
