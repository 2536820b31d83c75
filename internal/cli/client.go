package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"warden/internal/pki"
	"warden/internal/problem"
)

// globals are the flags every command shares.
type globals struct {
	server, token, cacert, data string
	json                        bool
}

// client talks to the admin API.
type client struct {
	base  string
	token string
	http  *http.Client
}

// newClient resolves the server, credential and CA: flags, then the
// environment, then the local data directory.
func (g *globals) newClient() (*client, error) { return g.newClientAuth(true) }

// sessionTokenFile is where `warden login --save` keeps a session token.
const sessionTokenFile = "session.token"

// newClientAuth is newClient; without needToken a missing credential is not
// an error (for login, the one route that needs none). The credential is
// --token, then WARDEN_TOKEN, then DATA/session.token, then DATA/admin.token.
func (g *globals) newClientAuth(needToken bool) (*client, error) {
	server := first(g.server, os.Getenv("WARDEN_SERVER"), "https://127.0.0.1:8444")
	token := first(g.token, os.Getenv("WARDEN_TOKEN"))
	cacert := first(g.cacert, os.Getenv("WARDEN_CACERT"))
	data := g.dataDir()
	for _, f := range []string{sessionTokenFile, "admin.token"} {
		if token != "" {
			break
		}
		if b, err := os.ReadFile(filepath.Join(data, f)); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token == "" && needToken {
		return nil, usageErr("no admin credential: pass --token, set WARDEN_TOKEN, run warden login --save, or run where ./warden-data (or --data DIR) holds admin.token")
	}
	if cacert == "" {
		if p := filepath.Join(data, "tls", pki.CAFile); fileExists(p) {
			cacert = p
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pool, err := pki.CertPool(cacert)
		if err != nil {
			return nil, usageErr("--cacert: " + err.Error())
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &client{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{Transport: tr}}, nil
}

// dataDir is the local data directory: --data, WARDEN_DATA or ./warden-data.
func (g *globals) dataDir() string { return first(g.data, os.Getenv("WARDEN_DATA"), "./warden-data") }

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// serverError is a failure the server reported.
type serverError struct {
	status int
	p      problem.Details
}

func (e *serverError) Error() string {
	var b strings.Builder
	msg := e.p.Detail
	if msg == "" {
		msg = e.p.Title
	}
	if msg == "" {
		msg = http.StatusText(e.status)
	}
	if e.p.Step != "" {
		msg = "deploy refused at step " + e.p.Step + ": " + msg
	}
	fmt.Fprintf(&b, "%s (HTTP %d", msg, e.status)
	if e.p.RequestID != "" {
		fmt.Fprintf(&b, ", request id %s", e.p.RequestID)
	}
	b.WriteString(")")
	for _, d := range e.p.Errors {
		b.WriteString("\n  " + d)
	}
	return b.String()
}

// request sends a request and decodes a JSON answer into out (if non-nil).
func (c *client) request(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	resp, err := c.send(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode server answer: %w", err)
	}
	return nil
}

// send performs a request and turns a non-2xx answer into a serverError.
// The caller closes the body of a successful response.
func (c *client) send(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap()
		}
		return nil, fmt.Errorf("cannot reach %s: %v", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		se := &serverError{status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		json.Unmarshal(b, &se.p)
		return nil, se
	}
	return resp, nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func timeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// call sends one request to the admin API, with the usual timeout, and
// decodes the JSON answer into out (if non-nil).
func (g *globals) call(method, path, contentType string, body io.Reader, out any) error {
	cl, err := g.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := timeout(requestTimeout)
	defer cancel()
	return cl.request(ctx, method, path, contentType, body, out)
}
