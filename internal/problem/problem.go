// Package problem writes error answers as RFC 9457 problem details
// (application/problem+json) with the request id, on both listeners.
//
// What a client sees is written here from a status, a title and a detail
// chosen by warden's code; an internal cause (a Go error, a guest's output)
// is never copied into a problem, so nothing secret can leak through one.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"

	"warden/internal/reqid"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem document with warden's extensions.
type Details struct {
	Type      string   `json:"type"`
	Title     string   `json:"title"`
	Status    int      `json:"status"`
	Detail    string   `json:"detail,omitempty"`
	Instance  string   `json:"instance,omitempty"`
	RequestID string   `json:"requestId,omitempty"`
	Errors    []string `json:"errors,omitempty"` // individual problems, e.g. each manifest error
	Step      string   `json:"step,omitempty"`   // the deploy pipeline's step that refused a deploy
}

// Write sends a problem with status, a short title and a detail. The request
// id comes from r's context.
func Write(w http.ResponseWriter, r *http.Request, status int, detail string) {
	WriteDetails(w, r, Details{Status: status, Detail: detail})
}

// WriteDetails sends d, filling Type, Title, Instance and RequestID when empty.
// Instance is the request's path, percent-encoded (a URI reference, RFC 9457
// §3.1.5). A problem is an error answer: a status outside 400–599 (zero, a
// success, a redirect, an informational or invalid code) is sent as 500.
func WriteDetails(w http.ResponseWriter, r *http.Request, d Details) {
	if d.Status < 400 || d.Status > 599 {
		d.Status = http.StatusInternalServerError
	}
	if d.Title == "" {
		d.Title = http.StatusText(d.Status)
	}
	if d.Type == "" {
		d.Type = "about:blank"
	}
	if d.RequestID == "" {
		d.RequestID = reqid.From(r.Context())
	}
	if d.Instance == "" && r.URL != nil {
		d.Instance = r.URL.EscapedPath()
	}
	body, err := json.Marshal(d)
	if err != nil { // cannot happen for this type
		body = []byte(`{"title":"Internal Server Error","status":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Encoding")
	w.WriteHeader(d.Status)
	w.Write(append(body, '\n'))
}
