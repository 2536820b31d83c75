package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/mod/semver"

	"warden/internal/events"
	"warden/internal/manifest"
	"warden/internal/scan"
	"warden/internal/store"
	"warden/internal/vulndb"
)

// Event types of the scan and policy steps.
const (
	TypeDeployScan   = "deploy.scan"   // a deploy's module and manifest were scanned: findings per severity
	TypeDeployPolicy = "deploy.policy" // the namespace's policy allowed (success) or denied a deploy
)

// Finding kinds besides scan's: a vulnerability the imported database
// knows in a dependency or the toolchain, and a patch notice (a version
// older than the newest fix the database knows, with no advisory for it).
const (
	KindVulnerability = "vulnerability"
	KindPatch         = "patch"
)

// Vulns holds the current vulnerability index; a database import swaps it.
// The zero value holds an empty index.
type Vulns struct{ ix atomic.Pointer[vulndb.Index] }

// Index returns the current index.
func (v *Vulns) Index() *vulndb.Index {
	if v == nil {
		return vulndb.NewIndex(nil)
	}
	if ix := v.ix.Load(); ix != nil {
		return ix
	}
	return vulndb.NewIndex(nil)
}

// Set replaces the index.
func (v *Vulns) Set(ix *vulndb.Index) { v.ix.Store(ix) }

// Report is what the scan step stores with a version (Version.Scan): the
// module's analysis and the vulnerabilities and patch notices matched at
// deploy. The findings of every kind are also kept in the store's findings
// table, where later database imports update the vulnerability ones.
type Report struct {
	*scan.Report
	Vulnerabilities []store.Finding `json:"vulnerabilities,omitempty"`
}

// components lists what a scan report can be matched on: the toolchain
// and every module.
func components(r *scan.Report) []vulndb.Component {
	var cs []vulndb.Component
	if r.GoVersion != "" {
		cs = append(cs, vulndb.Component{Path: "stdlib", Version: r.GoVersion})
	}
	if r.Main != nil && r.Main.Version != "" && r.Main.Version != "(devel)" {
		cs = append(cs, vulndb.Component{Path: r.Main.Path, Version: r.Main.Version})
	}
	for _, m := range r.Modules {
		cs = append(cs, vulndb.Component{Path: m.Path, Version: m.Version})
	}
	return cs
}

// VulnFindings matches a scan report against ix: a vulnerability finding
// per advisory and component, and a patch notice for a component older
// than the newest fixed version the database knows when no advisory
// matched it.
func VulnFindings(ix *vulndb.Index, r *scan.Report) []store.Finding {
	var out []store.Finding
	cs := components(r)
	matched := map[vulndb.Component]bool{}
	for _, m := range ix.Match(cs) {
		matched[m.Component] = true
		e := m.Entry
		name := e.ID
		if len(e.Aliases) > 0 {
			name += " (" + strings.Join(e.Aliases, ", ") + ")"
		}
		fix := "no fixed version known"
		if m.Fixed != "" {
			fix = "fixed in " + m.Fixed
		}
		msg := fmt.Sprintf("%s in %s %s: %s", name, m.Component.Path, m.Component.Version, fix)
		if e.Summary != "" {
			msg += " — " + e.Summary
		}
		out = append(out, store.Finding{
			Fingerprint: fingerprint(KindVulnerability, e.ID, m.Component.Path, m.Component.Version),
			Kind:        KindVulnerability, Rule: e.ID, Severity: e.Severity, Message: msg,
			Module: m.Component.Path, Found: m.Component.Version, Fixed: m.Fixed, Aliases: e.Aliases,
		})
	}
	for _, c := range cs {
		if matched[c] {
			continue
		}
		newest := ix.Newest(c.Path)
		have, ok := vulndb.Normalize(c.Version)
		if newest == "" || !ok || !older(have, newest) {
			continue
		}
		out = append(out, store.Finding{
			Fingerprint: fingerprint(KindPatch, c.Path, c.Version, newest),
			Kind:        KindPatch, Rule: "patch.newer-fix", Severity: "low",
			Message: fmt.Sprintf("%s %s is older than %s, the newest release with a security fix the database knows", c.Path, c.Version, newest),
			Module:  c.Path, Found: c.Version, Fixed: newest,
		})
	}
	return out
}

