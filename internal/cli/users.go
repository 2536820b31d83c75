package cli

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"warden/internal/admin"
)

// maxSecretInput bounds what is read from stdin for a password.
const maxSecretInput = 4096

// readPassword reads one line from stdin. It refuses a terminal: the
// command line cannot turn echo off, and a password must not be a flag
// value (it would be in the shell history and the process list).
func readPassword(fromStdin bool) (string, error) {
	in := os.Stdin
	st, err := in.Stat()
	tty := err == nil && st.Mode()&os.ModeCharDevice != 0
	if tty {
		if fromStdin {
			return "", usageErr("--password-stdin: stdin is a terminal; pipe the password in (e.g. from a password manager)")
		}
		return "", usageErr("pipe the password on stdin with --password-stdin; it is never a flag value")
	}
	line, err := bufio.NewReader(io.LimitReader(in, maxSecretInput+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password from stdin: %v", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageErr("no password on stdin")
	}
	if len(pw) > maxSecretInput {
		return "", usageErr(fmt.Sprintf("password longer than %d bytes", maxSecretInput))
	}
	return pw, nil
}

func usersCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "users", Short: "Operator accounts: create, list, delete, enroll TOTP", Args: cobra.NoArgs}

	var role string
	var pwStdin bool
	add := &cobra.Command{
		Use:   "add NAME --role R --password-stdin",
		Short: "Create a user; the password is read from stdin (at least 12 characters)",
		Long: "Create a user with a role (" + strings.Join(admin.Roles(), ", ") + "). The password is read from stdin,\n" +
			"never from a flag. Admins must enroll TOTP (warden users mfa NAME) before they can log in.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if role == "" {
				return usageErr("--role is required: one of " + strings.Join(admin.Roles(), ", "))
			}
			pw, err := readPassword(pwStdin)
			if err != nil {
				return err
			}
			cl, err := g.newClient()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(requestTimeout)
			defer cancel()
			var out admin.UserInfo
			if err := cl.request(ctx, http.MethodPost, "/v1/users", "application/json",
				jsonBody(admin.UserRequest{Name: args[0], Role: role, Password: pw}), &out); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, out)
			}
			fmt.Fprintf(stdout, "created user %s (%s)\n", out.Name, out.Role)
			if admin.RequiresMFA(out.Role) {
				fmt.Fprintf(stdout, "role %s requires TOTP: run warden users mfa %s before logging in\n", out.Role, out.Name)
			}
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "the user's role: "+strings.Join(admin.Roles(), ", "))
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin (the default when stdin is not a terminal)")

	ls := &cobra.Command{
		Use: "ls", Short: "List users (never their secrets)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var users []admin.UserInfo
			if err := g.call(http.MethodGet, "/v1/users", "", nil, &users); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, users)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tMFA\tFAILED LOGINS\tLOCKED UNTIL\tCREATED")
			for _, u := range users {
				mfa, locked := "no", "-"
				switch {
				case u.MFAEnrolled:
					mfa = "yes"
				case u.MFAPending:
					mfa = "pending"
				}
				if u.LockedUntil != nil {
					locked = u.LockedUntil.Local().Format("2006-01-02 15:04:05")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", u.Name, u.Role, mfa, u.FailedAttempts, locked, u.CreatedAt.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}

	rm := &cobra.Command{
		Use: "rm NAME", Short: "Delete a user and end their sessions", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := g.call(http.MethodDelete, "/v1/users/"+url.PathEscape(args[0]), "", nil, nil); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, map[string]string{"deleted": args[0]})
			}
			fmt.Fprintf(stdout, "deleted user %s\n", args[0])
			return nil
		},
	}

	var code string
	var reset bool
	mfa := &cobra.Command{
		Use:   "mfa NAME [--code C | --reset]",
		Short: "Enroll TOTP: prints the otpauth URI once; confirm with --code",
		Long: "Without flags: starts TOTP enrollment and prints the otpauth:// URI (add it to an authenticator app;\n" +
			"it is shown once). Then confirm with a first code: warden users mfa NAME --code 123456.\n" +
			"--reset removes the user's TOTP (admins only), e.g. after a lost device.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if code != "" && reset {
				return usageErr("--code and --reset exclude each other")
			}
			cl, err := g.newClient()
			if err != nil {
				return err
			}
			ctx, cancel := timeout(requestTimeout)
			defer cancel()
			path := "/v1/users/" + url.PathEscape(args[0]) + "/totp"
			switch {
			case reset:
				if err := cl.request(ctx, http.MethodDelete, path, "", nil, nil); err != nil {
					return err
				}
				if g.json {
					return printJSON(stdout, map[string]any{"user": args[0], "mfaEnrolled": false})
				}
				fmt.Fprintf(stdout, "removed TOTP of %s\n", args[0])
			case code != "":
				if err := cl.request(ctx, http.MethodPost, path+"/verify", "application/json",
					jsonBody(admin.TOTPVerifyRequest{Code: code}), nil); err != nil {
					return err
				}
				if g.json {
					return printJSON(stdout, map[string]any{"user": args[0], "mfaEnrolled": true})
				}
				fmt.Fprintf(stdout, "TOTP enrolled for %s\n", args[0])
			default:
				var out admin.TOTPEnrollment
				if err := cl.request(ctx, http.MethodPost, path, "", nil, &out); err != nil {
					return err
				}
				if g.json {
					return printJSON(stdout, out)
				}
				fmt.Fprintf(stdout, "add this to an authenticator app; it is shown this once:\n  %s\n", out.URI)
				fmt.Fprintf(stdout, "then confirm with: warden users mfa %s --code <6-digit code>\n", args[0])
			}
			return nil
		},
	}
	mfa.Flags().StringVar(&code, "code", "", "a current code from the authenticator, to confirm the enrollment")
	mfa.Flags().BoolVar(&reset, "reset", false, "remove the user's TOTP")

	c.AddCommand(add, ls, rm, mfa)
	return c
}

