package seal

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// clock is an injected, manually advanced time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// genEntry returns a new "<id>:<base64>" master key entry.
func genEntry(t *testing.T, id string) string {
	t.Helper()
	e, err := GenerateMasterKey(id)
	if err != nil {
		t.Fatalf("GenerateMasterKey(%q): %v", id, err)
	}
	return e
}

func parseKeys(t *testing.T, entries ...string) MasterKeys {
	t.Helper()
	mk, err := ParseMasterKeys(strings.Join(entries, ","))
	if err != nil {
		t.Fatalf("ParseMasterKeys: %v", err)
	}
	return mk
}

type fixture struct {
	ks    *MemoryKeyStore
	clock *clock
	logs  *logBuffer
}

func newFixture() *fixture {
	return &fixture{ks: &MemoryKeyStore{}, clock: newClock(), logs: &logBuffer{}}
}

func (f *fixture) options() Options {
	return Options{
		Now:        f.clock.Now,
		Logger:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Production: true,
	}
}

func (f *fixture) sealer(t *testing.T, mk MasterKeys) *Sealer {
	t.Helper()
	s, err := New(context.Background(), f.ks, mk, f.options())
	if err != nil {
		t.Fatalf("New(%v): %v", mk, err)
	}
	return s
}

// wantErr checks that err is a *thauth.Error with code and sentinel, and its message mentions
// every one of mentions.
func wantErr(t *testing.T, err error, code thauth.ErrorCode, sentinel error, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	var te *thauth.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *thauth.Error", err, err)
	}
	if te.Code != code {
		t.Errorf("code = %q, want %q (error: %v)", te.Code, code, err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %v is not %v", err, sentinel)
	}
	for _, m := range mentions {
		if !strings.Contains(te.Message, m) {
			t.Errorf("message %q does not mention %q", te.Message, m)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	ctx := context.Background()

	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(i)
	}
	for _, tc := range []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"totp seed", []byte("JBSWY3DPEHPK3PXP")},
		{"binary 4KiB", binary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := s.Seal("totp_seed", "user-1", tc.plaintext)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if want := "v1." + s.ActiveDataKeyID() + "."; !strings.HasPrefix(sealed, want) {
				t.Errorf("sealed %q does not start with %q", sealed, want)
			}
			if len(tc.plaintext) > 8 && strings.Contains(sealed, string(tc.plaintext)) {
				t.Errorf("sealed value contains the plaintext")
			}
			again, _ := s.Seal("totp_seed", "user-1", tc.plaintext)
			if again == sealed {
				t.Errorf("two seals of the same plaintext are equal (nonce reuse?)")
			}
			got, err := s.Open(ctx, "totp_seed", "user-1", sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Errorf("Open = %q, want %q", got, tc.plaintext)
			}
			if s.NeedsReseal(sealed) {
				t.Errorf("NeedsReseal(fresh value) = true")
			}
		})
	}

	t.Run("a new Sealer over the same store opens it", func(t *testing.T) {
		sealed, _ := s.Seal("webhook_secret", "wh-1", []byte("whsec_abc"))
		s2 := f.sealer(t, s.masters)
		if s2.ActiveDataKeyID() != s.ActiveDataKeyID() {
			t.Errorf("second Sealer created data key %s instead of using %s", s2.ActiveDataKeyID(), s.ActiveDataKeyID())
		}
		got, err := s2.Open(ctx, "webhook_secret", "wh-1", sealed)
		if err != nil || string(got) != "whsec_abc" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
}

func TestSealNeedsPurposeAndRow(t *testing.T) {
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	sealed, _ := s.Seal("p", "r", []byte("x"))
	for _, tc := range []struct{ purpose, row string }{{"", "r"}, {"p", ""}, {"", ""}} {
		if _, err := s.Seal(tc.purpose, tc.row, []byte("x")); err == nil {
			t.Errorf("Seal(%q, %q) succeeded", tc.purpose, tc.row)
		}
		if _, err := s.Open(context.Background(), tc.purpose, tc.row, sealed); err == nil {
			t.Errorf("Open(%q, %q) succeeded", tc.purpose, tc.row)
		}
	}
}

func TestOpenWrongMasterKey(t *testing.T) {
	ctx := context.Background()

	t.Run("same id, other key material: New refuses", func(t *testing.T) {
		f := newFixture()
		s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
		if _, err := s.Seal("totp_seed", "u1", []byte("seed")); err != nil {
			t.Fatal(err)
		}
		_, err := New(ctx, f.ks, parseKeys(t, genEntry(t, "k1")), f.options())
		wantErr(t, err, thauth.EInternal, ErrWrongKey, "none of the 1 data keys", "configured: k1", "wrapped under: k1")
	})

	t.Run("old master key removed too early: New refuses", func(t *testing.T) {
		f := newFixture()
		f.sealer(t, parseKeys(t, genEntry(t, "k1")))
		_, err := New(ctx, f.ks, parseKeys(t, genEntry(t, "k2")), f.options())
		wantErr(t, err, thauth.EInternal, ErrWrongKey, "configured: k2", "wrapped under: k1", "thauth keys rotate")
	})

	t.Run("value under a data key of a missing master key: Open fails", func(t *testing.T) {
		// A store holding dk1 (under k1) and dk2 (under k2), opened with k2 only.
		f := newFixture()
		s1 := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
		sealed, _ := s1.Seal("totp_seed", "u1", []byte("seed"))
		other := newFixture()
		k2 := parseKeys(t, genEntry(t, "k2"))
		other.sealer(t, k2)
		rows, _ := other.ks.ListDataKeys(ctx)
		for _, r := range rows {
			if err := f.ks.InsertDataKey(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		s2 := f.sealer(t, k2)
		if !strings.Contains(f.logs.String(), "data key cannot be unwrapped") {
			t.Errorf("New did not warn about the unusable data key; logs:\n%s", f.logs)
		}
		_, err := s2.Open(ctx, "totp_seed", "u1", sealed)
		wantErr(t, err, thauth.EInternal, ErrWrongKey,
			"sealed value uses data key "+s1.ActiveDataKeyID()+" which cannot be unwrapped with the configured master keys",
			`master key "k1", which is not configured`)
	})
}

func TestOpenValueMovedOrTampered(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	sealed, _ := s.Seal("totp_seed", "user-1", []byte("JBSWY3DPEHPK3PXP"))

	for _, tc := range []struct{ name, purpose, row string }{
		{"another row", "totp_seed", "user-2"},
		{"another purpose", "webhook_secret", "user-1"},
		{"row id that shares a prefix", "totp_seed", "user-10"},
		{"purpose and row boundary shifted", "totp_seeduser-", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Open(ctx, tc.purpose, tc.row, sealed)
			wantErr(t, err, thauth.EInternal, ErrTampered, "does not belong to this row or was tampered with", tc.row)
		})
	}

	t.Run("every flipped bit", func(t *testing.T) {
		prefix := sealed[:strings.LastIndexByte(sealed, '.')+1]
		payload, err := base64.RawURLEncoding.DecodeString(sealed[len(prefix):])
		if err != nil {
			t.Fatal(err)
		}
		for i := range payload {
			for bit := range 8 {
				p := bytes.Clone(payload)
				p[i] ^= 1 << bit
				_, err := s.Open(ctx, "totp_seed", "user-1", prefix+base64.RawURLEncoding.EncodeToString(p))
				if !errors.Is(err, ErrTampered) {
					t.Fatalf("byte %d bit %d flipped: err = %v, want ErrTampered", i, bit, err)
				}
			}
		}
	})

	t.Run("relabelled with another data key id", func(t *testing.T) {
		old := s.ActiveDataKeyID()
		if _, err := s.Rotate(ctx, func(context.Context, Resealer) error { return nil }); err != nil {
			t.Fatal(err)
		}
		relabelled := strings.Replace(sealed, old, s.ActiveDataKeyID(), 1)
		_, err := s.Open(ctx, "totp_seed", "user-1", relabelled)
		wantErr(t, err, thauth.EInternal, ErrTampered)
		if got, err := s.Open(ctx, "totp_seed", "user-1", sealed); err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
			t.Errorf("original after relabel attempt: %q, %v", got, err)
		}
	})

	t.Run("altered wrapped data key", func(t *testing.T) {
		f := newFixture()
		mk := parseKeys(t, genEntry(t, "k1"))
		s := f.sealer(t, mk)
		sealed, _ := s.Seal("p", "r", []byte("x"))
		rows, _ := f.ks.ListDataKeys(ctx)
		rows[0].Wrapped[20] ^= 1
		if err := f.ks.UpdateDataKey(ctx, rows[0]); err != nil {
			t.Fatal(err)
		}
		_, err := New(ctx, f.ks, mk, f.options())
		wantErr(t, err, thauth.EInternal, ErrWrongKey, "none of the 1 data keys")
		if err := s.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = s.Open(ctx, "p", "r", sealed)
		wantErr(t, err, thauth.EInternal, ErrWrongKey, `master key "k1" is configured but does not unwrap it`)
	})
}

func TestOpenMalformed(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	good, _ := s.Seal("p", "r", []byte("secret"))
	id := s.ActiveDataKeyID()
	for _, tc := range []struct{ name, sealed string }{
		{"empty", ""},
		{"plaintext", "JBSWY3DPEHPK3PXP"},
		{"other version", "v2" + good[2:]},
		{"no data", "v1." + id},
		{"bad id", "v1.d k." + good[len("v1."+id+"."):]},
		{"bad base64", "v1." + id + ".!!!!"},
		{"too short", "v1." + id + ".AAAA"},
		{"padded base64", good + "=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Open(ctx, "p", "r", tc.sealed)
			wantErr(t, err, thauth.EInternal, ErrMalformed, "sealed value is malformed")
			if !s.NeedsReseal(tc.sealed) {
				t.Errorf("NeedsReseal(malformed) = false")
			}
		})
	}
}

func TestOpenUnknownDataKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	s := f.sealer(t, parseKeys(t, genEntry(t, "k1")))
	good, _ := s.Seal("p", "r", []byte("secret"))
	unknown := strings.Replace(good, s.ActiveDataKeyID(), "dk_0123456789abcdef", 1)
	_, err := s.Open(ctx, "p", "r", unknown)
	wantErr(t, err, thauth.EInternal, ErrUnknownDataKey, "data key dk_0123456789abcdef which is not in the key store")
	if !s.NeedsReseal(unknown) {
		t.Errorf("NeedsReseal(unknown key) = false")
	}
}

// TestOpenReloadsDataKeysOfOtherProcesses: a server keeps opening values after another process
// (`thauth keys rotate`) rotated under it, and switches to the new data key on Reload.
func TestOpenReloadsDataKeysOfOtherProcesses(t *testing.T) {
	ctx := context.Background()
	f := newFixture()
	mk := parseKeys(t, genEntry(t, "k2"), genEntry(t, "k1"))
	server := f.sealer(t, mk)
	cli := f.sealer(t, mk)
	before := server.ActiveDataKeyID()

	res, err := cli.Rotate(ctx, func(context.Context, Resealer) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := cli.Seal("p", "r", []byte("new"))
	got, err := server.Open(ctx, "p", "r", sealed)
	if err != nil || string(got) != "new" {
		t.Fatalf("server Open of a value under the new data key = %q, %v", got, err)
	}
	if id := server.ActiveDataKeyID(); id != res.NewDataKeyID {
		t.Errorf("after the on-demand reload the server seals under %s, want %s (was %s)", id, res.NewDataKeyID, before)
	}

	// Reload on demand is rate-limited; an explicit Reload is not.
	res2, err := cli.Rotate(ctx, func(context.Context, Resealer) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if id := server.ActiveDataKeyID(); id != res2.NewDataKeyID {
		t.Errorf("after Reload the server seals under %s, want %s", id, res2.NewDataKeyID)
	}
}

func TestNoMasterKey(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		production  bool
		allowDevKey bool
	}{
		{"production", true, false},
		{"production ignores AllowDevKey", true, true},
		{"development without opt-in", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			o := f.options()
			o.Production, o.AllowDevKey = tc.production, tc.allowDevKey
			_, err := New(ctx, f.ks, MasterKeys{}, o)
			wantErr(t, err, thauth.EUnavailable, ErrNoMasterKey, "THAUTH_MASTER_KEY or --master-key-file is required to store secrets")
			if rows, _ := f.ks.ListDataKeys(ctx); len(rows) != 0 {
				t.Errorf("a data key was stored without a master key: %v", rows)
			}
		})
	}

	t.Run("development with opt-in: ephemeral key, logged", func(t *testing.T) {
		f := newFixture()
		o := f.options()
		o.Production, o.AllowDevKey = false, true
		s, err := New(ctx, f.ks, MasterKeys{}, o)
		if err != nil {
			t.Fatal(err)
		}
		if logs := f.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "ephemeral development key") {
			t.Errorf("no warning about the ephemeral key; logs:\n%s", logs)
		}
		sealed, _ := s.Seal("p", "r", []byte("dev"))
		if got, err := s.Open(ctx, "p", "r", sealed); err != nil || string(got) != "dev" {
			t.Fatalf("Open = %q, %v", got, err)
		}
		// A restart gets another ephemeral key: the old value is gone, the new process works.
		s2, err := New(ctx, f.ks, MasterKeys{}, o)
		if err != nil {
			t.Fatalf("second ephemeral New: %v", err)
		}
		_, err = s2.Open(ctx, "p", "r", sealed)
		wantErr(t, err, thauth.EInternal, ErrWrongKey, "not configured")
		if s2.ActiveDataKeyID() == s.ActiveDataKeyID() {
			t.Errorf("second process reuses the first one's data key")
		}
	})

	t.Run("development key refused for a store protected by a real master key", func(t *testing.T) {
		f := newFixture()
		f.sealer(t, parseKeys(t, genEntry(t, "prod-1")))
		o := f.options()
		o.Production, o.AllowDevKey = false, true
		_, err := New(ctx, f.ks, MasterKeys{}, o)
		wantErr(t, err, thauth.EUnavailable, ErrNoMasterKey, "THAUTH_MASTER_KEY or --master-key-file is required", "wrapped under master key prod-1")
		if rows, _ := f.ks.ListDataKeys(ctx); len(rows) != 1 {
			t.Errorf("%d data keys, want the original one only", len(rows))
		}
	})
}