// scanFindings turns the scan's own findings into store findings.
func scanFindings(r *scan.Report) []store.Finding {
	out := make([]store.Finding, 0, len(r.Findings))
	seen := map[string]int{}
	for _, f := range r.Findings {
		base := fingerprint(f.Kind, f.Rule, f.Location, f.Message)
		fp := base
		if n := seen[base]; n > 0 { // the same finding twice: keep both
			fp += "#" + strconv.Itoa(n)
		}
		seen[base]++
		out = append(out, store.Finding{Fingerprint: fp, Kind: f.Kind, Rule: f.Rule, Severity: string(f.Severity), Message: f.Message, Location: f.Location})
	}
	return out
}

func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:12])
}

// older reports a < b for canonical semver strings.
func older(a, b string) bool { return semver.Compare(a, b) < 0 }

// runScan is the scan step: the module and manifest analysed, matched
// against the vulnerability database, and an event with the counts.
func (s *Service) runScan(m *manifest.Manifest, req Request, o Origin) (*Report, []store.Finding, *Error) {
	r, err := scan.Scan(scan.Input{Wasm: req.Artifact, Manifest: m, ManifestName: req.ManifestName, ManifestRaw: req.Manifest})
	if err != nil {
		s.emitLabels(TypeDeployScan, events.OutcomeDenied, "module is malformed", m.Namespace, m.Name, 0, o, nil)
		return nil, nil, &Error{Kind: KindRejected, Step: StepScan, Msg: "scan: " + err.Error(), Err: err}
	}
	if len(req.SBOM) > 0 {
		mods, goVersion, err := givenSBOM(req.SBOM)
		if err != nil {
			return nil, nil, &Error{Kind: KindInvalid, Step: StepScan, Msg: "sbom: " + err.Error(), Err: err}
		}
		// A module's own build info is the truth; a given SBOM speaks for
		// modules warden cannot read (other languages).
		if r.Main == nil && len(r.Modules) == 0 && r.GoVersion == "" {
			cp := *r // cached reports are shared: never modified
			cp.Modules, cp.GoVersion = mods, goVersion
			r = &cp
		}
	}
	rep := &Report{Report: r, Vulnerabilities: VulnFindings(s.cfg.Vulns.Index(), r)}
	all := append(scanFindings(r), rep.Vulnerabilities...)
	counts := map[string]string{"findings": strconv.Itoa(len(all))}
	for _, f := range all {
		sev := f.Severity
		if sev == "" {
			sev = "unknown"
		}
		n, _ := strconv.Atoi(counts["severity."+sev])
		counts["severity."+sev] = strconv.Itoa(n + 1)
	}
	if r.GoVersion != "" {
		counts["go.version"] = r.GoVersion
	}
	s.emitLabels(TypeDeployScan, events.OutcomeSuccess, "", m.Namespace, m.Name, 0, o, counts)
	return rep, all, nil
}

// marshalReport encodes a report for Version.Scan.
func marshalReport(r *Report) json.RawMessage {
	b, err := json.Marshal(r)
	if err != nil { // cannot happen for these types
		return nil
	}
	return b
}

// Rescan matches every active version's stored scan report against the
// current vulnerability index and records the vulnerability and patch
// findings (a database import calls it). It returns the number of
// versions re-evaluated.
func (s *Service) Rescan(ctx context.Context) (int, error) {
	ix := s.cfg.Vulns.Index()
	n := 0
	for _, a := range s.List() {
		if len(a.Version.Scan) == 0 {
			continue
		}
		var r scan.Report
		if err := json.Unmarshal(a.Version.Scan, &r); err != nil {
			s.log.Error("a stored scan report does not decode", "function", a.Key(), "version", a.Version.Version, "err", err)
			continue
		}
		fs := VulnFindings(ix, &r)
		if err := s.cfg.Store.SetFindings(ctx, a.Version.Namespace, a.Version.Name, a.Version.Version,
			[]string{KindVulnerability, KindPatch}, fs, s.now()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// LoadIndex builds the vulnerability index from the stored advisories. An
// advisory that no longer parses is logged and left out. It returns the
// number of advisories stored.
func LoadIndex(ctx context.Context, st store.Advisories, log *slog.Logger) (*vulndb.Index, int, error) {
	as, err := st.Advisories(ctx)
	if err != nil {
		return nil, 0, err
	}
	entries := make([]*vulndb.Entry, 0, len(as))
	for _, a := range as {
		e, err := vulndb.Parse(a.Raw)
		if err != nil {
			log.Error("a stored advisory does not parse; it is not matched", "id", a.ID, "err", err)
			continue
		}
		entries = append(entries, e)
	}
	return vulndb.NewIndex(entries), len(as), nil
}
