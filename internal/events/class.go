package events

import "strings"

// Class is an event type's retention class: how long the store keeps it and
// which events go first when the log is over its size bound.
type Class string

// Retention classes.
const (
	// ClassRequest: a decision about one request or one invocation
	// (refusals, limits, traps, capability denials, response inspection,
	// outbound calls). Many, cheap to lose after a while; kept for the
	// shorter retention (default 30 days) and pruned first when the log
	// is over its size bound. Only these may be aggregated.
	ClassRequest Class = "request"
	// ClassAudit: everything else, the audit trail: admin authentication
	// and actions, deploys, rollbacks, grant and key changes, secret reads,
	// user, API key and issuer changes, the master key, and the records of
	// pruning and dropping events. Kept for the longer retention (default
	// 400 days), pruned by size only once no request-class event is left,
	// and never aggregated.
	ClassAudit Class = "audit"
)

// requestTypes are the request-class types other than the limit.* family.
// Types defined in other packages are written out: events imports none of
// them.
var requestTypes = map[string]bool{
	TypeRouteAuth:           true,
	TypeRequestInvalid:      true,
	TypeFunctionTrap:        true,
	TypeFunctionQuarantined: true,
	TypeDLP:                 true,
	"capability.denied":     true, // capability.TypeDenied
	"egress.request":        true, // capability.TypeEgressRequest
}

// requestPrefixes are type families that are request-class as a whole.
var requestPrefixes = []string{"limit."}

// ClassOf returns the retention class of an event type. Unknown types are
// ClassAudit: a type added later is kept long and never aggregated until
// it is classified here on purpose.
//
// # Notes
//   - The store records the class when it stores an event, so a later
//     change to this table never moves an event already stored into a
//     shorter retention.
func ClassOf(typ string) Class {
	if requestTypes[typ] {
		return ClassRequest
	}
	for _, p := range requestPrefixes {
		if strings.HasPrefix(typ, p) {
			return ClassRequest
		}
	}
	return ClassAudit
}
