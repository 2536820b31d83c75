package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"warden/internal/admin"
	"warden/internal/deploy"
	"warden/internal/manifest"
	"warden/internal/store"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func deployCmd(g *globals, stdout io.Writer) *cobra.Command {
	file, sigFile, sbomFile := "warden.yaml", "", ""
	var canary string
	var canaryFor time.Duration
	margins := deploy.DefaultCanaryMargins
	c := &cobra.Command{
		Use:   "deploy [-f warden.yaml] [--signature F]",
		Short: "Upload a function's artifact, manifest and signature; prints the new version",
		Long: "Upload a function's artifact, manifest, schemas and signature; prints the new version.\n" +
			"The signature (a DSSE envelope made by warden sign) is --signature, else the file\n" +
			"beside the manifest that warden sign writes by default (warden.dsse.json for warden.yaml).",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			b, err := readBundle(file)
			if err != nil {
				return err
			}
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			pw, _ := mw.CreateFormFile("manifest", filepath.Base(file))
			pw.Write(b.raw)
			pw, _ = mw.CreateFormFile("artifact", filepath.Base(b.artPath))
			pw.Write(b.artifact)
			for _, p := range slices.Sorted(maps.Keys(b.files)) {
				pw, _ = mw.CreateFormFile("file:"+p, filepath.Base(p))
				pw.Write(b.files[p])
			}
			if err := attach(mw, "signature", sigFile, defaultSignature(file)); err != nil {
				return err
			}
			if err := attach(mw, "sbom", sbomFile, beside(file, ".cdx.json")); err != nil {
				return err
			}
			if canary != "" {
				pct, err := strconv.Atoi(strings.TrimSuffix(canary, "%"))
				if err != nil || pct < 1 || pct > 99 {
					return usageErr("--canary: a share of clients from 1% to 99%")
				}
				in := admin.CanaryRequest{Percent: pct, Margins: &margins}
				if canaryFor > 0 {
					in.For = canaryFor.String()
				}
				b, _ := json.Marshal(in)
				pw, _ = mw.CreateFormField("canary")
				pw.Write(b)
			}
			mw.Close()
			var res deploy.Result
			if err := g.call(http.MethodPost, "/v1/functions", mw.FormDataContentType(), &body, &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, res)
			}
			v := res.Version
			switch {
			case res.Canary != nil:
				fmt.Fprintf(stdout, "deployed %s/%s version %d (digest %s%s) as a canary for %d%% of clients beside version %d until %s;\nit is promoted then unless it does worse than version %d (warden canary status %s/%s)\n",
					v.Namespace, v.Name, v.Version, short(v.Digest), signedBy(v.Signature), res.Canary.Percent, res.Previous,
					res.Canary.Until.Local().Format(time.RFC3339), res.Previous, v.Namespace, v.Name)
			case res.Pending:
				fmt.Fprintf(stdout, "stored %s/%s version %d (digest %s%s), PENDING approval: %s\nit does not serve until a second person holding grants:approve runs: warden approve %s/%s %d\n",
					v.Namespace, v.Name, v.Version, short(v.Digest), signedBy(v.Signature), strings.Join(v.Approval.Reasons, "; "), v.Namespace, v.Name, v.Version)
			case res.Unchanged:
				fmt.Fprintf(stdout, "%s/%s version %d is already active (unchanged, digest %s)\n", v.Namespace, v.Name, v.Version, short(v.Digest))
			case res.Previous > 0:
				fmt.Fprintf(stdout, "deployed %s/%s version %d (digest %s%s), replacing version %d\n", v.Namespace, v.Name, v.Version, short(v.Digest), signedBy(v.Signature), res.Previous)
			default:
				fmt.Fprintf(stdout, "deployed %s/%s version %d (digest %s%s)\n", v.Namespace, v.Name, v.Version, short(v.Digest), signedBy(v.Signature))
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", file, "the function's manifest")
	c.Flags().StringVar(&sigFile, "signature", "", "the DSSE envelope signing this deploy (default: the one warden sign wrote beside the manifest, if any)")
	c.Flags().StringVar(&sbomFile, "sbom", "", "a CycloneDX JSON SBOM of the artifact, for modules warden cannot read (default: warden.cdx.json beside the manifest, if any)")
	c.Flags().StringVar(&canary, "canary", "", "start as a canary for this share of clients (e.g. 10%) beside the active version")
	c.Flags().DurationVar(&canaryFor, "for", 0, "how long the canary runs before it is promoted (default 10m)")
	c.Flags().Float64Var(&margins.ErrorRate, "max-error-rate", margins.ErrorRate, "canary: how far its 5xx share may exceed the stable version's before it is rolled back")
	c.Flags().Float64Var(&margins.P99, "max-p99", margins.P99, "canary: how many times the stable version's p99 latency its own may be")
	c.Flags().Float64Var(&margins.Signals, "max-signals", margins.Signals, "canary: how far its rate of security signals (capability denials, response-check hits, traps, timeouts) may exceed the stable version's")
	c.Flags().IntVar(&margins.MinRequests, "min-requests", margins.MinRequests, "canary: requests each side needs before error rates and latency are compared")
	return c
}

func canaryCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "canary", Short: "Running canaries: their figures, promote or abort", Args: cobra.NoArgs}
	status := &cobra.Command{
		Use: "status [NAME]", Short: "Each canary's figures against its stable version", Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			q, err := nameQuery(args)
			if err != nil {
				return err
			}
			var list []deploy.CanaryStatus
			if err := g.call(http.MethodGet, "/v1/canaries?"+q.Encode(), "", nil, &list); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, list)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FUNCTION\tSHARE\tUNTIL\tVERSION\tREQUESTS\tERRORS\tSIGNALS\tP99")
			for _, st := range list {
				for _, f := range []deploy.CanaryFigures{st.Stable, st.Canary} {
					fmt.Fprintf(tw, "%s/%s\t%d%%\t%s\t%d\t%d\t%d (%.1f%%)\t%d\t%.1f ms\n", st.Namespace, st.Name, st.Percent,
						st.Until.Local().Format("15:04:05"), f.Version, f.Requests, f.Errors, 100*f.ErrorRate, f.Signals, f.P99MS)
				}
			}
			return tw.Flush()
		},
	}
	end := func(verb, short string) *cobra.Command {
		return &cobra.Command{
			Use: verb + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				ns, name, err := splitName(args[0])
				if err != nil {
					return err
				}
				var st deploy.CanaryStatus
				if err := g.call(http.MethodPost, "/v1/canaries/"+url.PathEscape(ns)+"/"+url.PathEscape(name)+"/"+verb, "", nil, &st); err != nil {
					return err
				}
				if g.json {
					return printJSON(stdout, st)
				}
				if verb == "promote" {
					fmt.Fprintf(stdout, "promoted %s/%s version %d; it serves every client\n", ns, name, st.Canary.Version)
				} else {
					fmt.Fprintf(stdout, "aborted the canary of %s/%s; version %d serves every client\n", ns, name, st.Stable.Version)
				}
				return nil
			},
		}
	}
	c.AddCommand(status, end("promote", "Promote a canary now"), end("abort", "Abort a canary: the stable version serves every client"))
	return c
}

