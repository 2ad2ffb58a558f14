package storetest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/seal"
)

// BackupStore is a store that backups read from and restore into, and that keeps
// internal/seal's data keys.
type BackupStore interface {
	thauth.Store
	thauth.TableExporter
	thauth.TableImporter
	seal.KeyStore
}

// Dump is every row of a store as ExportTables gave them: one entry per table of
// thauth.BackupTables, in that order, each with its rows in export order.
type Dump []DumpTable

// DumpTable is the rows of one table.
type DumpTable struct {
	Name string
	Rows [][]any
}

// Rows returns the number of rows of every table.
func (d Dump) Rows() map[string]int {
	m := map[string]int{}
	for _, t := range d {
		m[t.Name] = len(t.Rows)
	}
	return m
}

// Table returns the rows of the named table.
func (d Dump) Table(name string) [][]any {
	for _, t := range d {
		if t.Name == name {
			return t.Rows
		}
	}
	return nil
}

// Export reads every row of s with ExportTables, checking the order of the tables and
// that every row fits its table.
func Export(t testing.TB, s thauth.TableExporter) Dump {
	t.Helper()
	tables := thauth.BackupTables()
	d := make(Dump, len(tables))
	for i, tb := range tables {
		d[i].Name = tb.Name
	}
	i := 0
	err := s.ExportTables(context.Background(), func(table string, row []any) error {
		for i < len(tables) && tables[i].Name != table {
			i++
		}
		if i == len(tables) {
			return fmt.Errorf("table %q exported out of order or unknown", table)
		}
		if err := tables[i].CheckRow(row); err != nil {
			return err
		}
		d[i].Rows = append(d[i].Rows, row)
		return nil
	})
	if err != nil {
		t.Fatalf("ExportTables: %v", err)
	}
	return d
}

// DiffDumps returns a readable difference between two dumps, or "" if they are equal (times
// compared as instants).
func DiffDumps(want, got Dump) string {
	return gocmp.Diff(want, got)
}

// Populated describes what Populate stored.
type Populated struct {
	ProjectIDs []string
	// Tokens are the API key tokens of every key Populate created, usable or not.
	Tokens []string
	// Now is an instant at which some of the time-bounded grants are active and others not.
	Now time.Time
}

