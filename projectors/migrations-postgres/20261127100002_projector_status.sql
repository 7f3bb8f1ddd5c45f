-- What each projector process last reported about itself (its heartbeat), so any command-api
-- replica can answer GET /api/admin/projections for projectors running elsewhere.
CREATE TABLE projector_status (
    name       TEXT        PRIMARY KEY,
    state      TEXT        NOT NULL,
    position   BIGINT      NOT NULL,
    last_error TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);
