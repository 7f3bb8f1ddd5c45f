//! Token keys: the command role signs with an Ed25519 key (a configured file, or one generated
//! once under the data dir); roles that only verify read the public half of that file or fetch
//! the JWKS from `CATALOG_JWKS_URL`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use auth::{TokenSigner, TokenVerifier};

use crate::config::ServeConfig;

/// The name of the signing key generated under the data dir when no key file is configured.
pub const DATA_DIR_KEY_FILE: &str = "jwt-ed25519.pem";

/// The file of the command role's signing key.
pub fn signing_key_path(config: &ServeConfig) -> std::path::PathBuf {
    config
        .jwt_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(DATA_DIR_KEY_FILE))
}

/// The signing key of the command role: the configured file, or one generated once under
/// the data dir.
pub fn load_signer(config: &ServeConfig) -> anyhow::Result<TokenSigner> {
    match &config.jwt_key_file {
        Some(path) => TokenSigner::load_or_create(path, false, config.access_token_ttl_seconds)
            .with_context(|| format!("cannot read CATALOG_JWT_KEY_FILE {}", path.display())),
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("cannot create the data dir {}", config.data_dir.display())
            })?;
            TokenSigner::load_or_create(
                &signing_key_path(config),
                true,
                config.access_token_ttl_seconds,
            )
            .context("cannot load or create the token signing key")
        }
    }
}

/// The verifier of a role that does not sign: keys from `CATALOG_JWKS_URL`, else the public
/// half of the key file (configured or under the data dir).
pub async fn load_verifier(config: &ServeConfig) -> anyhow::Result<TokenVerifier> {
    if let Some(url) = &config.jwks_url {
        let mut last_error = String::new();
        for _ in 0..10 {
            match fetch_jwks(url).await {
                Ok(jwks) => {
                    let verifier = TokenVerifier::from_jwks(&jwks)
                        .map_err(|error| anyhow::anyhow!("{error}"))?;
                    tokio::spawn(refresh_jwks(url.clone(), verifier.clone()));
                    return Ok(verifier);
                }
                Err(error) => last_error = error,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("cannot fetch the token keys from CATALOG_JWKS_URL {url}: {last_error}");
    }
    let path = signing_key_path(config);
    if !path.exists() {
        bail!(
            "no token key to verify with: set CATALOG_JWT_KEY_FILE or CATALOG_JWKS_URL \
             (looked for {})",
            path.display()
        );
    }
    let signer = TokenSigner::load_or_create(&path, false, config.access_token_ttl_seconds)
        .with_context(|| format!("cannot read the token key {}", path.display()))?;
    Ok(signer.verifier())
}

/// The query role verifies tokens only so that admins can read drafts; without keys it still
/// serves everyone else. A key file another role is about to create gets a few seconds.
pub async fn query_verifier(config: &ServeConfig) -> Option<Arc<TokenVerifier>> {
    let mut last_error = None;
    for _ in 0..10 {
        match load_verifier(config).await {
            Ok(verifier) => return Some(Arc::new(verifier)),
            Err(error) if config.jwks_url.is_some() => {
                last_error = Some(error);
                break;
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(error) = last_error {
        tracing::warn!(error = %format!("{error:#}"), "the query role cannot verify tokens; admins cannot read drafts through it");
    }
    None
}

/// Re-reads the signing key files every 10 s (a `catalog keys rotate` staged or promoted a
/// key) and gives the process's own verifier the new key set.
pub async fn follow_key_files(
    signer: Arc<auth::rotation::SharedSigner>,
    verifier: Arc<TokenVerifier>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        match signer.reload() {
            Ok(false) => {}
            Ok(true) => match verifier.replace_keys(&signer.jwks()) {
                Ok(keys) => {
                    tracing::info!(keys, kid = %signer.get().key_id(), "re-read the token signing keys")
                }
                Err(error) => tracing::warn!(%error, "cannot use the re-read token keys"),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot re-read the token signing keys; keeping the ones I have")
            }
        }
    }
}

/// How often a verifier re-reads `CATALOG_JWKS_URL`, and the least time between two reads
/// (a token naming an unknown key asks for one at once, but no more often than this).
pub const JWKS_REFRESH: Duration = Duration::from_secs(300);
const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Keeps a verifier's keys in step with the signer's JWKS: every [`JWKS_REFRESH`], and soon
/// after a token names a key it does not know (a key rotated in). A failed read keeps the
/// keys it had.
async fn refresh_jwks(url: String, verifier: TokenVerifier) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(JWKS_REFRESH) => {}
            () = verifier.unknown_key_seen() => {}
        }
        match fetch_jwks(&url).await.and_then(|jwks| {
            verifier
                .replace_keys(&jwks)
                .map_err(|error| error.to_string())
        }) {
            Ok(keys) => tracing::debug!(keys, "refreshed the token keys"),
            Err(error) => {
                tracing::warn!(%error, url = %url, "cannot refresh the token keys; keeping the ones I have")
            }
        }
        tokio::time::sleep(JWKS_MIN_INTERVAL).await;
    }
}

async fn fetch_jwks(url: &str) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    response.json().await.map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_key_set_is_fetched_over_tls_too() {
        // Nothing speaks TLS on port 9: the request is tried and fails to connect. A build
        // without TLS refused the URL's scheme before sending anything.
        let error = super::fetch_jwks("https://127.0.0.1:9/.well-known/jwks.json")
            .await
            .expect_err("nothing listens there");
        assert!(error.contains("error sending request"), "{error}");
    }
}
