// Package inspect owns the response inspection that every answer of a
// function passes before it leaves warden: public routes, the admin API's
// invoke, and later async results and published messages. It finds
// sensitive data (dlp's pattern detectors, per the route's dlp setting) and
// the exact values of the secrets the function holds, in any of the
// encodings dlp.EncodedForms lists, whatever the route's dlp setting says.
//
// inspect never passes an answer it could not check (fail closed), never
// puts a matched value in an event, a log line or an error, and never
// writes to the client: callers turn a Refusal into their own answer.
package inspect

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"warden/internal/dlp"
	"warden/internal/events"
)

// Modes of a route's dlp setting (manifest.Route.DLP).
const (
	ModeRedact = "redact" // patterns and secrets redacted in text; secrets in binary bodies or headers block
	ModeBlock  = "block"  // any finding refuses the answer
	ModeOff    = "off"    // the pattern detectors are off; the function's secrets are still checked
)

// Secrets gives the scanners that know a function's secret values;
// *capability.Host implements it.
type Secrets interface {
	// SecretScanners returns a scanner for the patterns and the exact
	// values, and one for the exact values only; both nil when the
	// function holds no secret. An error means the values could not be
	// read.
	SecretScanners(ctx context.Context) (full, exact *dlp.Scanner, err error)
}

// Function names the function whose answer is inspected.
type Function struct {
	Namespace, Name string
	Version         int
	// Secrets is nil when the function holds no secret grant.
	Secrets Secrets
}

// Origin describes the request an answer goes back to, for events.
type Origin struct {
	RequestID string
	SourceIP  string
	Actor     string // who asked (an operator for the admin invoke); "" for public callers
	Channel   string // how the answer leaves: "route", "admin invoke", ...
}

// Answer is what a function produced: a status, headers and a body. Body
// is replaced when redacted; Header is only read.
type Answer struct {
	Header http.Header
	Body   []byte
}

// Refusal says that an answer must not be passed, with the status and a
// detail safe to show the caller. Err is the internal cause, if any (never
// shown, never holding a value).
type Refusal struct {
	Status int
	Detail string
	Err    error
}

func (r *Refusal) Error() string { return r.Detail }
func (r *Refusal) Unwrap() error { return r.Err }

// Config configures an Inspector. Events is required: every finding is
// recorded, and an answer whose finding cannot be recorded is refused.
type Config struct {
	Events events.Checked
	Logger *slog.Logger
}

// Inspector checks answers. Safe for concurrent use.
type Inspector struct {
	events   events.Checked
	log      *slog.Logger
	patterns *dlp.Scanner
	nothing  *dlp.Scanner // finds nothing: dlp off for a function without secrets
}

