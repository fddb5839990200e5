//! The io_uring backend (placeholder until the compio engine lands): probe only.
use super::{Backend, Ctx};
use crate::config::Config;
use crate::plan::Plan;

pub fn probe() -> Result<(), String> {
    Err("the io-uring engine is not built yet".into())
}

pub struct IoUring;

impl IoUring {
    pub fn new(_cfg: &Config) -> Self {
        IoUring
    }
}

impl Backend for IoUring {
    fn name(&self) -> &str {
        "io-uring"
    }

    fn copy_files(&self, _plan: &Plan, _files: &[usize], _ctx: &Ctx<'_>) {}
}
