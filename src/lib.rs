//! cargo-fastcp: stage cargo build artifacts and globbed files into a destination, fast.
//!
//! Data flows one way: CLI → [`Config`] → [`select`] (cargo metadata + globs) → [`Plan`] →
//! [`engine`] → reporter. Only `cli` knows clap; only `report` prints.

pub mod bundle;
pub mod cargo;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod plan;
pub mod report;
pub mod select;
pub mod signal;
pub mod spec;
mod walk;

pub use config::Config;
pub use error::{CopyError, PlanError};
pub use plan::{Job, Kind, Op, Plan};
