package totp

import (
	"bytes"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"
)

// RFC 6238 appendix B test vectors (SHA-1, secret "12345678901234567890"), truncated to six
// digits as authenticator apps show them.
func TestRFC6238Vectors(t *testing.T) {
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // base32 of "12345678901234567890"
	g := New("Thauth")
	for _, tc := range []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
	} {
		at := time.Unix(tc.unix, 0)
		got, err := Code(secret, at)
		if err != nil || got != tc.code {
			t.Errorf("Code at %d = %q, %v; want %q", tc.unix, got, err, tc.code)
		}
		step, ok := g.Validate(secret, tc.code, at)
		if !ok || step != tc.unix/30 {
			t.Errorf("Validate(%q) at %d = %d, %v; want step %d", tc.code, tc.unix, step, ok, tc.unix/30)
		}
	}
}

func TestValidateWindow(t *testing.T) {
	g := New("Thauth")
	secret, _, _, err := g.Generate("ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 15, 0, time.UTC)
	cur := now.Unix() / 30
	for _, tc := range []struct {
		offset time.Duration
		ok     bool
	}{{-60 * time.Second, false}, {-30 * time.Second, true}, {0, true}, {30 * time.Second, true}, {60 * time.Second, false}} {
		code, err := Code(secret, now.Add(tc.offset))
		if err != nil {
			t.Fatal(err)
		}
		step, ok := g.Validate(secret, code, now)
		if ok != tc.ok {
			t.Errorf("code from %v: ok = %v, want %v", tc.offset, ok, tc.ok)
		}
		if ok && step != cur+int64(tc.offset/(30*time.Second)) {
			t.Errorf("code from %v: step %d, want %d", tc.offset, step, cur+int64(tc.offset/(30*time.Second)))
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := g.Validate(secret, bad, now); ok {
			t.Errorf("Validate(%q) accepted", bad)
		}
	}
}

func TestGenerate(t *testing.T) {
	g := New("Thauth")
	secret, uri, img, err := g.Generate("ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 32 {
		t.Errorf("secret length %d, want 32 base32 characters (160 bits)", len(secret))
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("uri %q is not an otpauth://totp URI", uri)
	}
	q := u.Query()
	if q.Get("secret") != secret || q.Get("issuer") != "Thauth" || q.Get("digits") != "6" || q.Get("period") != "30" ||
		!strings.EqualFold(q.Get("algorithm"), "SHA1") {
		t.Errorf("uri parameters %v", q)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Errorf("QR code is not a PNG: %v", err)
	}
	other, _, _, _ := g.Generate("ada@example.com")
	if other == secret {
		t.Error("two secrets are equal")
	}
}