// Populate fills s, through its ordinary methods, with rows in every table of
// thauth.BackupTables and the values that are easy to get wrong in a copy: text with quotes,
// backslashes, newlines and non-ASCII, ids whose byte order differs from their alphabetical
// order, times before 1970 and in year 9999, NULL and non-NULL optional times, revoked,
// expired and used API keys, revisions of several changes, a project without
// configuration, an organization without projects or members (internal/backup's tests remove
// its row: nothing may refer to it), and retired and active data keys.
func Populate(t testing.TB, s BackupStore) *Populated {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := &Populated{Now: base}

	retired := at(-time.Hour)
	ok(s.InsertDataKey(ctx, seal.DataKey{ID: "dk_0001", MasterKeyID: "k-2025", Wrapped: []byte{0, 1, 2, 0xff}, CreatedAt: at(-48 * time.Hour), RetiredAt: &retired}))
	ok(s.InsertDataKey(ctx, seal.DataKey{ID: "dk_0002", MasterKeyID: "k-2026", Wrapped: bytes.Repeat([]byte{0xa5}, 60), CreatedAt: at(-2 * time.Hour)}))

	org := thauth.Organization{ID: newID(), Name: "Ünïcode \"Acme\" \\ 🎉\nsecond line", CreatedAt: at(-72 * time.Hour)}
	ok(s.CreateOrganization(ctx, &org))
	lonely := thauth.Organization{ID: newID(), Name: "No projects", CreatedAt: at(-71 * time.Hour)}
	ok(s.CreateOrganization(ctx, &lonely))

	shop := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: at(-70 * time.Hour)}
	ok(s.CreateProject(ctx, org.ID, &shop))
	empty := thauth.Project{ID: newID(), Name: "Empty\tproject", CreatedAt: at(-69 * time.Hour)}
	ok(s.CreateProject(ctx, org.ID, &empty))
	p.ProjectIDs = []string{shop.ID, empty.ID}

	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = newID()
		}
		return out
	}
	fid, aid, rid := ids(2), ids(4), ids(3)
	cfg := &thauth.Config{
		Features: []thauth.Feature{
			{ID: fid[0], Name: "billing", Description: "Invoices, \"refunds\" and C:\\paths", Actions: []thauth.Action{
				{ID: aid[0], Name: "read"}, {ID: aid[1], Name: "refund"},
			}},
			{ID: fid[1], Name: "reports", Actions: []thauth.Action{{ID: aid[2], Name: "export"}, {ID: aid[3], Name: "read"}}},
		},
		Roles: []thauth.Role{
			{ID: rid[0], Name: "admin", Description: "Everything\nreally", Permissions: []thauth.Permission{
				{FeatureID: fid[0], ActionID: aid[0]}, {FeatureID: fid[0], ActionID: aid[1]},
				{FeatureID: fid[1], ActionID: aid[2]}, {FeatureID: fid[1], ActionID: aid[3]},
			}},
			{ID: rid[1], Name: "refunder", Permissions: []thauth.Permission{
				{FeatureID: fid[0], ActionID: aid[1], Resource: "invoices/*"},
				{FeatureID: fid[0], ActionID: aid[1], Resource: "credit-notes/eu/*"},
			}},
			{ID: rid[2], Name: "viewer", Permissions: []thauth.Permission{
				{FeatureID: fid[0], ActionID: aid[0]}, {FeatureID: fid[1], ActionID: aid[3], Resource: "*"},
			}},
		},
	}
	ok(s.ReplaceConfig(ctx, shop.ID, cfg))

	old := time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)
	far := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	soon, later := at(30*time.Minute), at(90*time.Minute)
	// "user:B" sorts before "user:a" in byte order, after it alphabetically.
	for i, sid := range []string{"user:a", "user:B", "user:ünï\"code\"\\🎉", "service:batch", "user:nobody"} {
		sub := thauth.Subject{SubjectID: sid, SubjectType: []string{"user", "service"}[i%2]}
		_, err := s.UpsertSubject(ctx, shop.ID, &sub, at(time.Duration(i)*time.Minute))
		ok(err)
	}
	_, err := s.UpsertSubject(ctx, shop.ID, &thauth.Subject{SubjectID: "user:a", SubjectType: "user"}, at(10*time.Minute)) // updated_at moves
	ok(err)
	grants := map[string][]thauth.Assignment{
		"user:a": {{RoleID: rid[2]}, {RoleID: rid[1], Tenant: "acme-eu"}},
		"user:B": {{RoleID: rid[0], Tenant: "acme-eu", Window: thauth.Window{From: &old, Until: &soon}},
			{RoleID: rid[2], Tenant: "acme-us", Window: thauth.Window{From: &soon, Until: &far}}},
		"user:ünï\"code\"\\🎉": {{RoleID: rid[0], Window: thauth.Window{Until: &later}}},
		"service:batch":       {{RoleID: rid[2]}},
	}
	for sid, as := range grants {
		ok(s.ReplaceAssignments(ctx, shop.ID, sid, thauth.Scope{All: true}, as))
	}
	overrides := map[string][]thauth.Override{
		"user:a": {{FeatureID: fid[1], ActionID: aid[2], Effect: thauth.Deny, Resource: "prod/*"},
			{FeatureID: fid[0], ActionID: aid[1], Effect: thauth.Allow, Resource: "invoices/42", Tenant: "acme-us", Window: thauth.Window{From: &old}}},
		"user:B":        {{FeatureID: fid[0], ActionID: aid[0], Effect: thauth.Deny, Tenant: "acme-eu", Window: thauth.Window{Until: &soon}}},
		"service:batch": {{FeatureID: fid[1], ActionID: aid[2], Effect: thauth.Allow, Window: thauth.Window{From: &later, Until: &far}}},
	}
	for sid, os := range overrides {
		ok(s.ReplaceOverrides(ctx, shop.ID, sid, thauth.Scope{All: true}, os))
	}

	key := func(projectID, name string, created time.Time, scopes ...string) thauth.APIKey {
		token, lookup, hash := thauth.NewToken()
		p.Tokens = append(p.Tokens, token)
		return thauth.APIKey{ID: newID(), Name: name, LookupID: lookup, Hash: hash, Scopes: scopes, CreatedAt: created}
	}
	expired := at(-time.Minute)
	keys := []thauth.APIKey{
		key(shop.ID, "checks", at(-60*time.Hour), thauth.ScopeDecisionsRead),
		key(shop.ID, "admin \"ops\"", at(-59*time.Hour), thauth.ScopeAdmin, thauth.ScopeDecisionsRead),
		key(shop.ID, "expired", at(-58*time.Hour), thauth.ScopeDecisionsRead),
		key(shop.ID, "revoked", at(-57*time.Hour), thauth.ScopeDecisionsRead),
		key(empty.ID, "empty's key", at(-56*time.Hour), thauth.ScopeAdmin),
	}
	keys[2].ExpiresAt = &expired
	for i := range keys {
		pid := shop.ID
		if i == len(keys)-1 {
			pid = empty.ID
		}
		ok(s.CreateAPIKey(ctx, pid, &keys[i]))
	}
	ok(s.RevokeAPIKey(ctx, shop.ID, keys[3].ID, at(-30*time.Minute)))
	ok(s.TouchAPIKeys(ctx, shop.ID, map[string]time.Time{keys[0].ID: at(-5 * time.Minute)}))

	for i, cs := range [][]thauth.Change{
		{{Kind: thauth.ChangeProject}},
		{{Kind: thauth.ChangeConfig}},
		{{Kind: thauth.ChangeSubject, Ref: "user:a"}, {Kind: thauth.ChangeSubject, Ref: "user:B"}, {Kind: thauth.ChangeSubjects}},
		{{Kind: thauth.ChangeKey, Ref: keys[0].ID}},
	} {
		_, err := s.AppendChanges(ctx, shop.ID, cs, at(time.Duration(i)*time.Second))
		ok(err)
	}
	_, err = s.AppendChanges(ctx, empty.ID, []thauth.Change{{Kind: thauth.ChangeProject}}, at(-69*time.Hour))
	ok(err)
	populateIdentity(t, s, &org, &lonely)
	populateProtection(t, s, &org, shop.ID)
	return p
}

