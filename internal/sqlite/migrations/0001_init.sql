-- 0001: the initial schema.
--
-- Portable on purpose: the PostgreSQL store uses the same tables, columns, keys and cascades.
-- Differences are only in types: ids are UUID strings (TEXT here), times are INTEGER unix
-- microseconds UTC here (timestamptz there), hashes BLOB here (bytea there).
--
-- Isolation is enforced by the schema as well as by the queries: every table with customer
-- data carries project_id, and every reference between such tables is a composite foreign
-- key that includes project_id, so a row can never point into another project.
--
-- Tenant and resource are '' (never NULL) for "global" and "no pattern", so unique indexes
-- and equality work the same in both engines.

CREATE TABLE organizations (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE projects (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    revision        BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX projects_by_organization ON projects (organization_id, created_at);

CREATE TABLE features (
    id          TEXT NOT NULL PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    CONSTRAINT features_name_unique UNIQUE (project_id, name),
    CONSTRAINT features_project_unique UNIQUE (project_id, id)
);

CREATE TABLE actions (
    id         TEXT NOT NULL PRIMARY KEY,
    project_id TEXT NOT NULL,
    feature_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    CONSTRAINT actions_name_unique UNIQUE (feature_id, name),
    CONSTRAINT actions_project_unique UNIQUE (project_id, feature_id, id),
    CONSTRAINT actions_feature_fk FOREIGN KEY (project_id, feature_id)
        REFERENCES features (project_id, id) ON DELETE CASCADE
);

CREATE TABLE roles (
    id          TEXT NOT NULL PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    CONSTRAINT roles_name_unique UNIQUE (project_id, name),
    CONSTRAINT roles_project_unique UNIQUE (project_id, id)
);

CREATE TABLE permissions (
    project_id TEXT NOT NULL,
    role_id    TEXT NOT NULL,
    feature_id TEXT NOT NULL,
    action_id  TEXT NOT NULL,
    resource   TEXT NOT NULL DEFAULT '',
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
    id           TEXT    NOT NULL PRIMARY KEY,
    project_id   TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    subject_id   TEXT    NOT NULL,
    subject_type TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CONSTRAINT subjects_subject_unique UNIQUE (project_id, subject_id)
);

CREATE TABLE assignments (
    project_id  TEXT    NOT NULL,
    subject_id  TEXT    NOT NULL,
    role_id     TEXT    NOT NULL,
    tenant      TEXT    NOT NULL DEFAULT '',
    valid_from  INTEGER,
    valid_until INTEGER,
    CONSTRAINT assignments_subject_fk FOREIGN KEY (project_id, subject_id)
        REFERENCES subjects (project_id, subject_id) ON DELETE CASCADE,
    CONSTRAINT assignments_role_fk FOREIGN KEY (project_id, role_id)
        REFERENCES roles (project_id, id) ON DELETE CASCADE
);
CREATE INDEX assignments_by_subject ON assignments (project_id, subject_id, tenant);
CREATE INDEX assignments_by_role ON assignments (project_id, role_id);

CREATE TABLE overrides (
    project_id  TEXT    NOT NULL,
    subject_id  TEXT    NOT NULL,
    feature_id  TEXT    NOT NULL,
    action_id   TEXT    NOT NULL,
    effect      TEXT    NOT NULL CHECK (effect IN ('allow', 'deny')),
    resource    TEXT    NOT NULL DEFAULT '',
    tenant      TEXT    NOT NULL DEFAULT '',
    valid_from  INTEGER,
    valid_until INTEGER,
    CONSTRAINT overrides_subject_fk FOREIGN KEY (project_id, subject_id)
        REFERENCES subjects (project_id, subject_id) ON DELETE CASCADE,
    CONSTRAINT overrides_action_fk FOREIGN KEY (project_id, feature_id, action_id)
        REFERENCES actions (project_id, feature_id, id) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX overrides_by_subject ON overrides (project_id, subject_id, tenant);
CREATE INDEX overrides_by_action ON overrides (project_id, feature_id, action_id);

-- scopes: the key's scopes separated by single spaces, in the order given.
CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    project_id   TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    lookup_id    TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    scopes       TEXT    NOT NULL,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX api_keys_by_lookup ON api_keys (lookup_id);
CREATE INDEX api_keys_by_project ON api_keys (project_id, created_at);

-- One row per change; a revision holds one or more changes, numbered by seq from 0.
CREATE TABLE changes (
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    revision   BIGINT  NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    ref        TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    CONSTRAINT changes_pk PRIMARY KEY (project_id, revision, seq)
);
