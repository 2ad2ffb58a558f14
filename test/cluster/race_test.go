//go:build race

package cluster

// raceEnabled reports whether the tests run with the race detector; the node binary is
// then built with it too.
const raceEnabled = true
