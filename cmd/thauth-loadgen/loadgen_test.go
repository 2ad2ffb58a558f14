package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The load generator's real runs belong to `make bench`; the normal test run only smoke-tests
// the whole path briefly: in-process Thauth, workload set-up, load, baseline, report.
func TestSmoke(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-self", "-baseline", "-d", "200ms", "-warmup", "0", "-c", "4", "-subjects", "50", "-tenants", "5"},
		func(string) string { return "" }, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"setup: applied 50 subjects", "checks/s", "\nthauth ", "\nbaseline ", "thauth/baseline throughput: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:80": true, "http://127.1.2.3": true,
		"http://10.0.0.1:8080": false, "http://example.com": false, "https://127.0.0.1": false, "http://0.0.0.0:8080": false,
	} {
		if err := checkLoopback(url); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", url, err)
		}
	}
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-url", "http://192.168.1.1:8080", "-key", "k", "-d", "11m", "-c", "0"},
		func(string) string { return "" }, &bytes.Buffer{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "not a loopback address") || !strings.Contains(stderr.String(), "-d must") ||
		!strings.Contains(stderr.String(), "-c must") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestWorkloadIsDeterministic(t *testing.T) {
	a, _ := newWorkload(7, 100, 10).document()
	b, _ := newWorkload(7, 100, 10).document()
	c, _ := newWorkload(8, 100, 10).document()
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Error("workload documents are not a function of the seed")
	}
}
