//! The one `catalog` binary: `serve` (all-in-one), `seed`, `users create`.
//!
//! - [`config`]: the command line (clap, every flag with its environment variable).
//! - [`startup`]: `Application::build` / `run_until_stopped`, the embedded engines.
//! - [`demo`]: generated demo categories and products.
//! - [`openapi`]: the OpenAPI document of the whole public API.
//! - [`admin`]: `GET /api/admin/projections`.

pub mod admin;
pub mod config;
pub mod demo;
pub mod events_cli;
pub mod openapi;
pub mod startup;