// populateProtection fills every protection table (migration 0004) with rows that have both
// NULL and non-NULL optional columns, a gap marker, every delivery state and a suspended
// organization. It uses org only: the organization without projects stays unreferenced.
func populateProtection(t testing.TB, s BackupStore, org *thauth.Organization, projectID string) {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	old := time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)

	suspended := at(-20 * time.Minute)
	ok(s.SetOrganizationSuspension(ctx, org.ID, &suspended, "Abuse: \"credential stuffing\" ü\nticket 42"))
	org.SuspendedAt, org.SuspendedReason = &suspended, "Abuse: \"credential stuffing\" ü\nticket 42"

	ok(s.AppendDecisions(ctx, []thauth.DecisionRecord{
		{ID: newID(), ProjectID: projectID, At: at(-3 * time.Minute), KeyID: newID(), Subject: "user:ünï\"code\"\\🎉",
			Feature: "billing", Action: "refund", Tenant: "acme-eu", Resource: "invoices/42", Allowed: true,
			Reason: "allowed_by_role", Latency: 1234 * time.Microsecond},
		{ID: newID(), ProjectID: projectID, At: old, Subject: "user:B", Feature: "reports", Action: "export", Reason: "no_grant"},
		{ID: newID(), ProjectID: projectID, At: at(-2 * time.Minute), Gap: 1234567},
	}))

	for i, e := range []thauth.SecurityEvent{
		{OrganizationID: org.ID, ProjectID: projectID, Kind: "key.invalid_burst", Severity: thauth.SeverityHigh,
			Title: "Invalid keys from \"203.0.113.7\"", Evidence: `{"ip":"203.0.113.7","count":"57","note":"ü\"q\""}`},
		{Kind: "operator.granted", Severity: thauth.SeverityCritical, Title: "Operator granted", Evidence: "{}"},
	} {
		e.ID, e.At = newID(), at(-time.Duration(10+i)*time.Minute)
		ok(s.AppendSecurityEvent(ctx, &e))
	}

	full := thauth.WebhookEndpoint{ID: newID(), URL: "https://hooks.example.com/thauth?x=1&y=\"2\"",
		Description: "Ops \"pager\" ü\\", Events: []string{"security.*", "security.key.revoked_used", "a,b"},
		Secret: "v1.dk_0002.c2VjcmV0", PreviousSecret: "v1.dk_0001.b2xk", PreviousSecretExpiresAt: ptr(at(23 * time.Hour)),
		DisabledAt: ptr(at(-time.Minute)), DisabledReason: "410 Gone", CreatedAt: at(-30 * time.Hour)}
	bare := thauth.WebhookEndpoint{ID: newID(), URL: "http://localhost:9000/", Secret: "v1.dk_0002.YmFyZQ", CreatedAt: old}
	ok(s.CreateWebhookEndpoint(ctx, org.ID, &full))
	ok(s.CreateWebhookEndpoint(ctx, org.ID, &bare))

	ds := []thauth.WebhookDelivery{
		{ID: newID(), EndpointID: full.ID, EventID: newID(), EventType: "security.key.invalid_burst",
			Payload: []byte(`{"type":"security.key.invalid_burst"}` + "\x00\xff"), Status: thauth.DeliveryPending,
			NextAttemptAt: ptr(at(time.Minute)), CreatedAt: at(-time.Hour)},
		{ID: newID(), EndpointID: full.ID, EventID: newID(), EventType: "security.org.suspended", Payload: []byte(`{}`),
			Status: thauth.DeliveryPending, NextAttemptAt: ptr(at(-50 * time.Minute)), CreatedAt: at(-50 * time.Minute)},
		{ID: newID(), EndpointID: bare.ID, EventID: newID(), EventType: "security.test", Payload: []byte(`{"t":1}`),
			Status: thauth.DeliveryPending, NextAttemptAt: ptr(at(-40 * time.Minute)), CreatedAt: at(-40 * time.Minute)},
	}
	ok(s.EnqueueDeliveries(ctx, org.ID, ds))
	delivered := ds[1]
	delivered.Status, delivered.Attempts, delivered.NextAttemptAt, delivered.LastStatusCode = thauth.DeliveryDelivered, 2, nil, 204
	delivered.LastAttemptAt, delivered.DeliveredAt = ptr(at(-45*time.Minute)), ptr(at(-45*time.Minute))
	ok(s.UpdateDelivery(ctx, org.ID, &delivered, &thauth.WebhookAttempt{Number: 1, At: at(-50 * time.Minute),
		Duration: 10 * time.Second, Error: "timeout \"after\" 10s", RetryAfter: 5 * time.Minute}))
	ok(s.UpdateDelivery(ctx, org.ID, &delivered, &thauth.WebhookAttempt{Number: 2, At: at(-45 * time.Minute),
		Duration: 42 * time.Millisecond, StatusCode: 204}))
	failed := ds[2]
	failed.Status, failed.Attempts, failed.NextAttemptAt, failed.LastStatusCode = thauth.DeliveryFailed, 1, nil, 500
	failed.LastAttemptAt, failed.LastError = ptr(at(-39*time.Minute)), "500 Internal Server Error\n"
	ok(s.UpdateDelivery(ctx, org.ID, &failed, &thauth.WebhookAttempt{Number: 1, At: at(-39 * time.Minute),
		Duration: 120 * time.Millisecond, StatusCode: 500, Error: "500"}))

	closed := thauth.Incident{ID: newID(), Title: "Leaked key", Status: "closed", CreatedAt: at(-3 * time.Hour),
		CreatedBy: "root", ClosedAt: ptr(at(-2 * time.Hour))}
	active := thauth.Incident{ID: newID(), Title: "Credential \"stuffing\" ü", Status: "open", CreatedAt: at(-25 * time.Minute),
		CreatedBy: "acct:ops"}
	ok(s.CreateIncident(ctx, &closed))
	ok(s.CreateIncident(ctx, &active))
	for _, ev := range []thauth.IncidentEvent{
		{IncidentID: active.ID, At: at(-25 * time.Minute), Actor: "acct:ops", Kind: "opened", Detail: "{}"},
		{IncidentID: active.ID, At: at(-20 * time.Minute), Actor: "acct:ops", Kind: "org.suspended",
			Detail: `{"organization_id":"` + org.ID + `","reason":"ü\"q\""}`},
		{IncidentID: closed.ID, At: at(-2 * time.Hour), Actor: "root", Kind: "closed", Detail: "{}"},
	} {
		ok(s.AppendIncidentEvent(ctx, &ev))
	}
}

