//go:build !linux

package cluster

import "syscall"

// childSysProcAttr: only Linux can tie a child's life to ours; elsewhere the cleanups stop
// the nodes.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
