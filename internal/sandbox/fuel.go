package sandbox

// Fuel instrumentation (meter.go says how the sandbox uses it). instrument
// rewrites a WebAssembly module so that it stops itself: the rewritten
// module counts down a fuel global at every function entry and every loop
// header, weighted by the code the entry or loop can run before the next
// check, and calls an imported yield function when the fuel runs out. The
// host's yield decides whether the guest may go on (and traps it when
// not); in between, the guest runs without leaving native code.
//
// This replaces wazero's WithCloseOnContextDone, which makes every loop
// header of the guest exit to Go and back (about 50 ns each). Go compiled
// to wasm enters a loop at every function call, so that check cost a Go
// guest more than everything else in a small request.
//
// instrument never executes or validates code: it decodes the module only
// as far as it must to find function indices, global indices and loop
// headers, and refuses, with errFuelUnsupported, any instruction or section
// it does not know, so that a module it cannot instrument exactly is never
// run as if it had been. Its output is compiled, and so validated, by
// wazero.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// fuelOptions says what to import and how much fuel a yield grants.
type fuelOptions struct {
	// Module and Name are the import the yield function is bound to. The
	// input must not import anything from Module.
	Module, Name string
	// Budget is the fuel a yield grants (and the fuel at start): about the
	// number of instructions the guest may run between two yields. The
	// weights overcount (a loop is charged its whole body at every
	// iteration), so real runs are shorter.
	Budget int32
}

// fuelResult describes an instrumented module.
type fuelResult struct {
	Wasm      []byte
	Checks    int // check sequences inserted
	Functions int // defined functions instrumented
}

var (
	// errFuelUnsupported is returned for a module using an instruction, a
	// section or an encoding fuel does not rewrite; run it with the
	// runtime's own termination checks instead.
	errFuelUnsupported = errors.New("fuel: unsupported module")
	// errFuelMalformed is returned for input that is not a well-formed module.
	errFuelMalformed = errors.New("fuel: malformed module")
)

const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secDataCount = 12
	maxSection   = 12

	opLoop     = 0x03
	opEnd      = 0x0b
	opCall     = 0x10
	opGlobGet  = 0x23
	opGlobSet  = 0x24
	opI32Const = 0x41
	opI32LtS   = 0x48
	opI32Sub   = 0x6b
	opIf       = 0x04
	opRefFunc  = 0xd2
)

