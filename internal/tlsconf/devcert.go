package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// File names DevCert writes in its directory.
const (
	DevCAFile      = "ca.pem"
	DevCAKeyFile   = "ca-key.pem"
	DevCertFile    = "cert.pem"
	DevCertKeyFile = "key.pem"
)

const (
	devCALifetime   = 10 * 365 * 24 * time.Hour
	devCertLifetime = 825 * 24 * time.Hour // the longest lifetime Apple platforms accept
)

// DevCert prepares HTTPS for trying Thauth on a laptop (`thauth dev-cert`). In dir (created
// 0700 if absent) it creates, unless present, a local certificate authority — ECDSA P-256,
// valid 10 years, ca.pem (0644) and ca-key.pem (0600) — and then always issues a new server
// certificate signed by it, valid 825 days, for localhost, 127.0.0.1, ::1 and the given hosts
// (DNS names, "*.name" wildcards, or IP addresses): cert.pem (0644) and key.pem (0600). It
// returns the paths of the CA certificate (to add to a trust store or pass to clients), the
// server certificate and its key. Files are replaced atomically, so a server started with
// ServerConfig on them picks the new certificate up.
//
// Anyone who can read ca-key.pem can mint certificates that a machine trusting ca.pem accepts
// for any name; it is for development only and never leaves the machine.
//
// Errors: EInvalid for a bad host or a half-present CA (one of its two files missing) or an
// unusable one; EInternal for I/O failures.
func DevCert(dir string, hosts []string) (caFile, certFile, keyFile string, err error) {
	dns, ips, err := devCertNames(hosts)
	if err != nil {
		return "", "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", thauth.Internal(err, "cannot create the directory %s", dir)
	}
	caFile, caKeyFile := filepath.Join(dir, DevCAFile), filepath.Join(dir, DevCAKeyFile)
	certFile, keyFile = filepath.Join(dir, DevCertFile), filepath.Join(dir, DevCertKeyFile)

	ca, caKey, err := loadOrCreateDevCA(caFile, caKeyFile)
	if err != nil {
		return "", "", "", err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", thauth.Internal(err, "cannot generate a key")
	}
	sn, err := randomSerial()
	if err != nil {
		return "", "", "", thauth.Internal(err, "cannot generate a serial number")
	}
	now := time.Now()
	notAfter := now.Add(devCertLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"Thauth development"}, CommonName: dns[0]},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", "", thauth.Internal(err, "cannot sign the development certificate")
	}
	keyPEM, err := privateKeyPEM(key)
	if err != nil {
		return "", "", "", err
	}
	// Key first: a server watching the files sees a mismatched pair for a moment at most, and
	// keeps its current certificate meanwhile.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return "", "", "", err
	}
	if err := writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", "", err
	}
	return caFile, certFile, keyFile, nil
}

// devCertNames returns the DNS names and IP addresses for the server certificate: the
// loopback names first, then hosts, without duplicates.
func devCertNames(hosts []string) ([]string, []net.IP, error) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	seen := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.TrimSuffix(h, ".")
		if !validDNSName(h, true) {
			return nil, nil, thauth.Errorf(thauth.EInvalid, "host %q is neither a DNS name nor an IP address", h)
		}
		if !seen[h] {
			seen[h] = true
			dns = append(dns, h)
		}
	}
	return dns, ips, nil
}

// loadOrCreateDevCA returns the CA in caFile/caKeyFile, creating both if neither exists.
func loadOrCreateDevCA(caFile, caKeyFile string) (*x509.Certificate, crypto.Signer, error) {
	_, certErr := os.Stat(caFile)
	_, keyErr := os.Stat(caKeyFile)
	switch {
	case certErr == nil && keyErr == nil:
		pair, err := tls.LoadX509KeyPair(caFile, caKeyFile)
		if err != nil {
			return nil, nil, &thauth.Error{Code: thauth.EInvalid, Message: fmt.Sprintf("the development CA in %s and %s cannot be loaded: %v; remove both to create a new one", caFile, caKeyFile, err), Err: err}
		}
		ca := pair.Leaf
		if ca == nil {
			if ca, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, nil, &thauth.Error{Code: thauth.EInvalid, Message: "the development CA certificate " + caFile + " cannot be parsed", Err: err}
			}
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ca.IsCA || !ok {
			return nil, nil, thauth.Errorf(thauth.EInvalid, "%s is not a CA certificate; remove %s and %s to create a new development CA", caFile, caFile, caKeyFile)
		}
		if time.Now().After(ca.NotAfter) {
			return nil, nil, thauth.Errorf(thauth.EInvalid, "the development CA %s has expired; remove %s and %s to create a new one", caFile, caFile, caKeyFile)
		}
		return ca, signer, nil
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		return createDevCA(caFile, caKeyFile)
	case certErr == nil || keyErr == nil:
		present, missing := caFile, caKeyFile
		if certErr != nil {
			present, missing = caKeyFile, caFile
		}
		return nil, nil, thauth.Errorf(thauth.EInvalid, "found %s but not %s: restore it, or remove %s to create a new development CA", present, missing, present)
	default:
		return nil, nil, thauth.Internal(errors.Join(certErr, keyErr), "cannot read the development CA files")
	}
}

func createDevCA(caFile, caKeyFile string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, thauth.Internal(err, "cannot generate a key")
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, nil, thauth.Internal(err, "cannot generate a serial number")
	}
	host, _ := os.Hostname()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"Thauth development"}, CommonName: strings.TrimSpace("Thauth development CA " + host)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(devCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaf certificates only
		// SubjectKeyId is derived from the public key by CreateCertificate for CAs.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, thauth.Internal(err, "cannot create the development CA")
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, thauth.Internal(err, "cannot parse the development CA")
	}
	keyPEM, err := privateKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(caKeyFile, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func privateKeyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, thauth.Internal(err, "cannot encode a private key")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFileAtomic writes data to a temporary file with mode perm next to path, then renames it
// over path, so readers see either the old or the new file, never a partial one, and a key
// file is never readable by others, not even briefly.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return thauth.Internal(err, "cannot write %s", path)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return thauth.Internal(err, "cannot write %s", path)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return thauth.Internal(err, "cannot write %s", path)
	}
	return nil
}

func randInt(max *big.Int) (*big.Int, error) {
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}
