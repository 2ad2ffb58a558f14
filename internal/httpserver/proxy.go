package httpserver

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses behind reverse proxies.
//
// Rate limits, the abuse detector's IP blocks, sessions and the audit log all key on the
// client's address. Behind a load balancer the TCP peer is the balancer: without this, one
// client guessing keys would get the balancer — every client — blocked. X-Forwarded-For is
// believed only from the configured proxies (Deps.TrustedProxies), and only as far as it was
// written by them: walking the list from the right (the hop closest to us), every address
// that is itself a trusted proxy is skipped, and the first one that is not is the client.
// What lies left of it was written by the client and is ignored. A list that does not parse
// leaves the peer address in place.

// useForwardedFor replaces r.RemoteAddr by the client address that X-Forwarded-For names when
// the peer is a trusted proxy. It is called before anything reads the address.
func (s *server) useForwardedFor(r *http.Request) {
	peer := r.RemoteAddr
	if h, _, err := net.SplitHostPort(peer); err == nil {
		peer = h
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !s.trusted(addr.Unmap()) {
		return
	}
	values := r.Header["X-Forwarded-For"]
	if len(values) == 0 {
		return
	}
	// Several header lines form one list, in order.
	hops := strings.Split(strings.Join(values, ","), ",")
	client := netip.Addr{}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return // not written by a proxy we trust: keep the peer
		}
		client = a.Unmap()
		if !s.trusted(client) {
			break
		}
	}
	if client.IsValid() {
		r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
	}
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR prefixes
// ("10.0.0.0/8, 192.168.1.7, fd00::/8").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
