package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"warden/internal/capability"
	"warden/internal/config"
	"warden/internal/events"
	"warden/internal/problem"
	"warden/internal/store"
)

// Event types of operator actions on secrets, KV and keys.
const (
	TypeSecretCreate    = "secret.create"
	TypeSecretRotate    = "secret.rotate"
	TypeSecretDelete    = "secret.delete"
	TypeKVWrite         = "kv.write" // an operator set or deleted a key
	TypeMasterKeyRotate = "masterkey.rotate"
)

// MasterKeys reports and rotates the master key (the server implements it).
type MasterKeys interface {
	Status(ctx context.Context) (capability.KeyStatus, error)
	Rotate(ctx context.Context) (capability.KeyStatus, error)
}

// SecretInfo describes a secret: never its value.
type SecretInfo struct {
	store.Secret
	GrantedTo []string `json:"grantedTo"` // functions whose active version holds a grant
}

// maxSecretBody bounds an uploaded secret (the vault refuses larger ones
// with a clear message; this only stops a flood).
const maxSecretBody = capability.MaxSecretSize + 1

func (a *API) vaultError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		problem.Write(w, r, http.StatusNotFound, what+": not found")
	case errors.Is(err, capability.ErrExists):
		problem.Write(w, r, http.StatusConflict, what+": already exists; use rotate to add a version")
	case errors.Is(err, capability.ErrBadName), errors.Is(err, capability.ErrEmpty):
		problem.Write(w, r, http.StatusBadRequest, what+": "+err.Error())
	case errors.Is(err, capability.ErrTooLarge):
		problem.Write(w, r, http.StatusRequestEntityTooLarge, what+": "+err.Error())
	default:
		a.internal(w, r, what, err)
	}
}

