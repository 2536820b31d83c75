# A development policy: warden's built-in policy without its two-person
# rule, so that one operator can deploy functions that add egress or secret
# grants (the grants:approve check still applies). `make run` sets it on
# namespace default, and the test suites use it where they are not testing
# approvals. Production namespaces keep the built-in policy (warden policy
# rm NAMESPACE restores it), or a policy of their own.
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