func TestParseMasterKeys(t *testing.T) {
	k1, k2, k3 := genEntry(t, "k1"), genEntry(t, "key-2026.03"), genEntry(t, "k_3")
	b64of := func(e string) string { return e[strings.IndexByte(e, ':')+1:] }
	raw1, _ := base64.StdEncoding.DecodeString(b64of(k1))

	for _, tc := range []struct {
		name string
		in   string
		ids  []string
	}{
		{"empty", "", []string{}},
		{"blank lines and comments only", "\n  # nothing yet\n\n", []string{}},
		{"one", k1, []string{"k1"}},
		{"comma separated, first is active", k2 + "," + k1, []string{"key-2026.03", "k1"}},
		{"file with comments and CRLF", "# active\r\n" + k3 + "\r\n# old, kept for rotation\r\n" + k1 + "\r\n", []string{"k_3", "k1"}},
		{"spaces around entries", "  " + k1 + " ,\t" + k2 + "  ", []string{"k1", "key-2026.03"}},
		{"url-safe unpadded base64", "k1:" + base64.RawURLEncoding.EncodeToString(raw1), []string{"k1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk, err := ParseMasterKeys(tc.in)
			if err != nil {
				t.Fatalf("ParseMasterKeys: %v", err)
			}
			if got := mk.IDs(); strings.Join(got, ",") != strings.Join(tc.ids, ",") {
				t.Errorf("IDs = %v, want %v", got, tc.ids)
			}
			if mk.Len() > 0 && mk.ActiveID() != tc.ids[0] {
				t.Errorf("ActiveID = %q, want %q", mk.ActiveID(), tc.ids[0])
			}
		})
	}

	short := base64.StdEncoding.EncodeToString(raw1[:16])
	for _, tc := range []struct {
		name     string
		in       string
		problems int
		mentions []string
	}{
		{"bare key without id", b64of(k1), 1, []string{"entry 1: expected <id>:<base64 key>"}},
		{"bad id", "k 1:" + b64of(k1), 1, []string{"entry 1: key id must be"}},
		{"empty id", ":" + b64of(k1), 1, []string{"key id must be"}},
		{"bad base64", "k1:not*base64", 1, []string{`key "k1" is not valid base64`}},
		{"16-byte key", "k1:" + short, 1, []string{`key "k1" must be 32 bytes`, "decodes to 16 bytes"}},
		{"duplicate id", k1 + "," + strings.Replace(k2, "key-2026.03", "k1", 1), 1, []string{`entry 2: key id "k1" is also used by entry 1`}},
		{"same material twice", k1 + ",k9:" + b64of(k1), 1, []string{`key "k9" holds the same key material as key "k1"`}},
		{"every problem at once", "k1:" + short + "\nnocolon\n" + k2 + "\nk?:" + b64of(k3), 3, []string{"entry 1:", "entry 2:", "entry 4:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk, err := ParseMasterKeys(tc.in)
			wantErr(t, err, thauth.EInvalid, nil, tc.mentions...)
			if mk.Len() != 0 {
				t.Errorf("keys returned with an error: %v", mk)
			}
			var te *thauth.Error
			if errors.As(err, &te) && len(te.Problems) != tc.problems {
				t.Errorf("%d problems, want %d: %+v", len(te.Problems), tc.problems, te.Problems)
			}
			assertNoKeyMaterial(t, err.Error(), k1, k2, k3)
		})
	}
}