// instrument returns wasm rewritten with fuel checks. It is deterministic:
// the same input and options give the same bytes (the compilation cache
// relies on it).
func instrument(wasm []byte, opt fuelOptions) (*fuelResult, error) {
	if opt.Budget <= 0 || opt.Module == "" || opt.Name == "" {
		return nil, errors.New("fuel: options need a module, a name and a positive budget")
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", errFuelMalformed)
	}
	type section struct {
		id   byte
		body []byte
	}
	var secs []section
	r := &fuelReader{b: wasm[8:]}
	last := -1
	for len(r.b) > 0 {
		id := r.byte()
		body := r.bytes(r.u32())
		if r.err != nil {
			return nil, r.err
		}
		if id > maxSection {
			return nil, fmt.Errorf("%w: section %d", errFuelUnsupported, id)
		}
		if id != secCustom {
			order := sectionOrder(id)
			if order <= last {
				return nil, fmt.Errorf("%w: section %d out of order", errFuelMalformed, id)
			}
			last = order
		}
		secs = append(secs, section{id, body})
	}

	// First pass: counts that fix the new indices.
	var nTypes, nFuncImports, nGlobalImports, nGlobals uint32
	for _, s := range secs {
		sr := &fuelReader{b: s.body}
		switch s.id {
		case secType:
			nTypes = sr.u32()
		case secImport:
			n := sr.u32()
			for i := uint32(0); i < n && sr.err == nil; i++ {
				mod := sr.name()
				sr.name()
				if mod == opt.Module {
					return nil, fmt.Errorf("%w: the module imports from %q, which is reserved", errFuelUnsupported, opt.Module)
				}
				switch kind := sr.byte(); kind {
				case 0x00: // func
					sr.u32()
					nFuncImports++
				case 0x01: // table
					sr.byte()
					sr.limits()
				case 0x02: // memory
					sr.limits()
				case 0x03: // global
					sr.byte()
					sr.byte()
					nGlobalImports++
				default:
					return nil, fmt.Errorf("%w: import kind %d", errFuelUnsupported, kind)
				}
			}
		case secGlobal:
			nGlobals = sr.u32()
		}
		if sr.err != nil {
			return nil, sr.err
		}
	}
	if nTypes == math.MaxUint32 || nFuncImports == math.MaxUint32 || nGlobalImports+nGlobals < nGlobals {
		return nil, errFuelMalformed
	}
	rw := &fuelRewriter{
		yield:   nFuncImports, // appended after the other function imports
		fuel:    nGlobalImports + nGlobals,
		yType:   nTypes,
		budget:  opt.Budget,
		opt:     opt,
		nImport: nFuncImports,
	}
	res := &fuelResult{}

	out := make([]byte, 0, len(wasm)+len(wasm)/8+64)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	// Sections that may be missing and that the rewrite needs are emitted
	// just before the first section that must follow them.
	haveType, haveImport, haveGlobal := false, false, false
	pending := func(before byte) {
		o := sectionOrder(before)
		if !haveType && o > sectionOrder(secType) {
			emit(secType, rw.typeSection(nil))
			haveType = true
		}
		if !haveImport && o > sectionOrder(secImport) {
			emit(secImport, rw.importSection(nil))
			haveImport = true
		}
		if !haveGlobal && o > sectionOrder(secGlobal) {
			emit(secGlobal, rw.globalSection(nil))
			haveGlobal = true
		}
	}
	for _, s := range secs {
		var body []byte
		var err error
		if s.id != secCustom {
			pending(s.id)
		}
		switch s.id {
		case secCustom:
			sr := &fuelReader{b: s.body}
			if sr.name() == "name" && sr.err == nil {
				body, err = rw.nameSection(s.body)
				if err == nil && body != nil {
					emit(secCustom, body)
					continue
				}
			}
			// Debug information and anything else that may name code
			// offsets or function indices is left out.
			continue
		case secType:
			body, haveType = rw.typeSection(s.body), true
		case secImport:
			body, haveImport = rw.importSection(s.body), true
		case secGlobal:
			body, err = rw.globalSectionFrom(s.body)
			haveGlobal = true
		case secExport:
			body, err = rw.exportSection(s.body)
		case secStart:
			body, err = rw.startSection(s.body)
		case secElement:
			body, err = rw.elementSection(s.body)
		case secCode:
			body, err = rw.codeSection(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, err
		}
		if body == nil { // typeSection and others never return nil on success
			return nil, errFuelMalformed
		}
		emit(s.id, body)
	}
	pending(secDataCount + 1) // a module with no later section
	res.Wasm, res.Checks, res.Functions = out, rw.checks, rw.functions
	return res, nil
}

// sectionOrder is the position a non-custom section must have (the data
// count section comes between import-related sections and code).
func sectionOrder(id byte) int {
	switch id {
	case secDataCount:
		return 95 // after element (9), before code (10)
	case secCode:
		return 100
	case 11: // data
		return 110
	case secDataCount + 1:
		return 1000
	}
	return int(id) * 10
}

type fuelRewriter struct {
	yield, fuel, yType uint32
	nImport            uint32
	budget             int32
	opt                fuelOptions
	checks, functions  int
}

// fn maps a function index of the input to the output: the yield import
// comes after the input's function imports, so defined functions move up.
func (rw *fuelRewriter) fn(i uint32) (uint32, error) {
	if i >= rw.nImport {
		if i == math.MaxUint32 {
			return 0, errFuelMalformed
		}
		return i + 1, nil
	}
	return i, nil
}

// oneMore returns a vector section's body with its count raised by one,
// for the caller to append the new entry; a nil body is an absent section.
// The type and import sections' counts were read when the module was
// scanned (yType, nImport), so they are known to be well formed here.
func oneMore(body []byte) []byte {
	var n uint32
	var rest []byte
	if body != nil {
		r := &fuelReader{b: body}
		n = r.u32()
		rest = r.b
	}
	return append(binary.AppendUvarint(nil, uint64(n)+1), rest...)
}

func (rw *fuelRewriter) typeSection(body []byte) []byte {
	return append(oneMore(body), 0x60, 0x00, 0x00) // func () -> ()
}

func (rw *fuelRewriter) importSection(body []byte) []byte {
	out := oneMore(body)
	out = appendName(out, rw.opt.Module)
	out = appendName(out, rw.opt.Name)
	out = append(out, 0x00)
	return binary.AppendUvarint(out, uint64(rw.yType))
}

func (rw *fuelRewriter) fuelGlobal(out []byte) []byte {
	out = append(out, 0x7f, 0x01, opI32Const) // i32, mutable, init
	out = appendSLEB(out, int64(rw.budget))
	return append(out, opEnd)
}

func (rw *fuelRewriter) globalSection([]byte) []byte {
	return rw.fuelGlobal([]byte{1})
}

func (rw *fuelRewriter) globalSectionFrom(body []byte) ([]byte, error) {
	r := &fuelReader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n)+1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = append(out, r.byte(), r.byte()) // valtype, mutability
		var err error
		if out, err = rw.constExpr(r, out); err != nil {
			return nil, err
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errFuelMalformed
	}
	return rw.fuelGlobal(out), nil
}

