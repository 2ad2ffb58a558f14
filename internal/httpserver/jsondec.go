package httpserver

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/thauth/thauth"
)

// jsonDecoder is a small, strict, allocation-lean JSON reader for the request bodies of the
// machine API. Each request type has a hand-written decode function on top of it, so that
// every rejection names the field at fault (`unknown field "checks[2].foo"`,
// `field "subject" is required`, `field "feature" must be a string`) and the hot path
// (/v1/check) does not go through reflection.
//
// It reads from a string (one copy of the body), so strings without escapes are substrings
// of it and cost nothing. Strictness beyond encoding/json: member names match exactly (not
// case-insensitively), duplicate members are rejected, invalid UTF-8 is rejected rather than
// replaced. Every error is an EInvalid *thauth.Error (a 400).
type jsonDecoder struct {
	s string
	i int
}

func invalid(format string, args ...any) error {
	return thauth.Errorf(thauth.EInvalid, format, args...)
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// syntaxErr describes the byte at the current position as unexpected.
func (d *jsonDecoder) syntaxErr() error {
	if d.i >= len(d.s) {
		return invalid("malformed JSON: unexpected end of input")
	}
	c := d.s[d.i]
	if c >= 0x20 && c < 0x7f {
		return invalid("malformed JSON: unexpected character %s at offset %d", strconv.QuoteRune(rune(c)), d.i)
	}
	return invalid("malformed JSON: unexpected byte 0x%02x at offset %d", c, d.i)
}

// begin reads the opening brace of the top-level object.
func (d *jsonDecoder) begin() error {
	d.ws()
	if d.i >= len(d.s) {
		return invalid("request body is empty: expected a JSON object")
	}
	if d.s[d.i] != '{' {
		if kindOf(d.s[d.i]) != "" {
			return invalid("request body must be a JSON object")
		}
		return d.syntaxErr()
	}
	d.i++
	return nil
}

// end checks that nothing but white space follows the top-level value.
func (d *jsonDecoder) end() error {
	d.ws()
	if d.i != len(d.s) {
		return invalid("malformed JSON: unexpected data after the top-level object at offset %d", d.i)
	}
	return nil
}

// nextKey moves to the next member of the object whose opening brace was read; first is
// true on the first call for that object. It returns ok=false after the closing brace. The
// member's value is read next by one of the value methods.
func (d *jsonDecoder) nextKey(first bool) (key string, ok bool, err error) {
	d.ws()
	if d.i >= len(d.s) {
		return "", false, d.syntaxErr()
	}
	if d.s[d.i] == '}' {
		d.i++
		return "", false, nil
	}
	if !first {
		if d.s[d.i] != ',' {
			return "", false, d.syntaxErr()
		}
		d.i++
		d.ws()
	}
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", false, d.syntaxErr()
	}
	key, err = d.rawString()
	if err != nil {
		return "", false, err
	}
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != ':' {
		return "", false, d.syntaxErr()
	}
	d.i++
	return key, true, nil
}

// nextElem moves to the next element of the array whose opening bracket was read. It
// returns false after the closing bracket.
func (d *jsonDecoder) nextElem(first bool) (bool, error) {
	d.ws()
	if d.i >= len(d.s) {
		return false, d.syntaxErr()
	}
	if d.s[d.i] == ']' {
		d.i++
		return false, nil
	}
	if !first {
		if d.s[d.i] != ',' {
			return false, d.syntaxErr()
		}
		d.i++
	}
	return true, nil
}

// kindOf names the JSON type of the value starting with c ("" if no value starts so).
func kindOf(c byte) string {
	switch {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || c >= '0' && c <= '9':
		return "number"
	}
	return ""
}

// peek returns the first byte of the next value (0 at the end of input).
func (d *jsonDecoder) peek() byte {
	d.ws()
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// literal consumes the literal lit (true, false, null) or fails.
func (d *jsonDecoder) literal(lit string) error {
	if len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return nil
	}
	return d.syntaxErr()
}

// typeErr reports that the value of field has the wrong type, or a syntax error when no
// value starts here at all.
func (d *jsonDecoder) typeErr(field, want string) error {
	if d.i >= len(d.s) || kindOf(d.s[d.i]) == "" {
		return d.syntaxErr()
	}
	return invalid("field %q must be %s", field, want)
}

// str reads a string value; null counts as absent (present=false).
func (d *jsonDecoder) str(field string) (s string, present bool, err error) {
	switch d.peek() {
	case '"':
		s, err = d.rawString()
		return s, err == nil, err
	case 'n':
		return "", false, d.literal("null")
	}
	return "", false, d.typeErr(field, "a string")
}

// requiredStr reads a string that must be present and non-empty.
func (d *jsonDecoder) requiredStr(field string) (string, error) {
	s, present, err := d.str(field)
	if err != nil {
		return "", err
	}
	if !present {
		return "", missing(field)
	}
	if s == "" {
		return "", empty(field)
	}
	return s, nil
}

