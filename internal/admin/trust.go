package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/problem"
	"warden/internal/sign"
	"warden/internal/store"
)

// Event types of the trust endpoints.
const (
	TypeTrustKeyAdd    = "trust.key_add"    // a namespace trusts a new signing key
	TypeTrustKeyRevoke = "trust.key_revoke" // a namespace stops trusting a key
	TypeTrustMode      = "trust.mode"       // a namespace's signing mode was set
)

// TrustKeyRequest trusts a public key (PEM) for a namespace's deploys.
type TrustKeyRequest struct {
	PublicKey string     `json:"publicKey"`
	Name      string     `json:"name,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// TrustModeRequest sets a namespace's signing mode.
type TrustModeRequest struct {
	Mode string `json:"mode"`
}

var trustKeyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

func (a *API) trustEvent(r *http.Request, typ, namespace string, labels map[string]string) events.Event {
	o := origin(r)
	return events.Event{Type: typ, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Namespace: namespace, Labels: labels}
}

func (a *API) addTrustedKey(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := manifest.CheckNamespace(ns); err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var in TrustKeyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "body must be a key: publicKey (PEM), name, expiresAt")
		return
	}
	ev := a.trustEvent(r, TypeTrustKeyAdd, ns, nil)
	refuse := func(status int, msg string) {
		ev.Outcome, ev.Reason = events.OutcomeFailure, msg
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, status, msg)
	}
	pk, err := sign.ParsePublicKey([]byte(in.PublicKey))
	if err != nil {
		refuse(http.StatusBadRequest, "publicKey: "+err.Error())
		return
	}
	ev.Labels = map[string]string{"key.id": pk.ID, "key.algorithm": string(pk.Algorithm)}
	if in.Name == "" {
		in.Name = pk.ID[:16]
	}
	if !trustKeyNameRE.MatchString(in.Name) {
		refuse(http.StatusBadRequest, "name: up to 64 letters, digits and . _ @ -")
		return
	}
	ev.Labels["key.name"] = in.Name
	now := time.Now()
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		refuse(http.StatusBadRequest, "expiresAt is in the past")
		return
	}
	k := store.TrustedKey{Namespace: ns, ID: pk.ID, Name: in.Name, Algorithm: string(pk.Algorithm), PEM: pk.PEM,
		AddedBy: origin(r).Actor, AddedAt: now, ExpiresAt: in.ExpiresAt}
	err = a.cfg.Store.AddTrustedKey(r.Context(), k)
	if errors.Is(err, store.ErrConflict) {
		refuse(http.StatusConflict, "namespace "+ns+" already has key "+pk.ID[:16]+" (a revoked key is never trusted again: make a new one)")
		return
	}
	if err != nil {
		a.internal(w, r, "trust key", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	writeJSON(w, http.StatusCreated, k)
}

func (a *API) revokeTrustedKey(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("namespace"), strings.ToLower(r.PathValue("id"))
	ev := a.trustEvent(r, TypeTrustKeyRevoke, ns, map[string]string{"key.id": id})
	refuse := func(status int, msg string) {
		ev.Outcome, ev.Reason = events.OutcomeFailure, msg
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, status, msg)
	}
	pol, err := a.cfg.Store.SigningPolicy(r.Context(), ns)
	if err != nil {
		a.internal(w, r, "revoke key", err)
		return
	}
	// A unique prefix of at least 8 hex digits names a key.
	var match []store.TrustedKey
	for _, k := range pol.Keys {
		if len(id) >= 8 && strings.HasPrefix(k.ID, id) {
			match = append(match, k)
		}
	}
	switch {
	case len(match) == 0:
		refuse(http.StatusNotFound, "namespace "+ns+" trusts no key "+id+" (give at least 8 hex digits of its id)")
		return
	case len(match) > 1:
		refuse(http.StatusConflict, "key id "+id+" is ambiguous in namespace "+ns+"; give more digits")
		return
	}
	k := match[0]
	ev.Labels["key.id"], ev.Labels["key.name"] = k.ID, k.Name
	now := time.Now()
	err = a.cfg.Store.RevokeTrustedKey(r.Context(), ns, k.ID, origin(r).Actor, now)
	if errors.Is(err, store.ErrConflict) {
		refuse(http.StatusConflict, "key "+k.ID[:16]+" is already revoked")
		return
	}
	if err != nil {
		a.internal(w, r, "revoke key", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	k.RevokedAt, k.RevokedBy = &now, origin(r).Actor
	writeJSON(w, http.StatusOK, k)
}

func (a *API) setTrustMode(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := manifest.CheckNamespace(ns); err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var in TrustModeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || (in.Mode != store.SigningEnforce && in.Mode != store.SigningWarn) {
		problem.Write(w, r, http.StatusBadRequest, `body must be {"mode": "enforce"} or {"mode": "warn"}`)
		return
	}
	before, err := a.cfg.Store.SigningPolicy(r.Context(), ns)
	if err != nil {
		a.internal(w, r, "signing mode", err)
		return
	}
	ev := a.trustEvent(r, TypeTrustMode, ns, map[string]string{"mode": in.Mode, "mode.before": before.Mode})
	if err := a.cfg.Store.SetSigningMode(r.Context(), ns, in.Mode, origin(r).Actor); err != nil {
		a.internal(w, r, "signing mode", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	after, err := a.cfg.Store.SigningPolicy(r.Context(), ns)
	if err != nil {
		a.internal(w, r, "signing mode", err)
		return
	}
	writeJSON(w, http.StatusOK, after)
}

func (a *API) getTrust(w http.ResponseWriter, r *http.Request) {
	p, err := a.cfg.Store.SigningPolicy(r.Context(), r.PathValue("namespace"))
	if err != nil {
		a.internal(w, r, "trust", err)
		return
	}
	if p.Keys == nil {
		p.Keys = []store.TrustedKey{}
	}
	writeJSON(w, http.StatusOK, p)
}

func (a *API) listTrust(w http.ResponseWriter, r *http.Request) {
	list, err := a.cfg.Store.SigningPolicies(r.Context())
	if err != nil {
		a.internal(w, r, "trust", err)
		return
	}
	if list == nil {
		list = []store.SigningPolicy{}
	}
	writeJSON(w, http.StatusOK, list)
}
