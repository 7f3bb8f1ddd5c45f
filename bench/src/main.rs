//! `catalog-bench`: the project's own load and latency tools. Every tool sends traffic only
//! to loopback addresses and is bounded in time and count.
//!
//! - `commands`: commands per second and latency through a running command API, at several
//!   client counts (each client sends its next command when the last one was answered).
//! - `lag`: the end-to-end lag from a command's answer to its event being applied by the
//!   read-model projector, through the PostgreSQL outbox, the relay and a bus (librdkafka's
//!   mock cluster, or SNS/SQS at a moto endpoint), all in this process.
//! - `history`: sequential sales on one product at several lengths of its history.
//! - `flash-sale`: buyers of one product until it is sold out, and a check that the sale was
//!   exact on the write and the read side.
//! - `shoppers`: users on keep-alive connections browsing with think time, over several
//!   processes and loopback source addresses (up to 100,000 connections on this machine).
//! - `attack`: a login flood through a trusted-proxy header, slowloris connections and
//!   made-up methods against one process: its answers, closed connections and peak RSS.
//! - `sse`: event stream clients of one query process at an event rate: delivery lag, drops.

mod attack;
mod commands;
mod lag;
mod report;
mod sales;
mod shoppers;
mod sse;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "catalog-bench",
    about = "Load and latency tools for Catalog (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// A hostile client: login flood, slow connections, made-up methods.
    Attack(attack::Args),
    Commands(commands::Args),
    Lag(lag::Args),
    History(sales::HistoryArgs),
    FlashSale(sales::FlashSaleArgs),
    Shoppers(Box<shoppers::Args>),
    /// Event stream clients held by one query process at an event rate.
    Sse(sse::Args),
    /// One worker process of `shoppers` (started by it).
    #[command(hide = true)]
    ShoppersWorker {
        config: std::path::PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("catalog-bench: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Tool::Attack(args) => attack::run(args).await,
            Tool::Commands(args) => commands::run(args).await,
            Tool::Lag(args) => lag::run(args).await,
            Tool::History(args) => sales::history(args).await,
            Tool::FlashSale(args) => sales::flash_sale(args).await,
            Tool::Shoppers(args) => shoppers::run(*args).await,
            Tool::Sse(args) => sse::run(args).await,
            Tool::ShoppersWorker { config } => shoppers::worker(config).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("catalog-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
