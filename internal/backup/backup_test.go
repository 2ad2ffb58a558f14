package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/backup"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/storetest"
)

// TestRoundTrip backs up a populated store and restores it into an empty one, on each
// engine and across engines: every row of every table comes back identical, and the
// engine compiled from the restored store gives the same decisions and authenticates the
// same API keys.
func TestRoundTrip(t *testing.T) {
	for _, from := range engines {
		for _, to := range engines {
			t.Run(from.name+" to "+to.name, func(t *testing.T) {
				ctx := context.Background()
				src, dst := from.open(t), to.open(t)
				pop := storetest.Populate(t, src)
				k := newKeys(t)
				file := writeBackup(t, src, k)

				info, err := backup.Restore(ctx, bytes.NewReader(file), k.ids(), dst)
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				want := storetest.Export(t, src)
				if d := storetest.DiffDumps(want, storetest.Export(t, dst)); d != "" {
					t.Fatalf("restored data differs (-source +restored):\n%s", d)
				}
				sameDecisions(t, src, dst, pop)

				if info.SchemaVersion < 2 || !info.CreatedAt.Equal(created) || info.ThauthVersion != "v0.0.0-test" || info.FormatVersion != backup.FormatVersion {
					t.Errorf("Info = %+v", info)
				}
				got := map[string]int{}
				for _, tc := range info.Tables {
					got[tc.Table] = int(tc.Rows)
				}
				if d := cmp.Diff(want.Rows(), got); d != "" {
					t.Errorf("Info row counts (-exported +info):\n%s", d)
				}
			})
		}
	}
}

// TestPlaintextIsEngineNeutral checks that the same data backed up from either engine gives
// the same plaintext, byte for byte.
func TestPlaintextIsEngineNeutral(t *testing.T) {
	lite, pg := engines[0].open(t), engines[1].open(t)
	storetest.Populate(t, lite)
	k := newKeys(t)
	if _, err := backup.Restore(context.Background(), bytes.NewReader(writeBackup(t, lite, k)), k.ids(), pg); err != nil {
		t.Fatal(err)
	}
	a, b := plaintext(t, writeBackup(t, lite, k), k), plaintext(t, writeBackup(t, pg, k), k)
	if !bytes.Equal(a, b) {
		t.Errorf("plaintexts differ:\n%s", cmp.Diff(strings.Split(string(a), "\n"), strings.Split(string(b), "\n")))
	}
}

