-- The event log: append-only. `position` is the rowid, so it is dense (SQLite never skips a
-- rowid for a rolled-back insert) and, with one writer at a time, commit-ordered.
CREATE TABLE events (
    position          INTEGER PRIMARY KEY,
    event_id          TEXT    NOT NULL UNIQUE,
    event_type        TEXT    NOT NULL,
    schema_version    INTEGER NOT NULL,
    aggregate_id      TEXT    NOT NULL,
    aggregate_version INTEGER NOT NULL,
    occurred_at       TEXT    NOT NULL,
    actor             TEXT,
    correlation_id    TEXT,
    causation_id      TEXT,
    data              TEXT    NOT NULL,
    CONSTRAINT events_aggregate_version_unique UNIQUE (aggregate_id, aggregate_version)
);

-- Values at most one aggregate may hold (product SKUs), written with the events.
CREATE TABLE unique_claims (
    scope        TEXT NOT NULL,
    value        TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    PRIMARY KEY (scope, value)
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- A login session; refresh tokens rotate within it.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id),
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

-- Every refresh token ever issued, by hash; `used` marks rotated ones so reuse is detected.
CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id),
    used       INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Idempotency keys per caller: the first response, replayed for retries.
CREATE TABLE idempotency_keys (
    caller       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    completed    INTEGER NOT NULL DEFAULT 0,
    status       INTEGER,
    headers      TEXT,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
