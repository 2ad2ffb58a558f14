package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
)

// operatorAccount creates a verified account directly in the data directory's database (the
// sign-up flow belongs to the server).
func operatorAccount(t *testing.T, dir, id, email string, mfa bool) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	a := &thauth.Account{ID: id, Email: email, PasswordHash: "x", EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
	if mfa {
		a.TOTPEnabledAt = &now
	}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestOperatorCommand(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"THAUTH_DATA_DIR": dir, "USER": "alice"}
	operatorAccount(t, dir, "0190e6c2-0000-7000-8000-000000000001", "ops@example.com", false)
	operatorAccount(t, dir, "0190e6c2-0000-7000-8000-000000000002", "sec@example.com", true)

	out, errOut, code := cli(t, vars, "operator", "list")
	if code != exitOK || !strings.Contains(out, "No operators") {
		t.Fatalf("empty list: code %d, %q %q", code, out, errOut)
	}

	out, errOut, code = cli(t, vars, "operator", "grant", "--email", "OPS@example.com", "--role", "support")
	if code != exitOK {
		t.Fatalf("grant: code %d, %q", code, errOut)
	}
	if !strings.Contains(out, "ops@example.com is now an operator with role support") ||
		!strings.Contains(out, "no two-factor authentication yet") {
		t.Errorf("grant output: %q", out)
	}
	out, errOut, code = cli(t, vars, "operator", "grant", "--email", "sec@example.com", "--role", "superadmin", "--data-dir", dir)
	if code != exitOK || strings.Contains(out, "two-factor") {
		t.Fatalf("grant to an account with MFA: code %d, %q %q", code, out, errOut)
	}

	out, errOut, code = cli(t, vars, "operator", "list", "--json")
	if code != exitOK {
		t.Fatalf("list: code %d, %q", code, errOut)
	}
	var list []struct {
		AccountID  string `json:"account_id"`
		Role       string `json:"role"`
		GrantedBy  string `json:"granted_by"`
		Email      string `json:"email"`
		MFAEnabled bool   `json:"mfa_enabled"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v in %q", err, out)
	}
	if len(list) != 2 || list[0].Email != "ops@example.com" || list[0].Role != "support" || list[0].GrantedBy != "cli:alice" ||
		list[0].MFAEnabled || list[1].Email != "sec@example.com" || list[1].Role != "superadmin" || !list[1].MFAEnabled {
		t.Errorf("list: %+v", list)
	}
	out, _, _ = cli(t, vars, "operator", "list")
	if !strings.Contains(out, "ops@example.com") || !strings.Contains(out, "support") || !strings.Contains(out, "cli:alice") {
		t.Errorf("list table: %q", out)
	}

	// Errors.
	for _, tc := range []struct {
		args     []string
		code     int
		fragment string
	}{
		{[]string{"operator", "grant", "--email", "nobody@example.com", "--role", "support"}, exitError, "no account with this email"},
		{[]string{"operator", "grant", "--email", "ops@example.com", "--role", "owner"}, exitUsage, `unknown role "owner": use one of support, operator, superadmin`},
		{[]string{"operator", "grant", "--role", "support"}, exitUsage, "missing --email"},
		{[]string{"operator", "revoke", "--email", "nobody@example.com"}, exitError, "no account with this email"},
		{[]string{"operator", "revoke"}, exitUsage, "missing --email"},
		{[]string{"operator", "promote"}, exitUsage, `unknown command "promote"`},
		{[]string{"operator"}, exitUsage, "Usage: thauth operator"},
	} {
		_, errOut, code := cli(t, vars, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.fragment) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.fragment)
		}
	}

	out, errOut, code = cli(t, vars, "operator", "revoke", "--email", "ops@example.com")
	if code != exitOK || !strings.Contains(out, "ops@example.com is no longer an operator") {
		t.Fatalf("revoke: code %d, %q %q", code, out, errOut)
	}
	_, errOut, code = cli(t, vars, "operator", "revoke", "--email", "ops@example.com")
	if code != exitError || !strings.Contains(errOut, "this account is not an operator") {
		t.Errorf("revoke twice: code %d, %q", code, errOut)
	}

	// Grants and revocations are in the installation's audit chain, with the OS user.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []string
	err = st.ScanAudit(ctx, "", func(a *thauth.AuditEntry) error {
		got = append(got, a.Action+" "+a.ActorType+":"+a.ActorID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each grant is also a security event of the installation (recorded by Thauth itself).
	want := "operator.granted cli:alice,security.event system:,operator.granted cli:alice,security.event system:,operator.revoked cli:alice"
	if strings.Join(got, ",") != want {
		t.Errorf("audit: %v, want %s", got, want)
	}
	// The system project holds the remaining grant for the engine.
	sg, err := st.LoadSubjectGrants(ctx, thauth.SystemProjectID, "0190e6c2-0000-7000-8000-000000000002")
	if err != nil || len(sg.Assignments) != 1 || sg.Assignments[0].RoleName != "superadmin" || sg.Assignments[0].Tenant != "" {
		t.Errorf("system project grants: %+v %v", sg, err)
	}
	if sg, err := st.LoadSubjectGrants(ctx, thauth.SystemProjectID, "0190e6c2-0000-7000-8000-000000000001"); err != nil || len(sg.Assignments) != 0 {
		t.Errorf("revoked operator's grants: %+v %v", sg, err)
	}
}
