package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // to tamper with the data directory's database

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/sqlite"
)

// auditCLI runs `thauth audit args...`.
func auditCLI(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &env{getenv: getenvFrom(vars), stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}
	code = runAudit(ctx, e, args)
	return out.String(), errOut.String(), code
}

// auditInit runs `thauth init` and returns the organization id.
func auditInit(t *testing.T, vars map[string]string, org string) string {
	t.Helper()
	out, errOut, code := cli(t, vars, "init", "--org", org, "--project", "Shop", "--json")
	if code != exitOK {
		t.Fatalf("init: %d %s", code, errOut)
	}
	var res struct {
		OrganizationID string `json:"organization_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	return res.OrganizationID
}

func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"THAUTH_DATA_DIR": dir, "USER": "alice"}
	acme := auditInit(t, vars, "Acme")
	beta := auditInit(t, vars, "Beta")

	out, errOut, code := auditCLI(t, vars, "verify")
	if code != exitOK || !strings.Contains(out, "OK: 2 chains, 8 entries, no problems") || !strings.Contains(out, acme) {
		t.Fatalf("verify: code %d, %q %q", code, out, errOut)
	}
	out, _, code = auditCLI(t, vars, "verify", "--json", "--chain", beta)
	var rep manage.AuditReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK {
		t.Fatalf("verify --json: %d %v %q", code, err, out)
	}
	if len(rep.Chains) != 1 || rep.Chains[0].Chain != beta || rep.Entries != 4 || len(rep.Problems) != 0 {
		t.Errorf("verify --json --chain: %+v", rep)
	}
	if _, errOut, code := auditCLI(t, vars, "verify", "--chain", "nope"); code != exitError || !strings.Contains(errOut, "no audit chain") {
		t.Errorf("verify of an unknown chain: %d %q", code, errOut)
	}

	// Export to stdout and to a file; each line's hash recomputes, and the file verifies.
	out, errOut, code = auditCLI(t, vars, "export", "--org", acme)
	if code != exitOK {
		t.Fatalf("export: %d %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("export: %d lines %q", len(lines), out)
	}
	for i, l := range lines {
		var rec manage.AuditRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		en, err := rec.Entry()
		if err != nil || en.Seq != int64(i+1) || !bytes.Equal(thauth.AuditHash(en), en.Hash) {
			t.Errorf("line %d does not verify: %+v %v", i+1, rec, err)
		}
	}
	file := filepath.Join(t.TempDir(), "acme.jsonl")
	if _, errOut, code := auditCLI(t, vars, "export", "--org", acme, "--out", file); code != exitOK || !strings.Contains(errOut, "4 entries") {
		t.Fatalf("export --out: %d %q", code, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != out {
		t.Errorf("the exported file differs from stdout: %v", err)
	}
	if out, _, code := auditCLI(t, vars, "verify", "--file", file); code != exitOK || !strings.Contains(out, "OK: 1 chains, 4 entries") {
		t.Errorf("verify --file: %d %q", code, out)
	}
	tampered := strings.Replace(out, `"name\":\"Shop\"`, `"name\":\"Sh0p\"`, 1)
	if tampered == out {
		t.Fatal("nothing to tamper with in the export")
	}
	if err := os.WriteFile(file, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, code := auditCLI(t, vars, "verify", "--file", file); code != exitError || !strings.Contains(out, "edited") {
		t.Errorf("verify --file of a tampered export: %d %q", code, out)
	}
	if _, errOut, code := auditCLI(t, vars, "export", "--org", "nope"); code != exitError || !strings.Contains(errOut, "no audit log") {
		t.Errorf("export of an unknown organization: %d %q", code, errOut)
	}
	for _, args := range [][]string{{"export"}, {"export", "--org", acme, "--installation"}, {"frobnicate"}, {}} {
		if _, _, code := auditCLI(t, vars, args...); code != exitUsage {
			t.Errorf("audit %q: exit %d, want %d", args, code, exitUsage)
		}
	}

	// Tampering in the database: edited, deleted in the middle, deleted last, reordered.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`UPDATE audit_log SET data = '{"name":"Evil"}' WHERE chain = ? AND seq = 1`, acme)
	exec(`DELETE FROM audit_log WHERE chain = ? AND seq = 2`, beta)
	exec(`DELETE FROM audit_log WHERE chain = ? AND seq = 4`, acme)
	out, _, code = auditCLI(t, vars, "verify")
	if code != exitError {
		t.Fatalf("verify of a tampered log: exit %d\n%s", code, out)
	}
	for _, want := range []string{"FAILED: 2 chains, 6 entries, 3 problems", "chain " + acme + ": edited: entry 1",
		"chain " + acme + ": truncated:", "chain " + beta + ": missing: entry 2 is missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	out, _, code = auditCLI(t, vars, "verify", "--json", "--chain", beta)
	rep = manage.AuditReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitError || len(rep.Problems) != 1 || rep.Problems[0].Kind != manage.AuditMissing {
		t.Errorf("verify --json of a tampered chain: %d %v %q", code, err, out)
	}

	beta2 := auditInit(t, vars, "Gamma")
	exec(`UPDATE audit_log SET seq = 0 WHERE chain = ? AND seq = 2`, beta2)
	exec(`UPDATE audit_log SET seq = 2 WHERE chain = ? AND seq = 3`, beta2)
	exec(`UPDATE audit_log SET seq = 3 WHERE chain = ? AND seq = 0`, beta2)
	out, _, code = auditCLI(t, vars, "verify", "--chain", beta2)
	if code != exitError || !strings.Contains(out, "broken_link: entry 2 does not chain to entry 1") {
		t.Errorf("verify of a reordered chain: %d\n%s", code, out)
	}
}
