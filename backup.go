package thauth

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// Backups (internal/backup) copy every stored row from one store to another, across engines:
// a SQLite backup restores into PostgreSQL and back. This file is the contract between the
// stores and the backup format: the engine-neutral description of every table (BackupTables)
// and the two store methods that read and write whole tables (TableExporter, TableImporter).

// ColumnType is the engine-neutral type of a stored column, and the Go type of its values in
// a backup row.
type ColumnType string

// The column types.
const (
	ColumnText  ColumnType = "text"  // string, valid UTF-8
	ColumnInt   ColumnType = "int"   // int64
	ColumnBytes ColumnType = "bytes" // []byte; never nullable
	ColumnTime  ColumnType = "time"  // time.Time in UTC with microsecond precision
)

// BackupColumn is one column of a BackupTable. A nullable column's value may be nil (NULL).
type BackupColumn struct {
	Name     string
	Type     ColumnType
	Nullable bool
}

// BackupTable describes one stored table: its name, its columns in the order of a backup
// row, and the columns whose ascending order sorts its rows completely (NULLs first, text in
// byte order), so that every engine exports the same rows in the same order.
type BackupTable struct {
	Name    string
	Columns []BackupColumn
	OrderBy []string
}

// BackupTables returns every table a store keeps (except its migration record), parents
// before children, so that inserting the tables in this order satisfies every foreign key.
// The stores' tests check that it matches their schemas column for column: a migration that
// adds a table or column must add it here too, or backups would silently miss it.
func BackupTables() []BackupTable {
	text := func(n string) BackupColumn { return BackupColumn{Name: n, Type: ColumnText} }
	integer := func(n string) BackupColumn { return BackupColumn{Name: n, Type: ColumnInt} }
	bytes := func(n string) BackupColumn { return BackupColumn{Name: n, Type: ColumnBytes} }
	at := func(n string) BackupColumn { return BackupColumn{Name: n, Type: ColumnTime} }
	optAt := func(n string) BackupColumn { return BackupColumn{Name: n, Type: ColumnTime, Nullable: true} }
	names := func(cs []BackupColumn) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.Name
		}
		return out
	}
	byID := func(name string, cs ...BackupColumn) BackupTable {
		return BackupTable{Name: name, Columns: cs, OrderBy: []string{"id"}}
	}
	byAll := func(name string, cs ...BackupColumn) BackupTable { // no primary key
		return BackupTable{Name: name, Columns: cs, OrderBy: names(cs)}
	}
	return []BackupTable{
		// Installation-wide: internal/seal's data keys, wrapped under master keys that are
		// never stored.
		byID("seal_data_keys", text("id"), text("master_key_id"), bytes("wrapped"), at("created_at"), optAt("retired_at")),

		byID("organizations", text("id"), text("name"), at("created_at"), integer("require_mfa"), optAt("suspended_at"),
			text("suspended_reason")),
		byID("projects", text("id"), text("organization_id"), text("name"), at("created_at"), integer("revision")),
		byID("features", text("id"), text("project_id"), text("name"), text("description")),
		byID("actions", text("id"), text("project_id"), text("feature_id"), text("name")),
		byID("roles", text("id"), text("project_id"), text("name"), text("description")),
		{
			Name:    "permissions",
			Columns: []BackupColumn{text("project_id"), text("role_id"), text("feature_id"), text("action_id"), text("resource")},
			OrderBy: []string{"role_id", "action_id", "resource"}, // the primary key
		},
		byID("subjects", text("id"), text("project_id"), text("subject_id"), text("subject_type"), at("created_at"), at("updated_at")),
		byAll("assignments", text("project_id"), text("subject_id"), text("role_id"), text("tenant"), optAt("valid_from"), optAt("valid_until")),
		byAll("overrides", text("project_id"), text("subject_id"), text("feature_id"), text("action_id"), text("effect"),
			text("resource"), text("tenant"), optAt("valid_from"), optAt("valid_until")),
		byID("api_keys", text("id"), text("project_id"), text("name"), text("lookup_id"), bytes("hash"), text("scopes"),
			optAt("expires_at"), at("created_at"), optAt("last_used_at"), optAt("revoked_at")),
		{
			Name: "changes",
			Columns: []BackupColumn{text("project_id"), integer("revision"), integer("seq"), text("kind"), text("ref"),
				at("created_at")},
			OrderBy: []string{"project_id", "revision", "seq"}, // the primary key
		},

		// Identity (migration 0003). Tokens and codes are hashes, TOTP seeds and outbox
		// payloads sealed values: a backup holds no usable secret.
		byID("accounts", text("id"), text("email"), text("name"), text("password_hash"), optAt("email_verified_at"),
			text("totp_secret"), text("totp_pending"), optAt("totp_enabled_at"), integer("totp_last_step"),
			at("created_at"), at("updated_at")),
		{
			Name:    "recovery_codes",
			Columns: []BackupColumn{text("account_id"), bytes("code_hash"), at("created_at"), optAt("used_at")},
			OrderBy: []string{"account_id", "code_hash"}, // the primary key
		},
		byID("email_tokens", text("id"), text("account_id"), text("purpose"), bytes("token_hash"), text("email"),
			at("created_at"), at("expires_at"), optAt("used_at")),
		byID("sessions", text("id"), text("account_id"), bytes("token_hash"), integer("mfa"), integer("pending_mfa"),
			at("created_at"), at("last_seen_at"), at("expires_at"), text("ip"), text("user_agent"), optAt("revoked_at")),
		byID("access_tokens", text("id"), text("account_id"), text("name"), text("lookup_id"), bytes("hash"), text("scopes"),
			at("expires_at"), at("created_at"), optAt("last_used_at"), optAt("revoked_at")),
		{
			Name: "memberships",
			Columns: []BackupColumn{text("organization_id"), text("account_id"), text("role"), at("created_at"),
				at("updated_at")},
			OrderBy: []string{"organization_id", "account_id"}, // the primary key
		},
		byID("invitations", text("id"), text("organization_id"), text("email"), text("role"), bytes("token_hash"),
			text("invited_by"), at("created_at"), at("expires_at"), optAt("accepted_at"), text("accepted_by"), optAt("revoked_at")),
		{
			Name:    "operators",
			Columns: []BackupColumn{text("account_id"), text("role"), at("granted_at"), text("granted_by")},
			OrderBy: []string{"account_id"},
		},
		{
			Name:    "auth_throttles",
			Columns: []BackupColumn{text("key"), integer("failures"), at("last_failure_at"), optAt("locked_until")},
			OrderBy: []string{"key"},
		},
		byID("mail_outbox", text("id"), text("to_address"), text("template"), text("payload"), text("status"),
			integer("attempts"), at("next_attempt_at"), text("last_error"), text("provider_id"), at("created_at"), optAt("sent_at")),
		{
			Name:    "audit_chains",
			Columns: []BackupColumn{text("chain"), integer("last_seq"), bytes("last_hash")},
			OrderBy: []string{"chain"},
		},
		byID("audit_log", text("id"), text("chain"), integer("seq"), at("at"), text("actor_type"), text("actor_id"),
			text("organization_id"), text("account_id"), text("action"), text("target"), text("ip"), text("user_agent"),
			text("data"), bytes("prev_hash"), bytes("hash")),

		// Protection (migration 0004). Webhook secrets are sealed values.
		byID("decision_log", text("id"), text("project_id"), at("at"), text("key_id"), text("subject"), text("feature"),
			text("action"), text("tenant"), text("resource"), integer("allowed"), text("reason"), integer("latency_us"),
			integer("gap")),
		byID("security_events", text("id"), text("organization_id"), text("project_id"), text("kind"), text("severity"),
			at("at"), text("title"), text("evidence")),
		byID("webhook_endpoints", text("id"), text("organization_id"), text("url"), text("description"), text("events"),
			text("secret"), text("previous_secret"), optAt("previous_secret_expires_at"), optAt("disabled_at"),
			text("disabled_reason"), at("created_at")),
		byID("webhook_deliveries", text("id"), text("organization_id"), text("endpoint_id"), text("event_id"),
			text("event_type"), bytes("payload"), text("status"), integer("attempts"), optAt("next_attempt_at"),
			optAt("last_attempt_at"), integer("last_status_code"), text("last_error"), at("created_at"), optAt("delivered_at")),
		{
			Name: "webhook_attempts",
			Columns: []BackupColumn{text("organization_id"), text("delivery_id"), integer("number"), at("at"),
				integer("duration_ms"), integer("status_code"), text("error"), integer("retry_after_ms")},
			OrderBy: []string{"delivery_id", "number"}, // the primary key
		},
		byID("incidents", text("id"), text("title"), text("status"), at("created_at"), text("created_by"), optAt("closed_at")),
		{
			Name:    "incident_events",
			Columns: []BackupColumn{text("incident_id"), integer("seq"), at("at"), text("actor"), text("kind"), text("detail")},
			OrderBy: []string{"incident_id", "seq"}, // the primary key
		},
	}
}

