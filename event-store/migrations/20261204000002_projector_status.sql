-- What each projector of the serving process last reported about itself (its heartbeat every
-- 2 s), so `catalog projections status` and `rebuild` can show the embedded views' state.
CREATE TABLE projector_status (
    name       TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    last_error TEXT,
    updated_at TEXT    NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    rebuild    TEXT
);
