package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	maxKeys       = 256
	minRSABits    = 2048
	maxRSABits    = 8192
	maxJWKSKeyLen = 64 << 10
)

// verifyKey is one usable signing key with its pinned algorithm.
type verifyKey struct {
	kid string
	alg string // pinned: the JWK's alg, else derived from its key type
	jwa jwa.SignatureAlgorithm
	raw any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable set of usable keys.
type keySet struct {
	byKid  map[string][]*verifyKey
	count  int
	only   *verifyKey // the key, when the set holds exactly one
	digest [32]byte   // of the JWKS bytes it was parsed from
}

// sigAlgs maps the accepted algorithm names to jwx's algorithms.
var sigAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// parseJWKS parses a JWKS document. Keys that are not usable for verifying
// signatures (symmetric, use other than "sig", key_ops without "verify", an
// alg that is not an accepted signature algorithm or does not fit the key,
// an unsupported curve, RSA under 2048 bits, unparsable) are ignored; a
// document with no usable key is an error.
func parseJWKS(b []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, errors.New("JWKS is not valid JSON")
	}
	if len(doc.Keys) > maxKeys {
		return nil, fmt.Errorf("JWKS holds more than %d keys", maxKeys)
	}
	ks := &keySet{byKid: map[string][]*verifyKey{}, digest: sha256.Sum256(b)}
	for _, raw := range doc.Keys {
		k, ok := usableKey(raw)
		if !ok {
			continue
		}
		dup := false
		for _, o := range ks.byKid[k.kid] {
			if o.alg == k.alg {
				dup = true // same kid and alg twice: ambiguous, keep the first
			}
		}
		if dup {
			continue
		}
		ks.byKid[k.kid] = append(ks.byKid[k.kid], k)
		ks.count++
		ks.only = k
	}
	if ks.count == 0 {
		return nil, errors.New("JWKS has no usable signature key")
	}
	if ks.count > 1 {
		ks.only = nil
	}
	return ks, nil
}

// usableKey parses one JWK with jwx and decides whether, and with which
// pinned algorithm, it may verify signatures.
func usableKey(raw json.RawMessage) (*verifyKey, bool) {
	if len(raw) > maxJWKSKeyLen {
		return nil, false
	}
	k, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, false
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, false
	}
	if ops, ok := k.KeyOps(); ok {
		verify := false
		for _, op := range ops {
			if op == jwk.KeyOpVerify {
				verify = true
			}
		}
		if !verify {
			return nil, false
		}
	}
	kt := k.KeyType()
	if kt != jwa.RSA() && kt != jwa.EC() && kt != jwa.OKP() {
		return nil, false // symmetric ("oct") and anything else
	}
	pub, err := k.PublicKey()
	if err != nil {
		return nil, false
	}
	var pk any
	if err := jwk.Export(pub, &pk); err != nil {
		return nil, false
	}
	var derived string
	switch p := pk.(type) {
	case *rsa.PublicKey:
		if n := p.N.BitLen(); n < minRSABits || n > maxRSABits {
			return nil, false
		}
		derived = "RS256"
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			derived = "ES256"
		case elliptic.P384():
			derived = "ES384"
		case elliptic.P521():
			derived = "ES512"
		default:
			return nil, false
		}
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, false
		}
		derived = "EdDSA"
	default:
		return nil, false // X25519 and other OKP curves
	}
	alg := derived
	if a, ok := k.Algorithm(); ok {
		alg = a.String()
		if !algFitsKey(alg, derived) {
			return nil, false
		}
	}
	kid, _ := k.KeyID()
	if kid != "" && checkKid(kid) != nil {
		return nil, false // a token could never name it
	}
	return &verifyKey{kid: kid, alg: alg, jwa: sigAlgs[alg], raw: pk}, true
}

// algFitsKey reports whether alg, named by a JWK, is an accepted signature
// algorithm for a key whose derived algorithm is derived.
func algFitsKey(alg, derived string) bool {
	if _, ok := sigAlgs[alg]; !ok {
		return false
	}
	switch derived {
	case "RS256":
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
		return false
	default: // an EC curve or Ed25519 fixes the algorithm
		return alg == derived
	}
}

