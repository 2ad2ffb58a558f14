//go:build !race

package backup_test

// exhaustiveStride is the step of the every-position loops: every position.
const exhaustiveStride = 1
