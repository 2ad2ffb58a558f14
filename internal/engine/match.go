package engine

import "strings"

// Resource patterns (spec §3).
//
// A grant pattern is one of:
//   - any: "" (no pattern) or "*": matches every request, with or without a resource;
//   - prefix: "p/*", kept as "p/": matches the concrete resources that start with "p/" and have
//     at least one more character;
//   - exact: anything else, matching only itself.
//
// A request resource is one of:
//   - none: "" (the request names no resource): matched only by any-patterns;
//   - wildcard: "*" or "q/*" (everything under q/): an allow must cover the whole set, a deny
//     counts as soon as it touches any part of it;
//   - concrete: anything else.
//
// These rules are total: every pair of strings has an answer, valid or not. Validation of
// resources (thauth.ValidateResource) happens before data reaches the engine; the engine does
// not rely on it to stay safe, it only needs to be deterministic.

// patternKind classifies a grant pattern.
type patternKind uint8

const (
	patAny patternKind = iota
	patPrefix
	patExact
)

// classifyPattern returns the kind of grant pattern p and, for a prefix pattern, its prefix
// (p without the final "*", so ending in "/").
func classifyPattern(p string) (patternKind, string) {
	switch {
	case p == "" || p == "*":
		return patAny, ""
	case len(p) >= 2 && p[len(p)-1] == '*' && p[len(p)-2] == '/':
		return patPrefix, p[:len(p)-1]
	default:
		return patExact, p
	}
}

// resourceKind classifies a request resource.
type resourceKind uint8

const (
	resNone resourceKind = iota
	resWildcard
	resConcrete
)

// request is a request resource, classified once per check.
type request struct {
	kind resourceKind
	s    string // concrete: the resource; wildcard: the prefix ("" for "*", else ending in "/")
}

func parseResource(r string) request {
	switch {
	case r == "":
		return request{kind: resNone}
	case r == "*":
		return request{kind: resWildcard, s: ""}
	case len(r) >= 2 && r[len(r)-1] == '*' && r[len(r)-2] == '/':
		return request{kind: resWildcard, s: r[:len(r)-1]}
	default:
		return request{kind: resConcrete, s: r}
	}
}

// covers reports whether grant pattern p lets an allow (an allow override or a role
// permission) apply to the request resource: for a concrete resource, p matches it; for a
// wildcard request, p covers the whole requested set; for no resource, p is an any-pattern.
func covers(p string, r request) bool {
	kind, pre := classifyPattern(p)
	if kind == patAny {
		return true
	}
	switch r.kind {
	case resConcrete:
		if kind == patPrefix {
			return len(r.s) > len(pre) && strings.HasPrefix(r.s, pre)
		}
		return p == r.s
	case resWildcard:
		// Only a prefix pattern whose prefix starts the requested prefix covers the set; an
		// exact pattern names one resource and never covers a set.
		return kind == patPrefix && strings.HasPrefix(r.s, pre)
	default: // resNone
		return false
	}
}

// touches reports whether grant pattern p lets a deny override apply to the request resource:
// for a concrete resource, p matches it; for a wildcard request, p matches some part of the
// requested set; for no resource, p is an any-pattern.
func touches(p string, r request) bool {
	kind, pre := classifyPattern(p)
	if kind == patAny {
		return true
	}
	switch r.kind {
	case resConcrete:
		if kind == patPrefix {
			return len(r.s) > len(pre) && strings.HasPrefix(r.s, pre)
		}
		return p == r.s
	case resWildcard:
		if kind == patPrefix {
			return strings.HasPrefix(r.s, pre) || strings.HasPrefix(pre, r.s)
		}
		return strings.HasPrefix(p, r.s)
	default: // resNone
		return false
	}
}
