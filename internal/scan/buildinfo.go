package scan

import (
	"bytes"
	"cmp"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/module"
)

// The Go linker writes the module information (runtime/debug.BuildInfo's
// text form, without the Go version) into the binary between these
// sentinels (cmd/go/internal/modload/build.go, infoStart and infoEnd).
// debug/buildinfo finds it through ELF, Mach-O or PE headers, which a wasm
// binary lacks; in a wasm binary it sits in a data segment.
var (
	infoStart = []byte("\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6")
	infoEnd   = []byte("\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2")
)

// maxBuildInfo bounds the text between the sentinels; a real one is a few
// KiB even with hundreds of dependencies. maxBlocks bounds how many blocks
// are read: a real module has one.
const (
	maxBuildInfo = 1 << 20
	maxBlocks    = 8
)

// readBuildInfo sets GoVersion from the producers section and Main and
// Modules from the module information in the data segments.
func (s *scanner) readBuildInfo() {
	s.r.GoVersion = goVersion(s.m)
	var found []string // the text of each different block that parses
	unreadable := ""
	blocks := 0
	for _, seg := range s.m.data {
		rest, base := seg.bytes, 0
		for ; blocks < maxBlocks; blocks++ {
			i := bytes.Index(rest, infoStart)
			if i < 0 {
				break
			}
			body := rest[i+len(infoStart):]
			j := bytes.Index(body[:min(len(body), maxBuildInfo+len(infoEnd))], infoEnd)
			loc := fmt.Sprintf("data segment %d +%#x", seg.index, base+i)
			if j < 0 {
				if unreadable == "" {
					unreadable = loc
				}
				break // the rest of the segment is the truncated block
			}
			if _, err := parseBuildInfo(body[:j]); err != nil {
				if unreadable == "" {
					unreadable = loc
				}
			} else if !slices.Contains(found, string(body[:j])) { // at most maxBlocks
				found = append(found, string(body[:j]))
			}
			skip := i + len(infoStart) + j + len(infoEnd)
			rest, base = rest[skip:], base+skip
		}
	}
	switch {
	case len(found) > 0:
		bi, _ := parseBuildInfo([]byte(found[0]))
		s.setModules(bi)
		if len(found) > 1 {
			s.add(KindWasm, "wasm.buildinfo-ambiguous", Info, "",
				fmt.Sprintf("module holds %d different Go build info blocks; the module list is from the first, and may not be what was built", len(found)))
		}
	case unreadable != "":
		s.add(KindWasm, "wasm.buildinfo-unreadable", Info, unreadable,
			"module has a Go build info block that cannot be read (truncated or malformed): its Go modules cannot be listed or checked for vulnerabilities")
	case s.r.GoVersion != "":
		s.add(KindWasm, "wasm.buildinfo-unreadable", Info, "",
			"module was built by Go but holds no build info: its Go modules cannot be listed or checked for vulnerabilities")
	}
}

// parseBuildInfo parses the text between the sentinels, refusing what a Go
// linker would not write: invalid UTF-8, control characters, no "path"
// line, module paths that are not import paths.
func parseBuildInfo(b []byte) (*debug.BuildInfo, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("not UTF-8")
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return nil, fmt.Errorf("control character")
		}
	}
	bi, err := debug.ParseBuildInfo(string(b))
	if err != nil {
		return nil, err
	}
	if bi.Path == "" {
		return nil, fmt.Errorf("no path line")
	}
	mods := append([]*debug.Module{&bi.Main}, bi.Deps...)
	for i, m := range mods {
		if i == 0 && m.Path == "" {
			continue // built outside module mode: no main module
		}
		if err := module.CheckImportPath(m.Path); err != nil {
			return nil, err
		}
		if m.Replace != nil && m.Replace.Version != "" {
			if err := module.CheckImportPath(m.Replace.Path); err != nil {
				return nil, err
			}
		}
	}
	return bi, nil
}

func (s *scanner) setModules(bi *debug.BuildInfo) {
	if bi.Main.Path != "" {
		s.r.Main = &Module{Path: bi.Main.Path, Version: bi.Main.Version, Sum: bi.Main.Sum}
	}
	for _, d := range bi.Deps {
		m := Module{Path: d.Path, Version: d.Version, Sum: d.Sum}
		if r := d.Replace; r != nil {
			m = Module{Path: r.Path, Version: r.Version, Sum: r.Sum}
		}
		s.r.Modules = append(s.r.Modules, m)
	}
	slices.SortFunc(s.r.Modules, func(a, b Module) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Version, b.Version))
	})
}

// goVersion returns the Go toolchain that built m, from the "producers"
// custom section (tool-conventions ProducersSection.md) the Go linker
// writes: the "language" field's "Go" entry, e.g. "go1.26.0". A Go wasm
// binary has no other record of it: the linker does not write the
// go:buildinfo header there, and the module information leaves it out.
func goVersion(m *wasmModule) string {
	for _, c := range m.custom {
		if c.name != "producers" {
			continue
		}
		r := &reader{b: c.payload, end: len(c.payload), what: "producers"}
		fields := r.u32()
		for i := uint32(0); i < fields && r.err == nil; i++ {
			field := r.name()
			n := r.u32()
			for j := uint32(0); j < n && r.err == nil; j++ {
				name, version := r.name(), r.name()
				if r.err == nil && field == "language" && name == "Go" && validGoVersion(version) {
					return version
				}
			}
		}
	}
	return ""
}

// validGoVersion accepts what runtime.Version returns for a release or a
// development toolchain ("go1.26.0", "go1.27rc1", "devel go1.27-abcdef …"),
// short and printable.
func validGoVersion(v string) bool {
	if len(v) > 128 || !(strings.HasPrefix(v, "go1") || strings.HasPrefix(v, "devel ")) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
