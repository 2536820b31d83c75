package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Bounds applied by Client.
const (
	MaxRedirects       = 5
	DefaultTimeout     = 30 * time.Second
	DefaultMaxBody     = 10 << 20 // 10 MiB
	maxResponseHeaders = 64 << 10
)

// ErrResponseTooLarge is returned when reading a response body beyond the
// limit given to Client.
var ErrResponseTooLarge = errors.New("egress: response body larger than the limit")

// DialContext connects to addr ("host:port") only when a grant names that
// host and port (any scheme: the scheme is checked by Check, and by Client
// on every request). An IP literal must be granted exactly. A name is
// resolved once with the policy's Resolver; every address is checked
// (addrReason) and if any is refused the connection is refused. It then
// connects to the checked addresses in order, never to the name again, so
// a second DNS answer (rebinding) is never used. Only tcp, tcp4 and tcp6
// are supported. Refusals wrap ErrDenied; resolution and connection
// failures do not.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &DenyError{Reason: "network " + network + " is not allowed"}
	}
	rawHost, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &DenyError{Reason: "malformed address"}
	}
	port, err := parsePort(portStr)
	if err != nil {
		return nil, &DenyError{Reason: err.Error()}
	}
	name, ip, err := normalizeHost(rawHost, strings.IndexByte(rawHost, ':') >= 0)
	if err != nil {
		return nil, &DenyError{Reason: err.Error()}
	}
	o := Origin{Host: name, Port: port}
	if _, ok := p.match(o, ip.IsValid()); !ok {
		return nil, &DenyError{Origin: o.String(), Reason: "not granted"}
	}
	if ip.IsValid() {
		// Granted exactly: the one exception to the address rules.
		return p.dial(ctx, network, netip.AddrPortFrom(ip.Unmap(), uint16(port)).String())
	}
	answers, err := p.resolver.LookupIPAddr(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("egress: resolving %s: %w", o, err)
	}
	if len(answers) == 0 {
		return nil, fmt.Errorf("egress: resolving %s: no addresses", o)
	}
	checked := make([]netip.Addr, 0, len(answers))
	for _, ans := range answers {
		a, ok := netip.AddrFromSlice(ans.IP)
		if !ok {
			return nil, &DenyError{Origin: o.String(), Reason: "resolves to a malformed address"}
		}
		a = a.WithZone(ans.Zone)
		if r := addrReason(a); r != "" {
			return nil, &DenyError{Origin: o.String(), Reason: "resolves to a " + r + " address", Addr: a}
		}
		checked = append(checked, a.Unmap())
	}
	var firstErr error
	for _, a := range checked {
		if network == "tcp4" && !a.Is4() || network == "tcp6" && !a.Is6() {
			continue
		}
		c, err := p.dial(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("egress: %s has no %s address", o, network)
	}
	return nil, firstErr
}

// Client returns an HTTP client that reaches only what p allows: every
// request URL and every redirect target goes through Check, connections go
// through DialContext, at most MaxRedirects redirects are followed, no
// proxy is taken from the environment, and a response body larger than
// maxBody fails with ErrResponseTooLarge. timeout bounds the whole
// exchange including reading the body. Non-positive values mean
// DefaultTimeout and DefaultMaxBody.
//
// The request's headers belong to the caller and to the request's origin:
// once a redirect chain reaches another origin, every later hop (including
// one back to the first origin) carries only a few safe headers (Accept,
// Accept-Encoding, Accept-Language, Cache-Control, Content-Type,
// User-Agent), and no hop carries a Referer the caller did not set (see
// scrubRedirect). A caller that replaces CheckRedirect must call the one
// it replaces first, or it loses both the policy check and the scrubbing.
//
// Errors from the client's Do/Get are *url.Error values whose text contains
// the full request URL: show a function's author errors.Unwrap(err) (or the
// *DenyError), not err.Error(), since the URL may carry a credential.
func (p *Policy) Client(timeout time.Duration, maxBody int64) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	base := &http.Transport{
		Proxy:                  nil, // never from the environment
		DialContext:            p.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    min(timeout, dialTimeout),
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           16,
		MaxResponseHeaderBytes: maxResponseHeaders,
	}
	return &http.Client{
		Transport:     &transport{policy: p, base: base, maxBody: maxBody},
		CheckRedirect: p.checkRedirect,
		Timeout:       timeout,
	}
}

// checkRedirect is the Client's CheckRedirect: it bounds the chain, checks
// the hop's URL against the policy and then scrubs the hop's headers
// (scrubRedirect). net/http has already copied the first request's headers
// onto req and may have added a Referer; what checkRedirect leaves is what
// is sent.
func (p *Policy) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return fmt.Errorf("egress: stopped after %d redirects", MaxRedirects)
	}
	hop, err := p.Check(req.URL.String())
	if err != nil {
		return err
	}
	p.scrubRedirect(req, hop.Origin, via)
	return nil
}

// redirectSafe lists the request headers of the first request that still
// follow a redirect once the chain has left the first request's origin:
// content negotiation and the body's type, which name no credential and
// without which the answer could change shape. Every other header
// (Authorization, Cookie, X-Api-Key, any custom header) stays behind.
var redirectSafe = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Accept-Language": true,
	"Cache-Control": true, "Content-Type": true, "User-Agent": true,
}

// scrubRedirect decides which headers a redirect hop carries. The headers
// of the first request (via[0]) belong to the caller and were meant for the
// first request's origin (scheme, host and port), so every hop is compared
// with that origin, never with the previous hop:
//
//   - while every hop so far, req included, is on the first origin, req
//     keeps the caller's headers;
//   - from the first hop on another origin to the end of the chain, req
//     keeps only the redirectSafe headers, even on a hop that comes back to
//     the first origin (A → B → A): B chose that URL, and the caller's
//     credentials for A must not be spent on a request B picked;
//   - no hop carries a Referer that net/http made up (it names the previous
//     URL, path and query included); a Referer the caller set on the first
//     request follows like its other headers, only while the chain stays on
//     the first origin.
//
// A hop whose URL or first URL the policy cannot place counts as another
// origin.
func (p *Policy) scrubRedirect(req *http.Request, hop Origin, via []*http.Request) {
	first, err := p.Check(via[0].URL.String())
	home := err == nil && hop == first.Origin
	for _, v := range via[1:] {
		if !home {
			break
		}
		t, err := p.Check(v.URL.String())
		home = err == nil && t.Origin == first.Origin
	}
	if !home {
		for k := range req.Header {
			if !redirectSafe[http.CanonicalHeaderKey(k)] {
				delete(req.Header, k)
			}
		}
		return
	}
	if ref := via[0].Header.Values("Referer"); len(ref) > 0 {
		req.Header["Referer"] = slices.Clone(ref)
	} else {
		req.Header.Del("Referer")
	}
}

// transport checks every request before the base transport sees it and
// bounds every response body.
type transport struct {
	policy  *Policy
	base    *http.Transport
	maxBody int64
}

var _ http.RoundTripper = (*transport)(nil)

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	target, err := t.policy.Check(req.URL.String())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if req.Host != "" && !strings.EqualFold(strings.TrimSuffix(req.Host, "."), target.URL.Host) &&
		!strings.EqualFold(req.Host, req.URL.Host) {
		closeBody(req)
		return nil, &DenyError{Origin: target.Origin.String(), Reason: "the Host header does not match the URL"}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.maxBody {
		resp.Body.Close()
		return nil, ErrResponseTooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.maxBody}
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// limitedBody fails with ErrResponseTooLarge rather than truncating
// silently.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrResponseTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