func loginCmd(g *globals, stdout io.Writer) *cobra.Command {
	var user, code string
	var pwStdin, save bool
	c := &cobra.Command{
		Use:   "login --user U --password-stdin [--code C] [--save]",
		Short: "Exchange password and TOTP code for a session token (8h)",
		Long: "Prints the session token on stdout, or with --save writes it to DATA/session.token (0600),\n" +
			"which later commands use unless --token or WARDEN_TOKEN is set. The password is read from stdin.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if user == "" {
				return usageErr("--user is required")
			}
			pw, err := readPassword(pwStdin)
			if err != nil {
				return err
			}
			cl, err := g.newClientAuth(false)
			if err != nil {
				return err
			}
			cl.token = "" // log in with nothing but the password and code
			ctx, cancel := timeout(requestTimeout)
			defer cancel()
			var out admin.LoginResponse
			if err := cl.request(ctx, http.MethodPost, "/v1/login", "application/json",
				jsonBody(admin.LoginRequest{User: user, Password: pw, TOTP: code}), &out); err != nil {
				return err
			}
			if !save {
				if g.json {
					return printJSON(stdout, out)
				}
				fmt.Fprintln(stdout, out.Token)
				return nil
			}
			dir := g.dataDir()
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("save session: %v", err)
			}
			path := filepath.Join(dir, sessionTokenFile)
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, []byte(out.Token+"\n"), 0o600); err != nil {
				return fmt.Errorf("save session: %v", err)
			}
			if err := os.Rename(tmp, path); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("save session: %v", err)
			}
			if g.json {
				return printJSON(stdout, map[string]any{"user": out.User, "role": out.Role, "expiresAt": out.ExpiresAt, "saved": path})
			}
			fmt.Fprintf(stdout, "logged in as %s (%s) until %s; session saved in %s\n", out.User, out.Role,
				out.ExpiresAt.Local().Format("2006-01-02 15:04"), path)
			return nil
		},
	}
	c.Flags().StringVar(&user, "user", "", "user name")
	c.Flags().StringVar(&code, "code", "", "the current TOTP code (required once TOTP is enrolled, always for admins)")
	c.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin (the default when stdin is not a terminal)")
	c.Flags().BoolVar(&save, "save", false, "write the token to DATA/session.token instead of printing it")
	return c
}

func tokensCmd(g *globals, stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "tokens", Short: "Admin tokens", Args: cobra.NoArgs}
	revoke := &cobra.Command{
		Use:   "revoke-bootstrap",
		Short: "Revoke the bootstrap admin token (once an admin user with TOTP exists)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := g.call(http.MethodDelete, "/v1/tokens/bootstrap", "", nil, nil); err != nil {
				return err
			}
			if g.json {
				return printJSON(stdout, map[string]string{"revoked": "bootstrap"})
			}
			fmt.Fprintln(stdout, "revoked the bootstrap admin token; log in with warden login from now on")
			return nil
		},
	}
	c.AddCommand(revoke)
	return c
}
