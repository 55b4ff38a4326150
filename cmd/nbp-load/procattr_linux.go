package main

import "syscall"

// childAttr puts a child in a process group of its own and has the kernel
// kill it should nbp-load die without stopping it (kill -9).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
