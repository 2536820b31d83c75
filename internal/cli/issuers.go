package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"warden/internal/admin"
	"warden/internal/store"
)

func authCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "auth", Short: "Trusted token issuers for routes with auth: jwt:<name>", Args: cobra.NoArgs}
	jwt := &cobra.Command{Use: "jwt", Short: "Add, list and remove trusted JWT issuers", Args: cobra.NoArgs}
	var issuer, audience, jwksURL, jwksFile string
	add := &cobra.Command{
		Use: "add NAME --issuer I --audience A (--jwks-url U | --jwks-file F)", Short: "Trust an issuer's tokens", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if issuer == "" || audience == "" {
				return usageErr("--issuer and --audience are required")
			}
			if (jwksURL == "") == (jwksFile == "") {
				return usageErr("give exactly one of --jwks-url and --jwks-file")
			}
			in := admin.IssuerRequest{Name: args[0], Issuer: issuer, Audience: audience, JWKSURL: jwksURL}
			if jwksFile != "" {
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return usageErr("--jwks-file: " + err.Error())
				}
				if !json.Valid(b) {
					return usageErr("--jwks-file: not JSON")
				}
				in.JWKS = b
			}
			var out store.Issuer
			if err := g.call(http.MethodPost, "/v1/auth/jwt", "application/json", jsonBody(in), &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, out)
			}
			fmt.Fprintf(stdout, "trusted issuer %s (iss %s, aud %s); routes use it as auth: jwt:%s\n", out.Name, out.Issuer, out.Audience, out.Name)
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&issuer, "issuer", "", "the iss claim tokens must carry")
	f.StringVar(&audience, "audience", "", "a value the aud claim must hold")
	f.StringVar(&jwksURL, "jwks-url", "", "HTTPS URL of the issuer's key set (fetched by the server, cached, refreshed)")
	f.StringVar(&jwksFile, "jwks-file", "", "a file holding the issuer's key set (JWKS JSON)")
	ls := &cobra.Command{
		Use: "ls", Short: "List trusted issuers", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var list []store.Issuer
			if err := g.call(http.MethodGet, "/v1/auth/jwt", "", nil, &list); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, list)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tISSUER\tAUDIENCE\tKEYS")
			for _, iss := range list {
				keys := "file"
				if iss.JWKSURL != "" {
					keys = iss.JWKSURL
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", iss.Name, iss.Issuer, iss.Audience, keys)
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "Stop trusting an issuer (its routes refuse every token)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.call(http.MethodDelete, "/v1/auth/jwt/"+url.PathEscape(args[0]), "", nil, nil); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(stdout, "removed issuer %s\n", args[0])
			}
			return nil
		},
	}
	jwt.AddCommand(add, ls, rm)
	c.AddCommand(jwt)
	return c
}
