package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/policy"
	"warden/internal/problem"
	"warden/internal/store"
	"warden/internal/vulndb"
)

// Event types of the scanning and policy endpoints.
const (
	TypeVulnDBImport = "vulndb.import" // advisories imported; the active versions re-evaluated
	TypePolicySet    = "policy.set"    // a namespace's deploy policy set
	TypePolicyDelete = "policy.delete" // a namespace's policy removed (the default applies)
)

// maxImport bounds one import request (the CLI sends batches).
const maxImport = 64 << 20

// VulnDBImport is the answer to an import.
type VulnDBImport struct {
	Added     int      `json:"added"`
	Updated   int      `json:"updated"`
	Total     int      `json:"total"`     // advisories stored now
	Refused   []string `json:"refused"`   // entries that did not parse, with the reason
	Rescanned int      `json:"rescanned"` // active versions re-evaluated
	OpenVulns int      `json:"openVulns"` // open vulnerability findings of active versions after the import
	// Remediation is what the policies decided for the active versions
	// they no longer pass.
	Remediation deploy.Reevaluation `json:"remediation"`
	DurationMS  int64               `json:"durationMs"` // import and re-evaluation
}

// importVulnDB takes a JSON array of OSV entries, stores the ones that
// parse, rebuilds the index and re-evaluates every active version (unless
// ?rescan=false: one batch of several).
func (a *API) importVulnDB(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var raw []json.RawMessage
	dec := json.NewDecoder(io.LimitReader(r.Body, maxImport+1))
	if err := dec.Decode(&raw); err != nil {
		problem.Write(w, r, http.StatusBadRequest, "body must be a JSON array of OSV entries (at most 64 MiB; warden vulndb import sends batches)")
		return
	}
	out := VulnDBImport{Refused: []string{}}
	var as []store.Advisory
	now := time.Now()
	for i, b := range raw {
		e, err := vulndb.Parse(b)
		if err != nil {
			out.Refused = append(out.Refused, fmt.Sprintf("entry %d: %v", i, err))
			continue
		}
		as = append(as, store.Advisory{ID: e.ID, Modified: e.Modified, ImportedAt: now, Raw: b})
	}
	o := origin(r)
	ev := events.Event{Type: TypeVulnDBImport, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID}
	var err error
	if out.Added, out.Updated, err = a.cfg.Store.PutAdvisories(r.Context(), as); err != nil {
		a.internal(w, r, "import advisories", err)
		return
	}
	ix, n, err := deploy.LoadIndex(r.Context(), a.cfg.Store, a.log)
	if err != nil {
		a.internal(w, r, "load advisories", err)
		return
	}
	out.Total = n
	a.cfg.Vulns.Set(ix)
	// ?rescan=false: a batch of a larger import; the last batch rescans.
	if r.URL.Query().Get("rescan") != "false" {
		if out.Rescanned, err = a.cfg.Deploy.Rescan(r.Context()); err != nil {
			a.internal(w, r, "re-evaluate active versions", err)
			return
		}
		if out.Remediation, err = a.cfg.Deploy.Reevaluate(r.Context(), "", "vulnerability database import"); err != nil {
			a.internal(w, r, "re-evaluate active versions", err)
			return
		}
	}
	open, err := a.cfg.Store.Findings(r.Context(), "", "", true)
	if err != nil {
		a.internal(w, r, "findings", err)
		return
	}
	for _, f := range open {
		if act, ok := a.cfg.Deploy.Get(f.Namespace, f.Name); ok && act.Version.Version == f.Version && f.Kind == deploy.KindVulnerability {
			out.OpenVulns++
		}
	}
	out.DurationMS = time.Since(start).Milliseconds()
	ev.Outcome = events.OutcomeSuccess
	ev.Labels = map[string]string{"added": strconv.Itoa(out.Added), "updated": strconv.Itoa(out.Updated), "refused": strconv.Itoa(len(out.Refused)),
		"total": strconv.Itoa(out.Total), "rescanned": strconv.Itoa(out.Rescanned), "open_vulnerabilities": strconv.Itoa(out.OpenVulns),
		"quarantined": strconv.Itoa(out.Remediation.Quarantined), "rolled_back": strconv.Itoa(out.Remediation.RolledBack)}
	a.cfg.Events.Emit(ev)
	writeJSON(w, http.StatusOK, out)
}

// VulnDBStatus describes the imported database.
type VulnDBStatus struct {
	Advisories   int        `json:"advisories"`
	Newest       *time.Time `json:"newestModified,omitempty"`
	LastImported *time.Time `json:"lastImported,omitempty"`
}

