-- Aggregate snapshots: one row per aggregate and state format, the state after
-- `aggregate_version` (written with the events, or after a load that replayed many). Loading an
-- aggregate reads its row here and the events after it. A row of another format is ignored and
-- dropped when one of the current format is written; deleting rows loses nothing (the events
-- rebuild them).
CREATE TABLE snapshots (
    aggregate_id      TEXT    NOT NULL,
    state_version     INTEGER NOT NULL,
    aggregate_version INTEGER NOT NULL,
    state             TEXT    NOT NULL,
    taken_at          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_id, state_version)
);