func (rw *fuelRewriter) exportSection(body []byte) ([]byte, error) {
	r := &fuelReader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		out = appendName(out, r.name())
		kind := r.byte()
		idx := r.u32()
		if kind == 0x00 {
			var err error
			if idx, err = rw.fn(idx); err != nil {
				return nil, err
			}
		} else if kind > 0x03 {
			return nil, fmt.Errorf("%w: export kind %d", errFuelUnsupported, kind)
		}
		out = append(out, kind)
		out = binary.AppendUvarint(out, uint64(idx))
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errFuelMalformed
	}
	return out, nil
}

func (rw *fuelRewriter) startSection(body []byte) ([]byte, error) {
	r := &fuelReader{b: body}
	idx, err := rw.fn(r.u32())
	if err != nil || r.err != nil || len(r.b) != 0 {
		return nil, errFuelMalformed
	}
	return binary.AppendUvarint(nil, uint64(idx)), nil
}

func (rw *fuelRewriter) elementSection(body []byte) ([]byte, error) {
	r := &fuelReader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	funcs := func() error {
		c := r.u32()
		out = binary.AppendUvarint(out, uint64(c))
		for j := uint32(0); j < c && r.err == nil; j++ {
			idx, err := rw.fn(r.u32())
			if err != nil {
				return err
			}
			out = binary.AppendUvarint(out, uint64(idx))
		}
		return r.err
	}
	exprs := func() error {
		c := r.u32()
		out = binary.AppendUvarint(out, uint64(c))
		for j := uint32(0); j < c && r.err == nil; j++ {
			var err error
			if out, err = rw.constExpr(r, out); err != nil {
				return err
			}
		}
		return r.err
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = binary.AppendUvarint(out, uint64(flags))
		var err error
		switch flags {
		case 0:
			if out, err = rw.constExpr(r, out); err == nil {
				err = funcs()
			}
		case 1, 3:
			out = append(out, r.byte()) // elemkind
			err = funcs()
		case 2:
			out = binary.AppendUvarint(out, uint64(r.u32())) // table
			if out, err = rw.constExpr(r, out); err == nil {
				out = append(out, r.byte())
				err = funcs()
			}
		case 4:
			if out, err = rw.constExpr(r, out); err == nil {
				err = exprs()
			}
		case 5, 7:
			out = append(out, r.byte()) // reftype
			err = exprs()
		case 6:
			out = binary.AppendUvarint(out, uint64(r.u32()))
			if out, err = rw.constExpr(r, out); err == nil {
				out = append(out, r.byte())
				err = exprs()
			}
		default:
			return nil, fmt.Errorf("%w: element segment flags %d", errFuelUnsupported, flags)
		}
		if err != nil {
			return nil, err
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errFuelMalformed
	}
	return out, nil
}

// constExpr copies a constant expression (up to and including its end),
// renumbering ref.func.
func (rw *fuelRewriter) constExpr(r *fuelReader, out []byte) ([]byte, error) {
	for r.err == nil {
		start := r.b
		in, err := decodeInst(r)
		if err != nil {
			return nil, err
		}
		raw := start[:len(start)-len(r.b)]
		if in.op == opGlobGet && in.idx >= rw.fuel {
			return nil, errFuelMalformed // see function
		}
		if in.op == opRefFunc {
			idx, err := rw.fn(in.idx)
			if err != nil {
				return nil, err
			}
			out = append(out, opRefFunc)
			out = binary.AppendUvarint(out, uint64(idx))
		} else {
			out = append(out, raw...)
		}
		if in.op == opEnd {
			return out, nil
		}
		if in.op == opLoop || in.op == opCall || in.op == 0x12 {
			return nil, errFuelMalformed // not constant
		}
	}
	return nil, r.err
}

// nameSection renumbers the function names (subsection 1) and local names
// (subsection 2) and keeps the module name (0); other subsections, which
// may name labels by function index, are left out. It returns nil when
// the section cannot be read (the caller then drops it).
func (rw *fuelRewriter) nameSection(body []byte) ([]byte, error) {
	r := &fuelReader{b: body}
	out := appendName(nil, r.name())
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		sub := r.bytes(r.u32())
		if r.err != nil {
			return nil, nil
		}
		switch id {
		case 0:
			out = append(out, 0)
			out = binary.AppendUvarint(out, uint64(len(sub)))
			out = append(out, sub...)
		case 1, 2:
			s := &fuelReader{b: sub}
			n := s.u32()
			b := binary.AppendUvarint(nil, uint64(n))
			for i := uint32(0); i < n && s.err == nil; i++ {
				idx, err := rw.fn(s.u32())
				if err != nil {
					return nil, nil
				}
				b = binary.AppendUvarint(b, uint64(idx))
				if id == 1 {
					b = appendName(b, s.name())
					continue
				}
				m := s.u32()
				b = binary.AppendUvarint(b, uint64(m))
				for j := uint32(0); j < m && s.err == nil; j++ {
					b = binary.AppendUvarint(b, uint64(s.u32()))
					b = appendName(b, s.name())
				}
			}
			if s.err != nil || len(s.b) != 0 {
				return nil, nil
			}
			out = append(out, id)
			out = binary.AppendUvarint(out, uint64(len(b)))
			out = append(out, b...)
		}
	}
	if r.err != nil {
		return nil, nil
	}
	return out, nil
}

