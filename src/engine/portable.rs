//! The portable backend: `-j` threads, each copying whole files with the OS's own copy.
use super::{file, Backend, Ctx, FileQueue};
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

    fn copy_files(&self, plan: &Plan, files: &FileQueue, ctx: &Ctx<'_>) -> Option<String> {
        let worker = || {
            while let Some(i) = files.next_blocking() {
                if ctx.cancelled() {
                    break;
                }
                let job = &plan.jobs[i];
                match file::copy_regular(job, ctx.fsync, &|| ctx.cancelled(), &|n| ctx.progress(n))
                {
                    Ok(()) => ctx.done(i),
                    Err(e) => ctx.fail(i, e),
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..self.threads {
                s.spawn(worker);
            }
            worker();
        });
        None
    }
}
