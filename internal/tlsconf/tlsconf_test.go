package tlsconf

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// tlsServer starts an HTTPS server on ServerConfig over freshly issued files.
func tlsServer(t *testing.T, o leafOpts, opts Options) (ca *testCA, files *pairFiles, r *Reloader, addr string) {
	t.Helper()
	ca = newTestCA(t)
	files = newPairFiles(t)
	files.write(t, ca.issue(t, o))
	cfg, r, err := ServerConfig(files.cert, files.key, opts)
	if err != nil {
		t.Fatalf("ServerConfig: %v", err)
	}
	return ca, files, r, serve(t, cfg, HSTS(okHandler))
}

func TestServerConfigSettings(t *testing.T) {
	ca := newTestCA(t)
	files := newPairFiles(t)
	files.write(t, ca.issue(t, leafOpts{serial: 1}))
	cfg, _, err := ServerConfig(files.cert, files.key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", cfg.MinVersion)
	}
	for _, id := range cfg.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is not ECDHE with an AEAD", name)
		}
	}
	if len(cfg.Certificates) != 0 || cfg.GetCertificate == nil {
		t.Errorf("static certificates would bypass the reloader for clients without SNI")
	}
	if strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" {
		t.Errorf("NextProtos = %v", cfg.NextProtos)
	}
}

func TestHandshakeVersions(t *testing.T) {
	ca, _, _, addr := tlsServer(t, leafOpts{serial: 1}, Options{})
	for _, tc := range []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.3", tls.VersionTLS13, true},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.1 refused", tls.VersionTLS11, false},
		{"TLS 1.0 refused", tls.VersionTLS10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := dial(addr, &tls.Config{RootCAs: ca.pool, ServerName: "localhost", MinVersion: tc.version, MaxVersion: tc.version})
			if !tc.ok {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake with %s succeeded", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			if v := conn.ConnectionState().Version; v != tc.version {
				t.Errorf("negotiated %x, want %x", v, tc.version)
			}
		})
	}
}

// TestWeakCipherSuitesRefused offers TLS 1.2 clients one weak suite each against an RSA
// certificate (so RSA key exchange would be possible). A permissive control server accepts the
// same client, proving the client really offers the suite.
func TestWeakCipherSuitesRefused(t *testing.T) {
	ca, files, _, addr := tlsServer(t, leafOpts{serial: 1, rsa: true}, Options{})
	pair, err := tls.LoadX509KeyPair(files.cert, files.key)
	if err != nil {
		t.Fatal(err)
	}
	for _, suite := range []uint16{
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,          // no forward secrecy, CBC
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,       // no forward secrecy
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,    // CBC (Lucky13-style padding oracles)
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, // CBC
		tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,   // 64-bit block (Sweet32)
	} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			client := &tls.Config{RootCAs: ca.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}
			if conn, err := dial(addr, client); err == nil {
				conn.Close()
				t.Fatalf("handshake with %s succeeded", tls.CipherSuiteName(suite))
			}
			control := handshakeOnly(t, &tls.Config{Certificates: []tls.Certificate{pair}, CipherSuites: []uint16{suite}, MinVersion: tls.VersionTLS12})
			conn, err := dial(control, client)
			if err != nil {
				t.Skipf("control: this Go client cannot offer %s (%v)", tls.CipherSuiteName(suite), err)
			}
			conn.Close()
		})
	}
}

func TestHTTP2AndHSTS(t *testing.T) {
	ca, _, _, addr := tlsServer(t, leafOpts{serial: 1}, Options{})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + addr + "/v1/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
		t.Errorf("Strict-Transport-Security = %q", got)
	}

	plain := httptest.NewServer(HSTS(okHandler))
	defer plain.Close()
	resp, err = http.Get(plain.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
		t.Errorf("Strict-Transport-Security over plain HTTP = %q", got)
	}
}

func TestHSTSOnlyOverTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  *tls.ConnectionState
		want string
	}{
		{"TLS", &tls.ConnectionState{}, "max-age=63072000; includeSubDomains"},
		{"plain", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.TLS = tc.tls
			w := httptest.NewRecorder()
			HSTS(okHandler).ServeHTTP(w, r)
			if got := w.Header().Get("Strict-Transport-Security"); got != tc.want {
				t.Errorf("header = %q, want %q", got, tc.want)
			}
			if w.Body.String() != "ok" {
				t.Errorf("next handler not called")
			}
		})
	}
}

