package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"warden/internal/admin"
	"warden/internal/deploy"
	"warden/internal/sign"
	"warden/internal/store"
)

func signingCmd(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "signing", Short: "Signing keys for deploys", Args: cobra.NoArgs}
	alg, out := string(sign.Ed25519), "warden-signing"
	keygen := &cobra.Command{
		Use:   "keygen [--algorithm ed25519|ecdsa-p256] [--out PREFIX]",
		Short: "Make a signing key pair: PREFIX.key (private, mode 0600) and PREFIX.pub",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			a := sign.Algorithm(alg)
			if a != sign.Ed25519 && a != sign.ECDSAP256 {
				return usageErr("--algorithm: ed25519 or ecdsa-p256")
			}
			priv, pub, err := sign.GenerateKey(a)
			if err != nil {
				return err
			}
			pk, err := sign.ParsePublicKey(pub)
			if err != nil {
				return err
			}
			// Never overwrite a key: a lost private key cannot be undone.
			if err := writeNew(out+".key", priv, 0o600); err != nil {
				return err
			}
			if err := writeNew(out+".pub", pub, 0o644); err != nil {
				os.Remove(out + ".key")
				return err
			}
			fmt.Fprintf(stdout, "wrote %s.key (private: keep it secret) and %s.pub\nkey id %s (%s)\ntrust it: warden trust add NAMESPACE --key %s.pub\n",
				out, out, pk.ID, a, out)
			return nil
		},
	}
	keygen.Flags().StringVar(&alg, "algorithm", alg, "ed25519 or ecdsa-p256")
	keygen.Flags().StringVar(&out, "out", out, "path prefix of the two files")
	c.AddCommand(keygen)
	return c
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return usageErr(path + " exists; keys are never overwritten (choose another --out)")
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func signCmd(stdout io.Writer) *cobra.Command {
	var file, keyFile, out string
	var prov sign.Provenance
	var sourceDigest []string
	c := &cobra.Command{
		Use:   "sign [-f warden.yaml] --key KEY [--out F]",
		Short: "Sign a deploy: a DSSE envelope over the manifest, the artifact and the schemas",
		Long: "Sign a deploy. Writes a DSSE envelope (payload type application/vnd.in-toto+json)\n" +
			"carrying an in-toto Statement v1: its subjects are the sha256 of the manifest, the\n" +
			"artifact and every schema the manifest names; its predicate names the namespace and\n" +
			"function, and the build provenance given by flags. warden deploy sends it.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if keyFile == "" {
				return usageErr("--key is required (warden signing keygen makes one)")
			}
			pemBytes, err := os.ReadFile(keyFile)
			if err != nil {
				return usageErr("--key: " + err.Error())
			}
			key, err := sign.ParsePrivateKey(pemBytes)
			if err != nil {
				return usageErr("--key " + keyFile + ": " + err.Error())
			}
			b, err := readBundle(file)
			if err != nil {
				return err
			}
			digests := map[string]string{}
			for p, doc := range b.files {
				digests[p] = sign.Digest(doc)
			}
			claim := deploy.Claim(filepath.Base(file), b.raw, b.m, sign.Digest(b.artifact), digests)
			for _, kv := range sourceDigest {
				alg, d, ok := strings.Cut(kv, "=")
				if !ok || alg == "" || d == "" {
					return usageErr("--source-digest: want ALG=DIGEST, e.g. gitCommit=1a2b3c")
				}
				if prov.SourceDigest == nil {
					prov.SourceDigest = map[string]string{}
				}
				prov.SourceDigest[alg] = d
			}
			if prov.BuilderID != "" || prov.BuildType != "" || prov.SourceURI != "" || prov.InvocationID != "" || prov.SourceDigest != nil {
				claim.Provenance = &prov
			}
			env, err := sign.Sign(claim, key)
			if err != nil {
				return err
			}
			if out == "" {
				out = defaultSignature(file)
			}
			if err := os.WriteFile(out, env, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "signed %s/%s (%d files) with key %s\nwrote %s\n", b.m.Namespace, b.m.Name, len(claim.Subjects), short(key.Public.ID), out)
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "warden.yaml", "the function's manifest")
	f.StringVar(&keyFile, "key", "", "the private key (PEM, PKCS#8)")
	f.StringVar(&out, "out", "", "where to write the envelope (default: warden.dsse.json beside the manifest)")
	f.StringVar(&prov.BuilderID, "builder-id", "", "provenance: the builder's id (e.g. the CI system's URI)")
	f.StringVar(&prov.BuildType, "build-type", "", "provenance: the build type's URI")
	f.StringVar(&prov.SourceURI, "source-uri", "", "provenance: the source repository's URI")
	f.StringArrayVar(&sourceDigest, "source-digest", nil, "provenance: ALG=DIGEST of the source (e.g. gitCommit=...); repeatable")
	f.StringVar(&prov.InvocationID, "invocation-id", "", "provenance: the build run's id")
	return c
}

func trustCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "trust", Short: "Keys each namespace trusts to sign its deploys, and its signing mode", Args: cobra.NoArgs}
	var keyFile, name, expires string
	add := &cobra.Command{
		Use:   "add NAMESPACE --key PUB [--expires D] [--name N]",
		Short: "Trust a public key for a namespace's deploys (the namespace then enforces signatures unless its mode is warn)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if keyFile == "" {
				return usageErr("--key is required: the public key file (PEM)")
			}
			pub, err := os.ReadFile(keyFile)
			if err != nil {
				return usageErr("--key: " + err.Error())
			}
			in := admin.TrustKeyRequest{PublicKey: string(pub), Name: name}
			if expires != "" {
				t, err := parseExpiry(expires, time.Now())
				if err != nil {
					return usageErr("--expires: " + err.Error())
				}
				in.ExpiresAt = &t
			}
			var k store.TrustedKey
			if err := g.call(http.MethodPost, "/v1/trust/"+url.PathEscape(args[0])+"/keys", "application/json", jsonBody(in), &k); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, k)
			}
			exp := ""
			if k.ExpiresAt != nil {
				exp = ", expires " + k.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "namespace %s trusts key %s (%s, %s%s)\n", k.Namespace, short16(k.ID), k.Name, k.Algorithm, exp)
			return nil
		},
	}
	add.Flags().StringVar(&keyFile, "key", "", "the public key (PEM) to trust")
	add.Flags().StringVar(&name, "name", "", "a name for the key (default: its id's first 16 digits)")
	add.Flags().StringVar(&expires, "expires", "", "when the key stops verifying: a duration (90d, 720h) or a date (2027-01-31, RFC 3339)")
	ls := &cobra.Command{
		Use: "ls [NAMESPACE]", Short: "List trusted keys and signing modes", Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var list []store.SigningPolicy
			if len(args) == 1 {
				var p store.SigningPolicy
				if err := g.call(http.MethodGet, "/v1/trust/"+url.PathEscape(args[0]), "", nil, &p); err != nil {
					return err
				}
				list = []store.SigningPolicy{p}
			} else if err := g.call(http.MethodGet, "/v1/trust", "", nil, &list); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, list)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tMODE\tKEY ID\tNAME\tALGORITHM\tSTATE\tADDED BY")
			now := time.Now()
			for _, p := range list {
				mode := p.Mode
				if !p.ModeSet && p.Mode != store.SigningOff {
					mode += " (default)"
				}
				if len(p.Keys) == 0 {
					fmt.Fprintf(tw, "%s\t%s\t-\t\t\t\t\n", p.Namespace, mode)
				}
				for _, k := range p.Keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, mode, short16(k.ID), k.Name, k.Algorithm, keyState(k, now), k.AddedBy)
				}
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke NAMESPACE KEYID", Short: "Stop trusting a key (for good: it verifies nothing from now on, not even versions it signed before)", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			var k store.TrustedKey
			if err := g.call(http.MethodDelete, "/v1/trust/"+url.PathEscape(args[0])+"/keys/"+url.PathEscape(args[1]), "", nil, &k); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, k)
			}
			fmt.Fprintf(stdout, "namespace %s revoked key %s (%s)\n", k.Namespace, short16(k.ID), k.Name)
			return nil
		},
	}
	mode := &cobra.Command{
		Use: "mode NAMESPACE enforce|warn", Short: "enforce: refuse deploys not signed by a trusted key; warn: accept them, with an event", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			var p store.SigningPolicy
			if err := g.call(http.MethodPut, "/v1/trust/"+url.PathEscape(args[0])+"/mode", "application/json", jsonBody(admin.TrustModeRequest{Mode: args[1]}), &p); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, p)
			}
			fmt.Fprintf(stdout, "namespace %s: signing mode %s\n", p.Namespace, p.Mode)
			return nil
		},
	}
	c.AddCommand(add, ls, revoke, mode)
	return c
}

