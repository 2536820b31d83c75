package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/sign"
	"warden/internal/store"
)

// TypeDeploySignature is the event of a deploy's signature check: success
// (verified), denied (refused in enforce mode) or failure (accepted in warn
// mode without a valid signature).
const TypeDeploySignature = "deploy.signature"

// Claim is what a signature of this deploy must state: the namespace and
// function, and the sha256 of the manifest (named by its file name), the
// artifact and every file the manifest brings (named as the manifest names
// them). warden sign builds it from the files on disk, the server from
// what it received, so both name the same subjects.
func Claim(manifestName string, manifestRaw []byte, m *manifest.Manifest, artifactDigest string, fileDigests map[string]string) sign.Claim {
	c := sign.Claim{Namespace: m.Namespace, Function: m.Name}
	c.Subjects = append(c.Subjects,
		sign.Subject{Name: subjectName(manifestName), SHA256: sign.Digest(manifestRaw)},
		sign.Subject{Name: subjectName(m.Artifact), SHA256: artifactDigest})
	for p, d := range fileDigests {
		c.Subjects = append(c.Subjects, sign.Subject{Name: subjectName(p), SHA256: d})
	}
	return c
}

// subjectName is a file's name in a claim: slash-separated, cleaned, with
// no leading "./"; the manifest's own name is its base name.
func subjectName(p string) string {
	p = path.Clean(strings.ReplaceAll(p, "\\", "/"))
	return strings.TrimPrefix(p, "./")
}

// verifySignature checks req's envelope against the keys m's namespace
// trusts and returns the record to store with the version, or the refusal.
// It fails closed: a namespace whose trust cannot be read refuses the
// deploy.
func (s *Service) verifySignature(ctx context.Context, m *manifest.Manifest, req Request, artDigest string, fileDigests map[string]string) (*store.Signature, *Error) {
	pol := store.SigningPolicy{Namespace: m.Namespace, Mode: store.SigningOff}
	if s.cfg.Trust != nil {
		var err error
		if pol, err = s.cfg.Trust.SigningPolicy(ctx, m.Namespace); err != nil {
			return nil, &Error{Step: StepSignature, Msg: "reading the namespace's trusted keys failed; deploy refused", Err: err}
		}
	}
	want := Claim(req.ManifestName, req.Manifest, m, artDigest, fileDigests)
	rec, why := s.check(pol, req.Signature, want)
	sigEvent := func(outcome, reason string) {
		labels := map[string]string{"mode": pol.Mode, "status": rec.Status}
		if rec.KeyID != "" {
			labels["signer.key_id"] = rec.KeyID
			labels["signer"] = rec.KeyName
		}
		s.emitLabels(TypeDeploySignature, outcome, reason, m.Namespace, m.Name, 0, req.Origin, labels)
	}
	switch {
	case rec.Status == store.SignatureVerified:
		sigEvent(events.OutcomeSuccess, "")
	case pol.Mode == store.SigningEnforce:
		sigEvent(events.OutcomeDenied, why)
		msg := fmt.Sprintf("namespace %s accepts only deploys signed by a key it trusts: %s", m.Namespace, why)
		return nil, &Error{Kind: KindForbidden, Step: StepSignature, Msg: msg}
	case pol.Mode == store.SigningWarn:
		sigEvent(events.OutcomeFailure, why+" (accepted: the namespace's signing mode is warn)")
	case len(req.Signature) > 0:
		// Signing off: an envelope is kept but vouches for nothing.
		sigEvent(events.OutcomeFailure, why)
	}
	return rec, nil
}

// check verifies envelope under pol and says why it is not verified.
func (s *Service) check(pol store.SigningPolicy, envelope []byte, want sign.Claim) (*store.Signature, string) {
	rec := &store.Signature{Mode: pol.Mode, Status: store.SignatureUnsigned}
	if len(envelope) == 0 {
		rec.Reason = "the deploy is not signed"
		return rec, rec.Reason + " (warden sign -f warden.yaml --key KEY)"
	}
	rec.Status = store.SignatureUnverified
	now := s.now()
	var valid, invalid []*sign.PublicKey
	byID := map[string]store.TrustedKey{}
	for _, k := range pol.Keys {
		pk, err := sign.ParsePublicKey(k.PEM)
		if err != nil || pk.ID != k.ID {
			s.log.Error("a trusted key does not parse; it verifies nothing", "namespace", k.Namespace, "key_id", k.ID, "err", err)
			continue
		}
		byID[pk.ID] = k
		if k.Valid(now) {
			valid = append(valid, pk)
		} else {
			invalid = append(invalid, pk)
		}
	}
	if len(pol.Keys) == 0 {
		rec.Reason = "namespace " + pol.Namespace + " trusts no key"
		return rec, rec.Reason + " (warden trust add " + pol.Namespace + " --key PUB)"
	}
	v, err := sign.Verify(envelope, valid, want)
	if err == nil {
		k := byID[v.Key.ID]
		rec.Status, rec.KeyID, rec.KeyName, rec.Reason = store.SignatureVerified, k.ID, k.Name, ""
		if v.Claim.Provenance != nil {
			rec.Provenance, _ = json.Marshal(v.Claim.Provenance)
		}
		return rec, ""
	}
	rec.Reason = err.Error()
	if errors.Is(err, sign.ErrUntrusted) && len(invalid) > 0 {
		// Say so when the signer is a key the namespace no longer trusts.
		if iv, ierr := sign.Verify(envelope, invalid, want); ierr == nil {
			k := byID[iv.Key.ID]
			switch {
			case k.RevokedAt != nil:
				rec.Reason = fmt.Sprintf("signed by key %s (%s), revoked at %s", short(k.ID), k.Name, k.RevokedAt.Format(time.RFC3339))
			case k.ExpiresAt != nil:
				rec.Reason = fmt.Sprintf("signed by key %s (%s), expired at %s", short(k.ID), k.Name, k.ExpiresAt.Format(time.RFC3339))
			}
		}
	}
	return rec, rec.Reason
}

// stillVouched reports whether a stored version was verified at deploy by a
// key its namespace still trusts (a rollback re-checks, so a revoked or
// expired key stops vouching for the versions it signed; the content it
// signed is immutable).
func (s *Service) stillVouched(ctx context.Context, v store.Version) bool {
	if v.Signature == nil || v.Signature.Status != store.SignatureVerified || s.cfg.Trust == nil {
		return false
	}
	pol, err := s.cfg.Trust.SigningPolicy(ctx, v.Namespace)
	if err != nil {
		return false
	}
	for _, k := range pol.Keys {
		if k.ID == v.Signature.KeyID {
			return k.Valid(s.now())
		}
	}
	return false
}

func (s *Service) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

func short(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}
