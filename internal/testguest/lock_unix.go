//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package testguest

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds the wait for another test binary preparing the guests (a
// cold build and precompile take a few minutes on a small machine).
const lockWait = 10 * time.Minute

// lockFile takes an exclusive lock on path, polling until lockWait, and
// returns its release. The kernel releases it if the process dies.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s: still held by another process after %v", path, lockWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