// TestFormat pins the plaintext format down on a small store: the header, every table's
// section in order, rows as JSON arrays (bytes in base64, times in microseconds), and the
// trailer with row counts and the SHA-256 of everything before it.
func TestFormat(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	retired := at.Add(time.Second)
	if err := s.InsertDataKey(ctx, sealDataKey("dk_1", "k1", []byte{0, 1, 0xfe, 0xff}, at, &retired)); err != nil {
		t.Fatal(err)
	}
	org := thauth.Organization{ID: "org-1", Name: "Acme <&> \"é\"", CreatedAt: at}
	if err := s.CreateOrganization(ctx, &org); err != nil {
		t.Fatal(err)
	}
	k := newKeys(t)
	lines := strings.SplitAfter(string(plaintext(t, writeBackup(t, s, k), k)), "\n")
	if last := lines[len(lines)-1]; last != "" {
		t.Fatalf("plaintext does not end in a newline: %q", last)
	}
	lines = lines[:len(lines)-1]

	var hdr map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["format"] != "thauth-backup" || hdr["format_version"] != 1.0 || hdr["created_at"] != "2026-03-02T03:04:05.678901Z" || hdr["thauth_version"] != "v0.0.0-test" {
		t.Errorf("header = %s", lines[0])
	}
	if !strings.Contains(lines[0], `{"name":"seal_data_keys","columns":[{"name":"id","type":"text"},{"name":"master_key_id","type":"text"},{"name":"wrapped","type":"bytes"},{"name":"created_at","type":"time"},{"name":"retired_at","type":"time","nullable":true}]}`) {
		t.Errorf("header does not describe seal_data_keys as expected: %s", lines[0])
	}
	var want []string
	for _, tb := range thauth.BackupTables() {
		want = append(want, fmt.Sprintf(`{"table":%q}`+"\n", tb.Name))
		switch tb.Name {
		case "seal_data_keys":
			want = append(want, `["dk_1","k1","AAH+/w==",1767323045000006,1767323046000006]`+"\n")
		case "organizations":
			want = append(want, `["org-1","Acme <&> \"é\"",1767323045000006,0,null,""]`+"\n")
		}
	}
	body := lines[1 : len(lines)-1]
	if d := cmp.Diff(want, body); d != "" {
		t.Errorf("body (-want +got):\n%s", d)
	}
	sum := sha256.Sum256([]byte(strings.Join(lines[:len(lines)-1], "")))
	var counts []string
	for _, tb := range thauth.BackupTables() {
		n := 0
		if tb.Name == "seal_data_keys" || tb.Name == "organizations" {
			n = 1
		}
		counts = append(counts, fmt.Sprintf(`{"table":%q,"rows":%d}`, tb.Name, n))
	}
	wantTrailer := `{"end":true,"rows":[` + strings.Join(counts, ",") + `],"sha256":"` + hex.EncodeToString(sum[:]) + `"}` + "\n"
	if got := lines[len(lines)-1]; got != wantTrailer {
		t.Errorf("trailer = %s\nwant      %s", got, wantTrailer)
	}
}

