package manage

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/thauth/thauth"
)

// PasswordParams are argon2id parameters: memory in KiB, iterations, parallelism.
type PasswordParams struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultPasswordParams follow OWASP's argon2id recommendation (19 MiB, 2 iterations,
// parallelism 1).
var DefaultPasswordParams = PasswordParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

// The session defaults.
const (
	DefaultSessionIdleTimeout = 2 * time.Hour
	DefaultSessionLifetime    = 24 * time.Hour
)

// The password policy. Length is counted in characters (runes), so that a passphrase in any
// script gets the same allowance; the upper bound keeps hashing cheap and rejects pasted
// garbage. There are no composition rules (NIST SP 800-63B): length and a list of known
// passwords do more against guessing than forced symbols.
const (
	MinPasswordChars = 12
	MaxPasswordChars = 256
)

// The stored form: PHC string format with unpadded standard base64, as written by the
// reference implementation and libraries in other languages, so hashes stay portable.
const (
	argonSaltLen = 16
	argonKeyLen  = 32
)

// argonMaxParams bound the parameters of a stored hash that sign-in will evaluate: a row
// edited to ask for 64 GiB must not take the node down.
var argonMaxParams = PasswordParams{MemoryKiB: 4 << 20, Iterations: 64, Parallelism: 64}

// acctArgonSlots bounds how many argon2 computations run at once in this process. Each one holds
// MemoryKiB of memory for its whole run, so a flood of sign-ins would otherwise grow memory
// without limit; beyond the bound, callers queue (and give up with their context). It is
// process-wide on purpose: every Service of the process shares the same memory.
var acctArgonSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// acctArgonHash derives the key of password with salt and p, holding a slot.
func acctArgonHash(ctx context.Context, password string, salt []byte, p PasswordParams, keyLen uint32) ([]byte, error) {
	select {
	case acctArgonSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, thauth.Errorf(thauth.EUnavailable, "the server is busy; try again")
	}
	defer func() { <-acctArgonSlots }()
	return argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen), nil
}

// Validate checks that p can be used for hashing: at least one iteration and one lane, at
// least 8 KiB of memory per lane (argon2's minimum), and at most 4 GiB, 64 iterations and
// 64 lanes — the bounds that sign-in also applies to stored hashes. The error is EInvalid
// and names the problem (for configuration validation).
func (p PasswordParams) Validate() error {
	switch {
	case p.Iterations < 1 || p.Iterations > argonMaxParams.Iterations:
		return thauth.Errorf(thauth.EInvalid, "argon2id iterations must be between 1 and %d", argonMaxParams.Iterations)
	case p.Parallelism < 1 || p.Parallelism > argonMaxParams.Parallelism:
		return thauth.Errorf(thauth.EInvalid, "argon2id parallelism must be between 1 and %d", argonMaxParams.Parallelism)
	case p.MemoryKiB < 8*uint32(p.Parallelism) || p.MemoryKiB > argonMaxParams.MemoryKiB:
		return thauth.Errorf(thauth.EInvalid, "argon2id memory must be between 8 KiB per lane and %d KiB", argonMaxParams.MemoryKiB)
	}
	return nil
}

// acctValidParams reports whether argon2 can run with p (it panics on zero iterations or
// parallelism) within argonMaxParams.
func acctValidParams(p PasswordParams) bool { return p.Validate() == nil }

// acctHashPassword returns the PHC string of password under p with a fresh random salt.
func acctHashPassword(ctx context.Context, password string, p PasswordParams) (string, error) {
	if !acctValidParams(p) {
		return "", thauth.Internal(fmt.Errorf("invalid argon2id parameters %+v", p), "could not hash the password")
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", thauth.Internal(err, "could not hash the password")
	}
	key, err := acctArgonHash(ctx, password, salt, p, argonKeyLen)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations,
		p.Parallelism, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// acctParsePHC splits an argon2id PHC string into its parameters, salt and key.
func acctParsePHC(phc string) (p PasswordParams, salt, key []byte, err error) {
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("not an argon2id v=%d PHC string", argon2.Version)
	}
	var m, t, par uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, fmt.Errorf("bad parameter %q", kv)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, fmt.Errorf("bad parameter %q", kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			par = n
		default:
			return p, nil, nil, fmt.Errorf("unknown parameter %q", k)
		}
	}
	if par > 255 {
		return p, nil, nil, fmt.Errorf("parallelism %d out of range", par)
	}
	p = PasswordParams{MemoryKiB: uint32(m), Iterations: uint32(t), Parallelism: uint8(par)}
	if !acctValidParams(p) {
		return p, nil, nil, fmt.Errorf("parameters %+v out of range", p)
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("bad salt")
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, fmt.Errorf("bad key")
	}
	return p, salt, key, nil
}