// signedBy describes a version's signature for the deploy answer.
func signedBy(s *store.Signature) string {
	switch {
	case s == nil:
		return ""
	case s.Status == store.SignatureVerified:
		return ", signed by " + s.KeyName
	case s.Status == store.SignatureUnverified:
		return ", signature NOT verified: " + s.Reason
	case s.Mode == store.SigningWarn:
		return ", unsigned"
	}
	return ""
}

// bundle is what a deploy sends: the manifest, the artifact and the files
// the manifest names.
type bundle struct {
	raw      []byte
	m        *manifest.Manifest
	artPath  string
	artifact []byte
	files    map[string][]byte // by the path the manifest names
}

// readBundle reads a manifest and the files it names. The manifest is
// parsed locally first: the artifact path comes from it, and errors are
// shown before anything is sent. The server parses again; it is the
// authority.
func readBundle(file string) (*bundle, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr(err.Error())
	}
	m, err := manifest.Parse(file, raw)
	if err != nil {
		return nil, usageErr("invalid manifest:\n  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	b := &bundle{raw: raw, m: m, artPath: filepath.Join(filepath.Dir(file), filepath.FromSlash(m.Artifact))}
	if b.artifact, err = os.ReadFile(b.artPath); err != nil {
		return nil, usageErr(fmt.Sprintf("artifact: %v (build it first?)", err))
	}
	for _, r := range m.HTTP {
		if r.Schema == "" || b.files[r.Schema] != nil {
			continue
		}
		doc, err := os.ReadFile(r.SchemaPath(file))
		if err != nil {
			return nil, usageErr(fmt.Sprintf("schema of route %q: %v", r.Pattern, err))
		}
		if b.files == nil {
			b.files = map[string][]byte{}
		}
		b.files[r.Schema] = doc
	}
	return b, nil
}

// defaultSignature is where warden sign writes a manifest's envelope by
// default and where warden deploy looks for it: warden.dsse.json beside
// warden.yaml.
func defaultSignature(manifestFile string) string { return beside(manifestFile, ".dsse.json") }

// beside names a file next to the manifest: warden.yaml → warden<suffix>.
func beside(manifestFile, suffix string) string {
	return strings.TrimSuffix(manifestFile, filepath.Ext(manifestFile)) + suffix
}

// attach adds the file given by the flag named field as a part of a
// deploy, or else the default file when it exists (a missing default is
// no error; a missing file the user named is).
func attach(mw *multipart.Writer, field, given, fallback string) error {
	path := given
	if path == "" {
		path = fallback
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		pw, _ := mw.CreateFormFile(field, filepath.Base(path))
		_, err = pw.Write(b)
		return err
	case given != "" || !errors.Is(err, fs.ErrNotExist):
		return usageErr("--" + field + ": " + err.Error())
	}
	return nil
}

// nameQuery is the ?namespace=&name= query of an optional NAME argument.
func nameQuery(args []string) (url.Values, error) {
	q := url.Values{}
	if len(args) == 1 {
		ns, name, err := splitName(args[0])
		if err != nil {
			return nil, err
		}
		q.Set("namespace", ns)
		q.Set("name", name)
	}
	return q, nil
}

// size prints bytes in the manifest's binary units.
func size(n int64) string {
	for _, u := range []struct {
		unit  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// fnPath is the admin API path of a function.
func fnPath(namespace, name string) string {
	return "/v1/functions/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

func short(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func functionsCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "functions", Aliases: []string{"fn"}, Short: "List, describe and delete functions", Args: cobra.NoArgs}
	ls := &cobra.Command{
		Use: "ls", Short: "List functions", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var fns []admin.FunctionInfo
			if err := g.call(http.MethodGet, "/v1/functions", "", nil, &fns); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, fns)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tVERSION\tABI\tROUTES\tUPDATED")
			for _, f := range fns {
				var routes []string
				for _, r := range f.Routes {
					routes = append(routes, r.Route+" ("+r.Auth+")")
				}
				ver := strconv.Itoa(f.ActiveVersion)
				if f.Quarantine != "" {
					ver += " QUARANTINED"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Namespace, f.Name, ver, f.ABI, strings.Join(routes, ", "), f.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Describe a function: versions, routes, limits, grants", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ns, name, err := splitName(args[0])
			if err != nil {
				return err
			}
			var f admin.FunctionInfo
			if err := g.call(http.MethodGet, fnPath(ns, name), "", nil, &f); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, f)
			}
			fmt.Fprintf(stdout, "function   %s/%s\nabi        %s\nactive     version %d (digest %s)\n", f.Namespace, f.Name, f.ABI, f.ActiveVersion, f.Digest)
			fmt.Fprintln(stdout, "routes")
			if len(f.Routes) == 0 {
				fmt.Fprintln(stdout, "  (none: invoke through the admin API only)")
			}
			for _, r := range f.Routes {
				line := "  " + r.Route + "  auth=" + r.Auth
				if len(r.Scopes) > 0 {
					line += "  scopes=" + strings.Join(r.Scopes, ",")
				}
				fmt.Fprintln(stdout, line)
			}
			var lim manifest.Limits
			if b, err := json.Marshal(f.Limits); err == nil {
				json.Unmarshal(b, &lim)
			}
			perm, _ := json.Marshal(f.Permissions)
			fmt.Fprintf(stdout, "limits     memory %s, timeout %s, concurrency %d, request body %s, response body %s\ngrants     %s\n",
				size(lim.Memory), lim.Timeout, lim.Concurrency, size(lim.RequestBody), size(lim.ResponseBody), perm)
			if len(f.Env) > 0 {
				fmt.Fprintf(stdout, "env keys   %s\n", strings.Join(f.Env, ", "))
			}
			fmt.Fprintln(stdout, "versions")
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			for _, v := range f.Versions {
				mark := " "
				if v.Version == f.ActiveVersion {
					mark = "*"
				}
				fmt.Fprintf(tw, "  %s %d\t%s\t%d bytes\t%s\t%s\n", mark, v.Version, short(v.Digest), v.ArtifactSize, v.CreatedAt.Local().Format("2006-01-02 15:04:05"), v.CreatedBy)
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "Delete a function and all its versions", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ns, name, err := splitName(args[0])
			if err != nil {
				return err
			}
			if err := g.call(http.MethodDelete, fnPath(ns, name), "", nil, nil); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, map[string]string{"deleted": ns + "/" + name})
			}
			fmt.Fprintf(stdout, "deleted %s/%s\n", ns, name)
			return nil
		},
	}
	c.AddCommand(ls, get, rm)
	return c
}

