package thauth

import (
	"strings"
	"unicode/utf8"
)

// ValidateName checks a feature, action or role name (spec §1): 1–64 characters from
// A-Z a-z 0-9 _ - . : starting with a letter or digit. It returns "" when valid, else a
// message describing the problem.
func ValidateName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 64 {
		return "must be at most 64 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return "must start with a letter or digit"
		}
		if !alnum && c != '_' && c != '-' && c != '.' && c != ':' {
			return "may only contain letters, digits and _ - . :"
		}
	}
	return ""
}

// ValidateIdentifier checks a subject id, subject type or tenant (spec §1): 1–256 bytes of
// printable UTF-8 with no control characters. It returns "" when valid.
func ValidateIdentifier(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 256 {
		return "must be at most 256 bytes"
	}
	return validPrintable(s)
}

func validPrintable(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return "must not contain control characters"
		}
	}
	return ""
}

// ValidateResource checks a resource or resource pattern (spec §1): 1–512 bytes, path
// segments separated by "/", no empty segment, "*" only as a whole final segment. The same
// rule holds for grant patterns and for request resources (which may be wildcards, §3).
// It returns "" when valid.
func ValidateResource(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 512 {
		return "must be at most 512 bytes"
	}
	if msg := validPrintable(s); msg != "" {
		return msg
	}
	// Walk the segments without splitting (this runs on every request with a resource).
	for rest := s; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" {
			return "must not contain an empty path segment"
		}
		if strings.IndexByte(seg, '*') >= 0 && (seg != "*" || more) {
			return `may contain "*" only as the whole final segment`
		}
		if !more {
			return ""
		}
		rest = tail
	}
}

// ValidateScopes checks a list of API key scopes: at least one, each known, no duplicates.
func ValidateScopes(scopes []string) string {
	if len(scopes) == 0 {
		return "must list at least one scope"
	}
	seen := map[string]bool{}
	for _, s := range scopes {
		known := false
		for _, v := range ValidScopes {
			known = known || s == v
		}
		if !known {
			return "unknown scope " + quote(s) + " (known: decisions:read, subjects:write, admin)"
		}
		if seen[s] {
			return "duplicate scope " + quote(s)
		}
		seen[s] = true
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }
