-- 0003: accounts, sessions, access tokens, organizations' members and invitations, operators,
-- authentication throttles, the mail outbox and the audit log. In lockstep with
-- internal/postgres/migrations/0003_identity.sql.
--
-- Secrets are never stored in the clear: session, access-token, email-token, invitation and
-- recovery-code columns hold SHA-256 hashes; passwords are argon2id PHC strings; TOTP seeds and
-- outbox payloads are sealed values (internal/seal). Booleans are INTEGER 0/1 in both engines.
-- The audit log has no foreign keys on purpose: it outlives what it describes.

ALTER TABLE organizations ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;

CREATE TABLE accounts (
    id                TEXT    NOT NULL PRIMARY KEY,
    email             TEXT    NOT NULL,
    name              TEXT    NOT NULL DEFAULT '',
    password_hash     TEXT    NOT NULL,
    email_verified_at INTEGER,
    totp_secret       TEXT    NOT NULL DEFAULT '',
    totp_pending      TEXT    NOT NULL DEFAULT '',
    totp_enabled_at   INTEGER,
    totp_last_step    BIGINT  NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    CONSTRAINT accounts_email_unique UNIQUE (email)
);

CREATE TABLE recovery_codes (
    account_id TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash  BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE email_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    account_id TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL,
    token_hash BLOB    NOT NULL,
    email      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    CONSTRAINT email_tokens_hash_unique UNIQUE (token_hash)
);
CREATE INDEX email_tokens_by_account ON email_tokens (account_id, purpose);

CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash   BLOB    NOT NULL,
    mfa          INTEGER NOT NULL DEFAULT 0,
    pending_mfa  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ip           TEXT    NOT NULL DEFAULT '',
    user_agent   TEXT    NOT NULL DEFAULT '',
    revoked_at   INTEGER,
    CONSTRAINT sessions_hash_unique UNIQUE (token_hash)
);
CREATE INDEX sessions_by_account ON sessions (account_id, created_at);

CREATE TABLE access_tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    lookup_id    TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    scopes       TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    CONSTRAINT access_tokens_lookup_unique UNIQUE (lookup_id)
);
CREATE INDEX access_tokens_by_account ON access_tokens (account_id, created_at);

CREATE TABLE memberships (
    organization_id TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    account_id      TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, account_id)
);
CREATE INDEX memberships_by_account ON memberships (account_id);

CREATE TABLE invitations (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    token_hash      BLOB    NOT NULL,
    invited_by      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    accepted_at     INTEGER,
    accepted_by     TEXT    NOT NULL DEFAULT '',
    revoked_at      INTEGER,
    CONSTRAINT invitations_hash_unique UNIQUE (token_hash)
);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at);

CREATE TABLE operators (
    account_id TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    granted_by TEXT    NOT NULL
);

CREATE TABLE auth_throttles (
    key             TEXT    NOT NULL PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until    INTEGER
);

CREATE TABLE mail_outbox (
    id              TEXT    NOT NULL PRIMARY KEY,
    to_address      TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    provider_id     TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

-- The head of each audit chain: appends lock it, so concurrent appends to one chain (from
-- any node) serialize and the chain has no gaps or forks.
CREATE TABLE audit_chains (
    chain     TEXT   NOT NULL PRIMARY KEY,
    last_seq  BIGINT NOT NULL,
    last_hash BLOB   NOT NULL
);

CREATE TABLE audit_log (
    id              TEXT    NOT NULL PRIMARY KEY,
    chain           TEXT    NOT NULL,
    seq             BIGINT  NOT NULL,
    at              INTEGER NOT NULL,
    actor_type      TEXT    NOT NULL,
    actor_id        TEXT    NOT NULL DEFAULT '',
    organization_id TEXT    NOT NULL DEFAULT '',
    account_id      TEXT    NOT NULL DEFAULT '',
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL DEFAULT '',
    ip              TEXT    NOT NULL DEFAULT '',
    user_agent      TEXT    NOT NULL DEFAULT '',
    data            TEXT    NOT NULL DEFAULT '',
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL,
    CONSTRAINT audit_log_chain_seq_unique UNIQUE (chain, seq)
);
CREATE INDEX audit_log_by_account ON audit_log (chain, account_id, seq);
