package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/thauth/thauth/internal/tlsconf"
)

func runDevCert(_ context.Context, e *env, args []string) int {
	fs := newFlagSet("dev-cert", "thauth dev-cert [--dir DIR] [--host NAME ...]",
		`Creates, for trying HTTPS on a laptop, a local certificate authority (once, reused
afterwards) and a new server certificate signed by it for localhost, 127.0.0.1, ::1 and the
--host names. Prints the paths and how to use them. Running it again issues a new
certificate: a server started on the files picks it up (SIGHUP, or within 10 seconds).

For development only: anyone who can read the CA's key (ca-key.pem) can mint certificates
that a machine trusting the CA accepts for any name. Use real certificates (--tls-cert
from your CA, or --acme-domain) in production.`, e)
	dir := fs.String("dir", "./thauth-dev-tls", "`directory` for the CA and the certificate (created 0700)")
	var hosts stringList
	fs.Var(&hosts, "host", "extra DNS `name`, *.wildcard or IP address for the certificate (repeatable or comma-separated)")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	caFile, certFile, keyFile, err := tlsconf.DevCert(*dir, hosts)
	if err != nil {
		return e.errorf("dev-cert: %s", safeMessage(err))
	}
	names := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	w := e.stdout
	fmt.Fprintf(w, "CA certificate  %s  (trust this one; its key %s stays on this machine)\n", caFile, tlsconf.DevCAKeyFile)
	fmt.Fprintf(w, "Certificate     %s  (for %s)\n", certFile, strings.Join(names, ", "))
	fmt.Fprintf(w, "Private key     %s\n", keyFile)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Start the server with them:")
	fmt.Fprintf(w, "  thauth serve --tls-cert %s --tls-key %s\n", certFile, keyFile)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Trust the CA in clients:")
	fmt.Fprintf(w, "  curl --cacert %s https://localhost:8080/healthz\n", caFile)
	fmt.Fprintf(w, "  SSL_CERT_FILE=%s THAUTH_URL=https://localhost:8080 thauth check ...   (Go programs, this CLI)\n", caFile)
	fmt.Fprintln(w, "  or add it to the system trust store (then browsers trust it too):")
	fmt.Fprintf(w, "    macOS:          sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s\n", caFile)
	fmt.Fprintf(w, "    Debian/Ubuntu:  sudo cp %s /usr/local/share/ca-certificates/thauth-dev.crt && sudo update-ca-certificates\n", caFile)
	return exitOK
}
