//go:build !unix

package testenv

import (
	"errors"
	"syscall"
)

var errUnsupported = errors.New("testenv: the control plane runs only on Unix systems")

func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(int, bool) error { return errUnsupported }

func platformCheck() error { return errUnsupported }
