package manage

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/totp"
)

// consoleEnv is a Service with everything the console needs, on the real SQLite store, the
// real engine (for console authorization), a real sealer and real TOTP, with a settable clock
// and cheap password hashing (tests sign in a lot). Shared by the accounts and organizations
// tests.
type consoleEnv struct {
	ctx    context.Context
	store  *sqlite.Store
	engine *engine.Engine
	svc    *Service
	clock  *clock
	totp   *totp.Generator
	sealer *seal.Sealer
}

// testPasswords are argon2id parameters cheap enough for tests (never use them elsewhere).
var testPasswords = PasswordParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func newConsoleEnv(t testing.TB) *consoleEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	c := &clock{t: testStart}
	mk, err := seal.GenerateMasterKey("test")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := seal.ParseMasterKeys(mk)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := seal.New(ctx, st, keys, seal.Options{Now: c.Now})
	if err != nil {
		t.Fatalf("seal.New: %v", err)
	}
	eng := engine.New(st, engine.Options{Now: c.Now})
	g := totp.New("Thauth")
	e := &consoleEnv{ctx: ctx, store: st, engine: eng, clock: c, totp: g, sealer: sl}
	e.svc = New(st, eng, Options{
		Now:       c.Now,
		Sealer:    sl,
		TOTP:      g,
		Passwords: testPasswords,
		PublicURL: "https://console.test",
		Decide: func(projectID string, req *thauth.CheckRequest, now time.Time) thauth.Decision {
			snap := eng.Snapshot(projectID)
			if snap == nil {
				return thauth.ErrorDecision
			}
			return snap.Check(req, now)
		},
	})
	if err := e.svc.EnsureConsole(ctx); err != nil {
		t.Fatalf("EnsureConsole: %v", err)
	}
	return e
}

// sentMail is an outbox message with its payload opened.
type sentMail struct {
	thauth.OutboxMail
	Data map[string]string
}

// mails returns the outbox messages to address to, oldest first, with their payloads opened.
func (e *consoleEnv) mails(t testing.TB, to string) []sentMail {
	t.Helper()
	all, err := e.store.ListMail(e.ctx, 1000)
	if err != nil {
		t.Fatalf("ListMail: %v", err)
	}
	var out []sentMail
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.To != to {
			continue
		}
		sm := sentMail{OutboxMail: m}
		if m.Payload != "" {
			b, err := e.sealer.Open(e.ctx, MailPurpose, m.ID, m.Payload)
			if err != nil {
				t.Fatalf("open mail payload: %v", err)
			}
			if err := json.Unmarshal(b, &sm.Data); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, sm)
	}
	return out
}

// lastMail returns the newest message to address to of template, failing when there is none.
func (e *consoleEnv) lastMail(t testing.TB, to, template string) sentMail {
	t.Helper()
	ms := e.mails(t, to)
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Template == template {
			return ms[i]
		}
	}
	t.Fatalf("no %s mail to %s (have %d messages)", template, to, len(ms))
	return sentMail{}
}

// tokenOf extracts the token from a link's "#token=" fragment.
func tokenOf(t testing.TB, link string) string {
	t.Helper()
	const marker = "#token="
	for i := 0; i+len(marker) <= len(link); i++ {
		if link[i:i+len(marker)] == marker {
			return link[i+len(marker):]
		}
	}
	t.Fatalf("link %q has no #token= fragment", link)
	return ""
}

// advance moves the test clock.
func (e *consoleEnv) advance(d time.Duration) { e.clock.Set(e.clock.Now().Add(d)) }
