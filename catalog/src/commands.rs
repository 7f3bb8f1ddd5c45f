//! The commands of the `catalog` binary other than parsing: one function each, called by
//! `main.rs`. They print what a person reads; errors go back to `main`, which prints them as
//! one line (`catalog: …`) and exits non-zero.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use auth::Role as UserRole;
use event_store::postgres::PostgresDatabase;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{EngineConfig, EventsCommand, SeedArgs, ServeArgs, ServeConfig};
use crate::engines::{migrate as migrate_database, Engines};
use crate::roles::{ANALYTICS_EVENTS, PROJECTORS};
use crate::startup::{shutdown_signal, Application};

/// `catalog serve`: builds the application for the role and runs it until SIGTERM or Ctrl-C.
pub async fn serve(
    data_dir: PathBuf,
    engines: EngineConfig,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let config = ServeConfig::from_args(data_dir, engines, args);
    let application = Application::build(config).await?;
    application.run_until_stopped(shutdown_signal()).await
}

/// `catalog migrate`: the PostgreSQL migrations of every component.
pub async fn migrate(engines: &EngineConfig) -> anyhow::Result<()> {
    let Some(url) = &engines.database_url else {
        bail!("DATABASE_URL is not set: the embedded mode migrates its SQLite file at start");
    };
    let database = PostgresDatabase::connect(url, 2)
        .await
        .context("DATABASE_URL")?;
    migrate_database(&database).await?;
    println!("migrations applied");
    database.close().await;
    Ok(())
}

/// `catalog bus setup`: the topics or queues of the named projectors (all by default) and of
/// the analytics stream.
pub async fn bus_setup(engines: &EngineConfig, projectors: Vec<String>) -> anyhow::Result<()> {
    let Some(url) = &engines.bus_url else {
        bail!("CATALOG_BUS is not set: name the bus to set up (kafka://… or sns+sqs://…)");
    };
    let bus = bus::ConfiguredBus::connect(url).await?;
    let names: Vec<&str> = if projectors.is_empty() {
        PROJECTORS.to_vec()
    } else {
        projectors.iter().map(String::as_str).collect()
    };
    let report = bus.setup(&names).await.context("CATALOG_BUS")?;
    let analytics = bus
        .setup_analytics(ANALYTICS_EVENTS)
        .await
        .context("CATALOG_BUS")?;
    for line in report.into_iter().chain(analytics) {
        println!("{line}");
    }
    Ok(())
}

/// `catalog keys generate`: a new Ed25519 signing key, never over an existing file.
pub fn keys_generate(output: &Path) -> anyhow::Result<()> {
    if output.exists() {
        bail!("{} exists; not overwriting a signing key", output.display());
    }
    auth::TokenSigner::load_or_create(output, true, 900)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!("wrote a new Ed25519 signing key to {}", output.display());
    Ok(())
}

/// `catalog keys rotate`: stages a next signing key, or promotes the staged one.
pub fn keys_rotate(path: &Path, overlap_seconds: u64, force: bool) -> anyhow::Result<()> {
    if !path.exists() {
        bail!("no signing key at {}; nothing to rotate", path.display());
    }
    let overlap = std::time::Duration::from_secs(overlap_seconds);
    match auth::rotation::rotate(path, overlap, force)
        .with_context(|| format!("cannot rotate {}", path.display()))?
    {
        auth::rotation::Rotated::Staged { next_kid } => println!(
            "staged the next signing key {next_kid} in {}.next; it is published from now on. \
             Run `catalog keys rotate` again after {overlap_seconds} s to sign with it.",
            path.display()
        ),
        auth::rotation::Rotated::Promoted {
            signing_kid,
            previous_kid,
        } => println!(
            "signing with {signing_kid}; {previous_kid} stays published (as {}.previous) until \
             the next rotation, so the tokens it signed stay valid until they expire.",
            path.display()
        ),
    }
    Ok(())
}

/// `catalog seed`: appends generated products with a progress bar.
pub async fn seed(data_dir: &Path, config: &EngineConfig, args: SeedArgs) -> anyhow::Result<()> {
    let engines = Engines::open(data_dir, config).await?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let bar = progress_bar(args.products as u64, "products");
    let started = Instant::now();
    let mut events = 0;
    let pictures = crate::demo_pictures::store(engines.images.as_ref()).await?;
    let pictures = Some(&pictures);
    crate::seed::seed_products(
        &engines.commands,
        seed,
        args.products,
        pictures,
        |products, batch| {
            events += batch;
            bar.inc(products as u64);
            bar.set_message(format!(
                "{events} events, {:.0} events/s",
                events as f64 / started.elapsed().as_secs_f64().max(0.001)
            ));
        },
    )
    .await?;
    bar.finish();
    let head = engines.store.head().await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "added {} products ({events} events) in {seconds:.1} s, {:.0} events/s (seed {seed}); \
         the store is at position {head}",
        args.products,
        events as f64 / seconds.max(0.001)
    );
    engines.close().await;
    Ok(())
}

