package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
)

// Helpers of the organization tests (prefixed org so that they do not clash with the
// accounts tests of the same package).

// orgNewAccount creates a verified account directly in the store (independent of the
// sign-up code) and returns a session actor for it; mfa turns two-factor authentication on
// for the account and marks the session as MFA-verified.
func orgNewAccount(t testing.TB, e *consoleEnv, email string, mfa bool) Actor {
	t.Helper()
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	acct := &thauth.Account{ID: id, Email: email, Name: strings.Split(email, "@")[0], PasswordHash: "x",
		EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
	if mfa {
		acct.TOTPEnabledAt = &now
	}
	if err := e.store.CreateAccount(e.ctx, acct); err != nil {
		t.Fatalf("CreateAccount(%s): %v", email, err)
	}
	return Actor{AccountID: id, Via: ViaSession, SessionID: "s-" + id, MFA: mfa,
		Client: ClientInfo{IP: "192.0.2.1", UserAgent: "test"}}
}

// orgNewOrg creates an organization owned by owner.
func orgNewOrg(t testing.TB, e *consoleEnv, owner Actor, name string) *thauth.Organization {
	t.Helper()
	org, err := e.svc.CreateOrganization(e.ctx, owner, name)
	if err != nil {
		t.Fatalf("CreateOrganization(%q): %v", name, err)
	}
	return org
}

// orgEmail returns the account's email.
func orgEmail(t testing.TB, e *consoleEnv, a Actor) string {
	t.Helper()
	acct, err := e.store.GetAccount(e.ctx, a.AccountID)
	if err != nil {
		t.Fatalf("GetAccount: %v", err)
	}
	return acct.Email
}

// orgAddMember makes member a member of orgID with role, the way people do: by an
// invitation from inviter, accepted through the mailed link.
func orgAddMember(t testing.TB, e *consoleEnv, inviter Actor, orgID string, member Actor, role string) {
	t.Helper()
	email := orgEmail(t, e, member)
	if _, err := e.svc.Invite(e.ctx, inviter, orgID, email, role); err != nil {
		t.Fatalf("Invite(%s, %s): %v", email, role, err)
	}
	token := tokenOf(t, e.lastMail(t, email, MailInvitation).Data["link"])
	if _, err := e.svc.AcceptInvitation(e.ctx, member, token); err != nil {
		t.Fatalf("AcceptInvitation(%s): %v", email, err)
	}
}

// orgWantErr fails unless err has code and its message contains every fragment.
func orgWantErr(t testing.TB, err error, code thauth.ErrorCode, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s %q", code, fragments)
	}
	var te *thauth.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
	for _, f := range fragments {
		if !strings.Contains(te.Message, f) {
			t.Fatalf("message %q does not contain %q", te.Message, f)
		}
	}
}

