package sandbox

import "bytes"

// maxCapture bounds the guest stdout/stderr kept per invocation for the log.
const maxCapture = 4 * 1024

// oomMarkers are what common guest runtimes print when memory.grow fails:
// Go ("fatal error: out of memory"), Rust ("memory allocation of N bytes
// failed"), and C/wasi-libc programs using perror ("Cannot allocate memory").
var oomMarkers = [][]byte{
	[]byte("out of memory"),
	[]byte("memory allocation of"),
	[]byte("Cannot allocate memory"),
}

const maxMarker = 22 // len of the longest marker

// capture is a bounded io.Writer for guest diagnostics. It keeps the first
// maxCapture bytes, counts the rest, and notices out-of-memory markers
// anywhere in the stream (including across write boundaries).
//
// # Notes
//   - Not safe for concurrent use; one capture belongs to one instance.
//   - Write never fails, so a chatty guest is never stopped by its logging.
type capture struct {
	buf     []byte
	total   int64
	oom     bool
	tail    [maxMarker]byte
	tailLen int
}

func (c *capture) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if room := maxCapture - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	if !c.oom {
		c.scan(p)
	}
	return len(p), nil
}

func (c *capture) scan(p []byte) {
	// Check the seam between the previous write and this one.
	if c.tailLen > 0 {
		var seam [2 * maxMarker]byte
		n := copy(seam[:], c.tail[:c.tailLen])
		n += copy(seam[n:], p[:min(len(p), maxMarker)])
		if hasMarker(seam[:n]) {
			c.oom = true
			return
		}
	}
	if hasMarker(p) {
		c.oom = true
		return
	}
	if len(p) >= maxMarker {
		c.tailLen = copy(c.tail[:], p[len(p)-maxMarker:])
	} else {
		// Shift the tail and append p.
		keep := min(c.tailLen, maxMarker-len(p))
		copy(c.tail[:], c.tail[c.tailLen-keep:c.tailLen])
		c.tailLen = keep + copy(c.tail[keep:], p)
	}
}

func hasMarker(b []byte) bool {
	for _, m := range oomMarkers {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

func (c *capture) reset() {
	c.buf = c.buf[:0]
	c.total = 0
	c.oom = false
	c.tailLen = 0
}

// text returns the captured output for a log line; "" when empty.
func (c *capture) text() string {
	if len(c.buf) == 0 {
		return ""
	}
	s := validUTF8Multiline(c.buf)
	if c.total > int64(len(c.buf)) {
		s += "…(truncated)"
	}
	return s
}

func validUTF8Multiline(b []byte) string {
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}
