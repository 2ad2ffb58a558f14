package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func TestDevCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev-tls")
	caFile, certFile, keyFile, err := DevCert(dir, []string{"thauth.test", "192.0.2.10", "*.apps.test", "LOCALHOST"})
	if err != nil {
		t.Fatalf("DevCert: %v", err)
	}
	for _, f := range []struct {
		path string
		perm os.FileMode
	}{
		{dir, 0o700},
		{caFile, 0o644},
		{filepath.Join(dir, DevCAKeyFile), 0o600},
		{certFile, 0o644},
		{keyFile, 0o600},
	} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.perm {
			t.Errorf("%s has mode %v, want %v", f.path, st.Mode().Perm(), f.perm)
		}
	}

	ca := loadCert(t, caFile)
	leaf := loadCert(t, certFile)
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA || !ca.MaxPathLenZero {
		t.Errorf("CA: IsCA %v, key %v, MaxPathLenZero %v", ca.IsCA, ca.PublicKeyAlgorithm, ca.MaxPathLenZero)
	}
	if years := ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("CA valid for %.1f years, want 10", years)
	}
	if days := leaf.NotAfter.Sub(time.Now()).Hours() / 24; days < 824 || days > 825.1 {
		t.Errorf("certificate valid for %.1f more days, want 825", days)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("leaf: key %v, ext key usage %v", leaf.PublicKeyAlgorithm, leaf.ExtKeyUsage)
	}
	if got := strings.Join(leaf.DNSNames, ","); got != "localhost,thauth.test,*.apps.test" {
		t.Errorf("DNS names %s", got)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"localhost", "thauth.test", "x.apps.test", "127.0.0.1", "::1", "192.0.2.10"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("does not verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Errorf("verifies for example.com")
	}

	t.Run("serves HTTPS that verifies for localhost", func(t *testing.T) {
		cfg, _, err := ServerConfig(certFile, keyFile, Options{})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, cfg, okHandler)
		_, port, _ := net.SplitHostPort(addr)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		resp, err := c.Get("https://localhost:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})

	t.Run("second run keeps the CA, issues a new certificate", func(t *testing.T) {
		caPEM, _ := os.ReadFile(caFile)
		if _, _, _, err := DevCert(dir, []string{"other.test"}); err != nil {
			t.Fatal(err)
		}
		caPEM2, _ := os.ReadFile(caFile)
		if string(caPEM) != string(caPEM2) {
			t.Errorf("the CA was replaced")
		}
		leaf2 := loadCert(t, certFile)
		if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !slices.Contains(leaf2.DNSNames, "other.test") {
			t.Errorf("no new certificate: serial %v, names %v", leaf2.SerialNumber, leaf2.DNSNames)
		}
		if _, err := leaf2.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.test"}); err != nil {
			t.Errorf("new certificate does not verify under the kept CA: %v", err)
		}
		if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(leftovers) > 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}
	})
}

func TestDevCertErrors(t *testing.T) {
	t.Run("bad host", func(t *testing.T) {
		for _, h := range []string{"bad host", "a/b", "evil.example:443", "-x.test", "*.*.test"} {
			if _, _, _, err := DevCert(t.TempDir(), []string{h}); thauth.ErrorCodeOf(err) != thauth.EInvalid {
				t.Errorf("DevCert(%q) error = %v, want EInvalid", h, err)
			}
		}
	})
	t.Run("half a CA", func(t *testing.T) {
		dir := t.TempDir()
		if _, _, _, err := DevCert(dir, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, DevCAKeyFile)); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := DevCert(dir, nil)
		if thauth.ErrorCodeOf(err) != thauth.EInvalid || !strings.Contains(err.Error(), "ca-key.pem") {
			t.Errorf("error = %v, want EInvalid naming ca-key.pem", err)
		}
	})
	t.Run("CA file is not a CA", func(t *testing.T) {
		dir := t.TempDir()
		_, certFile, keyFile, err := DevCert(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, certFile, filepath.Join(dir, DevCAFile))
		copyFile(t, keyFile, filepath.Join(dir, DevCAKeyFile))
		if _, _, _, err := DevCert(dir, nil); thauth.ErrorCodeOf(err) != thauth.EInvalid || !strings.Contains(err.Error(), "not a CA") {
			t.Errorf("error = %v, want EInvalid 'not a CA'", err)
		}
	})
}

func loadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(path, strings.Replace(strings.Replace(path, "ca.pem", "ca-key.pem", 1), "cert.pem", "key.pem", 1))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pair.Leaf
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
