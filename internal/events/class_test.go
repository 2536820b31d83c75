package events

import "testing"

func TestClassOf(t *testing.T) {
	tests := []struct {
		typ  string
		want Class
	}{
		// Per-request decisions.
		{TypeRouteAuth, ClassRequest},
		{TypeRequestInvalid, ClassRequest},
		{TypeFunctionTrap, ClassRequest},
		{TypeFunctionQuarantined, ClassRequest},
		{TypeDLP, ClassRequest},
		{TypeLimitMemory, ClassRequest},
		{TypeLimitTimeout, ClassRequest},
		{TypeLimitConcurrency, ClassRequest},
		{TypeLimitRate, ClassRequest},
		{TypeLimitConnections, ClassRequest},
		{TypeLimitRequestBody, ClassRequest},
		{TypeLimitResponse, ClassRequest},
		{"limit.something_new", ClassRequest},
		{"capability.denied", ClassRequest},
		{"egress.request", ClassRequest},
		// The audit trail.
		{TypeAdminAuth, ClassAudit},
		{TypeFunctionDeploy, ClassAudit},
		{TypeFunctionRollback, ClassAudit},
		{TypeFunctionDelete, ClassAudit},
		{TypeAPIKeyCreate, ClassAudit},
		{TypeAPIKeyRevoke, ClassAudit},
		{TypeIssuerAdd, ClassAudit},
		{TypeIssuerRemove, ClassAudit},
		{TypeRateLimitBackend, ClassAudit},
		{TypeEventsPrune, ClassAudit},
		{TypeEventsDropped, ClassAudit},
		{"secret.read", ClassAudit},
		{"secret.create", ClassAudit},
		{"secret.rotate", ClassAudit},
		{"secret.delete", ClassAudit},
		{"secret.destroy", ClassAudit},
		{"kv.write", ClassAudit},
		{"masterkey.rotate", ClassAudit},
		{"masterkey.rewrap", ClassAudit},
		{"user.create", ClassAudit},
		{"user.delete", ClassAudit},
		{"user.login", ClassAudit},
		{"user.mfa_enroll", ClassAudit},
		{"user.mfa_reset", ClassAudit},
		{"token.revoke", ClassAudit},
		// Unknown types are kept long until classified on purpose; near
		// misses of request types are not request types.
		{"", ClassAudit},
		{"grant.approve", ClassAudit},
		{"limit", ClassAudit},
		{"limits.rate", ClassAudit},
		{"route.auth.extra", ClassAudit},
		{"Route.auth", ClassAudit},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			if got := ClassOf(tc.typ); got != tc.want {
				t.Errorf("ClassOf(%q) = %q, want %q", tc.typ, got, tc.want)
			}
		})
	}
}
