//! Refresh-token sessions in Redis (when `REDIS_URL` is set): every command-api replica sees
//! them, and Redis expires them after 24 h by itself.

mod sessions;

pub use sessions::RedisSessionStore;
