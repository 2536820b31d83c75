// Package cli owns the warden command line: the server command, which hands
// its configuration to package server, and the client commands, which talk
// to the admin API only.
//
// cli never reads or writes the store directly, never prints a credential
// other than the bootstrap token the server announces, and exits 0 on
// success, 1 on a failure the server reported and 2 on bad usage.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// usageError is bad usage: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErr(msg string) error { return &usageError{msg} }

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainStdin(args, os.Stdin, stdout, stderr)
}

// MainStdin is Main reading standard input from stdin.
func MainStdin(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetIn(stdin)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "warden: "+err.Error())
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "warden",
		Short:         "warden runs WebAssembly functions behind a security-first gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr(err.Error()) })
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "admin API URL (env WARDEN_SERVER, default https://127.0.0.1:8444)")
	pf.StringVar(&g.token, "token", "", "admin credential (env WARDEN_TOKEN, default DATA/admin.token)")
	pf.StringVar(&g.cacert, "cacert", "", "CA certificate to trust (env WARDEN_CACERT, default DATA/tls/ca.pem)")
	pf.StringVar(&g.data, "data", "", "data directory (server: where it keeps its state; client: where to find admin.token and tls/ca.pem; default ./warden-data)")
	pf.StringVar(&g.data, "data-dir", "", "the same as --data (for invoke, whose --data is the request body)")
	pf.BoolVar(&g.json, "json", false, "machine-readable output")

	root.AddCommand(
		serverCmd(g, stdout),
		deployCmd(g, stdout),
		functionsCmd(g, stdout),
		invokeCmd(g, stdout),
		rollbackCmd(g, stdout),
		eventsCmd(g, stdout),
		keysCmd(g, stdout),
		authCmd(g, stdout),
		usersCmd(g, stdout),
		loginCmd(g, stdout),
		tokensCmd(g, stdout),
		secretsCmd(g, stdout),
		kvCmd(g, stdout),
		egressCmd(g, stdout),
		accessCmd(g, stdout),
		signingCmd(stdout),
		signCmd(stdout),
		trustCmd(g, stdout),
		scanCmd(g, stdout, stderr),
		sbomCmd(g, stdout),
		vulndbCmd(g, stdout, stderr),
		findingsCmd(g, stdout),
		policyCmd(g, stdout),
		approvalsCmd(g, stdout),
		canaryCmd(g, stdout),
		decideCmd(g, stdout, true),
		decideCmd(g, stdout, false),
	)
	// Argument-count errors are usage errors too.
	var wrap func(c *cobra.Command)
	wrap = func(c *cobra.Command) {
		if c.Args != nil {
			args := c.Args
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageErr(err.Error())
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			wrap(sub)
		}
	}
	wrap(root)
	root.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErr(fmt.Sprintf("unknown command %q", args[0]))
		}
		return c.Help()
	}
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErr(fmt.Sprintf("unknown command %q; see warden --help", strings.Join(args, " ")))
		}
		return nil
	}
	return root
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// splitName parses NAME or NAMESPACE/NAME.
func splitName(s string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(s, "/")
	if !ok {
		ns, n = "default", s
	}
	if ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", usageErr(fmt.Sprintf("%q: want NAME or NAMESPACE/NAME", s))
	}
	return ns, n, nil
}

const requestTimeout = 2 * time.Minute
