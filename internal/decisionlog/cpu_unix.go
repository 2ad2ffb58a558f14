//go:build unix

package decisionlog

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// cpuTimes returns the machine's cumulative busy and total CPU time: from /proc/stat where
// there is one (Linux: every process counts, the database and the clients included), else
// this process's own CPU time (getrusage) against GOMAXPROCS × its running time.
func cpuTimes() (busy, total float64) {
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if busy, total, ok := parseProcStat(b); ok {
			return busy, total
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	used := float64(ru.Utime.Nano() + ru.Stime.Nano())
	return used, float64(time.Since(processStart)) * float64(runtime.GOMAXPROCS(0))
}

var processStart = time.Now()

// parseProcStat reads the aggregate "cpu" line of /proc/stat: user nice system idle iowait
// irq softirq steal …; idle and iowait are not busy.
func parseProcStat(b []byte) (busy, total float64, ok bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return 0, 0, false
	}
	for i, f := range fields[1:] {
		if i >= 8 { // guest times are already counted in user
			break
		}
		v, err := strconv.ParseFloat(string(f), 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, total > 0
}
