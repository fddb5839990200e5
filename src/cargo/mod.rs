//! Everything that asks cargo: the file names it gives artifacts on each platform.
pub mod naming;
