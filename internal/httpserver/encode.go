package httpserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
	"unicode/utf8"
)

// writeJSON encodes v with encoding/json (HTML escaping off, no trailing newline) and writes
// it with status. It is for the cold paths; the check handlers write their bodies by hand.
func (s *server) writeJSON(w http.ResponseWriter, status int, v any) {
	bp := s.getBuf()
	defer s.putBuf(bp)
	buf := bytes.NewBuffer((*bp)[:0])
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own response types are encoded; this cannot happen short of a bug.
		s.log.Error("encode response", "err", err)
		w.Header()["Content-Type"] = hdrJSON
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"internal error","code":"internal"}`))
		return
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(status)
	_, _ = w.Write(out)
	*bp = buf.Bytes()[:0]
}

// writeRaw writes an already encoded JSON body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal. It escapes what JSON requires
// (quote, backslash, control characters), U+2028 and U+2029 (for JavaScript consumers),
// and replaces invalid UTF-8 with U+FFFD, exactly as encoding/json does with HTML escaping
// off.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendUUIDv7 appends a UUIDv7 (RFC 9562) for time t in its canonical text form: 48 bits of
// Unix milliseconds (so ids sort by time), then 74 bits from the runtime's per-thread
// ChaCha8 generator (no lock, no system call). Unguessability is not needed for decision
// and request ids; uniqueness is: 74 random bits per millisecond make collisions
// negligible.
func appendUUIDv7(dst []byte, t time.Time, rnd func() uint64) []byte {
	ms := uint64(t.UnixMilli())
	hi := ms<<16 | 0x7000 | rnd()&0x0fff
	lo := rnd()&0x3fffffffffffffff | 0x8000000000000000
	var b [36]byte
	putHex(b[0:8], hi>>32)
	b[8] = '-'
	putHex(b[9:13], hi>>16)
	b[13] = '-'
	putHex(b[14:18], hi)
	b[18] = '-'
	putHex(b[19:23], lo>>48)
	b[23] = '-'
	putHex(b[24:36], lo)
	return append(dst, b[:]...)
}

// putHex writes the low 4*len(b) bits of v into b as lower-case hex digits.
func putHex(b []byte, v uint64) {
	for k := len(b) - 1; k >= 0; k-- {
		b[k] = hexDigits[v&0xf]
		v >>= 4
	}
}
