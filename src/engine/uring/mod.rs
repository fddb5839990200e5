//! The io_uring backend (Linux): `-j` worker threads, each with its own compio runtime and
//! buffer ring, each keeping `--max-in-flight` files in flight; in-kernel copies of large files on
//! blocking threads beside them.
//!
//! Layout: `ring` builds a worker's runtime, `exec` joins its lanes and counts its buffers,
//! `copy` moves one file, `kernel` runs in-kernel copies, `probe` decides whether any of this
//! can run here. See docs/copy-method.md for the measurements behind the defaults.
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use super::{file, Backend, Ctx, FileQueue};
use crate::config::{Config, CopyMethod};
use crate::plan::Plan;

mod copy;
mod exec;
mod kernel;
mod open;
mod probe;
mod ring;
mod route;

pub use open::open_beneath;
#[cfg(test)]
pub(crate) mod tests;

pub use probe::probe;
/// A worker's runtime (io_uring driver, page-aligned buffer ring), also for the bench's
/// ring-vs-Vec measurement.
pub use ring::build as worker_runtime;
pub use ring::PoolShape;

/// Files at least this large go to the in-kernel copy under `--copy-method auto`; smaller ones
/// through the buffer ring: the one small-file bound both backends use.
pub const DEFAULT_THRESHOLD: u64 = crate::engine::stage::SMALL_FILE;
/// Bytes per pool buffer.
pub const DEFAULT_BUFFER_LEN: usize = 128 << 10;
/// Chunks of one file in flight at once (buffer-ring method).
pub const DEFAULT_FILE_WINDOW: usize = 4;

/// How a file's bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Reads into ring-selected buffers, writes from them, all through io_uring.
    Ring,
    /// FICLONE, else copy_file_range, on a blocking thread.
    Kernel,
    /// io_uring splice ops through a pipe: source pages in by reference, copied out once.
    Splice,
    /// A reflink (`FICLONE`) where the filesystem shares extents, else the buffer ring: a cold
    /// mid-size file under `auto`, where many reads in flight beat one `copy_file_range` at a
    /// time per thread.
    CloneOrRing,
}

/// Under `auto` every file that reaches the ring workers is cold (warm ones are copied on
/// threads, `route`); cold files from the threshold up to this size take [`Route::CloneOrRing`],
/// larger ones the in-kernel route. Measured on cold `target` at scale 0.5 (3,190 files, none
/// above 32 MiB; 7 alternating rounds): 0.91 s median with every file through the ring against
/// 1.12 s with files of 64 KiB and more in-kernel. On `bins` (six files of 60-140 MB) the two
/// were within the spread (0.44 and 0.39 s over 3 rounds), so files that large keep the
/// in-kernel route, where readahead streams one file as fast.
pub const COLD_RING_MAX: u64 = 32 << 20;

/// Everything the engine's shape depends on.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Ring worker threads (`-j`).
    pub workers: usize,
    /// Files in flight per worker (`--max-in-flight`).
    pub lanes: usize,
    pub pool: PoolShape,
    /// Chunks of one file in flight at once.
    pub file_window: usize,
    pub method: CopyMethod,
    /// Auto: files of this size and larger are reflinked where the filesystem can, and go
    /// in-kernel above [`COLD_RING_MAX`].
    pub threshold: u64,
    /// Auto: small files per residency probe (see `route`).
    pub probe_every: u32,
    /// The workers' ring setup flags (see `ring::DEFAULT_SETUP`).
    pub setup: String,
}

impl Tuning {
    /// The shape for `cfg`: its `-j` and `--max-in-flight`, and its measurement knobs
    /// (`cfg.tuning`) where set, else the measured defaults. Values are clamped to what compio
    /// and the kernel accept.
    pub fn from_config(cfg: &Config) -> Tuning {
        let knobs = &cfg.tuning;
        let lanes = cfg.max_in_flight.max(1);
        // Two buffers per file in flight lets one be written while the next is read; past 256
        // buffers (32 MiB a worker at the default length) more memory buys nothing measurable.
        let buffers = knobs.buffers.unwrap_or_else(|| (2 * lanes).clamp(16, 256));
        let buffer_len = knobs.buffer_len.unwrap_or(DEFAULT_BUFFER_LEN);
        Tuning {
            workers: cfg.jobs.get(),
            lanes,
            pool: PoolShape::new(buffers, buffer_len),
            file_window: knobs
                .file_window
                .unwrap_or(DEFAULT_FILE_WINDOW)
                .clamp(1, 64),
            method: cfg.copy_method,
            threshold: knobs.threshold.unwrap_or(DEFAULT_THRESHOLD),
            probe_every: knobs
                .probe_every
                .map_or(route::DEFAULT_PROBE_EVERY, |n| n.clamp(1, 1 << 20)),
            setup: knobs
                .uring_setup
                .clone()
                .unwrap_or_else(|| ring::DEFAULT_SETUP.into()),
        }
    }

    pub fn route(&self, size: u64) -> Route {
        match self.method {
            CopyMethod::BufferRing => Route::Ring,
            CopyMethod::CopyFileRange => Route::Kernel,
            CopyMethod::Splice => Route::Splice,
            CopyMethod::Auto if size > COLD_RING_MAX => Route::Kernel,
            CopyMethod::Auto if size >= self.threshold => Route::CloneOrRing,
            CopyMethod::Auto => Route::Ring,
        }
    }
}

pub struct IoUring {
    tuning: Tuning,
    /// Files per route, under `--copy-method auto`.
    counts: route::Counts,
}

impl IoUring {
    pub fn new(cfg: &Config) -> Self {
        IoUring::with_tuning(Tuning::from_config(cfg))
    }