// codeSection instruments every function body. A large section is split
// between up to GOMAXPROCS workers (a cold start waits for it); the output
// does not depend on how it was split.
func (rw *fuelRewriter) codeSection(body []byte) ([]byte, error) {
	r := &fuelReader{b: body}
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		return nil, errFuelMalformed
	}
	codes := make([][]byte, n)
	for i := range codes {
		codes[i] = r.bytes(r.u32())
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errFuelMalformed
	}
	workers := 1
	if len(body) > 1<<20 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	// Contiguous runs of functions of about the same size in bytes.
	type part struct {
		from, to int
		out      []byte
		checks   int
		err      error
	}
	parts := make([]part, 0, workers)
	from, acc := 0, 0
	for i, c := range codes {
		acc += len(c)
		if len(parts) < workers-1 && acc >= len(body)*(len(parts)+1)/workers {
			parts = append(parts, part{from: from, to: i + 1})
			from = i + 1
		}
	}
	parts = append(parts, part{from: from, to: len(codes)})
	run := func(p *part) {
		size := 0
		for _, c := range codes[p.from:p.to] {
			size += len(c)
		}
		p.out = make([]byte, 0, size+size/4)
		var fb []byte
		var marks []mark
		var open []int
		for i := p.from; i < p.to; i++ {
			var checks int
			fb, marks, open, checks, p.err = rw.function(codes[i], fb[:0], marks[:0], open[:0])
			if p.err != nil {
				p.err = fmt.Errorf("function %d: %w", i, p.err)
				return
			}
			p.checks += checks
			p.out = binary.AppendUvarint(p.out, uint64(len(fb)))
			p.out = append(p.out, fb...)
		}
	}
	var wg sync.WaitGroup
	for i := 1; i < len(parts); i++ {
		wg.Go(func() { run(&parts[i]) })
	}
	run(&parts[0])
	wg.Wait()
	size := binary.MaxVarintLen32
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		size += len(p.out)
	}
	out := make([]byte, 0, size)
	out = binary.AppendUvarint(out, uint64(n))
	for _, p := range parts {
		out = append(out, p.out...)
		rw.checks += p.checks
	}
	rw.functions += len(codes)
	return out, nil
}

// mark is a place in a function body the rewrite changes: a function index
// to renumber (call, return_call, ref.func) or a loop header to check.
type mark struct {
	op         byte
	start, end int    // the instruction's bytes in the body
	idx        uint32 // function index
	weight     int32  // loops: instructions up to the matching end
	count      int    // loops: instructions before it, until the weight is known
}

