package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// testIdentity covers thauth.IdentityData. Beyond the contracts of identitystore.go it pins
// down these behaviours, shared by every engine:
//   - Emails are compared exactly as stored (the caller normalizes them).
//   - A session, access token or invitation addressed with another account's or
//     organization's id is ENotFound, for reads and writes alike (Touch included), and the
//     row is left unchanged. So are Update/Delete of a missing row and AdvanceTOTPStep of an
//     unknown account; ClearThrottle of a key without a counter is not an error.
//   - Listings ordered by a time break ties by id (newest first: descending).
//   - ClaimMail returns the messages as stored, with their new NextAttemptAt (now+lease).
//   - RecordFailure restarts the count only when the last failure is strictly before
//     resetBefore.
//   - AuditChains and the audit chains are byte-ordered (PostgreSQL: COLLATE "C").
func testIdentity(t *testing.T, open func(t *testing.T) thauth.Store) {
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open) })
	t.Run("TOTPStep", func(t *testing.T) { testTOTPStep(t, open) })
	t.Run("RecoveryCodes", func(t *testing.T) { testRecoveryCodes(t, open) })
	t.Run("EmailTokens", func(t *testing.T) { testEmailTokens(t, open) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, open) })
	t.Run("AccessTokens", func(t *testing.T) { testAccessTokens(t, open) })
	t.Run("OrganizationSettings", func(t *testing.T) { testOrganizationSettings(t, open) })
	t.Run("Memberships", func(t *testing.T) { testMemberships(t, open) })
	t.Run("Invitations", func(t *testing.T) { testInvitations(t, open) })
	t.Run("Operators", func(t *testing.T) { testOperators(t, open) })
	t.Run("Throttles", func(t *testing.T) { testThrottles(t, open) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("IdentityTx", func(t *testing.T) { testIdentityTx(t, open) })
}

// newAccount stores an account with email, created at created, and returns it.
func newAccount(t *testing.T, s thauth.Store, email string, created time.Time) thauth.Account {
	t.Helper()
	a := thauth.Account{ID: newID(), Email: email, Name: "Name of " + email, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		CreatedAt: created, UpdatedAt: created}
	must(t, s.CreateAccount(context.Background(), &a))
	return a
}

// sortedIDs returns n fresh ids in ascending byte order, for tests of tie-breaking by id.
func sortedIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID()
	}
	slices.Sort(ids)
	return ids
}

// hash returns a distinct 32-byte token hash for s.
func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// wantEmpty fails unless a listing returned no error and a non-nil, empty slice.
func wantEmpty[T any](t *testing.T, what string, got []T, err error) {
	t.Helper()
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Errorf("%s = %#v, want a non-nil empty slice", what, got)
	}
}