    pub fn with_tuning(tuning: Tuning) -> Self {
        IoUring {
            tuning,
            counts: route::Counts::default(),
        }
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }
}

/// Why files were left unreported when no cancel explains it.
type WorkerError = Mutex<Option<String>>;

impl Backend for IoUring {
    fn name(&self) -> &str {
        "io-uring"
    }

    /// `--copy-method auto` routes each file by residency (`route`); a forced method sends
    /// every file through the ring workers, and so does `--fsync`: the ring keeps many fsyncs
    /// in flight, which measured 3.8× faster than one per thread (docs/benchmarks.md).
    fn copy_files(&self, plan: &Plan, files: &FileQueue, ctx: &Ctx<'_>) -> Option<String> {
        if self.tuning.method == CopyMethod::Auto && !ctx.staging.fsync {
            self.counts.routed.store(true, Ordering::Relaxed);
            route::copy_routed(self, plan, files, ctx)
        } else {
            self.copy_ring(plan, files, ctx)
        }
    }

    fn routes(&self) -> Vec<(&'static str, usize)> {
        if !self.counts.routed.load(Ordering::Relaxed) {
            return Vec::new();
        }
        vec![
            ("warm", self.counts.warm.load(Ordering::Relaxed)),
            ("cold", self.counts.cold.load(Ordering::Relaxed)),
        ]
    }
}

impl IoUring {
    /// Every file of `files` through the ring workers (and their in-kernel copy threads).
    fn copy_ring(&self, plan: &Plan, files: &FileQueue, ctx: &Ctx<'_>) -> Option<String> {
        let t = &self.tuning;
        let failure: WorkerError = Mutex::new(None);
        let (tx, rx) = mpsc::channel::<kernel::Task>();
        let rx = Mutex::new(rx);
        let shared = Shared {
            plan,
            files,
            ctx,
            tuning: t,
            failure: &failure,
        };
        std::thread::scope(|s| {
            // Idle ones only wait on the channel; the plan may still be growing, so how many
            // files will take the in-kernel route is not known here.
            let mut kernel_threads = 0;
            if matches!(t.method, CopyMethod::Auto | CopyMethod::CopyFileRange) {
                for n in 0..t.workers {
                    let rx = &rx;
                    let spawned = std::thread::Builder::new()
                        .name(format!("fastcp-kcopy-{n}"))
                        .spawn_scoped(s, move || kernel::serve(rx, ctx));
                    kernel_threads += usize::from(spawned.is_ok());
                }
            }
            let queue = || (kernel_threads > 0).then(|| tx.clone());
            let mut handles = Vec::new();
            for w in 0..t.workers.max(1) {
                let (q, shared) = (queue(), &shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("fastcp-uring-{w}"))
                    .spawn_scoped(s, move || shared.run_worker(q));
                if let Ok(h) = spawned {
                    handles.push(h);
                }
            }
            if handles.is_empty() {
                // Not one thread could start: this thread is the only worker.
                shared.run_worker(queue());
            }
            // The kernel threads stop once every worker's sender is gone.
            drop(tx);
            for h in handles {
                if let Err(p) = h.join() {
                    shared.note_failure(format!("an io_uring worker panicked: {}", panic_text(&p)));
                }
            }
        });
        failure.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) use super::panic_text;

/// What all workers of a run share.
struct Shared<'a, 'c> {
    plan: &'a Plan,
    files: &'a FileQueue,
    ctx: &'a Ctx<'c>,
    tuning: &'a Tuning,
    failure: &'a WorkerError,
}

impl Shared<'_, '_> {
    fn note_failure(&self, why: String) {
        let mut f = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        f.get_or_insert(why);
    }

    /// One worker thread: its own runtime and ring, `lanes` files in flight, each lane taking
    /// the next file from the shared index until none is left.
    fn run_worker(&self, queue: Option<kernel::Queue>) {
        let rt = match ring::build_with_setup(self.tuning.pool, &self.tuning.setup) {
            Ok(rt) => rt,
            Err(_) => {
                // The probe's ring (two small buffers) was built, this one (up to 256 × 128 KiB,
                // pinned against RLIMIT_MEMLOCK for an unprivileged user) was not: this thread
                // copies its share with the portable engine's blocking calls instead of
                // leaving it to fail.
                while let Some(i) = self.files.next_blocking() {
                    if self.ctx.cancelled() {
                        break;
                    }
                    let job = &self.plan.jobs[i];
                    let res = self
                        .ctx
                        .admit(job)
                        .and_then(|()| file::copy_regular(job, None, self.ctx));
                    match res {
                        Ok(()) => self.ctx.done(i),
                        Err(e) => self.ctx.fail(i, e),
                    }
                }
                return;
            }
        };
        let worker = copy::Worker {
            plan: self.plan,
            ctx: self.ctx,
            tuning: self.tuning,
            permits: exec::Permits::new(self.tuning.pool.buffers.into()),
            kernel: queue.as_ref(),
            pipes: Default::default(),
        };
        let futures = (0..self.tuning.lanes)
            .map(|_| {
                let worker = &worker;
                Box::pin(async move {
                    while let Some(i) = self.files.next().await {
                        if self.ctx.cancelled() {
                            break;
                        }
                        let admitted = self.ctx.admit(&self.plan.jobs[i]);
                        let res = match admitted {
                            Ok(()) => worker.copy(i).await,
                            Err(e) => Err(e),
                        };
                        match res {
                            Ok(()) => self.ctx.done(i),
                            Err(e) => self.ctx.fail(i, e),
                        }
                    }
                }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>
            })
            .collect();
        rt.block_on(exec::JoinAll::new(futures));
    }
}