// function rewrites one function body: locals, then instructions with a
// check at the function's start (or in its first loop) and after every
// loop's block type. marks and open are scratch space.
func (rw *fuelRewriter) function(code, out []byte, marks []mark, open []int) (_ []byte, _ []mark, _ []int, checks int, err error) {
	r := &fuelReader{b: code}
	nLocalDecls := r.u32()
	for i := uint32(0); i < nLocalDecls && r.err == nil; i++ {
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return out, marks, open, 0, r.err
	}
	bodyStart := len(code) - len(r.b)

	// Scan, matching each loop with its end to weigh it. open holds, per
	// open block, the mark of its loop or -1.
	count, firstLoop := 0, false
	for i, depth := bodyStart, 1; depth > 0; count++ {
		if i >= len(code) {
			return out, marks, open, 0, errFuelMalformed
		}
		// Most instructions have no immediate or one LEB128 (locals,
		// constants, branches): skip those here, the rest in scanInst.
		op, next := code[i], i+1
		switch immediates[op] {
		case immNone:
			if op == opEnd {
				depth--
				if depth > 0 {
					if k := open[len(open)-1]; k >= 0 {
						marks[k].weight = clampWeight(count - marks[k].count)
					}
					open = open[:len(open)-1]
				} else if next != len(code) {
					return out, marks, open, 0, errFuelMalformed
				}
			}
		case immLEB:
			if op == opGlobGet || op == opGlobSet {
				// The fuel global gets the next index: code that names it
				// was invalid before and must not become valid (and reset
				// its fuel) now.
				n, g, err := u32(code, next)
				if err != nil || g >= rw.fuel {
					return out, marks, open, 0, errFuelMalformed
				}
				next = n
				break
			}
			for next < len(code) && code[next]&0x80 != 0 {
				next++
			}
			if next++; next > len(code) {
				return out, marks, open, 0, errFuelMalformed
			}
		case immMemarg:
			if next < len(code) && code[next] < 64 { // a one-byte alignment, no memory index
				next++
				for next < len(code) && code[next]&0x80 != 0 {
					next++
				}
				if next++; next > len(code) {
					return out, marks, open, 0, errFuelMalformed
				}
				break
			}
			fallthrough
		default:
			_, n, idx, err := scanInst(code, i)
			if err != nil {
				return out, marks, open, 0, err
			}
			next = n
			switch op {
			case 0x02, opIf: // block, if
				open = append(open, -1)
				depth++
			case opLoop:
				open = append(open, len(marks))
				marks = append(marks, mark{op: op, start: i, end: next, count: count})
				firstLoop = firstLoop || count == 0
				depth++
			case opCall, 0x12, opRefFunc:
				marks = append(marks, mark{op: op, start: i, end: next, idx: idx})
			}
		}
		i = next
	}
	total := clampWeight(count)

	out = append(out, code[:bodyStart]...)
	// The function's entry: a check of its whole size, unless it starts
	// with a loop, whose check then carries that weight too.
	if !firstLoop {
		out, checks = rw.check(out, total), checks+1
	} else {
		marks[0].weight = clampWeight(int(marks[0].weight) + int(total))
	}
	at := bodyStart
	for _, m := range marks {
		out = append(out, code[at:m.start]...)
		at = m.end
		if m.op == opLoop {
			out = append(out, code[m.start:m.end]...)
			out, checks = rw.check(out, max(m.weight, 1)), checks+1
			continue
		}
		idx, err := rw.fn(m.idx)
		if err != nil {
			return out, marks, open, 0, err
		}
		out = append(out, m.op)
		out = binary.AppendUvarint(out, uint64(idx))
	}
	return append(out, code[at:]...), marks, open, checks, nil
}

func clampWeight(n int) int32 {
	if n > math.MaxInt32/4 {
		return math.MaxInt32 / 4
	}
	return int32(n)
}

// check appends: fuel -= w; if fuel < 0 { fuel = budget; yield() }.
func (rw *fuelRewriter) check(out []byte, w int32) []byte {
	out = append(out, opGlobGet)
	out = binary.AppendUvarint(out, uint64(rw.fuel))
	out = append(out, opI32Const)
	out = appendSLEB(out, int64(w))
	out = append(out, opI32Sub, opGlobSet)
	out = binary.AppendUvarint(out, uint64(rw.fuel))
	out = append(out, opGlobGet)
	out = binary.AppendUvarint(out, uint64(rw.fuel))
	out = append(out, opI32Const, 0x00, opI32LtS, opIf, 0x40, opI32Const)
	out = appendSLEB(out, int64(rw.budget))
	out = append(out, opGlobSet)
	out = binary.AppendUvarint(out, uint64(rw.fuel))
	out = append(out, opCall)
	out = binary.AppendUvarint(out, uint64(rw.yield))
	return append(out, opEnd)
}

// appendSLEB appends v as a signed LEB128 (the encoding of i32.const; not
// encoding/binary's zig-zag varint).
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
