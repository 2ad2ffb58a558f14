package manage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	_ "modernc.org/sqlite" // the driver internal/sqlite uses, to tamper with its file

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

// auditChain returns every entry of chain, oldest first.
func auditChain(t testing.TB, st thauth.AuditStore, chain string) []thauth.AuditEntry {
	t.Helper()
	var out []thauth.AuditEntry
	err := st.ScanAudit(context.Background(), chain, func(e *thauth.AuditEntry) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanAudit(%q): %v", chain, err)
	}
	return out
}

// auditData decodes an entry's details.
func auditData(t testing.TB, e *thauth.AuditEntry) map[string]string {
	t.Helper()
	m := map[string]string{}
	if e.Data != "" {
		if err := json.Unmarshal([]byte(e.Data), &m); err != nil {
			t.Fatalf("entry %d data %q: %v", e.Seq, e.Data, err)
		}
	}
	return m
}

// auditSummary is what the coverage tests compare of an entry.
type auditSummary struct {
	Action, ActorType, ActorID, Target, IP, UserAgent string
	Data                                              map[string]string
}

func summarize(t testing.TB, es []thauth.AuditEntry) []auditSummary {
	t.Helper()
	out := make([]auditSummary, len(es))
	for i := range es {
		e := &es[i]
		out[i] = auditSummary{e.Action, e.ActorType, e.ActorID, e.Target, e.IP, e.UserAgent, auditData(t, e)}
	}
	return out
}

// noSecrets fails when any field of any entry contains one of the secrets.
func noSecrets(t testing.TB, es []thauth.AuditEntry, secrets ...string) {
	t.Helper()
	for _, e := range es {
		fields := []string{e.ID, e.ActorType, e.ActorID, e.OrganizationID, e.AccountID, e.Action, e.Target, e.IP, e.UserAgent, e.Data}
		for _, s := range secrets {
			for _, f := range fields {
				if s != "" && strings.Contains(f, s) {
					t.Errorf("audit entry %d (%s) holds a secret: %q", e.Seq, e.Action, f)
				}
			}
		}
	}
}

func TestAuditInitEntries(t *testing.T) {
	e := newEnv(t)
	org := e.init.Organization.ID
	es := auditChain(t, e.store, org)
	keys, err := e.store.ListAPIKeys(e.ctx, e.project)
	if err != nil {
		t.Fatal(err)
	}
	keyID := map[string]string{}
	for _, k := range keys {
		keyID[k.Name] = k.ID
	}
	sys := thauth.ActorSystem
	want := []auditSummary{
		{AuditOrgCreated, sys, "", org, "", "", map[string]string{"name": "Acme"}},
		{AuditProjectCreated, sys, "", e.project, "", "", map[string]string{"name": "Shop"}},
		{AuditKeyCreated, sys, "", keyID["admin"], "", "", map[string]string{"project_id": e.project, "name": "admin", "scopes": "admin"}},
		{AuditKeyCreated, sys, "", keyID["decisions"], "", "", map[string]string{"project_id": e.project, "name": "decisions",
			"scopes": "decisions:read subjects:write"}},
	}
	if diff := cmp.Diff(want, summarize(t, es)); diff != "" {
		t.Errorf("Init's audit entries (-want +got):\n%s", diff)
	}
	for i, en := range es {
		if en.Seq != int64(i+1) || en.OrganizationID != org || !en.At.Equal(testStart) {
			t.Errorf("entry %d: seq %d, organization %q, at %v", i, en.Seq, en.OrganizationID, en.At)
		}
	}
	noSecrets(t, es, e.init.AdminKey, e.init.DecisionsKey)

	// The CLI names its user.
	ctx := WithAuditActor(e.ctx, AuditActor{Type: thauth.ActorCLI, ID: "alice"})
	res, err := e.svc.Init(ctx, "Beta", "App")
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range auditChain(t, e.store, res.Organization.ID) {
		if en.ActorType != thauth.ActorCLI || en.ActorID != "alice" {
			t.Errorf("%s: actor %s %q, want cli alice", en.Action, en.ActorType, en.ActorID)
		}
	}
}

