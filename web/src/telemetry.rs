//! Tracing and metrics set-up shared by the binary and the tests.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use (tests start many apps in one
/// process; a recorder can be installed only once).
pub fn metrics_handle() -> &'static PrometheusHandle {
    METRICS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is already installed; the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Flushes the spans not exported yet when dropped (keep it until the process ends).
#[must_use = "dropping the guard stops the export of traces"]
pub struct TracingGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("catalog: the last traces were not exported: {error}");
            }
        }
    }
}

/// Installs a `tracing` subscriber reading `RUST_LOG` (default `info`), as text or, with
/// `json`, as one JSON object per line; and, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, an OpenTelemetry layer that exports the
/// catalog's spans over OTLP/HTTP (protobuf) as service `OTEL_SERVICE_NAME` (default
/// `default_service`). Spans are batched by a processor of their own, on its own thread, with a
/// bounded queue (`OTEL_BSP_*`): a slow or absent collector drops spans, never slows a request.
/// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn the export off. Call it inside
/// the async runtime (the export runs its requests there).
pub fn init_tracing(json: bool, default_service: &str) -> TracingGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let text = tracing_subscriber::fmt::layer().with_target(false);
    let text = match json {
        true => text.json().with_filter(filter).boxed(),
        false => text.with_filter(filter).boxed(),
    };
    let (traces, provider) = match crate::traces::layer(default_service) {
        Ok(Some((layer, provider))) => (Some(layer), Some(provider)),
        Ok(None) => (None, None),
        Err(error) => {
            eprintln!("catalog: traces are not exported: {error}");
            (None, None)
        }
    };
    // Already installed (tests): keep the first.
    let installed = tracing_subscriber::registry()
        .with(text)
        .with(traces)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        events::trace::enable();
    }
    TracingGuard(provider.filter(|_| installed))
}
