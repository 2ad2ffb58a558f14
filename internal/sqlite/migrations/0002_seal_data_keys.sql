-- 0002: the data keys of internal/seal (envelope encryption of stored secrets), in lockstep
-- with internal/postgres/migrations/0002_seal_data_keys.sql.
--
-- Each row is a random AES-256 key wrapped (encrypted) under the operator's master key
-- master_key_id, which is never stored. The keys belong to the installation, not to an
-- organization or project. retired_at is set once a rotation has re-sealed every value away
-- from the key; retired keys are kept so that a value the walk missed still opens.

CREATE TABLE seal_data_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    master_key_id TEXT    NOT NULL,
    wrapped       BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER
);
