package deploy

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"warden/internal/scan"
)

// MaxSBOM bounds an SBOM given with a deploy.
const MaxSBOM = 4 << 20

// givenSBOM reads a CycloneDX JSON SBOM given beside the artifact (for a
// module whose build info warden cannot read: other languages) and returns
// the Go modules and toolchain it lists, by their purls, for matching.
func givenSBOM(b []byte) (mods []scan.Module, goVersion string, err error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, "", fmt.Errorf("the SBOM is not CycloneDX JSON")
	}
	if bom.BOMFormat != cdx.BOMFormat {
		return nil, "", fmt.Errorf("the SBOM's bomFormat is %q, not CycloneDX", bom.BOMFormat)
	}
	var walk func(cs []cdx.Component, depth int)
	walk = func(cs []cdx.Component, depth int) {
		if depth > 16 {
			return
		}
		for _, c := range cs {
			if path, ver, ok := goPurl(c.PackageURL); ok {
				if path == "stdlib" {
					goVersion = ver
				} else {
					mods = append(mods, scan.Module{Path: path, Version: ver})
				}
			}
			if c.Components != nil {
				walk(*c.Components, depth+1)
			}
		}
	}
	if bom.Components != nil {
		walk(*bom.Components, 0)
	}
	return mods, goVersion, nil
}

// goPurl reads pkg:golang/PATH@VERSION.
func goPurl(p string) (path, version string, ok bool) {
	rest, ok := strings.CutPrefix(p, "pkg:golang/")
	if !ok {
		return "", "", false
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "#")
	at := strings.LastIndex(rest, "@")
	if at <= 0 {
		return "", "", false
	}
	path, err := url.PathUnescape(rest[:at])
	if err != nil {
		return "", "", false
	}
	version, err = url.PathUnescape(rest[at+1:])
	return path, version, err == nil && version != ""
}
