-- An operator's requests to a view's projector (projectors::parking::ViewAction: rebuild,
-- pause, resume), taken by the running projector within a second and deleted as it acts.
CREATE TABLE projection_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    view         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    requested_at TEXT    NOT NULL
);
CREATE INDEX projection_requests_view ON projection_requests (view, id);
