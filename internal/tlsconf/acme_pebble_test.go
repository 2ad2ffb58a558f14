package tlsconf

// An end-to-end ACME test against Pebble, Let's Encrypt's ACME test server, run in-process
// (github.com/letsencrypt/pebble/v2, a test-only dependency). Pebble's validation authority
// resolves names through a tiny DNS server below that answers 127.0.0.1 for every name, and
// connects to the ports of this test's listeners, so real http-01 and tls-alpn-01 validations
// run over loopback without touching the network.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

func TestACMEAgainstPebble(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tlsALPN    bool // serve tls-alpn-01 on the port Pebble validates; otherwise only http-01 can succeed
		wantVerify string
	}{
		{name: "tls-alpn-01", tlsALPN: true},
		{name: "http-01", tlsALPN: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // no random validation delays
			t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no deliberately rejected nonces
			t.Setenv("PEBBLE_AUTHZREUSE", "0")
			logger := log.New(io.Discard, "", 0)

			// The ports Pebble validates on: the port-80 listener (challenge + redirect) and the
			// port-443 listener (the HTTPS server itself).
			httpL := listen(t)
			tlsL := listen(t)
			validatePort := tlsL.Addr().(*net.TCPAddr).Port
			if !tc.tlsALPN {
				dead := listen(t)
				validatePort = dead.Addr().(*net.TCPAddr).Port
				dead.Close()
			}

			store := db.NewMemoryStore()
			authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
			validator := va.New(logger, httpL.Addr().(*net.TCPAddr).Port, validatePort, false, loopbackDNS(t), store)
			front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
			pebble := httptest.NewTLSServer(front.Handler())
			defer pebble.Close()

			cacheDir := filepath.Join(t.TempDir(), "acme")
			m, err := newACMEManager([]string{"auth.thauth.test"}, cacheDir, "ops@thauth.test", pebble.URL+"/dir", pebble.Client())
			if err != nil {
				t.Fatal(err)
			}
			cfg := acmeTLSConfig(m)
			mux := http.NewServeMux()
			mux.Handle("/.well-known/acme-challenge/", acmeChallengeHandler(m))
			mux.Handle("/", RedirectHandler(""))
			serveOn(t, httpL, mux)
			serveOn(t, tls.NewListener(tlsL, cfg), HSTS(okHandler))

			roots := x509.NewCertPool()
			roots.AddCert(authority.GetRootCert(0).Cert)
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: "auth.thauth.test"},
				ForceAttemptHTTP2:   true,
				TLSHandshakeTimeout: time.Minute, // the first handshake waits for issuance
			}}
			resp, err := client.Get("https://" + tlsL.Addr().String() + "/")
			if err != nil {
				t.Fatalf("first request (obtains the certificate): %v", err)
			}
			resp.Body.Close()
			leaf := resp.TLS.PeerCertificates[0]
			if resp.ProtoMajor != 2 || leaf.DNSNames[0] != "auth.thauth.test" || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
				t.Errorf("%s, certificate for %v issued by %q", resp.Proto, leaf.DNSNames, leaf.Issuer.CommonName)
			}
			if _, err := os.Stat(filepath.Join(cacheDir, "auth.thauth.test")); err != nil {
				t.Errorf("certificate not cached: %v", err)
			}

			// A fresh manager over the same cache serves the certificate without the CA.
			pebble.Close()
			m2, err := newACMEManager([]string{"auth.thauth.test"}, cacheDir, "", "https://127.0.0.1:1/dir", nil)
			if err != nil {
				t.Fatal(err)
			}
			addr := serve(t, acmeTLSConfig(m2), okHandler)
			conn, err := dial(addr, &tls.Config{RootCAs: roots, ServerName: "auth.thauth.test"})
			if err != nil {
				t.Fatalf("from the cache: %v", err)
			}
			if got := conn.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(leaf.SerialNumber) != 0 {
				t.Errorf("cached serial %v, want %v", got, leaf.SerialNumber)
			}
			conn.Close()
		})
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func serveOn(t *testing.T, l net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// loopbackDNS runs a DNS server over TCP (the transport Pebble uses) that answers every A
// query with 127.0.0.1 and every other query with no records. It returns its address.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				for {
					var n uint16
					if binary.Read(c, binary.BigEndian, &n) != nil {
						return
					}
					q := make([]byte, n)
					if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
						return
					}
					i := 12 // the question's name: labels up to the zero byte
					for i < len(q) && q[i] != 0 {
						i += int(q[i]) + 1
					}
					if i+5 > len(q) {
						return
					}
					qtype := binary.BigEndian.Uint16(q[i+1:])
					resp := append([]byte{}, q[:i+5]...)      // header and question
					resp[2], resp[3] = 0x80|(q[2]&0x01), 0x80 // response, RD echoed, RA, NOERROR
					binary.BigEndian.PutUint16(resp[4:], 1)   // QDCOUNT
					binary.BigEndian.PutUint16(resp[6:], 0)   // ANCOUNT
					binary.BigEndian.PutUint16(resp[8:], 0)   // NSCOUNT
					binary.BigEndian.PutUint16(resp[10:], 0)  // ARCOUNT
					if qtype == 1 {                           // A
						binary.BigEndian.PutUint16(resp[6:], 1)
						resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
					}
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...))
				}
			}()
		}
	}()
	return l.Addr().String()
}
