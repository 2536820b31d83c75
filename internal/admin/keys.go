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

// KeyRequest creates an API key.
type KeyRequest struct {
	Name    string   `json:"name"`
	Scopes  []string `json:"scopes"`
	Expires string   `json:"expires,omitempty"` // a Go duration, e.g. "720h"; empty: never
}

// KeyInfo describes an API key. Key is set only in the answer that creates it.
type KeyInfo struct {
	ID         string     `json:"id"`
	Key        string     `json:"key,omitempty"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

var (
	keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	scopeRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9:._-]{0,127}$`) // as the manifest's scopes
)

func keyInfo(c store.Credential) KeyInfo {
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return KeyInfo{ID: c.ID, Name: c.Name, Scopes: scopes, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt, RevokedAt: c.RevokedAt, LastUsedAt: c.LastUsedAt}
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var in KeyRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		problem.Write(w, r, http.StatusBadRequest, `body must be {"name": ..., "scopes": [...], "expires": "720h"}`)
		return
	}
	var errs []string
	if !keyNameRE.MatchString(in.Name) {
		errs = append(errs, "name: 1 to 63 letters, digits, '.', '_' or '-'")
	}
	if len(in.Scopes) > 64 {
		errs = append(errs, "scopes: at most 64")
	}
	for _, sc := range in.Scopes {
		if !scopeRE.MatchString(sc) {
			errs = append(errs, "scopes: "+sc+" is not a scope ([a-z0-9][a-z0-9:._-]*)")
		}
	}
	var ttl time.Duration
	if in.Expires != "" {
		d, err := time.ParseDuration(in.Expires)
		if err != nil || d <= 0 {
			errs = append(errs, "expires: want a positive duration like 720h")
		}
		ttl = d
	}
	if len(errs) > 0 {
		problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "invalid key request", Errors: errs})
		return
	}
	key, c, err := auth.NewAPIKey(in.Name, in.Scopes, ttl, time.Now())
	if err == nil {
		err = a.cfg.Store.CreateCredential(r.Context(), c)
	}
	if err != nil {
		a.internal(w, r, "create key", err)
		return
	}
	o := origin(r)
	a.cfg.Events.Emit(events.Event{Type: events.TypeAPIKeyCreate, Outcome: events.OutcomeSuccess, Actor: o.Actor,
		SourceIP: o.SourceIP, RequestID: o.RequestID, Labels: map[string]string{"key.id": c.ID, "key.name": c.Name}})
	info := keyInfo(c)
	info.Key = key
	writeJSON(w, http.StatusCreated, info)
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	creds, err := a.cfg.Store.ListCredentials(r.Context())
	if err != nil {
		a.internal(w, r, "list keys", err)
		return
	}
	out := []KeyInfo{}
	for _, c := range creds {
		if c.Kind == store.KindAPIKey {
			out = append(out, keyInfo(c))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	o := origin(r)
	ev := events.Event{Type: events.TypeAPIKeyRevoke, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID,
		Labels: map[string]string{"key.id": id}}
	c, err := a.cfg.Store.Credential(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || err == nil && c.Kind != store.KindAPIKey {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "no such key"
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, http.StatusNotFound, "no API key with this id")
		return
	}
	if err == nil {
		err = a.cfg.Store.RevokeCredential(r.Context(), id, time.Now())
	}
	if err != nil {
		a.internal(w, r, "revoke key", err)
		return
	}
	a.cfg.Keys.Forget(id)
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	w.WriteHeader(http.StatusNoContent)
}
