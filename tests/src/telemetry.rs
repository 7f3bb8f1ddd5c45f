//! Where the spawned apps' tracing output goes: to stdout when `TEST_LOG` is set (filtered by
//! `RUST_LOG`, or [`DEFAULT_FILTER`]), into a sink otherwise, so a test run prints only the
//! harness's lines unless one asks for more.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is not set: what the server logs by default.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// Installs the process's subscriber once (every app of a test binary shares it).
pub(crate) fn init_test_tracing() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false);
        // Another subscriber already installed (by the test itself) wins: keep it.
        let _ = if std::env::var_os("TEST_LOG").is_some() {
            builder.with_writer(std::io::stdout).try_init()
        } else {
            builder.with_writer(std::io::sink).try_init()
        };
    });
}
