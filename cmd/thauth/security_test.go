package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/sdk/go/thauth"
)

// Issue 4 through the command line: TLS for serve, dev-cert, master keys (generate, rotate,
// production mode), encrypted backup and restore.

// devCert runs `thauth dev-cert --dir dir` and returns the CA pool and the file paths.
func devCert(t *testing.T, dir string) (pool *x509.CertPool, certFile, keyFile string) {
	t.Helper()
	out, errOut, code := cli(t, nil, "dev-cert", "--dir", dir, "--host", "thauth.test")
	if code != 0 {
		t.Fatalf("dev-cert: exit %d: %s", code, errOut)
	}
	caFile := filepath.Join(dir, "ca.pem")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, want := range []string{caFile, "--tls-cert " + certFile + " --tls-key " + keyFile, "curl --cacert"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev-cert output lacks %q:\n%s", want, out)
		}
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool, certFile, keyFile
}

// httpsClient returns a client with its own connection pool that trusts pool.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get fetches url and returns the response with its body read.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	pool, certFile, keyFile := devCert(t, filepath.Join(dir, "tls"))
	srv := startServer(t, nil, "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", certFile, "--tls-key", keyFile, "--http-redirect-addr", "127.0.0.1:0")
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("server URL %q is not https", srv.url)
	}
	addr := strings.TrimPrefix(srv.url, "https://")

	// A keep-alive client that stays connected across the certificate reload.
	kept := httpsClient(pool)
	resp, body := get(t, kept, srv.url+"/healthz")
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz over HTTPS: %s %s %q, want 200 over HTTP/2", resp.Proto, resp.Status, body)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("Strict-Transport-Security = %q", hsts)
	}
	oldSerial := resp.TLS.PeerCertificates[0].SerialNumber

	t.Run("plain HTTP on the TLS port fails", func(t *testing.T) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode == 200 || resp.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("plain HTTP to the TLS port: %s, HSTS %q", resp.Status, resp.Header.Get("Strict-Transport-Security"))
			}
		}
	})

	t.Run("redirect listener", func(t *testing.T) {
		ra := srv.srv.RedirectAddr()
		if ra == "" {
			t.Fatal("no redirect listener")
		}
		resp, _ := get(t, httpsClient(pool), "http://"+ra+"/healthz?x=1")
		_, port, _ := net.SplitHostPort(addr)
		if want := "https://127.0.0.1:" + port + "/healthz?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("redirect: %s Location %q, want 308 %q", resp.Status, resp.Header.Get("Location"), want)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS sent over plain HTTP")
		}
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
		conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
		if err == nil {
			conn.Close()
			t.Fatal("a handshake with only CBC suites succeeded")
		}
	})

	t.Run("certificate reload", func(t *testing.T) {
		devCert(t, filepath.Join(dir, "tls")) // a new certificate from the same CA, written over the files
		if err := srv.srv.ReloadTLS(); err != nil {
			t.Fatalf("ReloadTLS: %v", err)
		}
		resp, _ := get(t, httpsClient(pool), srv.url+"/healthz")
		if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(oldSerial) == 0 {
			t.Errorf("a new connection after the reload: %s, still the old certificate", resp.Status)
		}
		// The kept connection carries on with the certificate it started with.
		resp, _ = get(t, kept, srv.url+"/healthz")
		if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(oldSerial) != 0 {
			t.Errorf("the keep-alive connection: %s, serial changed (a new connection was opened)", resp.Status)
		}
	})

	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exit %d", code)
	}
	logs := srv.logs.String()
	for _, want := range []string{"scheme=https", "development mode: secrets are sealed under a master key stored in the data directory", "reloaded the TLS certificate"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "non-loopback address without TLS") {
		t.Errorf("TLS server warned about clear text:\n%s", logs)
	}
}

