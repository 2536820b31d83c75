package capability

import (
	"net/http"
	"testing"

	"warden/internal/egress/egresstest"
	"warden/internal/manifest"
	"warden/internal/sandbox"
)

// TestHostEgressRedirectHeaders runs the redirect suite through the
// http_request capability, as a guest calls it: the guest's credentials for
// A never reach B, however many hops and however the chain goes back and
// forth.
func TestHostEgressRedirectHeaders(t *testing.T) {
	r := egresstest.NewRedirector(t)
	hf := newHost(t, manifest.Permissions{Egress: r.Origins()}, nil)
	egresstest.RunRedirects(t, r, func(t *testing.T, method, url string, header http.Header, body []byte) (int, []byte, error) {
		resp, err := hf.h.HTTP(ctxT(t), hf.inv, &sandbox.HTTPRequest{Method: method, URL: url, Header: header, Body: body})
		if err != nil {
			return 0, nil, err
		}
		return resp.Status, resp.Body, nil
	})
}
