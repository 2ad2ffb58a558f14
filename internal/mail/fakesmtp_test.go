package mail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCert is a self-signed certificate for 127.0.0.1, made once per test binary.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

// smtpReceived is one message the fake SMTP server accepted.
type smtpReceived struct {
	From, To string
	Data     string
	TLS      bool
	AuthUser string
}

// fakeSMTP is an SMTP server on loopback speaking enough of RFC 5321 for the mailer: EHLO,
// STARTTLS (RFC 3207), AUTH PLAIN (RFC 4954), MAIL, RCPT, DATA, RSET, NOOP, QUIT. Replies
// to MAIL, RCPT, DATA (after the data) and AUTH can be scripted.
type fakeSMTP struct {
	addr        string
	noSTARTTLS  bool // a server that does not offer STARTTLS (and offers AUTH in the clear)
	implicitTLS bool // TLS from the first byte
	user, pass  string

	mu       sync.Mutex
	replies  map[string][]string // stage → scripted replies, used in order
	received []smtpReceived
	commands []string // every command verb, with "+tls" once under TLS
}

func newFakeSMTP(t *testing.T, configure func(*fakeSMTP)) *fakeSMTP {
	t.Helper()
	f := &fakeSMTP{user: "mailer", pass: "s3cret-pass", replies: map[string][]string{}}
	if configure != nil {
		configure(f)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.session(c) })
		}
	})
	return f
}

// script queues reply (e.g. "451 4.3.0 try again later") for the next command of stage
// ("MAIL", "RCPT", "DATA", "AUTH").
func (f *fakeSMTP) script(stage, reply string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[stage] = append(f.replies[stage], reply)
}

func (f *fakeSMTP) scripted(stage string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.replies[stage]
	if len(q) == 0 {
		return "", false
	}
	f.replies[stage] = q[1:]
	return q[0], true
}

func (f *fakeSMTP) messages() []smtpReceived {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]smtpReceived(nil), f.received...)
}

func (f *fakeSMTP) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

func (f *fakeSMTP) session(conn net.Conn) {
	defer func() { conn.Close() }()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	cert, _ := testCert()
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	secure := false
	if f.implicitTLS {
		conn = tls.Server(conn, tlsConf)
		secure = true
	}
	tp := textproto.NewConn(conn)
	reply := func(lines ...string) { tp.PrintfLine("%s", strings.Join(lines, "\r\n")) }
	reply("220 fake.test ESMTP ready")
	var from, to, authUser string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		f.mu.Lock()
		f.commands = append(f.commands, verb)
		f.mu.Unlock()
		switch verb {
		case "EHLO", "HELO":
			lines := []string{"250-fake.test greets you"}
			if !secure && !f.noSTARTTLS {
				lines = append(lines, "250-STARTTLS")
			}
			if secure || f.noSTARTTLS {
				lines = append(lines, "250-AUTH PLAIN")
			}
			lines = append(lines, "250 8BITMIME")
			reply(lines...)
		case "STARTTLS":
			if secure || f.noSTARTTLS {
				reply("502 5.5.1 not available")
				continue
			}
			reply("220 2.0.0 go ahead")
			tc := tls.Server(conn, tlsConf)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, secure = tc, true
			tp = textproto.NewConn(conn)
			from, to, authUser = "", "", ""
			f.mu.Lock()
			f.commands = append(f.commands, "+tls")
			f.mu.Unlock()
		case "AUTH":
			if r, ok := f.scripted("AUTH"); ok {
				reply(r)
				continue
			}
			mech, resp, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") || resp == "" {
				reply("504 5.5.4 unrecognized authentication type")
				continue
			}
			b, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(b), "\x00")
			if err != nil || len(parts) != 3 || parts[1] != f.user || parts[2] != f.pass {
				reply("535 5.7.8 authentication credentials invalid")
				continue
			}
			authUser = parts[1]
			reply("235 2.7.0 authentication successful")
		case "MAIL":
			if r, ok := f.scripted("MAIL"); ok {
				reply(r)
				continue
			}
			from = addrArg(arg)
			reply("250 2.1.0 ok")
		case "RCPT":
			if r, ok := f.scripted("RCPT"); ok {
				reply(r)
				continue
			}
			to = addrArg(arg)
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 end data with <CR><LF>.<CR><LF>")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			if r, ok := f.scripted("DATA"); ok {
				reply(r)
				continue
			}
			f.mu.Lock()
			f.received = append(f.received, smtpReceived{From: from, To: to, Data: string(data), TLS: secure, AuthUser: authUser})
			f.mu.Unlock()
			reply("250 2.0.0 queued")
		case "RSET":
			from, to = "", ""
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognized")
		}
	}
}

// addrArg returns the address of "FROM:<a@b> BODY=8BITMIME".
func addrArg(arg string) string {
	i, j := strings.IndexByte(arg, '<'), strings.IndexByte(arg, '>')
	if i < 0 || j < i {
		return ""
	}
	return arg[i+1 : j]
}
