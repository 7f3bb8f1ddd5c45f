//! A Redis connection chosen by URL, standalone or cluster, with the view's key naming.
//!
//! `REDIS_URL=redis://host:6379[/db][?prefix=catalog]` or
//! `REDIS_URL=redis+cluster://host:7000,host:7001,…[?prefix=catalog]`.
//!
//! Every key of a view starts with the hash tag `{prefix}`, so all of them live in one cluster
//! slot: one event's writes and the checkpoint that covers them are a single atomic script
//! even on a Redis Cluster. The view is then served by one shard (and its replicas); sharding it
//! would need a checkpoint per slot, which a catalog of hundreds of thousands of products does
//! not need (100,000 products are about 150 MB).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Where Redis is, parsed from `REDIS_URL`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://…` URLs of the nodes: one for a standalone server, the seeds of a cluster.
    pub nodes: Vec<String>,
    pub cluster: bool,
    /// The hash tag every key starts with (without braces).
    pub prefix: String,
}

impl RedisConfig {
    pub fn from_url(url: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("REDIS_URL {url:?}: {why}");
        let (scheme, rest, cluster) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis://", rest, true)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            ("redis://", rest, false)
        } else if let Some(rest) = url.strip_prefix("rediss://") {
            ("rediss://", rest, false)
        } else {
            return Err(invalid(
                "use redis://host:6379 or redis+cluster://host:7000,host:7001",
            ));
        };
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut prefix = "catalog".to_owned();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value))
                    if !value.is_empty()
                        && value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    prefix = value.to_owned()
                }
                _ => return Err(invalid(&format!("unknown or malformed parameter {pair:?}"))),
            }
        }
        let hosts: Vec<&str> = if cluster {
            address.trim_end_matches('/').split(',').collect()
        } else {
            vec![address]
        };
        if hosts.iter().any(|host| host.is_empty()) {
            return Err(invalid("name the host (and port)"));
        }
        if !cluster && address.contains(',') {
            return Err(invalid("several hosts need redis+cluster://"));
        }
        Ok(RedisConfig {
            nodes: hosts
                .into_iter()
                .map(|host| format!("{scheme}{host}"))
                .collect(),
            cluster,
            prefix,
        })
    }

    /// A key of the view: `{prefix}:suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{{{}}}:{suffix}", self.prefix)
    }
}

/// How long a connect and a response may take before the call fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A multiplexed connection to a standalone Redis (reconnecting by itself) or to a cluster.
#[derive(Clone)]
pub enum RedisConnection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Connects; fails within [`CONNECT_TIMEOUT`] when Redis does not answer.
    pub async fn connect(config: &RedisConfig) -> Result<Self, String> {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT * 2, async {
            let result: Result<Self, String> = async {
                if config.cluster {
                    let client = ClusterClientBuilder::new(config.nodes.clone())
                        .connection_timeout(CONNECT_TIMEOUT)
                        .response_timeout(RESPONSE_TIMEOUT)
                        .retries(2)
                        .build()
                        .map_err(|error| error.to_string())?;
                    let connection = client
                        .get_async_connection()
                        .await
                        .map_err(|error| error.to_string())?;
                    Ok(RedisConnection::Cluster(connection))
                } else {
                    let client = redis::Client::open(config.nodes[0].as_str())
                        .map_err(|error| error.to_string())?;
                    let manager_config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(CONNECT_TIMEOUT))
                        .set_response_timeout(Some(RESPONSE_TIMEOUT))
                        .set_number_of_retries(1)
                        .set_max_delay(Duration::from_secs(2));
                    let manager = client
                        .get_connection_manager_with_config(manager_config)
                        .await
                        .map_err(|error| error.to_string())?;
                    Ok(RedisConnection::Standalone(manager))
                }
            }
            .await;
            result
        })
        .await;
        match connected {
            Ok(result) => result.map_err(|error| format!("cannot connect to Redis: {error}")),
            Err(_) => Err("cannot connect to Redis: timed out".to_owned()),
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Standalone(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Standalone(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Standalone(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_and_cluster_urls_parse_with_a_prefix() {
        let single = RedisConfig::from_url("redis://127.0.0.1:6379/2?prefix=shop").expect("ok");
        assert_eq!(single.nodes, vec!["redis://127.0.0.1:6379/2"]);
        assert!(!single.cluster);
        assert_eq!(single.key("p:1"), "{shop}:p:1");
        let cluster =
            RedisConfig::from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").expect("ok");
        assert_eq!(
            cluster.nodes,
            vec!["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert!(cluster.cluster);
        assert_eq!(cluster.key("checkpoint"), "{catalog}:checkpoint");
        for bad in [
            "http://x",
            "redis://a:1,b:2",
            "redis://x?prefix=a{b}",
            "redis://x?size=3",
            "redis+cluster://",
        ] {
            assert!(RedisConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