// concurrently runs fn(i) for i in [0, n) at once and waits for them all.
func concurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func testAccounts(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		full := thauth.Account{
			ID: newID(), Email: "ada@example.com", Name: "Ada \"Countess\" Lovelace 🎉", PasswordHash: "$argon2id$v=19$x",
			EmailVerifiedAt: ptr(at(time.Minute)), TOTPSecret: "sealed:secret", TOTPPending: "sealed:pending",
			TOTPEnabledAt: ptr(at(2 * time.Minute)), TOTPLastStep: 42, CreatedAt: base, UpdatedAt: at(3 * time.Minute),
		}
		must(t, s.CreateAccount(ctx, &full))
		bare := thauth.Account{ID: newID(), Email: "bob@example.com", PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
		must(t, s.CreateAccount(ctx, &bare))
		for _, want := range []thauth.Account{full, bare} {
			got, err := s.GetAccount(ctx, want.ID)
			must(t, err)
			diff(t, "GetAccount", &want, got)
			got, err = s.GetAccountByEmail(ctx, want.Email)
			must(t, err)
			diff(t, "GetAccountByEmail", &want, got)
		}
		_, err := s.GetAccount(ctx, newID())
		wantCode(t, err, thauth.ENotFound)
		_, err = s.GetAccountByEmail(ctx, "nobody@example.com")
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("TimesUTCMicroseconds", func(t *testing.T) {
		s := open(t)
		zone := time.FixedZone("X", -5*3600)
		created := time.Date(2026, 3, 1, 5, 0, 0, 123456789, zone)
		a := thauth.Account{ID: newID(), Email: "t@example.com", PasswordHash: "h", CreatedAt: created, UpdatedAt: created,
			EmailVerifiedAt: ptr(created.Add(time.Nanosecond))}
		must(t, s.CreateAccount(ctx, &a))
		got, err := s.GetAccount(ctx, a.ID)
		must(t, err)
		want := created.Truncate(time.Microsecond).UTC()
		for name, ts := range map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt, "EmailVerifiedAt": *got.EmailVerifiedAt} {
			wantUTC(t, name, ts)
			if !ts.Equal(want) || ts.Nanosecond()%1000 != 0 {
				t.Errorf("%s = %v, want %v", name, ts, want)
			}
		}
	})

	t.Run("EmailUnique", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		dup := thauth.Account{ID: newID(), Email: a.Email, PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
		wantCode(t, s.CreateAccount(ctx, &dup), thauth.EConflict)
		sameID := thauth.Account{ID: a.ID, Email: "other@example.com", PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
		wantCode(t, s.CreateAccount(ctx, &sameID), thauth.EConflict)
		// Emails are stored and compared exactly as given: normalizing is the caller's job.
		upper := newAccount(t, s, "Ada@Example.com", base)
		got, err := s.GetAccountByEmail(ctx, "ada@example.com")
		must(t, err)
		if got.ID != a.ID {
			t.Errorf("GetAccountByEmail(lower) = %s, want %s", got.ID, a.ID)
		}
		got, err = s.GetAccountByEmail(ctx, "Ada@Example.com")
		must(t, err)
		if got.ID != upper.ID {
			t.Errorf("GetAccountByEmail(mixed case) = %s, want %s", got.ID, upper.ID)
		}
		_, err = s.GetAccountByEmail(ctx, "ADA@EXAMPLE.COM")
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("Update", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		other := newAccount(t, s, "bob@example.com", base)
		_, err := s.AdvanceTOTPStep(ctx, a.ID, 7)
		must(t, err)

		u := a
		u.Email, u.Name, u.PasswordHash = "ada@new.example", "Ada L.", "$argon2id$new"
		u.EmailVerifiedAt, u.TOTPEnabledAt = ptr(at(time.Hour)), ptr(at(time.Hour))
		u.TOTPSecret, u.TOTPPending = "sealed:s", ""
		u.UpdatedAt = at(time.Hour)
		u.CreatedAt = at(99 * time.Hour) // not written
		u.TOTPLastStep = 1000            // not written: only AdvanceTOTPStep moves it
		must(t, s.UpdateAccount(ctx, &u))
		want := u
		want.CreatedAt, want.TOTPLastStep = a.CreatedAt, 7
		got, err := s.GetAccount(ctx, a.ID)
		must(t, err)
		diff(t, "updated account", &want, got)
		_, err = s.GetAccountByEmail(ctx, a.Email)
		wantCode(t, err, thauth.ENotFound)

		// Optional times go back to NULL.
		u.EmailVerifiedAt, u.TOTPEnabledAt, u.TOTPSecret = nil, nil, ""
		must(t, s.UpdateAccount(ctx, &u))
		got, err = s.GetAccount(ctx, a.ID)
		must(t, err)
		if got.EmailVerifiedAt != nil || got.TOTPEnabledAt != nil || got.MFAEnabled() {
			t.Errorf("cleared times came back: %v %v", got.EmailVerifiedAt, got.TOTPEnabledAt)
		}

		taken := u
		taken.Email = other.Email
		wantCode(t, s.UpdateAccount(ctx, &taken), thauth.EConflict)
		got, err = s.GetAccount(ctx, a.ID)
		must(t, err)
		if got.Email != u.Email {
			t.Errorf("email after a conflicting update = %q, want %q", got.Email, u.Email)
		}
		missing := thauth.Account{ID: newID(), Email: "x@example.com", PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
		wantCode(t, s.UpdateAccount(ctx, &missing), thauth.ENotFound)
	})
}

func testTOTPStep(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("OnlyForward", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		for _, c := range []struct {
			step int64
			want bool
		}{{100, true}, {100, false}, {99, false}, {0, false}, {101, true}, {200, true}, {150, false}} {
			ok, err := s.AdvanceTOTPStep(ctx, a.ID, c.step)
			must(t, err)
			if ok != c.want {
				t.Errorf("AdvanceTOTPStep(%d) = %v, want %v", c.step, ok, c.want)
			}
		}
		got, err := s.GetAccount(ctx, a.ID)
		must(t, err)
		if got.TOTPLastStep != 200 {
			t.Errorf("TOTPLastStep = %d, want 200", got.TOTPLastStep)
		}
		// Steps are per account.
		ok, err := s.AdvanceTOTPStep(ctx, b.ID, 100)
		must(t, err)
		if !ok {
			t.Error("step 100 of another account refused")
		}
		_, err = s.AdvanceTOTPStep(ctx, newID(), 1)
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("ConcurrentReplay", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		var mu sync.Mutex
		wins := 0
		concurrently(16, func(int) {
			ok, err := s.AdvanceTOTPStep(ctx, a.ID, 5000)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
		if wins != 1 {
			t.Errorf("%d concurrent uses of one step succeeded, want 1", wins)
		}
	})
}

func testRecoveryCodes(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	count := func(t *testing.T, s thauth.Store, accountID string) int {
		t.Helper()
		n, err := s.CountRecoveryCodes(ctx, accountID)
		must(t, err)
		return n
	}
	use := func(t *testing.T, s thauth.Store, accountID string, h []byte) bool {
		t.Helper()
		ok, err := s.UseRecoveryCode(ctx, accountID, h, at(time.Hour))
		must(t, err)
		return ok
	}

	t.Run("UseOnce", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		if n := count(t, s, a.ID); n != 0 {
			t.Errorf("codes of a new account = %d", n)
		}
		must(t, s.ReplaceRecoveryCodes(ctx, a.ID, [][]byte{hash("a1"), hash("a2"), hash("a3")}, base))
		must(t, s.ReplaceRecoveryCodes(ctx, b.ID, [][]byte{hash("b1")}, base))
		if n := count(t, s, a.ID); n != 3 {
			t.Errorf("codes = %d, want 3", n)
		}
		if !use(t, s, a.ID, hash("a2")) {
			t.Fatal("unused code refused")
		}
		if use(t, s, a.ID, hash("a2")) {
			t.Error("a code worked twice")
		}
		if use(t, s, a.ID, hash("nope")) {
			t.Error("an unknown code worked")
		}
		// Another account's code is not this account's.
		if use(t, s, a.ID, hash("b1")) {
			t.Error("another account's code worked")
		}
		if n := count(t, s, b.ID); n != 1 {
			t.Errorf("codes of the other account = %d, want 1 (untouched)", n)
		}
		if n := count(t, s, a.ID); n != 2 {
			t.Errorf("codes after one use = %d, want 2", n)
		}
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		must(t, s.ReplaceRecoveryCodes(ctx, a.ID, [][]byte{hash("c")}, base))
		var mu sync.Mutex
		wins := 0
		concurrently(8, func(int) {
			ok, err := s.UseRecoveryCode(ctx, a.ID, hash("c"), base)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
		if wins != 1 {
			t.Errorf("%d concurrent uses of one code succeeded, want 1", wins)
		}
	})

	t.Run("Replace", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		must(t, s.ReplaceRecoveryCodes(ctx, a.ID, [][]byte{hash("old1"), hash("old2")}, base))
		use(t, s, a.ID, hash("old1"))
		must(t, s.ReplaceRecoveryCodes(ctx, a.ID, [][]byte{hash("new1"), hash("new2"), hash("new3"), hash("old1")}, at(time.Minute)))
		if n := count(t, s, a.ID); n != 4 {
			t.Errorf("codes after replace = %d, want 4 (all new and unused)", n)
		}
		if use(t, s, a.ID, hash("old2")) {
			t.Error("a replaced code still works")
		}
		if !use(t, s, a.ID, hash("old1")) { // given again: new and unused
			t.Error("a code given again to Replace is not usable")
		}
		must(t, s.ReplaceRecoveryCodes(ctx, a.ID, nil, at(time.Minute)))
		if n := count(t, s, a.ID); n != 0 {
			t.Errorf("codes after replace with none = %d", n)
		}
		wantCode(t, s.ReplaceRecoveryCodes(ctx, newID(), [][]byte{hash("x")}, base), thauth.ENotFound)
		n, err := s.CountRecoveryCodes(ctx, newID())
		wantNotFoundOrEmpty(t, err, n)
	})
}

func testEmailTokens(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	newToken := func(t *testing.T, s thauth.Store, accountID, purpose, secret string, expires time.Time) thauth.EmailToken {
		t.Helper()
		tok := thauth.EmailToken{ID: newID(), AccountID: accountID, Purpose: purpose, TokenHash: hash(secret),
			Email: "to+" + purpose + "@example.com", CreatedAt: base, ExpiresAt: expires}
		must(t, s.CreateEmailToken(ctx, &tok))
		return tok
	}

	t.Run("ConsumeOnce", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		tok := newToken(t, s, a.ID, thauth.EmailTokenChange, "t1", at(time.Hour))
		now := at(time.Minute)
		got, err := s.ConsumeEmailToken(ctx, thauth.EmailTokenChange, hash("t1"), now)
		must(t, err)
		want := tok
		want.UsedAt = &now
		diff(t, "consumed token", &want, got)
		_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenChange, hash("t1"), now)
		wantCode(t, err, thauth.ENotFound)
		_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenChange, hash("unknown"), now)
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("WrongPurpose", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		newToken(t, s, a.ID, thauth.EmailTokenVerify, "t1", at(time.Hour))
		_, err := s.ConsumeEmailToken(ctx, thauth.EmailTokenReset, hash("t1"), base)
		wantCode(t, err, thauth.ENotFound)
		// The failed attempt did not use it.
		_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenVerify, hash("t1"), base)
		must(t, err)
	})

	t.Run("Expiry", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		exp := at(time.Hour)
		newToken(t, s, a.ID, thauth.EmailTokenReset, "t1", exp)
		newToken(t, s, a.ID, thauth.EmailTokenReset, "t2", exp)
		_, err := s.ConsumeEmailToken(ctx, thauth.EmailTokenReset, hash("t1"), exp) // ExpiresAt <= now
		wantCode(t, err, thauth.ENotFound)
		_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenReset, hash("t2"), exp.Add(-time.Microsecond))
		must(t, err)
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		newToken(t, s, a.ID, thauth.EmailTokenVerify, "t1", at(time.Hour))
		var mu sync.Mutex
		wins, misses := 0, 0
		concurrently(8, func(int) {
			_, err := s.ConsumeEmailToken(ctx, thauth.EmailTokenVerify, hash("t1"), base)
			mu.Lock()
			defer mu.Unlock()
			switch thauth.ErrorCodeOf(err) {
			case "":
				wins++
			case thauth.ENotFound:
				misses++
			default:
				t.Errorf("concurrent consume: %v", err)
			}
		})
		if wins != 1 || misses != 7 {
			t.Errorf("concurrent consumers: %d succeeded, %d not found; want 1 and 7", wins, misses)
		}
	})

	t.Run("CreateConflicts", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		tok := newToken(t, s, a.ID, thauth.EmailTokenVerify, "t1", at(time.Hour))
		dup := tok
		dup.ID = newID()
		wantCode(t, s.CreateEmailToken(ctx, &dup), thauth.EConflict)
		orphan := thauth.EmailToken{ID: newID(), AccountID: newID(), Purpose: thauth.EmailTokenVerify, TokenHash: hash("t2"),
			Email: "x@example.com", CreatedAt: base, ExpiresAt: at(time.Hour)}
		wantCode(t, s.CreateEmailToken(ctx, &orphan), thauth.ENotFound)
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		newToken(t, s, a.ID, thauth.EmailTokenVerify, "a1", at(time.Hour))
		newToken(t, s, a.ID, thauth.EmailTokenVerify, "a2", at(time.Hour))
		newToken(t, s, a.ID, thauth.EmailTokenVerify, "a-used", at(time.Hour))
		newToken(t, s, a.ID, thauth.EmailTokenReset, "a-reset", at(time.Hour))
		newToken(t, s, b.ID, thauth.EmailTokenVerify, "b1", at(time.Hour))
		_, err := s.ConsumeEmailToken(ctx, thauth.EmailTokenVerify, hash("a-used"), base)
		must(t, err)
		n, err := s.DeleteEmailTokens(ctx, a.ID, thauth.EmailTokenVerify)
		must(t, err)
		if n != 2 {
			t.Errorf("DeleteEmailTokens = %d, want 2 (unused ones of that purpose)", n)
		}
		for _, secret := range []string{"a1", "a2"} {
			_, err := s.ConsumeEmailToken(ctx, thauth.EmailTokenVerify, hash(secret), base)
			wantCode(t, err, thauth.ENotFound)
		}
		_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenReset, hash("a-reset"), base)
		must(t, err)
		_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenVerify, hash("b1"), base)
		must(t, err)
		n, err = s.DeleteEmailTokens(ctx, a.ID, thauth.EmailTokenVerify)
		must(t, err)
		if n != 0 {
			t.Errorf("second DeleteEmailTokens = %d, want 0", n)
		}
	})
}

