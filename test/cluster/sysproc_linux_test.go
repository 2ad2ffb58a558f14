package cluster

import "syscall"

// childSysProcAttr makes the kernel kill a node when the test process dies (a timeout
// panic, say), so that no node outlives its test.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
