//go:build unix

package testenv

import (
	"errors"
	"syscall"
)

// signalGroup sends SIGTERM, or SIGKILL if kill, to the process group
// pgid. A group that no longer exists is not an error.
func signalGroup(pgid int, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func platformCheck() error { return nil }
