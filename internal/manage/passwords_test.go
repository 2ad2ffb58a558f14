package manage

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/thauth/thauth"
)

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func TestPasswordHashFormat(t *testing.T) {
	ctx := context.Background()
	h1, err := acctHashPassword(ctx, "correct-password", testPasswords)
	if err != nil {
		t.Fatal(err)
	}
	m := phcPattern.FindStringSubmatch(h1)
	if m == nil || m[1] != "64" || m[2] != "1" || m[3] != "1" {
		t.Fatalf("hash %q is not an argon2id PHC string with the parameters", h1)
	}
	h2, _ := acctHashPassword(ctx, "correct-password", testPasswords)
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: no random salt")
	}
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"correct-password", true}, {"correct-passwore", false}, {"", false}, {"Correct-password", false}} {
		ok, upgrade, err := acctVerifyPassword(ctx, tc.password, h1, testPasswords)
		if err != nil || ok != tc.ok || upgrade {
			t.Errorf("verify(%q) = %v, %v, %v; want %v", tc.password, ok, upgrade, err, tc.ok)
		}
	}
	// Other parameters: still verifies, and asks for an upgrade.
	ok, upgrade, err := acctVerifyPassword(ctx, "correct-password", h1, DefaultPasswordParams)
	if err != nil || !ok || !upgrade {
		t.Fatalf("verify with other parameters = %v, %v, %v", ok, upgrade, err)
	}
	// A hash made elsewhere (argon2 reference test vector layout with our key length).
	ref := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Split(h1, "$")[5]
	if ok, _, err := acctVerifyPassword(ctx, "correct-password", ref, testPasswords); err != nil || ok {
		t.Fatalf("a foreign salt verified: %v %v", ok, err)
	}
}

func TestParsePHCRejects(t *testing.T) {
	good, _ := acctHashPassword(context.Background(), "x", testPasswords)
	parts := strings.Split(good, "$")
	for name, phc := range map[string]string{
		"empty":          "",
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuu5sdfsdfsdfsdfsdfsdfsdfsdfsdfsdfs",
		"argon2i":        strings.Replace(good, "argon2id", "argon2i", 1),
		"version 16":     strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":    "$argon2id$v=19$m=99999999,t=1,p=1$" + parts[4] + "$" + parts[5],
		"zero time":      "$argon2id$v=19$m=64,t=0,p=1$" + parts[4] + "$" + parts[5],
		"zero lanes":     "$argon2id$v=19$m=64,t=1,p=0$" + parts[4] + "$" + parts[5],
		"many lanes":     "$argon2id$v=19$m=4096,t=1,p=300$" + parts[4] + "$" + parts[5],
		"unknown param":  "$argon2id$v=19$m=64,t=1,p=1,x=2$" + parts[4] + "$" + parts[5],
		"bad salt":       "$argon2id$v=19$m=64,t=1,p=1$!!!$" + parts[5],
		"short key":      "$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "$AAAA",
		"missing fields": "$argon2id$v=19$m=64,t=1,p=1",
	} {
		if _, _, _, err := acctParsePHC(phc); err == nil {
			t.Errorf("%s: parsed %q", name, phc)
		}
		if _, _, err := acctVerifyPassword(context.Background(), "x", phc, testPasswords); thauth.ErrorCodeOf(err) != thauth.EInternal {
			t.Errorf("%s: verify error = %v, want internal", name, err)
		}
	}
}

