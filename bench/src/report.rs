//! Latency histograms (HdrHistogram, microseconds), loopback checks, and the admin session
//! the write tools share.

use anyhow::Context;
use hdrhistogram::Histogram;

/// A histogram of 1 µs to 60 s with three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable_histogram()))
}

fn unreachable_histogram() -> Histogram<u64> {
    // `Histogram::new(3)` only fails for more than five significant digits.
    panic!("cannot build a histogram")
}

/// `p50 … p99.9 max` in milliseconds.
pub fn percentiles(histogram: &Histogram<u64>) -> String {
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    format!(
        "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0
    )
}

/// Refuses URLs that do not point at a loopback address.
pub fn require_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).with_context(|| url.to_owned())?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    anyhow::ensure!(
        loopback,
        "{url} is not a loopback address; this tool only loads loopback"
    );
    Ok(())
}

/// Creates `items` with one `POST /api/products/bulk`; their ids, in order. Fails when any
/// item was not created.
pub async fn bulk_create(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    items: &[serde_json::Value],
) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let answer: serde_json::Value = client
        .post(format!("{url}/api/products/bulk"))
        .bearer_auth(token)
        .json(items)
        .send()
        .await?
        .json()
        .await?;
    answer["results"]
        .as_array()
        .context("bulk results")?
        .iter()
        .map(|result| {
            result["id"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("bulk item not created: {result}"))
        })
        .collect()
}

/// Logs in at `url`; returns the access token.
pub async fn login(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    use anyhow::Context;
    let login: serde_json::Value = client
        .post(format!("{url}/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .context("login")?
        .error_for_status()
        .context("login")?
        .json()
        .await?;
    Ok(login["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}

/// Logs the admin in at `url` and makes sure the `bench` category exists; returns the access
/// token.
pub async fn admin_session(
    client: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let token = login(client, url, email, password).await?;
    // 201, or 409 when an earlier run created it.
    let _ = client
        .post(format!("{url}/api/categories"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"slug": "bench", "name": "Bench"}))
        .send()
        .await?;
    Ok(token)
}
