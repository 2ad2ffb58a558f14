-- 0003: accounts, sessions, access tokens, organizations' members and invitations, operators,
-- authentication throttles, the mail outbox and the audit log. In lockstep with
-- internal/sqlite/migrations/0003_identity.sql.
--
-- Secrets are never stored in the clear: session, access-token, email-token, invitation and
-- recovery-code columns hold SHA-256 hashes; passwords are argon2id PHC strings; TOTP seeds and
-- outbox payloads are sealed values (internal/seal). Booleans are INTEGER 0/1 in both engines;
-- the other types follow 0001's conventions.
-- The audit log has no foreign keys on purpose: it outlives what it describes.

ALTER TABLE organizations ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;

CREATE TABLE accounts (
    id                TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    email             TEXT COLLATE "C"    NOT NULL,
    name              TEXT COLLATE "C"    NOT NULL DEFAULT '',
    password_hash     TEXT COLLATE "C"    NOT NULL,
    email_verified_at TIMESTAMPTZ,
    totp_secret       TEXT COLLATE "C"    NOT NULL DEFAULT '',
    totp_pending      TEXT COLLATE "C"    NOT NULL DEFAULT '',
    totp_enabled_at   TIMESTAMPTZ,
    totp_last_step    BIGINT  NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT accounts_email_unique UNIQUE (email)
);

CREATE TABLE recovery_codes (
    account_id TEXT COLLATE "C"    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash  BYTEA    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE email_tokens (
    id         TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    account_id TEXT COLLATE "C"    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose    TEXT COLLATE "C"    NOT NULL,
    token_hash BYTEA    NOT NULL,
    email      TEXT COLLATE "C"    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    CONSTRAINT email_tokens_hash_unique UNIQUE (token_hash)
);
CREATE INDEX email_tokens_by_account ON email_tokens (account_id, purpose);

CREATE TABLE sessions (
    id           TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    account_id   TEXT COLLATE "C"    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash   BYTEA    NOT NULL,
    mfa          INTEGER NOT NULL DEFAULT 0,
    pending_mfa  INTEGER NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ip           TEXT COLLATE "C"    NOT NULL DEFAULT '',
    user_agent   TEXT COLLATE "C"    NOT NULL DEFAULT '',
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT sessions_hash_unique UNIQUE (token_hash)
);
CREATE INDEX sessions_by_account ON sessions (account_id, created_at);

CREATE TABLE access_tokens (
    id           TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    account_id   TEXT COLLATE "C"    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT COLLATE "C"    NOT NULL,
    lookup_id    TEXT COLLATE "C"    NOT NULL,
    hash         BYTEA    NOT NULL,
    scopes       TEXT COLLATE "C"    NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT access_tokens_lookup_unique UNIQUE (lookup_id)
);
CREATE INDEX access_tokens_by_account ON access_tokens (account_id, created_at);

CREATE TABLE memberships (
    organization_id TEXT COLLATE "C"    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    account_id      TEXT COLLATE "C"    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role            TEXT COLLATE "C"    NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (organization_id, account_id)
);
CREATE INDEX memberships_by_account ON memberships (account_id);

CREATE TABLE invitations (
    id              TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    organization_id TEXT COLLATE "C"    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email           TEXT COLLATE "C"    NOT NULL,
    role            TEXT COLLATE "C"    NOT NULL,
    token_hash      BYTEA    NOT NULL,
    invited_by      TEXT COLLATE "C"    NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    accepted_at     TIMESTAMPTZ,
    accepted_by     TEXT COLLATE "C"    NOT NULL DEFAULT '',
    revoked_at      TIMESTAMPTZ,
    CONSTRAINT invitations_hash_unique UNIQUE (token_hash)
);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at);

CREATE TABLE operators (
    account_id TEXT COLLATE "C"    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT COLLATE "C"    NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    granted_by TEXT COLLATE "C"    NOT NULL
);

CREATE TABLE auth_throttles (
    key             TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at TIMESTAMPTZ NOT NULL,
    locked_until    TIMESTAMPTZ
);

CREATE TABLE mail_outbox (
    id              TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    to_address      TEXT COLLATE "C"    NOT NULL,
    template        TEXT COLLATE "C"    NOT NULL,
    payload         TEXT COLLATE "C"    NOT NULL,
    status          TEXT COLLATE "C"    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT COLLATE "C"    NOT NULL DEFAULT '',
    provider_id     TEXT COLLATE "C"    NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

-- The head of each audit chain: appends lock it, so concurrent appends to one chain (from
-- any node) serialize and the chain has no gaps or forks.
CREATE TABLE audit_chains (
    chain     TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    last_seq  BIGINT NOT NULL,
    last_hash BYTEA   NOT NULL
);

CREATE TABLE audit_log (
    id              TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    chain           TEXT COLLATE "C"    NOT NULL,
    seq             BIGINT  NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    actor_type      TEXT COLLATE "C"    NOT NULL,
    actor_id        TEXT COLLATE "C"    NOT NULL DEFAULT '',
    organization_id TEXT COLLATE "C"    NOT NULL DEFAULT '',
    account_id      TEXT COLLATE "C"    NOT NULL DEFAULT '',
    action          TEXT COLLATE "C"    NOT NULL,
    target          TEXT COLLATE "C"    NOT NULL DEFAULT '',
    ip              TEXT COLLATE "C"    NOT NULL DEFAULT '',
    user_agent      TEXT COLLATE "C"    NOT NULL DEFAULT '',
    data            TEXT COLLATE "C"    NOT NULL DEFAULT '',
    prev_hash       BYTEA    NOT NULL,
    hash            BYTEA    NOT NULL,
    CONSTRAINT audit_log_chain_seq_unique UNIQUE (chain, seq)
);
CREATE INDEX audit_log_by_account ON audit_log (chain, account_id, seq);
