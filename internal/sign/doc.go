// Package sign owns deploy signatures: the key formats a namespace trusts,
// the signed claim a deployer makes about a deploy, and the check the server
// makes before it accepts one.
//
// A claim is a DSSE envelope (https://github.com/secure-systems-lab/dsse)
// of payload type PayloadType carrying an in-toto Statement v1
// (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md).
// The statement's subjects are the files of the deploy (the manifest, the
// WebAssembly artifact and every schema file the manifest names), each a
// ResourceDescriptor with a name and a digest set holding only sha256; its
// predicate type is PredicateType and its predicate is
//
//	{
//	  "namespace": "shop",
//	  "function": "orders",
//	  "provenance": {                      // omitted when Claim.Provenance is nil
//	    "builderId": "https://ci.example/runner",
//	    "buildType": "https://example.com/build/v1",
//	    "sourceUri": "git+https://git.example/shop.git",
//	    "sourceDigest": {"gitCommit": "…"},
//	    "invocationId": "run-42",
//	    "startedOn": "2025-01-02T03:04:05Z",   // RFC 3339, written in UTC
//	    "finishedOn": "2025-01-02T03:05:00Z"
//	  }
//	}
//
// where every provenance field is optional. Naming the namespace and the
// function in the signed predicate is what stops an envelope signed for one
// function from being replayed to deploy another.
//
// The envelope is plain DSSE JSON, {"payloadType", "payload", "signatures":
// [{"keyid", "sig"}]}: payload and sig are standard base64 (Sign writes
// standard base64 with padding; Verify also accepts URL-safe base64, as DSSE
// implementations differ). A signature is over
// PAE(payloadType, payload) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP
// body: Ed25519 signs the PAE bytes themselves, ECDSA P-256 signs their
// SHA-256 and the signature is ASN.1 DER. A keyid is the lowercase hex
// SHA-256 of the key's PKIX DER encoding, so `openssl pkey -pubin -outform
// DER | sha256sum` names the same key, and openssl with a shell computing
// PAE can both make and check envelopes.
//
// Verify refuses rather than guesses: the envelope and the statement are
// decoded strictly (unknown, duplicate and wrongly cased fields, nulls,
// trailing data, deep nesting and more than MaxEnvelope bytes are all
// malformed), at most 16 signatures and 256 subjects are looked at, and the
// signed subjects must equal the deployed files exactly. Each refusal wraps
// one of ErrMalformed, ErrUntrusted, ErrSubjects or ErrWrongTarget, with a
// message that says what failed and may be shown to the deployer.
//
// sign never reads files, never touches the network, never logs or prints,
// and never puts key material or a raw payload into an error.
//
// # Notes
//   - Every function is safe for concurrent use. A PublicKey or PrivateKey
//     is immutable once parsed; callers must treat its exported fields as
//     read-only.
//   - Verify parses the statement only after a trusted signature over it
//     has verified; before that it looks at nothing but the envelope.
//   - Verify's success means: a trusted key signed this payload, the
//     payload names want's namespace and function, and its subjects are
//     want's subjects as a set. Nothing else (provenance, time) is checked.
//   - Only Ed25519 and ECDSA P-256 keys exist here; RSA, other curves and
//     encrypted or OpenSSH-format private keys are refused by the parsers.
package sign
