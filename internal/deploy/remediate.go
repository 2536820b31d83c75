package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/policy"
	"warden/internal/scan"
	"warden/internal/store"
)

// TypeFunctionRemediation is the event of an active version its policy
// denies when evaluated again: notified (failure), quarantined or rolled
// back (denied), or released from quarantine (success).
const TypeFunctionRemediation = "function.remediation"

// Reevaluation counts what one re-evaluation did.
type Reevaluation struct {
	Evaluated   int `json:"evaluated"`
	Denied      int `json:"denied"`
	Notified    int `json:"notified"`
	Quarantined int `json:"quarantined"`
	RolledBack  int `json:"rolledBack"`
	Released    int `json:"released"`
}

// verdict is a policy's judgement of a stored version as it stands now.
type verdict struct {
	deny        []string
	remediation string
}

// judge evaluates a stored version against its namespace's policy now:
// its current findings (the module's, and vulnerabilities matched against
// the current index), its signature record, and nothing new (the version
// is already deployed). An evaluation that cannot run denies with the
// quarantine remediation (fail closed).
func (s *Service) judge(ctx context.Context, v store.Version, m *manifest.Manifest) verdict {
	var findings []store.Finding
	if len(v.Scan) > 0 {
		var r scan.Report
		if err := json.Unmarshal(v.Scan, &r); err != nil {
			return verdict{[]string{"the version's scan report does not decode"}, policy.RemediateQuarantine}
		}
		findings = append(scanFindings(&r), VulnFindings(s.cfg.Vulns.Index(), &r)...)
	}
	sig := v.Signature
	if sig == nil {
		sig = &store.Signature{Status: store.SignatureUnsigned, Mode: store.SigningOff}
	}
	self := &Active{Version: v, Manifest: m}
	p, err := s.policyFor(ctx, v.Namespace)
	if err != nil {
		return verdict{[]string{"the policy cannot run: " + err.Error()}, policy.RemediateQuarantine}
	}
	in := policyInput(self, m, v.ArtifactDigest, findings, sig, Origin{Actor: "warden"}, func() policy.Input { return policy.Input{Time: s.now()} })
	ectx, cancel := context.WithTimeout(ctx, policyTimeout)
	defer cancel()
	d, err := p.Eval(ectx, in)
	if err != nil {
		return verdict{[]string{"the policy failed to evaluate: " + err.Error()}, policy.RemediateQuarantine}
	}
	return verdict{d.Deny, d.Remediation}
}

// Reevaluate judges every active version of namespace ("" = all) against
// its policy as things stand now and applies the policy's remediation to
// those it denies: notify (an event), quarantine (its routes answer 503),
// or roll back to the newest earlier version that passes (quarantine when
// none does). A quarantined version that passes again is released. A
// vulnerability import and a policy change call it.
func (s *Service) Reevaluate(ctx context.Context, namespace, why string) (Reevaluation, error) {
	var out Reevaluation
	for _, a := range s.List() {
		if namespace != "" && a.Version.Namespace != namespace {
			continue
		}
		out.Evaluated++
		ns, name, ver := a.Version.Namespace, a.Version.Name, a.Version.Version
		vd := s.judge(ctx, a.Version, a.Manifest)
		o := Origin{Actor: "warden"}
		if len(vd.deny) == 0 {
			if a.Version.Quarantine != "" {
				changed, err := s.setQuarantine(ctx, ns, name, ver, "")
				if err != nil {
					return out, err
				}
				if changed {
					out.Released++
					s.emitLabels(TypeFunctionRemediation, events.OutcomeSuccess, "released from quarantine: the version passes its policy again ("+why+")",
						ns, name, ver, o, map[string]string{"remediation": "release"})
				}
			}
			continue
		}
		out.Denied++
		reason := strings.Join(vd.deny, "; ")
		labels := map[string]string{"remediation": vd.remediation, "trigger": why}
		if vd.remediation == policy.RemediateNotify {
			out.Notified++
			s.emitLabels(TypeFunctionRemediation, events.OutcomeFailure, "the active version no longer passes its policy: "+reason, ns, name, ver, o, labels)
			continue
		}
		if vd.remediation == policy.RemediateRollback {
			to, err := s.passingEarlier(ctx, a)
			if err != nil {
				return out, err
			}
			if to > 0 {
				_, err := s.Rollback(ctx, ns, name, to, Origin{Actor: "warden", MayGrant: true})
				if err == nil {
					out.RolledBack++
					labels["rolled_back.to"] = strconv.Itoa(to)
					s.emitLabels(TypeFunctionRemediation, events.OutcomeDenied, fmt.Sprintf("rolled back to version %d: %s", to, reason), ns, name, ver, o, labels)
					continue
				}
				s.log.Error("remediation rollback failed; quarantining instead", "function", key(ns, name), "to", to, "err", err)
			}
			labels["rollback"] = "no earlier version passes"
		}
		changed, err := s.setQuarantine(ctx, ns, name, ver, reason)
		if err != nil {
			return out, err
		}
		out.Quarantined++
		if changed {
			s.emitLabels(TypeFunctionRemediation, events.OutcomeDenied, "quarantined: "+reason, ns, name, ver, o, labels)
		}
	}
	return out, nil
}

// passingEarlier returns the newest servable version older than a that
// its policy passes now, or 0.
func (s *Service) passingEarlier(ctx context.Context, a *Active) (int, error) {
	vs, err := s.cfg.Store.Versions(ctx, a.Version.Namespace, a.Version.Name)
	if err != nil {
		return 0, err
	}
	for _, v := range vs { // newest first
		if v.Version >= a.Version.Version || !servable(v) {
			continue
		}
		m, err := manifest.Parse("warden.yaml", v.Manifest)
		if err != nil {
			continue
		}
		if vd := s.judge(ctx, v, m); len(vd.deny) == 0 {
			return v.Version, nil
		}
	}
	return 0, nil
}

// setQuarantine records a version's quarantine (reason "" releases it)
// and installs it, if that version is still the active one. It reports
// whether anything changed.
func (s *Service) setQuarantine(ctx context.Context, namespace, name string, version int, reason string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(namespace, name)
	cur := s.cur.Load()
	a := cur.active[k]
	if a == nil || a.Version.Version != version || a.Version.Quarantine == reason {
		return false, nil
	}
	if err := s.cfg.Store.SetQuarantine(ctx, namespace, name, version, reason); err != nil {
		return false, err
	}
	next := *a // shares the loaded module: the old value is not closed
	next.Version.Quarantine = reason
	active := with(cur.active, k, &next)
	routes, err := buildRoutes(active, k)
	if err != nil { // the same routes as before: cannot conflict
		return false, err
	}
	s.cur.Store(&state{active: active, routes: routes})
	return true, nil
}
