package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"

	"github.com/thauth/thauth"
)

// MasterKeySize is the length in bytes of a master key (AES-256).
const MasterKeySize = 32

// MasterKeys is the operator's set of master keys, in configuration order. The first is the
// active one: new and re-wrapped data keys are wrapped under it. The others are kept only to
// unwrap data keys that have not been re-wrapped yet (during a rotation).
//
// The zero value holds no keys. The key material is held only inside AES ciphers and is never
// printed: String, GoString and LogValue show the key ids only. MasterKeys is immutable and safe
// for concurrent use.
type MasterKeys struct {
	keys []masterKey
}

type masterKey struct {
	id   string
	aead cipher.AEAD
}

// ParseMasterKeys parses the value of THAUTH_MASTER_KEY or the contents of --master-key-file:
// one or more entries "<id>:<base64 of 32 random bytes>" separated by commas or newlines. The
// first entry is the active key. Blank entries and lines starting with '#' are ignored, so a key
// file may carry comments. Standard and URL-safe base64, padded or not, are accepted.
//
// An id is 1 to 64 letters, digits, '.', '_' or '-'. An input with no entries yields the zero
// MasterKeys and no error: whether a key is required is decided where one is needed (see New).
//
// Errors are *thauth.Error with code EInvalid listing every problem found (bad entry, bad id,
// bad base64, wrong length, duplicate id, the same key under two ids); they name entries by
// position and id and never contain key material.
func ParseMasterKeys(s string) (MasterKeys, error) {
	var entries []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, e := range strings.Split(line, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
	}

	var (
		problems []thauth.Problem
		keys     []masterKey
		raws     [][]byte
		byID     = map[string]int{}
	)
	problem := func(i int, format string, args ...any) {
		problems = append(problems, thauth.Problem{
			Path:    fmt.Sprintf("master_keys[%d]", i),
			Message: fmt.Sprintf("entry %d: ", i+1) + fmt.Sprintf(format, args...),
		})
	}
	for i, e := range entries {
		id, b64, ok := strings.Cut(e, ":")
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if !ok {
			// The entry may be a bare key: do not echo it.
			problem(i, "expected <id>:<base64 key>, found no ':'")
			continue
		}
		if !validMasterKeyID(id) {
			// Not echoed either: a malformed id may be key material pasted in the wrong place.
			problem(i, "key id must be 1 to 64 letters, digits, '.', '_' or '-'")
			continue
		}
		raw, ok := decodeBase64(b64)
		if !ok {
			problem(i, "key %q is not valid base64", id)
			continue
		}
		if len(raw) != MasterKeySize {
			problem(i, "key %q must be %d bytes, base64-encoded; it decodes to %d bytes", id, MasterKeySize, len(raw))
			clear(raw)
			continue
		}
		if j, dup := byID[id]; dup {
			problem(i, "key id %q is also used by entry %d", id, j+1)
			clear(raw)
			continue
		}
		dupMaterial := false
		for j, other := range raws {
			if bytes.Equal(raw, other) {
				problem(i, "key %q holds the same key material as key %q (entry %d)", id, keys[j].id, j+1)
				dupMaterial = true
				break
			}
		}
		if dupMaterial {
			clear(raw)
			continue
		}
		byID[id] = i
		keys = append(keys, masterKey{id: id, aead: newAEAD(raw)})
		raws = append(raws, raw)
	}
	for _, r := range raws {
		clear(r)
	}
	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.Message
		}
		return MasterKeys{}, &thauth.Error{
			Code:     thauth.EInvalid,
			Message:  "invalid master keys: " + strings.Join(msgs, "; "),
			Problems: problems,
		}
	}
	return MasterKeys{keys: keys}, nil
}

// GenerateMasterKey returns a new master key entry "<id>:<base64 of 32 random bytes>" in the
// format ParseMasterKeys reads, for `thauth keys generate`. The caller shows it to the operator
// once and must not log it. An invalid id is an EInvalid *thauth.Error.
func GenerateMasterKey(id string) (string, error) {
	if !validMasterKeyID(id) {
		return "", thauth.Errorf(thauth.EInvalid, "master key id must be 1 to 64 letters, digits, '.', '_' or '-'")
	}
	raw := make([]byte, MasterKeySize)
	rand.Read(raw)
	defer clear(raw)
	return id + ":" + base64.StdEncoding.EncodeToString(raw), nil
}

// Len returns the number of master keys.
func (m MasterKeys) Len() int { return len(m.keys) }

// ActiveID returns the id of the active (first) master key, or "" when there is none.
func (m MasterKeys) ActiveID() string {
	if len(m.keys) == 0 {
		return ""
	}
	return m.keys[0].id
}

// IDs returns the key ids in configuration order, the active one first.
func (m MasterKeys) IDs() []string {
	ids := make([]string, len(m.keys))
	for i, k := range m.keys {
		ids[i] = k.id
	}
	return ids
}

// String shows the key ids, never the keys.
func (m MasterKeys) String() string {
	return "MasterKeys[" + strings.Join(m.IDs(), ",") + "]"
}

// GoString shows the key ids, never the keys (so %#v is safe too).
func (m MasterKeys) GoString() string { return "seal." + m.String() }

// LogValue shows the key ids, never the keys.
func (m MasterKeys) LogValue() slog.Value {
	return slog.GroupValue(slog.String("active", m.ActiveID()), slog.Any("ids", m.IDs()))
}

func (m MasterKeys) find(id string) (masterKey, bool) {
	for _, k := range m.keys {
		if k.id == id {
			return k, true
		}
	}
	return masterKey{}, false
}

func (m MasterKeys) active() masterKey { return m.keys[0] }

func validMasterKeyID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// newAEAD returns AES-256-GCM under key, which must be 32 bytes.
func newAEAD(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("seal: " + err.Error()) // only on a wrong key length, which callers rule out
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("seal: " + err.Error())
	}
	return aead
}