// New returns an Inspector; it refuses a config without an event emitter,
// since every finding must be recorded.
func New(cfg Config) (*Inspector, error) {
	if cfg.Events == nil {
		return nil, errors.New("inspect: an event emitter is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Inspector{events: cfg.Events, log: log,
		patterns: dlp.New(dlp.Options{}), nothing: dlp.New(dlp.Options{ExactOnly: true})}, nil
}

// Check inspects a under mode (a route's dlp setting; "" is ModeRedact).
// It redacts a.Body in place of the caller (a.Body is replaced, never
// modified) or returns a Refusal: 502 when the answer held what mode or a
// secret forbids, 503 when the function's secrets could not be read to
// check it. Every finding is an event with kinds and counts, never a value.
//
// # Notes
//   - The exact values of the function's secrets are checked in every
//     mode, in text and binary bodies and in every response header. A
//     header or a binary body cannot be redacted safely, so a secret there
//     refuses the answer.
//   - Bodies of a textual media type (see Textual) are redacted; others
//     are only checked for the exact secret values.
func (in *Inspector) Check(ctx context.Context, fn Function, mode string, o Origin, a *Answer) *Refusal {
	if mode == "" {
		mode = ModeRedact
	}
	scanner, secrets := in.patterns, (*dlp.Scanner)(nil)
	if mode == ModeOff {
		scanner = in.nothing
	}
	if fn.Secrets != nil {
		full, exact, err := fn.Secrets.SecretScanners(ctx)
		if err != nil {
			in.log.Error("answer check failed: the function's secrets could not be read",
				"function", fn.Namespace+"/"+fn.Name, "request_id", o.RequestID, "err", err)
			in.emit(fn, o, events.OutcomeFailure, "answer not checked: secrets unavailable", nil)
			return &Refusal{Status: http.StatusServiceUnavailable, Detail: "the function's response could not be checked", Err: err}
		}
		if full != nil {
			secrets = exact
			if mode == ModeOff {
				scanner = exact
			} else {
				scanner = full
			}
		}
	}
	var (
		body  []byte
		found []dlp.Finding
	)
	checked := secrets != nil || mode != ModeOff
	switch {
	case secrets != nil && headerHoldsSecret(secrets, a.Header):
		found, mode = []dlp.Finding{{Kind: dlp.KindSecret, Count: 1}}, ModeBlock
	case len(a.Body) == 0:
		return nil
	case checked && encoded(a.Header):
		// A compressed or otherwise encoded body cannot be checked.
		in.emit(fn, o, events.OutcomeDenied, "blocked: an encoded body cannot be checked", map[string]string{"content_encoding": a.Header.Get("Content-Encoding")})
		return &Refusal{Status: http.StatusBadGateway, Detail: "the function's response has a Content-Encoding and cannot be checked"}
	case Textual(a.Header.Get("Content-Type")):
		body, found = scanner.Redact(a.Body)
	case mode == ModeBlock:
		found = scanner.Scan(a.Body) // binary, but block means any finding
	case secrets == nil:
		return nil
	default:
		if found = secrets.Scan(a.Body); len(found) > 0 {
			mode = ModeBlock
		}
	}
	if len(found) == 0 {
		return nil
	}
	kinds := make([]string, 0, len(found))
	labels := make(map[string]string, len(found)+1)
	for _, f := range found {
		labels["dlp."+string(f.Kind)] = strconv.Itoa(f.Count)
		kinds = append(kinds, string(f.Kind))
	}
	if mode == ModeBlock {
		if err := in.emit(fn, o, events.OutcomeDenied, "blocked: "+strings.Join(kinds, ", "), labels); err != nil {
			return unrecorded(err)
		}
		return &Refusal{Status: http.StatusBadGateway, Detail: "the function's response held sensitive data and was blocked"}
	}
	if err := in.emit(fn, o, events.OutcomeSuccess, "redacted "+strings.Join(kinds, ", "), labels); err != nil {
		return unrecorded(err)
	}
	a.Body = body
	return nil
}

// unrecorded refuses an answer whose finding could not be recorded.
func unrecorded(err error) *Refusal {
	return &Refusal{Status: http.StatusServiceUnavailable, Detail: "the response cannot be recorded right now (" + err.Error() + ")", Err: err}
}

// emit records a finding with a bounded wait; an error means it was not
// recorded.
func (in *Inspector) emit(fn Function, o Origin, outcome, reason string, labels map[string]string) error {
	if labels == nil {
		labels = map[string]string{}
	}
	if o.Channel != "" {
		labels["channel"] = o.Channel
	}
	return in.events.TryEmit(events.Event{Type: events.TypeDLP, Outcome: outcome, Reason: reason,
		Actor: o.Actor, SourceIP: o.SourceIP, RequestID: o.RequestID, Labels: labels,
		Namespace: fn.Namespace, Function: fn.Name, Version: fn.Version})
}

// encoded reports whether the body carries a Content-Encoding other than
// identity (gzip, br, ...), which no detector can see through.
func encoded(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		if !strings.EqualFold(strings.TrimSpace(v), "identity") && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// headerHoldsSecret reports whether a header name or value holds one of
// the exact secret values s knows.
func headerHoldsSecret(s *dlp.Scanner, h http.Header) bool {
	for k, vs := range h {
		if s.ContainsFold([]byte(k)) { // names are canonicalized: any case
			return true
		}
		for _, v := range vs {
			if len(s.Scan([]byte(v))) > 0 {
				return true
			}
		}
	}
	return false
}

// Textual reports whether a body of this media type is redacted: text,
// JSON, XML, form data, JavaScript, NDJSON, and bodies that name no type.
// Other bodies would be corrupted by redaction, so they are only checked.
func Textual(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	switch {
	case mt == "", strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"),
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/x-www-form-urlencoded", mt == "application/javascript", mt == "application/x-ndjson":
		return true
	}
	return false
}
