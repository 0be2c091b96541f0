//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package native

import "syscall"

// detachedAttr puts the warming process in a session of its own.
func detachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// lowerPriority makes the warming process yield the CPU to foreground
// commands. Failing only leaves it at normal priority.
func lowerPriority() { _ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, 10) }
