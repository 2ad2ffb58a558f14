// Package totp generates and checks time-based one-time passwords (RFC 6238: SHA-1, 6 digits,
// 30-second steps — what every authenticator app supports) on top of github.com/pquerna/otp.
//
// Validate returns the time step a code matched, so that the caller can refuse a step it has
// already accepted (a code works at most once) — pquerna/otp's own Validate cannot tell.
// Secrets are 160 random bits from crypto/rand, base32 without padding.
package totp

import (
	"bytes"
	"crypto/subtle"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// Period is the length of a time step.
const Period = 30 * time.Second

// Skew is how many steps before and after the current one are accepted, for clocks that
// drift and codes typed near the end of their step.
const Skew = 1

// Generator makes and checks codes for one issuer name (shown in authenticator apps). The
// zero value is not usable; use New. It is safe for concurrent use.
type Generator struct {
	issuer string
}

// New returns a Generator for issuer (for example "Thauth").
func New(issuer string) *Generator { return &Generator{issuer: issuer} }

// Generate returns a new random secret for account, its otpauth:// URI and a 256×256 PNG QR
// code of the URI.
func (g *Generator) Generate(account string) (secret, uri string, qrPNG []byte, err error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      g.issuer,
		AccountName: account,
		Period:      uint(Period / time.Second),
		SecretSize:  20,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", "", nil, err
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return "", "", nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", "", nil, err
	}
	return key.Secret(), key.URL(), buf.Bytes(), nil
}

// Validate checks code against secret at now, accepting the current step and Skew steps on
// either side, and returns the step that matched. Codes are six digits; spaces are ignored.
func (g *Generator) Validate(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != 6 {
		return 0, false
	}
	cur := now.Unix() / int64(Period/time.Second)
	matched := int64(-1)
	// Check every candidate step, so the time taken does not depend on which one matched.
	for s := cur - Skew; s <= cur+Skew; s++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && matched < 0 {
			matched = s
		}
	}
	if matched < 0 {
		return 0, false
	}
	return matched, true
}

// Code returns the code for secret at t (for tests and tools).
func Code(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}
