package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"warden/internal/admin"
)

func keysCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "keys", Short: "Create, list and revoke API keys for function routes", Args: cobra.NoArgs}
	var scopes, expires string
	create := &cobra.Command{
		Use: "create NAME --scopes S[,S...] [--expires DUR]", Short: "Create an API key; it is printed once", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			in := admin.KeyRequest{Name: args[0], Scopes: []string{}, Expires: expires}
			for _, s := range strings.Split(scopes, ",") {
				if s = strings.TrimSpace(s); s != "" {
					in.Scopes = append(in.Scopes, s)
				}
			}
			var out admin.KeyInfo
			if err := g.call(http.MethodPost, "/v1/keys", "application/json", jsonBody(in), &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, out)
			}
			fmt.Fprintf(stdout, "created API key %s (%s), scopes [%s]", out.ID, out.Name, strings.Join(out.Scopes, " "))
			if out.ExpiresAt != nil {
				fmt.Fprintf(stdout, ", expires %s", out.ExpiresAt.Local().Format("2006-01-02 15:04"))
			}
			fmt.Fprintf(stdout, "\nthe key is shown this once; store it now:\n  %s\n", out.Key)
			return nil
		},
	}
	create.Flags().StringVar(&scopes, "scopes", "", "comma-separated scopes the key holds (routes list the scopes they need)")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 720h (default: no expiry)")

	ls := &cobra.Command{
		Use: "ls", Short: "List API keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var keys []admin.KeyInfo
			if err := g.call(http.MethodGet, "/v1/keys", "", nil, &keys); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, keys)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tSTATE")
			for _, k := range keys {
				state, exp, used := "active", "never", "never"
				if k.RevokedAt != nil {
					state = "revoked"
				}
				if k.ExpiresAt != nil {
					exp = k.ExpiresAt.Local().Format("2006-01-02 15:04")
				}
				if k.LastUsedAt != nil {
					used = k.LastUsedAt.Local().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(k.Scopes, ","), k.CreatedAt.Local().Format("2006-01-02 15:04"), exp, used, state)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an API key; it is refused from the next request on", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.call(http.MethodDelete, "/v1/keys/"+url.PathEscape(args[0]), "", nil, nil); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, map[string]string{"revoked": args[0]})
			}
			fmt.Fprintf(stdout, "revoked API key %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(create, ls, revoke)
	return c
}