func peerSerial(cs *tls.ConnectionState) int64 {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return -1
	}
	return cs.PeerCertificates[0].SerialNumber.Int64()
}

// TestReloadWhileRequestsInFlight replaces the certificate files twice — in place, certificate
// before key, then by atomic rename — while one client keeps requesting over a kept-alive
// connection and another opens a new connection for every request. No request fails, the
// kept-alive connection is never dropped, and new connections get the new certificate.
func TestReloadWhileRequestsInFlight(t *testing.T) {
	logs := &logBuffer{}
	ca := newTestCA(t)
	files := newPairFiles(t)
	files.write(t, ca.issue(t, leafOpts{serial: 1}))
	// Look at the files on every handshake, so the checks race with the writes.
	cfg, _, err := ServerConfig(files.cert, files.key, Options{Logger: logs.logger(), CheckInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond) // keep requests in flight while files change
		w.Write([]byte("ok"))
	})
	addr := serve(t, cfg, slow)

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		failures = make(chan error, 100)
		latest   atomic.Int64 // serial last seen on a new connection
		kept     = struct {
			sync.Mutex
			serials     map[int64]int
			connections int
			requests    int
		}{serials: map[int64]int{}}
	)
	get := func(c *http.Client, trace *httptrace.ClientTrace) (*http.Response, error) {
		req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
		if trace != nil {
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && string(body) != "ok" {
			err = fmt.Errorf("body %q", body)
		}
		return resp, err
	}
	wg.Go(func() { // kept-alive connection, HTTP/2
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, ForceAttemptHTTP2: true}}
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if !i.Reused {
				kept.Lock()
				kept.connections++
				kept.Unlock()
			}
		}}
		for !stop.Load() {
			resp, err := get(c, trace)
			if err != nil {
				failures <- fmt.Errorf("kept-alive client: %w", err)
				return
			}
			kept.Lock()
			kept.serials[peerSerial(resp.TLS)]++
			kept.requests++
			kept.Unlock()
		}
	})
	for range 2 {
		wg.Go(func() { // a new connection, hence a handshake, per request
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}, DisableKeepAlives: true}}
			for !stop.Load() {
				resp, err := get(c, nil)
				if err != nil {
					failures <- fmt.Errorf("new-connection client: %w", err)
					return
				}
				latest.Store(peerSerial(resp.TLS))
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) || len(failures) > 0 {
				stop.Store(true)
				wg.Wait()
				close(failures)
				for err := range failures {
					t.Error(err)
				}
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	keptRequests := func() int { kept.Lock(); defer kept.Unlock(); return kept.requests }

	waitFor("first requests", func() bool { return latest.Load() == 1 && keptRequests() > 5 })
	files.write(t, ca.issue(t, leafOpts{serial: 2}))
	waitFor("serial 2 on new connections", func() bool { return latest.Load() == 2 })
	n := keptRequests()
	files.replaceAtomically(t, ca.issue(t, leafOpts{serial: 3}))
	waitFor("serial 3 on new connections", func() bool { return latest.Load() == 3 && keptRequests() > n+5 })

	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	kept.Lock()
	defer kept.Unlock()
	if kept.connections != 1 || len(kept.serials) != 1 || kept.serials[1] == 0 {
		t.Errorf("kept-alive client: %d connections, serials %v; want one connection on serial 1 throughout", kept.connections, kept.serials)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("reload not logged:\n%s", logs)
	}
}

