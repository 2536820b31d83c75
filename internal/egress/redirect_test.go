package egress

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"warden/internal/egress/egresstest"
)

// TestClientRedirectHeaders runs the redirect suite against Policy.Client
// with A and B granted exactly (loopback is reachable only that way).
func TestClientRedirectHeaders(t *testing.T) {
	r := egresstest.NewRedirector(t)
	c := mustPolicy(t, r.Origins()...).Client(5*time.Second, 1<<20)
	egresstest.RunRedirects(t, r, func(t *testing.T, method, url string, header http.Header, body []byte) (int, []byte, error) {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header = header
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	})
}
