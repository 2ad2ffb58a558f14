// Package webhook signs and delivers Thauth's outgoing webhooks following the Standard Webhooks
// specification 1.0 (https://www.standardwebhooks.com), so that customers can verify them with
// any of that project's libraries or a dozen lines of their own code.
//
// Signing (signature.go): every request carries webhook-id (the event id, stable across
// retries, for idempotency), webhook-timestamp (unix seconds of the attempt) and
// webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.payload>", several space-separated
// while a secret is being rotated). Secrets are "whsec_" followed by the base64 of 24 to 64
// random bytes; NewSecret makes 32.
//
// Delivery (sender.go, worker.go): a Worker claims due deliveries from a Store, POSTs each one
// through a Sender, records the attempt and schedules the next one on the specification's
// example schedule (DefaultSchedule), then gives up or disables the endpoint on 410 Gone.
//
// Threat model. The receiver must be able to tell our requests from forgeries and replays:
// the HMAC covers the id, the timestamp and the exact body, Verify compares in constant time and
// refuses timestamps outside a tolerance, and errors never contain a secret or a computed
// signature. The sender must not become a way into our own network (SSRF): the customer chooses
// the URL, so Sender refuses anything but https (http only with URLPolicy.AllowInsecure), checks
// the address it actually connects to after DNS resolution — not the name, which could be
// re-pointed — against loopback, private, link-local (cloud metadata), shared, reserved and
// multicast ranges (unless URLPolicy.AllowPrivate), ignores proxy environment variables, and
// never follows redirects. Responses are read up to 4 KiB, so a hostile receiver cannot make us
// buffer an unbounded body, and every request has a timeout.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret, so that secrets are recognisable in config files
// and by secret scanners.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the verifier's clock, in either
// direction, before Verify refuses it as a possible replay.
const DefaultTolerance = 5 * time.Minute

// Secret sizes in bytes: the specification asks for 24 to 64 (192 to 512 bits).
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
	newSecretBytes = 32
)

// maxSignatures bounds how many entries of a webhook-signature header Verify looks at, so a
// forged header with thousands of entries costs no more than a few HMAC comparisons.
const maxSignatures = 16

// Errors returned by Sign and Verify, always wrapped with a detail that names the problem
// (which header, how far off the clock) and never the secret or the expected signature.
var (
	ErrInvalidSecret      = errors.New("webhook: invalid signing secret")
	ErrInvalidID          = errors.New("webhook: invalid message id")
	ErrMissingHeader      = errors.New("webhook: missing header")
	ErrInvalidTimestamp   = errors.New("webhook: invalid timestamp")
	ErrTimestampTolerance = errors.New("webhook: timestamp outside tolerance")
	ErrMalformedSignature = errors.New("webhook: malformed signature header")
	ErrNoMatch            = errors.New("webhook: no matching signature")
)

// NewSecret returns a new signing secret: "whsec_" and the standard base64 of 32 bytes from
// crypto/rand.
func NewSecret() (string, error) {
	b := make([]byte, newSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: new secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// decodeSecret returns the HMAC key of a "whsec_" secret. The error says what is wrong with
// the secret, never what it is.
func decodeSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrInvalidSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: it is not base64 after the prefix", ErrInvalidSecret)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// ValidateSecret reports whether secret is a well-formed signing secret, for callers that
// accept secrets from outside (an import, a customer-chosen secret).
func ValidateSecret(secret string) error {
	_, err := decodeSecret(secret)
	return err
}

// validID reports whether id can be a webhook-id: non-empty, at most 256 bytes of printable
// ASCII without spaces and without ".", the separator of the signed content — an id with a dot
// would let "a.b" + "c" and "a" + "b.c" sign the same bytes.
func validID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return false
		}
	}
	return true
}

// mac returns HMAC-SHA256(key, id + "." + ts + "." + payload).
func mac(key []byte, id, ts string, payload []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(payload)
	return h.Sum(nil)
}

// Sign returns the webhook-signature entry "v1,<base64>" of payload sent as message msgID at
// ts with secret. It fails with ErrInvalidSecret or ErrInvalidID (an id that is empty, longer
// than 256 bytes, or contains spaces, control characters or ".").
func Sign(secret, msgID string, ts time.Time, payload []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	if !validID(msgID) {
		return "", fmt.Errorf("%w: it must be 1 to 256 printable ASCII characters without spaces or dots", ErrInvalidID)
	}
	sum := mac(key, msgID, strconv.FormatInt(ts.Unix(), 10), payload)
	return "v1," + base64.StdEncoding.EncodeToString(sum), nil
}

// SignatureHeader returns the value of the webhook-signature header for payload signed with
// each of secrets (the current secret first, then any still being rotated out), space-separated
// as the specification requires.
func SignatureHeader(secrets []string, msgID string, ts time.Time, payload []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no secret", ErrInvalidSecret)
	}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, msgID, ts, payload)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a received webhook: the webhook-id, webhook-timestamp and webhook-signature
// headers must be present, the timestamp must be within tolerance of now in either direction
// (DefaultTolerance when tolerance is zero or negative), and at least one "v1" entry of the
// signature header must equal the HMAC of "id.timestamp.payload" under one of secrets (several
// while the receiver rotates). payload must be the raw body as received, not re-serialised JSON.
//
// The signatures are compared in constant time. Entries of other versions (such as the
// asymmetric "v1a") are ignored. The error wraps one of ErrInvalidSecret, ErrMissingHeader,
// ErrInvalidTimestamp, ErrTimestampTolerance, ErrMalformedSignature or ErrNoMatch.
func Verify(secrets []string, headers http.Header, payload []byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret", ErrInvalidSecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := decodeSecret(s)
		if err != nil {
			return fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys[i] = k
	}
	id := headers.Get(HeaderID)
	tsText := headers.Get(HeaderTimestamp)
	sigText := headers.Get(HeaderSignature)
	for _, h := range [...]struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, tsText}, {HeaderSignature, sigText}} {
		if h.value == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, h.name)
		}
	}
	ts, ok := parseUnix(tsText)
	if !ok {
		return fmt.Errorf("%w: %s must be integer unix seconds", ErrInvalidTimestamp, HeaderTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	switch d := now.Sub(time.Unix(ts, 0)); {
	case d > tolerance:
		return fmt.Errorf("%w: %s is %s in the past (tolerance %s)", ErrTimestampTolerance, HeaderTimestamp, d.Truncate(time.Second), tolerance)
	case -d > tolerance:
		return fmt.Errorf("%w: %s is %s in the future (tolerance %s)", ErrTimestampTolerance, HeaderTimestamp, (-d).Truncate(time.Second), tolerance)
	}

	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, tsText, payload)
	}
	entries := strings.Fields(sigText)
	if len(entries) > maxSignatures {
		entries = entries[:maxSignatures]
	}
	v1 := 0
	match := false
	for _, e := range entries {
		version, enc, ok := strings.Cut(e, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(got) != sha256.Size {
			continue
		}
		v1++
		for _, w := range want {
			if hmac.Equal(got, w) {
				match = true
			}
		}
	}
	if v1 == 0 {
		return fmt.Errorf("%w: no v1 entry (\"v1,<base64 of 32 bytes>\") in %s", ErrMalformedSignature, HeaderSignature)
	}
	if !match {
		return fmt.Errorf("%w: none of %d v1 signatures matches", ErrNoMatch, v1)
	}
	return nil
}

// parseUnix parses a non-negative integer of at most 12 digits (a timestamp well past the
// year 30000): no sign, no spaces, no fraction.
func parseUnix(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 12 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