// acctVerifyPassword reports whether password matches the stored PHC string (constant-time
// comparison of the derived keys) and whether the hash should be redone because it was made
// with parameters other than want (or a different salt or key length). An unreadable stored
// hash is EInternal: it is a data problem, not a wrong password.
func acctVerifyPassword(ctx context.Context, password, phc string, want PasswordParams) (ok, upgrade bool, err error) {
	p, salt, key, err := acctParsePHC(phc)
	if err != nil {
		return false, false, thauth.Internal(err, "could not check the password")
	}
	got, err := acctArgonHash(ctx, password, salt, p, uint32(len(key)))
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, p != want || len(salt) != argonSaltLen || len(key) != argonKeyLen, nil
}

// acctDummyHashes caches, per parameter set, a hash of a random password. Sign-in verifies
// against it when the email is unknown, so that an unknown email takes as long as a wrong
// password and the timing does not tell which addresses are registered.
var acctDummyHashes sync.Map // PasswordParams → string

func acctDummyHash(ctx context.Context, p PasswordParams) (string, error) {
	if h, ok := acctDummyHashes.Load(p); ok {
		return h.(string), nil
	}
	h, err := acctHashPassword(ctx, rand.Text(), p)
	if err != nil {
		return "", err
	}
	v, _ := acctDummyHashes.LoadOrStore(p, h)
	return v.(string), nil
}

// acctCheckPasswordPolicy returns "" when password may be set for the account with (normalized)
// email, or a caller-safe sentence naming the rule it breaks.
func acctCheckPasswordPolicy(password, email string) string {
	if !utf8.ValidString(password) {
		return "the password must be valid UTF-8"
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordChars {
		return fmt.Sprintf("the password must be at least %d characters long", MinPasswordChars)
	}
	if n > MaxPasswordChars {
		return fmt.Sprintf("the password must be at most %d characters long", MaxPasswordChars)
	}
	lower := strings.ToLower(password)
	if email != "" && lower == strings.ToLower(email) {
		return "the password must not be your email address"
	}
	if acctIsCommonPassword(lower) {
		return "this password is in a list of commonly used passwords; choose another"
	}
	return ""
}

// commonPasswordsGz is the list of common passwords refused by the policy: one password a
// line, lower-case, sorted, deduplicated, gzip-compressed (49,233 entries).
//
// Source: the npm package @zxcvbn-ts/language-common 4.1.3, file src/passwords.json
// (https://github.com/zxcvbn-ts/zxcvbn; tarball sha256
// bf3027c16c069d7877e25dc8751bc819e10e479afcc5ee1a323eb2ab73129ca9), itself derived from
// the password frequency lists of Dropbox's zxcvbn. Regenerate with:
//
//	npm pack @zxcvbn-ts/language-common@4.1.3 && tar xzf language-common-4.1.3.tgz
//	python3 -c 'import json; print("\n".join(sorted({p.lower() for p in json.load(open("package/src/passwords.json"))})))' \
//	  | gzip -9n > commonpasswords.txt.gz
//
// Most entries are shorter than MinPasswordChars and so already refused by the length rule;
// the list is kept whole so that lowering the minimum never silently weakens the check.
// Licence of the list (MIT):
//
//	Copyright (c) 2012-2016 Dan Wheeler and Dropbox, Inc.
//	Copyright (c) 2021 @zxcvbn-ts
//
//	Permission is hereby granted, free of charge, to any person obtaining
//	a copy of this software and associated documentation files (the
//	"Software"), to deal in the Software without restriction, including
//	without limitation the rights to use, copy, modify, merge, publish,
//	distribute, sublicense, and/or sell copies of the Software, and to
//	permit persons to whom the Software is furnished to do so, subject to
//	the following conditions:
//
//	The above copyright notice and this permission notice shall be
//	included in all copies or substantial portions of the Software.
//
//	THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
//	EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
//	MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
//	NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
//	LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
//	OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
//	WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
//
//go:embed commonpasswords.txt.gz
var commonPasswordsGz []byte

// acctCommonPasswords is the decompressed list, sorted for binary search. The entries are
// substrings of one string, so the list costs its text plus one string header an entry.
var acctCommonPasswords = sync.OnceValue(func() []string {
	zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
	if err != nil {
		panic("manage: embedded common password list is corrupt: " + err.Error())
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		panic("manage: embedded common password list is corrupt: " + err.Error())
	}
	list := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(list) // the file is sorted already; this makes correctness independent of it
	return list
})

// acctIsCommonPassword reports whether the lower-cased password is in the embedded list.
func acctIsCommonPassword(lower string) bool {
	_, found := slices.BinarySearch(acctCommonPasswords(), lower)
	return found
}
