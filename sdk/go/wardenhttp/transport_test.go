package wardenhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	warden "warden/sdk/go"
)

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestRoundTrip(t *testing.T) {
	var gotMethod, gotURL string
	var gotHeader warden.Header
	var gotBody []byte
	fetch := func(method, url string, header warden.Header, body []byte) (*warden.Response, error) {
		gotMethod, gotURL, gotHeader, gotBody = method, url, header, body
		return &warden.Response{Status: 201, Header: warden.Header{{Name: "content-type", Value: "text/plain"}, {Name: "X-A", Value: "1"}, {Name: "X-A", Value: "2"}}, Body: []byte("made")}, nil
	}
	body := &closeTracker{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest("POST", "https://api.example.com/v1/things?x=1", body)
	req.Header.Set("X-B", "b")
	req.Header.Set("Accept", "text/plain")
	resp, err := roundTrip(req, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if gotMethod != "POST" || gotURL != "https://api.example.com/v1/things?x=1" || string(gotBody) != "payload" ||
		!slices.Equal(gotHeader, warden.Header{{Name: "Accept", Value: "text/plain"}, {Name: "X-B", Value: "b"}}) {
		t.Errorf("fetch got %s %s %v %q", gotMethod, gotURL, gotHeader, gotBody)
	}
	if !body.closed {
		t.Errorf("request body not closed")
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || resp.Status != "201 Created" || string(b) != "made" || resp.ContentLength != 4 ||
		resp.Header.Get("Content-Type") != "text/plain" || len(resp.Header.Values("X-A")) != 2 || resp.Request != req {
		t.Errorf("RoundTrip = %+v body %q", resp, b)
	}
}

func TestRoundTripErrors(t *testing.T) {
	denied := func(string, string, warden.Header, []byte) (*warden.Response, error) { return nil, warden.ErrDenied }
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("PUT", "https://example.com/", body)
	if _, err := roundTrip(req, denied); !errors.Is(err, warden.ErrDenied) || !body.closed {
		t.Errorf("roundTrip(denied) = %v, body closed %v; want ErrDenied and a closed body", err, body.closed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	req, _ = http.NewRequestWithContext(ctx, "GET", "https://example.com/", nil)
	if _, err := roundTrip(req, func(string, string, warden.Header, []byte) (*warden.Response, error) {
		called = true
		return nil, nil
	}); !errors.Is(err, context.Canceled) || called {
		t.Errorf("roundTrip(canceled) = %v (fetch called %v), want context.Canceled before the call", err, called)
	}
	req, _ = http.NewRequest("POST", "https://example.com/", io.LimitReader(zeros{}, maxRequestBody+1))
	if _, err := roundTrip(req, denied); err != warden.ErrTooLarge {
		t.Errorf("roundTrip(8 MiB + 1 body) = %v, want ErrTooLarge", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Natively there is no host: a client using Transport fails with
// ErrUnavailable, reachable with errors.Is through *url.Error.
func TestTransportNative(t *testing.T) {
	client := &http.Client{Transport: Transport{}}
	_, err := client.Get("https://example.com/")
	if !errors.Is(err, warden.ErrUnavailable) {
		t.Errorf("client.Get natively = %v, want ErrUnavailable", err)
	}
}
