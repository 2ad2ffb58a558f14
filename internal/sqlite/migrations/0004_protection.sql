-- 0004: organization suspension, the decision log, security events, webhooks and incidents.
-- In lockstep with internal/postgres/migrations/0004_protection.sql.
--
-- The decision log and security events have no foreign keys to projects: they are written
-- asynchronously and outlive what they describe (retention deletes them). Webhook secrets are
-- sealed values (internal/seal, purpose "webhook"). Booleans are INTEGER 0/1.

ALTER TABLE organizations ADD COLUMN suspended_at INTEGER;
ALTER TABLE organizations ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';

CREATE TABLE decision_log (
    id         TEXT    NOT NULL PRIMARY KEY,
    project_id TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    key_id     TEXT    NOT NULL DEFAULT '',
    subject    TEXT    NOT NULL DEFAULT '',
    feature    TEXT    NOT NULL DEFAULT '',
    action     TEXT    NOT NULL DEFAULT '',
    tenant     TEXT    NOT NULL DEFAULT '',
    resource   TEXT    NOT NULL DEFAULT '',
    allowed    INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    latency_us BIGINT  NOT NULL DEFAULT 0,
    gap        BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX decision_log_by_project ON decision_log (project_id, at, id);
CREATE INDEX decision_log_by_subject ON decision_log (project_id, subject, at);
CREATE INDEX decision_log_by_time ON decision_log (at);

CREATE TABLE security_events (
    id              TEXT    NOT NULL PRIMARY KEY,
    organization_id TEXT    NOT NULL DEFAULT '',
    project_id      TEXT    NOT NULL DEFAULT '',
    kind            TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    title           TEXT    NOT NULL,
    evidence        TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX security_events_by_organization ON security_events (organization_id, at, id);

CREATE TABLE webhook_endpoints (
    id                         TEXT    NOT NULL PRIMARY KEY,
    organization_id            TEXT    NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url                        TEXT    NOT NULL,
    description                TEXT    NOT NULL DEFAULT '',
    events                     TEXT    NOT NULL DEFAULT '',
    secret                     TEXT    NOT NULL,
    previous_secret            TEXT    NOT NULL DEFAULT '',
    previous_secret_expires_at INTEGER,
    disabled_at                INTEGER,
    disabled_reason            TEXT    NOT NULL DEFAULT '',
    created_at                 INTEGER NOT NULL,
    CONSTRAINT webhook_endpoints_org_unique UNIQUE (organization_id, id)
);

CREATE TABLE webhook_deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    organization_id  TEXT    NOT NULL,
    endpoint_id      TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          BLOB    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_attempt_at  INTEGER,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    CONSTRAINT webhook_deliveries_org_unique UNIQUE (organization_id, id),
    CONSTRAINT webhook_deliveries_endpoint_fk FOREIGN KEY (organization_id, endpoint_id)
        REFERENCES webhook_endpoints (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (organization_id, endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    organization_id TEXT    NOT NULL,
    delivery_id     TEXT    NOT NULL,
    number          INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    duration_ms     BIGINT  NOT NULL DEFAULT 0,
    status_code     INTEGER NOT NULL DEFAULT 0,
    error           TEXT    NOT NULL DEFAULT '',
    retry_after_ms  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (delivery_id, number),
    CONSTRAINT webhook_attempts_delivery_fk FOREIGN KEY (organization_id, delivery_id)
        REFERENCES webhook_deliveries (organization_id, id) ON DELETE CASCADE
);

CREATE TABLE incidents (
    id         TEXT    NOT NULL PRIMARY KEY,
    title      TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    closed_at  INTEGER
);

CREATE TABLE incident_events (
    incident_id TEXT    NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (incident_id, seq)
);

-- Audit retention (PruneAudit) deletes the oldest entries first.
CREATE INDEX audit_log_by_time ON audit_log (at);
