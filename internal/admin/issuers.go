package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"time"

	"warden/internal/auth"
	"warden/internal/events"
	"warden/internal/problem"
	"warden/internal/store"
)

// IssuerRequest adds a trusted JWT issuer: exactly one of JWKSURL and JWKS.
type IssuerRequest struct {
	Name     string          `json:"name"`
	Issuer   string          `json:"issuer"`
	Audience string          `json:"audience"`
	JWKSURL  string          `json:"jwksUrl,omitempty"`
	JWKS     json.RawMessage `json:"jwks,omitempty"`
}

var issuerNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`) // as jwt:<name> in the manifest

func (a *API) addIssuer(w http.ResponseWriter, r *http.Request) {
	var in IssuerRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20+4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "body must be an issuer: name, issuer, audience and jwksUrl or jwks")
		return
	}
	if !issuerNameRE.MatchString(in.Name) {
		problem.Write(w, r, http.StatusBadRequest, "name: lowercase letters, digits and '-', starting with a letter (routes say auth: jwt:<name>)")
		return
	}
	iss := store.Issuer{Name: in.Name, Issuer: in.Issuer, Audience: in.Audience, JWKSURL: in.JWKSURL, JWKS: in.JWKS, CreatedAt: time.Now()}
	o := origin(r)
	ev := events.Event{Type: events.TypeIssuerAdd, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID,
		Labels: map[string]string{"issuer.name": in.Name}}
	err := a.cfg.Issuers.Add(r.Context(), iss)
	var inv *auth.InvalidIssuerError
	switch {
	case errors.As(err, &inv):
		ev.Outcome, ev.Reason = events.OutcomeFailure, "invalid issuer"
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, http.StatusBadRequest, inv.Msg)
		return
	case errors.Is(err, store.ErrConflict):
		ev.Outcome, ev.Reason = events.OutcomeFailure, "exists"
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, http.StatusConflict, "an issuer named "+in.Name+" exists; remove it first")
		return
	case err != nil:
		a.internal(w, r, "add issuer", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	iss.JWKS = nil
	writeJSON(w, http.StatusCreated, iss)
}

func (a *API) listIssuers(w http.ResponseWriter, r *http.Request) {
	list, err := a.cfg.Store.ListIssuers(r.Context())
	if err != nil {
		a.internal(w, r, "list issuers", err)
		return
	}
	out := []store.Issuer{}
	for _, iss := range list {
		iss.JWKS = nil // public keys, but a listing has no use for them
		out = append(out, iss)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) removeIssuer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	o := origin(r)
	ev := events.Event{Type: events.TypeIssuerRemove, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID,
		Labels: map[string]string{"issuer.name": name}}
	err := a.cfg.Issuers.Remove(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "no such issuer"
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, http.StatusNotFound, "no issuer named "+name)
		return
	}
	if err != nil {
		a.internal(w, r, "remove issuer", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	w.WriteHeader(http.StatusNoContent)
}
