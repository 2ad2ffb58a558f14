package engine

import (
	"strings"
	"testing"
)

func TestCoversTouches(t *testing.T) {
	tests := []struct {
		pattern, resource string
		covers, touches   bool
	}{
		// any-patterns match everything
		{"", "", true, true},
		{"", "a", true, true},
		{"", "a/*", true, true},
		{"", "*", true, true},
		{"*", "", true, true},
		{"*", "a/b", true, true},
		{"*", "*", true, true},
		// no resource: only any-patterns
		{"a/*", "", false, false},
		{"a", "", false, false},
		// concrete resources
		{"a/*", "a/b", true, true},
		{"a/*", "a/b/c", true, true},
		{"a/*", "a/", false, false},
		{"a/*", "a", false, false},
		{"a/*", "ab/c", false, false},
		{"a/*", "b/a/c", false, false},
		{"a/b", "a/b", true, true},
		{"a/b", "a/b/c", false, false},
		{"a/b", "a", false, false},
		{"a/b", "A/b", false, false},
		// wildcard requests: allow covers, deny touches
		{"a/*", "a/*", true, true},
		{"a/*", "a/b/*", true, true},
		{"a/b/*", "a/*", false, true},
		{"a/b/*", "*", false, true},
		{"a/*", "*", false, true},
		{"a/*", "b/*", false, false},
		{"a/*", "ab/*", false, false},
		{"ab/*", "a/*", false, false},
		{"a/b", "a/*", false, true},
		{"a/b/c", "a/*", false, true},
		{"a/b", "*", false, true},
		{"a", "a/*", false, false},
		{"a/b", "a/b/*", false, false},
		{"b/c", "a/*", false, false},
	}
	for _, tt := range tests {
		r := parseResource(tt.resource)
		if got := covers(tt.pattern, r); got != tt.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", tt.pattern, tt.resource, got, tt.covers)
		}
		if got := touches(tt.pattern, r); got != tt.touches {
			t.Errorf("touches(%q, %q) = %v, want %v", tt.pattern, tt.resource, got, tt.touches)
		}
	}
}

func TestParseResource(t *testing.T) {
	tests := []struct {
		in   string
		want request
	}{
		{"", request{kind: resNone}},
		{"*", request{kind: resWildcard}},
		{"a/*", request{kind: resWildcard, s: "a/"}},
		{"a/b/*", request{kind: resWildcard, s: "a/b/"}},
		{"a", request{kind: resConcrete, s: "a"}},
		{"a*", request{kind: resConcrete, s: "a*"}}, // invalid; "*" only as a whole segment
		{"/*", request{kind: resWildcard, s: "/"}},  // invalid; still total
		{"**", request{kind: resConcrete, s: "**"}},
	}
	for _, tt := range tests {
		if got := parseResource(tt.in); got != tt.want {
			t.Errorf("parseResource(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// concreteUnder returns concrete resources inside the wildcard request r (with prefix
// r.s) that a pattern may single out: one directly below, one deeper, and ones built from the
// pattern itself when it lies inside the set.
func concreteUnder(r request, pattern string) []string {
	out := []string{r.s + "x", r.s + "x/y"}
	kind, pre := classifyPattern(pattern)
	switch {
	case kind == patPrefix && strings.HasPrefix(pre, r.s):
		out = append(out, pre+"z")
	case kind == patExact && strings.HasPrefix(pattern, r.s) && len(pattern) > len(r.s):
		out = append(out, pattern)
	}
	var conc []string
	for _, c := range out {
		if parseResource(c).kind == resConcrete {
			conc = append(conc, c)
		}
	}
	return conc
}

// FuzzMatch checks the matcher never panics and keeps the invariants of spec §3:
//   - for a concrete resource, covers and touches agree (both are "matches");
//   - for no resource, only any-patterns match;
//   - a wildcard request covered by a pattern has every concrete resource inside it matched
//     by the pattern (an allow of the set is an allow of each member);
//   - a pattern that matches some concrete resource inside a wildcard request touches it
//     (a deny of a member denies the set);
//   - covering implies touching.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {"*", "a"}, {"a/*", "a/b"}, {"a/*", "a/"}, {"a/b", "a/b"},
		{"a/b/*", "a/*"}, {"a/*", "a/b/*"}, {"a/b", "a/*"}, {"a/*", "*"}, {"dev/api/x", "dev/api/*"},
		{"a/*", "ab/*"}, {"x", "*"}, {"/*", "/*"}, {"a*", "a*"}, {"é/*", "é/ü"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, resource string) {
		r := parseResource(resource)
		c, tc := covers(pattern, r), touches(pattern, r)
		if c && !tc {
			t.Fatalf("covers(%q, %q) but not touches", pattern, resource)
		}
		kind, _ := classifyPattern(pattern)
		switch r.kind {
		case resNone:
			if c != (kind == patAny) || tc != (kind == patAny) {
				t.Fatalf("no resource: covers=%v touches=%v for pattern %q", c, tc, pattern)
			}
		case resConcrete:
			if c != tc {
				t.Fatalf("concrete %q: covers=%v touches=%v for pattern %q", resource, c, tc, pattern)
			}
		case resWildcard:
			for _, m := range concreteUnder(r, pattern) {
				mm := covers(pattern, parseResource(m))
				if c && !mm {
					t.Fatalf("pattern %q covers %q but not its member %q", pattern, resource, m)
				}
				if mm && !tc {
					t.Fatalf("pattern %q matches member %q of %q but does not touch it", pattern, m, resource)
				}
			}
		}
	})
}