// TestReloadKeepsOldCertificateOnInvalidFiles: every kind of bad replacement leaves the current
// certificate in place, through Reload (which reports the error) and through the automatic
// check (which logs it once per version of the files).
func TestReloadKeepsOldCertificateOnInvalidFiles(t *testing.T) {
	ca := newTestCA(t)
	good1 := ca.issue(t, leafOpts{serial: 1})
	good2 := ca.issue(t, leafOpts{serial: 2})
	expired := ca.issue(t, leafOpts{serial: 3, notAfter: time.Now().Add(-time.Minute)})
	for _, tc := range []struct {
		name    string
		bad     pemPair
		mention string
	}{
		{"garbage certificate", pemPair{[]byte("not a certificate"), good1.key}, "PEM"},
		{"key of another certificate", pemPair{good2.cert, good1.key}, "private key does not match"},
		{"empty key", pemPair{good1.cert, nil}, "PEM"},
		{"expired certificate", expired, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			clk := &clock{t: time.Now()}
			files := newPairFiles(t)
			files.write(t, good1)
			cfg, r, err := ServerConfig(files.cert, files.key, Options{Logger: logs.logger(), Now: clk.Now, CheckInterval: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			serialNow := func() int64 {
				c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
				if err != nil {
					t.Fatalf("GetCertificate: %v", err)
				}
				return c.Leaf.SerialNumber.Int64()
			}

			files.write(t, tc.bad)
			err = r.Reload()
			if thauth.ErrorCodeOf(err) != thauth.EInvalid || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Reload error = %v, want EInvalid mentioning %q", err, tc.mention)
			}
			if s := serialNow(); s != 1 {
				t.Errorf("after a failed Reload the served serial is %d, want 1", s)
			}

			// The automatic path: write the bad files again (a new version), look three times.
			files.write(t, tc.bad)
			for range 3 {
				clk.Advance(11 * time.Second)
				if s := serialNow(); s != 1 {
					t.Errorf("served serial %d, want 1", s)
				}
			}
			if n := strings.Count(logs.String(), "TLS certificate reload failed"); n != 2 {
				t.Errorf("%d failure log lines, want 2 (Reload, then once for the new version):\n%s", n, logs)
			}

			// Fixed files are picked up at the next look.
			files.write(t, good2)
			if s := serialNow(); s != 1 {
				t.Errorf("new files seen before the check interval passed (serial %d)", s)
			}
			clk.Advance(11 * time.Second)
			if s := serialNow(); s != 2 {
				t.Errorf("served serial %d after fixing the files, want 2", s)
			}
			if r.Leaf().SerialNumber.Int64() != 2 {
				t.Errorf("Leaf serial = %v", r.Leaf().SerialNumber)
			}
		})
	}
}

func TestReloadOnDemandAndMissingFiles(t *testing.T) {
	logs := &logBuffer{}
	clk := &clock{t: time.Now()}
	ca := newTestCA(t)
	files := newPairFiles(t)
	files.write(t, ca.issue(t, leafOpts{serial: 1}))
	cfg, r, err := ServerConfig(files.cert, files.key, Options{Logger: logs.logger(), Now: clk.Now, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	files.write(t, ca.issue(t, leafOpts{serial: 2}))
	if err := r.Reload(); err != nil { // SIGHUP: no waiting for the interval
		t.Fatal(err)
	}
	if c, _ := cfg.GetCertificate(&tls.ClientHelloInfo{}); c.Leaf.SerialNumber.Int64() != 2 {
		t.Errorf("serial after Reload = %v", c.Leaf.SerialNumber)
	}

	if err := os.Remove(files.key); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clk.Advance(2 * time.Hour)
		if c, _ := cfg.GetCertificate(&tls.ClientHelloInfo{}); c.Leaf.SerialNumber.Int64() != 2 {
			t.Errorf("serial with the key file gone = %v", c.Leaf.SerialNumber)
		}
	}
	if n := strings.Count(logs.String(), "TLS certificate files unreadable"); n != 1 {
		t.Errorf("%d 'unreadable' log lines, want 1:\n%s", n, logs)
	}
	if err := r.Reload(); thauth.ErrorCodeOf(err) != thauth.EInvalid || !strings.Contains(err.Error(), files.key) {
		t.Errorf("Reload with the key file gone: %v", err)
	}
}

func TestServerConfigErrors(t *testing.T) {
	ca := newTestCA(t)
	one := ca.issue(t, leafOpts{serial: 1})
	other := ca.issue(t, leafOpts{serial: 2})
	for _, tc := range []struct {
		name    string
		files   *pemPair
		mention string
	}{
		{"missing files", nil, "unreadable"},
		{"mismatched key", &pemPair{other.cert, one.key}, "private key does not match"},
		{"not PEM", &pemPair{[]byte("hello"), one.key}, "PEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := newPairFiles(t)
			if tc.files != nil {
				files.write(t, *tc.files)
			}
			_, _, err := ServerConfig(files.cert, files.key, Options{})
			if thauth.ErrorCodeOf(err) != thauth.EInvalid || !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), files.dir) {
				t.Errorf("error = %v, want EInvalid naming the file and mentioning %q", err, tc.mention)
			}
		})
	}

	t.Run("expired certificate starts, logged", func(t *testing.T) {
		logs := &logBuffer{}
		files := newPairFiles(t)
		files.write(t, ca.issue(t, leafOpts{serial: 9, notAfter: time.Now().Add(-time.Hour)}))
		if _, _, err := ServerConfig(files.cert, files.key, Options{Logger: logs.logger()}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "TLS certificate has expired") {
			t.Errorf("not logged:\n%s", logs)
		}
	})
}

