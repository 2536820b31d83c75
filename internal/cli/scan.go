package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"warden/internal/admin"
	"warden/internal/deploy"
	"warden/internal/policy"
	"warden/internal/scan"
	"warden/internal/store"
	"warden/internal/vulndb"
)

// scanResult is one manifest's offline scan.
type scanResult struct {
	Manifest string          `json:"manifest"`
	Report   *scan.Report    `json:"report"`
	Vulns    []store.Finding `json:"vulnerabilities,omitempty"`
}

func scanCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	var dbPath, failOn string
	c := &cobra.Command{
		Use:   "scan FILE|DIR [--vulndb PATH] [--fail-on SEVERITY]",
		Short: "Scan functions offline as a deploy does: the module, embedded credentials, dependencies, the manifest",
		Long: "Scan a function offline as a deploy does. FILE is a manifest (or a module beside its\n" +
			"warden.yaml); DIR is searched for warden.yaml files. With --vulndb (a Go vulnerability\n" +
			"database directory, OSV files or a zip), dependencies and the toolchain are matched\n" +
			"too. --fail-on high exits 1 when a finding is high or worse.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var min scan.Severity
			if failOn != "" {
				min = scan.Severity(failOn)
				if min.Rank() < 0 {
					return usageErr("--fail-on: critical, high, medium, low or info")
				}
			}
			manifests, err := findManifests(args[0])
			if err != nil {
				return err
			}
			ix := vulndb.NewIndex(nil)
			if dbPath != "" {
				entries, errs, err := vulndb.Load(dbPath)
				if err != nil {
					return usageErr("--vulndb: " + err.Error())
				}
				for _, e := range errs {
					fmt.Fprintln(stderr, "vulndb:", e)
				}
				ix = vulndb.NewIndex(entries)
				fmt.Fprintf(stderr, "vulnerability database: %d advisories\n", ix.Len())
			}
			var results []scanResult
			worst := scan.Severity("")
			for _, m := range manifests {
				b, err := readBundle(m)
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "scanning %s (%.1f MiB)...\n", m, float64(len(b.artifact))/(1<<20))
				start := time.Now()
				r, err := scan.Scan(scan.Input{Wasm: b.artifact, Manifest: b.m, ManifestName: filepath.Base(m), ManifestRaw: b.raw})
				if err != nil {
					return fmt.Errorf("%s: %w", m, err)
				}
				res := scanResult{Manifest: m, Report: r, Vulns: deploy.VulnFindings(ix, r)}
				fmt.Fprintf(stderr, "  %d findings, %d vulnerabilities in %v\n", len(r.Findings), len(res.Vulns), time.Since(start).Round(time.Millisecond))
				results = append(results, res)
				for _, f := range r.Findings {
					if f.Severity.Rank() > worst.Rank() {
						worst = f.Severity
					}
				}
				for _, f := range res.Vulns {
					sev := scan.Severity(f.Severity)
					if sev == "" && f.Kind == deploy.KindVulnerability {
						sev = scan.High // the Go database rates none: count as high
					}
					if sev.Rank() > worst.Rank() {
						worst = sev
					}
				}
			}
			if g.json {
				if err := printJSON(stdout, results); err != nil {
					return err
				}
			} else {
				printScan(stdout, results)
			}
			if min != "" && worst != "" && worst.Rank() >= min.Rank() {
				return fmt.Errorf("findings at %s or worse (the worst: %s)", min, worst)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dbPath, "vulndb", "", "a vulnerability database to match against (directory, OSV file or zip)")
	c.Flags().StringVar(&failOn, "fail-on", "", "exit 1 when a finding is at this severity or worse")
	return c
}