// readValue reads a raw request body of at most limit bytes.
func readValue(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "value too large")
		return nil, false
	case err != nil:
		problem.Write(w, r, http.StatusBadRequest, "could not read the value")
		return nil, false
	}
	return b, true
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request) {
	list, err := a.cfg.Store.ListSecrets(r.Context())
	if err != nil {
		a.internal(w, r, "list secrets", err)
		return
	}
	granted := map[[2]string][]string{}
	for _, act := range a.cfg.Deploy.List() {
		for _, s := range act.Manifest.Permissions.Secrets {
			k := [2]string{act.Version.Namespace, s}
			granted[k] = append(granted[k], act.Version.Name)
		}
	}
	out := make([]SecretInfo, 0, len(list))
	for _, s := range list {
		g := granted[[2]string{s.Namespace, s.Name}]
		slices.Sort(g)
		if g == nil {
			g = []string{}
		}
		out = append(out, SecretInfo{Secret: s, GrantedTo: g})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) secretHistory(w http.ResponseWriter, r *http.Request) {
	h, err := a.cfg.Store.SecretHistory(r.Context(), r.PathValue("namespace"), r.PathValue("name"))
	if err != nil {
		a.vaultError(w, r, "secret", err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// putSecret serves create (POST .../{name}) and rotate (POST .../rotate).
func (a *API) putSecret(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("name")
		grace := capability.DefaultSecretGrace
		if g := r.URL.Query().Get("grace"); g != "" {
			d, err := time.ParseDuration(g)
			if err != nil || d < 0 || d > 90*24*time.Hour {
				problem.Write(w, r, http.StatusBadRequest, "grace: want a duration from 0s to 2160h")
				return
			}
			grace = d
		}
		value, ok := readValue(w, r, maxSecretBody)
		if !ok {
			return
		}
		defer clear(value)
		o := origin(r)
		typ := TypeSecretRotate
		if create {
			typ = TypeSecretCreate
		}
		ev := events.Event{Type: typ, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Namespace: ns,
			Labels: map[string]string{"secret": name}}
		sv, err := a.cfg.Vault.PutSecret(r.Context(), ns, name, value, o.Actor, create, grace)
		if err != nil {
			ev.Outcome, ev.Reason = events.OutcomeFailure, "refused"
			a.cfg.Events.Emit(ev)
			a.vaultError(w, r, "secret "+ns+"/"+name, err)
			return
		}
		ev.Outcome = events.OutcomeSuccess
		ev.Labels["secret.version"] = strconv.Itoa(sv.Version)
		if !create {
			ev.Labels["grace"] = grace.String()
		}
		a.cfg.Events.Emit(ev)
		sv.Sealed = nil
		writeJSON(w, http.StatusCreated, sv)
	}
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	o := origin(r)
	ev := events.Event{Type: TypeSecretDelete, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Namespace: ns,
		Labels: map[string]string{"secret": name}}
	if err := a.cfg.Vault.DeleteSecret(r.Context(), ns, name); err != nil {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "refused"
		a.cfg.Events.Emit(ev)
		a.vaultError(w, r, "secret "+ns+"/"+name, err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listBuckets(w http.ResponseWriter, r *http.Request) {
	b, err := a.cfg.Vault.KVBuckets(r.Context())
	if err != nil {
		a.internal(w, r, "list buckets", err)
		return
	}
	if b == nil {
		b = []store.KVBucket{}
	}
	writeJSON(w, http.StatusOK, b)
}

func (a *API) listKeysOfBucket(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			problem.Write(w, r, http.StatusBadRequest, "limit: want 1 to 1000")
			return
		}
		limit = n
	}
	es, err := a.cfg.Vault.KVList(r.Context(), r.PathValue("namespace"), r.PathValue("bucket"), q.Get("prefix"), q.Get("after"), limit)
	if err != nil {
		a.internal(w, r, "list keys", err)
		return
	}
	if es == nil {
		es = []store.KVEntry{}
	}
	writeJSON(w, http.StatusOK, es)
}

func (a *API) kvGet(w http.ResponseWriter, r *http.Request) {
	ns, bucket, key := r.PathValue("namespace"), r.PathValue("bucket"), r.PathValue("key")
	if err := capability.CheckKV(ns, bucket, key); err != nil {
		a.vaultError(w, r, "kv", err)
		return
	}
	v, e, err := a.cfg.Vault.KVGet(r.Context(), ns, bucket, key)
	if err != nil {
		a.vaultError(w, r, "key", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Warden-KV-Version", strconv.Itoa(e.Version))
	w.WriteHeader(http.StatusOK)
	w.Write(v)
}

func (a *API) kvWrite(del bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, bucket, key := r.PathValue("namespace"), r.PathValue("bucket"), r.PathValue("key")
		o := origin(r)
		wr := store.KVWrite{Namespace: ns, Bucket: bucket, Key: key, Actor: o.Actor}
		ev := events.Event{Type: TypeKVWrite, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Namespace: ns,
			Labels: map[string]string{"bucket": bucket, "op": store.KVOpSet}}
		var err error
		if del {
			ev.Labels["op"] = store.KVOpDelete
			err = a.cfg.Vault.KVDelete(r.Context(), wr)
		} else {
			var ttl time.Duration
			if t := r.URL.Query().Get("ttl"); t != "" {
				if ttl, err = time.ParseDuration(t); err != nil || ttl <= 0 {
					problem.Write(w, r, http.StatusBadRequest, "ttl: want a positive duration like 1h")
					return
				}
			}
			value, ok := readValue(w, r, capability.DefaultKVMaxValue+1)
			if !ok {
				return
			}
			var e store.KVEntry
			e, err = a.cfg.Vault.KVSet(r.Context(), wr, value, ttl)
			ev.Labels["kv.version"] = strconv.Itoa(e.Version)
		}
		if err != nil {
			ev.Outcome, ev.Reason = events.OutcomeFailure, "refused"
			a.cfg.Events.Emit(ev)
			a.vaultError(w, r, "key", err)
			return
		}
		ev.Outcome = events.OutcomeSuccess
		a.cfg.Events.Emit(ev)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) egressStats(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Capabilities.Flush(r.Context()); err != nil {
		a.log.Warn("usage flush failed", "err", err)
	}
	q := r.URL.Query()
	st, err := a.cfg.Store.EgressStats(r.Context(), q.Get("namespace"), q.Get("function"))
	if err != nil {
		a.internal(w, r, "egress stats", err)
		return
	}
	if st == nil {
		st = []store.EgressStat{}
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) accessReview(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	var unused time.Duration
	if u := r.URL.Query().Get("unusedFor"); u != "" {
		d, err := config.ParseDays(u)
		if err != nil || d <= 0 {
			problem.Write(w, r, http.StatusBadRequest, "unusedFor: want a duration like 30d or 720h")
			return
		}
		unused = d
	}
	act, ok := a.cfg.Deploy.Get(ns, name)
	if !ok {
		problem.Write(w, r, http.StatusNotFound, "no active function "+ns+"/"+name)
		return
	}
	if err := a.cfg.Capabilities.Flush(r.Context()); err != nil {
		a.log.Warn("usage flush failed", "err", err)
	}
	uses, err := a.cfg.Store.GrantUses(r.Context(), ns, name, 0)
	if err != nil {
		a.internal(w, r, "access review", err)
		return
	}
	rev := capability.ReviewGrants(ns, name, act.Version.Version, act.Version.CreatedAt, act.Manifest.Permissions, uses, unused, time.Now())
	if rev.Grants == nil {
		rev.Grants = []capability.GrantStatus{}
	}
	writeJSON(w, http.StatusOK, rev)
}

func (a *API) masterKeyStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.cfg.MasterKeys.Status(r.Context())
	if err != nil {
		a.internal(w, r, "master key status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) rotateMasterKey(w http.ResponseWriter, r *http.Request) {
	o := origin(r)
	ev := events.Event{Type: TypeMasterKeyRotate, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID}
	st, err := a.cfg.MasterKeys.Rotate(r.Context())
	if errors.Is(err, capability.ErrExternalKey) || errors.Is(err, capability.ErrRotationRunning) {
		ev.Outcome, ev.Reason = events.OutcomeFailure, err.Error()
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "rotation failed"
		a.cfg.Events.Emit(ev)
		a.internal(w, r, "rotate master key", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	ev.Labels = map[string]string{"key.id": st.Current}
	a.cfg.Events.Emit(ev)
	writeJSON(w, http.StatusAccepted, st)
}
