// Package tlsconf configures TLS for `thauth serve`: a hardened server configuration whose
// certificate is re-read from disk without a restart, Strict-Transport-Security, a plain-HTTP
// redirect listener, automatic certificates over ACME, and a local development CA.
//
// # Threat model
//
// TLS protects API keys, decisions and dashboard sessions against eavesdropping and tampering
// on the network. The configuration accepts TLS 1.2 and 1.3 only, and for TLS 1.2 only ECDHE
// key exchange with AEAD ciphers (forward secrecy, no CBC, no RSA key transport, no 3DES); key
// exchange offers the hybrid post-quantum groups X25519MLKEM768 and SecP256r1MLKEM768 ahead of
// X25519 and P-256. HSTS keeps browsers that have once reached the server over HTTPS from being
// downgraded to plain HTTP. The redirect listener never serves content or accepts request bodies
// over plain HTTP, and validates the Host header before echoing it into a Location.
//
// It does not protect the private key on disk (file permissions do), nor a client that does not
// verify certificates, nor the first plain-HTTP request of a browser that has never seen the
// HSTS header (HSTS preloading is the operator's choice).
package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thauth/thauth"
)

// DefaultCheckInterval is how often, at most, the certificate files are looked at again.
const DefaultCheckInterval = 10 * time.Second

// Options configure ServerConfig.
type Options struct {
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // default time.Now
	// CheckInterval is the least time between two looks at the certificate files' size and
	// modification time during handshakes. Default DefaultCheckInterval.
	CheckInterval time.Duration
}

// hardened returns the TLS settings every server configuration of Thauth shares.
func hardened() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// TLS 1.2 only; TLS 1.3 suites are fixed by Go (all AEAD). ECDHE for forward secrecy,
		// AEAD only. Go orders them by the client's hardware support.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		// Setting this list replaces Go's default, so the hybrid post-quantum groups must be
		// named to stay enabled.
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       []string{"h2", "http/1.1"},
	}
}

// ServerConfig returns a TLS configuration for serving HTTPS with the certificate and key in
// the given PEM files, and the Reloader that owns them. The configuration has no static
// Certificates: every handshake asks the Reloader, which re-reads the files when their size or
// modification time changed (looked at no more often than opts.CheckInterval), or when Reload is
// called (on SIGHUP, say). Connections already open keep the certificate they started with.
//
// The files must hold a valid certificate chain (leaf first) and a matching private key; if
// they do not, ServerConfig fails with an EInvalid *thauth.Error naming the file. An expired
// certificate is logged as an error but served (clients will refuse it; the operator sees why).
// Use the configuration with http.Server.ServeTLS(l, "", "").
func ServerConfig(certFile, keyFile string, opts Options) (*tls.Config, *Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: opts.Logger, now: opts.Now, interval: opts.CheckInterval}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.interval <= 0 {
		r.interval = DefaultCheckInterval
	}
	st, err := r.stat()
	if err != nil {
		return nil, nil, err
	}
	cert, err := r.load(false)
	if err != nil {
		return nil, nil, err
	}
	r.cert.Store(cert)
	r.loaded, r.lastCheck = st, r.now()
	r.logLoaded("TLS certificate loaded", cert)

	cfg := hardened()
	cfg.GetCertificate = r.GetCertificate
	return cfg, r, nil
}

// Reloader holds the current certificate of a ServerConfig and replaces it when its files
// change. It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time
	interval          time.Duration

	cert atomic.Pointer[tls.Certificate]

	mu          sync.Mutex // held while looking at or loading the files
	loaded      stamp      // the files the current certificate came from
	failed      stamp      // files that failed to load; not retried until they change again
	statFailing bool       // the files could not be looked at last time (logged once)
	lastCheck   time.Time
}

// stamp identifies a version of the two files without reading them.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// GetCertificate returns the current certificate, first re-reading the files if they changed
// and the last look is at least the check interval old. It never fails once ServerConfig has
// succeeded: if new files are invalid the previous certificate is kept and the error logged
// (once per version of the files). Only one handshake at a time looks at the files; the others
// get the current certificate without waiting.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.mu.TryLock() {
		now := r.now()
		if d := now.Sub(r.lastCheck); d >= r.interval || d < 0 {
			r.lastCheck = now
			r.checkLocked()
		}
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// Reload re-reads the files now, whether or not they look changed. If they are invalid (or the
// new certificate has expired) it keeps the current certificate, logs and returns the error
// (an EInvalid *thauth.Error).
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastCheck = r.now()
	st, err := r.stat()
	if err != nil {
		r.log.Error("TLS certificate reload failed; keeping the current certificate", "err", err)
		return err
	}
	return r.loadLocked(st)
}

// Leaf returns the parsed leaf certificate currently served (for status pages and expiry
// monitoring).
func (r *Reloader) Leaf() *x509.Certificate { return r.cert.Load().Leaf }

