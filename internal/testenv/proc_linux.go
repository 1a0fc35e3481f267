package testenv

import "syscall"

// sysProcAttr puts each component in its own process group, so Stop can
// signal everything it spawned, and asks the kernel to SIGKILL it if the
// test binary dies without running Stop (a panic, or go test's -timeout),
// so that no etcd or kube-apiserver outlives the test that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
