//! `catalog projections`: the views' status, rebuilds, pause and resume, and parked events from
//! the command line (the same records and requests as `/api/admin/projections`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use projectors::parking::{ParkedAction, ViewAction};

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
        ProjectionsCommand::Rebuild { view, no_wait } => rebuild(&engines, &view, no_wait).await,
        ProjectionsCommand::Pause { view } => {
            request_view(&engines, &view, ViewAction::Pause).await
        }
        ProjectionsCommand::Resume { view } => {
            request_view(&engines, &view, ViewAction::Resume).await
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
            let head = engines.store.head().await?;
            writeln!(
                out,
                "{:<12} {:<12} {:>10} {:>12} {:>10} {:>8}  REBUILD",
                "VIEW", "STATE", "GENERATION", "POSITION", "LAG", "PARKED"
            )?;
            for status in &statuses {
                let parked = held.get(&status.name).copied().unwrap_or(0);
                let rebuild = status.rebuild.as_ref().map_or(String::new(), |r| {
                    format!(
                        "generation {} at {}/{} ({:.0} events/s, eta {:.0} s)",
                        r.generation, r.position, r.head, r.events_per_second, r.eta_seconds
                    )
                });
                writeln!(
                    out,
                    "{:<12} {:<12} {:>10} {:>12} {:>10} {:>8}  {rebuild}",
                    status.name,
                    status.state,
                    status.generation,
                    status.position,
                    head.saturating_sub(status.position),
                    parked
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

fn check_view(view: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        crate::roles::PROJECTORS.contains(&view),
        "there is no view {view:?} (the views: {})",
        crate::roles::PROJECTORS.join(", ")
    );
    Ok(())
}

async fn request_view(engines: &Engines, view: &str, action: ViewAction) -> anyhow::Result<()> {
    check_view(view)?;
    let by = format!("cli {}", whoami());
    engines.parking().request_view(view, action, &by).await?;
    println!(
        "asked the {view} projector to {}; it acts within a second of running (catalog projections status shows its state)",
        action.as_str()
    );
    Ok(())
}

/// Asks for a rebuild and, where the projectors report to PostgreSQL, waits for the switch
/// with a progress bar.
async fn rebuild(engines: &Engines, view: &str, no_wait: bool) -> anyhow::Result<()> {
    let Some(database) = engines.postgres().filter(|_| !no_wait) else {
        return request_view(engines, view, ViewAction::Rebuild).await;
    };
    let pool = database.pool();
    let generation_of = |statuses: &[projectors::runner::ProjectorStatus]| {
        statuses
            .iter()
            .find(|status| status.name == view)
            .map(|status| status.generation)
    };
    let statuses = projectors::status::read(pool).await?;
    let Some(before) = generation_of(&statuses) else {
        anyhow::bail!("no projector of {view:?} has reported: is the projectors role running?");
    };
    request_view(engines, view, ViewAction::Rebuild).await?;
    let bar = crate::commands::progress_bar(0, "events");
    bar.set_message(format!("generation {}", before + 1));
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let statuses = projectors::status::read(pool).await?;
        let Some(status) = statuses.iter().find(|status| status.name == view) else {
            continue;
        };
        if status.generation > before {
            bar.finish_with_message(format!("switched to generation {}", status.generation));
            return Ok(());
        }
        if status.state == "stopped" {
            bar.abandon();
            anyhow::bail!("the {view} projector stopped reporting before the switch; the rebuild resumes from the start when asked again");
        }
        if let Some(error) = status
            .last_error
            .as_deref()
            .filter(|e| e.starts_with("rebuild:"))
        {
            bar.abandon();
            anyhow::bail!("{error}");
        }
        if let Some(progress) = &status.rebuild {
            bar.set_length(progress.head);
            bar.set_position(progress.position);
        }
    }
}

/// Who ran the command, for the record of the decision.
fn whoami() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
