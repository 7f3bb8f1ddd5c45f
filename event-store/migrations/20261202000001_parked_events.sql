-- Poison events a view parked (projectors::parking): one record per view and position, kept
-- after an operator's decision (state applied or skipped) as the record of it.
CREATE TABLE parked_events (
    view             TEXT    NOT NULL,
    position         INTEGER NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    error            TEXT,
    attempts         INTEGER NOT NULL,
    first_attempt_at TEXT    NOT NULL,
    last_attempt_at  TEXT    NOT NULL,
    requested        TEXT,
    decided_by       TEXT,
    decided_at       TEXT,
    PRIMARY KEY (view, position)
);