func TestServeTLSConfigProblems(t *testing.T) {
	dir := t.TempDir()
	_, certFile, _ := devCert(t, dir)
	_, errOut, code := cli(t, map[string]string{"THAUTH_PRODUCTION": "true"}, "serve",
		"--tls-cert", filepath.Join(dir, "missing.pem"), "--acme-domain", "a.example,b.example", "--acme-domain", "c.example",
		"--http-redirect-addr", "nope", "--data-dir", dir)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, errOut)
	}
	for _, want := range []string{
		"--tls-cert: is set but the key is not: give --tls-key (THAUTH_TLS_KEY) too",
		"--tls-cert: cannot read " + filepath.Join(dir, "missing.pem") + ": no such file or directory",
		"--acme-domain: cannot be combined with --tls-cert/--tls-key",
		"--http-redirect-addr: must be host:port",
		"THAUTH_PRODUCTION: production mode requires a master key",
	} {
		if !strings.Contains(errOut, "\n  "+want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	_, errOut, code = cli(t, nil, "serve", "--tls-key", certFile, "--http-redirect-addr", ":0", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "--tls-key: is set but the certificate is not") {
		t.Errorf("key without certificate: exit %d, %s", code, errOut)
	}
	_, errOut, code = cli(t, nil, "serve", "--http-redirect-addr", ":0", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "--http-redirect-addr: needs TLS") {
		t.Errorf("redirect without TLS: exit %d, %s", code, errOut)
	}

	// The parsed ACME settings, with the cache directory's default.
	var stderr strings.Builder
	e := &env{getenv: getenvFrom(map[string]string{"THAUTH_ACME_DOMAINS": "x.example"}), stdout: io.Discard, stderr: &stderr}
	cfg, code, done := parseServeConfig(e, []string{"--acme-domain", "a.example,b.example", "--acme-domain", "c.example", "--data-dir", dir})
	if done {
		t.Fatalf("parseServeConfig: exit %d: %s", code, stderr.String())
	}
	if got := strings.Join(cfg.ACMEDomains, " "); got != "a.example b.example c.example" || cfg.ACMECache() != filepath.Join(dir, "acme") {
		t.Errorf("ACME domains %q, cache %q", got, cfg.ACMECache())
	}
}

func TestKeysGenerate(t *testing.T) {
	out, errOut, code := cli(t, nil, "keys", "generate", "--id", "k-test")
	if code != 0 {
		t.Fatalf("keys generate: exit %d: %s", code, errOut)
	}
	keys, err := seal.ParseMasterKeys(out)
	if err != nil || keys.ActiveID() != "k-test" || keys.Len() != 1 {
		t.Errorf("keys generate printed %d keys %v: %v", keys.Len(), keys, err)
	}
	if !strings.Contains(errOut, "shown only now") || strings.Contains(errOut, strings.TrimSpace(out)) {
		t.Errorf("instructions on stderr: %q", errOut)
	}
	out2, _, _ := cli(t, nil, "keys", "generate", "--id", "k-test")
	if out2 == out {
		t.Error("two generated keys are equal")
	}
	if _, errOut, code := cli(t, nil, "keys", "generate", "--id", "bad id!"); code != exitUsage || !strings.Contains(errOut, "--id") {
		t.Errorf("bad id: exit %d, %q", code, errOut)
	}
}

func TestProductionRequiresMasterKey(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := cli(t, nil, "serve", "--production", "--addr", "127.0.0.1:0", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "--production: production mode requires a master key") ||
		!strings.Contains(errOut, "thauth keys generate") {
		t.Errorf("production without a master key: exit %d, %s", code, errOut)
	}
	key, err := seal.GenerateMasterKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	// Production also needs a real mailer and the public URL; without them, each is named.
	_, errOut, code = cli(t, map[string]string{"THAUTH_MASTER_KEY": key}, "serve", "--production", "--addr", "127.0.0.1:0", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "production mode needs a real mailer") || !strings.Contains(errOut, "--public-url") {
		t.Errorf("production without mailer and public URL: exit %d, %s", code, errOut)
	}
	srv := startServer(t, map[string]string{"THAUTH_MASTER_KEY": key, "THAUTH_PRODUCTION": "1", "THAUTH_MAILER": "smtp",
		"THAUTH_SMTP_ADDR": "127.0.0.1:2525", "THAUTH_MAIL_FROM": "Thauth <no-reply@example.com>",
		"THAUTH_PUBLIC_URL": "https://thauth.example.com"}, "--addr", "127.0.0.1:0", "--data-dir", dir)
	if srv.srv.Sealer() == nil {
		t.Fatal("no sealer with a master key")
	}
	srv.stop(t)
	if logs := srv.logs.String(); strings.Contains(logs, strings.SplitN(key, ":", 2)[1]) {
		t.Errorf("the master key was logged:\n%s", logs)
	}

	// A malformed key and both sources at once are configuration problems, without key material.
	_, errOut, code = cli(t, map[string]string{"THAUTH_MASTER_KEY": "k1:c2hvcnQ="}, "serve", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "  THAUTH_MASTER_KEY: ") || strings.Contains(errOut, "c2hvcnQ") {
		t.Errorf("malformed key: exit %d, %s", code, errOut)
	}
	file := writeKeyFile(t, 0o600, key)
	_, errOut, code = cli(t, map[string]string{"THAUTH_MASTER_KEY": key}, "serve", "--data-dir", dir, "--master-key-file", file)
	if code != exitUsage || !strings.Contains(errOut, "--master-key-file and THAUTH_MASTER_KEY are both set") {
		t.Errorf("both sources: exit %d, %s", code, errOut)
	}
}

// writeKeyFile writes a master key file of the given mode holding entries, one per line.
func writeKeyFile(t *testing.T, mode os.FileMode, entries ...string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(f, []byte("# master keys, active first\n"+strings.Join(entries, "\n")+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil { // WriteFile's mode is filtered by the umask
		t.Fatal(err)
	}
	return f
}

func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	keyA, _ := seal.GenerateMasterKey("key-a")
	keyB, _ := seal.GenerateMasterKey("key-b")

	// Data keys are created under A when a node first starts with it.
	srv := startServer(t, map[string]string{"THAUTH_MASTER_KEY": keyA}, "--addr", "127.0.0.1:0", "--data-dir", dir)
	oldDataKey := srv.srv.Sealer().ActiveDataKeyID()
	sealed, err := srv.srv.Sealer().Seal("test_secret", "row-1", []byte("s3cret"))
	if err != nil || oldDataKey == "" {
		t.Fatalf("seal under A: %q %v", oldDataKey, err)
	}
	srv.stop(t)

	// Rotating with only B configured refuses, changing nothing.
	_, errOut, code := cli(t, nil, "keys", "rotate", "--master-key-file", writeKeyFile(t, 0o600, keyB), "--data-dir", dir)
	if code != exitError || !strings.Contains(errOut, "unwraps") {
		t.Errorf("rotate without the old key: exit %d, %s", code, errOut)
	}

	// B first, A after: rotate.
	out, errOut, code := cli(t, nil, "keys", "rotate", "--master-key-file", writeKeyFile(t, 0o600, keyB, keyA), "--data-dir", dir)
	if code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"Active master key   key-b (configured: key-b, key-a)", "Re-wrapped          " + oldDataKey,
		"Retired data keys   " + oldDataKey, "remove them from the key file"} {
		if !strings.Contains(out, want) {
			t.Errorf("rotate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, strings.SplitN(keyA, ":", 2)[1]) || strings.Contains(out+errOut, strings.SplitN(keyB, ":", 2)[1]) {
		t.Error("rotate printed key material")
	}

	// B alone: the node starts, its sealer opens what A's data key sealed, and seals under the new data key.
	srv = startServer(t, nil, "--addr", "127.0.0.1:0", "--data-dir", dir, "--master-key-file", writeKeyFile(t, 0o640, keyB))
	s := srv.srv.Sealer()
	if s == nil || s.ActiveDataKeyID() == oldDataKey {
		t.Fatalf("sealer after rotation: %v", s)
	}
	if pt, err := s.Open(context.Background(), "test_secret", "row-1", sealed); err != nil || string(pt) != "s3cret" {
		t.Errorf("open a value sealed before the rotation with B only: %q %v", pt, err)
	}
	srv.stop(t)
	if !strings.Contains(srv.logs.String(), "readable by group or others") {
		t.Errorf("no warning about a group-readable key file:\n%s", srv.logs)
	}

	// A alone no longer opens anything: serve refuses to start, saying why.
	_, errOut, code = cli(t, map[string]string{"THAUTH_MASTER_KEY": keyA}, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	if code != exitError || !strings.Contains(errOut, "do not unwrap the stored data keys") {
		t.Errorf("serve with the retired key only: exit %d, %s", code, errOut)
	}
}

func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	masterKey, _ := seal.GenerateMasterKey("k1")
	withKey := map[string]string{"THAUTH_MASTER_KEY": masterKey}
	ids := initProject(t, "--data-dir", src)
	srv := startServer(t, withKey, "--addr", "127.0.0.1:0", "--data-dir", src, "--sync-interval", "50ms")
	waitForProject(t, thauth.NewClient(srv.url, ids.DecisionsKey), ids.ProjectID)
	admin := map[string]string{"THAUTH_URL": srv.url, "THAUTH_KEY": ids.AdminKey, "THAUTH_PROJECT": ids.ProjectID}
	if _, errOut, code := cli(t, admin, "apply", "-f", "../../examples/acme.yaml"); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errOut)
	}
	dataKey := srv.srv.Sealer().ActiveDataKeyID()

	// A key pair, then a backup taken while the server runs.
	idFile := filepath.Join(dir, "backup.key")
	recipient, errOut, code := cli(t, nil, "backup", "keygen", "--out", idFile)
	recipient = strings.TrimSpace(recipient)
	if code != 0 || !strings.HasPrefix(recipient, "age1") {
		t.Fatalf("backup keygen: exit %d, %q %s", code, recipient, errOut)
	}
	if fi, err := os.Stat(idFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	if _, _, code := cli(t, nil, "backup", "keygen", "--out", idFile); code != exitError {
		t.Errorf("keygen over an existing file: exit %d", code)
	}
	backupFile := filepath.Join(dir, "thauth.age")
	out, errOut, code := cli(t, map[string]string{"THAUTH_BACKUP_RECIPIENTS": recipient}, "backup", "--out", backupFile, "--data-dir", src)
	if code != 0 || !strings.Contains(out, "It holds no master key") {
		t.Fatalf("backup: exit %d, %s %s", code, out, errOut)
	}
	srv.stop(t)
	good, err := os.ReadFile(backupFile)
	if err != nil || strings.Contains(string(good), "user:alice") {
		t.Fatalf("backup file: %v (or not encrypted)", err)
	}

	out, errOut, code = cli(t, nil, "backup", "verify", "--in", backupFile, "--identity", idFile)
	if code != 0 || !strings.Contains(out, "OK: the backup is intact") || !strings.Contains(out, "seal_data_keys") {
		t.Errorf("backup verify: exit %d, %s %s", code, out, errOut)
	}
	otherID := filepath.Join(dir, "other.key")
	cli(t, nil, "backup", "keygen", "--out", otherID)
	_, errOut, code = cli(t, nil, "backup", "verify", "--in", backupFile, "--identity", otherID)
	if code != exitError || !strings.Contains(errOut, "does not match any recipient") {
		t.Errorf("verify with another identity: exit %d, %s", code, errOut)
	}
	if _, errOut, code = cli(t, nil, "backup", "--out", backupFile+"2", "--data-dir", src); code != exitUsage || !strings.Contains(errOut, "no recipient") {
		t.Errorf("backup without recipient: exit %d, %s", code, errOut)
	}

	// A flipped byte: restore fails, writing nothing.
	bad := append([]byte(nil), good...)
	bad[len(bad)*3/4] ^= 0x01
	badFile := filepath.Join(dir, "bad.age")
	if err := os.WriteFile(badFile, bad, 0o600); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, url string) {
		t.Helper()
		out, errOut, code := cli(t, map[string]string{"THAUTH_URL": url, "THAUTH_KEY": ids.DecisionsKey},
			"check", "--subject", "user:alice", "--feature", "billing", "--action", "read", "--tenant", "tenant_acme")
		if code != 0 || out != "allowed (role:billing-admin)\n" {
			t.Errorf("check on the restored store: exit %d, %q %s", code, out, errOut)
		}
	}
	restoreAndServe := func(t *testing.T, store ...string) {
		_, errOut, code := cli(t, nil, append([]string{"restore", "--in", badFile, "--identity", idFile}, store...)...)
		if code != exitError || !strings.Contains(errOut, "damaged, truncated or was tampered with; nothing was restored") {
			t.Fatalf("restore of a damaged file: exit %d, %s", code, errOut)
		}
		// The target is still empty: the good backup restores into it.
		out, errOut, code := cliIn(t, nil, string(good), append([]string{"restore", "--in", "-", "--identity", idFile}, store...)...)
		if code != 0 || !strings.Contains(out, "THAUTH_MASTER_KEY") {
			t.Fatalf("restore: exit %d, %s %s", code, out, errOut)
		}
		_, errOut, code = cli(t, nil, append([]string{"restore", "--in", backupFile, "--identity", idFile}, store...)...)
		if code != exitError || !strings.Contains(errOut, "is not empty") {
			t.Errorf("restore into a non-empty store: exit %d, %s", code, errOut)
		}
		srv := startServer(t, withKey, append([]string{"--addr", "127.0.0.1:0"}, store...)...)
		check(t, srv.url)
		if got := srv.srv.Sealer().ActiveDataKeyID(); got != dataKey {
			t.Errorf("data key after restore %q, want %q", got, dataKey)
		}
		srv.stop(t)
	}
	t.Run("sqlite", func(t *testing.T) { restoreAndServe(t, "--data-dir", filepath.Join(dir, "restored")) })
	t.Run("postgres", func(t *testing.T) { restoreAndServe(t, "--database-url", pgtest.New(t)) })
}

// TestBackupErrors: bad input gets a clear message and a non-zero exit.
func TestBackupErrors(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := cli(t, nil, "backup", "--out", filepath.Join(dir, "b.age"), "--recipient", "AGE-SECRET-KEY-1NOTAPUBLICKEY", "--data-dir", dir)
	if code != exitUsage || strings.Contains(errOut, "NOTAPUBLICKEY") {
		t.Errorf("secret key as recipient: exit %d, %s", code, errOut)
	}
	_, errOut, code = cli(t, nil, "restore", "--data-dir", dir)
	if code != exitUsage || !strings.Contains(errOut, "--in is required") || !strings.Contains(errOut, "--identity is required") {
		t.Errorf("restore without flags: exit %d, %s", code, errOut)
	}
	id := filepath.Join(dir, "id")
	cli(t, nil, "backup", "keygen", "--out", id)
	_, errOut, code = cli(t, nil, "restore", "--in", id, "--identity", id, "--data-dir", filepath.Join(dir, "x"))
	if code != exitError || !strings.Contains(errOut, "nothing was restored") {
		t.Errorf("restore of a file that is not a backup: exit %d, %s", code, errOut)
	}
}