// optionalStr reads a string that may be absent or null but, when given, not empty.
func (d *jsonDecoder) optionalStr(field string) (string, bool, error) {
	s, present, err := d.str(field)
	if err == nil && present && s == "" {
		err = empty(field)
	}
	return s, present, err
}

// boolean reads true, false or null (absent, false).
func (d *jsonDecoder) boolean(field string) (bool, error) {
	switch d.peek() {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return false, d.literal("null")
	}
	return false, d.typeErr(field, "true or false")
}

// openObject reads the opening brace of an object value; null gives present=false.
func (d *jsonDecoder) openObject(field string) (present bool, err error) {
	switch d.peek() {
	case '{':
		d.i++
		return true, nil
	case 'n':
		return false, d.literal("null")
	}
	return false, d.typeErr(field, "an object")
}

// openArray reads the opening bracket of an array value; null gives present=false.
func (d *jsonDecoder) openArray(field string) (present bool, err error) {
	switch d.peek() {
	case '[':
		d.i++
		return true, nil
	case 'n':
		return false, d.literal("null")
	}
	return false, d.typeErr(field, "an array")
}

// strArray reads an array of non-empty strings; null gives present=false. An empty array
// is present and non-nil.
func (d *jsonDecoder) strArray(field string) ([]string, bool, error) {
	present, err := d.openArray(field)
	if !present || err != nil {
		return nil, false, err
	}
	out := []string{}
	for first := true; ; first = false {
		more, err := d.nextElem(first)
		if err != nil {
			return nil, false, err
		}
		if !more {
			return out, true, nil
		}
		switch d.peek() {
		case '"':
			s, err := d.rawString()
			if err != nil {
				return nil, false, err
			}
			if s == "" {
				return nil, false, empty(indexed(field, len(out)))
			}
			out = append(out, s)
			continue
		case 'n':
			if err := d.literal("null"); err != nil {
				return nil, false, err
			}
			return nil, false, invalid("field %q must be a string, not null", indexed(field, len(out)))
		}
		return nil, false, d.typeErr(indexed(field, len(out)), "a string")
	}
}

// indexed names element i of array field: "checks[3]".
func indexed(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// rawString reads a string literal starting at the opening quote and returns its value.
func (d *jsonDecoder) rawString() (string, error) {
	d.i++ // opening quote
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			v := d.s[start:d.i]
			d.i++
			return v, nil
		case c == '\\':
			return d.escapedString(start)
		case c < 0x20:
			return "", invalid("malformed JSON: control character in string at offset %d", d.i)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", invalid("malformed JSON: invalid UTF-8 in string at offset %d", d.i)
			}
			d.i += size
		default:
			d.i++
		}
	}
	return "", d.syntaxErr()
}

// escapedString finishes a string that contains escapes; d.i is at the first backslash.
func (d *jsonDecoder) escapedString(start int) (string, error) {
	buf := make([]byte, 0, d.i-start+16)
	buf = append(buf, d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), nil
		case c < 0x20:
			return "", invalid("malformed JSON: control character in string at offset %d", d.i)
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", invalid("malformed JSON: invalid UTF-8 in string at offset %d", d.i)
			}
			buf = append(buf, d.s[d.i:d.i+size]...)
			d.i += size
		case c != '\\':
			buf = append(buf, c)
			d.i++
		default:
			if d.i+1 >= len(d.s) {
				d.i = len(d.s)
				return "", d.syntaxErr()
			}
			esc := d.s[d.i+1]
			d.i += 2
			switch esc {
			case '"', '\\', '/':
				buf = append(buf, esc)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", invalid("malformed JSON: bad \\u escape at offset %d", d.i-2)
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by a low one is one character; anything else
					// becomes U+FFFD, as encoding/json does.
					r2 := utf8.RuneError
					if len(d.s)-d.i >= 6 && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						if lo, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
								r2 = dec
							} else {
								d.i = save
							}
						} else {
							d.i = save
						}
					}
					r = r2
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.i -= 2
				return "", invalid("malformed JSON: bad escape in string at offset %d", d.i)
			}
		}
	}
	return "", d.syntaxErr()
}

// hex4 reads four hex digits.
func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.s)-d.i < 4 {
		return 0, false
	}
	var r rune
	for k := 0; k < 4; k++ {
		c := d.s[d.i+k]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

func missing(field string) error { return invalid("field %q is required", field) }
func empty(field string) error   { return invalid("field %q must not be empty", field) }
func unknownField(prefix, key string) error {
	return invalid("unknown field %q", prefix+clip(key))
}
func duplicate(prefix, key string) error {
	return invalid("duplicate field %q", prefix+key)
}

// clip shortens a client-supplied name quoted in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// seenSet tracks which members of an object were read, to reject duplicates.
type seenSet uint32

func (s *seenSet) mark(bit uint, prefix, key string) error {
	if *s&(1<<bit) != 0 {
		return duplicate(prefix, key)
	}
	*s |= 1 << bit
	return nil
}

func (s seenSet) has(bit uint) bool { return s&(1<<bit) != 0 }
