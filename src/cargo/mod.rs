//! Everything that asks cargo: the file names it gives artifacts on each platform, its
//! configuration, the features a build enables, the dep-info it leaves next to artifacts, and
//! `cargo build` itself (`--build`).
pub mod build;
pub mod config;
pub mod depinfo;
pub mod features;
pub mod naming;
