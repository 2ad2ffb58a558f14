package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/sqlite"
)

// Commands that work on the data directory directly, without a server. SQLite lets them run
// next to a server on the same directory: its follow loop picks their writes up.

const dataDirUsage = "`directory` of the SQLite database"

func runInit(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("init", "thauth init --org NAME --project NAME [--data-dir DIR] [--json]",
		`Creates an organization, a project in it, and the project's first two API keys: an
admin key (management API: apply, export, keys) and a decisions key (checks).
It writes to the data directory directly, so it works whether or not a server is
running on it; a running server picks the new project up within its sync interval.
The keys are printed once and only their hashes are stored.`, e)
	fs.String("data-dir", "./thauth-data", dataDirUsage)
	fs.env("data-dir", "THAUTH_DATA_DIR")
	org := fs.String("org", "", "organization `name` (required)")
	project := fs.String("project", "", "project `name` (required)")
	asJSON := fs.Bool("json", false, "print one JSON object {organization_id, project_id, admin_key, decisions_key}")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	var missing []string
	if strings.TrimSpace(*org) == "" {
		missing = append(missing, "--org")
	}
	if strings.TrimSpace(*project) == "" {
		missing = append(missing, "--project")
	}
	if len(missing) > 0 {
		fmt.Fprintf(e.stderr, "thauth init: missing %s\nUsage: %s\n", strings.Join(missing, " and "), fs.usageLine)
		return exitUsage
	}
	dataDir := fs.value("data-dir")
	store, err := openMigrated(ctx, dataDir)
	if err != nil {
		return e.errorf("%v", err)
	}
	defer store.Close()
	res, err := manage.New(store, nil, manage.Options{}).Init(ctx, *org, *project)
	if err != nil {
		return e.errorf("init: %v", err)
	}
	if *asJSON {
		return writeJSON(e, struct {
			OrganizationID string `json:"organization_id"`
			ProjectID      string `json:"project_id"`
			AdminKey       string `json:"admin_key"`
			DecisionsKey   string `json:"decisions_key"`
		}{res.Organization.ID, res.Project.ID, res.AdminKey, res.DecisionsKey})
	}
	w := e.stdout
	fmt.Fprintf(w, "Organization  %-24s %s\n", res.Organization.Name, res.Organization.ID)
	fmt.Fprintf(w, "Project       %-24s %s\n", res.Project.Name, res.Project.ID)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Admin key (management API: apply, export, keys):")
	fmt.Fprintln(w, "  "+res.AdminKey)
	fmt.Fprintln(w, "Decisions key (decision API: check, config, subject upsert):")
	fmt.Fprintln(w, "  "+res.DecisionsKey)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The keys are shown only now; store them somewhere safe. Next:")
	fmt.Fprintln(w, "  export THAUTH_URL="+defaultURL)
	fmt.Fprintln(w, "  export THAUTH_PROJECT="+res.Project.ID)
	fmt.Fprintln(w, "  export THAUTH_KEY="+res.AdminKey)
	fmt.Fprintln(w, "  thauth apply -f examples/acme.yaml")
	return exitOK
}

func runMigrate(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet("migrate", "thauth migrate [--data-dir DIR]",
		`Applies the pending database migrations (forward only) and prints the schema version.
'thauth serve' and 'thauth init' also migrate automatically.`, e)
	fs.String("data-dir", "./thauth-data", dataDirUsage)
	fs.env("data-dir", "THAUTH_DATA_DIR")
	if _, code, done := parse(fs, args, 0, 0); done {
		return code
	}
	dataDir := fs.value("data-dir")
	store, err := sqlite.Open(ctx, dataDir, sqlite.Options{})
	if err != nil {
		return e.errorf("opening the database in %s: %v", dataDir, err)
	}
	defer store.Close()
	before, _, err := store.SchemaVersion(ctx)
	if err != nil {
		return e.errorf("reading the schema version: %v", err)
	}
	if err := store.Migrate(ctx); err != nil {
		return e.errorf("migrating: %v", err)
	}
	after, latest, err := store.SchemaVersion(ctx)
	if err != nil {
		return e.errorf("reading the schema version: %v", err)
	}
	if after == before {
		fmt.Fprintf(e.stdout, "schema version %d (up to date; latest %d)\n", after, latest)
	} else {
		fmt.Fprintf(e.stdout, "schema version %d (migrated from %d; latest %d)\n", after, before, latest)
	}
	return exitOK
}

// openMigrated opens the store in dataDir and brings its schema up to date.
func openMigrated(ctx context.Context, dataDir string) (*sqlite.Store, error) {
	store, err := sqlite.Open(ctx, dataDir, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening the database in %s: %w", dataDir, err)
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("migrating the database in %s: %w", dataDir, err)
	}
	return store, nil
}

func writeJSON(e *env, v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.errorf("writing output: %v", err)
	}
	return exitOK
}