// ColumnNames returns the names of t's columns in row order.
func (t BackupTable) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// CheckRow reports whether row is a valid row of t: one value per column, each of its
// column's Go type (see ColumnType), nil only in nullable columns, text valid UTF-8, times
// in UTC with no precision below the microsecond. The error is an EInvalid *Error naming the
// table and column.
func (t BackupTable) CheckRow(row []any) error {
	if len(row) != len(t.Columns) {
		return Errorf(EInvalid, "table %s: row has %d values, want %d", t.Name, len(row), len(t.Columns))
	}
	for i, c := range t.Columns {
		v := row[i]
		if v == nil {
			if !c.Nullable {
				return Errorf(EInvalid, "table %s: column %s is NULL but must not be", t.Name, c.Name)
			}
			continue
		}
		ok := false
		switch c.Type {
		case ColumnText:
			var s string
			s, ok = v.(string)
			if ok && !utf8.ValidString(s) {
				return Errorf(EInvalid, "table %s: column %s holds text that is not valid UTF-8", t.Name, c.Name)
			}
		case ColumnInt:
			_, ok = v.(int64)
		case ColumnBytes:
			_, ok = v.([]byte)
		case ColumnTime:
			var tm time.Time
			tm, ok = v.(time.Time)
			if ok && (tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0) {
				return Errorf(EInvalid, "table %s: column %s: time %s is not in UTC with microsecond precision", t.Name, c.Name, tm)
			}
		}
		if !ok {
			return Errorf(EInvalid, "table %s: column %s (%s) holds a %T", t.Name, c.Name, c.Type, v)
		}
	}
	return nil
}

