// Package wardenhttp adapts a net/http.Handler to a warden reactor
// function, and provides Transport, an http.RoundTripper that sends a
// function's outbound requests through warden's egress capability. It is
// separate from package warden so that functions that do not need net/http
// do not link it (it roughly doubles a module's size and its instantiation
// time).
package wardenhttp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"

	warden "warden/sdk/go"
)

// HandleHTTP registers h as the function's handler (see warden.Handle).
// Call it from init. The handler runs synchronously; it must not keep the
// ResponseWriter or the request body after it returns.
func HandleHTTP(h http.Handler) { warden.Handle(Adapt(h)) }

// Adapt converts h to a warden.HandlerFunc. Useful to test handlers.
func Adapt(h http.Handler) warden.HandlerFunc {
	return func(r *warden.Request) *warden.Response {
		req := Request(context.Background(), r)
		w := &responseWriter{header: make(http.Header)}
		h.ServeHTTP(w, req)
		status := w.status
		if status == 0 {
			status = http.StatusOK
		}
		if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
			w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
		}
		var hdr warden.Header
		for k, vs := range w.header {
			for _, v := range vs {
				hdr = append(hdr, warden.Field{Name: k, Value: v})
			}
		}
		return &warden.Response{Status: status, Header: hdr, Body: w.body.Bytes()}
	}
}

// Request converts r to an *http.Request (server side, as net/http would
// pass it to a handler). The warden request id is in the X-Request-Id
// header; Vars are not carried over (read them from r).
func Request(ctx context.Context, r *warden.Request) *http.Request {
	uri := r.Path
	if r.Query != "" {
		uri += "?" + r.Query
	}
	hdr := make(http.Header, len(r.Header)+1)
	for _, f := range r.Header {
		hdr[f.Name] = append(hdr[f.Name], f.Value)
	}
	if r.RequestID != "" {
		// warden's id, never one a caller sent.
		hdr.Set("X-Request-Id", r.RequestID)
	}
	req := &http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: r.Scheme, Host: r.Host, Path: r.Path, RawQuery: r.Query},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		Body:          io.NopCloser(bytes.NewReader(r.Body)),
		ContentLength: int64(len(r.Body)),
		Host:          r.Host,
		RemoteAddr:    r.RemoteAddr,
		RequestURI:    uri,
	}
	if len(r.Body) == 0 {
		req.Body = http.NoBody
	}
	return req.WithContext(ctx)
}

type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
