//! The blocking threads that run in-kernel copies (FICLONE, then copy_file_range) for the ring
//! workers. compio has no copy_file_range op, and a large in-kernel copy would stall a ring
//! thread for its whole length, so the ring task hands the two open files here and awaits the
//! result.
//!
//! These are scoped threads of the run, not compio's `spawn_blocking` pool: they borrow the
//! run's `Ctx`, so they report progress and see a cancel while a large file is being copied.
use std::fs::File;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use super::exec::Handoff;
use crate::bundle::checksums::Hasher;
use crate::bundle::HashAlgo;
use crate::engine::{file, Ctx};

/// One in-kernel copy: duplicates of the ring task's descriptors (the ring task may drop its
/// own while this runs, e.g. on a panic) and where to put the result.
pub struct Task {
    pub src: File,
    pub dst: File,
    /// `--checksums`: also read the copy back once and return its digest.
    pub hash: Option<HashAlgo>,
    pub done: Arc<Handoff<Copied>>,
}

/// Bytes copied and the digest of the copy when the task asked for one; then what closing the
/// destination's duplicate said.
pub type Copied = (io::Result<(u64, Option<String>)>, io::Result<()>);

/// Runs tasks until every sender is gone.
pub fn serve(rx: &Mutex<Receiver<Task>>, ctx: &Ctx<'_>) {
    loop {
        // Holding the lock while waiting is the point: idle threads queue on the mutex.
        let task = {
            let guard = rx.lock().unwrap_or_else(PoisonError::into_inner);
            guard.recv()
        };
        let Ok(Task {
            mut src,
            mut dst,
            hash,
            done,
        }) = task
        else {
            return;
        };
        let res = catch_unwind(AssertUnwindSafe(|| {
            let mut hasher = hash.map(HashAlgo::hasher);
            file::copy_data_hashing(
                &mut src,
                &mut dst,
                &|| ctx.cancelled(),
                &|n| ctx.progress(n),
                hasher.as_mut(),
            )
            .map(|n| (n, hasher.map(Hasher::finish)))
        }))
        .unwrap_or_else(|_| Err(io::Error::other("the in-kernel copy panicked")));
        drop(src);
        done.complete((res, file::close(dst)));
    }
}

/// What a ring task uses to hand work to the pool.
pub type Queue = Sender<Task>;