func (a *API) vulnDBStatus(w http.ResponseWriter, r *http.Request) {
	as, err := a.cfg.Store.Advisories(r.Context())
	if err != nil {
		a.internal(w, r, "advisories", err)
		return
	}
	st := VulnDBStatus{Advisories: len(as)}
	for _, adv := range as {
		if st.Newest == nil || adv.Modified.After(*st.Newest) {
			t := adv.Modified
			st.Newest = &t
		}
		if st.LastImported == nil || adv.ImportedAt.After(*st.LastImported) {
			t := adv.ImportedAt
			st.LastImported = &t
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// listFindings answers the findings of active versions (?all=1: of every
// version, resolved ones included), for ?namespace= and ?name=.
func (a *API) listFindings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	all := q.Get("all") == "1" || q.Get("all") == "true"
	ns, name := q.Get("namespace"), q.Get("name")
	if name != "" && ns == "" {
		ns = manifest.DefaultNamespace
	}
	fs, err := a.cfg.Store.Findings(r.Context(), ns, name, !all)
	if err != nil {
		a.internal(w, r, "findings", err)
		return
	}
	out := []store.Finding{}
	for _, f := range fs {
		if !all {
			act, ok := a.cfg.Deploy.Get(f.Namespace, f.Name)
			if !ok || act.Version.Version != f.Version {
				continue
			}
		}
		out = append(out, f)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getSBOM(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	ver := r.PathValue("version")
	n, err := strconv.Atoi(ver)
	if ver == "active" {
		act, ok := a.cfg.Deploy.Get(ns, name)
		if !ok {
			problem.Write(w, r, http.StatusNotFound, "function "+ns+"/"+name+" has no active version")
			return
		}
		n, err = act.Version.Version, nil
	}
	if err != nil || n <= 0 {
		problem.Write(w, r, http.StatusBadRequest, "version must be a positive number or active")
		return
	}
	v, err := a.cfg.Store.Version(r.Context(), ns, name, n)
	if errors.Is(err, store.ErrNotFound) {
		problem.Write(w, r, http.StatusNotFound, fmt.Sprintf("%s/%s has no version %d", ns, name, n))
		return
	}
	if err != nil {
		a.internal(w, r, "version", err)
		return
	}
	if v.SBOM == nil {
		problem.Write(w, r, http.StatusNotFound, fmt.Sprintf("%s/%s version %d was deployed before SBOMs were kept", ns, name, n))
		return
	}
	w.Header().Set("Content-Type", "application/vnd.cyclonedx+json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(v.SBOM)
}

// PolicyInfo describes a namespace's deploy policy.
type PolicyInfo struct {
	Namespace string     `json:"namespace"`
	Builtin   bool       `json:"builtin"` // no policy set: the built-in default applies
	Digest    string     `json:"digest"`
	SetBy     string     `json:"setBy,omitempty"`
	SetAt     *time.Time `json:"setAt,omitempty"`
	Source    string     `json:"source"`
	// Reevaluation is what the change did to the namespace's active
	// versions (set and rm only).
	Reevaluation *deploy.Reevaluation `json:"reevaluation,omitempty"`
}

const maxPolicy = 256 << 10

func (a *API) setPolicy(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if err := manifest.CheckNamespace(ns); err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	src, err := io.ReadAll(io.LimitReader(r.Body, maxPolicy+1))
	if err != nil || len(src) > maxPolicy {
		problem.Write(w, r, http.StatusBadRequest, "body must be the policy's Rego source, at most 256 KiB")
		return
	}
	o := origin(r)
	ev := events.Event{Type: TypePolicySet, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Namespace: ns}
	p, err := policy.Compile(ns+".rego", src)
	if err != nil {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "does not compile"
		a.cfg.Events.Emit(ev)
		problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "the policy does not compile; nothing changed", Errors: strings.Split(err.Error(), "\n")})
		return
	}
	at := time.Now()
	if err := a.cfg.Store.SetPolicy(r.Context(), store.Policy{Namespace: ns, Source: src, Digest: p.Digest(), SetBy: o.Actor, SetAt: at}); err != nil {
		a.internal(w, r, "set policy", err)
		return
	}
	ev.Outcome, ev.Labels = events.OutcomeSuccess, map[string]string{"policy.digest": p.Digest()}
	a.cfg.Events.Emit(ev)
	re, err := a.cfg.Deploy.Reevaluate(r.Context(), ns, "policy change")
	if err != nil {
		a.internal(w, r, "re-evaluate active versions", err)
		return
	}
	writeJSON(w, http.StatusOK, PolicyInfo{Namespace: ns, Digest: p.Digest(), SetBy: o.Actor, SetAt: &at, Source: string(src), Reevaluation: &re})
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	p, err := a.cfg.Store.Policy(r.Context(), ns)
	if errors.Is(err, store.ErrNotFound) {
		d := policy.Default()
		writeJSON(w, http.StatusOK, PolicyInfo{Namespace: ns, Builtin: true, Digest: d.Digest(), Source: string(d.Source())})
		return
	}
	if err != nil {
		a.internal(w, r, "policy", err)
		return
	}
	writeJSON(w, http.StatusOK, PolicyInfo{Namespace: ns, Digest: p.Digest, SetBy: p.SetBy, SetAt: &p.SetAt, Source: string(p.Source)})
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	o := origin(r)
	ev := events.Event{Type: TypePolicyDelete, Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Namespace: ns}
	err := a.cfg.Store.DeletePolicy(r.Context(), ns)
	if errors.Is(err, store.ErrNotFound) {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "no policy set"
		a.cfg.Events.Emit(ev)
		problem.Write(w, r, http.StatusNotFound, "namespace "+ns+" sets no policy (the built-in default applies)")
		return
	}
	if err != nil {
		a.internal(w, r, "delete policy", err)
		return
	}
	ev.Outcome = events.OutcomeSuccess
	a.cfg.Events.Emit(ev)
	if _, err := a.cfg.Deploy.Reevaluate(r.Context(), ns, "policy change"); err != nil {
		a.internal(w, r, "re-evaluate active versions", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