// populateIdentity fills every identity table (migration 0003) with rows that have both
// NULL and non-NULL optional columns, booleans both ways and sealed-looking text.
func populateIdentity(t testing.TB, s BackupStore, org, lonely *thauth.Organization) {
	t.Helper()
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	org.RequireMFA = true
	ok(s.UpdateOrganization(ctx, org))

	old := time.Date(1969, 7, 20, 20, 17, 40, 123456000, time.UTC)
	ada := thauth.Account{ID: newID(), Email: "ada@example.com", Name: "Ada \"Countess\" Lovelace\\ 🎉",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", EmailVerifiedAt: ptr(at(-60 * time.Hour)),
		TOTPSecret: "v1.dk_0002.c2VhbGVk", TOTPEnabledAt: ptr(at(-50 * time.Hour)), CreatedAt: old, UpdatedAt: at(-50 * time.Hour)}
	bob := thauth.Account{ID: newID(), Email: "bob@example.com", PasswordHash: "$argon2id$bob", TOTPPending: "v1.dk_0002.cGVuZGluZw",
		CreatedAt: at(-40 * time.Hour), UpdatedAt: at(-40 * time.Hour)}
	ok(s.CreateAccount(ctx, &ada))
	ok(s.CreateAccount(ctx, &bob))
	_, err := s.AdvanceTOTPStep(ctx, ada.ID, 59_000_123)
	ok(err)

	code := func(c string) []byte { h := sha256.Sum256([]byte(c)); return h[:] }
	ok(s.ReplaceRecoveryCodes(ctx, ada.ID, [][]byte{code("r1"), code("r2"), {0}}, at(-50*time.Hour)))
	_, err = s.UseRecoveryCode(ctx, ada.ID, code("r1"), at(-10*time.Hour))
	ok(err)

	for i, purpose := range []string{thauth.EmailTokenVerify, thauth.EmailTokenReset} {
		tok := thauth.EmailToken{ID: newID(), AccountID: bob.ID, Purpose: purpose, TokenHash: code(fmt.Sprint("email", i)),
			Email: bob.Email, CreatedAt: at(-time.Hour), ExpiresAt: at(time.Hour)}
		ok(s.CreateEmailToken(ctx, &tok))
	}
	_, err = s.ConsumeEmailToken(ctx, thauth.EmailTokenVerify, code("email0"), at(-30*time.Minute))
	ok(err)

	for i, sess := range []thauth.Session{
		{MFA: true, IP: "2001:db8::1", UserAgent: "Mozilla/5.0 \"quoted\" ünï"},
		{PendingMFA: true, RevokedAt: ptr(at(-2 * time.Minute))},
	} {
		sess.ID, sess.AccountID, sess.TokenHash = newID(), ada.ID, code(fmt.Sprint("session", i))
		sess.CreatedAt, sess.LastSeenAt, sess.ExpiresAt = at(-3*time.Hour), at(-time.Hour), at(21*time.Hour)
		ok(s.CreateSession(ctx, &sess))
	}

	for i, tok := range []thauth.AccessToken{
		{Name: "ci \"deploy\"", Scopes: []string{thauth.TokenScopeRead, thauth.TokenScopeWrite}, LastUsedAt: ptr(at(-time.Minute))},
		{Name: "old", Scopes: []string{thauth.TokenScopeRead}, RevokedAt: ptr(at(-20 * time.Hour))},
	} {
		_, lookup, h := thauth.NewToken()
		tok.ID, tok.AccountID, tok.LookupID, tok.Hash = newID(), ada.ID, lookup, h
		tok.CreatedAt, tok.ExpiresAt = at(-time.Duration(30+i)*time.Hour), at(2000*time.Hour)
		ok(s.CreateAccessToken(ctx, &tok))
	}

	for _, m := range []thauth.Membership{
		{OrganizationID: org.ID, AccountID: ada.ID, Role: thauth.OrgRoleOwner, CreatedAt: at(-72 * time.Hour), UpdatedAt: at(-72 * time.Hour)},
		{OrganizationID: org.ID, AccountID: bob.ID, Role: thauth.OrgRoleViewer, CreatedAt: at(-39 * time.Hour), UpdatedAt: at(-38 * time.Hour)},
	} {
		ok(s.PutMembership(ctx, &m))
	}

	for i, inv := range []thauth.Invitation{
		{Email: "carol@example.com", Role: thauth.OrgRoleDeveloper},
		{Email: bob.Email, Role: thauth.OrgRoleViewer, AcceptedAt: ptr(at(-39 * time.Hour)), AcceptedBy: bob.ID},
		{Email: "dave@example.com", Role: thauth.OrgRoleAdmin, RevokedAt: ptr(at(-5 * time.Hour))},
	} {
		inv.ID, inv.TokenHash, inv.InvitedBy = newID(), code(fmt.Sprint("invitation", i)), ada.ID
		inv.CreatedAt, inv.ExpiresAt = at(-time.Duration(45-i)*time.Hour), at(100*time.Hour)
		ok(s.CreateInvitation(ctx, org.ID, &inv))
	}

	ok(s.PutOperator(ctx, &thauth.Operator{AccountID: ada.ID, Role: thauth.OperatorSuperadmin, GrantedAt: at(-49 * time.Hour), GrantedBy: "root"}))

	_, err = s.RecordFailure(ctx, "ip:203.0.113.7", at(-time.Minute), at(-16*time.Minute))
	ok(err)
	_, err = s.RecordFailure(ctx, "email:"+hex.EncodeToString(code(bob.Email)), at(-time.Minute), at(-16*time.Minute))
	ok(err)
	ok(s.LockThrottle(ctx, "email:"+hex.EncodeToString(code(bob.Email)), at(14*time.Minute)))

	mails := []thauth.OutboxMail{
		{ID: newID(), To: bob.Email, Template: "verify_email", Payload: "v1.dk_0002.bWFpbA", Status: thauth.MailPending,
			NextAttemptAt: at(time.Minute), CreatedAt: at(-time.Hour)},
		{ID: newID(), To: ada.Email, Template: "new_sign_in", Payload: "v1.dk_0002.c2VudA", Status: thauth.MailPending,
			NextAttemptAt: at(-2 * time.Hour), CreatedAt: at(-2 * time.Hour)},
	}
	for i := range mails {
		ok(s.EnqueueMail(ctx, &mails[i]))
	}
	mails[1].Status, mails[1].Attempts, mails[1].Payload, mails[1].ProviderID = thauth.MailSent, 2, "", "re_123"
	mails[1].LastError, mails[1].SentAt = "421 \"try later\"\n", ptr(at(-110*time.Minute))
	ok(s.UpdateMail(ctx, &mails[1]))

	for i, e := range []thauth.AuditEntry{
		{ActorType: thauth.ActorAnonymous, AccountID: bob.ID, Action: "auth.signup", IP: "203.0.113.7", UserAgent: "curl/8"},
		{ActorType: thauth.ActorAccount, ActorID: ada.ID, AccountID: ada.ID, Action: "auth.signin", Data: `{"mfa":"true","note":"ü\"q\""}`},
		{Chain: org.ID, ActorType: thauth.ActorAccount, ActorID: ada.ID, OrganizationID: org.ID, Action: "org.created", Target: org.ID},
		{Chain: org.ID, ActorType: thauth.ActorAccount, ActorID: ada.ID, OrganizationID: org.ID, AccountID: bob.ID, Action: "member.added"},
		{Chain: lonely.ID, ActorType: thauth.ActorCLI, ActorID: "root", OrganizationID: lonely.ID, Action: "org.updated"},
	} {
		e.ID, e.At = newID(), at(-time.Duration(50-i)*time.Hour)
		ok(s.AppendAudit(ctx, &e))
	}
}

