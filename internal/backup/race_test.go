//go:build race

package backup_test

// exhaustiveStride is the step of the every-position loops: under the race detector,
// which slows the cryptography twentyfold, every fifth position (the loops have nothing to
// race on; plain `go test` tries them all).
const exhaustiveStride = 5
