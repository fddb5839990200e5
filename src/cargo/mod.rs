//! Everything that asks cargo: the file names it gives artifacts on each platform, its
//! configuration, the features a build enables, and the dep-info it leaves next to artifacts.
pub mod config;
pub mod depinfo;
pub mod features;
pub mod naming;