func printScan(w io.Writer, results []scanResult) {
	for _, res := range results {
		r := res.Report
		fmt.Fprintf(w, "%s\n", res.Manifest)
		if r.GoVersion != "" {
			fmt.Fprintf(w, "  built with %s, %d modules\n", r.GoVersion, len(r.Modules))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  SEVERITY\tKIND\tRULE\tLOCATION\tMESSAGE")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Severity, f.Kind, f.Rule, f.Location, f.Message)
		}
		for _, f := range res.Vulns {
			sev := f.Severity
			if sev == "" {
				sev = "unrated"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", sev, f.Kind, f.Rule, f.Module, f.Message)
		}
		tw.Flush()
	}
}

// findManifests resolves scan's argument: a manifest, a module beside its
// warden.yaml, or a directory searched for warden.yaml files.
func findManifests(arg string) ([]string, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		return nil, usageErr(err.Error())
	}
	if !fi.IsDir() {
		if strings.HasSuffix(arg, ".wasm") {
			m := filepath.Join(filepath.Dir(arg), "warden.yaml")
			if _, err := os.Stat(m); err != nil {
				return nil, usageErr(arg + ": a module is scanned with its manifest; no warden.yaml beside it")
			}
			return []string{m}, nil
		}
		return []string{arg}, nil
	}
	var out []string
	err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != arg && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "warden.yaml" {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, usageErr("no warden.yaml under " + arg)
	}
	return out, nil
}

func sbomCmd(g *globals, stdout io.Writer) *cobra.Command {
	var out string
	c := &cobra.Command{
		Use: "sbom NAME[@VERSION] [--out F]", Short: "A version's CycloneDX SBOM (default: the active version)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, ver, _ := strings.Cut(args[0], "@")
			if ver == "" {
				ver = "active"
			}
			ns, name, err := splitName(ref)
			if err != nil {
				return err
			}
			var bom json.RawMessage
			if err := g.call(http.MethodGet, fnPath(ns, name)+"/versions/"+url.PathEscape(ver)+"/sbom", "", nil, &bom); err != nil {
				return err
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, bom, "", "  "); err != nil {
				return err
			}
			pretty.WriteByte('\n')
			if out != "" {
				return os.WriteFile(out, pretty.Bytes(), 0o644)
			}
			_, err = stdout.Write(pretty.Bytes())
			return err
		},
	}
	c.Flags().StringVar(&out, "out", "", "write to this file instead of stdout")
	return c
}

// importBatch bounds one import request's entries.
const importBatch = 2000

func vulndbCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "vulndb", Short: "The offline vulnerability database deploys are matched against", Args: cobra.NoArgs}
	imp := &cobra.Command{
		Use:   "import FILE|DIR",
		Short: "Import the Go vulnerability database (its OSV layout, a zip of it) or OSV files; every active version is re-evaluated",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			entries, errs, err := vulndb.Load(args[0])
			if err != nil {
				return usageErr(err.Error())
			}
			for _, e := range errs {
				fmt.Fprintln(stderr, "skipped:", e)
			}
			if len(entries) == 0 {
				return usageErr("no advisory found in " + args[0])
			}
			var total admin.VulnDBImport
			for i := 0; i < len(entries); i += importBatch {
				batch := entries[i:min(i+importBatch, len(entries))]
				raw := make([]json.RawMessage, len(batch))
				for j, e := range batch {
					raw[j] = e.Raw
				}
				last := i+importBatch >= len(entries)
				path := "/v1/vulndb"
				if !last {
					path += "?rescan=false"
				}
				var res admin.VulnDBImport
				if err := g.call(http.MethodPost, path, "application/json", jsonBody(raw), &res); err != nil {
					return err
				}
				total.Added += res.Added
				total.Updated += res.Updated
				total.Refused = append(total.Refused, res.Refused...)
				total.Total, total.Rescanned, total.OpenVulns, total.Remediation = res.Total, res.Rescanned, res.OpenVulns, res.Remediation
				total.DurationMS += res.DurationMS
				fmt.Fprintf(stderr, "imported %d/%d\n", min(i+importBatch, len(entries)), len(entries))
			}
			if g.json {
				return printJSON(stdout, total)
			}
			for _, r := range total.Refused {
				fmt.Fprintln(stderr, "refused:", r)
			}
			fmt.Fprintf(stdout, "%d advisories added, %d updated (%d stored); %d active versions re-evaluated: %d open vulnerabilities (%d ms)\n",
				total.Added, total.Updated, total.Total, total.Rescanned, total.OpenVulns, total.DurationMS)
			if r := total.Remediation; r.Denied > 0 || r.Released > 0 {
				fmt.Fprintf(stdout, "policies: %d versions no longer pass: %d quarantined, %d rolled back, %d notified; %d released from quarantine\n",
					r.Denied, r.Quarantined, r.RolledBack, r.Notified, r.Released)
			}
			return nil
		},
	}
	status := &cobra.Command{
		Use: "status", Short: "The imported database's size and dates", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var st admin.VulnDBStatus
			if err := g.call(http.MethodGet, "/v1/vulndb", "", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, st)
			}
			fmt.Fprintf(stdout, "%d advisories", st.Advisories)
			if st.Newest != nil {
				fmt.Fprintf(stdout, ", newest modified %s", st.Newest.Format(time.RFC3339))
			}
			if st.LastImported != nil {
				fmt.Fprintf(stdout, ", last import %s", st.LastImported.Format(time.RFC3339))
			}
			fmt.Fprintln(stdout)
			return nil
		},
	}
	c.AddCommand(imp, status)
	return c
}

