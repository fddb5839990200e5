//! One regular file through a ring worker: open and create through io_uring, move the bytes
//! (buffer ring, splice through a pipe, or in-kernel copy on a blocking thread), set metadata,
//! rename into place.
use std::cell::{Cell, RefCell};
use std::fs::File as StdFile;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::path::Path;
use std::pin::Pin;

use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadManagedAt, AsyncWriteAt};

use super::exec::{Handoff, JoinAll, Permits};
use super::kernel;
use super::{Route, Tuning};
use crate::bundle::checksums::Hasher;
use crate::bundle::HashAlgo;
use crate::engine::stage::{self, Staged};
use crate::engine::{file, Ctx};
use crate::error::CopyError;
use crate::plan::{Job, Plan};

/// What every file task of one worker shares.
pub struct Worker<'a, 'c> {
    pub plan: &'a Plan,
    pub ctx: &'a Ctx<'c>,
    pub tuning: &'a Tuning,
    /// One permit per buffer in this worker's ring.
    pub permits: Permits,
    /// The in-kernel copy threads; `None` runs such copies on the ring thread (only when no
    /// blocking thread could be started).
    pub kernel: Option<&'a kernel::Queue>,
    /// Idle pipes for the splice route, one per file being spliced at most. A pipe goes back
    /// here only when it was drained; one left holding bytes by an error is dropped.
    pub pipes: RefCell<Vec<Pipe>>,
}

/// Both ends of a pipe, and how many bytes it can hold.
pub struct Pipe {
    rx: File,
    tx: File,
    capacity: usize,
}

/// Bytes asked of a pipe: 1 MiB is Linux's default `pipe-max-size` for unprivileged users, and
/// moves a large file in 16× fewer splices than the default 64 KiB.
pub(super) const PIPE_BYTES: libc::c_int = 1 << 20;

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (rx, tx) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        // A smaller pipe (the limit lowered, or the user's pipe quota spent) still works, in
        // smaller steps: take whatever size the kernel reports.
        // SAFETY: plain fcntl calls on a descriptor owned above.
        let capacity = unsafe {
            libc::fcntl(tx.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES);
            libc::fcntl(tx.as_raw_fd(), libc::F_GETPIPE_SZ)
        };
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|&c| c > 0)
            .unwrap_or(libc::PIPE_BUF);
        Ok(Pipe { rx, tx, capacity })
    }
}

impl Worker<'_, '_> {
    pub fn route(&self, size: u64) -> Route {
        self.tuning.route(size)
    }

    /// Copies job `i` and places it; the caller reports the result.
    pub async fn copy(&self, i: usize) -> Result<(), CopyError> {
        let job = &self.plan.jobs[i];
        if self.ctx.cancelled() {
            return Err(stage::interrupted(job));
        }
        let src = OpenOptions::new()
            .read(true)
            .open(&job.src)
            .await
            .map_err(|e| CopyError::io("open", &job.src, e))?;
        let dst = Staged::open_ring(job).await?;
        let algo = self.ctx.digests().map(|d| d.algo());
        let hasher = algo.map(|a| RefCell::new(a.hasher()));
        let (copied, digest) = match self.route(job.size) {
            Route::Ring => {
                let n = self.pump(job, &src, &dst.file, hasher.as_ref()).await?;
                (n, hasher.map(|h| h.into_inner().finish()))
            }
            Route::Kernel => self.in_kernel(job, &src, &dst.file, algo).await?,
            Route::Splice => {
                let n = self.splice(job, &src, &dst.file).await?;
                // The bytes stayed in the kernel: read the copy back once.
                let digest = match hasher {
                    Some(h) => {
                        let mut h = h.into_inner();
                        stage::with_std(&dst.file, |f| file::read_back(f, n, &mut h))
                            .map_err(|e| CopyError::io("read back", &job.dst, e))?;
                        Some(h.finish())
                    }
                    None => None,
                };
                (n, digest)
            }
        };
        dst.finish_ring(job, copied, self.ctx.fsync).await?;
        if let (Some(d), Some(hex)) = (self.ctx.digests(), digest) {
            d.insert(&job.dst, hex);
        }
        // The source was only read: nothing a close error could tell us matters.
        let _ = src.close().await;
        Ok(())
    }

