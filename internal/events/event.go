// Package events owns warden's security event model (Event, its types,
// outcomes and retention classes) and its delivery: producers depend on the
// small Emitter interface (Checked when they can fail closed), an Aggregator
// folds repeated refusals into one counted event, and a Recorder batches
// events asynchronously into a durable Sink (the store) without losing any
// on a clean shutdown and without ever making a producer wait unboundedly.
//
// events never holds secrets: an Event carries no token, password, key or
// request body, and neither do this package's log lines or errors, which
// never include event contents.
package events

import "time"

// Outcome of the decision an event records.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// Event types emitted by the platform core. Later subsystems add their own;
// a type is "<area>.<action>".
const (
	TypeAdminAuth           = "admin.auth"        // every admin API authentication attempt
	TypeFunctionDeploy      = "function.deploy"   // a deploy, accepted or refused
	TypeFunctionRollback    = "function.rollback" // an activation of an earlier version
	TypeFunctionDelete      = "function.delete"
	TypeFunctionLoad        = "function.load"      // a node could not serve the version the store names as active
	TypeLimitMemory         = "limit.memory"       // a guest hit its memory ceiling
	TypeLimitTimeout        = "limit.timeout"      // a guest ran past its deadline
	TypeLimitConcurrency    = "limit.concurrency"  // an invocation refused: too many in flight
	TypeLimitRate           = "limit.rate"         // a rate limit refused a client (once per client per minute)
	TypeLimitConnections    = "limit.connections"  // connections refused: too many from one address (once per minute)
	TypeRateLimitBackend    = "ratelimit.backend"  // the shared limiter became unreachable (failure) or came back (success)
	TypeLimitRequestBody    = "limit.request_body" // a request body over the limit
	TypeLimitResponse       = "limit.response_body"
	TypeFunctionTrap        = "function.trap"        // a guest trapped, panicked or exited abnormally
	TypeFunctionQuarantined = "function.quarantined" // a request refused: its function is quarantined by its policy
	TypeRouteAuth           = "route.auth"           // a function route refused or accepted a caller
	TypeAPIKeyCreate        = "apikey.create"        // an API key was issued
	TypeAPIKeyRevoke        = "apikey.revoke"        // an API key was revoked
	TypeDLP                 = "dlp.response"         // a response held sensitive data: redacted (success) or blocked (denied)
	TypeRequestInvalid      = "request.invalid"      // a body refused by the route's schema or content type
	TypeIssuerAdd           = "issuer.add"           // a trusted JWT issuer was added
	TypeIssuerRemove        = "issuer.remove"        // a trusted JWT issuer was removed
	TypeEventsPrune         = "events.prune"         // retention deleted stored events: counts and id ranges per class
	TypeEventsDropped       = "events.dropped"       // the recorder dropped events it could not queue in time: their number
)

// Event is one security-relevant decision. Field names follow the Elastic
// Common Schema where one fits, so events can be shipped to a SIEM as they are.
//
// # Notes
//   - An Event never holds a secret, a token, a password or a request body.
//     Reason is written by warden's own code, never copied from user input
//     that could carry a credential.
//   - ID is assigned by the store when the event is persisted; it is strictly
//     increasing in the order events were stored.
type Event struct {
	ID        int64             `json:"event.id,omitempty"`
	Time      time.Time         `json:"@timestamp"`
	Type      string            `json:"event.action"`
	Outcome   string            `json:"event.outcome"`
	Reason    string            `json:"event.reason,omitempty"`
	Actor     string            `json:"user.name,omitempty"`
	SourceIP  string            `json:"source.ip,omitempty"`
	Namespace string            `json:"function.namespace,omitempty"`
	Function  string            `json:"function.name,omitempty"`
	Version   int               `json:"function.version,omitempty"`
	RequestID string            `json:"http.request.id,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}
