package httpserver

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestUseForwardedFor(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.7, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{trustedProxies: trusted}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer: header ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9:5000"},
		{"trusted peer, no header", "10.1.2.3:5000", nil, "10.1.2.3:5000"},
		{"one proxy", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1:0"},
		{"client-written entries left of the client are ignored", "10.1.2.3:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1:0"},
		{"a chain of trusted proxies", "10.1.2.3:5000", []string{"198.51.100.1, 192.168.1.7", "10.9.9.9"}, "198.51.100.1:0"},
		{"only proxies: the leftmost", "10.1.2.3:5000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1:0"},
		{"garbage: keep the peer", "10.1.2.3:5000", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3:5000"},
		{"IPv6 proxy and client", "[fd00::1]:443", []string{"2001:db8::7"}, "[2001:db8::7]:0"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.1"}, "198.51.100.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			s.useForwardedFor(r)
			if r.RemoteAddr != tc.want {
				t.Errorf("RemoteAddr = %q, want %q", r.RemoteAddr, tc.want)
			}
			if peerIP(r) != clientInfo(r).IP {
				t.Errorf("peerIP %q and clientInfo %q disagree", peerIP(r), clientInfo(r).IP)
			}
		})
	}
	if _, err := ParseTrustedProxies("10.0.0.0/33"); err == nil {
		t.Error("a bad prefix parsed")
	}
	if got, _ := ParseTrustedProxies(" 127.0.0.1 "); len(got) != 1 || got[0] != netip.MustParsePrefix("127.0.0.1/32") {
		t.Errorf("single address = %v", got)
	}
}