    /// The buffer-ring method: reads into kernel-selected pool buffers, writes from them.
    ///
    /// The file is cut into buffer-sized chunks, `0..=size / len` (the last one may be empty);
    /// up to `file_window` of them are in flight at once, each taking a permit first. Every read
    /// asks for a whole buffer, so the last chunk's read also shows whether the file grew, and a
    /// short read ending at the expected size is its end of file (no extra read of 0 bytes,
    /// except when the size is a multiple of the buffer length).
    ///
    /// With `hash`, the chunks go one at a time, in order, each hashed between its read and
    /// its write (other files still overlap).
    async fn pump(
        &self,
        job: &Job,
        src: &File,
        dst: &File,
        hash: Option<&RefCell<Hasher>>,
    ) -> Result<u64, CopyError> {
        let len = self.tuning.pool.buffer_len as u64;
        let chunks = job.size / len + 1;
        let window = (self.tuning.file_window as u64).min(chunks) as usize;
        if window <= 1 || hash.is_some() {
            let mut total = 0;
            for k in 0..chunks {
                total += self.chunk(job, src, dst, k, hash).await?;
            }
            return Ok(total);
        }
        let next = Cell::new(0u64);
        let total = Cell::new(0u64);
        let failed: RefCell<Option<CopyError>> = RefCell::new(None);
        let lanes: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = (0..window)
            .map(|_| {
                let (next, total, failed) = (&next, &total, &failed);
                Box::pin(async move {
                    while failed.borrow().is_none() {
                        let k = next.get();
                        if k >= chunks {
                            break;
                        }
                        next.set(k + 1);
                        match self.chunk(job, src, dst, k, None).await {
                            Ok(n) => total.set(total.get() + n),
                            Err(e) => {
                                failed.borrow_mut().get_or_insert(e);
                            }
                        }
                    }
                }) as Pin<Box<dyn Future<Output = ()> + '_>>
            })
            .collect();
        JoinAll::new(lanes).await;
        match failed.into_inner() {
            Some(e) => Err(e),
            None => Ok(total.get()),
        }
    }

    /// Chunk `k`: bytes `k*len .. (k+1)*len`, or fewer at the end of file. Returns bytes copied.
    async fn chunk(
        &self,
        job: &Job,
        src: &File,
        dst: &File,
        k: u64,
        hash: Option<&RefCell<Hasher>>,
    ) -> Result<u64, CopyError> {
        let len = self.tuning.pool.buffer_len as u64;
        let end = (k + 1) * len;
        let mut pos = k * len;
        let mut got = 0;
        loop {
            if self.ctx.cancelled() {
                return Err(stage::interrupted(job));
            }
            let permit = self.permits.acquire().await;
            // The length is explicit: 0 ("the whole buffer") works only on kernels >= 6.0.
            let buf = src
                .read_managed_at((end - pos) as usize, pos)
                .await
                .map_err(|e| CopyError::io("read", &job.src, e))?;
            let Some(buf) = buf else {
                return Ok(got);
            };
            let n = buf.len() as u64;
            if let Some(h) = hash {
                h.borrow_mut().update(&buf);
            }
            write_all_at(dst, buf, pos)
                .await
                .map_err(|e| CopyError::io("write", &job.dst, e))?;
            // The buffer went back to the ring when the write dropped it; now the permit.
            drop(permit);
            self.ctx.progress(n);
            got += n;
            pos += n;
            // A short read that reaches the expected size is the end of file; one that stops
            // before it (never seen on regular files, but allowed) reads on.
            if pos >= end || pos >= job.size {
                return Ok(got);
            }
        }
    }

