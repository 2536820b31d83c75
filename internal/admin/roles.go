package admin

import (
	"slices"

	"warden/internal/auth"
)

// Permissions a route can require. A role is a set of permissions; the
// bootstrap admin token holds the admin role.
const (
	PermRead        = "functions:read"   // list and describe functions
	PermDeploy      = "functions:deploy" // deploy and roll back
	PermDelete      = "functions:delete"
	PermInvoke      = "functions:invoke"
	PermEvents      = "events:read"
	PermMetadata    = "api:read" // health, the OpenAPI document, unknown paths (404)
	PermKeys        = "keys:manage"
	PermUsers       = "users:manage"   // create, list and delete users; reset anyone's TOTP
	PermMFA         = "account:mfa"    // enroll TOTP: one's own, or anyone's with PermUsers
	PermTokens      = "tokens:manage"  // revoke the bootstrap token
	PermIssuers     = "issuers:manage" // add, list and remove trusted JWT issuers
	PermSecrets     = "secrets:manage" // create, rotate and destroy secrets; rotate the master key
	PermSecretsRead = "secrets:list"   // secret names, versions and grants, never values; master key status
	PermKV          = "kv:manage"      // read and write function KV buckets
	PermAccess      = "access:review"  // grant usage reviews and egress summaries
	// PermTrust trusts and revokes signing keys and sets signing modes: a
	// trusted key's signature stands in for grants:approve on new code,
	// so only the admin role holds it.
	PermTrust = "trust:manage"
	// PermPolicy sets and removes namespaces' deploy policies; PermVulnDB
	// imports vulnerability advisories. Both change what deploys pass, so
	// only the admin role holds them.
	PermPolicy = "policy:manage"
	PermVulnDB = "vulndb:import"
	// PermGrant is not a route's permission: a deploy or rollback that
	// widens a function (grants its active version does not hold, relaxed
	// route or WAF protection, new code, env or routes for a function that
	// holds secrets) needs it besides functions:deploy.
	PermGrant = "grants:approve"
	// PermPublic marks the routes served without a credential
	// (POST /v1/login and GET /healthz). No role holds it; the guard does
	// not authenticate them.
	PermPublic = "public"
)

// roleSpec is what a role may do.
type roleSpec struct {
	perms []string
	mfa   bool // logging in requires an enrolled TOTP
}

// roles is the role table. Every admin route declares one permission; a
// role may call the routes whose permission it holds.
//
//	admin     everything; MFA required (the only role that sets, rotates
//	          or destroys secrets and reads or writes KV values)
//	deployer  deploy, roll back, read and invoke functions (keeping or
//	          narrowing their grants and protection, never widening them,
//	          and new code only for functions holding no secret); list
//	          secrets
//	auditor   the event log, read-only function metadata, secret listings,
//	          access reviews and egress summaries
//	viewer    read-only function metadata
//
// Every role may read API metadata and enroll its own TOTP.
var roles = map[string]roleSpec{
	auth.RoleAdmin: {mfa: true, perms: []string{PermRead, PermDeploy, PermDelete, PermInvoke, PermEvents,
		PermMetadata, PermKeys, PermUsers, PermMFA, PermTokens, PermIssuers, PermSecrets, PermSecretsRead, PermKV, PermAccess, PermGrant, PermTrust, PermPolicy, PermVulnDB}},
	auth.RoleDeployer: {perms: []string{PermRead, PermDeploy, PermInvoke, PermMetadata, PermMFA, PermSecretsRead}},
	auth.RoleAuditor:  {perms: []string{PermRead, PermEvents, PermMetadata, PermMFA, PermSecretsRead, PermAccess}},
	auth.RoleViewer:   {perms: []string{PermRead, PermMetadata, PermMFA}},
}

// Roles returns the role names, sorted.
func Roles() []string {
	var out []string
	for r := range roles {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// RoleAllows reports whether role holds perm. Unknown roles hold nothing,
// and nobody holds PermPublic.
func RoleAllows(role, perm string) bool {
	return slices.Contains(roles[role].perms, perm)
}

// RequiresMFA reports whether a role must present a TOTP code to log in.
// An unknown role requires it (fail closed).
func RequiresMFA(role string) bool {
	spec, ok := roles[role]
	return !ok || spec.mfa
}

func allowed(role, perm string) bool { return RoleAllows(role, perm) }