func rollbackCmd(g *globals, stdout io.Writer) *cobra.Command {
	var to int
	c := &cobra.Command{
		Use: "rollback NAME [--to VERSION]", Short: "Make an earlier version active again", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ns, name, err := splitName(args[0])
			if err != nil {
				return err
			}
			if to < 0 {
				return usageErr("--to must be a version number")
			}
			var res deploy.Result
			path := fnPath(ns, name) + "/rollback"
			if err := g.call(http.MethodPost, path, "application/json", jsonBody(map[string]int{"to": to}), &res); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, res)
			}
			if res.Unchanged {
				fmt.Fprintf(stdout, "%s/%s version %d is already active\n", ns, name, res.Version.Version)
				return nil
			}
			fmt.Fprintf(stdout, "%s/%s: version %d is active (was %d)\n", ns, name, res.Version.Version, res.Previous)
			return nil
		},
	}
	c.Flags().IntVar(&to, "to", 0, "the version to activate (default: the one before the active version)")
	return c
}

func invokeCmd(g *globals, stdout io.Writer) *cobra.Command {
	var data, method, path string
	var headers []string
	c := &cobra.Command{
		Use: "invoke NAME [--data STR|@FILE] [--header K:V]", Short: "Call a function's active version through the admin API", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ns, name, err := splitName(args[0])
			if err != nil {
				return err
			}
			in := admin.InvokeRequest{Method: strings.ToUpper(method), Header: map[string][]string{}}
			in.Path, in.Query, _ = strings.Cut(path, "?")
			if strings.HasPrefix(data, "@") {
				if in.Body, err = os.ReadFile(data[1:]); err != nil {
					return usageErr("--data: " + err.Error())
				}
			} else if data != "" {
				in.Body = []byte(data)
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return usageErr(fmt.Sprintf("--header %q: want K:V", h))
				}
				k = http.CanonicalHeaderKey(strings.TrimSpace(k))
				in.Header[k] = append(in.Header[k], strings.TrimSpace(v))
			}
			if in.Method == "" {
				in.Method = http.MethodGet
				if in.Body != nil {
					in.Method = http.MethodPost
				}
			}
			var out admin.InvokeResponse
			p := fnPath(ns, name) + "/invoke"
			if err := g.call(http.MethodPost, p, "application/json", jsonBody(in), &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, out)
			}
			stdout.Write(out.Body)
			if len(out.Body) > 0 && out.Body[len(out.Body)-1] != '\n' {
				fmt.Fprintln(stdout)
			}
			if out.Status >= 400 {
				return errors.New("function answered " + strconv.Itoa(out.Status))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&data, "data", "d", "", "request body, or @FILE to read it from a file")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header K:V (repeatable)")
	f.StringVarP(&method, "method", "X", "", "HTTP method (default GET, or POST with --data)")
	f.StringVar(&path, "path", "/", "request path and query seen by the function")
	return c
}
