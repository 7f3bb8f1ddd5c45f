-- Poison events a view parked (projectors::parking): one record per view and position, kept
-- after an operator's decision (state applied or skipped) as the record of it.
CREATE TABLE parked_events (
    view             TEXT        NOT NULL,
    position         BIGINT      NOT NULL,
    aggregate_id     UUID        NOT NULL,
    event_type       TEXT        NOT NULL,
    state            TEXT        NOT NULL,
    error            TEXT,
    attempts         BIGINT      NOT NULL,
    first_attempt_at TIMESTAMPTZ NOT NULL,
    last_attempt_at  TIMESTAMPTZ NOT NULL,
    requested        TEXT,
    decided_by       TEXT,
    decided_at       TIMESTAMPTZ,
    PRIMARY KEY (view, position)
);