// RunBackup runs the conformance cases of ExportTables and ImportTables. open must return a
// fresh, migrated, empty store for the test it is given and arrange its cleanup.
func RunBackup(t *testing.T, open func(t *testing.T) BackupStore) {
	ctx := context.Background()

	t.Run("export covers every table in order", func(t *testing.T) {
		s := open(t)
		if d := Export(t, s); len(d.Rows()) != len(thauth.BackupTables()) || slices.ContainsFunc(d, func(t DumpTable) bool { return len(t.Rows) > 0 }) {
			t.Errorf("export of an empty store = %v, want every table empty", d.Rows())
		}
		Populate(t, s)
		d := Export(t, s)
		for i, tb := range thauth.BackupTables() {
			if len(d[i].Rows) == 0 {
				t.Errorf("table %s: no rows exported; Populate fills every table", tb.Name)
			}
			sorted := slices.IsSortedFunc(d[i].Rows, func(a, b []any) int { return compareRows(tb, a, b) })
			if !sorted {
				t.Errorf("table %s: rows not in OrderBy order (NULLs first, byte order)", tb.Name)
			}
		}
		for _, r := range d.Table("projects") {
			if r[4] == int64(0) {
				t.Errorf("project %v exported with revision 0; Populate appends changes to every project", r[0])
			}
		}
	})

	t.Run("export twice is identical", func(t *testing.T) {
		s := open(t)
		Populate(t, s)
		if d := DiffDumps(Export(t, s), Export(t, s)); d != "" {
			t.Errorf("two exports differ:\n%s", d)
		}
	})

	t.Run("import round trips every row", func(t *testing.T) {
		src, dst := open(t), open(t)
		pop := Populate(t, src)
		want := Export(t, src)
		must(t, Import(dst, want))
		if d := DiffDumps(want, Export(t, dst)); d != "" {
			t.Fatalf("restored store differs (-source +restored):\n%s", d)
		}
		// The ordinary methods read the restored rows like the originals.
		for _, pid := range pop.ProjectIDs {
			diff(t, "project "+pid, snapshot(t, src, pid), snapshot(t, dst, pid))
		}
		wantKeys, _ := src.ListDataKeys(ctx)
		gotKeys, err := dst.ListDataKeys(ctx)
		must(t, err)
		diff(t, "data keys", wantKeys, gotKeys)
		// The restored store goes on where the source was: revisions continue, keys and
		// names stay unique.
		pid := pop.ProjectIDs[0]
		before, _ := src.GetProject(ctx, pid)
		rev, err := dst.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
		must(t, err)
		if rev != before.Revision+1 {
			t.Errorf("first revision after restore = %d, want %d", rev, before.Revision+1)
		}
		k := (want.Table("api_keys"))[0]
		dup := thauth.APIKey{ID: newID(), Name: "dup", LookupID: k[3].(string), Hash: []byte{1}, Scopes: []string{thauth.ScopeAdmin}, CreatedAt: base}
		wantCode(t, dst.CreateAPIKey(ctx, pid, &dup), thauth.EConflict)

		// Identity rows read back alike, and the restored audit chains go on from their heads.
		diff(t, "identity", identitySnapshot(t, src), identitySnapshot(t, dst))
		var last thauth.AuditEntry
		must(t, src.ScanAudit(ctx, "", func(e *thauth.AuditEntry) error { last = *e; return nil }))
		next := thauth.AuditEntry{ID: newID(), At: base, ActorType: thauth.ActorSystem, Action: "auth.signin"}
		must(t, dst.AppendAudit(ctx, &next))
		if next.Seq != last.Seq+1 || !bytes.Equal(next.PrevHash, last.Hash) {
			t.Errorf("append after restore: seq %d prev %x, want seq %d prev %x", next.Seq, next.PrevHash, last.Seq+1, last.Hash)
		}
		acct := thauth.Account{ID: newID(), Email: "ada@example.com", PasswordHash: "h", CreatedAt: base, UpdatedAt: base}
		wantCode(t, dst.CreateAccount(ctx, &acct), thauth.EConflict)
	})

	t.Run("import refuses a store that is not empty", func(t *testing.T) {
		src := open(t)
		Populate(t, src)
		d := Export(t, src)
		for name, seed := range map[string]func(s BackupStore) error{
			"organization": func(s BackupStore) error {
				return s.CreateOrganization(ctx, &thauth.Organization{ID: newID(), Name: "x", CreatedAt: base})
			},
			"data key": func(s BackupStore) error {
				return s.InsertDataKey(ctx, seal.DataKey{ID: "dk_x", MasterKeyID: "k", Wrapped: []byte{1}, CreatedAt: base})
			},
		} {
			t.Run(name, func(t *testing.T) {
				dst := open(t)
				must(t, seed(dst))
				before := Export(t, dst)
				called := false
				err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
					called = true
					return insertAll(d, insert)
				})
				wantCode(t, err, thauth.EConflict)
				if called {
					t.Error("fill was called although the store is not empty")
				}
				if df := DiffDumps(before, Export(t, dst)); df != "" {
					t.Errorf("refused import changed the store:\n%s", df)
				}
			})
		}
	})

	t.Run("failed fill writes nothing", func(t *testing.T) {
		src, dst := open(t), open(t)
		Populate(t, src)
		d := Export(t, src)
		errLate := errors.New("stream ended early")
		err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
			if err := insertAll(d, insert); err != nil {
				return err
			}
			return errLate // as a restore does when the trailer is wrong
		})
		if !errors.Is(err, errLate) {
			t.Fatalf("ImportTables = %v, want fill's error", err)
		}
		if n := Export(t, dst).Rows(); slices.ContainsFunc(thauth.BackupTables(), func(tb thauth.BackupTable) bool { return n[tb.Name] > 0 }) {
			t.Fatalf("rows written by a failed import: %v", n)
		}
		must(t, Import(dst, d)) // and the store can still be restored into
		if df := DiffDumps(d, Export(t, dst)); df != "" {
			t.Errorf("import after a failed one differs:\n%s", df)
		}
	})

	t.Run("rows that do not fit are refused", func(t *testing.T) {
		src := open(t)
		Populate(t, src)
		d := Export(t, src)
		org := d.Table("organizations")[0]
		proj := d.Table("projects")[0]
		for name, rows := range map[string][]struct {
			table string
			row   []any
		}{
			"unknown table":   {{"secrets", []any{"x"}}},
			"too few values":  {{"organizations", org[:2]}},
			"wrong type":      {{"organizations", []any{org[0], org[1], "yesterday"}}},
			"NULL not null":   {{"organizations", []any{org[0], nil, org[2]}}},
			"local time":      {{"organizations", []any{org[0], org[1], org[2].(time.Time).In(time.FixedZone("x", 3600))}}},
			"duplicate key":   {{"organizations", org}, {"organizations", org}},
			"dangling parent": {{"projects", proj}},
		} {
			t.Run(name, func(t *testing.T) {
				dst := open(t)
				err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
					for _, r := range rows {
						if err := insert(r.table, r.row); err != nil {
							return err
						}
					}
					return nil
				})
				wantCode(t, err, thauth.EInvalid)
				if n := Export(t, dst).Rows(); n["organizations"]+n["projects"] > 0 {
					t.Errorf("rows written by a refused import: %v", n)
				}
			})
		}
	})

	t.Run("export is one snapshot while writers go on", func(t *testing.T) {
		s := open(t)
		pop := Populate(t, s)
		pid := pop.ProjectIDs[0]
		before, _ := s.GetProject(ctx, pid)
		var d Dump
		wrote := false
		err := s.ExportTables(ctx, func(table string, row []any) error {
			if !wrote {
				wrote = true
				// Committed after the export began, by the store's own write path.
				if err := s.CreateOrganization(ctx, &thauth.Organization{ID: newID(), Name: "late", CreatedAt: base}); err != nil {
					return err
				}
				if _, err := s.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base); err != nil {
					return err
				}
			}
			if len(d) == 0 || d[len(d)-1].Name != table {
				d = append(d, DumpTable{Name: table})
			}
			d[len(d)-1].Rows = append(d[len(d)-1].Rows, row)
			return nil
		})
		must(t, err)
		got := d.Rows()
		if got["organizations"] != 2 {
			t.Errorf("export saw %d organizations, want the 2 from before it began", got["organizations"])
		}
		for _, r := range d.Table("projects") {
			if r[0] == pid && r[4] != before.Revision {
				t.Errorf("export saw revision %v, want %d from before it began", r[4], before.Revision)
			}
		}
		if after, _ := s.GetProject(ctx, pid); after.Revision != before.Revision+1 {
			t.Errorf("the write during the export did not commit: revision %d", after.Revision)
		}
	})

	t.Run("insert after fill returned fails", func(t *testing.T) {
		dst := open(t)
		var kept func(string, []any) error
		must(t, dst.ImportTables(ctx, func(insert func(string, []any) error) error {
			kept = insert
			return nil
		}))
		if err := kept("organizations", []any{newID(), "x", base}); err == nil {
			t.Error("insert after the import ended succeeded")
		}
	})
}

