package thauth

import "testing"

func BenchmarkParseToken(b *testing.B) {
	tok, _, hash := NewToken()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseToken(tok); !ok || !TokenMatches(tok, hash) {
			b.Fatal("token rejected")
		}
	}
}

func BenchmarkValidateResource(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if ValidateResource("prod/api/v1/invoices/*") != "" {
			b.Fatal("rejected")
		}
	}
}
