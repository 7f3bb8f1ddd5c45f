//! The command role: the write API (products, categories, accounts), the first admin, demo
//! data on an empty store, the hourly purge of expired idempotency keys, and with a bus the
//! outbox relay that publishes what the store accepted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use auth::{Role as UserRole, TokenVerifier};
use command_api::accounts::redis_throttle::RedisLoginThrottle;
use command_api::accounts::throttle::{LocalThrottle, LoginThrottle, PasswordGate, ThrottlePolicy};
use command_api::accounts::{SessionStore, UserStore};
use command_api::idempotency::IdempotencyStore;
use command_api::{CommandState, LoginGuard};
use event_store::outbox::OutboxRelay;
use secrecy::ExposeSecret;

use super::Mounted;
use crate::config::ServeConfig;
use crate::engines::Engines;
use crate::readiness::BusReadiness;

/// Mounts the write API; returns it with the verifier of the tokens it signs (the other roles
/// of an all-in-one process verify with it too).
pub async fn mount(
    config: &ServeConfig,
    engines: &Engines,
) -> anyhow::Result<(Mounted, Arc<TokenVerifier>)> {
    let signer = crate::keys::load_signer(config)?;
    let verifier = Arc::new(signer.verifier());
    let signer = Arc::new(auth::rotation::SharedSigner::new(
        crate::keys::signing_key_path(config),
        signer,
    ));
    let state = CommandState {
        commands: engines.commands.clone(),
        users: engines.users(),
        sessions: engines.sessions(),
        idempotency: engines.idempotency(),
        signer: signer.clone(),
        verifier: verifier.clone(),
        login: Arc::new(login_guard(engines)),
        images: Arc::new(command_api::ImageUploads::new(engines.images.clone())),
    };
    ensure_first_admin(config, state.users.as_ref(), !engines.is_distributed()).await?;
    load_demo_data(config, engines).await?;
    let mut mounted = Mounted::default();
    mounted
        .background
        .push(tokio::spawn(crate::keys::follow_key_files(
            signer,
            verifier.clone(),
        )));
    mounted.background.push(tokio::spawn(purge_expired(
        state.idempotency.clone(),
        state.sessions.clone(),
    )));
    if let (Some(configured), Some(database)) = (&engines.configured_bus, engines.postgres()) {
        mounted
            .checks
            .push(Arc::new(BusReadiness(configured.bus())));
        let relay = OutboxRelay::new(database.pool().clone(), configured.bus());
        mounted.background.push(tokio::spawn(relay.run()));
    }
    mounted.router = command_api::router(state);
    Ok((mounted, verifier))
}

/// The failed-login throttle (in Redis when there is one, so replicas share it) and the gate
/// of concurrent password checks.
fn login_guard(engines: &Engines) -> LoginGuard {
    let policy = ThrottlePolicy::default();
    let throttle: Arc<dyn LoginThrottle> = match &engines.redis {
        Some((config, connection)) => Arc::new(RedisLoginThrottle::new(
            config.clone(),
            connection.clone(),
            policy.forget,
        )),
        None => Arc::new(LocalThrottle::new(&policy)),
    };
    LoginGuard {
        policy,
        throttle,
        gate: PasswordGate::for_this_machine(),
    }
}

/// `--demo`: generated products, only into an empty store.
async fn load_demo_data(config: &ServeConfig, engines: &Engines) -> anyhow::Result<()> {
    let Some(count) = config.demo_products else {
        return Ok(());
    };
    if engines.store.head().await? != 0 {
        return Ok(());
    }
    tracing::info!(products = count, "loading demo data into the empty store");
    let pictures = crate::demo_pictures::store(engines.images.as_ref()).await?;
    crate::seed::seed_products(&engines.commands, 2026, count, Some(&pictures), |_, _| {}).await
}

/// Creates the first admin from `CATALOG_ADMIN_EMAIL` / `CATALOG_ADMIN_PASSWORD` when that
/// account does not exist yet; in the embedded mode without them, `admin@localhost` with a
/// generated password, logged once.
async fn ensure_first_admin(
    config: &ServeConfig,
    users: &dyn UserStore,
    embedded: bool,
) -> anyhow::Result<()> {
    let (email, password, generated) = match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => (
            email.trim().to_lowercase(),
            password.expose_secret().to_owned(),
            false,
        ),
        (None, None) if embedded => (
            "admin@localhost".to_owned(),
            auth::tokens::new_password(),
            true,
        ),
        (None, None) => return Ok(()),
        _ => bail!("set both CATALOG_ADMIN_EMAIL and CATALOG_ADMIN_PASSWORD, or neither"),
    };
    if users.by_email(&email).await?.is_some() {
        return Ok(());
    }
    if !generated {
        command_api::accounts::check_email(&email)
            .map_err(|message| anyhow::anyhow!("CATALOG_ADMIN_EMAIL {message}"))?;
        command_api::accounts::check_password(&password)
            .map_err(|message| anyhow::anyhow!("CATALOG_ADMIN_PASSWORD {message}"))?;
    }
    let created =
        command_api::accounts::create_account(users, &email, &password, UserRole::Admin).await;
    match created {
        Ok(_) => {}
        // Another replica created it at the same moment.
        Err(_) if users.by_email(&email).await?.is_some() => return Ok(()),
        Err(error) => bail!("cannot create the first admin: {error}"),
    }
    if generated {
        tracing::warn!(
            email = %email,
            password = %password,
            "created the first admin with a generated password; it is shown only this once"
        );
    } else {
        tracing::info!(email = %email, "created the first admin");
    }
    Ok(())
}

/// Hourly: forgets expired idempotency keys and refresh tokens (and sessions left without one).
async fn purge_expired(store: Arc<dyn IdempotencyStore>, sessions: Arc<dyn SessionStore>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        interval.tick().await;
        match sessions.purge_expired(chrono::Utc::now()).await {
            Ok(removed) if removed > 0 => tracing::info!(removed, "forgot expired refresh tokens"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot purge expired sessions"),
        }
        let lifetime = chrono::Duration::from_std(command_api::idempotency::KEY_LIFETIME)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        match store.purge(chrono::Utc::now() - lifetime).await {
            Ok(removed) if removed > 0 => {
                tracing::info!(removed, "forgot expired idempotency keys")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot purge idempotency keys"),
        }
    }
}
