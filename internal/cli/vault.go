package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"warden/internal/admin"
	"warden/internal/capability"
	"warden/internal/store"
)

// readValue reads a secret or KV value from a file or from stdin, never
// from the command line (shell history, process list). From stdin it
// refuses a terminal, and a single trailing newline is dropped (what echo
// and most editors add); from a file the bytes are taken as they are.
func readValue(c *cobra.Command, file string, fromStdin bool, limit int) ([]byte, error) {
	switch {
	case file != "" && fromStdin:
		return nil, usageErr("give --from-file or --from-stdin, not both")
	case file == "" && !fromStdin:
		return nil, usageErr("give the value with --from-file FILE or --from-stdin; values are never command-line arguments")
	}
	var r io.Reader
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read value: %v", err)
		}
		defer f.Close()
		r = f
	} else {
		in := c.InOrStdin()
		if f, ok := in.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				return nil, usageErr("--from-stdin: stdin is a terminal; pipe the value in")
			}
		}
		r = in
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read value: %v", err)
	}
	if len(b) > limit {
		clear(b)
		return nil, usageErr(fmt.Sprintf("value larger than %d bytes", limit))
	}
	if fromStdin {
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
	}
	if len(b) == 0 {
		return nil, usageErr("empty value")
	}
	return b, nil
}

// qualify parses [NAMESPACE/]NAME, with ns for a bare NAME.
func qualify(s, ns string) (string, string, error) {
	if !strings.Contains(s, "/") {
		s = ns + "/" + s
	}
	return splitName(s)
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func secretsCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "secrets", Short: "Encrypted secrets: set, list, rotate, history, remove; master key", Args: cobra.NoArgs}
	var ns, file, grace string
	var fromStdin bool
	valueFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&file, "from-file", "", "read the value from this file (bytes as they are)")
		cmd.Flags().BoolVar(&fromStdin, "from-stdin", false, "read the value from stdin (one trailing newline dropped)")
	}
	put := func(create bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			n, name, err := qualify(args[0], ns)
			if err != nil {
				return err
			}
			v, err := readValue(cmd, file, fromStdin, capability.MaxSecretSize)
			if err != nil {
				return err
			}
			defer clear(v)
			path := "/v1/secrets/" + url.PathEscape(n) + "/" + url.PathEscape(name)
			if !create {
				path += "/rotate"
				if grace != "" {
					path += "?grace=" + url.QueryEscape(grace)
				}
			}
			var out store.SecretVersion
			if err := g.call(http.MethodPost, path, "application/octet-stream", bytes.NewReader(v), &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, out)
			}
			if create {
				fmt.Fprintf(stdout, "created secret %s/%s version %d\n", out.Namespace, out.Name, out.Version)
			} else {
				fmt.Fprintf(stdout, "secret %s/%s is now version %d; the previous version stays readable until the grace period ends\n", out.Namespace, out.Name, out.Version)
			}
			return nil
		}
	}
	set := &cobra.Command{Use: "set [NAMESPACE/]NAME (--from-file F | --from-stdin)", Short: "Create a secret", Args: cobra.ExactArgs(1), RunE: put(true)}
	valueFlags(set)
	rotate := &cobra.Command{Use: "rotate [NAMESPACE/]NAME (--from-file F | --from-stdin) [--grace 24h]",
		Short: "Add a new version; functions read it at once, the previous one is destroyed after the grace period", Args: cobra.ExactArgs(1), RunE: put(false)}
	valueFlags(rotate)
	rotate.Flags().StringVar(&grace, "grace", "", "how long the previous version stays readable (NAME@previous), default 24h")

	ls := &cobra.Command{Use: "ls", Short: "List secrets: names, versions, dates, which functions hold a grant (never values)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []admin.SecretInfo
			if err := g.call(http.MethodGet, "/v1/secrets", "", nil, &list); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, list)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tVERSION\tVERSIONS\tCREATED\tUPDATED\tGRANTED TO")
			for _, s := range list {
				gr := strings.Join(s.GrantedTo, ",")
				if gr == "" {
					gr = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.Namespace, s.Name, s.CurrentVersion, s.Versions, when(&s.CreatedAt), when(&s.UpdatedAt), gr)
			}
			return tw.Flush()
		}}
	history := &cobra.Command{Use: "history [NAMESPACE/]NAME", Short: "List a secret's versions (never values)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, name, err := qualify(args[0], ns)
			if err != nil {
				return err
			}
			var h []store.SecretVersion
			if err := g.call(http.MethodGet, "/v1/secrets/"+url.PathEscape(n)+"/"+url.PathEscape(name), "", nil, &h); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, h)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATE\tCREATED\tBY\tREADABLE UNTIL\tDESTROYED\tKEY")
			for _, v := range h {
				state := "previous"
				switch {
				case v.Current:
					state = "current"
				case v.DestroyedAt != nil:
					state = "destroyed"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, state, when(&v.CreatedAt), v.CreatedBy, when(v.RetiresAt), when(v.DestroyedAt), v.KeyID)
			}
			return tw.Flush()
		}}
	rm := &cobra.Command{Use: "rm [NAMESPACE/]NAME", Short: "Destroy every version of a secret", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, name, err := qualify(args[0], ns)
			if err != nil {
				return err
			}
			if err := g.call(http.MethodDelete, "/v1/secrets/"+url.PathEscape(n)+"/"+url.PathEscape(name), "", nil, nil); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(stdout, "destroyed secret %s/%s\n", n, name)
			}
			return nil
		}}
	mk := &cobra.Command{Use: "master-key [status|rotate]", Short: "Show the master key and what it wraps, or rotate it (re-wraps every data key online)",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			method, path := http.MethodGet, "/v1/master-key"
			if len(args) == 1 {
				switch args[0] {
				case "status":
				case "rotate":
					method, path = http.MethodPost, "/v1/master-key/rotate"
				default:
					return usageErr("master-key: want status or rotate")
				}
			}
			var st capability.KeyStatus
			if err := g.call(method, path, "", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, st)
			}
			fmt.Fprintf(stdout, "current key: %s (%s)\n", st.Current, st.Source)
			if st.Rewrapping {
				fmt.Fprintln(stdout, "re-wrapping data keys under the current key: in progress")
			}
			if st.LastError != "" {
				fmt.Fprintf(stdout, "last re-wrap error: %s\n", st.LastError)
			}
			for _, k := range st.Keys {
				state := "loaded"
				if !k.Loaded {
					state = "NOT LOADED: these values cannot be read"
				}
				fmt.Fprintf(stdout, "  %s: %d sealed values (%s)\n", k.ID, k.Values, state)
			}
			return nil
		}}
	for _, cmd := range []*cobra.Command{set, rotate, history, rm} {
		cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the secret (or write NAMESPACE/NAME)")
	}
	c.AddCommand(set, ls, history, rotate, rm, mk)
	return c
}

func kvCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "kv", Short: "Operator access to function key-value buckets", Args: cobra.NoArgs}
	var ns, file, ttl, prefix string
	var fromStdin bool
	keyPath := func(bucket, key string) string {
		return "/v1/kv/" + url.PathEscape(ns) + "/" + url.PathEscape(bucket) + "/" + url.PathEscape(key)
	}
	get := &cobra.Command{Use: "get BUCKET KEY", Short: "Print a value (raw bytes)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.newClient()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(requestTimeout)
			defer cancel()
			resp, err := cl.send(ctx, http.MethodGet, keyPath(args[0], args[1]), "", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(stdout, resp.Body)
			return err
		}}
	set := &cobra.Command{Use: "set BUCKET KEY (--from-file F | --from-stdin) [--ttl DUR]", Short: "Write a value", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := readValue(cmd, file, fromStdin, capability.DefaultKVMaxValue)
			if err != nil {
				return err
			}
			p := keyPath(args[0], args[1])
			if ttl != "" {
				p += "?ttl=" + url.QueryEscape(ttl)
			}
			if err := g.call(http.MethodPut, p, "application/octet-stream", bytes.NewReader(v), nil); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(stdout, "set %s/%s %q (%d bytes)\n", ns, args[0], args[1], len(v))
			}
			return nil
		}}
	set.Flags().StringVar(&file, "from-file", "", "read the value from this file")
	set.Flags().BoolVar(&fromStdin, "from-stdin", false, "read the value from stdin (one trailing newline dropped)")
	set.Flags().StringVar(&ttl, "ttl", "", "expire the key after this long, e.g. 1h")
	rm := &cobra.Command{Use: "rm BUCKET KEY", Short: "Delete a key", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.call(http.MethodDelete, keyPath(args[0], args[1]), "", nil, nil); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(stdout, "deleted %s/%s %q\n", ns, args[0], args[1])
			}
			return nil
		}}
	ls := &cobra.Command{Use: "ls [BUCKET] [--prefix P]", Short: "List buckets, or the keys of one bucket (never values)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			if len(args) == 0 {
				var bs []store.KVBucket
				if err := g.call(http.MethodGet, "/v1/kv", "", nil, &bs); err != nil {
					return err
				}
				if g.json {
					return printJSON(stdout, bs)
				}
				fmt.Fprintln(tw, "NAMESPACE\tBUCKET\tKEYS\tBYTES")
				for _, b := range bs {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", b.Namespace, b.Bucket, b.Keys, b.Bytes)
				}
				return tw.Flush()
			}
			var all []store.KVEntry
			after := ""
			for {
				q := url.Values{"prefix": {prefix}, "after": {after}, "limit": {"1000"}}
				var es []store.KVEntry
				if err := g.call(http.MethodGet, "/v1/kv/"+url.PathEscape(ns)+"/"+url.PathEscape(args[0])+"?"+q.Encode(), "", nil, &es); err != nil {
					return err
				}
				all = append(all, es...)
				if len(es) < 1000 {
					break
				}
				after = es[len(es)-1].Key
			}
			if g.json {
				return printJSON(stdout, all)
			}
			fmt.Fprintln(tw, "KEY\tVERSION\tSIZE\tUPDATED\tEXPIRES")
			for _, e := range all {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", strconv.Quote(e.Key), e.Version, e.Size, when(&e.UpdatedAt), when(e.ExpiresAt))
			}
			return tw.Flush()
		}}
	ls.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this")
	for _, cmd := range []*cobra.Command{get, set, rm, ls} {
		cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the bucket")
	}
	c.AddCommand(get, set, rm, ls)
	return c
}

