package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Algorithm names a signature algorithm a key is for.
type Algorithm string

// The algorithms sign supports.
const (
	Ed25519   Algorithm = "ed25519"
	ECDSAP256 Algorithm = "ecdsa-p256"
)

// PEM block types read and written here.
const (
	pemPublic   = "PUBLIC KEY"
	pemPKCS8    = "PRIVATE KEY"
	pemSEC1     = "EC PRIVATE KEY"
	pemECParams = "EC PARAMETERS"
)

// maxPEMBlocks bounds how many PEM blocks a key file may hold before it is
// refused without further look.
const maxPEMBlocks = 4

// GenerateKey returns a new key pair for alg as PEM: the private key in a
// PKCS#8 "PRIVATE KEY" block, the public key in a PKIX "PUBLIC KEY" block.
// Keys come from crypto/rand.
func GenerateKey(alg Algorithm) (privPEM, pubPEM []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("generate key: unknown algorithm %s (want %s or %s)", show(string(alg)), Ed25519, ECDSAP256)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: encode private key: %w", alg, err)
	}
	pub, err := newPublicKey(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), pub.PEM, nil
}

// PublicKey is a parsed Ed25519 or ECDSA P-256 public key.
//
// # Notes
//   - ID is the lowercase hex SHA-256 of the key's PKIX DER encoding: the
//     DSSE keyid of its signatures, and the name a namespace trusts it by.
//   - PEM is the key re-encoded canonically (one "PUBLIC KEY" block), so
//     two encodings of one key yield the same ID and PEM.
//   - Only ParsePublicKey and ParsePrivateKey make usable keys; a
//     PublicKey written as a literal verifies nothing.
type PublicKey struct {
	ID        string
	Algorithm Algorithm
	PEM       []byte

	key crypto.PublicKey // ed25519.PublicKey or *ecdsa.PublicKey on P-256
}

// ParsePublicKey parses one PKIX "PUBLIC KEY" PEM block holding an Ed25519
// or ECDSA P-256 key. Anything else is refused with an error saying what
// was found: RSA keys, other curves, certificates, private keys, encrypted
// or damaged PEM, text outside the block, or more than one block.
func ParsePublicKey(pemBytes []byte) (*PublicKey, error) {
	blocks, err := pemBlocks(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("public key: found %d PEM blocks, want exactly one %q block", len(blocks), pemPublic)
	}
	b := blocks[0]
	switch b.Type {
	case pemPublic:
	case "CERTIFICATE":
		return nil, errors.New("public key: found a certificate, want a \"PUBLIC KEY\" block (openssl x509 -pubkey -noout extracts it)")
	case pemPKCS8, pemSEC1, "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, errors.New("public key: found a private key, want the public key (never share the private key)")
	case "RSA PUBLIC KEY":
		return nil, errors.New("public key: RSA keys are not supported; use ed25519 or ecdsa-p256")
	default:
		return nil, fmt.Errorf("public key: found a PEM block of type %s, want %q", show(b.Type), pemPublic)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, errors.New("public key: the PUBLIC KEY block is not valid PKIX DER")
	}
	return newPublicKey(pub)
}

// newPublicKey checks that pub is of a supported kind and computes its ID
// and canonical PEM.
func newPublicKey(pub crypto.PublicKey) (*PublicKey, error) {
	var alg Algorithm
	switch k := pub.(type) {
	case ed25519.PublicKey:
		alg = Ed25519
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("public key: ECDSA curve %s is not supported; use P-256 (ecdsa-p256) or ed25519", k.Curve.Params().Name)
		}
		alg = ECDSAP256
	case *rsa.PublicKey:
		return nil, errors.New("public key: RSA keys are not supported; use ed25519 or ecdsa-p256")
	case *ecdh.PublicKey:
		return nil, errors.New("public key: X25519/ECDH keys cannot sign; use ed25519 or ecdsa-p256")
	default:
		return nil, fmt.Errorf("public key: %T keys are not supported; use ed25519 or ecdsa-p256", pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: encode: %w", err)
	}
	sum := sha256.Sum256(der)
	return &PublicKey{
		ID:        hex.EncodeToString(sum[:]),
		Algorithm: alg,
		PEM:       pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}),
		key:       pub,
	}, nil
}

// verify reports whether sig is k's signature over the DSSE PAE bytes pae;
// digest is SHA-256(pae), computed once by the caller for ECDSA keys.
func (k *PublicKey) verify(pae []byte, digest *[sha256.Size]byte, sig []byte) bool {
	switch pub := k.key.(type) {
	case ed25519.PublicKey:
		return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, pae, sig)
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(pub, digest[:], sig)
	}
	return false
}

// PrivateKey is a parsed Ed25519 or ECDSA P-256 private key and its public
// half.
//
// # Notes
//   - The key material sits behind an unexported pointer, so printing a
//     PrivateKey with fmt shows addresses, never the key.
//   - Only ParsePrivateKey makes a usable PrivateKey; Sign refuses others.
type PrivateKey struct {
	Public *PublicKey

	m *keyMaterial
}

