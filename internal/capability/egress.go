package capability

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"

	"warden/internal/egress"
	"warden/internal/events"
	"warden/internal/sandbox"
	"warden/internal/store"
)

// Request headers a guest may not set: the host owns framing, routing and
// connection management.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
}

// HTTP implements sandbox.Host: the host performs the request on the
// guest's behalf through the function's egress policy (granted origins
// only, every resolved address checked, redirects re-checked, time and size
// bounded) and records it.
func (h *Host) HTTP(ctx context.Context, inv sandbox.Invocation, req *sandbox.HTTPRequest) (*sandbox.HTTPResponse, error) {
	if h.policy == nil {
		return nil, h.deny(inv, "egress.http", originOf(req.URL), "no egress granted")
	}
	target, err := h.policy.Check(req.URL)
	if err != nil {
		var de *egress.DenyError
		origin := ""
		if errors.As(err, &de) {
			origin = de.Origin
		}
		return nil, h.deny(inv, "egress.http", origin, denyReason(err))
	}
	grant := h.egressGrants[target.Grant.String()]
	origin := target.Origin.String()
	start := h.svc.cfg.Now()

	hreq, err := http.NewRequestWithContext(ctx, req.Method, target.URL.String(), bytes.NewReader(req.Body))
	if err != nil {
		return nil, sandbox.ErrInvalid
	}
	for k, vs := range req.Header {
		ck := http.CanonicalHeaderKey(k)
		if hopHeaders[ck] {
			continue
		}
		for _, v := range vs {
			hreq.Header.Add(ck, v)
		}
	}
	if hreq.Header.Get("User-Agent") == "" {
		hreq.Header.Set("User-Agent", "warden-egress")
	}
	resp, err := h.client.Do(hreq)
	var (
		status int
		body   []byte
		hdr    http.Header
	)
	if err == nil {
		status, hdr = resp.StatusCode, resp.Header
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	d := h.svc.cfg.Now().Sub(start)
	h.use(store.GrantEgress, grant, store.ModeUse)
	code := classify(ctx, err)
	failed := err != nil || status >= 500
	h.svc.tracker.egressCall(egressKey{h.ns, h.name, origin}, h.svc.cfg.Now(), failed, int64(len(req.Body)), int64(len(body)), d)
	outcome, reason := events.OutcomeSuccess, ""
	if err != nil {
		outcome, reason = events.OutcomeFailure, code.Error()
		if errors.Is(code, sandbox.ErrDenied) {
			outcome, reason = events.OutcomeDenied, denyReason(err)
		}
	}
	h.svc.cfg.Events.Emit(events.Event{
		Type: TypeEgressRequest, Outcome: outcome, Reason: reason,
		Namespace: h.ns, Function: h.name, Version: h.version, RequestID: inv.RequestID,
		Labels: map[string]string{
			"origin": origin, "method": req.Method, "status": strconv.Itoa(status),
			"bytes_out": strconv.Itoa(len(req.Body)), "bytes_in": strconv.Itoa(len(body)),
			"duration_ms": strconv.FormatInt(d.Milliseconds(), 10),
		},
	})
	if err != nil {
		if errors.Is(code, sandbox.ErrDenied) {
			// A redirect to an origin that is not granted, or a name that
			// resolved to a refused address: a denial like any other.
			var de *egress.DenyError
			target := origin
			if errors.As(err, &de) && de.Origin != "" {
				target = de.Origin
			}
			return nil, h.deny(inv, "egress.http", target, denyReason(err))
		}
		return nil, code
	}
	return &sandbox.HTTPResponse{Status: status, Header: hdr, Body: body}, nil
}

// classify maps an outbound failure to the sandbox error the guest sees.
func classify(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, egress.ErrDenied):
		return sandbox.ErrDenied
	case errors.Is(err, egress.ErrResponseTooLarge):
		return sandbox.ErrTooLarge
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
		return sandbox.ErrTimeout
	default:
		return sandbox.ErrNetwork
	}
}

// denyReason is the egress package's refusal text, which names at most an
// origin and never a path, query or user info.
func denyReason(err error) string {
	var de *egress.DenyError
	if errors.As(err, &de) {
		return de.Reason
	}
	return "refused"
}

// noGrants refuses every URL; its refusals name the URL's origin.
var noGrants, _ = egress.NewPolicy(nil)

// originOf returns scheme://host of a URL for an event, or "" when it does
// not parse; never its path or user info.
func originOf(raw string) string {
	_, err := noGrants.Check(raw)
	var de *egress.DenyError
	if errors.As(err, &de) {
		return de.Origin
	}
	return ""
}
