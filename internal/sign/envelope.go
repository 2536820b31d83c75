package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// Wire constants.
const (
	// PayloadType is the DSSE payload type of every envelope.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto statement's _type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is the statement's predicateType: a warden function
	// attestation, whose predicate the package comment describes.
	PredicateType = "urn:warden:attestation:function:v1"
	// MaxEnvelope is the largest envelope, in bytes, that Verify reads;
	// larger input is malformed.
	MaxEnvelope = 256 << 10
)

// maxSignatures bounds the signatures Verify looks at; more is malformed.
const maxSignatures = 16

// Errors Verify returns, wrapped with a message saying precisely what
// failed. The messages are safe to show the deployer: they may name a
// subject file, a key ID, a namespace or a function, never key material or
// the payload.
var (
	// ErrMalformed: the envelope or the statement it signs cannot be read
	// as a warden function attestation (bad JSON, unknown or duplicate
	// fields, too large, wrong payloadType, _type or predicateType, bad
	// base64, invalid in-toto statement).
	ErrMalformed = errors.New("signature envelope is malformed")
	// ErrUntrusted: no signature in the envelope verifies under a key the
	// namespace trusts (no trusted keys, no signatures, unknown key IDs,
	// signatures that do not verify).
	ErrUntrusted = errors.New("no signature by a trusted key")
	// ErrSubjects: the signed files are not exactly the deployed ones;
	// the message names the first differing file.
	ErrSubjects = errors.New("signed files do not match")
	// ErrWrongTarget: the statement was signed for another namespace or
	// function; the message names both.
	ErrWrongTarget = errors.New("signed for another function")
)

// envelopeSchema lists the fields each object of an envelope may hold.
var envelopeSchema = schema{
	"":             {"payloadType", "payload", "signatures"},
	"signatures[]": {"keyid", "sig"},
}

// Sign returns a DSSE envelope, as compact JSON, signing c with k. The
// payload is the in-toto statement described in the package comment, with
// c's subjects as a set sorted by name; the envelope carries one signature
// whose keyid is k.Public.ID.
//
// # Notes
//   - Ed25519 envelopes are deterministic: the same claim and key give the
//     same bytes. ECDSA signatures are randomised.
//   - Sign refuses a claim Verify would refuse (empty or unprintable names,
//     bad subjects, no subjects) and an envelope larger than MaxEnvelope.
func Sign(c Claim, k *PrivateKey) ([]byte, error) {
	if k == nil || k.m == nil || k.Public == nil {
		return nil, errors.New("sign: private key was not made by ParsePrivateKey")
	}
	subjects, err := checkClaim(c)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	body, err := statement(c, subjects)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	es, err := dsse.NewEnvelopeSigner(dsseSigner{k})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	env, err := es.SignPayload(context.Background(), PayloadType, body)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("sign: encode envelope: %w", err)
	}
	if len(out) > MaxEnvelope {
		return nil, fmt.Errorf("sign: envelope is %d bytes, more than the %d Verify reads", len(out), MaxEnvelope)
	}
	return out, nil
}

// dsseSigner adapts a PrivateKey to dsse.Signer.
type dsseSigner struct{ k *PrivateKey }

var _ dsse.Signer = dsseSigner{}

func (s dsseSigner) Sign(_ context.Context, pae []byte) ([]byte, error) { return s.k.sign(pae) }
func (s dsseSigner) KeyID() (string, error)                             { return s.k.Public.ID, nil }

// Verified is a successful verification.
type Verified struct {
	Key   *PublicKey // the trusted key whose signature verified
	Claim Claim      // as signed: subjects in signed order, provenance as signed
}

