//! `catalog projections`: the views' status, rebuilds, pause and resume, and parked events from
//! the command line (the same records and requests as `/api/admin/projections`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use projectors::parking::{ParkedAction, ViewAction};
use projectors::runner::ProjectorStatus;

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

/// What the projectors last reported: from PostgreSQL in the distributed mode, from the
/// SQLite database in the embedded one (where the serving process reports).
async fn statuses(engines: &Engines) -> anyhow::Result<Vec<ProjectorStatus>> {
    let read = match (engines.postgres(), engines.sqlite()) {
        (Some(database), _) => projectors::status::read(database.pool()).await,
        (None, Some(database)) => projectors::status::read_sqlite(database.reader()).await,
        (None, None) => Ok(Vec::new()),
    };
    read.context("cannot read the projector heartbeats")
}

async fn status(engines: &Engines) -> anyhow::Result<()> {
    let held = engines.parking().held_counts().await?;
    let statuses = statuses(engines).await?;
    let head = engines.store.head().await?;
    let mut out = std::io::stdout().lock();
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
    // Views holding parked events that no running projector reports.
    for (view, parked) in &held {
        if !statuses.iter().any(|status| &status.name == view) {
            writeln!(
                out,
                "{view:<12} {:<12} {:>10} {:>12} {:>10} {parked:>8}  ",
                "unknown", "-", "-", "-"
            )?;
        }
    }
    if statuses.is_empty() {
        writeln!(
            out,
            "(no projector has reported: is the process that runs the views running on this data?)"
        )?;
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

/// Asks for a rebuild and waits for the switch with a progress bar (rate and ETA), reading
/// the projectors' heartbeats (PostgreSQL, or the embedded mode's SQLite database).
async fn rebuild(engines: &Engines, view: &str, no_wait: bool) -> anyhow::Result<()> {
    if no_wait {
        return request_view(engines, view, ViewAction::Rebuild).await;
    }
    let generation_of = |statuses: &[ProjectorStatus]| {
        statuses
            .iter()
            .find(|status| status.name == view && status.state != "stopped")
            .map(|status| status.generation)
    };
    let Some(before) = generation_of(&statuses(engines).await?) else {
        anyhow::bail!(
            "no running projector of {view:?} has reported: is the process that runs it (the projectors role, or the embedded catalog) running?"
        );
    };
    request_view(engines, view, ViewAction::Rebuild).await?;
    let bar = crate::commands::progress_bar(0, "events");
    bar.set_message(format!("generation {}", before + 1));
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let statuses = statuses(engines).await?;
        let Some(status) = statuses.iter().find(|status| status.name == view) else {
            continue;
        };
        if status.generation > before {
            bar.finish_with_message(format!("switched to generation {}", status.generation));
            println!(
                "{view}: switched readers to generation {} at position {}",
                status.generation, status.position
            );
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
