//! Routing by page-cache residency (`--copy-method auto`): warm files are copied whole on plain
//! threads (the portable copy: one read/write or `copy_file_range`, no io-wq hand-offs), cold
//! ones go to the io_uring workers, whose many reads in flight hide the disk.
//!
//! Measured before this existed (docs/benchmarks.md): warm, the ring was the slowest of our
//! routes on 50,000 small files; cold, it was 1.6× faster than the threads. A file's residency
//! is asked of the kernel (`engine::residency`) on the descriptor the warm copy reads from
//! anyway, so a warm probe costs one syscall. Small files are probed in samples: a verdict holds
//! for the next `probe_every - 1` files below `ALWAYS_PROBE`, so a cold tree is not opened file by
//! file on the threads (a cold open blocks on the disk) before the ring opens it again.
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};

use super::IoUring;
use crate::engine::{file, residency, Ctx, FileQueue};
use crate::plan::{Job, Plan};

/// Files this large are probed one by one: the probe is nothing next to their bytes.
pub const ALWAYS_PROBE: u64 = 1 << 20;
/// Small files per probe: one in this many is opened and asked (see the module docs).
pub const DEFAULT_PROBE_EVERY: u32 = 16;

/// How many files took each route in one run.
#[derive(Debug, Default)]
pub struct Counts {
    /// Whether this run routed at all.
    pub routed: AtomicBool,
    pub warm: AtomicUsize,
    pub cold: AtomicUsize,
}

/// One thread's sampling state.
struct Router {
    every: u32,
    /// The last verdict (true: warm) and how many more small files it covers.
    verdict: bool,
    left: u32,
}

enum Decision {
    /// Copy here; the source, if the probe opened it.
    Warm(Option<File>),
    Cold,
}

impl Router {
    fn decide(&mut self, job: &Job) -> Decision {
        let size = job.size;
        let small = size < ALWAYS_PROBE;
        if small && self.left > 0 {
            self.left -= 1;
            return if self.verdict {
                Decision::Warm(None)
            } else {
                Decision::Cold
            };
        }
        // An open that fails is the copy's error to report: the warm route opens it again and
        // reports it there.
        let Ok(f) = file::open_source(job) else {
            return Decision::Warm(None);
        };
        // Unknown (the probe failed) counts as warm: today's default for most staging.
        let warm = residency::probe(&f, size).is_none_or(|r| r.warm());
        if small {
            self.verdict = warm;
            self.left = self.every.saturating_sub(1);
        }
        if warm {
            Decision::Warm(Some(f))
        } else {
            Decision::Cold
        }
    }
}

/// Copies every file of `files`, routing each by residency; the ring workers start with the
/// first cold file, so a warm run never sets up a ring.
pub fn copy_routed(
    engine: &IoUring,
    plan: &Plan,
    files: &FileQueue,
    ctx: &Ctx<'_>,
) -> Option<String> {
    let cold = FileQueue::new();
    let counts = &engine.counts;
    let every = engine.tuning.probe_every.max(1);
    let ring_started = Once::new();
    let ring_stopped: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        // The closures below are `move` (and so `Copy`): they hold only references.
        let (cold, ring_started, ring_stopped) = (&cold, &ring_started, &ring_stopped);
        let start_ring = move || {
            s.spawn(move || {
                let why = catch_unwind(AssertUnwindSafe(|| engine.copy_ring(plan, cold, ctx)))
                    .unwrap_or_else(|p| {
                        Some(format!(
                            "the io_uring workers panicked: {}",
                            super::panic_text(&p)
                        ))
                    });
                *ring_stopped.lock().unwrap_or_else(PoisonError::into_inner) = why;
            });
        };
        let front = move || {
            let mut router = Router {
                every,
                verdict: true,
                left: 0,
            };
            let mut files = files.taker(crate::engine::GROUP_RUN);
            while let Some(i) = files.next_blocking() {
                if ctx.cancelled() {
                    break;
                }
                let job = &plan.jobs[i];
                // A full destination: not started (see `Ctx::admit`).
                if let Err(e) = ctx.admit(job) {
                    ctx.fail(i, e);
                    continue;
                }
                match router.decide(job) {
                    Decision::Warm(src) => {
                        counts.warm.fetch_add(1, Ordering::Relaxed);
                        let res = file::copy_regular(job, src, ctx);
                        match res {
                            Ok(()) => ctx.done(i),
                            Err(e) => ctx.fail(i, e),
                        }
                    }
                    Decision::Cold => {
                        counts.cold.fetch_add(1, Ordering::Relaxed);
                        ring_started.call_once(start_ring);
                        cold.push([i]);
                    }
                }
            }
        };
        let helpers: Vec<_> = (1..engine.tuning.workers.max(1))
            .filter_map(|n| {
                std::thread::Builder::new()
                    .name(format!("fastcp-sync-{n}"))
                    .spawn_scoped(s, front)
                    .ok()
            })
            .collect();
        front();
        let mut why = None;
        for h in helpers {
            if let Err(p) = h.join() {
                why.get_or_insert(format!("a copy thread panicked: {}", super::panic_text(&p)));
            }
        }
        // The ring thread, if it started, ends with the scope once its queue is empty.
        cold.close();
        why
    })
    .or_else(|| {
        ring_stopped
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    })
}