// smallBackup returns a backup of a store holding one data key and one organization: every
// part of an age file (header, nonce, a payload chunk and its tag) in a few kilobytes, so
// that trying every byte position stays quick.
func smallBackup(t *testing.T, k keys) []byte {
	t.Helper()
	ctx := context.Background()
	s := openSQLite(t)
	if err := s.InsertDataKey(ctx, sealDataKey("dk_1", "k1", []byte{1, 2, 3}, created, nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOrganization(ctx, &thauth.Organization{ID: "org-1", Name: "Acme", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	return writeBackup(t, s, k)
}

// TestFlippedByteAnywhere flips each byte of a backup in turn: every damaged copy is
// refused by Verify; and a sample of damaged copies of a larger backup is refused by
// Restore, which leaves its target empty.
func TestFlippedByteAnywhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	flip := func(file []byte, i int) []byte {
		bad := bytes.Clone(file)
		bad[i] ^= 0x01 << (i % 8)
		return bad
	}
	small := smallBackup(t, k)
	for i := 0; i < len(small); i += exhaustiveStride {
		_, err := backup.Verify(ctx, bytes.NewReader(flip(small, i)), k.ids())
		if !errors.Is(err, backup.ErrDamaged) && !errors.Is(err, backup.ErrNoIdentity) {
			t.Fatalf("byte %d of %d flipped: Verify error %v, want ErrDamaged (or ErrNoIdentity for the recipient's stanza)", i, len(small), err)
		}
	}

	src := openSQLite(t)
	storetest.Populate(t, src)
	file := writeBackup(t, src, k)
	dst := openSQLite(t)
	for i := 0; i < len(file); i += len(file)/50 + 1 {
		if _, err := backup.Restore(ctx, bytes.NewReader(flip(file, i)), k.ids(), dst); err == nil {
			t.Fatalf("byte %d flipped: Restore accepted the file", i)
		}
	}
	if _, err := backup.Restore(ctx, bytes.NewReader(flip(file, len(file)-1)), k.ids(), dst); !errors.Is(err, backup.ErrDamaged) {
		t.Fatalf("last byte flipped: Restore error %v, want ErrDamaged", err)
	}
	wantEmpty(t, dst)
	if _, err := backup.Restore(ctx, bytes.NewReader(file), k.ids(), dst); err != nil {
		t.Fatalf("the intact file after the damaged ones: %v", err)
	}
}

// TestTruncated cuts a backup at every length: every prefix is refused by Verify; and a
// sample of prefixes of a larger backup is refused by Restore, which leaves its target
// empty.
func TestTruncated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKeys(t)
	small := smallBackup(t, k)
	for n := 0; n < len(small); n += exhaustiveStride {
		if _, err := backup.Verify(ctx, bytes.NewReader(small[:n]), k.ids()); !errors.Is(err, backup.ErrDamaged) {
			t.Fatalf("cut to %d of %d bytes: Verify error %v, want ErrDamaged", n, len(small), err)
		}
	}

	src := openSQLite(t)
	storetest.Populate(t, src)
	file := writeBackup(t, src, k)
	dst := openSQLite(t)
	for n := 0; n < len(file); n += len(file)/50 + 1 {
		if _, err := backup.Restore(ctx, bytes.NewReader(file[:n]), k.ids(), dst); !errors.Is(err, backup.ErrDamaged) {
			t.Fatalf("cut to %d of %d bytes: Restore error %v, want ErrDamaged", n, len(file), err)
		}
	}
	wantEmpty(t, dst)
}

// TestDamageAfterRowsWereInserted damages a backup larger than one age chunk (64 KiB) near
// its end, so that Restore has already inserted the rows of the intact first chunks when it
// meets the damage: the transaction rolls them back.
func TestDamageAfterRowsWereInserted(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			src := e.open(t)
			pop := storetest.Populate(t, src)
			if err := src.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
				for i := range 1500 {
					sub := thauth.Subject{SubjectID: fmt.Sprintf("user:bulk-%04d-%s", i, strings.Repeat("x", 40)), SubjectType: "user"}
					if _, err := tx.UpsertSubject(ctx, pop.ProjectIDs[0], &sub, pop.Now); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			k := newKeys(t)
			file := writeBackup(t, src, k)
			if len(file) < 3*64<<10 {
				t.Fatalf("backup of %d bytes: want several age chunks", len(file))
			}
			dst := e.open(t)
			for name, bad := range map[string][]byte{
				"flipped":        func() []byte { b := bytes.Clone(file); b[len(b)-100] ^= 1; return b }(),
				"truncated":      file[:len(file)-100],
				"last chunk cut": file[:chunkBoundary(t, file)],
				"appended":       append(bytes.Clone(file), 0),
			} {
				c := &counting{TableImporter: dst}
				_, err := backup.Restore(ctx, bytes.NewReader(bad), k.ids(), c)
				if !errors.Is(err, backup.ErrDamaged) {
					t.Errorf("%s: Restore error %v, want ErrDamaged", name, err)
				}
				if c.n == 0 {
					t.Errorf("%s: no row was inserted before the damage was found; the test does not test the rollback", name)
				}
			}
			wantEmpty(t, dst)
		})
	}
}

