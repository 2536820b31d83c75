package scan

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// A strict reader of the WebAssembly binary format (core 2.0, with the
// threads, memory64, extended-const and exception-handling encodings that
// only change the sections skipped here). It reads what Scan needs: the
// type, import, function, export, code (sizes only), data and custom
// sections, and checks the framing of every other section. It never
// allocates in proportion to a count the module declares: every loop
// consumes at least one byte of a bounded section.

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionOrder is where each known section may appear; custom sections may
// appear anywhere. 0 is an unknown id.
var sectionOrder = [...]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secTag: 6, secGlobal: 7, secExport: 8, secStart: 9, secElement: 10,
	secDataCount: 11, secCode: 12, secData: 13,
}

var sectionNames = [...]string{
	secCustom: "custom", secType: "type", secImport: "import", secFunction: "function",
	secTable: "table", secMemory: "memory", secGlobal: "global", secExport: "export",
	secStart: "start", secElement: "element", secCode: "code", secData: "data",
	secDataCount: "data count", secTag: "tag",
}

// External kinds of imports and exports.
const (
	kindFunc   = 0
	kindTable  = 1
	kindMemory = 2
	kindGlobal = 3
	kindTag    = 4
)

var kindNames = [...]string{"function", "table", "memory", "global", "tag"}

// Value types.
const (
	valI32       = 0x7f
	valI64       = 0x7e
	valF32       = 0x7d
	valF64       = 0x7c
	valV128      = 0x7b
	valFuncref   = 0x70
	valExternref = 0x6f
)

func validValType(b byte) bool {
	switch b {
	case valI32, valI64, valF32, valF64, valV128, valFuncref, valExternref:
		return true
	}
	return false
}

// funcType is a function signature, each value type as its encoding byte.
type funcType struct {
	params, results string
}

type wasmImport struct {
	index        int // position in the import section
	module, name string
	kind         byte
	funcIdx      uint32 // for functions: the function index
}

type wasmExport struct {
	name  string
	kind  byte
	index uint32
}

type dataSegment struct {
	index int
	bytes []byte
}

type customSection struct {
	name    string
	payload []byte
}

// wasmModule is what Scan reads from a binary. Byte slices alias the input.
type wasmModule struct {
	types       []funcType
	imports     []wasmImport
	importFuncs []uint32 // type index of each imported function
	funcTypes   []uint32 // type index of each function the module defines
	exports     []wasmExport
	data        []dataSegment
	custom      []customSection
}

// funcSig returns the signature of function index idx (imports first).
func (m *wasmModule) funcSig(idx uint32) (funcType, bool) {
	var ti uint32
	if n := uint32(len(m.importFuncs)); idx < n {
		ti = m.importFuncs[idx]
	} else if idx-n < uint32(len(m.funcTypes)) {
		ti = m.funcTypes[idx-n]
	} else {
		return funcType{}, false
	}
	if ti >= uint32(len(m.types)) {
		return funcType{}, false
	}
	return m.types[ti], true
}

// reader reads b[pos:end]; offsets in errors are offsets in the whole
// module. The first error sticks and every later read returns zero values.
type reader struct {
	b        []byte
	pos, end int
	what     string // what is being read, for errors
	err      error
}

func (r *reader) failAt(at int, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s at offset %#x", ErrMalformed, r.what, fmt.Sprintf(format, args...), at)
	}
	r.pos = r.end
}

func (r *reader) left() int { return r.end - r.pos }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= r.end {
		r.failAt(r.pos, "unexpected end")
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// uleb reads an unsigned LEB128 integer of at most bits bits, refusing
// encodings longer than the type allows and unused bits that are set.
func (r *reader) uleb(bits uint) uint64 {
	if r.err != nil {
		return 0
	}
	start := r.pos
	maxBytes := (bits + 6) / 7
	var v uint64
	for i := uint(0); i < maxBytes; i++ {
		if r.pos >= r.end {
			r.failAt(start, "truncated integer")
			return 0
		}
		c := r.b[r.pos]
		r.pos++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i == maxBytes-1 && bits%7 != 0 && c>>(bits%7) != 0 {
				r.failAt(start, "integer overflows %d bits", bits)
				return 0
			}
			return v
		}
	}
	r.failAt(start, "integer encoding longer than %d bytes", maxBytes)
	return 0
}

func (r *reader) u32() uint32 { return uint32(r.uleb(32)) }