// identityState is what the ordinary methods read of the identity rows Populate stores.
type identityState struct {
	Organizations []thauth.Organization
	Operators     []thauth.Operator
	Mail          []thauth.OutboxMail
	Audit         map[string][]thauth.AuditEntry
}

func identitySnapshot(t *testing.T, s thauth.Store) identityState {
	t.Helper()
	ctx := context.Background()
	st := identityState{Audit: map[string][]thauth.AuditEntry{}}
	var err error
	st.Organizations, err = s.ListOrganizations(ctx)
	must(t, err)
	st.Operators, err = s.ListOperators(ctx)
	must(t, err)
	st.Mail, err = s.ListMail(ctx, 100)
	must(t, err)
	chains, err := s.AuditChains(ctx)
	must(t, err)
	for _, c := range chains {
		st.Audit[c] = scanChain(t, s, c)
	}
	return st
}

// Import restores d into s with ImportTables.
func Import(s thauth.TableImporter, d Dump) error {
	return s.ImportTables(context.Background(), func(insert func(string, []any) error) error {
		return insertAll(d, insert)
	})
}

func insertAll(d Dump, insert func(string, []any) error) error {
	for _, t := range d {
		for _, r := range t.Rows {
			if err := insert(t.Name, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareRows orders two rows of t by its OrderBy columns: NULL first, text and bytes in
// byte order.
func compareRows(t thauth.BackupTable, a, b []any) int {
	for _, name := range t.OrderBy {
		i := slices.IndexFunc(t.Columns, func(c thauth.BackupColumn) bool { return c.Name == name })
		x, y := a[i], b[i]
		var c int
		switch {
		case x == nil && y == nil:
		case x == nil:
			c = -1
		case y == nil:
			c = 1
		default:
			switch x := x.(type) {
			case string:
				c = cmp.Compare(x, y.(string))
			case int64:
				c = cmp.Compare(x, y.(int64))
			case []byte:
				c = bytes.Compare(x, y.([]byte))
			case time.Time:
				c = x.Compare(y.(time.Time))
			}
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
