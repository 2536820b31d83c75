package vulndb

import (
	"regexp"
	"strings"

	"golang.org/x/mod/semver"
)

// goTag matches a Go release tag: 1 the major.minor version, 2 the patch
// (or ""), 3 the whole prerelease, 4 its kind, 5 its number. It is the
// expression golang.org/x/vuln uses (internal/semver.GoTagToSemver).
var goTag = regexp.MustCompile(`^go(\d+\.\d+)(\.\d+|)((beta|rc|-pre)(\d+))?$`)

// Normalize turns a Go toolchain version or a module version into semver
// with a "v" prefix, ok=false when it cannot.
//
// Toolchain versions follow golang.org/x/vuln: "go1.21.5" → "v1.21.5",
// "go1.21" → "v1.21.0", "go1.22rc1" → "v1.22.0-rc.1", "go1" → "v1.0.0";
// only the first word counts, so runtime.Version()'s "go1.22.0
// X:boringcrypto" is "v1.22.0", while "devel go1.23-abcdef" does not
// normalize. Versions with or without "v" ("v1.2.3", "1.21.5") are checked
// with golang.org/x/mod/semver and made canonical ("v1.2" → "v1.2.0"),
// keeping build metadata such as "+incompatible".
func Normalize(v string) (string, bool) {
	f := strings.Fields(v)
	if len(f) == 0 || len(f[0]) > maxVersionLen {
		return "", false
	}
	v = f[0]
	if strings.HasPrefix(v, "go") {
		if s := goTagToSemver(v); s != "" && semver.IsValid(s) {
			return s, true
		}
		return "", false
	}
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return "", false
	}
	return semver.Canonical(v) + semver.Build(v), true
}

func goTagToSemver(tag string) string {
	if tag == "go1" {
		return "v1.0.0"
	}
	m := goTag.FindStringSubmatch(tag)
	if m == nil || tag == "go1.0" {
		return ""
	}
	v := "v" + m[1]
	if m[2] != "" {
		v += m[2]
	} else {
		v += ".0"
	}
	if m[3] != "" {
		if !strings.HasPrefix(m[4], "-") {
			v += "-"
		}
		v += m[4] + "." + m[5]
	}
	return v
}
