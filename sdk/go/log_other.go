//go:build !wasip1

package warden

import "os"

// Log writes msg at level to the function's log. Outside WebAssembly (for
// unit tests of handlers) it writes one line to stderr.
func Log(level Level, msg string) {
	names := [...]string{"DEBUG", "INFO", "WARN", "ERROR"}
	name := "INFO"
	if level >= 0 && int(level) < len(names) {
		name = names[level]
	}
	_, _ = os.Stderr.WriteString(name + " " + msg + "\n")
}
