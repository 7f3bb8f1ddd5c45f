//! Users and sessions in the embedded SQLite database (the event store's file).

mod sessions;
mod users;

pub use sessions::SqliteSessionStore;
pub use users::SqliteUserStore;
