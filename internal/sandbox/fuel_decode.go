package sandbox

import "fmt"

// fuelReader reads a module's bytes; the first error sticks.
type fuelReader struct {
	b   []byte
	err error
}

func (r *fuelReader) fail() {
	if r.err == nil {
		r.err = errFuelMalformed
	}
	r.b = nil
}

func (r *fuelReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// uleb reads an unsigned LEB128 of at most bits bits.
func (r *fuelReader) uleb(bits uint) uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			r.fail()
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if bits < 64 && v>>bits != 0 {
				r.fail()
				return 0
			}
			return v
		}
	}
}

func (r *fuelReader) u32() uint32 { return uint32(r.uleb(32)) }

func (r *fuelReader) bytes(n uint32) []byte {
	if r.err != nil || uint64(n) > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *fuelReader) name() string { return string(r.bytes(r.u32())) }

func (r *fuelReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
	if flags > 3 { // 64-bit or shared memories: not rewritten
		r.err = fmt.Errorf("%w: limits flags %#x", errFuelUnsupported, flags)
	}
}

// Immediate kinds of one-byte opcodes, for scanInst.
const (
	immBad     = iota // unknown opcode
	immNone           // no immediate
	immBlock          // block type
	immLEB            // one LEB128 (index, label, i32/i64 constant)
	immLEB2           // two LEB128s
	immFunc           // a function index (call, return_call, ref.func)
	immBrTable        // vector of labels, then a label
	immMemarg         // alignment and offset
	immZero           // one byte that must be 0 (memory index)
	immByte           // one byte (ref.null's type)
	imm4              // f32.const
	imm8              // f64.const
	immSelectT        // vector of value types
	immFC             // 0xfc prefix
	immFD             // 0xfd prefix
	immFE             // 0xfe prefix
)

var immediates = func() (t [256]byte) {
	set := func(kind byte, ops ...int) {
		for _, op := range ops {
			t[op] = kind
		}
	}
	set(immNone, 0x00, 0x01, 0x05, opEnd, 0x0f, 0x1a, 0x1b, 0xd1) // unreachable, nop, else, end, return, drop, select, ref.is_null
	set(immBlock, 0x02, opLoop, opIf)
	set(immLEB, 0x0c, 0x0d, 0x41, 0x42) // br, br_if, i32.const, i64.const
	for op := 0x20; op <= 0x26; op++ {  // locals, globals, table.get/set
		t[op] = immLEB
	}
	set(immLEB2, 0x11, 0x13) // call_indirect, return_call_indirect
	set(immFunc, opCall, 0x12, opRefFunc)
	set(immBrTable, 0x0e)
	for op := 0x28; op <= 0x3e; op++ { // loads and stores
		t[op] = immMemarg
	}
	set(immZero, 0x3f, 0x40) // memory.size, memory.grow
	set(immByte, 0xd0)       // ref.null
	set(imm4, 0x43)
	set(imm8, 0x44)
	set(immSelectT, 0x1c)
	for op := 0x45; op <= 0xc4; op++ { // numeric, sign extension
		t[op] = immNone
	}
	set(immFC, 0xfc)
	set(immFD, 0xfd)
	set(immFE, 0xfe)
	return t
}()

// leb returns the index after the LEB128 at b[i] and its value (the low 32
// bits; callers that need more check the length). An encoding longer than
// ten bytes is malformed.
func leb(b []byte, i int) (int, uint32, error) {
	var v uint32
	for n := uint(0); n < 70; n += 7 {
		if i >= len(b) {
			return i, 0, errFuelMalformed
		}
		c := b[i]
		i++
		if n < 32 {
			v |= uint32(c&0x7f) << n
		}
		if c&0x80 == 0 {
			return i, v, nil
		}
	}
	return i, 0, errFuelMalformed
}

// u32 is leb for values that must fit 32 bits (at most five bytes).
func u32(b []byte, i int) (int, uint32, error) {
	j, v, err := leb(b, i)
	if err == nil && (j-i > 5 || j-i == 5 && b[j-1] > 0x0f) {
		err = errFuelMalformed
	}
	return j, v, err
}