func keyState(k store.TrustedKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked " + k.RevokedAt.Format(time.DateOnly) + " by " + k.RevokedBy
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired " + k.ExpiresAt.Format(time.DateOnly)
	case k.ExpiresAt != nil:
		return "valid until " + k.ExpiresAt.Format(time.DateOnly)
	}
	return "valid"
}

func short16(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// parseExpiry reads a duration from now (90d, 720h, 1h30m) or a time
// (2027-01-31 or RFC 3339).
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive number of days, e.g. 90d", s)
		}
		return now.AddDate(0, 0, n), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive duration", s)
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			if !t.After(now) {
				return time.Time{}, fmt.Errorf("%q is in the past", s)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want a duration (90d, 720h) or a date (2027-01-31, RFC 3339)", s)
}

func approvalsCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "approvals", Short: "Versions waiting for a second person's approval", Args: cobra.NoArgs}
	c.AddCommand(&cobra.Command{
		Use: "ls", Short: "List pending versions: who deployed them, why they need approval, when they expire", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return listApprovals(g, stdout) },
	})
	return c
}

func listApprovals(g *globals, stdout io.Writer) error {
	var vs []store.Version
	if err := g.call(http.MethodGet, "/v1/approvals", "", nil, &vs); err != nil {
		return err
	}
	if g.json {
		return printJSON(stdout, vs)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tVERSION\tDEPLOYED BY\tEXPIRES\tWHY")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\t%s\n", v.Namespace, v.Name, v.Version, v.Approval.RequestedBy,
			v.Approval.ExpiresAt.Format(time.RFC3339), strings.Join(v.Approval.Reasons, "; "))
	}
	return tw.Flush()
}

func decideCmd(g *globals, stdout io.Writer, approve bool) *cobra.Command {
	verb, short := "reject", "Reject a pending version (a second person holding grants:approve)"
	if approve {
		verb, short = "approve", "Approve a pending version and activate it (a second person holding grants:approve)"
	}
	var comment string
	c := &cobra.Command{
		Use: verb + " NAME VERSION [--comment C]", Short: short, Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			ns, name, err := splitName(args[0])
			if err != nil {
				return err
			}
			v, err := strconv.Atoi(args[1])
			if err != nil || v <= 0 {
				return usageErr("VERSION must be a positive number")
			}
			path := "/v1/approvals/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/" + strconv.Itoa(v) + "/" + verb
			var out json.RawMessage
			if err := g.call(http.MethodPost, path, "application/json", jsonBody(admin.DecisionRequest{Comment: comment}), &out); err != nil {
				return err
			}
			if g.json {
				_, err := stdout.Write(append(out, '\n'))
				return err
			}
			if approve {
				fmt.Fprintf(stdout, "approved %s/%s version %d; it is active\n", ns, name, v)
			} else {
				fmt.Fprintf(stdout, "rejected %s/%s version %d; it will never serve\n", ns, name, v)
			}
			return nil
		},
	}
	c.Flags().StringVar(&comment, "comment", "", "a note kept with the decision")
	return c
}
