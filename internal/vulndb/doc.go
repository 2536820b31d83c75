// Package vulndb owns warden's offline vulnerability database: it parses OSV
// advisories (Parse), reads the database the operator imports (Load) and
// matches the Go modules and toolchain version recovered from a deployed
// WebAssembly module against it (Index).
//
// Two sources are understood: the Go vulnerability database in the layout
// served at vuln.go.dev (index/db.json, index/modules.json,
// index/vulns.json and ID/GO-YYYY-NNNN.json), and plain OSV JSON files (one
// advisory each, any depth), either as a directory, a single file or a .zip
// of either. Only affected packages of ecosystem "Go" are kept; the standard
// library is the module "stdlib" and the go command is "toolchain".
//
// Matching follows golang.org/x/vuln: versions are compared as semantic
// versions (golang.org/x/mod/semver), a version is affected when it lies in
// [introduced, fixed), pseudo-versions compare as they are, Go toolchain
// versions ("go1.22rc1") are turned into semver ("v1.22.0-rc.1") by
// Normalize, and an affected package with no usable range affects every
// version.
//
// The database is untrusted input: Parse bounds the size of an entry and
// refuses malformed ones with an error that names the field; Load bounds the
// size of every file, of the whole import and the number of entries, never
// follows a symlink out of the directory it was given, refuses archives
// with unsafe member names, and reports a bad file without stopping the
// others. Nothing here ever panics on bad input.
//
// # Notes
//   - The package never touches the network and never writes a file: the
//     database is whatever the operator imported, as it was imported.
//   - An Entry, and an Index once built, are immutable and may be shared
//     between goroutines; callers must not modify an Entry they are given.
//   - Withdrawn advisories are loaded and counted but never matched.
package vulndb
