package backup

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/thauth/thauth"
)

// ParseRecipients parses the recipients of a backup as given on the command line, in an
// environment variable or in a recipients file: age public keys — X25519 (age1…) or
// post-quantum hybrid (age1pq1…) — separated by commas, spaces or newlines; lines starting
// with '#' are comments. Errors are EInvalid *thauth.Error; they never quote the input,
// which may be a secret key pasted in the wrong place.
func ParseRecipients(s string) ([]age.Recipient, error) {
	var keys []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' })...)
	}
	if len(keys) == 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "no backup recipient given: want an age public key (age1…)")
	}
	for i, k := range keys {
		if strings.HasPrefix(strings.ToUpper(k), "AGE-SECRET-KEY-") {
			return nil, thauth.Errorf(thauth.EInvalid, "recipient %d is a secret key (AGE-SECRET-KEY-…): give the public key (age1…) here, and keep the secret key offline", i+1)
		}
	}
	rs, err := age.ParseRecipients(strings.NewReader(strings.Join(keys, "\n")))
	if err != nil {
		return nil, &thauth.Error{Code: thauth.EInvalid, Message: "invalid backup recipient: " + err.Error() + " (want age public keys, age1…)", Err: err}
	}
	return rs, nil
}

// ReadRecipientsFile reads recipients (see ParseRecipients) from a file.
func ReadRecipientsFile(path string) ([]age.Recipient, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, thauth.Errorf(thauth.EInvalid, "cannot read the recipients file: %v", err)
	}
	return ParseRecipients(string(b))
}

// ReadIdentities reads age identities — the secret keys of backup recipients, as written by
// GenerateIdentity or age-keygen: lines AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…, with
// blank lines and '#' comments ignored. Errors are EInvalid *thauth.Error and never quote
// key material.
func ReadIdentities(r io.Reader) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(r)
	if err != nil {
		return nil, &thauth.Error{Code: thauth.EInvalid, Message: "invalid identity file: " + err.Error() + " (want age secret keys, AGE-SECRET-KEY-…)", Err: err}
	}
	return ids, nil
}

// ReadIdentityFile reads identities (see ReadIdentities) from a file.
func ReadIdentityFile(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, thauth.Errorf(thauth.EInvalid, "cannot read the identity file: %v", err)
	}
	defer f.Close()
	return ReadIdentities(f)
}

// PassphraseRecipient returns a recipient that encrypts a backup with a passphrase (age's
// scrypt recipient; about a second of work to derive the key). It must be the backup's only
// recipient. An empty passphrase is EInvalid.
func PassphraseRecipient(passphrase string) (age.Recipient, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, thauth.Errorf(thauth.EInvalid, "invalid passphrase: %v", err)
	}
	return r, nil
}

// PassphraseIdentity returns the identity that decrypts a backup encrypted with
// PassphraseRecipient(passphrase). An empty passphrase is EInvalid.
func PassphraseIdentity(passphrase string) (age.Identity, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, thauth.Errorf(thauth.EInvalid, "invalid passphrase: %v", err)
	}
	return id, nil
}

// KeyPair is a new backup key pair.
type KeyPair struct {
	// Identity is the content of an identity file, in the format of age-keygen: two comment
	// lines (creation time and public key) and the secret key. It is the secret: show it or
	// write it once (mode 0600), never log it.
	Identity []byte
	// Recipient is the public key (age1… or age1pq1…), for --recipient: not secret.
	Recipient string
}

// GenerateIdentity creates a new backup key pair for `thauth backup keygen`: an X25519 key
// (age1…, short enough for a flag), or with postQuantum a hybrid ML-KEM-768 + X25519 key
// (age1pq1…, about 2 KB), which also resists a future quantum computer. Recipients of the two
// kinds cannot be mixed in one backup. now is recorded in the file's comment.
func GenerateIdentity(postQuantum bool, now time.Time) (*KeyPair, error) {
	var secret, public string
	if postQuantum {
		id, err := age.GenerateHybridIdentity()
		if err != nil {
			return nil, thauth.Internal(err, "cannot generate a key pair")
		}
		secret, public = id.String(), id.Recipient().String()
	} else {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return nil, thauth.Internal(err, "cannot generate a key pair")
		}
		secret, public = id.String(), id.Recipient().String()
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n%s\n", now.UTC().Format(time.RFC3339), public, secret)
	return &KeyPair{Identity: b.Bytes(), Recipient: public}, nil
}