// String describes the column as "name type" with " null" for a nullable one.
func (c BackupColumn) String() string {
	s := fmt.Sprintf("%s %s", c.Name, c.Type)
	if c.Nullable {
		s += " null"
	}
	return s
}

// TableExporter is a store that can be backed up.
type TableExporter interface {
	// SchemaVersion returns the applied and the latest known migration numbers. Migrations
	// run in lockstep on every engine, so the number identifies the schema of every engine.
	SchemaVersion(ctx context.Context) (current, latest int, err error)
	// ExportTables calls fn for every row of every table of BackupTables, table after table
	// in that order, each table's rows in its OrderBy order, with the values in column order
	// (see CheckRow). Every row comes from one consistent snapshot of the database, however
	// long fn takes, and writers go on meanwhile. fn may keep row. An error from fn stops the
	// export and is returned as is.
	ExportTables(ctx context.Context, fn func(table string, row []any) error) error
}

// TableImporter is a store a backup can be restored into.
type TableImporter interface {
	SchemaVersion(ctx context.Context) (current, latest int, err error)
	// ImportTables fills an empty store in one transaction: it checks that every table of
	// BackupTables is empty (EConflict naming the tables that are not), then calls fill,
	// which calls insert for each row, parents before children (BackupTables order does),
	// with the values in column order. Rows are stored exactly as given, ids and times
	// included. If fill returns an error — its own or insert's — nothing is written and
	// that error is returned as is; if fill returns nil the rows are committed. A row that
	// does not fit its table (unknown table, wrong shape, a duplicate key, a dangling
	// reference) is EInvalid, returned by insert or — for rows a store sends in batches —
	// by a later insert or by ImportTables itself; either way nothing is written. insert
	// must not be called after fill returns.
	ImportTables(ctx context.Context, fill func(insert func(table string, row []any) error) error) error
}