// keyMaterial holds the secret. It is a separate struct so that fmt, which
// does not follow nested pointers, never prints it.
type keyMaterial struct {
	signer crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey on P-256
}

// ParsePrivateKey parses an Ed25519 or ECDSA P-256 private key in a PKCS#8
// "PRIVATE KEY" PEM block, or an ECDSA P-256 key in a SEC1 "EC PRIVATE KEY"
// block (an "EC PARAMETERS" block beside it, as openssl ecparam writes, is
// skipped). Encrypted PKCS#8, legacy encrypted PEM, OpenSSH and PKCS#1 RSA
// files, other algorithms and curves, damaged PEM and extra blocks are
// refused.
//
// # Notes
//   - Errors never contain key material: they name what was found, never
//     echo the input or the underlying DER parser's message.
func ParsePrivateKey(pemBytes []byte) (*PrivateKey, error) {
	blocks, err := pemBlocks(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	var key *pem.Block
	for _, b := range blocks {
		if b.Type == pemECParams {
			continue
		}
		if key != nil {
			return nil, errors.New("private key: found more than one key block, want exactly one")
		}
		key = b
	}
	if key == nil {
		return nil, errors.New("private key: no key block found")
	}
	var priv any
	switch key.Type {
	case pemPKCS8:
		if priv, err = x509.ParsePKCS8PrivateKey(key.Bytes); err != nil {
			return nil, errors.New("private key: the PRIVATE KEY block is not valid PKCS#8 DER")
		}
	case pemSEC1:
		if priv, err = x509.ParseECPrivateKey(key.Bytes); err != nil {
			return nil, errors.New("private key: the EC PRIVATE KEY block is not valid SEC1 DER")
		}
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("private key: encrypted PKCS#8 is not supported; decrypt it first (openssl pkcs8 -topk8 -nocrypt)")
	case "RSA PRIVATE KEY":
		return nil, errors.New("private key: RSA keys are not supported; use ed25519 or ecdsa-p256")
	case "OPENSSH PRIVATE KEY":
		return nil, errors.New("private key: the OpenSSH format is not supported; convert it to PKCS#8 (ssh-keygen -p -m PKCS8)")
	case pemPublic:
		return nil, errors.New("private key: found a public key, want the private key")
	default:
		return nil, fmt.Errorf("private key: found a PEM block of type %s, want %q or %q", show(key.Type), pemPKCS8, pemSEC1)
	}
	var signer crypto.Signer
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		signer = k
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("private key: ECDSA curve %s is not supported; use P-256 (ecdsa-p256) or ed25519", k.Curve.Params().Name)
		}
		signer = k
	case *rsa.PrivateKey:
		return nil, errors.New("private key: RSA keys are not supported; use ed25519 or ecdsa-p256")
	case *ecdh.PrivateKey:
		return nil, errors.New("private key: X25519/ECDH keys cannot sign; use ed25519 or ecdsa-p256")
	default:
		return nil, fmt.Errorf("private key: %T keys are not supported; use ed25519 or ecdsa-p256", priv)
	}
	pub, err := newPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	return &PrivateKey{Public: pub, m: &keyMaterial{signer: signer}}, nil
}

// sign signs the DSSE PAE bytes pae: Ed25519 over pae itself, ECDSA over
// SHA-256(pae) with an ASN.1 DER signature.
func (k *PrivateKey) sign(pae []byte) ([]byte, error) {
	switch s := k.m.signer.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(s, pae), nil
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(pae)
		return ecdsa.SignASN1(rand.Reader, s, digest[:])
	}
	return nil, fmt.Errorf("unsupported private key type %T", k.m.signer)
}

// pemBlocks splits data into its PEM blocks. It refuses text outside the
// blocks, damaged blocks, blocks with headers (legacy PEM encryption) and
// more than maxPEMBlocks blocks.
func pemBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		rest = bytes.TrimSpace(rest)
		if len(rest) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			if len(blocks) == 0 {
				return nil, errors.New("not PEM: the input does not start with a -----BEGIN line")
			}
			return nil, errors.New("text after the PEM block")
		}
		if len(blocks) == maxPEMBlocks {
			return nil, fmt.Errorf("more than %d PEM blocks", maxPEMBlocks)
		}
		b, after := pem.Decode(rest)
		// pem.Decode skips a damaged block and returns the next good one;
		// a damaged block shows as a second BEGIN in what was consumed.
		if b == nil || bytes.Count(rest[:len(rest)-len(after)], []byte("-----BEGIN ")) != 1 {
			return nil, errors.New("damaged PEM block (bad base64 or a missing -----END line)")
		}
		if len(b.Headers) > 0 {
			return nil, errors.New("PEM block has headers (legacy PEM encryption is not supported; decrypt the key first)")
		}
		blocks = append(blocks, b)
		rest = after
	}
	if len(blocks) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return blocks, nil
}
