package capability

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"warden/internal/manifest"
	"warden/internal/store"
)

// Review problems.
const (
	ProblemNeverUsed  = "never used"
	ProblemUnused     = "not used in the review window"
	ProblemOverBroad  = "write grant used only for reads"
	ProblemWriteStale = "write grant not used for writes in the review window"
)

// GrantStatus is one grant of the reviewed version and how it was used.
type GrantStatus struct {
	Kind      string     `json:"kind"`   // secret, kv or egress
	Target    string     `json:"target"` // secret name, bucket, or origin as granted
	Granted   string     `json:"granted"`
	FirstUsed *time.Time `json:"firstUsed,omitempty"`
	LastUsed  *time.Time `json:"lastUsed,omitempty"`
	LastRead  *time.Time `json:"lastRead,omitempty"`  // kv only
	LastWrite *time.Time `json:"lastWrite,omitempty"` // kv only
	Uses      int64      `json:"uses"`
	Problem   string     `json:"problem,omitempty"`
}

// Review is the unused-grant review of one function version.
type Review struct {
	Namespace string        `json:"namespace"`
	Function  string        `json:"function"`
	Version   int           `json:"version"`
	Observed  time.Time     `json:"observedSince"` // when the reviewed version was created
	UnusedFor time.Duration `json:"unusedForNs,omitempty"`
	Grants    []GrantStatus `json:"grants"`
	Findings  int           `json:"findings"`
	// Tightened is the permissions block with unused grants removed and
	// over-broad ones narrowed, as YAML ready to paste into warden.yaml.
	Tightened string `json:"tightened"`
}

// ReviewGrants compares the grants in p (of version v, created at created)
// with uses (rows of that function: uses by any version count for a grant
// of the same kind and target). With unusedFor > 0, a grant whose last use
// is older than now-unusedFor is reported as unused too.
func ReviewGrants(ns, fn string, version int, created time.Time, p manifest.Permissions, uses []store.GrantUse, unusedFor time.Duration, now time.Time) Review {
	type agg struct {
		first, last, lastRead, lastWrite time.Time
		n                                int64
	}
	seen := map[[2]string]*agg{}
	for _, u := range uses {
		if u.Version > version {
			continue // a later version's use says nothing of this one
		}
		k := [2]string{u.Kind, u.Target}
		a := seen[k]
		if a == nil {
			a = &agg{}
			seen[k] = a
		}
		if a.first.IsZero() || u.FirstUsed.Before(a.first) {
			a.first = u.FirstUsed
		}
		if u.LastUsed.After(a.last) {
			a.last = u.LastUsed
		}
		switch u.Mode {
		case store.ModeRead:
			if u.LastUsed.After(a.lastRead) {
				a.lastRead = u.LastUsed
			}
		case store.ModeWrite:
			if u.LastUsed.After(a.lastWrite) {
				a.lastWrite = u.LastUsed
			}
		}
		a.n += u.Count
	}
	var cutoff time.Time
	if unusedFor > 0 {
		cutoff = now.Add(-unusedFor)
	}
	stale := func(t time.Time) bool { return t.IsZero() || (!cutoff.IsZero() && t.Before(cutoff)) }
	tp := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}

	r := Review{Namespace: ns, Function: fn, Version: version, Observed: created, UnusedFor: unusedFor}
	var tight manifest.Permissions
	add := func(kind, target, granted string) *GrantStatus {
		a := seen[[2]string{kind, target}]
		if a == nil {
			a = &agg{}
		}
		g := GrantStatus{Kind: kind, Target: target, Granted: granted, FirstUsed: tp(a.first), LastUsed: tp(a.last), Uses: a.n}
		switch {
		case a.last.IsZero():
			g.Problem = ProblemNeverUsed
		case stale(a.last):
			g.Problem = ProblemUnused
		}
		r.Grants = append(r.Grants, g)
		return &r.Grants[len(r.Grants)-1]
	}
	for _, s := range slices.Sorted(slices.Values(p.Secrets)) {
		if g := add(store.GrantSecret, s, store.ModeUse); g.Problem == "" {
			tight.Secrets = append(tight.Secrets, s)
		}
	}
	for _, b := range slices.Sorted(maps.Keys(p.KV)) {
		mode := p.KV[b]
		g := add(store.GrantKV, b, mode)
		a := seen[[2]string{store.GrantKV, b}]
		if a != nil {
			g.LastRead, g.LastWrite = tp(a.lastRead), tp(a.lastWrite)
		}
		if g.Problem != "" {
			continue
		}
		if tight.KV == nil {
			tight.KV = map[string]string{}
		}
		tight.KV[b] = mode
		if mode == "write" && stale(a.lastWrite) {
			g.Problem = ProblemOverBroad
			if !a.lastWrite.IsZero() {
				g.Problem = ProblemWriteStale
			}
			tight.KV[b] = "read"
		}
	}
	for _, e := range p.Egress {
		if g := add(store.GrantEgress, e, store.ModeUse); g.Problem == "" {
			tight.Egress = append(tight.Egress, e)
		}
	}
	for _, g := range r.Grants {
		if g.Problem != "" {
			r.Findings++
		}
	}
	r.Tightened = PermissionsYAML(tight)
	return r
}

// PermissionsYAML renders p as a manifest permissions block.
func PermissionsYAML(p manifest.Permissions) string {
	if len(p.Secrets) == 0 && len(p.KV) == 0 && len(p.Egress) == 0 {
		return "permissions: {}\n"
	}
	var b strings.Builder
	b.WriteString("permissions:\n")
	if len(p.Secrets) > 0 {
		fmt.Fprintf(&b, "  secrets: [%s]\n", strings.Join(p.Secrets, ", "))
	}
	if len(p.KV) > 0 {
		parts := make([]string, 0, len(p.KV))
		for _, k := range slices.Sorted(maps.Keys(p.KV)) {
			parts = append(parts, k+": "+p.KV[k])
		}
		fmt.Fprintf(&b, "  kv: {%s}\n", strings.Join(parts, ", "))
	}
	if len(p.Egress) > 0 {
		q := make([]string, len(p.Egress))
		for i, e := range p.Egress {
			q[i] = strconv.Quote(e)
		}
		fmt.Fprintf(&b, "  egress: [%s]\n", strings.Join(q, ", "))
	}
	return b.String()
}
