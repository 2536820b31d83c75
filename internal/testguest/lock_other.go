//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package testguest

// lockFile does not lock where flock is missing: two test binaries preparing
// at once may then both build a guest, but files are renamed into place, so
// neither reads a partial one.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
