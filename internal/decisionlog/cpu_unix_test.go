//go:build unix

package decisionlog

import "testing"

func TestParseProcStat(t *testing.T) {
	busy, total, ok := parseProcStat([]byte("cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 1 2 3 4\n"))
	if !ok || busy != 160 || total != 1000 {
		t.Errorf("parseProcStat = %v, %v, %v; want 160 busy of 1000", busy, total, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 x 4 5\n", "cpu 1 2\n"} {
		if _, _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}
