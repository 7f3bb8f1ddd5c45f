//! `catalog projections`: the views' parked events from the command line (the same records and
//! requests as `/api/admin/projections`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use projectors::parking::ParkedAction;

use crate::config::{EngineConfig, ProjectionsCommand};
use crate::engines::Engines;

/// Runs one `catalog projections` command against the embedded database under `data_dir`, or
/// the PostgreSQL of `config`.
pub async fn run(
    data_dir: &Path,
    config: &EngineConfig,
    command: ProjectionsCommand,
) -> anyhow::Result<()> {
    let engines = Engines::open(data_dir, config).await?;
    let outcome = match command {
        ProjectionsCommand::Status => status(&engines).await,
        ProjectionsCommand::Parked { view } => parked(&engines, &view).await,
        ProjectionsCommand::Retry { view, position } => {
            request(&engines, &view, position, ParkedAction::Retry).await
        }
        ProjectionsCommand::Skip { view, position } => {
            request(&engines, &view, position, ParkedAction::Skip).await
        }
    };
    engines.close().await;
    outcome
}

async fn status(engines: &Engines) -> anyhow::Result<()> {
    let held = engines.parking().held_counts().await?;
    let mut out = std::io::stdout().lock();
    match engines.postgres() {
        Some(database) => {
            let statuses = projectors::status::read(database.pool())
                .await
                .context("cannot read the projector heartbeats")?;
            writeln!(
                out,
                "{:<12} {:<12} {:>12} {:>8}",
                "VIEW", "STATE", "POSITION", "PARKED"
            )?;
            for status in &statuses {
                let parked = held.get(&status.name).copied().unwrap_or(0);
                writeln!(
                    out,
                    "{:<12} {:<12} {:>12} {:>8}",
                    status.name, status.state, status.position, parked
                )?;
            }
        }
        None => {
            writeln!(out, "{:<12} {:>8}", "VIEW", "PARKED")?;
            for view in crate::roles::PROJECTORS {
                let parked = held.get(view).copied().unwrap_or(0);
                writeln!(out, "{view:<12} {parked:>8}")?;
            }
            writeln!(
                out,
                "(the embedded views live in the serving process: GET /api/admin/projections shows their positions)"
            )?;
        }
    }
    Ok(())
}

async fn parked(engines: &Engines, view: &str) -> anyhow::Result<()> {
    let records = engines.parking().list(view).await?;
    let mut out = std::io::stdout().lock();
    for record in &records {
        serde_json::to_writer(&mut out, record)?;
        writeln!(out)?;
    }
    Ok(())
}

async fn request(
    engines: &Engines,
    view: &str,
    position: u64,
    action: ParkedAction,
) -> anyhow::Result<()> {
    let by = format!("cli {}", whoami());
    if !engines
        .parking()
        .request(view, position, action, &by)
        .await?
    {
        anyhow::bail!("view {view:?} has no failed event at position {position} (catalog projections parked {view})");
    }
    println!(
        "asked the {view} projector to {} the event at position {position}; it acts within a second of running (catalog projections parked {view} shows the outcome)",
        action.as_str()
    );
    Ok(())
}

/// Who ran the command, for the record of the decision.
fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
