package wardenhttp

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"

	warden "warden/sdk/go"
)

// maxRequestBody bounds the body Transport reads from a request: the host
// refuses an encoded request over 8 MiB anyway.
const maxRequestBody = 8 << 20

// Transport is an http.RoundTripper that sends requests through warden's
// egress capability (warden.Fetch, the http_request host call), so a
// function can use a normal client:
//
//	client := &http.Client{Transport: wardenhttp.Transport{}}
//	resp, err := client.Get("https://api.example.com/v1/things")
//
// The manifest must grant each destination's origin in
// permissions.egress. Errors are the warden capability errors
// (warden.ErrDenied, warden.ErrTimeout, warden.ErrNetwork, …), wrapped by
// http.Client in a *url.Error, so errors.Is works on them.
//
// # Notes
//   - The call blocks until the host has the whole response: the response
//     body is already in memory (at most 8 MiB) and Body.Close is free.
//   - Request.Host is ignored (the URL's host is the destination); the
//     request body is read whole (at most 8 MiB, else warden.ErrTooLarge).
//   - The request's context is checked before the call; it cannot cut a
//     call short. The host bounds each call with its own timeout and the
//     invocation's deadline.
//   - Without WebAssembly (native tests) every request fails with
//     warden.ErrUnavailable.
type Transport struct{}

var _ http.RoundTripper = Transport{}

// RoundTrip implements http.RoundTripper.
func (Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return roundTrip(req, warden.Fetch)
}

type fetchFunc func(method, url string, header warden.Header, body []byte) (*warden.Response, error)

func roundTrip(req *http.Request, fetch fetchFunc) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close() // a RoundTripper closes the body, even on error
	}
	if req.URL == nil {
		return nil, errors.New("wardenhttp: request has no URL")
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxRequestBody {
			return nil, warden.ErrTooLarge
		}
		body = b
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	n := 0
	for _, vs := range req.Header {
		n += len(vs)
	}
	hdr := make(warden.Header, 0, n)
	for _, k := range slices.Sorted(maps.Keys(req.Header)) {
		for _, v := range req.Header[k] {
			hdr = append(hdr, warden.Field{Name: k, Value: v})
		}
	}
	resp, err := fetch(method, req.URL.String(), hdr, body)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(resp.Header))
	for _, f := range resp.Header {
		k := http.CanonicalHeaderKey(f.Name)
		h[k] = append(h[k], f.Value)
	}
	status := strconv.Itoa(resp.Status)
	if text := http.StatusText(resp.Status); text != "" {
		status += " " + text
	}
	return &http.Response{
		Status:        status,
		StatusCode:    resp.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(resp.Body)),
		ContentLength: int64(len(resp.Body)),
		Request:       req,
	}, nil
}
