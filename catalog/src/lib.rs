//! The one `catalog` binary: `serve` (all-in-one or one role), `seed`, `users`, `migrate`,
//! `bus setup`, `keys`, `events`.
//!
//! - [`config`]: settings: the command line (clap, every flag with its environment variable)
//!   and what it parses into; depends on nothing else here.
//! - [`engines`]: opens the event store, bus, Redis from those settings (and migrates).
//! - [`roles`]: one module per role (command, query, projectors, admin), each returning what it
//!   mounts; [`roles::Mounted::start_projector`] is how every view starts.
//! - [`startup`]: `Application::build` (wiring only) and `run_until_stopped`.
//! - [`readiness`], [`keys`]: the readiness checks; the token signing and verifying keys.
//! - [`demo`], [`seed`]: generated demo data and loading it into the store.
//! - [`openapi`]: the OpenAPI document of the whole public API; [`docs`]: its reference page,
//!   from assets compiled in.
//! - [`commands`]: the body of each command of the binary (`main.rs` only parses and calls).
//! - [`events_cli`]: `catalog events tail|export`.

pub mod commands;
pub mod config;
pub mod demo;
pub mod demo_pictures;
pub mod docs;
pub mod engines;
pub mod events_cli;
pub mod keys;
pub mod openapi;
pub mod projections_cli;
pub mod readiness;
pub mod roles;
pub mod seed;
pub mod startup;
pub mod ui;
