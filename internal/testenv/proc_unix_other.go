//go:build unix && !linux

package testenv

import "syscall"

// sysProcAttr puts each component in its own process group, so Stop can
// signal everything it spawned. Only Linux can also tie the component's
// life to the test binary's (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
