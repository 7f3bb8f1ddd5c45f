use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

use crate::accounts::{AccountError, Rotation, SessionStore};

/// How long a session lives in Redis after its last rotation.
pub const SESSION_TTL_SECONDS: i64 = 24 * 60 * 60;

/// Keys: `t:<token hash>` (hash: session, used, expires; expires with the token) and
/// `s:<session id>` (hash: user, revoked; 24 h after its last rotation), under the view's hash
/// tag. Rotation is one Lua script, so of two racing refreshes with one token exactly one wins
/// and the other revokes the session, as in the SQL stores.
pub struct RedisSessionStore {
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    rotate: Script,
    revoke: Script,
}

const ROTATE: &str = r#"
-- KEYS: 1 old token, 2 new token. ARGV: 1 now, 2 new token's expiry, 3 session TTL,
-- 4 session key prefix.
local token = redis.call('HMGET', KEYS[1], 'session', 'used', 'expires')
if not token[1] then return {'invalid'} end
local session_key = ARGV[4] .. token[1]
local session = redis.call('HMGET', session_key, 'user', 'revoked')
if not session[1] then return {'invalid'} end
if token[2] == '1' then
  redis.call('HSET', session_key, 'revoked', '1')
  if session[2] == '1' then return {'invalid'} end
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'used', '1')
if session[2] == '1' or tonumber(token[3]) <= tonumber(ARGV[1]) then return {'invalid'} end
-- The session's lifetime is absolute: the next token expires with the first.
local expires = math.min(tonumber(ARGV[2]), tonumber(token[3]))
redis.call('HSET', KEYS[2], 'session', token[1], 'used', '0', 'expires', expires)
redis.call('EXPIREAT', KEYS[2], expires)
redis.call('EXPIREAT', session_key, expires + tonumber(ARGV[3]))
return {'ok', session[1]}
"#;

const REVOKE: &str = r#"
-- KEYS: 1 token. ARGV: 1 session key prefix.
local session = redis.call('HGET', KEYS[1], 'session')
if session then redis.call('HSET', ARGV[1] .. session, 'revoked', '1') end
return 1
"#;

fn unavailable(error: redis::RedisError) -> AccountError {
    AccountError::Unavailable(format!("Redis: {error}"))
}

impl RedisSessionStore {
    pub fn new(config: Arc<RedisConfig>, connection: RedisConnection) -> Self {
        RedisSessionStore {
            config,
            connection,
            rotate: Script::new(ROTATE),
            revoke: Script::new(REVOKE),
        }
    }

    fn token_key(&self, hash: &str) -> String {
        self.config.key(&format!("t:{hash}"))
    }

    fn session_prefix(&self) -> String {
        self.config.key("s:")
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn start(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let session_id = Uuid::now_v7().to_string();
        let session_key = format!("{}{session_id}", self.session_prefix());
        let token_key = self.token_key(token_hash);
        let mut connection = self.connection.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&session_key)
            .arg("user")
            .arg(user_id.to_string())
            .arg("revoked")
            .arg("0")
            .ignore()
            .cmd("EXPIRE")
            .arg(&session_key)
            .arg(SESSION_TTL_SECONDS)
            .ignore()
            .cmd("HSET")
            .arg(&token_key)
            .arg("session")
            .arg(&session_id)
            .arg("used")
            .arg("0")
            .arg("expires")
            .arg(expires_at.timestamp())
            .ignore()
            .cmd("EXPIREAT")
            .arg(&token_key)
            .arg(expires_at.timestamp())
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Uuid, AccountError> {
        let mut connection = self.connection.clone();
        let answer: Vec<String> = self
            .rotate
            .key(self.token_key(rotation.old_hash))
            .key(self.token_key(rotation.new_hash))
            .arg(rotation.now.timestamp())
            .arg(rotation.expires_at.timestamp())
            .arg(SESSION_TTL_SECONDS)
            .arg(self.session_prefix())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        match answer.first().map(String::as_str) {
            Some("ok") => answer
                .get(1)
                .and_then(|user| Uuid::parse_str(user).ok())
                .ok_or_else(|| AccountError::Unexpected("a session without a user".into())),
            Some("reused") => Err(AccountError::TokenReused),
            _ => Err(AccountError::InvalidToken),
        }
    }

    async fn revoke(&self, token_hash: &str) -> Result<(), AccountError> {
        let mut connection = self.connection.clone();
        let _: i64 = self
            .revoke
            .key(self.token_key(token_hash))
            .arg(self.session_prefix())
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