// sleb checks a signed LEB128 integer of bits bits; its value is not needed.
func (r *reader) sleb(bits uint) {
	if r.err != nil {
		return
	}
	start := r.pos
	maxBytes := (bits + 6) / 7
	for i := uint(0); i < maxBytes; i++ {
		if r.pos >= r.end {
			r.failAt(start, "truncated integer")
			return
		}
		c := r.b[r.pos]
		r.pos++
		if c&0x80 == 0 {
			if i == maxBytes-1 {
				used := bits - 7*(maxBytes-1) // value bits in the last byte
				mask := byte(0x7f) >> (used - 1) << (used - 1)
				if s := c & mask; s != 0 && s != mask {
					r.failAt(start, "integer overflows %d bits", bits)
				}
			}
			return
		}
	}
	r.failAt(start, "integer encoding longer than %d bytes", maxBytes)
}

// bytes returns the next n bytes, aliasing the module.
func (r *reader) bytes(n uint32, what string) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(r.left()) {
		r.failAt(r.pos, "%s of %d bytes runs past the end (%d bytes left)", what, n, r.left())
		return nil
	}
	p := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return p
}

// name reads a length-prefixed UTF-8 name.
func (r *reader) name() string {
	start := r.pos
	b := r.bytes(r.u32(), "name")
	if r.err == nil && !utf8.Valid(b) {
		r.failAt(start, "name is not valid UTF-8")
		return ""
	}
	return string(b)
}

func (r *reader) limits() {
	at := r.pos
	flags := r.byte()
	if flags > 7 {
		r.failAt(at, "unknown limits flags %#x", flags)
		return
	}
	bits := uint(32)
	if flags&4 != 0 { // 64-bit memory or table
		bits = 64
	}
	r.uleb(bits)
	if flags&1 != 0 {
		r.uleb(bits)
	}
}

func (r *reader) valType() byte {
	at := r.pos
	t := r.byte()
	if r.err == nil && !validValType(t) {
		r.failAt(at, "unknown value type %#x", t)
	}
	return t
}

// constExpr skips a constant expression (a data segment's offset).
func (r *reader) constExpr() {
	for r.err == nil {
		at := r.pos
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41: // i32.const
			r.sleb(32)
		case 0x42: // i64.const
			r.sleb(64)
		case 0x23: // global.get
			r.u32()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const add, sub, mul
		default:
			if r.err == nil {
				r.failAt(at, "instruction %#x is not allowed in a constant expression", op)
			}
		}
	}
}

// parseModule reads b as a WebAssembly binary module.
func parseModule(b []byte) (*wasmModule, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a WebAssembly header at offset 0x0", ErrMalformed, len(b))
	}
	if string(b[:4]) != "\x00asm" {
		return nil, fmt.Errorf("%w: not a WebAssembly binary (bad magic) at offset 0x0", ErrMalformed)
	}
	switch v := binary.LittleEndian.Uint32(b[4:8]); {
	case v == 1:
	case v&0xffff == 0x0d: // layer 1: the component model
		return nil, fmt.Errorf("%w: a WebAssembly component, not a core module, at offset 0x4", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: unsupported binary version %d at offset 0x4", ErrMalformed, v)
	}
	m := &wasmModule{}
	r := &reader{b: b, pos: 8, end: len(b), what: "module"}
	last := 0
	codeCount, codeAt := uint32(0), -1
	for r.pos < r.end && r.err == nil {
		start := r.pos
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			return nil, r.err
		}
		if int(id) >= len(sectionOrder) || (id != secCustom && sectionOrder[id] == 0) {
			r.failAt(start, "unknown section id %d", id)
			return nil, r.err
		}
		if uint64(size) > uint64(r.left()) {
			r.failAt(start, "%s section of %d bytes runs past the end of the module (%d bytes left)", sectionNames[id], size, r.left())
			return nil, r.err
		}
		if id != secCustom {
			if sectionOrder[id] <= last {
				r.failAt(start, "%s section is repeated or out of order", sectionNames[id])
				return nil, r.err
			}
			last = sectionOrder[id]
		}
		s := &reader{b: b, pos: r.pos, end: r.pos + int(size), what: sectionNames[id] + " section"}
		r.pos += int(size)
		full := true // the section must be read to its end
		switch id {
		case secCustom:
			name := s.name()
			if s.err == nil {
				m.custom = append(m.custom, customSection{name: name, payload: b[s.pos:s.end]})
				s.pos = s.end
			}
		case secType:
			m.readTypes(s)
		case secImport:
			m.readImports(s)
		case secFunction:
			m.readFunctions(s)
		case secExport:
			m.readExports(s)
		case secCode:
			codeCount, codeAt = readCode(s), start
		case secData:
			m.readData(s)
		default:
			full = false // framing only
		}
		if s.err != nil {
			return nil, s.err
		}
		if full && s.pos != s.end {
			s.failAt(s.pos, "%d bytes left over at the end of the section", s.end-s.pos)
			return nil, s.err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if n := uint32(len(m.funcTypes)); n != codeCount {
		if codeAt < 0 {
			codeAt = len(b)
		}
		return nil, fmt.Errorf("%w: module: the function section declares %d functions but the code section has %d bodies at offset %#x", ErrMalformed, n, codeCount, codeAt)
	}
	return m, nil
}

func (m *wasmModule) readTypes(s *reader) {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		at := s.pos
		if form := s.byte(); s.err == nil && form != 0x60 {
			s.failAt(at, "type %d has form %#x; only function types (0x60) are supported", i, form)
			return
		}
		var t funcType
		for _, list := range []*string{&t.params, &t.results} {
			k := s.u32()
			var v []byte
			for j := uint32(0); j < k && s.err == nil; j++ {
				v = append(v, s.valType())
			}
			*list = string(v)
		}
		m.types = append(m.types, t)
	}
}