func (r *Reloader) checkLocked() {
	st, err := r.stat()
	if err != nil {
		if !r.statFailing { // log once, not on every handshake
			r.statFailing = true
			r.log.Error("TLS certificate files unreadable; keeping the current certificate", "err", err)
		}
		return
	}
	r.statFailing = false
	if st == r.loaded || st == r.failed {
		return
	}
	_ = r.loadLocked(st) // logged there
}

// loadLocked loads the files whose stamp (taken before reading) is st.
func (r *Reloader) loadLocked(st stamp) error {
	cert, err := r.load(true)
	if err != nil {
		r.failed = st
		r.log.Error("TLS certificate reload failed; keeping the current certificate", "err", err,
			"serial", serial(r.cert.Load().Leaf))
		return err
	}
	r.loaded, r.failed = st, stamp{}
	old := r.cert.Swap(cert)
	if old != nil && old.Leaf != nil && bytes.Equal(old.Leaf.Raw, cert.Leaf.Raw) {
		return nil // touched, not changed
	}
	r.logLoaded("TLS certificate reloaded", cert)
	return nil
}

// load reads and checks the files. If reloading, an expired certificate is refused.
func (r *Reloader) load(reloading bool) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, &thauth.Error{
			Code:    thauth.EInvalid,
			Message: fmt.Sprintf("TLS certificate %s with key %s: %v", r.certFile, r.keyFile, err),
			Err:     err,
		}
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &thauth.Error{Code: thauth.EInvalid, Message: "TLS certificate " + r.certFile + " cannot be parsed", Err: err}
		}
	}
	if now := r.now(); now.After(cert.Leaf.NotAfter) {
		if reloading {
			return nil, thauth.Errorf(thauth.EInvalid, "TLS certificate %s expired at %s", r.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		r.log.Error("TLS certificate has expired; clients will refuse it", "file", r.certFile, "not_after", cert.Leaf.NotAfter)
	}
	return &cert, nil
}

func (r *Reloader) stat() (stamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return stamp{}, &thauth.Error{Code: thauth.EInvalid, Message: "TLS certificate file " + r.certFile + " is unreadable", Err: err}
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return stamp{}, &thauth.Error{Code: thauth.EInvalid, Message: "TLS key file " + r.keyFile + " is unreadable", Err: err}
	}
	return stamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

func (r *Reloader) logLoaded(msg string, c *tls.Certificate) {
	r.log.Info(msg, "file", r.certFile, "serial", serial(c.Leaf), "subject", c.Leaf.Subject.String(),
		"dns_names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter)
}

func serial(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}

// HSTS sets Strict-Transport-Security (two years, subdomains included) on responses to
// requests that arrived over TLS, and only those: browsers ignore it over plain HTTP, and
// sending it there would suggest HTTPS was in use when it was not.
func HSTS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// RedirectHandler serves the plain-HTTP listener (--http-redirect-addr): GET and HEAD requests
// get 308 Permanent Redirect to https://<host>[:httpsPort]<path>?<query>, where host is the
// request's Host without its port; httpsPort "" or "443" is left out. Other methods get 400,
// because their bodies have already crossed the network in clear and must not be replayed.
// A Host header that is not a plain DNS name or IP address (no user info, path, percent or
// control characters) gets 400, so the Location header cannot be steered elsewhere.
func RedirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Connection", "close")
			http.Error(w, "plain HTTP is not served: send this request over HTTPS", http.StatusBadRequest)
			return
		}
		host, ok := redirectHost(r.Host)
		if !ok {
			http.Error(w, "invalid Host header", http.StatusBadRequest)
			return
		}
		if httpsPort != "" && httpsPort != "443" {
			host += ":" + httpsPort
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// redirectHost returns the host part of a Host header, lower-cased, with IPv6 addresses in
// brackets, or false if it is not a DNS name or IP address (with an optional numeric port).
func redirectHost(hostport string) (string, bool) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", false
		}
		host, port = hostport[1:end], hostport[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return "", false
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", false
		}
		host = "[" + ip.String() + "]"
	} else {
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			host, port = hostport[:i], hostport[i:]
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if !validDNSName(host, false) {
			return "", false
		}
	}
	if port != "" {
		for _, c := range []byte(port[1:]) {
			if c < '0' || c > '9' {
				return "", false
			}
		}
	}
	return host, true
}

// validDNSName reports whether s is a DNS name (or dotted IPv4 address): dot-separated labels
// of 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen, 253 bytes at
// most. With wildcard, a leading "*." label is allowed.
func validDNSName(s string, wildcard bool) bool {
	if wildcard {
		s = strings.TrimPrefix(s, "*.")
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return true
}

// IsLoopback reports whether the listen address addr ("host:port", or a bare host) only
// accepts connections from this machine: a loopback IP address or "localhost". An empty host
// (":8080"), an unspecified address (0.0.0.0, ::) or any other name or address is not loopback.
// `thauth serve` warns when it serves plain HTTP on a non-loopback address.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// randomSerial returns a random positive 128-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	return randInt(new(big.Int).Lsh(big.NewInt(1), 128))
}
