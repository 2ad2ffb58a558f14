package tlsconf

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/thauth/thauth"
	"golang.org/x/crypto/acme"
)

func TestACMEConfigValidation(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		domains   []string
		cacheDir  string
		directory string
	}{
		{"no domains", nil, dir, ""},
		{"wildcard", []string{"*.example.com"}, dir, ""},
		{"single label", []string{"localhost"}, dir, ""},
		{"IP address", []string{"192.0.2.1"}, dir, ""},
		{"bad characters", []string{"exa mple.com"}, dir, ""},
		{"no cache dir", []string{"auth.example.com"}, "", ""},
		{"plain HTTP directory", []string{"auth.example.com"}, dir, "http://acme.example.com/directory"},
		{"not a URL", []string{"auth.example.com"}, dir, "acme-v02.api.letsencrypt.org/directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ACMEConfig(tc.domains, tc.cacheDir, "", tc.directory)
			if thauth.ErrorCodeOf(err) != thauth.EInvalid {
				t.Errorf("error = %v, want EInvalid", err)
			}
		})
	}
}

// TestACMEConfigServesCachedCertificateOnlyForItsDomains runs a real TLS server on the ACME
// configuration with a certificate already in the cache directory: the configured domain gets
// it (over HTTP/2, with the hardened settings); any other name is refused without contacting
// the CA.
func TestACMEConfigServesCachedCertificateOnlyForItsDomains(t *testing.T) {
	ca := newTestCA(t)
	cacheDir := filepath.Join(t.TempDir(), "acme")
	cfg, challenge, err := ACMEConfig([]string{"Auth.Example.COM.", "auth.example.com"}, cacheDir, "ops@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cacheDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v, %v", st, err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || !slices.Contains(cfg.NextProtos, acme.ALPNProto) || !slices.Contains(cfg.NextProtos, "h2") {
		t.Errorf("config: MinVersion %x, NextProtos %v", cfg.MinVersion, cfg.NextProtos)
	}
	// autocert's cache format: private key PEM, then the chain.
	pp := ca.issue(t, leafOpts{serial: 42, names: []string{"auth.example.com"}})
	if err := os.WriteFile(filepath.Join(cacheDir, "auth.example.com"), append(pp.key, pp.cert...), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg, HSTS(okHandler))

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: "auth.example.com"},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("request for the configured domain: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || peerSerial(resp.TLS) != 42 {
		t.Errorf("protocol %s, serial %d", resp.Proto, peerSerial(resp.TLS))
	}

	_, err = dial(addr, &tls.Config{RootCAs: ca.pool, ServerName: "evil.example.com"})
	if err == nil {
		t.Errorf("handshake for a domain not configured succeeded")
	}
	_, err = cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example.com"})
	if err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("GetCertificate(other domain) = %v, want the host policy's refusal", err)
	}

	t.Run("challenge handler", func(t *testing.T) {
		for _, tc := range []struct {
			host, path string
			status     int
		}{
			{"auth.example.com", "/.well-known/acme-challenge/unknown-token", http.StatusNotFound},
			{"auth.example.com:8080", "/.well-known/acme-challenge/unknown-token", http.StatusNotFound},
			{"evil.example.com", "/.well-known/acme-challenge/unknown-token", http.StatusForbidden},
			{"evil.example.com:80", "/.well-known/acme-challenge/unknown-token", http.StatusForbidden},
			{"auth.example.com", "/", http.StatusNotFound},
			{"auth.example.com", "/v1/check", http.StatusNotFound},
		} {
			r := httptest.NewRequest("GET", tc.path, nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			challenge.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Errorf("GET %s%s: %d, want %d", tc.host, tc.path, w.Code, tc.status)
			}
		}
	})
}

// TestACMEConfigDirectoryURL: the Manager talks to the configured directory, not Let's Encrypt.
// The fake CA serves a directory and a nonce, then refuses the account; the request log shows
// the client followed our directory.
func TestACMEConfigDirectoryURL(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string
	)
	var fake *httptest.Server
	fake = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Replay-Nonce", "bm9uY2U")
		switch r.URL.Path {
		case "/dir":
			json.NewEncoder(w).Encode(map[string]any{
				"newNonce":   fake.URL + "/nonce",
				"newAccount": fake.URL + "/account",
				"newOrder":   fake.URL + "/order",
			})
		case "/nonce":
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"type":"urn:ietf:params:acme:error:unauthorized","detail":"fake CA refuses"}`))
		}
	}))
	defer fake.Close()

	cfg, _, err := ACMEConfig([]string{"auth.example.com"}, t.TempDir(), "", fake.URL+"/dir")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "auth.example.com"})
	if err == nil || !strings.Contains(err.Error(), "fake CA refuses") {
		t.Errorf("GetCertificate error = %v, want the fake CA's refusal", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(paths, "GET /dir") || !slices.Contains(paths, "POST /account") {
		t.Errorf("requests to the fake CA: %v", paths)
	}
}
