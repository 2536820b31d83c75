package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/store"
)

// TypeDeployApproval is the event of each approval step: a version stored
// pending (success, status pending), approved, rejected or expired.
const TypeDeployApproval = "deploy.approval"

// DefaultApprovalTTL is how long a pending version waits for a decision.
const DefaultApprovalTTL = 24 * time.Hour

// approvalFor is the approval request of a deploy whose policy asked for
// approvals (nil when it asked for none).
func (s *Service) approvalFor(reasons []string, o Origin) *store.Approval {
	if len(reasons) == 0 {
		return nil
	}
	ttl := s.cfg.ApprovalTTL
	if ttl <= 0 {
		ttl = DefaultApprovalTTL
	}
	now := s.now()
	return &store.Approval{Status: store.ApprovalPending, Reasons: reasons, RequestedBy: o.Actor, RequestedAt: now, ExpiresAt: now.Add(ttl)}
}

// servable reports whether a stored version may be activated by a
// rollback: it needed no approval, or it was approved.
func servable(v store.Version) bool {
	return v.Approval == nil || v.Approval.Status == store.ApprovalApproved
}

// Pending returns the versions waiting for approval. Those past their
// expiry are marked expired (with an event) and left out.
func (s *Service) Pending(ctx context.Context) ([]store.Version, error) {
	vs, err := s.cfg.Store.PendingVersions(ctx)
	if err != nil {
		return nil, err
	}
	out := vs[:0]
	for _, v := range vs {
		if s.expire(ctx, v) {
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// expire marks v expired when its time is up and reports whether it did.
func (s *Service) expire(ctx context.Context, v store.Version) bool {
	if v.Approval == nil || v.Approval.Status != store.ApprovalPending || s.now().Before(v.Approval.ExpiresAt) {
		return false
	}
	a := *v.Approval
	a.Status = store.ApprovalExpired
	if err := s.cfg.Store.UpdateApproval(ctx, v.Namespace, v.Name, v.Version, store.ApprovalPending, a); err != nil {
		// Decided meanwhile (conflict) or not recorded: not expired here.
		if !errors.Is(err, store.ErrConflict) {
			s.log.Error("mark an expired approval failed", "function", key(v.Namespace, v.Name), "version", v.Version, "err", err)
		}
		return false
	}
	s.emitLabels(TypeDeployApproval, events.OutcomeFailure, "expired without a decision", v.Namespace, v.Name, v.Version,
		Origin{Actor: "warden"}, map[string]string{"status": store.ApprovalExpired})
	return true
}

// decidable loads a pending version and checks that o may decide it: a
// caller holding grants:approve who is not the one who deployed it.
func (s *Service) decidable(ctx context.Context, namespace, name string, version int, o Origin, verb string) (store.Version, *Error) {
	v, err := s.cfg.Store.Version(ctx, namespace, name, version)
	if errors.Is(err, store.ErrNotFound) {
		return v, &Error{Kind: KindNotFound, Msg: fmt.Sprintf("%s/%s has no version %d", namespace, name, version)}
	} else if err != nil {
		return v, &Error{Msg: "load version failed", Err: err}
	}
	switch {
	case v.Approval == nil:
		return v, &Error{Kind: KindConflict, Msg: fmt.Sprintf("version %d needed no approval", version)}
	case v.Approval.Status != store.ApprovalPending:
		return v, &Error{Kind: KindConflict, Msg: fmt.Sprintf("version %d is %s, not pending", version, v.Approval.Status)}
	case !s.now().Before(v.Approval.ExpiresAt):
		// Refused whether or not marking it expired succeeds.
		s.expire(ctx, v)
		return v, &Error{Kind: KindConflict, Msg: fmt.Sprintf("version %d expired at %s without a decision; deploy it again", version, v.Approval.ExpiresAt.Format(time.RFC3339))}
	case !o.MayGrant:
		return v, &Error{Kind: KindForbidden, Msg: "only someone holding grants:approve may " + verb + " a version"}
	case o.Actor == v.Approval.RequestedBy:
		return v, &Error{Kind: KindForbidden, Msg: "the person who deployed a version cannot " + verb + " it: a second person must"}
	}
	return v, nil
}

// Approve records a second person's approval of a pending version and
// activates it (bound and loaded first, as a deploy does).
func (s *Service) Approve(ctx context.Context, namespace, name string, version int, o Origin, comment string) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(e *Error) (Result, error) {
		e.Step = StepApproval
		s.emitLabels(TypeDeployApproval, events.OutcomeDenied, e.Msg, namespace, name, version, o, map[string]string{"decision": "approve"})
		return Result{}, e
	}
	v, e := s.decidable(ctx, namespace, name, version, o, "approve")
	if e != nil {
		return fail(e)
	}
	m, err := manifest.Parse("warden.yaml", v.Manifest)
	if err != nil {
		return fail(&Error{Kind: KindInvalid, Msg: fmt.Sprintf("version %d's manifest is no longer valid", version), Details: manifestErrors(err), Err: err})
	}
	schemas, err := s.loadSchemas(ctx, v, m)
	if err != nil {
		return fail(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d's schemas could not be loaded", version), Err: err})
	}
	k := key(namespace, name)
	cur := s.cur.Load()
	prev := cur.active[k]
	next := &Active{Version: v, Manifest: m, Schemas: schemas}
	routes, err := buildRoutes(with(cur.active, k, next), k)
	if err != nil {
		return fail(&Error{Kind: KindConflict, Msg: err.Error(), Err: err})
	}
	a := *v.Approval
	now := s.now()
	a.Status, a.DecidedBy, a.DecidedAt, a.Comment = store.ApprovalApproved, o.Actor, &now, comment
	if err := s.bind(next); err != nil {
		return fail(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d could not be bound on this node", version), Err: err})
	}
	if err := next.Fn.Prepare(ctx); err != nil {
		next.Fn.Close()
		return fail(&Error{Kind: KindRejected, Msg: fmt.Sprintf("version %d could not be loaded", version), Err: err})
	}
	// The decision is recorded once (compare and set), then the version is
	// made active.
	if err := s.cfg.Store.UpdateApproval(ctx, namespace, name, version, store.ApprovalPending, a); err != nil {
		next.Fn.Close()
		if errors.Is(err, store.ErrConflict) {
			return fail(&Error{Kind: KindConflict, Msg: fmt.Sprintf("version %d was decided meanwhile", version)})
		}
		return fail(&Error{Msg: "record the approval failed", Err: err})
	}
	v.Approval = &a
	next.Version = v
	if err := s.cfg.Store.Activate(ctx, namespace, name, version); err != nil {
		next.Fn.Close()
		return fail(&Error{Msg: fmt.Sprintf("version %d is approved but activating it failed; activate it with warden rollback --to %d", version, version), Err: err})
	}
	s.swap(cur, k, next, routes)
	s.emitLabels(TypeDeployApproval, events.OutcomeSuccess, "approved: "+strings.Join(a.Reasons, "; "), namespace, name, version, o,
		map[string]string{"decision": "approve", "status": store.ApprovalApproved, "requested.by": a.RequestedBy})
	res := Result{Version: v}
	if prev != nil {
		res.Previous = prev.Version.Version
	}
	return res, nil
}

// Reject records a second person's rejection of a pending version, which
// can then never be served.
func (s *Service) Reject(ctx context.Context, namespace, name string, version int, o Origin, comment string) (store.Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, e := s.decidable(ctx, namespace, name, version, o, "reject")
	if e == nil {
		a := *v.Approval
		now := s.now()
		a.Status, a.DecidedBy, a.DecidedAt, a.Comment = store.ApprovalRejected, o.Actor, &now, comment
		err := s.cfg.Store.UpdateApproval(ctx, namespace, name, version, store.ApprovalPending, a)
		switch {
		case errors.Is(err, store.ErrConflict):
			e = &Error{Kind: KindConflict, Msg: fmt.Sprintf("version %d was decided meanwhile", version)}
		case err != nil:
			e = &Error{Msg: "record the rejection failed", Err: err}
		default:
			v.Approval = &a
		}
	}
	if e != nil {
		e.Step = StepApproval
		s.emitLabels(TypeDeployApproval, events.OutcomeDenied, e.Msg, namespace, name, version, o, map[string]string{"decision": "reject"})
		return store.Version{}, e
	}
	s.emitLabels(TypeDeployApproval, events.OutcomeSuccess, "rejected", namespace, name, version, o,
		map[string]string{"decision": "reject", "status": store.ApprovalRejected, "requested.by": v.Approval.RequestedBy})
	return v, nil
}