// Verify checks envelope against the keys a namespace trusts and the claim
// the deploy makes, and returns the trusted key and the signed claim. Every
// error wraps ErrMalformed, ErrUntrusted, ErrSubjects or ErrWrongTarget.
//
// It first refuses a want without a namespace, a function or valid
// subjects, and an empty trusted list. It then succeeds only if all of
// these hold, checked in this order:
//   - envelope is at most MaxEnvelope bytes of strict JSON with exactly the
//     DSSE fields, 1 to 16 signatures, and payloadType PayloadType;
//   - a signature verifies under one of trusted: a signature naming a keyid
//     is tried only with the trusted key of that ID (a keyid naming no
//     trusted key never matches), one without a keyid with every trusted
//     key; the first that verifies wins;
//   - the payload is an in-toto Statement v1 of type PredicateType;
//   - its namespace and function are want's;
//   - its subjects are want.Subjects as a set of (name, sha256): none
//     missing, none extra, none signed twice.
//
// want.Provenance is ignored. A bad want is refused (ErrWrongTarget or
// ErrSubjects), never treated as a match; a trusted entry not made by
// ParsePublicKey is refused (ErrUntrusted).
//
// # Notes
//   - A signature without keyid costs one verification per trusted key;
//     at most 16 signatures are tried.
//   - Verify never parses the statement before a trusted signature over it
//     has verified.
func Verify(envelope []byte, trusted []*PublicKey, want Claim) (*Verified, error) {
	if err := checkTarget("namespace", want.Namespace); err != nil {
		return nil, fmt.Errorf("%w: deploying to an invalid target: %w", ErrWrongTarget, err)
	}
	if err := checkTarget("function", want.Function); err != nil {
		return nil, fmt.Errorf("%w: deploying to an invalid target: %w", ErrWrongTarget, err)
	}
	deployed, err := subjectSet(want.Subjects)
	if err != nil {
		return nil, fmt.Errorf("%w: deployed files: %w", ErrSubjects, err)
	}
	if len(trusted) == 0 {
		return nil, fmt.Errorf("%w: %s/%s trusts no signing key", ErrUntrusted, show(want.Namespace), show(want.Function))
	}
	for i, k := range trusted {
		if k == nil || k.key == nil {
			return nil, fmt.Errorf("%w: trusted key %d was not made by ParsePublicKey", ErrUntrusted, i)
		}
	}

	env, body, err := decodeEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	key, err := verifySignatures(env, body, trusted)
	if err != nil {
		return nil, err
	}

	signed, err := parseStatement(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if signed.Namespace != want.Namespace || signed.Function != want.Function {
		return nil, fmt.Errorf("%w: signed for %s/%s, deploying %s/%s", ErrWrongTarget,
			show(signed.Namespace), show(signed.Function), show(want.Namespace), show(want.Function))
	}
	if diff := compareSubjects(signed.Subjects, deployed); diff != "" {
		return nil, fmt.Errorf("%w: %s", ErrSubjects, diff)
	}
	return &Verified{Key: key, Claim: signed}, nil
}

// decodeEnvelope strictly decodes a DSSE envelope and its payload. Errors
// wrap ErrMalformed, or ErrUntrusted when the envelope has no signatures.
func decodeEnvelope(data []byte) (*dsse.Envelope, []byte, error) {
	if len(data) > MaxEnvelope {
		return nil, nil, fmt.Errorf("%w: envelope is %d bytes, more than %d", ErrMalformed, len(data), MaxEnvelope)
	}
	if err := checkJSON("envelope", data, envelopeSchema); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, nil, fmt.Errorf("%w: envelope: %s is not a %s", ErrMalformed, show(te.Field), te.Type)
		}
		return nil, nil, fmt.Errorf("%w: envelope is not a DSSE envelope", ErrMalformed)
	}
	if env.PayloadType != PayloadType {
		return nil, nil, fmt.Errorf("%w: payloadType is %s, want %s", ErrMalformed, show(env.PayloadType), PayloadType)
	}
	if len(env.Signatures) == 0 {
		return nil, nil, fmt.Errorf("%w: envelope carries no signatures", ErrUntrusted)
	}
	if len(env.Signatures) > maxSignatures {
		return nil, nil, fmt.Errorf("%w: envelope carries %d signatures, at most %d allowed", ErrMalformed, len(env.Signatures), maxSignatures)
	}
	body, err := env.DecodeB64Payload()
	if err != nil || len(body) == 0 {
		return nil, nil, fmt.Errorf("%w: payload is not base64 or is empty", ErrMalformed)
	}
	return &env, body, nil
}

