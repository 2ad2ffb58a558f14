-- 0001: the initial schema, in lockstep with internal/sqlite/migrations/0001_init.sql.
--
-- Same tables, columns, keys, unique constraints, cascades and indexes as the SQLite schema;
-- only the types differ: ids and other strings are TEXT COLLATE "C" (byte order, as SQLite's
-- BINARY collation, so that ORDER BY subject_id and the indexes agree with Go's string order
-- whatever the database's default locale), times are TIMESTAMPTZ (microseconds; the store
-- writes them in UTC truncated to microseconds), hashes BYTEA, counters BIGINT/INTEGER.
--
-- Isolation is enforced by the schema as well as by the queries: every table with customer
-- data carries project_id, and every reference between such tables is a composite foreign
-- key that includes project_id, so a row can never point into another project.
--
-- Tenant and resource are '' (never NULL) for "global" and "no pattern", so unique indexes
-- and equality work the same in both engines.

CREATE TABLE organizations (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ      NOT NULL
);

CREATE TABLE projects (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT COLLATE "C" NOT NULL,
    created_at      TIMESTAMPTZ      NOT NULL,
    revision        BIGINT           NOT NULL DEFAULT 0
);
CREATE INDEX projects_by_organization ON projects (organization_id, created_at);

CREATE TABLE features (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL DEFAULT '',
    CONSTRAINT features_name_unique UNIQUE (project_id, name),
    CONSTRAINT features_project_unique UNIQUE (project_id, id)
);

CREATE TABLE actions (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    project_id TEXT COLLATE "C" NOT NULL,
    feature_id TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    CONSTRAINT actions_name_unique UNIQUE (feature_id, name),
    CONSTRAINT actions_project_unique UNIQUE (project_id, feature_id, id),
    CONSTRAINT actions_feature_fk FOREIGN KEY (project_id, feature_id)
        REFERENCES features (project_id, id) ON DELETE CASCADE
);

CREATE TABLE roles (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL DEFAULT '',
    CONSTRAINT roles_name_unique UNIQUE (project_id, name),
    CONSTRAINT roles_project_unique UNIQUE (project_id, id)
);

CREATE TABLE permissions (
    project_id TEXT COLLATE "C" NOT NULL,
    role_id    TEXT COLLATE "C" NOT NULL,
    feature_id TEXT COLLATE "C" NOT NULL,
    action_id  TEXT COLLATE "C" NOT NULL,
    resource   TEXT COLLATE "C" NOT NULL DEFAULT '',
    CONSTRAINT permissions_pk PRIMARY KEY (role_id, action_id, resource),
    CONSTRAINT permissions_role_fk FOREIGN KEY (project_id, role_id)
        REFERENCES roles (project_id, id) ON DELETE CASCADE,
    CONSTRAINT permissions_action_fk FOREIGN KEY (project_id, feature_id, action_id)
        REFERENCES actions (project_id, feature_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX permissions_by_role ON permissions (project_id, role_id);
CREATE INDEX permissions_by_action ON permissions (project_id, feature_id, action_id);

-- subject_id is the customer's own subject string; id is Thauth's UUID for the subject.
-- Grants reference subjects by (project_id, subject_id), so that scanning a project's grants
-- in subject order needs no join.
CREATE TABLE subjects (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    project_id   TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    subject_id   TEXT COLLATE "C" NOT NULL,
    subject_type TEXT COLLATE "C" NOT NULL,
    created_at   TIMESTAMPTZ      NOT NULL,
    updated_at   TIMESTAMPTZ      NOT NULL,
    CONSTRAINT subjects_subject_unique UNIQUE (project_id, subject_id)
);

CREATE TABLE assignments (
    project_id  TEXT COLLATE "C" NOT NULL,
    subject_id  TEXT COLLATE "C" NOT NULL,
    role_id     TEXT COLLATE "C" NOT NULL,
    tenant      TEXT COLLATE "C" NOT NULL DEFAULT '',
    valid_from  TIMESTAMPTZ,
    valid_until TIMESTAMPTZ,
    CONSTRAINT assignments_subject_fk FOREIGN KEY (project_id, subject_id)
        REFERENCES subjects (project_id, subject_id) ON DELETE CASCADE,
    CONSTRAINT assignments_role_fk FOREIGN KEY (project_id, role_id)
        REFERENCES roles (project_id, id) ON DELETE CASCADE
);
CREATE INDEX assignments_by_subject ON assignments (project_id, subject_id, tenant);
CREATE INDEX assignments_by_role ON assignments (project_id, role_id);

CREATE TABLE overrides (
    project_id  TEXT COLLATE "C" NOT NULL,
    subject_id  TEXT COLLATE "C" NOT NULL,
    feature_id  TEXT COLLATE "C" NOT NULL,
    action_id   TEXT COLLATE "C" NOT NULL,
    effect      TEXT COLLATE "C" NOT NULL CHECK (effect IN ('allow', 'deny')),
    resource    TEXT COLLATE "C" NOT NULL DEFAULT '',
    tenant      TEXT COLLATE "C" NOT NULL DEFAULT '',
    valid_from  TIMESTAMPTZ,
    valid_until TIMESTAMPTZ,
    CONSTRAINT overrides_subject_fk FOREIGN KEY (project_id, subject_id)
        REFERENCES subjects (project_id, subject_id) ON DELETE CASCADE,
    CONSTRAINT overrides_action_fk FOREIGN KEY (project_id, feature_id, action_id)
        REFERENCES actions (project_id, feature_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX overrides_by_subject ON overrides (project_id, subject_id, tenant);
CREATE INDEX overrides_by_action ON overrides (project_id, feature_id, action_id);

-- scopes: the key's scopes separated by single spaces, in the order given.
CREATE TABLE api_keys (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    project_id   TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         TEXT COLLATE "C" NOT NULL,
    lookup_id    TEXT COLLATE "C" NOT NULL,
    hash         BYTEA            NOT NULL,
    scopes       TEXT COLLATE "C" NOT NULL,
    expires_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ      NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_keys_by_lookup ON api_keys (lookup_id);
CREATE INDEX api_keys_by_project ON api_keys (project_id, created_at);

-- One row per change; a revision holds one or more changes, numbered by seq from 0.
CREATE TABLE changes (
    project_id TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    revision   BIGINT           NOT NULL,
    seq        INTEGER          NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    ref        TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ      NOT NULL,
    CONSTRAINT changes_pk PRIMARY KEY (project_id, revision, seq)
);
