-- The event log: append-only. Positions are assigned by the appender while it holds the lock
-- on the single `event_head` row (see `PostgresEventStore`), so they are dense and
-- commit-ordered: a reader that has seen position N can never later find a new N-1.
CREATE TABLE events (
    position          BIGINT      PRIMARY KEY,
    event_id          UUID        NOT NULL UNIQUE,
    event_type        TEXT        NOT NULL,
    schema_version    INTEGER     NOT NULL,
    aggregate_id      UUID        NOT NULL,
    aggregate_version BIGINT      NOT NULL,
    occurred_at       TIMESTAMPTZ NOT NULL,
    actor             TEXT,
    correlation_id    TEXT,
    causation_id      TEXT,
    data              JSONB       NOT NULL,
    CONSTRAINT events_aggregate_version_unique UNIQUE (aggregate_id, aggregate_version)
);

-- The highest committed position. Every append locks this one row until it commits.
CREATE TABLE event_head (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    position BIGINT  NOT NULL
);
INSERT INTO event_head (id, position) VALUES (TRUE, 0);

-- Values at most one aggregate may hold (product SKUs), written with the events.
CREATE TABLE unique_claims (
    scope        TEXT NOT NULL,
    value        TEXT NOT NULL,
    aggregate_id UUID NOT NULL,
    PRIMARY KEY (scope, value)
);

-- The transactional outbox: one row per event not yet handed to the bus, written in the
-- append's transaction and deleted by the relay once the bus acknowledged the event.
CREATE TABLE outbox (
    position     BIGINT PRIMARY KEY REFERENCES events (position),
    aggregate_id UUID   NOT NULL
);

CREATE TABLE users (
    id            UUID        PRIMARY KEY,
    email         TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- A login session; refresh tokens rotate within it.
CREATE TABLE sessions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id),
    revoked    BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);

-- Every refresh token ever issued, by hash; `used` marks rotated ones so reuse is detected.
CREATE TABLE refresh_tokens (
    token_hash TEXT        PRIMARY KEY,
    session_id UUID        NOT NULL REFERENCES sessions (id),
    used       BOOLEAN     NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Idempotency keys per caller: the first response, replayed for retries.
CREATE TABLE idempotency_keys (
    caller       TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    completed    BOOLEAN     NOT NULL DEFAULT FALSE,
    status       INTEGER,
    headers      JSONB,
    body         BYTEA,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
