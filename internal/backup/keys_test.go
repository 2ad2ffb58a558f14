package backup_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/backup"
	"github.com/thauth/thauth/internal/storetest"
)

func TestGenerateIdentity(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	storetest.Populate(t, src)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, pq := range []bool{false, true} {
		kp, err := backup.GenerateIdentity(pq, now)
		if err != nil {
			t.Fatal(err)
		}
		prefix := map[bool]string{false: "age1", true: "age1pq1"}[pq]
		if !strings.HasPrefix(kp.Recipient, prefix) {
			t.Errorf("postQuantum=%v: recipient %.12s…, want %s…", pq, kp.Recipient, prefix)
		}
		lines := strings.Split(string(kp.Identity), "\n")
		if lines[0] != "# created: 2026-03-01T12:00:00Z" || lines[1] != "# public key: "+kp.Recipient || !strings.HasPrefix(lines[2], "AGE-SECRET-KEY-") {
			t.Errorf("identity file layout: %q…", lines[:2])
		}
		rs, err := backup.ParseRecipients(kp.Recipient)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := backup.ReadIdentities(bytes.NewReader(kp.Identity))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := backup.Write(ctx, src, &buf, backup.WriteOptions{Recipients: rs}); err != nil {
			t.Fatalf("postQuantum=%v: Write: %v", pq, err)
		}
		if _, err := backup.Verify(ctx, &buf, ids); err != nil {
			t.Errorf("postQuantum=%v: Verify: %v", pq, err)
		}
	}
}

func TestParseRecipients(t *testing.T) {
	a, b := newKeys(t).rcp.String(), newKeys(t).rcp.String()
	for _, in := range []string{
		a + "," + b,
		a + ", " + b,
		"# backup keys\n" + a + "\n\n" + b + "\n",
		" " + a + "\t" + b + "\r\n",
	} {
		rs, err := backup.ParseRecipients(in)
		if err != nil {
			t.Errorf("ParseRecipients(%q): %v", in, err)
			continue
		}
		if len(rs) != 2 || rs[0].(*age.X25519Recipient).String() != a || rs[1].(*age.X25519Recipient).String() != b {
			t.Errorf("ParseRecipients(%q) = %v", in, rs)
		}
	}
	secret := newKeys(t).id.String()
	for _, in := range []string{"", "# only a comment", "age1notakey", "ssh-ed25519 AAAA", secret, a + "," + secret} {
		_, err := backup.ParseRecipients(in)
		if thauth.ErrorCodeOf(err) != thauth.EInvalid {
			t.Errorf("ParseRecipients(%q): error %v, want EInvalid", in, err)
		}
		if err != nil && strings.Contains(err.Error(), secret[16:]) {
			t.Errorf("the error quotes the secret key: %v", err)
		}
	}
}

func TestReadIdentities(t *testing.T) {
	k := newKeys(t)
	ids, err := backup.ReadIdentities(strings.NewReader("# comment\n\n" + k.id.String() + "\n"))
	if err != nil || len(ids) != 1 {
		t.Fatalf("ReadIdentities = %v, %v", ids, err)
	}
	for _, in := range []string{"", "# nothing", k.rcp.String(), "AGE-SECRET-KEY-1NOTAKEY"} {
		_, err := backup.ReadIdentities(strings.NewReader(in))
		if thauth.ErrorCodeOf(err) != thauth.EInvalid {
			t.Errorf("ReadIdentities(%q): error %v, want EInvalid", in, err)
		}
	}
	if _, err := backup.ReadIdentityFile(t.TempDir() + "/missing"); thauth.ErrorCodeOf(err) != thauth.EInvalid {
		t.Errorf("missing identity file: %v", err)
	}
	if _, err := backup.PassphraseRecipient(""); thauth.ErrorCodeOf(err) != thauth.EInvalid {
		t.Errorf("empty passphrase: %v", err)
	}
}
