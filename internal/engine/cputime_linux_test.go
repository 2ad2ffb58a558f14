package engine

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time consumed by the calling OS thread. Benchmarks lock their
// goroutine to a thread and report CPU time per operation next to wall time, because the
// machines this runs on are shared and wall time then includes time spent descheduled.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