// scanInst decodes the instruction at code[i] as far as fuel needs: it
// returns its opcode (the prefix byte for 0xfc, 0xfd and 0xfe), the index
// after it and, for call, return_call and ref.func, the function index
// (for global.get and global.set, the global index).
// It knows every instruction of WebAssembly 2.0 and of the threads
// proposal; any other is errFuelUnsupported.
func scanInst(code []byte, i int) (op byte, next int, idx uint32, err error) {
	if i >= len(code) {
		return 0, i, 0, errFuelMalformed
	}
	op = code[i]
	i++
	switch immediates[op] {
	case immNone:
		return op, i, 0, nil
	case immBlock:
		if i >= len(code) {
			return op, i, 0, errFuelMalformed
		}
		switch c := code[i]; {
		case c == 0x40, c >= 0x7b && c <= 0x7f, c == 0x70, c == 0x6f:
			return op, i + 1, 0, nil
		case c&0xc0 == 0x40: // another negative one-byte s33
			return op, i, 0, fmt.Errorf("%w: block type %#x", errFuelUnsupported, c)
		}
		i, _, err = leb(code, i) // a type index (s33)
		return op, i, 0, err
	case immLEB:
		if op == opGlobGet || op == opGlobSet {
			i, idx, err = u32(code, i)
			return op, i, idx, err
		}
		i, _, err = leb(code, i)
		return op, i, 0, err
	case immLEB2:
		if i, _, err = leb(code, i); err == nil {
			i, _, err = leb(code, i)
		}
		return op, i, 0, err
	case immFunc:
		i, idx, err = u32(code, i)
		return op, i, idx, err
	case immBrTable:
		var n uint32
		if i, n, err = u32(code, i); err != nil {
			return op, i, 0, err
		}
		for k := uint64(0); k <= uint64(n) && err == nil; k++ {
			i, _, err = leb(code, i)
		}
		return op, i, 0, err
	case immMemarg:
		i, err = memarg(code, i)
		return op, i, 0, err
	case immZero:
		if i >= len(code) || code[i] != 0 {
			return op, i, 0, fmt.Errorf("%w: memory index", errFuelUnsupported)
		}
		return op, i + 1, 0, nil
	case immByte:
		return op, i + 1, 0, bounds(code, i+1)
	case imm4:
		return op, i + 4, 0, bounds(code, i+4)
	case imm8:
		return op, i + 8, 0, bounds(code, i+8)
	case immSelectT:
		var n uint32
		if i, n, err = u32(code, i); err != nil {
			return op, i, 0, err
		}
		return op, i + int(min(n, 1<<20)), 0, bounds(code, i+int(min(n, 1<<20)))
	case immFC:
		i, err = scanFC(code, i)
		return op, i, 0, err
	case immFD:
		i, err = scanFD(code, i)
		return op, i, 0, err
	case immFE:
		i, err = scanFE(code, i)
		return op, i, 0, err
	}
	return op, i, 0, fmt.Errorf("%w: opcode %#x", errFuelUnsupported, op)
}

func bounds(code []byte, end int) error {
	if end > len(code) {
		return errFuelMalformed
	}
	return nil
}

// memarg skips an alignment and an offset. A memory index (multi-memory,
// flagged in the alignment) is refused.
func memarg(code []byte, i int) (int, error) {
	i, align, err := u32(code, i)
	if err != nil {
		return i, err
	}
	if align >= 64 {
		return i, fmt.Errorf("%w: memory index in memarg", errFuelUnsupported)
	}
	i, _, err = leb(code, i)
	return i, err
}

// scanFC: saturating truncation, bulk memory and table instructions.
func scanFC(code []byte, i int) (int, error) {
	i, sub, err := u32(code, i)
	if err != nil {
		return i, err
	}
	zero := func(n int) (int, error) {
		for range n {
			if i >= len(code) || code[i] != 0 {
				return i, fmt.Errorf("%w: memory index", errFuelUnsupported)
			}
			i++
		}
		return i, nil
	}
	switch {
	case sub <= 7:
		return i, nil
	case sub == 8: // memory.init
		if i, _, err = leb(code, i); err != nil {
			return i, err
		}
		return zero(1)
	case sub == 9, sub == 13, sub >= 15 && sub <= 17: // data.drop, elem.drop, table.grow/size/fill
		i, _, err = leb(code, i)
		return i, err
	case sub == 10: // memory.copy
		return zero(2)
	case sub == 11: // memory.fill
		return zero(1)
	case sub == 12, sub == 14: // table.init, table.copy
		if i, _, err = leb(code, i); err == nil {
			i, _, err = leb(code, i)
		}
		return i, err
	}
	return i, fmt.Errorf("%w: opcode 0xfc %d", errFuelUnsupported, sub)
}

// scanFD: SIMD.
func scanFD(code []byte, i int) (int, error) {
	i, sub, err := u32(code, i)
	if err != nil {
		return i, err
	}
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads, store, load_zero
		return memarg(code, i)
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		return i + 16, bounds(code, i+16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		return i + 1, bounds(code, i+1)
	case sub >= 84 && sub <= 91: // load and store lane
		if i, err = memarg(code, i); err != nil {
			return i, err
		}
		return i + 1, bounds(code, i+1)
	case sub <= 0x113:
		// Every other SIMD instruction has no immediate; gaps in the
		// numbering are refused by the runtime's validation.
		return i, nil
	}
	return i, fmt.Errorf("%w: opcode 0xfd %d", errFuelUnsupported, sub)
}

// scanFE: atomics.
func scanFE(code []byte, i int) (int, error) {
	i, sub, err := u32(code, i)
	if err != nil {
		return i, err
	}
	switch {
	case sub == 3: // atomic.fence
		if i >= len(code) || code[i] != 0 {
			return i, fmt.Errorf("%w: atomic.fence flags", errFuelUnsupported)
		}
		return i + 1, nil
	case sub <= 2, sub >= 0x10 && sub <= 0x4e:
		return memarg(code, i)
	}
	return i, fmt.Errorf("%w: opcode 0xfe %d", errFuelUnsupported, sub)
}

// inst is an instruction decodeInst read: its opcode and, for call,
// return_call and ref.func, the function index.
type inst struct {
	op  byte
	idx uint32
}

// decodeInst reads one instruction from r (see scanInst).
func decodeInst(r *fuelReader) (inst, error) {
	if r.err != nil {
		return inst{}, r.err
	}
	op, n, idx, err := scanInst(r.b, 0)
	if err != nil {
		r.fail()
		return inst{}, err
	}
	r.b = r.b[n:]
	return inst{op: op, idx: idx}, nil
}