func testSessions(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	newSession := func(t *testing.T, s thauth.Store, accountID string, created, expires time.Time) thauth.Session {
		t.Helper()
		sess := thauth.Session{ID: newID(), AccountID: accountID, TokenHash: hash(newID()), CreatedAt: created,
			LastSeenAt: created, ExpiresAt: expires, IP: "203.0.113.7", UserAgent: "Mozilla/5.0 \"test\""}
		must(t, s.CreateSession(ctx, &sess))
		return sess
	}
	get := func(t *testing.T, s thauth.Store, sess thauth.Session) *thauth.Session {
		t.Helper()
		got, err := s.GetSessionByHash(ctx, sess.TokenHash)
		must(t, err)
		return got
	}

	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		for _, c := range []struct{ mfa, pending bool }{{false, false}, {true, false}, {false, true}} {
			sess := thauth.Session{ID: newID(), AccountID: a.ID, TokenHash: hash(newID()), MFA: c.mfa, PendingMFA: c.pending,
				CreatedAt: base, LastSeenAt: at(time.Second), ExpiresAt: at(24 * time.Hour), IP: "2001:db8::1", UserAgent: "curl/8"}
			must(t, s.CreateSession(ctx, &sess))
			diff(t, "session", &sess, get(t, s, sess))
		}
		_, err := s.GetSessionByHash(ctx, hash("unknown"))
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("CreateConflicts", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		sess := newSession(t, s, a.ID, base, at(time.Hour))
		dup := sess
		dup.ID = newID()
		wantCode(t, s.CreateSession(ctx, &dup), thauth.EConflict)
		dup = sess
		dup.TokenHash = hash("other")
		wantCode(t, s.CreateSession(ctx, &dup), thauth.EConflict)
		orphan := sess
		orphan.ID, orphan.TokenHash, orphan.AccountID = newID(), hash("orphan"), newID()
		wantCode(t, s.CreateSession(ctx, &orphan), thauth.ENotFound)
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		now := at(time.Hour)
		ss, err := s.ListSessions(ctx, a.ID, now)
		wantEmpty(t, "sessions of a new account", ss, err)
		ids := sortedIDs(2)
		s1 := newSession(t, s, a.ID, at(1*time.Minute), at(48*time.Hour))
		s2 := newSession(t, s, a.ID, at(3*time.Minute), at(48*time.Hour))
		s3 := newSession(t, s, a.ID, at(2*time.Minute), now.Add(time.Microsecond)) // expires just after now
		tieLow := thauth.Session{ID: ids[0], AccountID: a.ID, TokenHash: hash("tie0"), CreatedAt: at(2 * time.Minute),
			LastSeenAt: at(2 * time.Minute), ExpiresAt: at(48 * time.Hour)}
		tieHigh := tieLow
		tieHigh.ID, tieHigh.TokenHash = ids[1], hash("tie1")
		must(t, s.CreateSession(ctx, &tieHigh))
		must(t, s.CreateSession(ctx, &tieLow))
		revoked := newSession(t, s, a.ID, at(4*time.Minute), at(48*time.Hour))
		must(t, s.RevokeSession(ctx, a.ID, revoked.ID, at(5*time.Minute)))
		newSession(t, s, a.ID, at(5*time.Minute), now) // expired: ExpiresAt is not after now
		newSession(t, s, b.ID, at(6*time.Minute), at(48*time.Hour))
		got, err := s.ListSessions(ctx, a.ID, now)
		must(t, err)
		// Ties (same creation time) newest first means descending id.
		diff(t, "live sessions, newest first", []thauth.Session{s2, s3, tieHigh, tieLow, s1}, got)
	})

	t.Run("Touch", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		sess := newSession(t, s, a.ID, base, at(24*time.Hour))
		must(t, s.TouchSession(ctx, a.ID, sess.ID, at(10*time.Minute)))
		must(t, s.TouchSession(ctx, a.ID, sess.ID, at(5*time.Minute))) // never back
		if got := get(t, s, sess).LastSeenAt; !got.Equal(at(10 * time.Minute)) {
			t.Errorf("LastSeenAt = %v, want %v", got, at(10*time.Minute))
		}
		wantCode(t, s.TouchSession(ctx, b.ID, sess.ID, at(time.Hour)), thauth.ENotFound)
		wantCode(t, s.TouchSession(ctx, a.ID, newID(), at(time.Hour)), thauth.ENotFound)
		if got := get(t, s, sess).LastSeenAt; !got.Equal(at(10 * time.Minute)) {
			t.Errorf("LastSeenAt after a touch by another account = %v, want unchanged", got)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		sess := newSession(t, s, a.ID, base, at(24*time.Hour))
		wantCode(t, s.RevokeSession(ctx, b.ID, sess.ID, at(time.Minute)), thauth.ENotFound)
		if got := get(t, s, sess); got.RevokedAt != nil {
			t.Fatalf("revoked through another account: %v", got.RevokedAt)
		}
		wantCode(t, s.RevokeSession(ctx, a.ID, newID(), at(time.Minute)), thauth.ENotFound)
		must(t, s.RevokeSession(ctx, a.ID, sess.ID, at(2*time.Minute)))
		must(t, s.RevokeSession(ctx, a.ID, sess.ID, at(3*time.Minute))) // keeps the first time
		got := get(t, s, sess)                                          // revoked sessions are still found by hash
		if got.RevokedAt == nil || !got.RevokedAt.Equal(at(2*time.Minute)) {
			t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at(2*time.Minute))
		}
	})

	t.Run("RevokeAllExcept", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		keep := newSession(t, s, a.ID, base, at(24*time.Hour))
		x := newSession(t, s, a.ID, base, at(24*time.Hour))
		y := newSession(t, s, a.ID, base, at(24*time.Hour))
		old := newSession(t, s, a.ID, base, at(24*time.Hour))
		must(t, s.RevokeSession(ctx, a.ID, old.ID, at(time.Minute)))
		other := newSession(t, s, b.ID, base, at(24*time.Hour))
		n, err := s.RevokeSessions(ctx, a.ID, keep.ID, at(time.Hour))
		must(t, err)
		if n != 2 {
			t.Errorf("RevokeSessions = %d, want 2", n)
		}
		for _, c := range []struct {
			sess thauth.Session
			want *time.Time
		}{{keep, nil}, {x, ptr(at(time.Hour))}, {y, ptr(at(time.Hour))}, {old, ptr(at(time.Minute))}, {other, nil}} {
			diff(t, "RevokedAt", c.want, get(t, s, c.sess).RevokedAt)
		}
		n, err = s.RevokeSessions(ctx, a.ID, "", at(2*time.Hour))
		must(t, err)
		if n != 1 {
			t.Errorf("RevokeSessions without exception = %d, want 1 (the one kept before)", n)
		}
		ss, err := s.ListSessions(ctx, a.ID, base)
		wantEmpty(t, "sessions after revoking all", ss, err)
		if ss, _ := s.ListSessions(ctx, b.ID, base); len(ss) != 1 {
			t.Errorf("other account's sessions = %d, want 1 (untouched)", len(ss))
		}
	})
}