// lookupKey finds the key a token's header names, loading or refreshing
// keys from the URL as needed.
func (v *Verifier) lookupKey(ctx context.Context, h header) (*verifyKey, error) {
	ks, err := v.currentKeys(ctx)
	if err != nil {
		return nil, err
	}
	k, err := ks.find(h)
	if err == nil || v.url == "" || !h.hasID {
		return k, err
	}
	// An unknown kid may be a key the issuer has just rotated in: refresh,
	// at most once per MinRefreshGap.
	if ch := v.startFetch(fetchUnknownKid); ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, reject("unknown kid %q", h.kid)
		}
	}
	return v.keys.Load().find(h)
}

// find returns the key for h.
func (ks *keySet) find(h header) (*verifyKey, error) {
	if !h.hasID {
		if ks.only == nil {
			return nil, reject("token has no kid and the issuer has several keys")
		}
		return ks.only, nil
	}
	cands := ks.byKid[h.kid]
	if len(cands) == 0 {
		return nil, reject("unknown kid %q", h.kid)
	}
	for _, k := range cands {
		if k.alg == h.alg {
			return k, nil
		}
	}
	return cands[0], nil // the caller rejects the alg mismatch
}

// currentKeys returns the loaded keys, fetching them first when none were
// ever loaded, and starting a background refresh when they are stale.
func (v *Verifier) currentKeys(ctx context.Context) (*keySet, error) {
	ks := v.keys.Load()
	if v.url == "" {
		return ks, nil
	}
	if ks != nil {
		v.mu.Lock()
		stale := !v.now().Before(v.loadedAt.Add(v.refreshInterval))
		v.mu.Unlock()
		if stale {
			v.startFetch(fetchStale) // the old keys serve meanwhile
		}
		return ks, nil
	}
	if ch := v.startFetch(fetchInitial); ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w: waiting for the JWKS of issuer %q: %w", ErrInvalidToken, ErrKeysUnavailable, v.name, ctx.Err())
		}
	}
	if ks = v.keys.Load(); ks == nil {
		return nil, fmt.Errorf("%w: %w: the JWKS of issuer %q could not be loaded", ErrInvalidToken, ErrKeysUnavailable, v.name)
	}
	return ks, nil
}

type fetchReason int

const (
	fetchInitial fetchReason = iota
	fetchStale
	fetchUnknownKid
)

// startFetch starts a JWKS fetch in its own goroutine unless one is running
// or the last attempt was less than MinRefreshGap ago (the very first
// attempt is always allowed). It returns a channel closed when the running
// or started fetch ends, or nil when there is none to wait for.
func (v *Verifier) startFetch(why fetchReason) <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight != nil {
		return v.inflight
	}
	now := v.now()
	if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.minRefreshGap {
		return nil
	}
	if why == fetchStale && now.Before(v.loadedAt.Add(v.refreshInterval)) {
		return nil
	}
	if why == fetchInitial && v.keys.Load() != nil {
		return nil
	}
	ch := make(chan struct{})
	v.inflight = ch
	v.lastAttempt = now
	go v.fetch(ch)
	return ch
}

// fetch loads the JWKS from the URL and, on success, swaps it in. A failure
// keeps the keys already loaded. It is not tied to any request's context,
// so a client that goes away cannot make a fetch fail.
func (v *Verifier) fetch(done chan struct{}) {
	ks, err := v.download()
	v.mu.Lock()
	if err == nil {
		v.loadedAt = v.now()
		if old := v.keys.Load(); old == nil || old.digest != ks.digest {
			v.keys.Store(ks)
			if v.cache != nil {
				v.cache.clear()
			}
		}
	}
	v.inflight = nil
	close(done)
	v.mu.Unlock()
	if v.afterFetch != nil {
		v.afterFetch()
	}
}

func (v *Verifier) download() (*keySet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", MaxJWKSSize)
	}
	return parseJWKS(b)
}

// checkSignatureShape rejects, before any cryptography, a signature whose
// size does not fit the key, and an ECDSA signature whose r or s is outside
// [1, N-1] (such as the r=s=0 "psychic signature"). crypto/ecdsa rejects
// those too; the check here does not depend on that.
func checkSignatureShape(k *verifyKey, sig []byte) error {
	switch p := k.raw.(type) {
	case *ecdsa.PublicKey:
		n := p.Curve.Params().N
		size := (p.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return reject("ECDSA signature has the wrong length")
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(n) >= 0 || s.Cmp(n) >= 0 {
			return reject("ECDSA signature values are out of range")
		}
	case *rsa.PublicKey:
		if len(sig) != p.Size() {
			return reject("RSA signature has the wrong length")
		}
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return reject("Ed25519 signature has the wrong length")
		}
	}
	return nil
}
