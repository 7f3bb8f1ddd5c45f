//! Settings: the command line ([`cli`]: clap, every flag with its environment variable) and
//! what it parses into ([`serve`]: the engines, a role's settings), checked before anything
//! is opened. Depends on nothing else of the binary.

pub mod cli;
pub mod serve;

pub use cli::*;
pub use serve::{AnalystConfig, EngineConfig, LimitsConfig, ServeConfig};