func (m *wasmModule) readImports(s *reader) {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		imp := wasmImport{index: int(i), module: s.name(), name: s.name()}
		at := s.pos
		imp.kind = s.byte()
		switch imp.kind {
		case kindFunc:
			ti := s.u32()
			if s.err == nil && ti >= uint32(len(m.types)) {
				s.failAt(at+1, "import %d uses type %d; the module has %d types", i, ti, len(m.types))
			}
			imp.funcIdx = uint32(len(m.importFuncs))
			m.importFuncs = append(m.importFuncs, ti)
		case kindTable:
			at := s.pos
			if t := s.byte(); s.err == nil && t != valFuncref && t != valExternref {
				s.failAt(at, "unknown table element type %#x", t)
			}
			s.limits()
		case kindMemory:
			s.limits()
		case kindGlobal:
			s.valType()
			at := s.pos
			if mut := s.byte(); s.err == nil && mut > 1 {
				s.failAt(at, "unknown global mutability %#x", mut)
			}
		case kindTag:
			at := s.pos
			if attr := s.byte(); s.err == nil && attr != 0 {
				s.failAt(at, "unknown tag attribute %#x", attr)
			}
			s.u32()
		default:
			if s.err == nil {
				s.failAt(at, "unknown import kind %#x", imp.kind)
			}
		}
		if s.err == nil {
			m.imports = append(m.imports, imp)
		}
	}
}

func (m *wasmModule) readFunctions(s *reader) {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		at := s.pos
		t := s.u32()
		if s.err == nil && t >= uint32(len(m.types)) {
			s.failAt(at, "function %d uses type %d; the module has %d types", i, t, len(m.types))
		}
		m.funcTypes = append(m.funcTypes, t)
	}
}

func (m *wasmModule) readExports(s *reader) {
	n := s.u32()
	seen := make(map[string]bool)
	for i := uint32(0); i < n && s.err == nil; i++ {
		at := s.pos
		e := wasmExport{name: s.name()}
		kat := s.pos
		e.kind = s.byte()
		e.index = s.u32()
		switch {
		case s.err != nil:
		case e.kind > kindTag:
			s.failAt(kat, "unknown export kind %#x", e.kind)
		case seen[e.name]:
			s.failAt(at, "export %d repeats the name of an earlier export", i)
		default:
			seen[e.name] = true
			m.exports = append(m.exports, e)
		}
	}
}

// readCode checks the framing of each function body and returns how many
// there are; the bodies themselves are skipped.
func readCode(s *reader) uint32 {
	n := s.u32()
	var i uint32
	for ; i < n && s.err == nil; i++ {
		s.bytes(s.u32(), "function body")
	}
	return i
}

func (m *wasmModule) readData(s *reader) {
	n := s.u32()
	for i := uint32(0); i < n && s.err == nil; i++ {
		at := s.pos
		switch flags := s.u32(); flags {
		case 0: // active, memory 0
			s.constExpr()
		case 1: // passive
		case 2: // active, explicit memory
			s.u32()
			s.constExpr()
		default:
			if s.err == nil {
				s.failAt(at, "data segment %d has unknown flags %d", i, flags)
			}
		}
		data := s.bytes(s.u32(), "data segment")
		if s.err == nil {
			m.data = append(m.data, dataSegment{index: int(i), bytes: data})
		}
	}
}
