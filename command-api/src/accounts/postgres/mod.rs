//! Users and sessions in PostgreSQL (the event store's database, shared by every command-api
//! replica, so replicas stay stateless).

mod sessions;
mod users;

pub use sessions::PostgresSessionStore;
pub use users::PostgresUserStore;
