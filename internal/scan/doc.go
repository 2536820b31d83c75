// Package scan analyses a function's WebAssembly module and manifest before
// deploy (and offline, for `warden scan`) and reports findings: imports and
// exports that do not match the manifest's grants and ABI, credentials
// embedded in the module or the manifest, the Go toolchain and modules the
// module was built from (and a CycloneDX SBOM of them), and risky manifest
// settings.
//
// Scan only analyses: it never stores a report, never refuses a deploy
// (the deploy pipeline's policy step decides what blocks) and never runs
// the module. It reads only the bytes it is given: no file, no network.
//
// # Notes
//   - A Finding's Message and Location never contain a credential or any
//     excerpt of the bytes a credential rule matched; they are safe to show,
//     log and store. Names read from the module (imports, exports) are
//     quoted and shortened when they are not plain identifiers.
//   - Scan returns an error only for a module that is not a well-formed
//     WebAssembly binary (ErrMalformed); everything else, including a
//     failure of the credential scanner, is a finding, so that a policy
//     can fail closed on it.
//   - Scan is safe for concurrent use; credential detection (gitleaks,
//     which keeps global state) is serialized inside the package. On first
//     use the package silences gitleaks' global logger (it logs matched
//     secrets at trace level) and loads its rules through viper's global
//     instance; nothing else in warden may rely on either.
package scan