func TestAuditManagementChanges(t *testing.T) {
	e := newEnv(t)
	org := e.init.Organization.ID
	actor := AuditActor{Type: thauth.ActorAPIKey, ID: "key-1", IP: "198.51.100.7", UserAgent: "deploy/1.0"}
	ctx := WithAuditActor(e.ctx, actor)
	start := len(auditChain(t, e.store, org))
	newEntries := func() []thauth.AuditEntry {
		t.Helper()
		es := auditChain(t, e.store, org)
		out := es[start:]
		start = len(es)
		return out
	}
	one := func(what string) auditSummary {
		t.Helper()
		es := newEntries()
		if len(es) != 1 {
			t.Fatalf("%s: %d new audit entries, want 1: %+v", what, len(es), summarize(t, es))
		}
		return summarize(t, es)[0]
	}
	entry := func(action, target string, data map[string]string) auditSummary {
		return auditSummary{action, actor.Type, actor.ID, target, actor.IP, actor.UserAgent, data}
	}

	const doc = `
version: 1
features:
  - {name: billing, actions: [read, refund]}
  - {name: reports, actions: [read]}
roles:
  - name: support
    permissions: [{feature: billing, action: read}]
subjects:
  - id: alice
    type: user
    roles: [{role: support}]
`
	res, err := e.svc.ApplyConfig(ctx, e.project, []byte(doc), FormatYAML, false)
	if err != nil {
		t.Fatalf("%v %+v", err, problemsOf(err))
	}
	counts := func(kv ...string) map[string]string {
		m := map[string]string{"project_id": e.project, "version": res.Version, "revision": itoa(int(res.Revision))}
		for _, k := range []string{"features", "actions", "roles", "subjects"} {
			for _, c := range []string{"created", "updated", "deleted"} {
				m[k+"_"+c] = "0"
			}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	if diff := cmp.Diff(entry(AuditConfigApplied, e.project, counts("features_created", "2", "roles_created", "1",
		"subjects_created", "1")), one("apply")); diff != "" {
		t.Errorf("config.applied (-want +got):\n%s", diff)
	}

	// A dry run and an apply that changes nothing write nothing.
	if _, err := e.svc.ApplyConfig(ctx, e.project, []byte(doc), FormatYAML, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ApplyConfig(ctx, e.project, []byte(doc), FormatYAML, false); err != nil {
		t.Fatal(err)
	}
	if es := newEntries(); len(es) != 0 {
		t.Errorf("dry run and no-op apply wrote %d entries", len(es))
	}

	// Updates and deletions are counted by kind (the subject loses its role by cascade).
	res, err = e.svc.ApplyConfig(ctx, e.project, []byte(`
version: 1
features:
  - {name: billing, description: Money, actions: [read]}
roles: []
`), FormatYAML, false)
	if err != nil {
		t.Fatalf("%v %+v", err, problemsOf(err))
	}
	if diff := cmp.Diff(entry(AuditConfigApplied, e.project, counts("features_updated", "1", "features_deleted", "1",
		"actions_deleted", "1", "roles_deleted", "1", "subjects_updated", "1")), one("second apply")); diff != "" {
		t.Errorf("config.applied (-want +got):\n%s", diff)
	}

	expires := testStart.Add(48 * time.Hour)
	key, token, err := e.svc.CreateKey(ctx, e.project, KeyRequest{Name: "CI", Scopes: []string{"subjects:write", "admin"}, ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	keyData := map[string]string{"project_id": e.project, "name": "CI", "scopes": "subjects:write admin",
		"expires_at": "2026-06-03T12:00:00Z"}
	if diff := cmp.Diff(entry(AuditKeyCreated, key.ID, keyData), one("create key")); diff != "" {
		t.Errorf("key.created (-want +got):\n%s", diff)
	}
	if err := e.svc.RevokeKey(ctx, e.project, key.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entry(AuditKeyRevoked, key.ID, keyData), one("revoke key")); diff != "" {
		t.Errorf("key.revoked (-want +got):\n%s", diff)
	}
	if err := e.svc.RevokeKey(ctx, e.project, key.ID); err != nil {
		t.Fatal(err)
	}
	if es := newEntries(); len(es) != 0 {
		t.Errorf("revoking a revoked key wrote %d entries", len(es))
	}

	cfg := e.config(t)
	billing := cfg.Features[0].ID
	res2, err := e.svc.ApplyConfig(ctx, e.project, []byte(`
version: 1
features:
  - {name: billing, description: Money, actions: [read]}
roles:
  - {name: a, permissions: []}
  - {name: b, permissions: []}
`), FormatYAML, false)
	if err != nil || res2 == nil {
		t.Fatal(err)
	}
	newEntries()
	cfg = e.config(t)
	roleA, roleB := cfg.Roles[0].ID, cfg.Roles[1].ID
	tenant := "t1"
	roles := []string{roleA, roleB, roleA}
	perms := []UpsertPermission{{FeatureID: billing, Action: "read", Effect: "deny"}}
	if _, err := e.svc.UpsertSubject(ctx, e.project, UpsertRequest{SubjectID: "bob", SubjectType: "user", TenantID: &tenant,
		RoleIDs: &roles, Permissions: &perms}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entry(AuditSubjectUpsert, "bob", map[string]string{"project_id": e.project, "subject_type": "user",
		"created": "true", "scope": "tenant", "tenant": "t1", "role_ids": roleA + "," + roleB, "role_count": "2",
		"override_count": "1"}), one("upsert")); diff != "" {
		t.Errorf("subject.upserted (-want +got):\n%s", diff)
	}
	if _, err := e.svc.UpsertSubject(ctx, e.project, UpsertRequest{SubjectID: "bob", SubjectType: "user"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(entry(AuditSubjectUpsert, "bob", map[string]string{"project_id": e.project, "subject_type": "user",
		"created": "false", "scope": "global"}), one("second upsert")); diff != "" {
		t.Errorf("subject.upserted (-want +got):\n%s", diff)
	}
	// A rejected upsert writes nothing.
	bad := []string{"nope"}
	if _, err := e.svc.UpsertSubject(ctx, e.project, UpsertRequest{SubjectID: "bob", SubjectType: "user", RoleIDs: &bad}); err == nil {
		t.Fatal("unknown role accepted")
	}
	if es := newEntries(); len(es) != 0 {
		t.Errorf("a rejected upsert wrote %d entries", len(es))
	}

	all := auditChain(t, e.store, org)
	noSecrets(t, all, token, e.init.AdminKey, e.init.DecisionsKey, key.LookupID)
	rep, err := VerifyAudit(e.ctx, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Entries != int64(len(all)) {
		t.Errorf("VerifyAudit = %+v, want OK with %d entries", rep, len(all))
	}
}

// auditFailingStore fails AppendAudit inside transactions.
type auditFailingStore struct{ thauth.Store }

func (s *auditFailingStore) Tx(ctx context.Context, fn func(context.Context, thauth.Data) error) error {
	return s.Store.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		return fn(ctx, &auditFailingData{Data: tx})
	})
}

type auditFailingData struct{ thauth.Data }

func (d *auditFailingData) AppendAudit(context.Context, *thauth.AuditEntry) error { return errInjected }

// TestAuditSameTransaction shows that a change whose audit entry cannot be written does not
// happen.
func TestAuditSameTransaction(t *testing.T) {
	e := newEnv(t)
	svc := New(&auditFailingStore{Store: e.store}, e.engine, Options{Now: e.clock.Now})
	rev := e.revision(t)
	keysBefore, _ := e.store.ListAPIKeys(e.ctx, e.project)
	failed := func(op string, err error) {
		t.Helper()
		if thauth.ErrorCodeOf(err) != thauth.EInternal {
			t.Errorf("%s without its audit entry: %v, want an internal error", op, err)
		}
	}
	_, _, err := svc.CreateKey(e.ctx, e.project, KeyRequest{Name: "k", Scopes: []string{"admin"}})
	failed("CreateKey", err)
	_, err = svc.ApplyConfig(e.ctx, e.project, []byte("version: 1\nfeatures: [{name: f, actions: [a]}]\n"), FormatYAML, false)
	failed("ApplyConfig", err)
	_, err = svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: "s", SubjectType: "user"})
	failed("UpsertSubject", err)
	failed("RevokeKey", svc.RevokeKey(e.ctx, e.project, keysBefore[0].ID))
	_, err = svc.Init(e.ctx, "X", "Y")
	failed("Init", err)
	keysAfter, _ := e.store.ListAPIKeys(e.ctx, e.project)
	if e.revision(t) != rev || len(keysAfter) != len(keysBefore) || keysAfter[0].RevokedAt != nil {
		t.Errorf("a change without its audit entry was committed")
	}
	orgs, _ := e.store.ListOrganizations(e.ctx)
	if len(orgs) != 1 {
		t.Errorf("%d organizations after a failed Init, want 1", len(orgs))
	}
}

// auditDB opens the SQLite database file at path directly, as someone tampering with it
// would.
func auditDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rehash rewrites the hash of the entry (chain, seq) to match its content, as a careful
// tamperer would.
func rehash(t testing.TB, db *sql.DB, st thauth.AuditStore, chain string, seq int64) {
	t.Helper()
	for _, en := range auditChain(t, st, chain) {
		if en.Seq == seq {
			mustExec(t, db, `UPDATE audit_log SET hash = ? WHERE chain = ? AND seq = ?`, thauth.AuditHash(&en), chain, seq)
			return
		}
	}
	t.Fatalf("no entry %d", seq)
}

type problemAt struct {
	Kind string
	Seq  int64
}

func problemsAt(r *AuditReport) []problemAt {
	out := []problemAt{}
	for _, p := range r.Problems {
		out = append(out, problemAt{p.Kind, p.Seq})
	}
	return out
}

// TestVerifyAuditTampering tampers with the SQLite file the way someone with access to it
// could and checks that VerifyAudit reports exactly what was done.
func TestVerifyAuditTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB, st thauth.AuditStore, chain string)
		want   []problemAt
	}{
		{"intact", func(*testing.T, *sql.DB, thauth.AuditStore, string) {}, []problemAt{}},
		{"edited", func(t *testing.T, db *sql.DB, _ thauth.AuditStore, chain string) {
			mustExec(t, db, `UPDATE audit_log SET data = '{"name":"Evil"}' WHERE chain = ? AND seq = 2`, chain)
		}, []problemAt{{AuditEdited, 2}}},
		{"edited and rehashed", func(t *testing.T, db *sql.DB, st thauth.AuditStore, chain string) {
			mustExec(t, db, `UPDATE audit_log SET actor_id = 'someone-else' WHERE chain = ? AND seq = 3`, chain)
			rehash(t, db, st, chain, 3)
		}, []problemAt{{AuditBrokenLink, 4}}},
		{"edited last, rehashed", func(t *testing.T, db *sql.DB, st thauth.AuditStore, chain string) {
			mustExec(t, db, `UPDATE audit_log SET target = 'x' WHERE chain = ? AND seq = 6`, chain)
			rehash(t, db, st, chain, 6)
		}, []problemAt{{AuditHeadMismatch, 6}}},
		{"deleted in the middle", func(t *testing.T, db *sql.DB, _ thauth.AuditStore, chain string) {
			mustExec(t, db, `DELETE FROM audit_log WHERE chain = ? AND seq = 3`, chain)
		}, []problemAt{{AuditMissing, 4}}},
		{"deleted several", func(t *testing.T, db *sql.DB, _ thauth.AuditStore, chain string) {
			mustExec(t, db, `DELETE FROM audit_log WHERE chain = ? AND seq IN (2, 3, 4)`, chain)
		}, []problemAt{{AuditMissing, 5}}},
		{"deleted the last", func(t *testing.T, db *sql.DB, _ thauth.AuditStore, chain string) {
			mustExec(t, db, `DELETE FROM audit_log WHERE chain = ? AND seq = 6`, chain)
		}, []problemAt{{AuditTruncated, 6}}},
		{"deleted the last two", func(t *testing.T, db *sql.DB, _ thauth.AuditStore, chain string) {
			mustExec(t, db, `DELETE FROM audit_log WHERE chain = ? AND seq >= 5`, chain)
		}, []problemAt{{AuditTruncated, 5}}},
		{"reordered", func(t *testing.T, db *sql.DB, _ thauth.AuditStore, chain string) {
			mustExec(t, db, `UPDATE audit_log SET seq = -2 WHERE chain = ? AND seq = 2`, chain)
			mustExec(t, db, `UPDATE audit_log SET seq = 2 WHERE chain = ? AND seq = 3`, chain)
			mustExec(t, db, `UPDATE audit_log SET seq = 3 WHERE chain = ? AND seq = -2`, chain)
		}, []problemAt{{AuditEdited, 2}, {AuditBrokenLink, 2}, {AuditEdited, 3}, {AuditBrokenLink, 3}, {AuditBrokenLink, 4}}},
		{"reordered and rehashed", func(t *testing.T, db *sql.DB, st thauth.AuditStore, chain string) {
			mustExec(t, db, `UPDATE audit_log SET seq = -2 WHERE chain = ? AND seq = 2`, chain)
			mustExec(t, db, `UPDATE audit_log SET seq = 2 WHERE chain = ? AND seq = 3`, chain)
			mustExec(t, db, `UPDATE audit_log SET seq = 3 WHERE chain = ? AND seq = -2`, chain)
			rehash(t, db, st, chain, 2)
			rehash(t, db, st, chain, 3)
		}, []problemAt{{AuditBrokenLink, 2}, {AuditBrokenLink, 3}, {AuditBrokenLink, 4}}},
		{"inserted", func(t *testing.T, db *sql.DB, st thauth.AuditStore, chain string) {
			// A forged entry 3, well hashed and chained to entry 2; the rest renumbered.
			mustExec(t, db, `UPDATE audit_log SET seq = seq + 100 WHERE chain = ? AND seq >= 3`, chain)
			mustExec(t, db, `UPDATE audit_log SET seq = seq - 99 WHERE chain = ? AND seq >= 103`, chain)
			es := auditChain(t, st, chain)
			forged := es[1]
			forged.ID, forged.Seq, forged.Action, forged.PrevHash = "forged", 3, "key.revoked", es[1].Hash
			forged.Hash = thauth.AuditHash(&forged)
			mustExec(t, db, `INSERT INTO audit_log (id, chain, seq, at, actor_type, action, prev_hash, hash)
				SELECT ?, chain, 3, at, actor_type, ?, ?, ? FROM audit_log WHERE chain = ? AND seq = 2`,
				forged.ID, forged.Action, forged.PrevHash, forged.Hash, chain)
		}, []problemAt{{AuditEdited, 3}, {AuditEdited, 4}, {AuditBrokenLink, 4}, {AuditEdited, 5}, {AuditEdited, 6},
			{AuditHeadMismatch, 6}, {AuditEdited, 7}, {AuditBeyondHead, 7}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			org := e.init.Organization.ID
			if _, _, err := e.svc.CreateKey(e.ctx, e.project, KeyRequest{Name: "five", Scopes: []string{"admin"}}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.svc.CreateKey(e.ctx, e.project, KeyRequest{Name: "six", Scopes: []string{"admin"}}); err != nil {
				t.Fatal(err)
			}
			other, err := e.svc.Init(e.ctx, "Other", "P") // a second, untouched chain
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, auditDB(t, e.store.Path()), e.store, org)
			rep, err := VerifyAudit(e.ctx, e.store, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, problemsAt(rep)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\n%+v", diff, rep.Problems)
			}
			if rep.OK() != (len(tc.want) == 0) {
				t.Errorf("OK() = %v", rep.OK())
			}
			for _, p := range rep.Problems {
				if p.Chain != org || p.Message == "" {
					t.Errorf("problem %+v: wrong chain or no message", p)
				}
			}
			if len(rep.Chains) != 2 {
				t.Fatalf("%d chains, want 2", len(rep.Chains))
			}
			// The untouched chain alone passes.
			one, err := VerifyAudit(e.ctx, e.store, []string{other.Organization.ID})
			if err != nil || !one.OK() || one.Entries != 4 || len(one.Chains) != 1 {
				t.Errorf("VerifyAudit(other) = %+v, %v", one, err)
			}
		})
	}
}

func TestVerifyAuditHeadDeleted(t *testing.T) {
	e := newEnv(t)
	org := e.init.Organization.ID
	mustExec(t, auditDB(t, e.store.Path()), `DELETE FROM audit_chains WHERE chain = ?`, org)
	rep, err := VerifyAudit(e.ctx, e.store, []string{org})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]problemAt{{AuditNoHead, 0}}, problemsAt(rep)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if _, err := VerifyAudit(e.ctx, e.store, []string{"no-such-org"}); thauth.ErrorCodeOf(err) != thauth.ENotFound {
		t.Errorf("VerifyAudit(unknown chain) = %v, want not found", err)
	}
}

