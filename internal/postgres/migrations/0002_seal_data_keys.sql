-- 0002: the data keys of internal/seal (envelope encryption of stored secrets), in lockstep
-- with internal/sqlite/migrations/0002_seal_data_keys.sql.
--
-- Each row is a random AES-256 key wrapped (encrypted) under the operator's master key
-- master_key_id, which is never stored. The keys belong to the installation, not to an
-- organization or project. retired_at is set once a rotation has re-sealed every value away
-- from the key; retired keys are kept so that a value the walk missed still opens.

CREATE TABLE seal_data_keys (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    master_key_id TEXT COLLATE "C" NOT NULL,
    wrapped       BYTEA            NOT NULL,
    created_at    TIMESTAMPTZ      NOT NULL,
    retired_at    TIMESTAMPTZ
);