func testAccessTokens(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	newTokenID := func(t *testing.T, s thauth.Store, id, accountID string, created time.Time) thauth.AccessToken {
		t.Helper()
		_, lookup, h := thauth.NewToken()
		tok := thauth.AccessToken{ID: id, AccountID: accountID, Name: "ci", LookupID: lookup, Hash: h,
			Scopes: []string{thauth.TokenScopeRead}, ExpiresAt: created.Add(90 * 24 * time.Hour), CreatedAt: created}
		must(t, s.CreateAccessToken(ctx, &tok))
		return tok
	}
	newToken := func(t *testing.T, s thauth.Store, accountID string, created time.Time) thauth.AccessToken {
		t.Helper()
		return newTokenID(t, s, newID(), accountID, created)
	}
	get := func(t *testing.T, s thauth.Store, tok thauth.AccessToken) *thauth.AccessToken {
		t.Helper()
		got, err := s.GetAccessTokenByLookup(ctx, tok.LookupID)
		must(t, err)
		return got
	}

	t.Run("CreateGetList", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		ts, err := s.ListAccessTokens(ctx, a.ID)
		wantEmpty(t, "tokens of a new account", ts, err)
		t1 := newToken(t, s, a.ID, at(time.Minute))
		_, lookup, h := thauth.NewToken()
		t2 := thauth.AccessToken{ID: newID(), AccountID: a.ID, Name: "deploy \"prod\"", LookupID: lookup, Hash: h,
			Scopes: []string{thauth.TokenScopeRead, thauth.TokenScopeWrite}, ExpiresAt: at(time.Hour), CreatedAt: at(3 * time.Minute),
			LastUsedAt: ptr(at(4 * time.Minute)), RevokedAt: ptr(at(5 * time.Minute))}
		must(t, s.CreateAccessToken(ctx, &t2))
		ids := sortedIDs(2)
		tieHigh := newTokenID(t, s, ids[1], a.ID, at(2*time.Minute))
		tieLow := newTokenID(t, s, ids[0], a.ID, at(2*time.Minute))
		newToken(t, s, b.ID, at(4*time.Minute))
		for _, tok := range []thauth.AccessToken{t1, t2} {
			diff(t, "token", &tok, get(t, s, tok))
		}
		got, err := s.ListAccessTokens(ctx, a.ID)
		must(t, err)
		// Ties (same creation time) newest first means descending id.
		diff(t, "tokens newest first, revoked included", []thauth.AccessToken{t2, tieHigh, tieLow, t1}, got)
		_, err = s.GetAccessTokenByLookup(ctx, "unknown")
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("CreateConflicts", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		tok := newToken(t, s, a.ID, base)
		dup := tok
		dup.ID = newID()
		wantCode(t, s.CreateAccessToken(ctx, &dup), thauth.EConflict)
		dup = tok
		dup.LookupID = "other"
		wantCode(t, s.CreateAccessToken(ctx, &dup), thauth.EConflict)
		orphan := tok
		orphan.ID, orphan.LookupID, orphan.AccountID = newID(), "orphan", newID()
		wantCode(t, s.CreateAccessToken(ctx, &orphan), thauth.ENotFound)
	})

	t.Run("RevokeTouch", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		tok := newToken(t, s, a.ID, base)
		wantCode(t, s.RevokeAccessToken(ctx, b.ID, tok.ID, at(time.Minute)), thauth.ENotFound)
		wantCode(t, s.TouchAccessToken(ctx, b.ID, tok.ID, at(time.Minute)), thauth.ENotFound)
		wantCode(t, s.RevokeAccessToken(ctx, a.ID, newID(), at(time.Minute)), thauth.ENotFound)
		wantCode(t, s.TouchAccessToken(ctx, a.ID, newID(), at(time.Minute)), thauth.ENotFound)
		diff(t, "token after another account's calls", &tok, get(t, s, tok))

		must(t, s.TouchAccessToken(ctx, a.ID, tok.ID, at(10*time.Minute)))
		must(t, s.TouchAccessToken(ctx, a.ID, tok.ID, at(5*time.Minute))) // never back
		must(t, s.RevokeAccessToken(ctx, a.ID, tok.ID, at(20*time.Minute)))
		must(t, s.RevokeAccessToken(ctx, a.ID, tok.ID, at(30*time.Minute))) // keeps the first time
		want := tok
		want.LastUsedAt, want.RevokedAt = ptr(at(10*time.Minute)), ptr(at(20*time.Minute))
		diff(t, "token", &want, get(t, s, tok))
	})
}

func testOrganizationSettings(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("UpdateRequireMFA", func(t *testing.T) {
		s := open(t)
		org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: base, RequireMFA: true}
		must(t, s.CreateOrganization(ctx, &org))
		got, err := s.GetOrganization(ctx, org.ID)
		must(t, err)
		diff(t, "created organization", &org, got)
		org.Name, org.RequireMFA = "Acme \"Inc\"", false
		org2 := org
		org2.CreatedAt = at(time.Hour) // not written
		must(t, s.UpdateOrganization(ctx, &org2))
		got, err = s.GetOrganization(ctx, org.ID)
		must(t, err)
		diff(t, "updated organization", &org, got)
		org.RequireMFA = true
		must(t, s.UpdateOrganization(ctx, &org))
		got, err = s.GetOrganization(ctx, org.ID)
		must(t, err)
		diff(t, "organization requiring MFA", &org, got)
		list, err := s.ListOrganizations(ctx)
		must(t, err)
		diff(t, "ListOrganizations", []thauth.Organization{org}, list)
		wantCode(t, s.UpdateOrganization(ctx, &thauth.Organization{ID: newID(), Name: "x"}), thauth.ENotFound)
	})

	t.Run("ListExcludesSystem", func(t *testing.T) {
		s := open(t)
		list, err := s.ListOrganizations(ctx)
		wantEmpty(t, "organizations of an empty store", list, err)
		ids := sortedIDs(2)
		system := thauth.Organization{ID: thauth.SystemOrganizationID, Name: "Thauth", CreatedAt: at(-time.Hour)}
		must(t, s.CreateOrganization(ctx, &system))
		later := thauth.Organization{ID: newID(), Name: "B", CreatedAt: at(time.Hour)}
		tieHigh := thauth.Organization{ID: ids[1], Name: "A", CreatedAt: base}
		tieLow := thauth.Organization{ID: ids[0], Name: "Z", CreatedAt: base}
		for _, o := range []*thauth.Organization{&later, &tieHigh, &tieLow} {
			must(t, s.CreateOrganization(ctx, o))
		}
		list, err = s.ListOrganizations(ctx)
		must(t, err)
		diff(t, "organizations by creation time then id", []thauth.Organization{tieLow, tieHigh, later}, list)
	})
}