func TestVerifyAuditAfterPruning(t *testing.T) {
	e := newEnv(t)
	org := e.init.Organization.ID
	e.clock.Set(testStart.Add(24 * time.Hour))
	for _, name := range []string{"a", "b"} {
		if _, _, err := e.svc.CreateKey(e.ctx, e.project, KeyRequest{Name: name, Scopes: []string{"admin"}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.svc.PruneAuditLog(e.ctx, testStart.Add(time.Hour))
	if err != nil || n != 4 {
		t.Fatalf("PruneAuditLog = %d, %v; want the 4 entries of Init", n, err)
	}
	rep, err := VerifyAudit(e.ctx, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []AuditChainReport{{Chain: org, Entries: 2, FirstSeq: 5, LastSeq: 6, HeadSeq: 6, Pruned: true}}
	if diff := cmp.Diff(want, withoutHeadHashes(t, rep.Chains)); diff != "" || !rep.OK() {
		t.Errorf("after pruning (-want +got):\n%s\nproblems %+v", diff, rep.Problems)
	}
	// Pruning does not hide a deletion after the first retained entry.
	mustExec(t, auditDB(t, e.store.Path()), `DELETE FROM audit_log WHERE chain = ? AND seq = 6`, org)
	if rep, _ := VerifyAudit(e.ctx, e.store, nil); rep.OK() {
		t.Error("deleting the last entry after pruning went unnoticed")
	}

	// Every entry pruned: the chain verifies, empty.
	if _, err := e.svc.PruneAuditLog(e.ctx, testStart.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rep, err = VerifyAudit(e.ctx, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []AuditChainReport{{Chain: org, HeadSeq: 6, Pruned: true}}
	if diff := cmp.Diff(want, withoutHeadHashes(t, rep.Chains)); diff != "" || !rep.OK() {
		t.Errorf("after pruning everything (-want +got):\n%s\nproblems %+v", diff, rep.Problems)
	}
}

// withoutHeadHashes checks that every chain has a head hash and clears them (their values
// are random) for comparison.
func withoutHeadHashes(t testing.TB, cs []AuditChainReport) []AuditChainReport {
	t.Helper()
	out := make([]AuditChainReport, len(cs))
	for i, c := range cs {
		if len(c.HeadHash) != 64 {
			t.Errorf("chain %q: head hash %q", c.Chain, c.HeadHash)
		}
		c.HeadHash = ""
		out[i] = c
	}
	return out
}

func TestPruneAuditLogBatches(t *testing.T) {
	e := newEnv(t)
	const n = 2*pruneAuditBatch + 7
	err := e.store.Tx(e.ctx, func(ctx context.Context, tx thauth.Data) error {
		for range n {
			if err := e.svc.auditChange(ctx, tx, "bulk", "test.entry", "", nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(testStart.Add(time.Hour))
	if _, _, err := e.svc.CreateKey(e.ctx, e.project, KeyRequest{Name: "kept", Scopes: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.PruneAuditLog(e.ctx, testStart.Add(time.Minute))
	if err != nil || got != n+4 {
		t.Fatalf("PruneAuditLog = %d, %v; want %d", got, err, n+4)
	}
	if es := auditChain(t, e.store, e.init.Organization.ID); len(es) != 1 || es[0].Action != AuditKeyCreated {
		t.Errorf("kept %+v, want the newer key.created", es)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.svc.PruneAuditLog(ctx, testStart.Add(2*time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("PruneAuditLog(canceled) = %v", err)
	}
}

// recomputeHash is the algorithm of docs/audit-log.md, written from the documentation over
// an exported JSON line (not with thauth.AuditHash), as a customer would.
func recomputeHash(t testing.TB, line []byte) (got, want string) {
	t.Helper()
	var rec map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string {
		s, ok := rec[k].(string)
		if !ok {
			t.Fatalf("field %q is %T, want a string", k, rec[k])
		}
		return s
	}
	h := sha256.New()
	u64 := func(v uint64) { h.Write(binary.BigEndian.AppendUint64(nil, v)) }
	field := func(s string) { u64(uint64(len(s))); h.Write([]byte(s)) }
	field("thauth-audit-v1")
	field(str("id"))
	field(str("chain"))
	seq, err := rec["seq"].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	u64(uint64(seq))
	at, err := time.Parse(time.RFC3339Nano, str("at"))
	if err != nil {
		t.Fatal(err)
	}
	u64(uint64(at.UnixMicro()))
	for _, k := range []string{"actor_type", "actor_id", "organization_id", "account_id", "action", "target", "ip", "user_agent", "data"} {
		field(str(k))
	}
	prev, err := hex.DecodeString(str("prev_hash"))
	if err != nil {
		t.Fatal(err)
	}
	field(string(prev))
	return hex.EncodeToString(h.Sum(nil)), str("hash")
}

func TestAuditExportVerifies(t *testing.T) {
	e := newEnv(t)
	ctx := WithAuditActor(e.ctx, AuditActor{Type: thauth.ActorAPIKey, ID: "k", IP: "2001:db8::1", UserAgent: "curl/8 \"quoted\" <tag> & é \xff\xfe"})
	e.clock.Set(testStart.Add(1234567 * time.Microsecond))
	if _, _, err := e.svc.CreateKey(ctx, e.project, KeyRequest{Name: "naïve <key> \"q\"", Scopes: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	org := e.init.Organization.ID
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := ExportAuditChain(e.ctx, e.store, org, func(en *thauth.AuditEntry) error {
		rec := NewAuditRecord(en)
		return enc.Encode(&rec)
	}); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	var prev string
	for i, l := range lines {
		got, want := recomputeHash(t, l)
		if got != want {
			t.Errorf("line %d: recomputed hash %s, exported %s", i+1, got, want)
		}
		var rec AuditRecord
		if err := json.Unmarshal(l, &rec); err != nil {
			t.Fatal(err)
		}
		if i > 0 && rec.PrevHash != prev {
			t.Errorf("line %d: prev_hash %s, want the previous line's hash %s", i+1, rec.PrevHash, prev)
		}
		prev = rec.Hash
	}
	rep, err := VerifyAuditExport(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Entries != 5 || len(rep.Chains) != 1 || rep.Chains[0].HeadSeq != 5 || rep.Chains[0].HeadHash != prev {
		t.Errorf("VerifyAuditExport = %+v", rep)
	}

	// Tampered exports.
	tamper := func(i int, from, to string) []byte {
		ls := make([][]byte, len(lines))
		copy(ls, lines)
		ls[i] = bytes.Replace(ls[i], []byte(from), []byte(to), 1)
		if bytes.Equal(ls[i], lines[i]) {
			t.Fatalf("line %d has no %q", i+1, from)
		}
		return bytes.Join(ls, []byte("\n"))
	}
	drop := func(i int) []byte {
		var ls [][]byte
		for j, l := range lines {
			if j != i {
				ls = append(ls, l)
			}
		}
		return bytes.Join(ls, []byte("\n"))
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want []problemAt
	}{
		{"edited", tamper(4, `naïve`, `naive`), []problemAt{{AuditEdited, 5}}},
		{"deleted", drop(2), []problemAt{{AuditMissing, 4}}},
		{"reordered", bytes.Join([][]byte{lines[0], lines[2], lines[1], lines[3], lines[4]}, []byte("\n")),
			[]problemAt{{AuditMissing, 3}, {AuditOutOfOrder, 2}, {AuditBrokenLink, 4}}},
	} {
		rep, err := VerifyAuditExport(bytes.NewReader(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, problemsAt(rep)); diff != "" {
			t.Errorf("%s: problems (-want +got):\n%s", tc.name, diff)
		}
	}
	if _, err := VerifyAuditExport(strings.NewReader("{\"id\":1}\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a malformed line: %v", err)
	}
}

func TestListAuditLog(t *testing.T) {
	e := newConsoleEnv(t)
	tm := orgNewTeam(t, e)
	org := tm.org.ID
	// org.created, then invitation.created and invitation.accepted (or member.added) for
	// each of the four members.
	all, err := e.svc.ListAuditLog(e.ctx, tm.owner, org, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 5 || all[len(all)-1].Action != "org.created" {
		t.Fatalf("listing: %d entries, oldest %q", len(all), all[len(all)-1].Action)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq >= all[i-1].Seq {
			t.Fatalf("not newest first")
		}
	}

	// Pages of 3 through the cursor cover everything once.
	var paged []int64
	before := int64(0)
	for {
		page, err := e.svc.ListAuditLog(e.ctx, tm.admin, org, AuditQuery{Before: before, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range page {
			paged = append(paged, en.Seq)
		}
		if len(page) < 3 {
			break
		}
		before = page[len(page)-1].Seq
	}
	var seqs []int64
	for _, en := range all {
		seqs = append(seqs, en.Seq)
	}
	if diff := cmp.Diff(seqs, paged); diff != "" {
		t.Errorf("paging (-want +got):\n%s", diff)
	}

	count := func(q AuditQuery, pred func(*thauth.AuditEntry) bool) {
		t.Helper()
		got, err := e.svc.ListAuditLog(e.ctx, tm.developer, org, q)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for i := range all {
			if pred(&all[i]) {
				want++
			}
		}
		if want == 0 || len(got) != want {
			t.Errorf("%+v: %d entries, want %d (> 0)", q, len(got), want)
		}
		for i := range got {
			if !pred(&got[i]) {
				t.Errorf("%+v: entry %d (%s) does not match", q, got[i].Seq, got[i].Action)
			}
		}
	}
	count(AuditQuery{Action: "org.created"}, func(en *thauth.AuditEntry) bool { return en.Action == "org.created" })
	count(AuditQuery{Action: "invitation."}, func(en *thauth.AuditEntry) bool { return strings.HasPrefix(en.Action, "invitation.") })
	count(AuditQuery{ActorID: tm.owner.AccountID}, func(en *thauth.AuditEntry) bool { return en.ActorID == tm.owner.AccountID })
	count(AuditQuery{ActorID: tm.owner.AccountID, Action: "org."}, func(en *thauth.AuditEntry) bool {
		return en.ActorID == tm.owner.AccountID && strings.HasPrefix(en.Action, "org.")
	})

	// Roles without audit:read, outsiders and bad queries.
	_, err = e.svc.ListAuditLog(e.ctx, tm.viewer, org, AuditQuery{})
	orgWantErr(t, err, thauth.EForbidden, "audit:read")
	outsider := orgNewAccount(t, e, "outsider@example.com", false)
	_, err = e.svc.ListAuditLog(e.ctx, outsider, org, AuditQuery{})
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	err = e.svc.ExportAuditLog(e.ctx, outsider, org, func(*thauth.AuditEntry) error { return nil })
	orgWantErr(t, err, thauth.ENotFound, "organization not found")
	for _, q := range []AuditQuery{{Limit: 1001}, {Limit: -1}, {Before: -1}, {Action: "Org.Created"}, {Action: ".x"},
		{Action: strings.Repeat("a", 101)}, {ActorID: "a\nb"}} {
		_, err := e.svc.ListAuditLog(e.ctx, tm.owner, org, q)
		orgWantErr(t, err, thauth.EInvalid)
	}

	// The export is the whole chain, oldest first, and only for audit:read.
	var exported []int64
	if err := e.svc.ExportAuditLog(e.ctx, tm.owner, org, func(en *thauth.AuditEntry) error {
		exported = append(exported, en.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(exported) != len(all) || exported[0] != 1 || exported[len(exported)-1] != all[0].Seq {
		t.Errorf("export seqs %v", exported)
	}
	stop := errors.New("stop")
	if err := e.svc.ExportAuditLog(e.ctx, tm.owner, org, func(*thauth.AuditEntry) error { return stop }); err != stop {
		t.Errorf("ExportAuditLog returned %v, want fn's error", err)
	}
}

func TestAuditActorContext(t *testing.T) {
	if got := AuditActorFrom(context.Background()); got != (AuditActor{Type: thauth.ActorSystem}) {
		t.Errorf("default actor %+v", got)
	}
	a := Actor{AccountID: "acc", Via: ViaSession, Client: ClientInfo{IP: "192.0.2.9", UserAgent: "ua"}}
	want := AuditActor{Type: thauth.ActorAccount, ID: "acc", IP: "192.0.2.9", UserAgent: "ua"}
	if got := AuditActorFrom(WithAuditActor(context.Background(), AuditActorOf(a))); got != want {
		t.Errorf("actor %+v, want %+v", got, want)
	}
	cli := AuditActorOf(Actor{Via: ViaCLI, CLIUser: "root"})
	if cli.Type != thauth.ActorCLI || cli.ID != "root" {
		t.Errorf("cli actor %+v", cli)
	}
}

// TestVerifyAuditPostgres runs verification, AuditHead and the actor filter on PostgreSQL,
// tampering through a connection of its own.
func TestVerifyAuditPostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	st := pgtest.Open(t, url, postgres.Options{})
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: testStart}
	svc := New(st, engine.New(st, engine.Options{Now: c.Now}), Options{Now: c.Now})
	res, err := svc.Init(ctx, "Acme", "Shop")
	if err != nil {
		t.Fatal(err)
	}
	org := res.Organization.ID
	kctx := WithAuditActor(ctx, AuditActor{Type: thauth.ActorAPIKey, ID: "key-9"})
	for _, name := range []string{"a", "b"} {
		if _, _, err := svc.CreateKey(kctx, res.Project.ID, KeyRequest{Name: name, Scopes: []string{"admin"}}); err != nil {
			t.Fatal(err)
		}
	}
	seq, hash, err := st.AuditHead(ctx, org)
	es := auditChain(t, st, org)
	if err != nil || seq != 6 || len(es) != 6 || !bytes.Equal(hash, es[5].Hash) {
		t.Fatalf("AuditHead = %d, %x, %v; want entry 6 of %d", seq, hash, err, len(es))
	}
	if _, _, err := st.AuditHead(ctx, "nope"); thauth.ErrorCodeOf(err) != thauth.ENotFound {
		t.Errorf("AuditHead(unknown) = %v", err)
	}
	list, err := st.ListAudit(ctx, thauth.AuditFilter{OrganizationID: org, ActorID: "key-9"})
	if err != nil || len(list) != 2 || list[0].Seq != 6 || list[1].Seq != 5 {
		t.Errorf("ListAudit(actor) = %d entries, %v", len(list), err)
	}
	rep, err := VerifyAudit(ctx, st, nil)
	if err != nil || !rep.OK() || rep.Entries != 6 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(q string) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, org); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`UPDATE audit_log SET ip = '203.0.113.1' WHERE chain = $1 AND seq = 2`)
	exec(`DELETE FROM audit_log WHERE chain = $1 AND seq = 4`)
	exec(`DELETE FROM audit_log WHERE chain = $1 AND seq = 6`)
	rep, err = VerifyAudit(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []problemAt{{AuditEdited, 2}, {AuditMissing, 5}, {AuditTruncated, 6}}
	if diff := cmp.Diff(want, problemsAt(rep)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
