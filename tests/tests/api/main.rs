//! The end-to-end tests of the catalog over real HTTP, one module per area, in one test binary
//! (one link instead of thirteen). Every test spawns its own app (`catalog_tests::spawn_app`
//! and friends); the few that count a process-wide metric spawn theirs alone
//! (`spawn_distributed_alone`), as the apps of one binary share one metrics recorder.
//!
//! The SSE allocation test is a binary of its own (`tests/tests/sse_memory.rs`): it installs a
//! counting global allocator.

mod analysts;
mod analytics_shared;
mod auth;
mod coalescing;
mod commands;
mod concurrency;
mod contract;
mod document;
mod hostile;
mod http;
mod images;
mod pages;
mod parking;
mod properties;
mod queries;
mod read_path;
mod rebuild;
mod restart;
mod search;
mod session;
mod synonyms;
