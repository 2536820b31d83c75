package scan

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"golang.org/x/mod/module"
)

// sbomSpec is the CycloneDX version SBOM writes: the newest cyclonedx-go
// v0.12 writes.
const sbomSpec = cdx.SpecVersion1_7

// sbomNamespace is the UUID namespace of SBOM serial numbers (a random
// constant: changing it changes every serial number).
var sbomNamespace = [16]byte{0x5e, 0x0b, 0x8c, 0x1d, 0x2f, 0x4a, 0x4e, 0x61, 0x9b, 0x37, 0x0c, 0xd2, 0x7a, 0x43, 0x90, 0x15}

// SBOM returns a CycloneDX JSON BOM of the scanned artifact: the function
// as the metadata component (name "namespace/name", version, the artifact's
// SHA-256), the Go main module and each dependency as a library component
// with a purl (pkg:golang/PATH@VERSION), the Go toolchain as the component
// "stdlib" (pkg:golang/stdlib@GOVERSION), and a dependency graph from the
// function to each of them. artifactDigest is the artifact's SHA-256, as
// 64 hex digits with or without a "sha256:" prefix.
//
// # Notes
//   - The output is a function of the arguments alone: the serial number
//     is a name-based UUID of namespace, name, version, artifactDigest and
//     at, and the timestamp is at in UTC.
//   - A module without a version or whose path is not a module path (a
//     directory replacement) is listed without a purl.
//   - SBOM does not modify r.
func SBOM(r *Report, namespace, name, version, artifactDigest string, at time.Time) ([]byte, error) {
	if r == nil {
		return nil, errors.New("sbom: no report")
	}
	if namespace == "" || name == "" {
		return nil, errors.New("sbom: the function's namespace and name are required")
	}
	digest := strings.ToLower(strings.TrimPrefix(artifactDigest, "sha256:"))
	if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 {
		return nil, fmt.Errorf("sbom: artifact digest %q is not a SHA-256 (64 hex digits)", artifactDigest)
	}
	stamp := at.UTC().Format(time.RFC3339Nano)

	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + nameUUID(namespace+"/"+name+"\x00"+version+"\x00"+digest+"\x00"+stamp)
	root := "function:" + namespace + "/" + name
	if version != "" {
		root += "@" + version
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: at.UTC().Format(time.RFC3339),
		Component: &cdx.Component{
			BOMRef:  root,
			Type:    cdx.ComponentTypeApplication,
			Name:    namespace + "/" + name,
			Version: version,
			Hashes:  &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: digest}},
		},
	}
	var comps []cdx.Component
	var refs []string
	addComp := func(c cdx.Component) {
		if c.BOMRef == "" {
			c.BOMRef = "module:" + c.Name + "@" + c.Version
		}
		for _, have := range refs {
			if have == c.BOMRef {
				return // a module listed twice
			}
		}
		comps = append(comps, c)
		refs = append(refs, c.BOMRef)
	}
	if r.Main != nil {
		addComp(goComponent(*r.Main))
	}
	if r.GoVersion != "" {
		purl := "pkg:golang/stdlib@" + purlEscape(r.GoVersion)
		addComp(cdx.Component{BOMRef: purl, Type: cdx.ComponentTypeLibrary, Name: "stdlib", Version: r.GoVersion, PackageURL: purl})
	}
	for _, m := range r.Modules {
		addComp(goComponent(m))
	}
	if len(comps) > 0 {
		bom.Components = &comps
	}
	bom.Dependencies = &[]cdx.Dependency{{Ref: root, Dependencies: &refs}}

	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	if err := enc.EncodeVersion(bom, sbomSpec); err != nil {
		return nil, fmt.Errorf("sbom: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// goComponent is a Go module as a library component.
func goComponent(m Module) cdx.Component {
	c := cdx.Component{Type: cdx.ComponentTypeLibrary, Name: m.Path, Version: m.Version}
	if module.CheckImportPath(m.Path) == nil {
		purl := "pkg:golang/" + purlPath(m.Path)
		if m.Version != "" && m.Version != "(devel)" {
			purl += "@" + purlEscape(m.Version)
		}
		c.PackageURL, c.BOMRef = purl, purl
	}
	if h, ok := strings.CutPrefix(m.Sum, "h1:"); ok {
		// The go.sum hash is SHA-256 over the module's file list, not over
		// one file: record it as a property, not as a component hash.
		c.Properties = &[]cdx.Property{{Name: "warden:go-sum", Value: "h1:" + h}}
	}
	return c
}

// purlPath escapes each segment of a module path for a purl's namespace
// and name.
func purlPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = purlEscape(s)
	}
	return strings.Join(segs, "/")
}

// purlEscape percent-encodes every byte but the unreserved characters
// (package-url spec: "+" in "+incompatible" becomes "%2B").
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// nameUUID returns a name-based (version 5, SHA-1) UUID of name in
// sbomNamespace (RFC 9562, section 5.5).
func nameUUID(name string) string {
	h := sha1.New()
	h.Write(sbomNamespace[:])
	h.Write([]byte(name))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