func testMemberships(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("PutGetDelete", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		a := newAccount(t, s, "ada@example.com", base)
		m := thauth.Membership{OrganizationID: f.org.ID, AccountID: a.ID, Role: thauth.OrgRoleOwner, CreatedAt: base, UpdatedAt: base}
		must(t, s.PutMembership(ctx, &m))
		got, err := s.GetMembership(ctx, f.org.ID, a.ID)
		must(t, err)
		diff(t, "membership", &m, got)

		upd := m
		upd.Role, upd.UpdatedAt, upd.CreatedAt = thauth.OrgRoleViewer, at(time.Hour), at(time.Hour)
		must(t, s.PutMembership(ctx, &upd))
		want := m
		want.Role, want.UpdatedAt = thauth.OrgRoleViewer, at(time.Hour) // CreatedAt stays
		got, err = s.GetMembership(ctx, f.org.ID, a.ID)
		must(t, err)
		diff(t, "updated membership", &want, got)

		other := newFixture(t, s)
		_, err = s.GetMembership(ctx, other.org.ID, a.ID)
		wantCode(t, err, thauth.ENotFound)
		wantCode(t, s.DeleteMembership(ctx, other.org.ID, a.ID), thauth.ENotFound)
		must(t, s.DeleteMembership(ctx, f.org.ID, a.ID))
		_, err = s.GetMembership(ctx, f.org.ID, a.ID)
		wantCode(t, err, thauth.ENotFound)
		wantCode(t, s.DeleteMembership(ctx, f.org.ID, a.ID), thauth.ENotFound)

		wantCode(t, s.PutMembership(ctx, &thauth.Membership{OrganizationID: newID(), AccountID: a.ID, Role: thauth.OrgRoleOwner,
			CreatedAt: base, UpdatedAt: base}), thauth.ENotFound)
		wantCode(t, s.PutMembership(ctx, &thauth.Membership{OrganizationID: f.org.ID, AccountID: newID(), Role: thauth.OrgRoleOwner,
			CreatedAt: base, UpdatedAt: base}), thauth.ENotFound)
	})

	t.Run("ListMembers", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		other := newFixture(t, s)
		ms, err := s.ListMembers(ctx, f.org.ID)
		wantEmpty(t, "members of a new organization", ms, err)
		ids := sortedIDs(3)
		var accounts []thauth.Account
		for i, email := range []string{"c@example.com", "a@example.com", "b@example.com"} {
			a := thauth.Account{ID: ids[i], Email: email, Name: "N" + email, PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
			if i == 1 {
				a.TOTPEnabledAt = ptr(base)
			}
			must(t, s.CreateAccount(ctx, &a))
			accounts = append(accounts, a)
		}
		put := func(orgID string, a thauth.Account, role string, created time.Time) thauth.Member {
			m := thauth.Membership{OrganizationID: orgID, AccountID: a.ID, Role: role, CreatedAt: created, UpdatedAt: created}
			must(t, s.PutMembership(ctx, &m))
			return thauth.Member{Membership: m, Email: a.Email, Name: a.Name, MFAEnabled: a.MFAEnabled()}
		}
		m2 := put(f.org.ID, accounts[2], thauth.OrgRoleViewer, at(time.Hour))
		m0 := put(f.org.ID, accounts[0], thauth.OrgRoleOwner, base)
		m1 := put(f.org.ID, accounts[1], thauth.OrgRoleBilling, base)
		put(other.org.ID, accounts[0], thauth.OrgRoleAdmin, base)
		got, err := s.ListMembers(ctx, f.org.ID)
		must(t, err)
		diff(t, "members by membership creation then account id", []thauth.Member{m0, m1, m2}, got)
		ms, err = s.ListMembers(ctx, newID())
		wantNotFoundOrEmpty(t, err, len(ms))
	})

	t.Run("ListAccountOrganizations", func(t *testing.T) {
		s := open(t)
		a := newAccount(t, s, "ada@example.com", base)
		b := newAccount(t, s, "bob@example.com", base)
		list, err := s.ListAccountOrganizations(ctx, a.ID)
		wantEmpty(t, "organizations of a new account", list, err)
		ids := sortedIDs(2)
		orgs := []thauth.Organization{
			{ID: newID(), Name: "Zeta", CreatedAt: base},
			{ID: ids[1], Name: "Acme", CreatedAt: base, RequireMFA: true},
			{ID: ids[0], Name: "Acme", CreatedAt: at(time.Hour)},
			{ID: newID(), Name: "Bob's only", CreatedAt: base},
		}
		for i := range orgs {
			must(t, s.CreateOrganization(ctx, &orgs[i]))
		}
		roles := []string{thauth.OrgRoleOwner, thauth.OrgRoleDeveloper, thauth.OrgRoleViewer}
		for i, role := range roles {
			must(t, s.PutMembership(ctx, &thauth.Membership{OrganizationID: orgs[i].ID, AccountID: a.ID, Role: role, CreatedAt: base, UpdatedAt: base}))
		}
		must(t, s.PutMembership(ctx, &thauth.Membership{OrganizationID: orgs[3].ID, AccountID: b.ID, Role: thauth.OrgRoleOwner, CreatedAt: base, UpdatedAt: base}))
		got, err := s.ListAccountOrganizations(ctx, a.ID)
		must(t, err)
		diff(t, "organizations by name then id", []thauth.OrganizationMembership{
			{Organization: orgs[2], Role: roles[2]}, {Organization: orgs[1], Role: roles[1]}, {Organization: orgs[0], Role: roles[0]},
		}, got)
	})
}

func testInvitations(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	newInvitationID := func(t *testing.T, s thauth.Store, id, orgID, email string, created time.Time) thauth.Invitation {
		t.Helper()
		inv := thauth.Invitation{ID: id, Email: email, Role: thauth.OrgRoleDeveloper, TokenHash: hash(newID()),
			InvitedBy: newID(), CreatedAt: created, ExpiresAt: created.Add(7 * 24 * time.Hour)}
		must(t, s.CreateInvitation(ctx, orgID, &inv))
		inv.OrganizationID = orgID
		return inv
	}
	newInvitation := func(t *testing.T, s thauth.Store, orgID, email string, created time.Time) thauth.Invitation {
		t.Helper()
		return newInvitationID(t, s, newID(), orgID, email, created)
	}

	t.Run("CreateGetList", func(t *testing.T) {
		s := open(t)
		f, other := newFixture(t, s), newFixture(t, s)
		invs, err := s.ListInvitations(ctx, f.org.ID)
		wantEmpty(t, "invitations of a new organization", invs, err)
		i1 := newInvitation(t, s, f.org.ID, "a@example.com", at(time.Minute))
		i2 := newInvitation(t, s, f.org.ID, "b@example.com", at(3*time.Minute))
		ids := sortedIDs(2)
		tieHigh := newInvitationID(t, s, ids[1], f.org.ID, "c@example.com", at(2*time.Minute))
		tieLow := newInvitationID(t, s, ids[0], f.org.ID, "d@example.com", at(2*time.Minute))
		o1 := newInvitation(t, s, other.org.ID, "a@example.com", at(4*time.Minute))
		for _, inv := range []thauth.Invitation{i1, i2, tieHigh, tieLow, o1} {
			got, err := s.GetInvitation(ctx, inv.OrganizationID, inv.ID)
			must(t, err)
			diff(t, "GetInvitation", &inv, got)
			got, err = s.GetInvitationByHash(ctx, inv.TokenHash)
			must(t, err)
			diff(t, "GetInvitationByHash", &inv, got)
		}
		got, err := s.ListInvitations(ctx, f.org.ID)
		must(t, err)
		diff(t, "invitations newest first (ties by descending id)", []thauth.Invitation{i2, tieHigh, tieLow, i1}, got)
		_, err = s.GetInvitation(ctx, f.org.ID, o1.ID) // another organization's
		wantCode(t, err, thauth.ENotFound)
		_, err = s.GetInvitationByHash(ctx, hash("unknown"))
		wantCode(t, err, thauth.ENotFound)
		invs, err = s.ListInvitations(ctx, newID())
		wantNotFoundOrEmpty(t, err, len(invs))
	})

	t.Run("CreateConflicts", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		inv := newInvitation(t, s, f.org.ID, "a@example.com", base)
		dup := inv
		dup.ID = newID()
		wantCode(t, s.CreateInvitation(ctx, f.org.ID, &dup), thauth.EConflict)
		dup = inv
		dup.TokenHash = hash("other")
		wantCode(t, s.CreateInvitation(ctx, f.org.ID, &dup), thauth.EConflict)
		orphan := inv
		orphan.ID, orphan.TokenHash = newID(), hash("orphan")
		wantCode(t, s.CreateInvitation(ctx, newID(), &orphan), thauth.ENotFound)
	})

	t.Run("Update", func(t *testing.T) {
		s := open(t)
		f, other := newFixture(t, s), newFixture(t, s)
		inv := newInvitation(t, s, f.org.ID, "a@example.com", base)
		acceptor := newID()

		u := inv
		u.AcceptedAt, u.AcceptedBy = ptr(at(time.Hour)), acceptor
		u.Email, u.Role = "changed@example.com", thauth.OrgRoleOwner // not written
		wantCode(t, s.UpdateInvitation(ctx, other.org.ID, &u), thauth.ENotFound)
		got, err := s.GetInvitation(ctx, f.org.ID, inv.ID)
		must(t, err)
		diff(t, "invitation after an update through another organization", &inv, got)

		must(t, s.UpdateInvitation(ctx, f.org.ID, &u))
		want := inv
		want.AcceptedAt, want.AcceptedBy = ptr(at(time.Hour)), acceptor
		got, err = s.GetInvitation(ctx, f.org.ID, inv.ID)
		must(t, err)
		diff(t, "accepted invitation", &want, got)

		u.AcceptedAt, u.AcceptedBy, u.RevokedAt = nil, "", ptr(at(2*time.Hour))
		must(t, s.UpdateInvitation(ctx, f.org.ID, &u))
		want.AcceptedAt, want.AcceptedBy, want.RevokedAt = nil, "", ptr(at(2*time.Hour))
		got, err = s.GetInvitation(ctx, f.org.ID, inv.ID)
		must(t, err)
		diff(t, "revoked invitation", &want, got)

		missing := inv
		missing.ID = newID()
		wantCode(t, s.UpdateInvitation(ctx, f.org.ID, &missing), thauth.ENotFound)
	})
}