// TestForgedContent encrypts edited plaintexts to the right recipient — as anyone holding
// the public key could, or a buggy writer might — and checks that Restore refuses each one
// and writes nothing.
func TestForgedContent(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	storetest.Populate(t, src)
	k := newKeys(t)
	pt := string(plaintext(t, writeBackup(t, src, k), k))
	lines := strings.SplitAfter(pt, "\n")
	lines = lines[:len(lines)-1]
	n := len(lines)
	rowLine := func() int { // a row of organizations
		for i, l := range lines {
			if l == `{"table":"organizations"}`+"\n" {
				return i + 1
			}
		}
		t.Fatal("no organizations section")
		return 0
	}()
	join := func(ls ...[]string) string {
		var b strings.Builder
		for _, l := range ls {
			b.WriteString(strings.Join(l, ""))
		}
		return b.String()
	}
	drop := func(i int) string { return join(lines[:i], lines[i+1:]) }
	// rehash rewrites the trailer to match the edited content, so that only the counts or
	// the structure give the forgery away.
	rehash := func(body []string, counts func(string) string) string {
		sum := sha256.Sum256([]byte(strings.Join(body, "")))
		tr := lines[n-1]
		i := strings.Index(tr, `"sha256":"`)
		tr = tr[:i] + `"sha256":"` + hex.EncodeToString(sum[:]) + "\"}\n"
		if counts != nil {
			tr = counts(tr)
		}
		return strings.Join(body, "") + tr
	}
	withRow := func(extra string) []string {
		b := append([]string{}, lines[:rowLine]...)
		b = append(b, extra)
		return append(b, lines[rowLine:n-1]...)
	}
	cases := []struct {
		name string
		pt   string
		want error
	}{
		// The second organization has no projects: removing it breaks no reference.
		{"row removed", drop(rowLine + 1), backup.ErrDamaged},
		{"row removed, hash fixed", rehash(append(append([]string{}, lines[:rowLine+1]...), lines[rowLine+2:n-1]...), nil), backup.ErrDamaged},
		{"row edited", strings.Replace(pt, "No projects", "No Projects", 1), backup.ErrDamaged},
		{"trailer missing", join(lines[:n-1]), backup.ErrDamaged},
		{"section missing", drop(rowLine - 1), backup.ErrDamaged},
		{"sections swapped", strings.Replace(strings.Replace(pt, `{"table":"roles"}`, `{"table":"XX"}`, 1), `{"table":"features"}`, `{"table":"roles"}`, 1), backup.ErrDamaged},
		{"line after trailer", pt + "{}\n", backup.ErrDamaged},
		{"no final newline", strings.TrimSuffix(pt, "\n"), backup.ErrDamaged},
		{"row of wrong shape", rehash(withRow(`["org-x","x"]`+"\n"), nil), backup.ErrDamaged},
		{"row with bad base64", strings.Replace(pt, `"k-2025","`, `"k-2025","!`, 1), backup.ErrDamaged},
		{"row with fractional time", rehash(withRow(`["org-x","x",1.5]`+"\n"), nil), backup.ErrDamaged},
		{"empty", "", backup.ErrDamaged},
		{"not a backup", "hello\n", backup.ErrDamaged},
		{"newer format", strings.Replace(pt, `"format_version":1`, `"format_version":2`, 1), backup.ErrIncompatible},
		{"other schema version", strings.Replace(pt, `"schema_version":`, `"schema_version":9`, 1), backup.ErrIncompatible},
		{"other columns", strings.Replace(pt, `{"name":"description","type":"text"}`, `{"name":"summary","type":"text"}`, 1), backup.ErrIncompatible},
	}
	dst := openSQLite(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := backup.Restore(ctx, bytes.NewReader(encrypt(t, []byte(c.pt), k)), k.ids(), dst)
			if !errors.Is(err, c.want) {
				t.Errorf("Restore error = %v, want %v", err, c.want)
			}
			wantEmpty(t, dst)
		})
	}
	// A forged row that is well formed and counted passes the format checks; the store's
	// constraints still refuse one that breaks a key.
	t.Run("duplicate row, counts and hash fixed", func(t *testing.T) {
		forged := rehash(withRow(lines[rowLine]), func(tr string) string {
			return strings.Replace(tr, `{"table":"organizations","rows":2}`, `{"table":"organizations","rows":3}`, 1)
		})
		_, err := backup.Restore(ctx, bytes.NewReader(encrypt(t, []byte(forged), k)), k.ids(), dst)
		if thauth.ErrorCodeOf(err) != thauth.EInvalid || errors.Is(err, backup.ErrDamaged) {
			t.Errorf("Restore error = %v, want EInvalid from the store", err)
		}
		wantEmpty(t, dst)
	})
}