/// `catalog snapshots take`: counts every aggregate's events in one pass over the log, then
/// snapshots the products with at least `min_events` after their latest snapshot.
pub async fn snapshots_take(
    data_dir: &Path,
    config: &EngineConfig,
    min_events: u64,
) -> anyhow::Result<()> {
    let engines = Engines::open(data_dir, config).await?;
    let head = engines.store.head().await?;
    let bar = progress_bar(head, "events read");
    let mut counts: std::collections::HashMap<uuid::Uuid, u64> = Default::default();
    let mut after = 0;
    loop {
        let page = engines.store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for envelope in &page {
            *counts.entry(envelope.aggregate_id).or_default() += 1;
        }
        bar.set_position(after);
    }
    bar.finish();
    let candidates: Vec<uuid::Uuid> = counts
        .into_iter()
        .filter(|(_, events)| *events >= min_events.max(1))
        .map(|(id, _)| id)
        .collect();
    let bar = progress_bar(candidates.len() as u64, "aggregates");
    let mut written = 0;
    for id in candidates {
        if engines.commands.snapshot_product(id, min_events).await? {
            written += 1;
        }
        bar.inc(1);
    }
    bar.finish();
    println!("wrote {written} snapshots (products with at least {min_events} events after their latest snapshot)");
    engines.close().await;
    Ok(())
}

/// What `catalog users create` was given.
pub struct NewAccount {
    pub email: String,
    pub role: String,
    /// Read the password from standard input instead of generating one.
    pub password_stdin: bool,
}

/// `catalog users create`: checks the email and password like the API does, then creates the
/// account; a generated password is printed once.
pub async fn users_create(
    data_dir: &Path,
    config: &EngineConfig,
    account: NewAccount,
) -> anyhow::Result<()> {
    let role = UserRole::parse(&account.role).context("role must be admin, analyst or shopper")?;
    command_api::accounts::check_email(&account.email)
        .map_err(|message| anyhow::anyhow!("--email {message}"))?;
    let (password, generated) = if account.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (auth::tokens::new_password(), true)
    };
    command_api::accounts::check_password(&password)
        .map_err(|message| anyhow::anyhow!("the password {message}"))?;
    let engines = Engines::open(data_dir, config).await?;
    let users = engines.users();
    let user =
        command_api::accounts::create_account(users.as_ref(), &account.email, &password, role)
            .await?;
    println!("created {} ({}) with id {}", user.email, user.role, user.id);
    if generated {
        println!("password: {password}");
    }
    engines.close().await;
    Ok(())
}

/// `catalog events tail|export`.
pub async fn events(
    data_dir: &Path,
    config: &EngineConfig,
    command: EventsCommand,
) -> anyhow::Result<()> {
    let store = crate::events_cli::open_store(data_dir, config).await?;
    match command {
        EventsCommand::Tail { after, follow } => events_tail(store.as_ref(), after, follow).await,
        EventsCommand::Export {
            after,
            until,
            output,
        } => events_export(store.as_ref(), after, until, &output).await,
    }
}

async fn events_tail(
    store: &dyn events::store::EventStore,
    after: u64,
    follow: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let tailed = crate::events_cli::tail(store, after, follow, &mut out, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    match tailed {
        Ok(_) => Ok(()),
        // The reader went away (`| head`): not an error of ours.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

async fn events_export(
    store: &dyn events::store::EventStore,
    after: u64,
    until: Option<u64>,
    output: &Path,
) -> anyhow::Result<()> {
    let until = match until {
        Some(until) => until,
        None => store.head().await?,
    };
    let bar = progress_bar(until.saturating_sub(after), "events");
    let exported =
        crate::events_cli::export(store, after, until, output, |done| bar.set_position(done))
            .await?;
    bar.finish();
    let seconds = exported.elapsed.as_secs_f64();
    println!(
        "exported {} events (positions {}..={}) to {} in {seconds:.2} s ({:.0} events/s)",
        exported.events,
        after + 1,
        exported.last,
        output.display(),
        exported.events as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// A progress bar over `length` things named `unit`, with rate and ETA.
pub(crate) fn progress_bar(length: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
