// Package metricstest reads a Prometheus handler the way a scraper does, for tests.
package metricstest

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Scrape GETs h in the text exposition format and returns every sample, keyed by its name
// and labels sorted by name: `name{a="1",b="2"}`.
func Scrape(t testing.TB, h http.Handler) map[string]float64 {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: Content-Type %q", ct)
	}
	return Parse(t, rec.Body)
}

// Parse reads the text exposition format into samples keyed as Scrape does.
func Parse(t testing.TB, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		key, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			if val == "NaN" {
				v = math.NaN()
			} else {
				t.Fatalf("bad value in %q: %v", line, err)
			}
		}
		out[normalize(t, key)] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// normalize sorts the labels of a series key.
func normalize(t testing.TB, key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	if !strings.HasSuffix(key, "}") {
		t.Fatalf("bad series %q", key)
	}
	labels := splitLabels(key[open+1 : len(key)-1])
	sort.Strings(labels)
	return key[:open] + "{" + strings.Join(labels, ",") + "}"
}

// splitLabels splits `a="x",b="y,z"` at the commas between pairs.
func splitLabels(s string) []string {
	var out []string
	inQuote, esc, startAt := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, s[startAt:i])
			startAt = i + 1
		}
	}
	if startAt < len(s) {
		out = append(out, s[startAt:])
	}
	return out
}

// Series returns the keys of samples of the metric name.
func Series(samples map[string]float64, name string) []string {
	var out []string
	for k := range samples {
		if k == name || strings.HasPrefix(k, name+"{") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