// TestPasswordParamsUpgradeOnSignIn changes the configured parameters and checks that the
// next successful sign-in re-hashes the password with them, and a failed one does not.
func TestPasswordParamsUpgradeOnSignIn(t *testing.T) {
	e := newConsoleEnv(t)
	acct := acctSignUp(t, e, "upgrade@example.com")
	if m := phcPattern.FindStringSubmatch(acct.PasswordHash); m == nil || m[1] != "64" || m[2] != "1" {
		t.Fatalf("initial hash %q", acct.PasswordHash)
	}
	o := e.svc.opts
	o.Passwords = PasswordParams{MemoryKiB: 128, Iterations: 2, Parallelism: 2}
	e.svc = New(e.store, e.engine, o)

	_, err := e.svc.SignIn(e.ctx, acctCI, "upgrade@example.com", "wrong-password-1")
	acctWantErr(t, err, thauth.EUnauthenticated)
	if a, _ := e.store.GetAccount(e.ctx, acct.ID); a.PasswordHash != acct.PasswordHash {
		t.Fatal("a failed sign-in changed the hash")
	}
	acctSignIn(t, e, "upgrade@example.com", acctPassword)
	a, _ := e.store.GetAccount(e.ctx, acct.ID)
	m := phcPattern.FindStringSubmatch(a.PasswordHash)
	if m == nil || m[1] != "128" || m[2] != "2" || m[3] != "2" {
		t.Fatalf("hash after sign-in = %q, want m=128,t=2,p=2", a.PasswordHash)
	}
	// The upgraded hash works, and is not rewritten again.
	acctSignIn(t, e, "upgrade@example.com", acctPassword)
	if b, _ := e.store.GetAccount(e.ctx, acct.ID); b.PasswordHash != a.PasswordHash {
		t.Fatal("an up-to-date hash was rewritten")
	}
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		password, email, want string
	}{
		{"abcdefghijkl", "", ""},
		{"abcdefghijk", "", "at least 12 characters"},
		{strings.Repeat("ü", 12), "", ""}, // 12 characters, 24 bytes
		{strings.Repeat("ü", 11), "", "at least 12 characters"},
		{strings.Repeat("x", 256), "", ""},
		{strings.Repeat("x", 257), "", "at most 256 characters"},
		{"me@example.com", "me@example.com", "must not be your email"},
		{"ME@EXAMPLE.COM", "me@example.com", "must not be your email"},
		{"1234567890qwerty", "", "commonly used"},
		{"1234567890QwErTy", "", "commonly used"},
		{"\xff\xfe-invalid-utf8", "", "valid UTF-8"},
	}
	for _, tc := range tests {
		if got := acctCheckPasswordPolicy(tc.password, tc.email); (tc.want == "" && got != "") || !strings.Contains(got, tc.want) {
			t.Errorf("policy(%.20q) = %q, want %q", tc.password, got, tc.want)
		}
	}
}

func TestCommonPasswordList(t *testing.T) {
	list := acctCommonPasswords()
	if len(list) < 10000 {
		t.Fatalf("the list has %d entries, want at least 10,000", len(list))
	}
	if !slices.IsSorted(list) {
		t.Fatal("the list is not sorted")
	}
	for _, p := range list {
		if p == "" || p != strings.ToLower(p) || strings.TrimSpace(p) != p {
			t.Fatalf("entry %q is empty, not lower-case or padded", p)
		}
	}
	for _, p := range []string{"password", "123456", "qwerty", "iloveyou", "1234567890qwerty"} {
		if !acctIsCommonPassword(p) {
			t.Errorf("%q is not in the list", p)
		}
	}
	if acctIsCommonPassword("violet-harbor-lantern-42") {
		t.Error("a random passphrase is in the list")
	}
}

// TestArgonConcurrencyBound fills every hashing slot and checks that a further hash waits
// and gives up with its context instead of running.
func TestArgonConcurrencyBound(t *testing.T) {
	if cap(acctArgonSlots) < 2 {
		t.Fatalf("only %d hashing slots", cap(acctArgonSlots))
	}
	for range cap(acctArgonSlots) {
		acctArgonSlots <- struct{}{}
	}
	defer func() {
		for range cap(acctArgonSlots) {
			<-acctArgonSlots
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := acctHashPassword(ctx, "some-password", testPasswords)
	if thauth.ErrorCodeOf(err) != thauth.EUnavailable {
		t.Fatalf("hash with every slot taken = %v, want unavailable", err)
	}
}

func TestPasswordParamsValidate(t *testing.T) {
	for _, p := range []PasswordParams{DefaultPasswordParams, testPasswords, {MemoryKiB: 16, Iterations: 1, Parallelism: 2}} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for _, tc := range []struct {
		p    PasswordParams
		want string
	}{
		{PasswordParams{MemoryKiB: 64, Iterations: 0, Parallelism: 1}, "iterations"},
		{PasswordParams{MemoryKiB: 64, Iterations: 65, Parallelism: 1}, "iterations"},
		{PasswordParams{MemoryKiB: 64, Iterations: 1, Parallelism: 0}, "parallelism"},
		{PasswordParams{MemoryKiB: 8, Iterations: 1, Parallelism: 2}, "memory"},
		{PasswordParams{MemoryKiB: 5 << 20, Iterations: 1, Parallelism: 1}, "memory"},
	} {
		acctWantErr(t, tc.p.Validate(), thauth.EInvalid, tc.want)
	}
}
