//! What `serve` and the other commands need, parsed from the command line ([`super::cli`]) and
//! checked: the engines, the role's settings, the analysts' side. Nothing here opens anything;
//! [`crate::engines`] does, from these.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use secrecy::SecretString;

use super::cli::{AnalystArgs, EngineArgs, ReadFallback, Role, ServeArgs};

/// The engines, as configured (empty values already read as unset).
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub database_url: Option<String>,
    pub database_read_url: Option<String>,
    pub database_pool_size: u32,
    pub bus_url: Option<String>,
    pub redis_url: Option<String>,
    pub search_url: Option<String>,
    /// `CATALOG_IMAGES`: an s3:// bucket for uploaded images; unset, the data directory.
    pub images_url: Option<String>,
    /// Where reads go while the replica is down: the primary, or nowhere (503).
    pub read_fallback_to_primary: bool,
}

impl EngineConfig {
    /// Refuses combinations that cannot work, with one line saying why.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.redis_url {
            redis_client::RedisConfig::from_url(url).map_err(anyhow::Error::msg)?;
            if self.database_url.is_none() {
                bail!("REDIS_URL needs DATABASE_URL: the embedded mode keeps its views in memory");
            }
        }
        if let Some(url) = &self.search_url {
            search::opensearch::endpoint(url)?;
            if self.database_url.is_none() {
                bail!("CATALOG_SEARCH needs DATABASE_URL: the embedded mode searches with its own index");
            }
        }
        if let Some(url) = &self.images_url {
            images::ImagesConfig::from_url(url).map_err(anyhow::Error::msg)?;
        }
        if self.database_url.is_none() {
            if self.bus_url.is_some() {
                bail!("CATALOG_BUS needs DATABASE_URL: the outbox that feeds the bus lives in PostgreSQL");
            }
            if self.database_read_url.is_some() {
                bail!("DATABASE_READ_URL needs DATABASE_URL (the primary the projectors write to)");
            }
        }
        for (name, url) in [
            ("DATABASE_URL", &self.database_url),
            ("DATABASE_READ_URL", &self.database_read_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!("{name} must be a postgres:// URL");
                }
            }
        }
        Ok(())
    }

    pub fn is_distributed(&self) -> bool {
        self.database_url.is_some()
    }
}

/// What `serve` needs, already parsed.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub role: Role,
    pub listen: String,
    pub data_dir: PathBuf,
    pub demo_products: Option<usize>,
    pub jwt_key_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    pub access_token_ttl_seconds: i64,
    pub engines: EngineConfig,
    /// Listen with SO_REUSEPORT (several processes on one port).
    pub reuse_port: bool,
    pub analysts: AnalystConfig,
    /// Edge caches purged by events (base URLs).
    pub edge_purge_urls: Vec<String>,
    pub limits: LimitsConfig,
}

/// Rate limits, connection caps and timeouts, and the trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct LimitsConfig {
    pub rates: web::rate_limit::RateLimits,
    pub connections: web::server::ConnectionLimits,
    pub trusted_proxies: web::client::TrustedProxies,
    /// Between SIGTERM and closing the listener: `/readyz` answers `draining`.
    pub drain_delay: Duration,
}

/// The analysts' side of query-api.
#[derive(Debug, Clone)]
pub struct AnalystConfig {
    /// Envelopes the live ring of `/api/events/stream` holds.
    pub sse_ring: usize,
    pub sse_keep_alive: Duration,
    /// Event streams one user may hold open at once.
    pub sse_streams_per_user: usize,
    /// Record `ProductViewed` and `SearchPerformed`.
    pub capture: bool,
    /// Analytics events queued before new ones are dropped.
    pub capture_queue: usize,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        AnalystConfig {
            sse_ring: 4096,
            sse_keep_alive: Duration::from_secs(15),
            sse_streams_per_user: 4,
            capture: true,
            capture_queue: 10_000,
        }
    }
}

impl ServeConfig {
    /// `catalog serve`'s settings from its arguments: a role's default address unless one is
    /// given, demo data only with `--demo`, an empty `CATALOG_JWKS_URL` read as unset.
    pub fn from_args(data_dir: PathBuf, engines: EngineConfig, args: ServeArgs) -> Self {
        ServeConfig {
            role: args.role,
            listen: args
                .listen
                .unwrap_or_else(|| args.role.default_listen().to_owned()),
            data_dir,
            demo_products: args.demo.then_some(args.demo_products),
            jwt_key_file: args.auth.jwt_key_file,
            jwks_url: args.auth.jwks_url.filter(|url| !url.is_empty()),
            admin_email: args.auth.admin_email,
            admin_password: args.auth.admin_password,
            access_token_ttl_seconds: args.auth.access_token_ttl_seconds,
            engines,
            reuse_port: args.reuse_port,
            analysts: args.analysts.to_config(),
            edge_purge_urls: args
                .edge_purge_url
                .into_iter()
                .map(|url| url.trim().to_owned())
                .filter(|url| !url.is_empty())
                .collect(),
            limits: args.limits.to_config(args.role),
        }
    }

    /// Embedded defaults under `data_dir`, listening on `listen`.
    pub fn embedded(data_dir: PathBuf, listen: &str) -> Self {
        ServeConfig {
            role: Role::All,
            listen: listen.to_owned(),
            data_dir,
            demo_products: None,
            jwt_key_file: None,
            jwks_url: None,
            admin_email: None,
            admin_password: None,
            access_token_ttl_seconds: 900,
            engines: EngineConfig {
                database_pool_size: 16,
                ..EngineConfig::default()
            },
            reuse_port: false,
            analysts: AnalystConfig::default(),
            edge_purge_urls: Vec::new(),
            limits: LimitsConfig::default(),
        }
    }
}

impl AnalystArgs {
    pub fn to_config(&self) -> AnalystConfig {
        AnalystConfig {
            sse_ring: self.sse_ring.max(1),
            sse_keep_alive: std::time::Duration::from_secs(self.sse_keep_alive_seconds.max(1)),
            sse_streams_per_user: self.sse_streams_per_user.max(1),
            capture: self.analytics_capture,
            capture_queue: self.analytics_queue.max(1),
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .filter(|text| !text.trim().is_empty())
        .map(str::to_owned)
}

impl EngineArgs {
    /// The engine settings, with empty values read as unset.
    pub fn to_config(&self) -> EngineConfig {
        EngineConfig {
            database_url: non_empty(&self.database_url),
            database_read_url: non_empty(&self.database_read_url),
            database_pool_size: self.database_pool_size.max(2),
            bus_url: non_empty(&self.bus),
            redis_url: non_empty(&self.redis_url),
            search_url: non_empty(&self.search),
            images_url: non_empty(&self.images),
            read_fallback_to_primary: self.read_fallback == ReadFallback::Primary,
        }
    }
}
