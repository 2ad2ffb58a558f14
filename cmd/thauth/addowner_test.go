package main

import (
	"context"
	"strings"
	"testing"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
)

// TestOperatorAddOwner: an organization created by `thauth init` has no members; add-owner
// makes an account its owner — in the memberships and in the console's system project, so
// that the engine lets the account manage it — and records it in the organization's audit
// log. Errors name what is wrong.
func TestOperatorAddOwner(t *testing.T) {
	dir := t.TempDir()
	res := initProject(t, "--data-dir", dir)
	const accountID = "0190e6c2-0000-7000-8000-0000000000a1"
	operatorAccount(t, dir, accountID, "ada@example.com", false)
	vars := map[string]string{"USER": "alice"}

	out, errOut, code := cli(t, vars, "operator", "add-owner", "--data-dir", dir, "--org", res.OrganizationID, "--email", "Ada@Example.com")
	if code != 0 || !strings.Contains(out, "ada@example.com is now an owner") {
		t.Fatalf("add-owner: exit %d, %q %q", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--org", res.OrganizationID, "--email", "nobody@example.com"}, "no account with this email", exitError},
		{[]string{"--org", "00000000-0000-7000-8000-00000000dead", "--email", "ada@example.com"}, "organization not found", exitError},
		{[]string{"--org", thauth.SystemOrganizationID, "--email", "ada@example.com"}, "organization not found", exitError},
		{[]string{"--email", "ada@example.com"}, "missing --org", exitUsage},
	} {
		_, errOut, code := cli(t, vars, append([]string{"operator", "add-owner", "--data-dir", dir}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("add-owner %v: exit %d, %q; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.GetMembership(ctx, res.OrganizationID, accountID)
	if err != nil || m.Role != thauth.OrgRoleOwner {
		t.Fatalf("membership = %+v, %v", m, err)
	}
	sg, err := st.LoadSubjectGrants(ctx, thauth.SystemProjectID, accountID)
	if err != nil || len(sg.Assignments) != 1 || sg.Assignments[0].RoleName != "owner" || sg.Assignments[0].Tenant != res.OrganizationID {
		t.Errorf("system project grants = %+v, %v", sg, err)
	}
	entries, err := st.ListAudit(ctx, thauth.AuditFilter{OrganizationID: res.OrganizationID, Limit: 10})
	if err != nil || len(entries) == 0 || entries[0].Action != "member.added" || entries[0].ActorType != thauth.ActorCLI ||
		entries[0].ActorID != "alice" || entries[0].AccountID != accountID {
		t.Errorf("newest audit entry = %+v, %v", entries, err)
	}
}