func egressCmd(g *globals, stdout io.Writer) *cobra.Command {
	var ns string
	c := &cobra.Command{Use: "egress [[NAMESPACE/]NAME]", Short: "Which third parties each function calls, and how much data went to each",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if len(args) == 1 {
				n, name, err := qualify(args[0], "default")
				if err != nil {
					return err
				}
				q.Set("namespace", n)
				q.Set("function", name)
			} else if ns != "" {
				q.Set("namespace", ns)
			}
			var st []store.EgressStat
			if err := g.call(http.MethodGet, "/v1/egress?"+q.Encode(), "", nil, &st); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, st)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FUNCTION\tORIGIN\tCALLS\tERRORS\tSENT\tRECEIVED\tAVG TIME\tLAST")
			for _, s := range st {
				avg := time.Duration(0)
				if s.Calls > 0 {
					avg = s.Duration / time.Duration(s.Calls)
				}
				fmt.Fprintf(tw, "%s/%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Namespace, s.Function, s.Origin, s.Calls, s.Errors,
					bytesHuman(s.BytesOut), bytesHuman(s.BytesIn), avg.Round(time.Millisecond), when(&s.LastAt))
			}
			return tw.Flush()
		}}
	c.Flags().StringVarP(&ns, "namespace", "n", "", "only functions of this namespace")
	return c
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func accessCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "access", Short: "Least privilege over time: review what functions are granted and what they use", Args: cobra.NoArgs}
	var unused string
	review := &cobra.Command{Use: "review [NAMESPACE/]NAME [--unused-for 30d]",
		Short: "List grants never used (or not in the window) and print a tightened permissions block", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, name, err := qualify(args[0], "default")
			if err != nil {
				return err
			}
			p := "/v1/access/" + url.PathEscape(n) + "/" + url.PathEscape(name) + "/review"
			if unused != "" {
				p += "?unusedFor=" + url.QueryEscape(unused)
			}
			var rev capability.Review
			if err := g.call(http.MethodGet, p, "", nil, &rev); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, rev)
			}
			fmt.Fprintf(stdout, "%s/%s version %d, observed since %s\n", rev.Namespace, rev.Function, rev.Version, rev.Observed.Local().Format("2006-01-02 15:04"))
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tTARGET\tGRANTED\tUSES\tLAST USED\tFINDING")
			for _, gs := range rev.Grants {
				f := gs.Problem
				if f == "" {
					f = "ok"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", gs.Kind, gs.Target, gs.Granted, gs.Uses, when(gs.LastUsed), f)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if rev.Findings == 0 {
				fmt.Fprintln(stdout, "\nno findings: every grant is in use")
				return nil
			}
			fmt.Fprintf(stdout, "\n%d finding(s). Tightened permissions for warden.yaml:\n\n%s", rev.Findings, rev.Tightened)
			return nil
		}}
	review.Flags().StringVar(&unused, "unused-for", "", "also report grants not used in this window, e.g. 30d or 720h")
	c.AddCommand(review)
	return c
}