func findingsCmd(g *globals, stdout io.Writer) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use: "findings [NAME] [--all]", Short: "Open findings of active versions, with when each was first seen", Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			q, err := nameQuery(args)
			if err != nil {
				return err
			}
			if all {
				q.Set("all", "1")
			}
			var fs []store.Finding
			if err := g.call(http.MethodGet, "/v1/findings?"+q.Encode(), "", nil, &fs); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, fs)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FUNCTION\tVERSION\tSEVERITY\tKIND\tRULE\tFIRST SEEN\tSTATE\tMESSAGE")
			for _, f := range fs {
				state := "open"
				if f.ResolvedAt != nil {
					state = "resolved " + f.ResolvedAt.Format(time.DateOnly)
				}
				sev := f.Severity
				if sev == "" {
					sev = "unrated"
				}
				fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Namespace, f.Name, f.Version, sev, f.Kind, f.Rule,
					f.FirstSeen.Format(time.RFC3339), state, f.Message)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every version's findings, resolved ones too")
	return c
}

func policyCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "policy", Short: "Deploy policies as code (Rego v1), per namespace", Args: cobra.NoArgs}
	set := &cobra.Command{
		Use: "set NAMESPACE FILE.rego", Short: "Set a namespace's deploy policy (refused unless it compiles)", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[1])
			if err != nil {
				return usageErr(err.Error())
			}
			var info admin.PolicyInfo
			if err := g.call(http.MethodPut, "/v1/policies/"+url.PathEscape(args[0]), "text/plain", bytes.NewReader(src), &info); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, info)
			}
			fmt.Fprintf(stdout, "namespace %s: policy %s set\n", info.Namespace, short(info.Digest))
			return nil
		},
	}
	get := &cobra.Command{
		Use: "get NAMESPACE", Short: "Print a namespace's policy (the built-in default when none is set)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var info admin.PolicyInfo
			if err := g.call(http.MethodGet, "/v1/policies/"+url.PathEscape(args[0]), "", nil, &info); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, info)
			}
			_, err := io.WriteString(stdout, info.Source)
			return err
		},
	}
	rm := &cobra.Command{
		Use: "rm NAMESPACE", Short: "Remove a namespace's policy (the built-in default applies)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.call(http.MethodDelete, "/v1/policies/"+url.PathEscape(args[0]), "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "namespace %s: the built-in policy applies\n", args[0])
			return nil
		},
	}
	var input string
	test := &cobra.Command{
		Use: "test FILE.rego --input F", Short: "Evaluate a policy locally against an input document (FILE default: the built-in policy)", Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if input == "" {
				return usageErr("--input is required: a JSON input document (docs/policy.md shows one)")
			}
			in, err := os.ReadFile(input)
			if err != nil {
				return usageErr(err.Error())
			}
			p := policy.Default()
			if len(args) == 1 && args[0] != "default" {
				src, err := os.ReadFile(args[0])
				if err != nil {
					return usageErr(err.Error())
				}
				if p, err = policy.Compile(filepath.Base(args[0]), src); err != nil {
					return errors.New("the policy does not compile:\n  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := p.Test(ctx, in)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, d)
			}
			if d.Allow {
				fmt.Fprintln(stdout, "allow")
			} else {
				fmt.Fprintln(stdout, "deny")
			}
			for _, r := range d.Deny {
				fmt.Fprintln(stdout, "  deny:", r)
			}
			for _, r := range d.Approvals {
				fmt.Fprintln(stdout, "  needs approval:", r)
			}
			return nil
		},
	}
	test.Flags().StringVar(&input, "input", "", "the input document (JSON)")
	c.AddCommand(set, get, rm, test)
	return c
}
