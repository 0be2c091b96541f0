//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package native

import "syscall"

// detachedAttr leaves the warming process attached where sessions are not
// portable.
func detachedAttr() *syscall.SysProcAttr { return nil }

// lowerPriority does nothing where priorities are not portable.
func lowerPriority() {}
