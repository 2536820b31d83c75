package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/policy"
	"warden/internal/store"
)

// policies caches compiled namespace policies by digest.
type policies struct {
	mu       sync.Mutex
	compiled map[string]*policy.Policy
}

// policyFor returns the namespace's policy, or the built-in default
// when it sets none. A stored policy that no longer compiles is an error:
// the deploy is refused (fail closed).
func (s *Service) policyFor(ctx context.Context, namespace string) (*policy.Policy, error) {
	p, err := s.cfg.Store.Policy(ctx, namespace)
	if errors.Is(err, store.ErrNotFound) {
		return policy.Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the namespace's policy: %w", err)
	}
	s.pol.mu.Lock()
	defer s.pol.mu.Unlock()
	if c := s.pol.compiled[p.Digest]; c != nil {
		return c, nil
	}
	c, err := policy.Compile(namespace+".rego", p.Source)
	if err != nil {
		return nil, fmt.Errorf("the namespace's stored policy does not compile: %w", err)
	}
	if s.pol.compiled == nil {
		s.pol.compiled = map[string]*policy.Policy{}
	}
	s.pol.compiled[p.Digest] = c
	return c, nil
}

// policyInput describes a deploy to the policy.
func policyInput(prev *Active, m *manifest.Manifest, artDigest string, findings []store.Finding, sig *store.Signature, o Origin, now func() policy.Input) policy.Input {
	in := now()
	in.Namespace, in.Function = m.Namespace, m.Name
	if raw, err := json.Marshal(m); err == nil {
		_ = json.Unmarshal(raw, &in.Manifest)
	}
	in.Findings = make([]policy.Finding, 0, len(findings))
	for _, f := range findings {
		in.Findings = append(in.Findings, policy.Finding{Kind: f.Kind, Rule: f.Rule, Severity: f.Severity, Message: f.Message,
			Location: f.Location, Module: f.Module, Version: f.Found, Fixed: f.Fixed, Aliases: f.Aliases})
	}
	in.Signer = policy.Signer{Status: sig.Status, Mode: sig.Mode, KeyID: sig.KeyID, KeyName: sig.KeyName}
	var held manifest.Permissions
	if prev != nil {
		held = prev.Manifest.Permissions
		in.Previous = prev.Version.Version
		in.Diff.Relaxed = Relaxed(prev.Manifest, m)
		in.Diff.NewCode = prev.Version.ArtifactDigest != artDigest
	} else {
		in.Diff.NewCode = true
	}
	in.Diff.Widened = Widened(held, m.Permissions)
	for _, n := range m.Permissions.Secrets {
		if !slices.Contains(held.Secrets, n) {
			in.Diff.AddedSecrets = append(in.Diff.AddedSecrets, n)
		}
	}
	for _, b := range slices.Sorted(maps.Keys(m.Permissions.KV)) {
		if h, ok := held.KV[b]; !ok || h == "read" && m.Permissions.KV[b] == "write" {
			in.Diff.AddedKV = append(in.Diff.AddedKV, b+":"+m.Permissions.KV[b])
		}
	}
	for _, e := range m.Permissions.Egress {
		if !slices.Contains(held.Egress, e) {
			in.Diff.AddedEgress = append(in.Diff.AddedEgress, e)
		}
	}
	for _, l := range []*[]string{&in.Diff.AddedSecrets, &in.Diff.AddedKV, &in.Diff.AddedEgress, &in.Diff.Widened, &in.Diff.Relaxed} {
		if *l == nil {
			*l = []string{}
		}
	}
	in.Actor = policy.Actor{Name: o.Actor, Roles: o.Roles}
	if in.Actor.Roles == nil {
		in.Actor.Roles = []string{}
	}
	return in
}

// runPolicy is the policy step: the namespace's policy (or the default)
// decides. Deny reasons refuse the deploy; approvals it requires make the
// version pending until a second person approves it (Approve).
func (s *Service) runPolicy(ctx context.Context, prev *Active, m *manifest.Manifest, artDigest string, findings []store.Finding, sig *store.Signature, o Origin) ([]string, *Error) {
	p, err := s.policyFor(ctx, m.Namespace)
	if err != nil {
		s.emitLabels(TypeDeployPolicy, events.OutcomeDenied, "policy unavailable", m.Namespace, m.Name, 0, o, nil)
		return nil, &Error{Kind: KindForbidden, Step: StepPolicy, Msg: "the deploy policy cannot run, so the deploy is refused: " + err.Error(), Err: err}
	}
	in := policyInput(prev, m, artDigest, findings, sig, o, func() policy.Input { return policy.Input{Time: s.now()} })
	ectx, cancel := context.WithTimeout(ctx, policyTimeout)
	defer cancel()
	d, err := p.Eval(ectx, in)
	labels := map[string]string{"policy.digest": p.Digest()}
	if err != nil {
		s.emitLabels(TypeDeployPolicy, events.OutcomeDenied, "policy evaluation failed", m.Namespace, m.Name, 0, o, labels)
		return nil, &Error{Kind: KindForbidden, Step: StepPolicy, Msg: "the deploy policy failed to evaluate, so the deploy is refused: " + err.Error(), Err: err}
	}
	if !d.Allow {
		s.emitLabels(TypeDeployPolicy, events.OutcomeDenied, strings.Join(d.Deny, "; "), m.Namespace, m.Name, 0, o, labels)
		return nil, &Error{Kind: KindForbidden, Step: StepPolicy, Msg: "the deploy policy denies this deploy: " + strings.Join(d.Deny, "; "), Details: d.Deny}
	}
	if len(d.Approvals) > 0 {
		labels["approvals"] = strings.Join(d.Approvals, "; ")
	}
	s.emitLabels(TypeDeployPolicy, events.OutcomeSuccess, "", m.Namespace, m.Name, 0, o, labels)
	return d.Approvals, nil
}