// verifySignatures returns the first trusted key under which a signature
// of env verifies over PAE(payloadType, body). A signature that is not
// base64 makes the whole envelope malformed.
func verifySignatures(env *dsse.Envelope, body []byte, trusted []*PublicKey) (*PublicKey, error) {
	pae := dsse.PAE(env.PayloadType, body)
	digest := sha256.Sum256(pae)
	var failed, unknown []string // key IDs whose signature failed; key IDs not trusted
	anonymous := false           // a signature without keyid failed under every key
	for i, s := range env.Signatures {
		sig, err := decodeBase64(s.Sig)
		if err != nil || len(sig) == 0 {
			return nil, fmt.Errorf("%w: signature %d is not base64 or is empty", ErrMalformed, i)
		}
		matched := false
		for _, k := range trusted {
			if s.KeyID != "" && s.KeyID != k.ID {
				continue
			}
			matched = true
			if k.verify(pae, &digest, sig) {
				return k, nil
			}
		}
		switch {
		case s.KeyID == "":
			anonymous = true
		case matched:
			failed = append(failed, s.KeyID)
		default:
			unknown = append(unknown, s.KeyID)
		}
	}
	switch {
	case len(failed) > 0:
		// A trusted key's signature that fails means the payload or the
		// signature changed after signing: the most useful thing to say.
		return nil, fmt.Errorf("%w: signature by key %s does not verify (payload or signature altered, or made by another key)", ErrUntrusted, showKeyID(failed[0]))
	case anonymous:
		return nil, fmt.Errorf("%w: no signature verifies under any of the %d trusted keys", ErrUntrusted, len(trusted))
	default:
		slices.Sort(unknown)
		unknown = slices.Compact(unknown)
		more := ""
		if len(unknown) > 1 {
			more = fmt.Sprintf(" (and %d other untrusted keys)", len(unknown)-1)
		}
		return nil, fmt.Errorf("%w: signed by key %s, which is not trusted here%s", ErrUntrusted, showKeyID(unknown[0]), more)
	}
}

// showKeyID renders a keyid from an envelope for a message.
func showKeyID(id string) string {
	if isDigest(id) {
		return id
	}
	return show(id)
}

// decodeBase64 decodes standard base64, or URL-safe base64 as some DSSE
// implementations write, both padded.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.URLEncoding.DecodeString(s)
	}
	return b, err
}

// schema maps the path of each object a JSON document may hold ("" for
// the root, "a.b" for the object under key b of the object under key a,
// "a[]" for an element of array a) to the field names it may hold; a nil
// list allows any name.
type schema map[string][]string

// maxDepth bounds JSON nesting; neither envelope nor statement needs more
// than four levels.
const maxDepth = 8

// checkJSON checks that data is one JSON object that follows s: field
// names matched exactly (encoding/json would match them case-insensitively),
// no field twice, no object where s expects none, no null, no deeper
// nesting than maxDepth and nothing after the object. Its errors, prefixed
// with what, quote at most a field name.
func checkJSON(what string, data []byte, s schema) error {
	type frame struct {
		obj     bool
		path    string
		allowed []string
		anyKey  bool
		seen    map[string]bool
		key     string
		wantKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []frame
	for done := false; ; {
		tok, err := dec.Token()
		if err == io.EOF {
			if !done {
				return fmt.Errorf("%s is empty or truncated", what)
			}
			return nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return fmt.Errorf("%s is not valid JSON (at byte %d)", what, se.Offset)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s is truncated", what)
			}
			return fmt.Errorf("%s is not valid JSON", what)
		}
		if done {
			return fmt.Errorf("%s has data after its JSON object", what)
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			f := &stack[n-1]
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				done = len(stack) == 0
				continue
			}
			key, _ := tok.(string) // the decoder only gives strings here
			if f.seen[key] {
				return fmt.Errorf("%s: field %s appears twice%s", what, show(key), where(f.path))
			}
			if !f.anyKey && !slices.Contains(f.allowed, key) {
				return fmt.Errorf("%s: unknown field %s%s", what, show(key), where(f.path))
			}
			f.seen[key] = true
			f.key, f.wantKey = key, false
			continue
		}
		path := ""
		if n := len(stack); n > 0 {
			f := &stack[n-1]
			if f.obj {
				path = f.key
				if f.path != "" {
					path = f.path + "." + f.key
				}
				f.wantKey = true
			} else {
				path = f.path + "[]"
			}
		}
		switch tok {
		case json.Delim('{'):
			allowed, ok := s[path]
			if !ok {
				if path == "" {
					return fmt.Errorf("%s is not a JSON object", what)
				}
				return fmt.Errorf("%s: %s must not be an object", what, show(path))
			}
			if len(stack) == maxDepth {
				return fmt.Errorf("%s is nested too deeply", what)
			}
			stack = append(stack, frame{obj: true, path: path, allowed: allowed, anyKey: allowed == nil, seen: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			if path == "" {
				return fmt.Errorf("%s is not a JSON object", what)
			}
			if len(stack) == maxDepth {
				return fmt.Errorf("%s is nested too deeply", what)
			}
			stack = append(stack, frame{path: path})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			done = len(stack) == 0
		case nil:
			return fmt.Errorf("%s: %s is null", what, show(path))
		default:
			if path == "" {
				return fmt.Errorf("%s is not a JSON object", what)
			}
		}
	}
}

// where names an object path for a message.
func where(path string) string {
	if path == "" {
		return ""
	}
	return " in " + show(path)
}