func TestGenerateMasterKey(t *testing.T) {
	a, b := genEntry(t, "2026-03"), genEntry(t, "2026-03")
	if a == b {
		t.Errorf("two generated keys are equal")
	}
	mk, err := ParseMasterKeys(a)
	if err != nil || mk.ActiveID() != "2026-03" {
		t.Fatalf("ParseMasterKeys(generated) = %v, %v", mk, err)
	}
	for _, id := range []string{"", "a:b", "has space", strings.Repeat("x", 65)} {
		if _, err := GenerateMasterKey(id); thauth.ErrorCodeOf(err) != thauth.EInvalid {
			t.Errorf("GenerateMasterKey(%q) error = %v, want EInvalid", id, err)
		}
	}
}

// TestNoKeyMaterialInErrors drives every failure path with real keys configured and checks that
// no error message, log line or formatting of MasterKeys contains key material.
func TestNoKeyMaterialInErrors(t *testing.T) {
	ctx := context.Background()
	k1, k2 := genEntry(t, "k1"), genEntry(t, "k2")
	f := newFixture()
	s1 := f.sealer(t, parseKeys(t, k1))
	sealed, _ := s1.Seal("totp_seed", "u1", []byte("JBSWY3DPEHPK3PXP"))

	var texts []string
	collect := func(err error) {
		if err == nil {
			t.Errorf("expected an error")
			return
		}
		texts = append(texts, err.Error(), thauth.ErrorMessage(err), fmt.Sprintf("%+v", err))
	}
	_, err := New(ctx, f.ks, parseKeys(t, k2), f.options())
	collect(err)
	_, err = New(ctx, f.ks, parseKeys(t, "k1:"+k2[3:]), f.options()) // id k1, k2's material
	collect(err)
	_, err = s1.Open(ctx, "totp_seed", "u2", sealed)
	collect(err)
	_, err = s1.Open(ctx, "totp_seed", "u1", sealed[:len(sealed)-3])
	collect(err)
	_, err = ParseMasterKeys(k1 + "," + "k1:" + k2[3:]) // duplicate id
	collect(err)
	_, err = ParseMasterKeys(k1 + ",k3:" + k1[3:]) // duplicate material
	collect(err)
	_, err = ParseMasterKeys(k1[3:]) // bare key
	collect(err)
	_, err = ParseMasterKeys("k1:" + k1[3:20]) // truncated key
	collect(err)

	mk := parseKeys(t, k2, k1)
	s2 := f.sealer(t, mk)
	_, err = s2.Rotate(ctx, func(ctx context.Context, reseal Resealer) error {
		_, err := reseal("totp_seed", "wrong-row", sealed)
		return err
	})
	collect(err)
	texts = append(texts, fmt.Sprintf("%v|%+v|%#v|%s", mk, mk, mk, mk), f.logs.String())
	var logged logBuffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys", "master_keys", mk)
	texts = append(texts, logged.String())

	for _, text := range texts {
		assertNoKeyMaterial(t, text, k1, k2)
	}
}

