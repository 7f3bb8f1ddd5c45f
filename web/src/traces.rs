//! The OpenTelemetry side of [`crate::telemetry::init_tracing`]: an OTLP/HTTP exporter whose
//! requests run on the process's tokio runtime, and the layer that turns the catalog's
//! `tracing` spans into OpenTelemetry spans.

use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The crates whose spans are exported (their events are not: logs go to the log).
const TRACED_CRATES: &[&str] = &[
    "web",
    "command_api",
    "event_store",
    "bus",
    "projectors",
    "query_api",
    "catalog",
    "search",
    "redis_client",
];

type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync + 'static>;

fn setting(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The layer and its provider when the environment asks for traces; `Err` says why it
/// cannot.
pub(crate) fn layer<S>(
    default_service: &str,
) -> Result<Option<(BoxedLayer<S>, SdkTracerProvider)>, String>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let disabled = setting("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || setting("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let endpoint = setting("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|| setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    if disabled || endpoint.is_none() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "traces need the async runtime to be started first".to_owned())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| error.to_string())?;
    // The endpoint and its path, the headers and the timeout come from the standard
    // OTEL_EXPORTER_OTLP_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(ExportClient { client, runtime })
        .build()
        .map_err(|error| error.to_string())?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if setting("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(default_service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("catalog");
    let only_our_spans = tracing_subscriber::filter::filter_fn(|metadata| {
        let target = metadata.target();
        metadata.is_span()
            && TRACED_CRATES.iter().any(|name| {
                target
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(only_our_spans)
        .boxed();
    Ok(Some((layer, provider)))
}

/// The exporter's HTTP client: reqwest on the process's runtime. The batch processor runs the
/// export on a thread of its own, outside the runtime, so each request is spawned onto it.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut response = Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