func TestRedirectHandler(t *testing.T) {
	for _, tc := range []struct {
		name, method, host, target, port string
		status                           int
		location                         string
	}{
		{"GET with port", "GET", "example.com", "/a/b?x=1&y=%20", "8443", 308, "https://example.com:8443/a/b?x=1&y=%20"},
		{"default port left out", "GET", "example.com", "/a", "443", 308, "https://example.com/a"},
		{"empty port left out", "GET", "example.com", "/", "", 308, "https://example.com/"},
		{"HEAD", "HEAD", "example.com", "/", "8443", 308, "https://example.com:8443/"},
		{"request port stripped", "GET", "example.com:8080", "/x", "8443", 308, "https://example.com:8443/x"},
		{"host lower-cased, trailing dot dropped", "GET", "Auth.Example.COM.", "/", "", 308, "https://auth.example.com/"},
		{"IPv4", "GET", "192.0.2.1:80", "/", "8443", 308, "https://192.0.2.1:8443/"},
		{"IPv6", "GET", "[::1]:8080", "/", "8443", 308, "https://[::1]:8443/"},
		{"IPv6 without port", "GET", "[2001:db8::1]", "/p", "", 308, "https://[2001:db8::1]/p"},
		{"double slash path stays a path", "GET", "example.com", "//evil.example/x", "", 308, "https://example.com//evil.example/x"},
		{"encoded path kept", "GET", "example.com", "/a%2Fb", "", 308, "https://example.com/a%2Fb"},
		{"POST refused", "POST", "example.com", "/v1/check", "8443", 400, ""},
		{"PUT refused", "PUT", "example.com", "/", "", 400, ""},
		{"empty host", "GET", "", "/", "", 400, ""},
		{"user info", "GET", "user@evil.example", "/", "", 400, ""},
		{"path in host", "GET", "evil.example/x", "/", "", 400, ""},
		{"backslash", "GET", "evil.example\\x", "/", "", 400, ""},
		{"percent", "GET", "ex%61mple.com", "/", "", 400, ""},
		{"space", "GET", "exa mple.com", "/", "", 400, ""},
		{"CRLF", "GET", "example.com\r\nSet-Cookie: x=1", "/", "", 400, ""},
		{"non-numeric port", "GET", "example.com:https", "/", "", 400, ""},
		{"unclosed bracket", "GET", "[::1", "/", "", 400, ""},
		{"bracketed non-IPv6", "GET", "[evil.example]", "/", "", 400, ""},
		{"IPv6 zone", "GET", "[fe80::1%25eth0]", "/", "", 400, ""},
		{"junk after bracket", "GET", "[::1]evil", "/", "", 400, ""},
		{"empty label", "GET", "a..example", "/", "", 400, ""},
		{"underscore", "GET", "a_b.example", "/", "", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://placeholder"+tc.target, nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			RedirectHandler(tc.port).ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if tc.status == 400 && w.Body.Len() == 0 {
				t.Errorf("400 without a short explanation")
			}
		})
	}

	t.Run("over a real listener", func(t *testing.T) {
		srv := httptest.NewServer(RedirectHandler("8443"))
		defer srv.Close()
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(srv.URL + "/dashboard?tab=keys")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://127.0.0.1:8443/dashboard?tab=keys"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Errorf("%d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		resp, err = c.Post(srv.URL+"/v1/check", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("POST: %d, want 400", resp.StatusCode)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.1.2.3:80", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"LOCALHOST:1", true},
		{"localhost", true},
		{"::1", true},
		{"[::ffff:127.0.0.1]:80", true},
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"192.168.1.10:8080", false},
		{"example.com:80", false},
		{"localhost.example.com:80", false},
		{"", false},
	} {
		if got := IsLoopback(tc.addr); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
