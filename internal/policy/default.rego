# Warden's built-in deploy policy.
#
# Warden evaluates this policy at every deploy to a namespace that has not set
# its own with `warden policy set NAMESPACE FILE.rego`. Copy it as a starting
# point for yours; `warden policy test FILE.rego --input deploy.json` shows
# what it decides for a given deploy.
#
# The contract:
#   - The module is `package warden.deploy`, in Rego v1 syntax.
#   - `deny` is a set of strings. Each element is a reason to refuse the
#     deploy; the deploy goes ahead only when the set is empty.
#   - `approve` (optional) is a set of strings. Each element is a reason a
#     second person holding grants:approve must approve the deploy.
#   - `remediation` (optional) is "notify" (the default), "quarantine" or
#     "rollback": what happens to an active version this policy denies when
#     it is evaluated again after a vulnerability import or a policy change.
#   - `input` is the deploy: namespace, function, version, previous, manifest,
#     findings, signer, diff, actor and time (see the policy package's Input).
#     A reference to a field that does not exist is a compile error.
#   - The policy fails closed: if it errors while evaluating (a builtin given
#     the wrong type, a division by zero) or runs past its time budget, the
#     deploy is refused.
#   - Policies cannot reach outside: http.send, net.lookup_ip_addr,
#     opa.runtime and the JSON-schema builtins are not available, `print` is
#     discarded, and only rules of this package can be read from `data`.
package warden.deploy

# Severities that block a deploy when a fix exists.
#
# A vulnerability without a severity is treated as "high": the Go
# vulnerability database, the main source of findings, usually records none,
# and an unknown risk with a known fix should be fixed rather than shipped.
blocking_severities := {"critical", "high", ""}

# 1. A known vulnerability of high or critical severity that has a fix.
#
# A vulnerability with no fix known does not block: there is nothing to
# upgrade to. Medium and low do not block either; write your own rule if
# they should.
deny contains msg if {
	some f in input.findings
	f.kind == "vulnerability"
	f.severity in blocking_severities
	f.fixed != ""
	msg := sprintf("%s%s in %s %s: %s, fixed in %s", [
		f.rule, alias_note(f), f.module, f.version,
		severity_note(f), f.fixed,
	])
}

# 2. A credential embedded in the artifact, whatever its severity.
deny contains msg if {
	some f in input.findings
	f.kind == "credential"
	msg := sprintf("embedded credential: %s%s", [f.rule, location_note(f)])
}

# 3. A namespace in signing mode "enforce" accepts only artifacts signed by
# one of its trusted keys. ("warn" records an unsigned deploy but allows it.)
deny contains msg if {
	input.signer.mode == "enforce"
	input.signer.status != "verified"
	msg := sprintf("namespace requires a signature by a trusted key; the artifact is %s", [input.signer.status])
}

# 4. Two-person rule: a deploy that reaches somewhere new, or reads secrets it
# did not read before, needs a second person's approval.
approve contains msg if {
	count(input.diff.addedEgress) > 0
	msg := sprintf("adds egress to %s", [concat(", ", sort(input.diff.addedEgress))])
}

approve contains msg if {
	count(input.diff.addedSecrets) > 0
	msg := sprintf("adds secret grants: %s", [concat(", ", sort(input.diff.addedSecrets))])
}

# 5. When an active version no longer passes (a vulnerability database
# import, a policy change), its routes answer 503 until it passes again or
# a version that passes replaces it. "notify" only records it; "rollback"
# activates the newest earlier version that passes.
remediation := "quarantine"

# Helpers for the messages.

# " (CVE-2023-44487)" when the finding has aliases, else "".
alias_note(f) := sprintf(" (%s)", [concat(", ", f.aliases)]) if {
	count(f.aliases) > 0
} else := ""

severity_note(f) := f.severity if {
	f.severity != ""
} else := "severity unknown, treated as high"

# " at data segment 2 +0x40" when the finding has a location, else "".
location_note(f) := sprintf(" at %s", [f.location]) if {
	f.location != ""
} else := ""
