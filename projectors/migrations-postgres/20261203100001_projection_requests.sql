-- An operator's requests to a view's projector (projectors::parking::ViewAction: rebuild,
-- pause, resume), taken by the running projector within a second and deleted as it acts.
CREATE TABLE projection_requests (
    id           BIGSERIAL   PRIMARY KEY,
    view         TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    requested_by TEXT        NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX projection_requests_view ON projection_requests (view, id);

-- What a projector reports beyond its position: the generation readers see, and a rebuild in
-- progress (projectors::runner::RebuildProgress as JSON).
ALTER TABLE projector_status ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
ALTER TABLE projector_status ADD COLUMN rebuild JSONB;

-- The generation of each blue/green view kept in PostgreSQL (projectors::generations): the
-- read model's tables are swapped in one transaction, and this row moves with them.
CREATE TABLE rm_generations (
    view        TEXT        PRIMARY KEY,
    generation  BIGINT      NOT NULL,
    version     BIGINT      NOT NULL,
    switched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
