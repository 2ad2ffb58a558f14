package tlsconf

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/thauth/thauth"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACMEConfig returns a TLS configuration that obtains and renews certificates for domains
// automatically over ACME (`--acme-domain`), using golang.org/x/crypto/acme/autocert, and the
// handler that answers the CA's http-01 challenges.
//
//   - domains: the exact names to obtain certificates for (no wildcards: http-01 and
//     tls-alpn-01 cannot prove them). A handshake for any other name fails without contacting
//     the CA, so clients cannot make Thauth exhaust the CA's rate limits.
//   - cacheDir: where the account key and certificates are kept (created 0700). Keep it across
//     restarts, or the CA's rate limits will be hit.
//   - email: optional contact address for expiry notices from the CA.
//   - directoryURL: the ACME directory; "" means Let's Encrypt production
//     (acme.LetsEncryptURL). Use the staging directory while trying things out.
//
// By accepting a certificate from the CA the operator accepts its terms of service; Thauth does
// so on their behalf. The TLS configuration has the same hardening as ServerConfig and also
// answers tls-alpn-01 challenges, so either port 443 or port 80 must be reachable from the CA.
// The returned handler serves /.well-known/acme-challenge/ for domains (403 for others) and
// 404 for every other path; mount it on the port-80 listener in front of RedirectHandler:
//
//	mux := http.NewServeMux()
//	mux.Handle("/.well-known/acme-challenge/", challenge)
//	mux.Handle("/", tlsconf.RedirectHandler(httpsPort))
//
// Errors: EInvalid for no or invalid domains, a missing cacheDir or a directoryURL that is not
// an https URL (http is allowed only for loopback test servers); EInternal if cacheDir cannot be
// created.
func ACMEConfig(domains []string, cacheDir, email, directoryURL string) (*tls.Config, http.Handler, error) {
	m, err := newACMEManager(domains, cacheDir, email, directoryURL, nil)
	if err != nil {
		return nil, nil, err
	}
	return acmeTLSConfig(m), acmeChallengeHandler(m), nil
}

// acmeChallengeHandler answers http-01 challenges and 404s everything else. autocert checks
// the Host header against the host policy as it is, port included; the CA always validates on
// port 80 and sends no port, but a listener on another port (behind a port forward, or in
// tests) would see one, so it is stripped first.
func acmeChallengeHandler(m *autocert.Manager) http.Handler {
	h := m.HTTPHandler(http.NotFoundHandler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host, _, err := net.SplitHostPort(r.Host); err == nil {
			r2 := *r
			r2.Host = host
			r = &r2
		}
		h.ServeHTTP(w, r)
	})
}

// newACMEManager builds the autocert.Manager; httpClient, when set, is used to talk to the CA
// (tests use it to trust a local ACME server's certificate).
func newACMEManager(domains []string, cacheDir, email, directoryURL string, httpClient *http.Client) (*autocert.Manager, error) {
	if len(domains) == 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "ACME needs at least one domain")
	}
	names := make([]string, 0, len(domains))
	for _, d := range domains {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if _, err := netip.ParseAddr(d); err == nil || !validDNSName(d, false) || !strings.Contains(d, ".") {
			return nil, thauth.Errorf(thauth.EInvalid, "ACME domain %q is not a fully qualified DNS name (wildcards are not supported)", d)
		}
		if !slices.Contains(names, d) {
			names = append(names, d)
		}
	}
	if cacheDir == "" {
		return nil, thauth.Errorf(thauth.EInvalid, "ACME needs a cache directory to keep its account key and certificates")
	}
	if directoryURL != "" {
		u, err := url.Parse(directoryURL)
		if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && IsLoopback(u.Host)) {
			return nil, thauth.Errorf(thauth.EInvalid, "ACME directory URL must be an https URL")
		}
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, thauth.Internal(err, "cannot create the ACME cache directory %s", cacheDir)
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cacheDir),
		HostPolicy: autocert.HostWhitelist(names...),
		Email:      email,
	}
	if directoryURL != "" || httpClient != nil {
		m.Client = &acme.Client{DirectoryURL: directoryURL, HTTPClient: httpClient, UserAgent: "thauth"}
	}
	return m, nil
}

// acmeTLSConfig applies the hardening of ServerConfig to autocert's configuration, keeping its
// GetCertificate and the acme-tls/1 protocol.
func acmeTLSConfig(m *autocert.Manager) *tls.Config {
	cfg := hardened()
	cfg.GetCertificate = m.GetCertificate
	cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
	return cfg
}