// orgAudit returns the actions of the chain's audit entries in order.
func orgAudit(t testing.TB, e *consoleEnv, chain string) []thauth.AuditEntry {
	t.Helper()
	var out []thauth.AuditEntry
	err := e.store.ScanAudit(e.ctx, chain, func(a *thauth.AuditEntry) error {
		out = append(out, *a)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanAudit: %v", err)
	}
	return out
}

func orgActions(entries []thauth.AuditEntry) []string {
	out := []string{}
	for _, a := range entries {
		out = append(out, a.Action)
	}
	return out
}

// orgEngineAgrees checks that the engine's snapshot of the system project, current with the
// store, holds exactly the grants the memberships and operators tables imply for each actor:
// every member role in the organization's tenant, the operator role globally.
func orgEngineAgrees(t testing.TB, e *consoleEnv, actors ...Actor) {
	t.Helper()
	snap := e.engine.Snapshot(thauth.SystemProjectID)
	if snap == nil {
		t.Fatal("engine has no snapshot of the system project")
	}
	p, err := e.store.GetProject(e.ctx, thauth.SystemProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision() != p.Revision {
		t.Fatalf("engine snapshot at revision %d, store at %d: the write did not sync", snap.Revision(), p.Revision)
	}
	for _, a := range actors {
		want := []string{}
		orgs, err := e.store.ListAccountOrganizations(e.ctx, a.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		for _, om := range orgs {
			want = append(want, om.Role+"@"+om.Organization.ID)
		}
		if op, err := e.store.GetOperator(e.ctx, a.AccountID); err == nil {
			want = append(want, op.Role+"@")
		} else if thauth.ErrorCodeOf(err) != thauth.ENotFound {
			t.Fatal(err)
		}
		d := snap.Check(&thauth.CheckRequest{Subject: a.AccountID, Feature: "organization", Action: "read", Explain: true},
			e.clock.Now())
		got := []string{}
		for _, g := range d.Explain.Grants {
			if g.Kind != "role" {
				t.Errorf("account %s has a %s grant in the system project", a.AccountID, g.Kind)
				continue
			}
			got = append(got, g.Role+"@"+g.Tenant)
		}
		slices.Sort(want)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("engine grants of %s differ from memberships (-memberships +engine):\n%s", a.AccountID, diff)
		}
	}
}

// orgModel returns the embedded console model, parsed.
func orgModel(t testing.TB) *document {
	t.Helper()
	doc, err := parseDocument(consoleYAML, FormatYAML)
	if err != nil {
		t.Fatalf("console.yaml: %v %+v", err, problemsOf(err))
	}
	return doc
}

// orgPermissions returns every feature:action of the model, in document order.
func orgPermissions(doc *document) []string {
	var out []string
	for _, f := range doc.Features {
		for _, a := range f.Actions {
			out = append(out, f.Name+":"+a)
		}
	}
	return out
}

// orgRolePermissions returns role name → set of feature:action.
func orgRolePermissions(doc *document) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, r := range doc.Roles {
		set := map[string]bool{}
		for _, p := range r.Permissions {
			set[p.Feature+":"+p.Action] = true
		}
		out[r.Name] = set
	}
	return out
}

func TestConsoleModel(t *testing.T) {
	doc := orgModel(t)
	if doc.HasSubjects {
		t.Fatal("console.yaml has a subjects key: EnsureConsole would delete every account's grants")
	}
	var roles []string
	for _, r := range doc.Roles {
		roles = append(roles, r.Name)
	}
	if diff := cmp.Diff(concat(thauth.OrgRoles, thauth.OperatorRoles), roles); diff != "" {
		t.Errorf("roles of console.yaml (-want +got):\n%s", diff)
	}
	want := []string{
		"organization:read", "organization:update", "organization:delete", "organization:transfer",
		"members:read", "members:invite", "members:update", "members:remove", "members:manage_owners",
		"projects:read", "projects:create", "projects:delete",
		"keys:read", "keys:create", "keys:revoke",
		"config:read", "config:write",
		"subjects:read", "subjects:write",
		"billing:read", "billing:manage",
		"audit:read", "security:read", "security:manage", "decisions:read",
	}
	if diff := cmp.Diff(want, orgPermissions(doc)); diff != "" {
		t.Errorf("feature:action names (-contract +console.yaml):\n%s", diff)
	}

	// Properties the table must keep whatever else changes.
	perms := orgRolePermissions(doc)
	holders := func(perm string) []string {
		var out []string
		for _, r := range doc.Roles {
			if perms[r.Name][perm] {
				out = append(out, r.Name)
			}
		}
		return out
	}
	for _, tc := range []struct {
		perm string
		want []string
	}{
		{"members:manage_owners", []string{"owner", "superadmin"}},
		{"organization:transfer", []string{"owner"}}, // it hands over the actor's own ownership
		{"organization:delete", []string{"owner", "superadmin"}},
		{"billing:manage", []string{"owner", "billing", "superadmin"}},
		{"members:invite", []string{"owner", "admin", "superadmin"}},
		{"security:manage", []string{"owner", "admin", "superadmin"}},
	} {
		if diff := cmp.Diff(tc.want, holders(tc.perm)); diff != "" {
			t.Errorf("roles holding %s (-want +got):\n%s", tc.perm, diff)
		}
	}
	for perm := range perms["support"] {
		if !strings.HasSuffix(perm, ":read") {
			t.Errorf("support is read-only but has %s", perm)
		}
	}
	for _, p := range orgPermissions(doc) {
		if !perms["owner"][p] {
			t.Errorf("owner lacks %s", p)
		}
		if strings.HasSuffix(p, ":read") && !perms["support"][p] {
			t.Errorf("support lacks %s", p)
		}
	}
}

// The role table of docs/console-roles.md is generated from console.yaml: this test fails
// when they differ. THAUTH_UPDATE_DOCS=1 rewrites the table.
const (
	orgTableBegin = "<!-- BEGIN role table: generated from internal/manage/console.yaml by TestConsoleRolesDoc -->"
	orgTableEnd   = "<!-- END role table -->"
	orgDocPath    = "../../docs/console-roles.md"
)

// orgRolesTable renders the model as a Markdown table: one row per feature:action, one
// column per role.
func orgRolesTable(doc *document) string {
	var b strings.Builder
	b.WriteString("| permission |")
	sep := "|---|"
	for _, r := range doc.Roles {
		b.WriteString(" " + r.Name + " |")
		sep += ":---:|"
	}
	b.WriteString("\n" + sep + "\n")
	perms := orgRolePermissions(doc)
	for _, p := range orgPermissions(doc) {
		b.WriteString("| `" + p + "` |")
		for _, r := range doc.Roles {
			if perms[r.Name][p] {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString("   |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestConsoleRolesDoc(t *testing.T) {
	want := orgRolesTable(orgModel(t))
	raw, err := os.ReadFile(orgDocPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i, j := strings.Index(text, orgTableBegin), strings.Index(text, orgTableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q around the role table", orgDocPath, orgTableBegin, orgTableEnd)
	}
	got := strings.TrimSpace(text[i+len(orgTableBegin) : j])
	if got == strings.TrimSpace(want) {
		return
	}
	if os.Getenv("THAUTH_UPDATE_DOCS") == "1" {
		text = text[:i+len(orgTableBegin)] + "\n" + want + text[j:]
		if err := os.WriteFile(orgDocPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the role table of %s", orgDocPath)
		return
	}
	t.Errorf("the role table of %s differs from console.yaml (-doc +console.yaml); run the test with THAUTH_UPDATE_DOCS=1 to rewrite it:\n%s",
		orgDocPath, cmp.Diff(got, strings.TrimSpace(want)))
}

func TestEnsureConsoleIdempotentKeepsSubjects(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	before, err := e.store.GetProject(e.ctx, thauth.SystemProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.EnsureConsole(e.ctx); err != nil {
		t.Fatalf("second EnsureConsole: %v", err)
	}
	after, err := e.store.GetProject(e.ctx, thauth.SystemProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != before.Revision {
		t.Errorf("EnsureConsole with an unchanged model moved the revision from %d to %d", before.Revision, after.Revision)
	}
	if _, err := e.svc.Authorize(e.ctx, owner, org.ID, "members", "invite"); err != nil {
		t.Errorf("owner after EnsureConsole: %v", err)
	}

	// An older model (a role lost a permission, a feature is missing) is upgraded, and the
	// accounts' grants survive.
	old := strings.Replace(string(consoleYAML), "      - {feature: members, action: invite}\n", "", 1)
	old = strings.Replace(old, "  - name: security\n    description: Security settings and sign-in activity of the organization\n    actions: [read]\n", "", 1)
	old = strings.ReplaceAll(old, "      - {feature: security, action: read}\n", "")
	if old == string(consoleYAML) {
		t.Fatal("test set-up: the model edit matched nothing")
	}
	if _, err := e.svc.ApplyConfig(e.ctx, thauth.SystemProjectID, []byte(old), FormatYAML, false); err != nil {
		t.Fatalf("applying the older model: %v %+v", err, problemsOf(err))
	}
	orgWantErr(t, mustErr(e.svc.Authorize(e.ctx, owner, org.ID, "members", "invite")), thauth.EForbidden, "members:invite")
	if err := e.svc.EnsureConsole(e.ctx); err != nil {
		t.Fatalf("EnsureConsole upgrading: %v", err)
	}
	for _, perm := range [][2]string{{"members", "invite"}, {"security", "read"}} {
		if _, err := e.svc.Authorize(e.ctx, owner, org.ID, perm[0], perm[1]); err != nil {
			t.Errorf("owner %s:%s after the upgrade: %v", perm[0], perm[1], err)
		}
	}
	orgEngineAgrees(t, e, owner)
}

func mustErr[T any](_ T, err error) error { return err }

func TestEnsureConsoleConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const nodes = 4
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eng := engine.New(st, engine.Options{})
			errs[i] = New(st, eng, Options{}).EnsureConsole(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	cfg, err := st.LoadConfig(ctx, thauth.SystemProjectID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Roles) != len(thauth.OrgRoles)+len(thauth.OperatorRoles) {
		t.Errorf("system project has %d roles", len(cfg.Roles))
	}
	orgs, err := st.ListOrganizations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 0 {
		t.Errorf("ListOrganizations shows %d organizations; the system one must stay hidden", len(orgs))
	}
}

func TestAuthorizeRoleMatrix(t *testing.T) {
	e := newConsoleEnv(t)
	doc := orgModel(t)
	perms := orgRolePermissions(doc)
	owner := orgNewAccount(t, e, "owner@example.com", true)
	org := orgNewOrg(t, e, owner, "Acme")

	actors := map[string]Actor{"owner": owner}
	for _, role := range thauth.OrgRoles[1:] {
		a := orgNewAccount(t, e, role+"@example.com", true)
		orgAddMember(t, e, owner, org.ID, a, role)
		actors[role] = a
	}
	for _, role := range thauth.OperatorRoles {
		a := orgNewAccount(t, e, "op-"+role+"@example.com", true)
		if _, err := e.svc.GrantOperator(e.ctx, orgEmail(t, e, a), role, "cli:test"); err != nil {
			t.Fatalf("GrantOperator(%s): %v", role, err)
		}
		actors[role] = a
	}
	for _, r := range doc.Roles {
		a, ok := actors[r.Name]
		if !ok {
			t.Fatalf("no actor for role %s", r.Name)
		}
		operator := slices.Contains(thauth.OperatorRoles, r.Name)
		for _, p := range orgPermissions(doc) {
			feature, action, _ := strings.Cut(p, ":")
			acc, err := e.svc.Authorize(e.ctx, a, org.ID, feature, action)
			if got, want := err == nil, perms[r.Name][p]; got != want {
				t.Errorf("%s %s: allowed=%v (err %v), console.yaml says %v", r.Name, p, got, err, want)
				continue
			}
			if err != nil {
				if operator {
					orgWantErr(t, err, thauth.EForbidden, fmt.Sprintf("operator role %q does not allow %s", r.Name, p))
				} else {
					orgWantErr(t, err, thauth.EForbidden, fmt.Sprintf("role %q does not allow %s", r.Name, p), "default:deny")
				}
				continue
			}
			want := &Access{Role: r.Name, Reason: "role:" + r.Name}
			if operator {
				want = &Access{Operator: r.Name, Reason: "role:" + r.Name}
			}
			if diff := cmp.Diff(want, acc); diff != "" {
				t.Errorf("%s %s access (-want +got):\n%s", r.Name, p, diff)
			}
		}
	}
}

func TestAuthorizeDenialExplains(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	viewer := orgNewAccount(t, e, "viewer@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	orgAddMember(t, e, owner, org.ID, viewer, thauth.OrgRoleViewer)

	_, err := e.svc.Invite(e.ctx, viewer, org.ID, "friend@example.com", thauth.OrgRoleViewer)
	orgWantErr(t, err, thauth.EForbidden, `your role "viewer" does not allow members:invite in this organization (reason: default:deny)`)
	_, err = e.svc.CreateProject(e.ctx, viewer, org.ID, "Shop")
	orgWantErr(t, err, thauth.EForbidden, `"viewer"`, "projects:create", "default:deny")
	if e.mails(t, "friend@example.com") != nil {
		t.Error("a denied invitation was mailed")
	}
	// A denied member still reads what the role allows.
	if _, _, err := e.svc.GetOrganization(e.ctx, viewer, org.ID); err != nil {
		t.Errorf("viewer reading the organization: %v", err)
	}
}

func TestAuthorizeWithoutDeciderFailsClosed(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	svc := New(e.store, e.engine, Options{Now: e.clock.Now, Sealer: e.sealer}) // no Decide
	_, err := svc.Authorize(e.ctx, owner, org.ID, "organization", "read")
	orgWantErr(t, err, thauth.EForbidden, `role "owner" does not allow organization:read`, "reason: error")
	stranger := orgNewAccount(t, e, "stranger@example.com", false)
	_, err = svc.Authorize(e.ctx, stranger, org.ID, "organization", "read")
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
}

func TestAuthorizeCrossOrganization(t *testing.T) {
	e := newConsoleEnv(t)
	alice := orgNewAccount(t, e, "alice@example.com", true)
	bob := orgNewAccount(t, e, "bob@example.com", true)
	aliceOrg := orgNewOrg(t, e, alice, "Alice Inc")
	bobOrg := orgNewOrg(t, e, bob, "Bob Inc")
	bobProject, err := e.svc.CreateProject(e.ctx, bob, bobOrg.ID, "Secret")
	if err != nil {
		t.Fatal(err)
	}
	bobInv, err := e.svc.Invite(e.ctx, bob, bobOrg.ID, "carol@example.com", thauth.OrgRoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	missing := "0190e6c2-0000-7000-8000-00000000dead"

	// Every operation on Bob's organization answers Alice exactly as for an organization that
	// does not exist, and returns nothing.
	for _, orgID := range []string{bobOrg.ID, missing, thauth.SystemOrganizationID} {
		ops := map[string]func() (any, error){
			"GetOrganization": func() (any, error) { o, _, err := e.svc.GetOrganization(e.ctx, alice, orgID); return o, err },
			"UpdateOrganization": func() (any, error) {
				n := "Mine"
				return e.svc.UpdateOrganization(e.ctx, alice, orgID, &n, nil)
			},
			"ListMembers":     func() (any, error) { return e.svc.ListMembers(e.ctx, alice, orgID) },
			"ListProjects":    func() (any, error) { return e.svc.ListProjects(e.ctx, alice, orgID) },
			"CreateProject":   func() (any, error) { return e.svc.CreateProject(e.ctx, alice, orgID, "x") },
			"ListInvitations": func() (any, error) { return e.svc.ListInvitations(e.ctx, alice, orgID) },
			"Invite":          func() (any, error) { return e.svc.Invite(e.ctx, alice, orgID, "x@example.com", "viewer") },
			"RevokeInvitation": func() (any, error) {
				return nil, e.svc.RevokeInvitation(e.ctx, alice, orgID, bobInv.ID)
			},
			"ChangeMemberRole": func() (any, error) {
				return e.svc.ChangeMemberRole(e.ctx, alice, orgID, bob.AccountID, "viewer")
			},
			"RemoveMember":      func() (any, error) { return nil, e.svc.RemoveMember(e.ctx, alice, orgID, bob.AccountID) },
			"RemoveSelf":        func() (any, error) { return nil, e.svc.RemoveMember(e.ctx, alice, orgID, alice.AccountID) },
			"TransferOwnership": func() (any, error) { return nil, e.svc.TransferOwnership(e.ctx, alice, orgID, alice.AccountID) },
		}
		for name, op := range ops {
			v, err := op()
			orgWantErr(t, err, thauth.ENotFound, "organization not found")
			if msg := thauth.ErrorMessage(err); msg != "organization not found" {
				t.Errorf("%s on %s: message %q reveals more than a missing organization", name, orgID, msg)
			}
			if !isNil(v) {
				t.Errorf("%s on %s returned data: %+v", name, orgID, v)
			}
		}
	}
	for _, projectID := range []string{bobProject.ID, missing, thauth.SystemProjectID} {
		p, err := e.svc.AuthorizeProject(e.ctx, alice, projectID, "keys", "read")
		orgWantErr(t, err, thauth.ENotFound, "project not found")
		if p != nil {
			t.Errorf("AuthorizeProject(%s) returned %+v", projectID, p)
		}
	}
	// Alice's own organization still works, and Bob's data did not change.
	if p, err := e.svc.AuthorizeProject(e.ctx, bob, bobProject.ID, "keys", "create"); err != nil || p.ID != bobProject.ID {
		t.Errorf("Bob on his project: %v, %v", p, err)
	}
	if _, _, err := e.svc.GetOrganization(e.ctx, alice, aliceOrg.ID); err != nil {
		t.Errorf("Alice on her organization: %v", err)
	}
	members, err := e.store.ListMembers(e.ctx, bobOrg.ID)
	if err != nil || len(members) != 1 || members[0].AccountID != bob.AccountID || members[0].Role != "owner" {
		t.Errorf("Bob's members changed: %+v %v", members, err)
	}
	orgEngineAgrees(t, e, alice, bob)
}

// isNil reports whether v is nil or a nil pointer or slice in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch x := v.(type) {
	case *thauth.Organization:
		return x == nil
	case *thauth.Project:
		return x == nil
	case *thauth.Invitation:
		return x == nil
	case *thauth.Membership:
		return x == nil
	case []thauth.Member:
		return x == nil
	case []thauth.Project:
		return x == nil
	case []thauth.Invitation:
		return x == nil
	}
	return false
}

func TestAuthorizeTokenScopes(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", true)
	org := orgNewOrg(t, e, owner, "Acme")
	readOnly := Actor{AccountID: owner.AccountID, Via: ViaToken, TokenID: "t1", MFA: true, Scopes: []string{thauth.TokenScopeRead}}
	readWrite := readOnly
	readWrite.Scopes = []string{thauth.TokenScopeRead, thauth.TokenScopeWrite}

	if _, err := e.svc.ListMembers(e.ctx, readOnly, org.ID); err != nil {
		t.Errorf("read-only token reading: %v", err)
	}
	_, err := e.svc.CreateProject(e.ctx, readOnly, org.ID, "Shop")
	orgWantErr(t, err, thauth.EForbidden, "this access token is read-only")
	_, err = e.svc.CreateOrganization(e.ctx, readOnly, "Other")
	orgWantErr(t, err, thauth.EForbidden, "this access token is read-only")
	_, err = e.svc.Authorize(e.ctx, readOnly, org.ID, "keys", "revoke")
	orgWantErr(t, err, thauth.EForbidden, "this access token is read-only")
	if _, err := e.svc.CreateProject(e.ctx, readWrite, org.ID, "Shop"); err != nil {
		t.Errorf("read-write token writing: %v", err)
	}
	// A read-only token of an outsider learns nothing either.
	outsider := orgNewAccount(t, e, "outsider@example.com", true)
	_, err = e.svc.CreateProject(e.ctx, Actor{AccountID: outsider.AccountID, Via: ViaToken, Scopes: []string{"read"}}, org.ID, "x")
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
}

func TestRequireMFA(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	dev := orgNewAccount(t, e, "dev@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	orgAddMember(t, e, owner, org.ID, dev, thauth.OrgRoleDeveloper)

	on := true
	_, err := e.svc.UpdateOrganization(e.ctx, owner, org.ID, nil, &on)
	orgWantErr(t, err, thauth.EForbidden, "two-factor authentication")

	owner.MFA = true // the owner enrolled and signed in again with the second factor
	updated, err := e.svc.UpdateOrganization(e.ctx, owner, org.ID, nil, &on)
	if err != nil || !updated.RequireMFA {
		t.Fatalf("UpdateOrganization(require_mfa): %+v %v", updated, err)
	}
	_, err = e.svc.ListProjects(e.ctx, dev, org.ID)
	orgWantErr(t, err, thauth.EForbidden, "this organization requires two-factor authentication")
	_, err = e.svc.AuthorizeProject(e.ctx, dev, mustProject(t, e, owner, org.ID).ID, "keys", "read")
	orgWantErr(t, err, thauth.EForbidden, "this organization requires two-factor authentication")
	dev.MFA = true
	if _, err := e.svc.ListProjects(e.ctx, dev, org.ID); err != nil {
		t.Errorf("member with MFA: %v", err)
	}
	// The requirement does not reveal the organization to outsiders.
	outsider := orgNewAccount(t, e, "outsider@example.com", false)
	_, err = e.svc.ListProjects(e.ctx, outsider, org.ID)
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	// A member without MFA may still leave.
	dev.MFA = false
	if err := e.svc.RemoveMember(e.ctx, dev, org.ID, dev.AccountID); err != nil {
		t.Errorf("leaving an MFA-only organization without MFA: %v", err)
	}
	var last thauth.AuditEntry
	for _, a := range orgAudit(t, e, org.ID) {
		if a.Action == "org.updated" {
			last = a
		}
	}
	if last.Data != `{"require_mfa":"true"}` || last.ActorID != owner.AccountID {
		t.Errorf("org.updated audit entry: %+v", last)
	}
}

func mustProject(t testing.TB, e *consoleEnv, a Actor, orgID string) *thauth.Project {
	t.Helper()
	p, err := e.svc.CreateProject(e.ctx, a, orgID, "Project")
	if err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	return p
}

// TestConsolePostgres runs what depends on transactions against PostgreSQL, where writers
// really run at once: nodes starting together, owners stepping down together, one
// invitation accepted twice at the same moment.
func TestConsolePostgres(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Migrated(t)
	const nodes = 4
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = New(st, engine.New(st, engine.Options{}), Options{}).EnsureConsole(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d EnsureConsole: %v", i, err)
		}
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
	ks, ok := any(st).(seal.KeyStore)
	if !ok {
		t.Fatal("the PostgreSQL store is not a seal.KeyStore")
	}
	sl, err := seal.New(ctx, ks, keys, seal.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(st, engine.Options{Now: c.Now})
	svc := New(st, eng, Options{Now: c.Now, Sealer: sl, PublicURL: "https://console.test",
		Decide: func(projectID string, req *thauth.CheckRequest, now time.Time) thauth.Decision {
			if snap := eng.Snapshot(projectID); snap != nil {
				return snap.Check(req, now)
			}
			return thauth.ErrorDecision
		}})
	if err := svc.EnsureConsole(ctx); err != nil {
		t.Fatal(err)
	}
	account := func(email string) Actor {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		now := c.Now()
		if err := st.CreateAccount(ctx, &thauth.Account{ID: id, Email: email, PasswordHash: "x", EmailVerifiedAt: &now,
			CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		return Actor{AccountID: id, Via: ViaSession}
	}
	a, b := account("a@example.com"), account("b@example.com")
	org, err := svc.CreateOrganization(ctx, a, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Invite(ctx, a, org.ID, "b@example.com", "owner"); err != nil {
		t.Fatal(err)
	}
	mails, err := st.ListMail(ctx, 10)
	if err != nil || len(mails) != 1 {
		t.Fatalf("outbox: %+v %v", mails, err)
	}
	payload, err := sl.Open(ctx, MailPurpose, mails[0].ID, mails[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]string
	if err := json.Unmarshal(payload, &data); err != nil {
		t.Fatal(err)
	}
	token := tokenOf(t, data["link"])

	// The same link accepted twice at once: exactly one acceptance.
	accErrs := make([]error, 2)
	for i := range accErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, accErrs[i] = svc.AcceptInvitation(ctx, b, token)
		}()
	}
	wg.Wait()
	if (accErrs[0] == nil) == (accErrs[1] == nil) {
		t.Fatalf("concurrent acceptances: %v", accErrs)
	}

	// Both owners step down at once: exactly one may.
	stepErrs := make([]error, 2)
	for i, o := range []Actor{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, stepErrs[i] = svc.ChangeMemberRole(ctx, o, org.ID, o.AccountID, "admin")
		}()
	}
	wg.Wait()
	if (stepErrs[0] == nil) == (stepErrs[1] == nil) {
		t.Fatalf("concurrent step-downs: %v", stepErrs)
	}
	members, err := st.ListMembers(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	owners := 0
	for _, m := range members {
		if m.Role == "owner" {
			owners++
		}
		// The engine agrees with the table.
		d := eng.Snapshot(thauth.SystemProjectID).Check(&thauth.CheckRequest{Subject: m.AccountID,
			Feature: "members", Action: "manage_owners", Tenant: org.ID}, c.Now())
		if d.Allowed != (m.Role == "owner") {
			t.Errorf("engine says %+v for a member with role %s", d, m.Role)
		}
	}
	if len(members) != 2 || owners != 1 {
		t.Errorf("members after the race: %+v", members)
	}
}