func testOperators(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	ops, err := s.ListOperators(ctx)
	wantEmpty(t, "operators of an empty store", ops, err)
	ids := sortedIDs(3)
	var accounts []thauth.Account
	for i, id := range ids {
		a := thauth.Account{ID: id, Email: fmt.Sprintf("op%d@example.com", i), PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
		must(t, s.CreateAccount(ctx, &a))
		accounts = append(accounts, a)
	}
	op2 := thauth.Operator{AccountID: ids[2], Role: thauth.OperatorSupport, GrantedAt: base, GrantedBy: "root"}
	op1 := thauth.Operator{AccountID: ids[1], Role: thauth.OperatorSuperadmin, GrantedAt: base, GrantedBy: "root"}
	op0 := thauth.Operator{AccountID: ids[0], Role: thauth.OperatorOperator, GrantedAt: at(time.Hour), GrantedBy: "ops"}
	for _, op := range []*thauth.Operator{&op2, &op1, &op0} {
		must(t, s.PutOperator(ctx, op))
	}
	got, err := s.GetOperator(ctx, ids[1])
	must(t, err)
	diff(t, "operator", &op1, got)
	list, err := s.ListOperators(ctx)
	must(t, err)
	diff(t, "operators by grant time then account id", []thauth.Operator{op1, op2, op0}, list)

	op1.Role, op1.GrantedAt, op1.GrantedBy = thauth.OperatorSupport, at(2*time.Hour), "alice"
	must(t, s.PutOperator(ctx, &op1))
	got, err = s.GetOperator(ctx, ids[1])
	must(t, err)
	diff(t, "updated operator", &op1, got)

	must(t, s.DeleteOperator(ctx, ids[2]))
	_, err = s.GetOperator(ctx, ids[2])
	wantCode(t, err, thauth.ENotFound)
	wantCode(t, s.DeleteOperator(ctx, ids[2]), thauth.ENotFound)
	list, err = s.ListOperators(ctx)
	must(t, err)
	diff(t, "operators after a delete", []thauth.Operator{op0, op1}, list)
	wantCode(t, s.PutOperator(ctx, &thauth.Operator{AccountID: newID(), Role: thauth.OperatorSupport, GrantedAt: base, GrantedBy: "x"}),
		thauth.ENotFound)
}

func testThrottles(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	record := func(t *testing.T, s thauth.Store, key string, when, resetBefore time.Time) *thauth.Throttle {
		t.Helper()
		th, err := s.RecordFailure(ctx, key, when, resetBefore)
		must(t, err)
		return th
	}
	get := func(t *testing.T, s thauth.Store, key string) *thauth.Throttle {
		t.Helper()
		th, err := s.GetThrottle(ctx, key)
		must(t, err)
		return th
	}

	t.Run("CountAndReset", func(t *testing.T) {
		s := open(t)
		_, err := s.GetThrottle(ctx, "email:x")
		wantCode(t, err, thauth.ENotFound)
		window := 15 * time.Minute
		for i := 1; i <= 3; i++ {
			when := at(time.Duration(i) * time.Minute)
			got := record(t, s, "email:x", when, when.Add(-window))
			diff(t, fmt.Sprintf("failure %d", i), &thauth.Throttle{Key: "email:x", Failures: i, LastFailureAt: when}, got)
		}
		diff(t, "GetThrottle", &thauth.Throttle{Key: "email:x", Failures: 3, LastFailureAt: at(3 * time.Minute)}, get(t, s, "email:x"))
		// The last failure exactly at resetBefore is inside the window.
		got := record(t, s, "email:x", at(time.Hour), at(3*time.Minute))
		if got.Failures != 4 {
			t.Errorf("failures with the last one at resetBefore = %d, want 4", got.Failures)
		}
		// Before it: the count starts again.
		got = record(t, s, "email:x", at(3*time.Hour), at(time.Hour).Add(time.Microsecond))
		diff(t, "after the window", &thauth.Throttle{Key: "email:x", Failures: 1, LastFailureAt: at(3 * time.Hour)}, got)
		if th := record(t, s, "ip:203.0.113.7", base, at(-window)); th.Failures != 1 {
			t.Errorf("another key's counter = %d, want 1", th.Failures)
		}
	})

	t.Run("LockAndClear", func(t *testing.T) {
		s := open(t)
		record(t, s, "k", base, at(-time.Hour))
		record(t, s, "k", at(time.Minute), at(-time.Hour))
		must(t, s.LockThrottle(ctx, "k", at(time.Hour)))
		diff(t, "locked", &thauth.Throttle{Key: "k", Failures: 2, LastFailureAt: at(time.Minute), LockedUntil: ptr(at(time.Hour))}, get(t, s, "k"))
		// RecordFailure keeps the lock, also when the count restarts.
		got := record(t, s, "k", at(2*time.Hour), at(90*time.Minute))
		diff(t, "restarted, still locked", &thauth.Throttle{Key: "k", Failures: 1, LastFailureAt: at(2 * time.Hour), LockedUntil: ptr(at(time.Hour))}, got)
		must(t, s.ClearThrottle(ctx, "k"))
		_, err := s.GetThrottle(ctx, "k")
		wantCode(t, err, thauth.ENotFound)
		must(t, s.ClearThrottle(ctx, "k")) // nothing to clear is fine

		// Locking a key without a counter creates one with no failures.
		must(t, s.LockThrottle(ctx, "mfa:acct", at(time.Hour)))
		th := get(t, s, "mfa:acct")
		if th.Failures != 0 || th.LockedUntil == nil || !th.LockedUntil.Equal(at(time.Hour)) {
			t.Errorf("lock of a new key = %+v, want 0 failures locked until %v", th, at(time.Hour))
		}
		if th := record(t, s, "mfa:acct", base, at(-time.Hour)); th.Failures != 1 || th.LockedUntil == nil {
			t.Errorf("first failure after a lock = %+v, want 1 failure, lock kept", th)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		const n = 20
		concurrently(n, func(int) {
			if _, err := s.RecordFailure(ctx, "k", base, at(-time.Hour)); err != nil {
				t.Error(err)
			}
		})
		if th := get(t, s, "k"); th.Failures != n {
			t.Errorf("failures after %d concurrent calls = %d", n, th.Failures)
		}
	})
}

func testOutbox(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	enqueue := func(t *testing.T, s thauth.Store, id string, due, created time.Time) thauth.OutboxMail {
		t.Helper()
		m := thauth.OutboxMail{ID: id, To: "ada@example.com", Template: "verify_email", Payload: "sealed:payload",
			Status: thauth.MailPending, NextAttemptAt: due, CreatedAt: created}
		must(t, s.EnqueueMail(ctx, &m))
		return m
	}
	getMail := func(t *testing.T, s thauth.Store, id string) *thauth.OutboxMail {
		t.Helper()
		m, err := s.GetMail(ctx, id)
		must(t, err)
		return m
	}
	claimIDs := func(ms []thauth.OutboxMail) []string {
		ids := []string{}
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		return ids
	}

	t.Run("EnqueueGetUpdate", func(t *testing.T) {
		s := open(t)
		m := enqueue(t, s, newID(), base, base)
		diff(t, "GetMail", &m, getMail(t, s, m.ID))
		dup := m
		wantCode(t, s.EnqueueMail(ctx, &dup), thauth.EConflict)
		_, err := s.GetMail(ctx, newID())
		wantCode(t, err, thauth.ENotFound)

		u := m
		u.Status, u.Attempts, u.NextAttemptAt, u.LastError = thauth.MailPending, 1, at(time.Minute), "421 try later\n\"quoted\""
		must(t, s.UpdateMail(ctx, &u))
		diff(t, "retry", &u, getMail(t, s, m.ID))
		u.Status, u.Attempts, u.LastError, u.ProviderID, u.SentAt, u.Payload = thauth.MailSent, 2, "", "msg-123", ptr(at(2*time.Minute)), ""
		u.To, u.Template, u.CreatedAt = "changed@example.com", "changed", at(time.Hour) // not written
		must(t, s.UpdateMail(ctx, &u))
		want := u
		want.To, want.Template, want.CreatedAt = m.To, m.Template, m.CreatedAt
		diff(t, "sent", &want, getMail(t, s, m.ID))
		missing := m
		missing.ID = newID()
		wantCode(t, s.UpdateMail(ctx, &missing), thauth.ENotFound)
	})

	t.Run("ClaimLease", func(t *testing.T) {
		s := open(t)
		ms, err := s.ClaimMail(ctx, base, time.Minute, 10)
		wantEmpty(t, "claim from an empty outbox", ms, err)
		ids := sortedIDs(6)
		a := enqueue(t, s, ids[0], at(-3*time.Minute), base)
		b := enqueue(t, s, ids[1], at(-2*time.Minute), base)
		c := enqueue(t, s, ids[2], at(-2*time.Minute), base)
		d := enqueue(t, s, ids[3], at(time.Minute), base) // not due yet
		e := enqueue(t, s, ids[4], at(-10*time.Minute), base)
		e.Status, e.SentAt = thauth.MailSent, ptr(base)
		must(t, s.UpdateMail(ctx, &e)) // sent: never claimed
		f := enqueue(t, s, ids[5], at(-4*time.Minute), base)
		f.Status = thauth.MailFailed
		must(t, s.UpdateMail(ctx, &f))

		lease := 5 * time.Minute
		got, err := s.ClaimMail(ctx, base, lease, 2)
		must(t, err)
		leased := func(m thauth.OutboxMail) thauth.OutboxMail {
			m.NextAttemptAt = base.Add(lease)
			return m
		}
		diff(t, "first claim: oldest due first, as stored after the claim", []thauth.OutboxMail{leased(a), leased(b)}, got)
		diff(t, "claimed message as stored", addr(leased(a)), getMail(t, s, a.ID))
		got, err = s.ClaimMail(ctx, base, lease, 10)
		must(t, err)
		diff(t, "second claim: only the unclaimed due one", []string{c.ID}, claimIDs(got))
		got, err = s.ClaimMail(ctx, base.Add(lease).Add(-time.Microsecond), lease, 10)
		must(t, err)
		diff(t, "claim before the lease ends", []string{d.ID}, claimIDs(got))
		got, err = s.ClaimMail(ctx, base.Add(lease), lease, 10)
		must(t, err)
		diff(t, "claim when the lease ends", []string{a.ID, b.ID, c.ID}, claimIDs(got))
		n, err := s.CountPendingMail(ctx)
		must(t, err)
		if n != 4 {
			t.Errorf("CountPendingMail = %d, want 4", n)
		}
	})

	t.Run("ConcurrentClaims", func(t *testing.T) {
		s := open(t)
		const total, claimers, limit = 30, 6, 5
		for i := range total {
			enqueue(t, s, newID(), at(-time.Duration(i)*time.Second), base)
		}
		var mu sync.Mutex
		seen := map[string]int{}
		concurrently(claimers, func(int) {
			ms, err := s.ClaimMail(ctx, base, time.Minute, limit)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range ms {
				seen[m.ID]++
			}
		})
		if len(seen) != total {
			t.Errorf("claimed %d distinct messages, want %d", len(seen), total)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("message %s claimed %d times", id, n)
			}
		}
	})

	t.Run("ListCount", func(t *testing.T) {
		s := open(t)
		ms, err := s.ListMail(ctx, 10)
		wantEmpty(t, "ListMail of an empty outbox", ms, err)
		n, err := s.CountPendingMail(ctx)
		must(t, err)
		if n != 0 {
			t.Errorf("CountPendingMail of an empty outbox = %d", n)
		}
		ids := sortedIDs(4)
		m0 := enqueue(t, s, ids[0], base, at(time.Minute))
		m1 := enqueue(t, s, ids[1], base, at(3*time.Minute))
		m2 := enqueue(t, s, ids[2], base, at(2*time.Minute))
		m3 := enqueue(t, s, ids[3], base, at(2*time.Minute))
		m1.Status, m1.SentAt = thauth.MailSent, ptr(at(4*time.Minute))
		must(t, s.UpdateMail(ctx, &m1))
		got, err := s.ListMail(ctx, 10)
		must(t, err)
		diff(t, "ListMail newest first", []thauth.OutboxMail{m1, m3, m2, m0}, got)
		got, err = s.ListMail(ctx, 2)
		must(t, err)
		diff(t, "ListMail with a limit", []thauth.OutboxMail{m1, m3}, got)
		n, err = s.CountPendingMail(ctx)
		must(t, err)
		if n != 3 {
			t.Errorf("CountPendingMail = %d, want 3", n)
		}
	})
}

// addr returns a pointer to a copy of v.
func addr[T any](v T) *T { return &v }

// auditEntry returns an entry (not stored) of chain with the caller's fields set.
func auditEntry(chain, accountID, action string, when time.Time) thauth.AuditEntry {
	return thauth.AuditEntry{ID: newID(), Chain: chain, At: when, ActorType: thauth.ActorAccount, ActorID: accountID,
		OrganizationID: chain, AccountID: accountID, Action: action, Target: "session:" + accountID, IP: "198.51.100.9",
		UserAgent: "Mozilla/5.0", Data: `{"k":"v \"q\""}`}
}

// scanChain returns every entry of chain with ScanAudit.
func scanChain(t *testing.T, s thauth.Store, chain string) []thauth.AuditEntry {
	t.Helper()
	out := []thauth.AuditEntry{}
	must(t, s.ScanAudit(context.Background(), chain, func(e *thauth.AuditEntry) error {
		out = append(out, *e)
		return nil
	}))
	return out
}

// checkChain fails unless es is a well-formed chain: Seq 1..n, each PrevHash the previous
// Hash (32 zero bytes first), each Hash AuditHash of its entry.
func checkChain(t *testing.T, chain string, es []thauth.AuditEntry) {
	t.Helper()
	prev := make([]byte, 32)
	for i, e := range es {
		if e.Chain != chain || e.Seq != int64(i+1) {
			t.Errorf("entry %d: chain %q seq %d, want chain %q seq %d", i, e.Chain, e.Seq, chain, i+1)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			t.Errorf("entry %d of chain %q: PrevHash %x, want %x", i, chain, e.PrevHash, prev)
		}
		if h := thauth.AuditHash(&e); !bytes.Equal(e.Hash, h) {
			t.Errorf("entry %d of chain %q: Hash %x, want AuditHash %x", i, chain, e.Hash, h)
		}
		prev = e.Hash
	}
}

func testAudit(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("AppendChains", func(t *testing.T) {
		s := open(t)
		chains, err := s.AuditChains(ctx)
		wantEmpty(t, "chains of an empty store", chains, err)
		org := newID()
		var install, orgChain []thauth.AuditEntry
		for i := range 4 {
			e := auditEntry("", "acct", "auth.signin", at(time.Duration(i)*time.Second))
			must(t, s.AppendAudit(ctx, &e))
			install = append(install, e)
			if i%2 == 0 {
				o := auditEntry(org, "acct", "member.added", at(time.Duration(i)*time.Second))
				must(t, s.AppendAudit(ctx, &o))
				orgChain = append(orgChain, o)
			}
		}
		bare := thauth.AuditEntry{ID: newID(), Chain: org, At: base, ActorType: thauth.ActorSystem, Action: "org.created"}
		must(t, s.AppendAudit(ctx, &bare))
		orgChain = append(orgChain, bare)
		checkChain(t, "", install)
		checkChain(t, org, orgChain)
		diff(t, "installation chain as stored", install, scanChain(t, s, ""))
		diff(t, "organization chain as stored", orgChain, scanChain(t, s, org))

		// A duplicate id fails and leaves no gap.
		dup := auditEntry("", "acct", "auth.signout", base)
		dup.ID = install[0].ID
		wantCode(t, s.AppendAudit(ctx, &dup), thauth.EConflict)
		next := auditEntry("", "acct", "auth.signout", base)
		must(t, s.AppendAudit(ctx, &next))
		checkChain(t, "", scanChain(t, s, ""))
		if next.Seq != 5 {
			t.Errorf("Seq after a failed append = %d, want 5", next.Seq)
		}
	})

	t.Run("TimesUTCMicroseconds", func(t *testing.T) {
		s := open(t)
		e := auditEntry("", "acct", "auth.signin", time.Date(2026, 3, 1, 5, 0, 0, 123456789, time.FixedZone("X", 7200)))
		must(t, s.AppendAudit(ctx, &e))
		got := scanChain(t, s, "")
		checkChain(t, "", got)
		wantUTC(t, "At", got[0].At)
		if want := e.At.Truncate(time.Microsecond); !got[0].At.Equal(want) {
			t.Errorf("At = %v, want %v", got[0].At, want)
		}
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		s := open(t)
		const n = 40
		chains := []string{"", newID()}
		concurrently(n*len(chains), func(i int) {
			e := auditEntry(chains[i%len(chains)], "acct", "auth.signin", base)
			if err := s.AppendAudit(ctx, &e); err != nil {
				t.Error(err)
			}
		})
		for _, c := range chains {
			es := scanChain(t, s, c)
			if len(es) != n {
				t.Errorf("chain %q has %d entries, want %d", c, len(es), n)
			}
			checkChain(t, c, es)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		a, b, org, other := newID(), newID(), newID(), newID()
		var aEntries, orgEntries []thauth.AuditEntry // in append order
		appendTo := func(chain, accountID, action string) thauth.AuditEntry {
			e := auditEntry(chain, accountID, action, base)
			must(t, s.AppendAudit(ctx, &e))
			return e
		}
		for _, action := range []string{"auth.signin", "auth.signin.failed", "account.updated", "auth.password.reset_requested", "auth.signin"} {
			aEntries = append(aEntries, appendTo("", a, action))
			appendTo("", b, action)
		}
		orgEntries = append(orgEntries, appendTo(org, a, "org.created"), appendTo(org, b, "member.added"), appendTo(org, a, "auth.signin"))
		appendTo(other, a, "org.created")
		// An installation event naming the organization is not in the organization's chain.
		stray := auditEntry("", b, "operator.access", base)
		stray.OrganizationID = org
		must(t, s.AppendAudit(ctx, &stray))
		newest := func(es ...thauth.AuditEntry) []thauth.AuditEntry {
			out := slices.Clone(es)
			slices.Reverse(out)
			return out
		}
		for _, c := range []struct {
			name string
			f    thauth.AuditFilter
			want []thauth.AuditEntry
		}{
			{"account", thauth.AuditFilter{AccountID: a, Limit: 100}, newest(aEntries...)},
			{"organization", thauth.AuditFilter{OrganizationID: org, Limit: 100}, newest(orgEntries...)},
			{"exact action", thauth.AuditFilter{AccountID: a, Action: "auth.signin", Limit: 100}, newest(aEntries[0], aEntries[4])},
			{"prefix", thauth.AuditFilter{AccountID: a, Action: "auth.", Limit: 100},
				newest(aEntries[0], aEntries[1], aEntries[3], aEntries[4])},
			{"longer prefix", thauth.AuditFilter{AccountID: a, Action: "auth.signin.", Limit: 100}, newest(aEntries[1])},
			{"prefix is not a pattern", thauth.AuditFilter{AccountID: a, Action: "a_th.", Limit: 100}, nil},
			{"percent is not a pattern", thauth.AuditFilter{AccountID: a, Action: "%.", Limit: 100}, nil},
			{"organization prefix", thauth.AuditFilter{OrganizationID: org, Action: "org.", Limit: 100}, newest(orgEntries[0])},
			{"before", thauth.AuditFilter{AccountID: a, Before: aEntries[3].Seq, Limit: 100}, newest(aEntries[:3]...)},
			{"before and action", thauth.AuditFilter{AccountID: a, Action: "auth.", Before: aEntries[3].Seq, Limit: 100},
				newest(aEntries[0], aEntries[1])},
			{"limit", thauth.AuditFilter{AccountID: a, Limit: 2}, newest(aEntries[3:]...)},
			{"limit and before", thauth.AuditFilter{OrganizationID: org, Before: orgEntries[2].Seq, Limit: 1}, newest(orgEntries[1])},
			{"unknown account", thauth.AuditFilter{AccountID: newID(), Limit: 100}, nil},
			{"unknown organization", thauth.AuditFilter{OrganizationID: newID(), Limit: 100}, nil},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, c.f)
				if c.want == nil {
					wantEmpty(t, "ListAudit", got, err)
					return
				}
				must(t, err)
				diff(t, "ListAudit", c.want, got)
			})
		}
	})

	t.Run("ScanAndChains", func(t *testing.T) {
		s := open(t)
		// Byte order: "" < "Zeta" < "alpha".
		for _, chain := range []string{"alpha", "", "Zeta", "alpha"} {
			e := auditEntry(chain, "acct", "org.updated", base)
			must(t, s.AppendAudit(ctx, &e))
		}
		chains, err := s.AuditChains(ctx)
		must(t, err)
		diff(t, "AuditChains", []string{"", "Zeta", "alpha"}, chains)
		if es := scanChain(t, s, "alpha"); len(es) != 2 || es[0].Seq != 1 || es[1].Seq != 2 {
			t.Errorf("ScanAudit(alpha) = %d entries, want seq 1, 2", len(es))
		}
		es := scanChain(t, s, "nothing")
		if len(es) != 0 {
			t.Errorf("ScanAudit of an unknown chain = %d entries", len(es))
		}
		calls := 0
		err = s.ScanAudit(ctx, "alpha", func(*thauth.AuditEntry) error {
			calls++
			return errStop
		})
		if !errors.Is(err, errStop) || calls != 1 {
			t.Errorf("ScanAudit with a failing fn = %v after %d calls, want fn's error after 1", err, calls)
		}
	})
}

