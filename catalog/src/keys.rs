//! Token keys: the command role signs with an Ed25519 key (a configured file, or one generated
//! once under the data dir); roles that only verify read the public half of that file or fetch
//! the JWKS from `CATALOG_JWKS_URL`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use auth::{TokenSigner, TokenVerifier};

use crate::config::ServeConfig;

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
                &config.data_dir.join("jwt-ed25519.pem"),
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
                Ok(verifier) => return Ok(verifier),
                Err(error) => last_error = error,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("cannot fetch the token keys from CATALOG_JWKS_URL {url}: {last_error}");
    }
    let path = config
        .jwt_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("jwt-ed25519.pem"));
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

async fn fetch_jwks(url: &str) -> Result<TokenVerifier, String> {
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
    let jwks: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
    TokenVerifier::from_jwks(&jwks).map_err(|error| error.to_string())
}
