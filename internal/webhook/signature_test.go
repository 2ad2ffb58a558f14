package webhook

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The known answer published with the specification's reference Go library
// (standard-webhooks/libraries/go, TestWebhookSign).
const (
	kaSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	kaID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	kaUnix      = 1614265330
	kaPayload   = `{"test": 2432232314}`
	kaSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignKnownAnswer(t *testing.T) {
	got, err := Sign(kaSecret, kaID, time.Unix(kaUnix, 0), []byte(kaPayload))
	if err != nil {
		t.Fatal(err)
	}
	if got != kaSignature {
		t.Fatalf("Sign = %s, want %s", got, kaSignature)
	}
	h := headers(kaID, strconv.Itoa(kaUnix), kaSignature)
	if err := Verify([]string{kaSecret}, h, []byte(kaPayload), time.Unix(kaUnix+1, 0), 0); err != nil {
		t.Fatalf("Verify of the published example: %v", err)
	}
}

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set(HeaderID, id)
	}
	if ts != "" {
		h.Set(HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(HeaderSignature, sig)
	}
	return h
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	if !strings.HasPrefix(a, SecretPrefix) {
		t.Fatalf("secret %q lacks the prefix", a)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, SecretPrefix))
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret decodes to %d bytes (%v), want 32", len(raw), err)
	}
	if err := ValidateSecret(a); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	secret, _ := NewSecret()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	payload := []byte(`{"type":"security.event","data":{"kind":"revoked_key_used"}}`)
	sig, err := Sign(secret, "evt_1", now, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify([]string{secret}, headers("evt_1", strconv.FormatInt(now.Unix(), 10), sig), payload, now, 0); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	secret, _ := NewSecret()
	other, _ := NewSecret()
	payload := []byte(`{"a":1}`)
	ts := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	unix := strconv.FormatInt(ts.Unix(), 10)
	good, _ := Sign(secret, "msg_1", ts, payload)
	wrongKey, _ := Sign(other, "msg_1", ts, payload)

	tests := []struct {
		name    string
		secrets []string
		h       http.Header
		payload string
		now     time.Time
		want    error // nil: accepted
	}{
		{"valid", []string{secret}, headers("msg_1", unix, good), `{"a":1}`, ts, nil},
		{"tampered payload", []string{secret}, headers("msg_1", unix, good), `{"a":2}`, ts, ErrNoMatch},
		{"payload re-serialised", []string{secret}, headers("msg_1", unix, good), `{"a": 1}`, ts, ErrNoMatch},
		{"tampered id", []string{secret}, headers("msg_2", unix, good), `{"a":1}`, ts, ErrNoMatch},
		{"tampered timestamp", []string{secret}, headers("msg_1", strconv.FormatInt(ts.Unix()+1, 10), good), `{"a":1}`, ts, ErrNoMatch},
		{"wrong secret", []string{other}, headers("msg_1", unix, good), `{"a":1}`, ts, ErrNoMatch},
		{"signed with another secret", []string{secret}, headers("msg_1", unix, wrongKey), `{"a":1}`, ts, ErrNoMatch},
		{"at the tolerance in the past", []string{secret}, headers("msg_1", unix, good), `{"a":1}`, ts.Add(DefaultTolerance), nil},
		{"one second too old", []string{secret}, headers("msg_1", unix, good), `{"a":1}`, ts.Add(DefaultTolerance + time.Second), ErrTimestampTolerance},
		{"at the tolerance in the future", []string{secret}, headers("msg_1", unix, good), `{"a":1}`, ts.Add(-DefaultTolerance), nil},
		{"one second too new", []string{secret}, headers("msg_1", unix, good), `{"a":1}`, ts.Add(-DefaultTolerance - time.Second), ErrTimestampTolerance},
		{"several signatures, one matching", []string{secret},
			headers("msg_1", unix, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,AAAA "+good+" v1,"+strings.TrimPrefix(wrongKey, "v1,")),
			`{"a":1}`, ts, nil},
		{"rotation: receiver holds two secrets", []string{other, secret}, headers("msg_1", unix, good), `{"a":1}`, ts, nil},
		{"several signatures, none matching", []string{secret},
			headers("msg_1", unix, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "+wrongKey), `{"a":1}`, ts, ErrNoMatch},
		{"missing id", []string{secret}, headers("", unix, good), `{"a":1}`, ts, ErrMissingHeader},
		{"missing timestamp", []string{secret}, headers("msg_1", "", good), `{"a":1}`, ts, ErrMissingHeader},
		{"missing signature", []string{secret}, headers("msg_1", unix, ""), `{"a":1}`, ts, ErrMissingHeader},
		{"timestamp not a number", []string{secret}, headers("msg_1", "yesterday", good), `{"a":1}`, ts, ErrInvalidTimestamp},
		{"timestamp with a sign", []string{secret}, headers("msg_1", "+"+unix, good), `{"a":1}`, ts, ErrInvalidTimestamp},
		{"timestamp in milliseconds", []string{secret}, headers("msg_1", unix+"000", good), `{"a":1}`, ts, ErrInvalidTimestamp},
		{"timestamp with a fraction", []string{secret}, headers("msg_1", unix+".5", good), `{"a":1}`, ts, ErrInvalidTimestamp},
		{"signature without version", []string{secret}, headers("msg_1", unix, strings.TrimPrefix(good, "v1,")), `{"a":1}`, ts, ErrMalformedSignature},
		{"signature v1= instead of v1,", []string{secret}, headers("msg_1", unix, "v1="+strings.TrimPrefix(good, "v1,")), `{"a":1}`, ts, ErrMalformedSignature},
		{"signature not base64", []string{secret}, headers("msg_1", unix, "v1,!!!"), `{"a":1}`, ts, ErrMalformedSignature},
		{"signature truncated", []string{secret}, headers("msg_1", unix, good[:20]), `{"a":1}`, ts, ErrMalformedSignature},
		{"only an asymmetric entry", []string{secret}, headers("msg_1", unix, "v1a,"+strings.TrimPrefix(good, "v1,")), `{"a":1}`, ts, ErrMalformedSignature},
		{"no secret", nil, headers("msg_1", unix, good), `{"a":1}`, ts, ErrInvalidSecret},
		{"secret without prefix", []string{strings.TrimPrefix(secret, SecretPrefix)}, headers("msg_1", unix, good), `{"a":1}`, ts, ErrInvalidSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secrets, tt.h, []byte(tt.payload), tt.now, 0)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if err != nil {
				// Errors name the problem, never a secret or a computed signature.
				for _, leak := range []string{secret, strings.TrimPrefix(secret, SecretPrefix), other, good, strings.TrimPrefix(good, "v1,")} {
					if strings.Contains(err.Error(), leak) {
						t.Fatalf("error %q leaks %q", err, leak)
					}
				}
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	secret, _ := NewSecret()
	ts := time.Unix(1_800_000_000, 0)
	sig, _ := Sign(secret, "m", ts, nil)
	h := headers("m", strconv.FormatInt(ts.Unix(), 10), sig)
	if err := Verify([]string{secret}, h, nil, ts.Add(time.Hour), 2*time.Hour); err != nil {
		t.Fatalf("within a custom tolerance: %v", err)
	}
	if err := Verify([]string{secret}, h, nil, ts.Add(time.Minute+time.Second), time.Minute); !errors.Is(err, ErrTimestampTolerance) {
		t.Fatalf("beyond a custom tolerance: %v", err)
	}
}

func TestSignRejects(t *testing.T) {
	good, _ := NewSecret()
	tests := []struct {
		name, secret, id string
		want             error
	}{
		{"no prefix", strings.TrimPrefix(good, SecretPrefix), "m", ErrInvalidSecret},
		{"not base64", SecretPrefix + "%%%%", "m", ErrInvalidSecret},
		{"23 bytes", SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 23)), "m", ErrInvalidSecret},
		{"65 bytes", SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 65)), "m", ErrInvalidSecret},
		{"empty id", good, "", ErrInvalidID},
		{"id with a dot", good, "a.b", ErrInvalidID},
		{"id with a space", good, "a b", ErrInvalidID},
		{"id with a newline", good, "a\r\nx-evil: 1", ErrInvalidID},
		{"id too long", good, strings.Repeat("a", 257), ErrInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Sign(tt.secret, tt.id, time.Unix(1, 0), nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Sign = %v, want %v", err, tt.want)
			}
		})
	}
	for _, n := range []int{MinSecretBytes, MaxSecretBytes} {
		s := SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, n))
		if _, err := Sign(s, "m", time.Unix(1, 0), nil); err != nil {
			t.Errorf("%d-byte secret: %v", n, err)
		}
	}
}

func TestSignatureHeaderRotation(t *testing.T) {
	cur, _ := NewSecret()
	old, _ := NewSecret()
	ts := time.Unix(1_800_000_000, 0)
	h, err := SignatureHeader([]string{cur, old}, "m", ts, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(h)); n != 2 {
		t.Fatalf("header has %d entries, want 2: %s", n, h)
	}
	for _, receiver := range []string{cur, old} {
		if err := Verify([]string{receiver}, headers("m", strconv.FormatInt(ts.Unix(), 10), h), []byte("x"), ts, 0); err != nil {
			t.Errorf("receiver with one of the secrets: %v", err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	secret, _ := NewSecret()
	ts := time.Unix(1_800_000_000, 0)
	payload := []byte(strings.Repeat(`{"k":"v"}`, 100))
	sig, _ := Sign(secret, "msg_1", ts, payload)
	h := headers("msg_1", strconv.FormatInt(ts.Unix(), 10), sig)
	for b.Loop() {
		if err := Verify([]string{secret}, h, payload, ts, 0); err != nil {
			b.Fatal(err)
		}
	}
}