// testIdentityTx checks that identity writes take part in Store.Tx: appends inside a
// transaction chain onto each other, and a rollback leaves neither rows nor a gap.
func testIdentityTx(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()
	s := open(t)
	errRollback := errors.New("roll back")
	acct := thauth.Account{ID: newID(), Email: "ada@example.com", PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
	err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.CreateAccount(ctx, &acct); err != nil {
			return err
		}
		m := thauth.OutboxMail{ID: newID(), To: acct.Email, Template: "verify_email", Status: thauth.MailPending, NextAttemptAt: base, CreatedAt: base}
		if err := tx.EnqueueMail(ctx, &m); err != nil {
			return err
		}
		e := auditEntry("", acct.ID, "auth.signup", base)
		if err := tx.AppendAudit(ctx, &e); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Tx = %v, want the closure's error", err)
	}
	_, err = s.GetAccount(ctx, acct.ID)
	wantCode(t, err, thauth.ENotFound)
	if n, err := s.CountPendingMail(ctx); err != nil || n != 0 {
		t.Errorf("mail after a rollback: %d, %v", n, err)
	}
	chains, err := s.AuditChains(ctx)
	wantEmpty(t, "audit chains after a rollback", chains, err)

	must(t, s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.CreateAccount(ctx, &acct); err != nil {
			return err
		}
		for _, action := range []string{"auth.signup", "auth.email.verified"} {
			e := auditEntry("", acct.ID, action, base)
			if err := tx.AppendAudit(ctx, &e); err != nil {
				return err
			}
		}
		es, err := tx.ListAudit(ctx, thauth.AuditFilter{AccountID: acct.ID, Limit: 10})
		if err != nil {
			return err
		}
		if len(es) != 2 {
			t.Errorf("entries read inside the tx = %d, want 2", len(es))
		}
		return nil
	}))
	es := scanChain(t, s, "")
	if len(es) != 2 {
		t.Fatalf("entries after commit = %d, want 2", len(es))
	}
	checkChain(t, "", es)
}
