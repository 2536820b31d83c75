// Package manifest owns warden.yaml, the function manifest: its parsed form
// (Manifest and the types it holds) and the strict parser that produces it.
//
// Parse takes the bytes of one manifest and either returns a Manifest with
// every default filled in and every value checked, or reports every problem
// at once, each with the file, line, column and field path of the offending
// value (see Error and ErrorList). Unknown fields, wrong YAML types,
// duplicate keys and bad values are all errors: a manifest that parses
// means exactly what it says.
//
// The manifest is untrusted input (it arrives with a deploy request), so
// Parse refuses what a manifest never needs: more than MaxSize bytes,
// anchors and aliases, merge keys, tags, directives, several documents,
// deep nesting. It never panics.
//
// # Notes
//   - The package never touches the network and reads no file except in
//     ParseFile, a convenience that reads the one file it is given. Paths in
//     a manifest (artifact, schema) are relative to the manifest file;
//     ArtifactPath and SchemaPath resolve them, without reading them.
//   - A Manifest is immutable once returned and may be shared between
//     goroutines.
package manifest