    /// The splice method: source → pipe → destination, both steps io_uring splice ops (which
    /// the kernel runs on its io-wq threads). Filling the pipe takes page references, not
    /// bytes; emptying it copies them into the destination's page cache.
    ///
    /// Each step asks for one pipe's worth; the last one asks for a byte more than the size, so
    /// a file that grew shows as a longer copy, as in `pump`. The pipe is always drained before
    /// it is filled again, so neither splice can block on it.
    async fn splice(&self, job: &Job, src: &File, dst: &File) -> Result<u64, CopyError> {
        let pooled = self.pipes.borrow_mut().pop();
        let pipe = match pooled {
            Some(p) => p,
            None => Pipe::new().map_err(|e| CopyError::io("create a pipe for", &job.src, e))?,
        };
        let mut pos = 0u64;
        loop {
            if self.ctx.cancelled() {
                return Err(stage::interrupted(job));
            }
            let left = job.size.saturating_sub(pos).saturating_add(1);
            let want = usize::try_from(left).map_or(pipe.capacity, |l| l.min(pipe.capacity));
            let got = compio::fs::pipe::splice(src, &pipe.tx, want)
                .offset_in(pos as i64)
                .await
                .map_err(|e| CopyError::io("read", &job.src, e))?;
            if got == 0 {
                break;
            }
            let mut out = 0;
            while out < got {
                let n = compio::fs::pipe::splice(&pipe.rx, dst, got - out)
                    .offset_out((pos + out as u64) as i64)
                    .await
                    .map_err(|e| CopyError::io("write", &job.dst, e))?;
                if n == 0 {
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    return Err(CopyError::io("write", &job.dst, e));
                }
                out += n;
            }
            pos += got as u64;
            self.ctx.progress(got as u64);
            // Short of what was asked, at or past the expected size: the end of the file (or
            // proof that it grew, which the caller reports).
            if got < want && pos >= job.size || pos > job.size {
                break;
            }
        }
        self.pipes.borrow_mut().push(pipe);
        Ok(pos)
    }

    /// The in-kernel method, on a blocking thread so the ring keeps serving other files.
    /// With `hash`, the blocking thread also reads the copy back once and returns its digest.
    async fn in_kernel(
        &self,
        job: &Job,
        src: &File,
        dst: &File,
        hash: Option<HashAlgo>,
    ) -> Result<(u64, Option<String>), CopyError> {
        // Duplicates, so the blocking thread owns its descriptors whatever happens to this task.
        let dup = |f: &File, path: &Path| {
            f.as_fd()
                .try_clone_to_owned()
                .map(StdFile::from)
                .map_err(|e| CopyError::io("duplicate descriptor of", path, e))
        };
        let (mut s, mut d) = (dup(src, &job.src)?, dup(dst, &job.dst)?);
        let res = match self.kernel {
            Some(queue) => {
                let done = Handoff::new();
                let task = kernel::Task {
                    src: s,
                    dst: d,
                    hash,
                    done: done.clone(),
                };
                match queue.send(task) {
                    Ok(()) => done.wait().await,
                    Err(_) => Err(io::Error::other("the in-kernel copy threads are gone")),
                }
            }
            None => {
                let mut hasher = hash.map(HashAlgo::hasher);
                file::copy_data_hashing(
                    &mut s,
                    &mut d,
                    &|| self.ctx.cancelled(),
                    &|n| self.ctx.progress(n),
                    hasher.as_mut(),
                )
                .map(|n| (n, hasher.map(Hasher::finish)))
            }
        };
        res.map_err(|e| stage::copy_failed(job, e))
    }
}

/// Writes all of `buf` at `pos`, then drops it (returning a pool buffer to its ring).
async fn write_all_at<B: IoBuf>(dst: &File, buf: B, mut pos: u64) -> io::Result<()> {
    let total = buf.buf_len();
    let mut done = 0;
    let mut buf = buf;
    let mut w = dst;
    while done < total {
        let BufResult(res, slice) = w.write_at(buf.slice(done..), pos).await;
        buf = slice.into_inner();
        let n = res?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += n;
        pos += n as u64;
    }
    Ok(())
}