// TestWrongIdentity checks that a backup opened with the wrong key or passphrase is refused
// with a clear error before the target is touched.
func TestWrongIdentity(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	storetest.Populate(t, src)
	k := newKeys(t)
	file := writeBackup(t, src, k)
	other := newKeys(t)
	pass, err := backup.PassphraseIdentity("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	dst := openSQLite(t)
	for name, ids := range map[string][]age.Identity{
		"other key":  other.ids(),
		"passphrase": {pass},
	} {
		_, err := backup.Restore(ctx, bytes.NewReader(file), ids, dst)
		if !errors.Is(err, backup.ErrNoIdentity) || thauth.ErrorCodeOf(err) != thauth.EUnauthenticated {
			t.Errorf("%s: error %v, want ErrNoIdentity (EUnauthenticated)", name, err)
		}
		if msg := thauth.ErrorMessage(err); !strings.Contains(msg, "none of the given identities can decrypt this backup") {
			t.Errorf("%s: message %q", name, msg)
		}
	}
	if _, err := backup.Restore(ctx, bytes.NewReader(file), nil, dst); thauth.ErrorCodeOf(err) != thauth.EInvalid {
		t.Errorf("no identity: error %v, want EInvalid", err)
	}
	wantEmpty(t, dst)
	// Any one of several identities will do.
	if _, err := backup.Restore(ctx, bytes.NewReader(file), append(other.ids(), k.id), dst); err != nil {
		t.Errorf("right identity among others: %v", err)
	}
}

// TestPassphrase backs up with a passphrase instead of a key pair.
func TestPassphrase(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	storetest.Populate(t, src)
	r, err := backup.PassphraseRecipient("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	r.(*age.ScryptRecipient).SetWorkFactor(10) // fast for the test; the default costs ~1s
	var buf bytes.Buffer
	if _, err := backup.Write(ctx, src, &buf, backup.WriteOptions{Recipients: []age.Recipient{r}}); err != nil {
		t.Fatal(err)
	}
	wrong, _ := backup.PassphraseIdentity("wrong")
	if _, err := backup.Verify(ctx, bytes.NewReader(buf.Bytes()), []age.Identity{wrong}); !errors.Is(err, backup.ErrNoIdentity) {
		t.Errorf("wrong passphrase: %v", err)
	}
	right, _ := backup.PassphraseIdentity("correct horse battery staple")
	dst := openSQLite(t)
	if _, err := backup.Restore(ctx, bytes.NewReader(buf.Bytes()), []age.Identity{right}, dst); err != nil {
		t.Fatal(err)
	}
	if d := storetest.DiffDumps(storetest.Export(t, src), storetest.Export(t, dst)); d != "" {
		t.Errorf("restored data differs:\n%s", d)
	}
	// A passphrase cannot be combined with keys (age's rule: anyone holding one of the keys
	// could otherwise tell a passphrase-protected file from the others).
	_, err = backup.Write(ctx, src, &bytes.Buffer{}, backup.WriteOptions{Recipients: []age.Recipient{r, newKeys(t).rcp}})
	if thauth.ErrorCodeOf(err) != thauth.EInvalid {
		t.Errorf("passphrase with a key: error %v, want EInvalid", err)
	}
}

// TestRestoreIntoNonEmptyStore checks that Restore refuses a target that holds any data and
// leaves it unchanged.
func TestRestoreIntoNonEmptyStore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			src := e.open(t)
			storetest.Populate(t, src)
			k := newKeys(t)
			file := writeBackup(t, src, k)
			dst := e.open(t)
			org := thauth.Organization{ID: "0198c000-0000-7000-8000-000000000001", Name: "Existing", CreatedAt: created}
			if err := dst.CreateOrganization(ctx, &org); err != nil {
				t.Fatal(err)
			}
			before := storetest.Export(t, dst)
			_, err := backup.Restore(ctx, bytes.NewReader(file), k.ids(), dst)
			if thauth.ErrorCodeOf(err) != thauth.EConflict || !strings.Contains(thauth.ErrorMessage(err), "not empty (rows in organizations)") {
				t.Errorf("error = %v, want EConflict naming organizations", err)
			}
			if d := storetest.DiffDumps(before, storetest.Export(t, dst)); d != "" {
				t.Errorf("refused restore changed the store:\n%s", d)
			}
			// And into the source itself, the common mistake.
			if _, err := backup.Restore(ctx, bytes.NewReader(file), k.ids(), src); thauth.ErrorCodeOf(err) != thauth.EConflict {
				t.Errorf("restore into the source: error %v, want EConflict", err)
			}
		})
	}
}

