// Command storegen writes internal/metrics/store_gen.go (see package gen). It runs from
// internal/metrics through `go generate ./internal/metrics`.
package main

import (
	"fmt"
	"os"

	"github.com/thauth/thauth/internal/metrics/gen"
)

func main() {
	src, err := gen.Generate("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storegen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile("store_gen.go", src, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "storegen:", err)
		os.Exit(1)
	}
}