// assertNoKeyMaterial fails if text contains any encoding of the key in any entry.
func assertNoKeyMaterial(t *testing.T, text string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		raw, err := base64.StdEncoding.DecodeString(e[strings.IndexByte(e, ':')+1:])
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(raw)[:16],
			base64.RawURLEncoding.EncodeToString(raw)[:16],
			fmt.Sprintf("%x", raw)[:16],
			string(raw[:8]),
			fmt.Sprint(raw[:4])[1:],
		} {
			if strings.Contains(text, enc) {
				t.Errorf("text contains key material %q:\n%s", enc, text)
			}
		}
	}
}

// failingStore is a KeyStore whose database is down.
type failingStore struct{}

func (failingStore) ListDataKeys(context.Context) ([]DataKey, error) {
	return nil, thauth.Errorf(thauth.EUnavailable, "database unavailable")
}
func (failingStore) InsertDataKey(context.Context, DataKey) error { return errors.New("disk full") }
func (failingStore) UpdateDataKey(context.Context, DataKey) error { return errors.New("disk full") }

// TestKeyStoreErrors: a store's *thauth.Error comes back as is (so "unavailable" stays
// retryable); anything else becomes EInternal.
func TestKeyStoreErrors(t *testing.T) {
	mk := parseKeys(t, genEntry(t, "k1"))
	_, err := New(context.Background(), failingStore{}, mk, Options{})
	wantErr(t, err, thauth.EUnavailable, nil, "database unavailable")

	f := newFixture()
	s := f.sealer(t, mk)
	s.ks = insertFails{f.ks}
	_, err = s.Rotate(context.Background(), func(context.Context, Resealer) error { return nil })
	wantErr(t, err, thauth.EInternal, nil, "cannot store a new data key")
}

type insertFails struct{ *MemoryKeyStore }

func (insertFails) InsertDataKey(context.Context, DataKey) error { return errors.New("disk full") }
