//go:build !unix

package decisionlog

// cpuTimes is unknown here: contention is judged by scheduling waits alone.
func cpuTimes() (busy, total float64) { return 0, 0 }