// TestSchemaVersions checks that Write refuses a database not migrated to this program's
// schema and Restore a target at another schema version than the backup's.
func TestSchemaVersions(t *testing.T) {
	ctx := context.Background()
	bare, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	k := newKeys(t)
	_, err = backup.Write(ctx, bare, &bytes.Buffer{}, backup.WriteOptions{Recipients: []age.Recipient{k.rcp}})
	if !errors.Is(err, backup.ErrIncompatible) || !strings.Contains(thauth.ErrorMessage(err), "thauth migrate") {
		t.Errorf("Write from an unmigrated database: %v", err)
	}
	src := openSQLite(t)
	storetest.Populate(t, src)
	_, err = backup.Restore(ctx, bytes.NewReader(writeBackup(t, src, k)), k.ids(), bare)
	if !errors.Is(err, backup.ErrIncompatible) {
		t.Errorf("Restore into an unmigrated database: %v", err)
	}
}

// TestWriteRefusesNoRecipient checks the recipient rule.
func TestWriteRefusesNoRecipient(t *testing.T) {
	_, err := backup.Write(context.Background(), openSQLite(t), &bytes.Buffer{}, backup.WriteOptions{})
	if thauth.ErrorCodeOf(err) != thauth.EInvalid {
		t.Errorf("error = %v, want EInvalid", err)
	}
}

// TestWriteFile checks that WriteFile leaves either the old file or a complete backup, with
// owner-only permissions and no temporary file behind.
func TestWriteFile(t *testing.T) {
	ctx := context.Background()
	src := openSQLite(t)
	storetest.Populate(t, src)
	k := newKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "thauth.backup")
	if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A failed backup leaves the previous file alone.
	if _, err := backup.WriteFile(ctx, src, path, backup.WriteOptions{}); err == nil {
		t.Fatal("WriteFile without recipients succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "previous" {
		t.Errorf("failed WriteFile changed the file: %q", b)
	}
	info, err := backup.WriteFile(ctx, src, path, backup.WriteOptions{Recipients: []age.Recipient{k.rcp}})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the backup", len(entries))
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := backup.Verify(ctx, f, k.ids())
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalRows() != info.TotalRows() || got.TotalRows() == 0 {
		t.Errorf("Verify found %d rows, Write wrote %d", got.TotalRows(), info.TotalRows())
	}
}

func sealDataKey(id, master string, wrapped []byte, at time.Time, retired *time.Time) seal.DataKey {
	return seal.DataKey{ID: id, MasterKeyID: master, Wrapped: wrapped, CreatedAt: at, RetiredAt: retired}
}

// chunkBoundary returns the offset of the last boundary between two full age payload
// chunks of file (64 KiB of plaintext and a 16-byte tag each, after the header and a
// 16-byte nonce).
func chunkBoundary(t *testing.T, file []byte) int {
	t.Helper()
	i := bytes.Index(file, []byte("\n--- "))
	if i < 0 {
		t.Fatal("no age header end found")
	}
	start := i + 1 + bytes.IndexByte(file[i+1:], '\n') + 1 + 16
	const chunk = 64<<10 + 16
	n := (len(file) - start - 1) / chunk
	if n < 1 {
		t.Fatal("the backup has only one chunk")
	}
	return start + n*chunk
}
