//! The portable backend: `-j` threads, each copying whole files with the OS's own copy.
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{file, Backend, Ctx};
use crate::plan::Plan;

pub struct Portable {
    threads: usize,
}

impl Portable {
    pub fn new(threads: usize) -> Self {
        Portable {
            threads: threads.max(1),
        }
    }
}

impl Backend for Portable {
    fn name(&self) -> &str {
        "portable"
    }

    fn copy_files(&self, plan: &Plan, files: &[usize], ctx: &Ctx<'_>) {
        let next = AtomicUsize::new(0);
        let worker = || loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&i) = files.get(k) else { break };
            if ctx.cancelled() {
                break;
            }
            let job = &plan.jobs[i];
            match file::copy_regular(job, ctx.fsync, &|| ctx.cancelled(), &|n| ctx.progress(n)) {
                Ok(()) => ctx.done(i),
                Err(e) => ctx.fail(i, e),
            }
        };
        let threads = self.threads.min(files.len()).max(1);
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(worker);
            }
            worker();
        });
    }
}
