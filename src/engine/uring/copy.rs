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

/// `job`'s source opened through the ring: where the walk held the directory it was found below,
/// by one `openat2` beneath that directory with no symlink followed (`uring::open`), so nothing
/// outside the source is read.
async fn open_source(job: &Job) -> io::Result<File> {
    match &job.src_root {
        Some(root) => {
            let rel = crate::engine::beneath::below(root, &job.src)?;
            super::open::open_beneath(root.clone(), rel, libc::O_RDONLY, 0).await
        }
        None => OpenOptions::new().read(true).open(&job.src).await,
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
        let src = open_source(job)
            .await
            .map_err(|e| CopyError::io("open", &job.src, e))?;
        let dst = Staged::open_ring(job, self.ctx.dst(job), self.ctx.staging).await?;
        let algo = self.ctx.digests().map(|d| d.algo());
        let hasher = algo.map(|a| RefCell::new(a.hasher()));
        let route = match self.route(job.size) {
            Route::Ring | Route::Splice | Route::CloneOrRing if !ring_reads_trusted(&src) => {
                Route::Kernel
            }
            route => route,
        };
        let cloned = if route == Route::CloneOrRing {
            stage::with_std(&src, |s| {
                stage::with_std(&dst.file, |d| file::reflink(s, d))
            })
            .map_err(|e| CopyError::io("clone", &job.dst, e))?
        } else {
            None
        };
        // Bytes the kernel moved without us seeing them are read back once for a digest.
        let read_back = |n: u64, hasher: Option<RefCell<Hasher>>| -> Result<_, CopyError> {
            match hasher {
                Some(h) => {
                    let mut h = h.into_inner();
                    stage::with_std(&dst.file, |f| file::read_back(f, n, &mut h))
                        .map_err(|e| CopyError::io("read back", &job.dst, e))?;
                    Ok(Some(h.finish()))
                }
                None => Ok(None),
            }
        };
        let (copied, digest) = match (route, cloned) {
            (_, Some(n)) => {
                self.ctx.progress(n);
                (n, read_back(n, hasher)?)
            }
            (Route::Ring | Route::CloneOrRing, None) => {
                let n = self.pump(job, &src, &dst.file, hasher.as_ref()).await?;
                (n, hasher.map(|h| h.into_inner().finish()))
            }
            (Route::Kernel, None) => self.in_kernel(job, &src, &dst.file, algo).await?,
            (Route::Splice, None) => {
                let n = self.splice(job, &src, &dst.file).await?;
                (n, read_back(n, hasher)?)
            }
        };
        dst.finish_ring(job, copied, self.ctx.staging).await?;
        if let (Some(d), Some(hex)) = (self.ctx.digests(), digest) {
            d.insert(&job.dst, hex);
        }
        // The source was only read: nothing a close error could tell us matters.
        let _ = src.close().await;
        Ok(())
    }

    /// The buffer-ring method: reads into kernel-selected pool buffers, writes from them.
    ///
    /// The planned size is cut into buffer-sized chunks, then one more read at the planned end
    /// must find the end of the file (a read of 0): nothing but a read of 0 ends a file, and a
    /// file that grew shows as a longer copy. Up to `file_window` reads are in flight at once,
    /// each holding a permit. No read asks past the planned end, because where a read
    /// crossing the end of file goes async (FUSE `direct_io`), kernels report the bytes asked
    /// for, zero-filled, not the bytes the file holds.
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
        // The data chunks, then the end-of-file read.
        let chunks = job.size.div_ceil(len) + 1;
        let window = (self.tuning.file_window as u64).min(chunks) as usize;
        if window <= 1 || chunks <= 2 || hash.is_some() {
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

    /// Chunk `k`: bytes `k*len .. min((k+1)*len, size)`, read on after short reads until they
    /// are all there or a read returns 0 (the file shrank: the total falls short and the caller
    /// reports it). The chunk after the last is the end-of-file read: whatever it finds (it
    /// should find nothing) counts, so a file that grew is reported, never cut. Returns bytes
    /// copied, as the kernel counted them.
    async fn chunk(
        &self,
        job: &Job,
        src: &File,
        dst: &File,
        k: u64,
        hash: Option<&RefCell<Hasher>>,
    ) -> Result<u64, CopyError> {
        let len = self.tuning.pool.buffer_len as u64;
        if k == job.size.div_ceil(len) {
            if self.ctx.cancelled() {
                return Err(stage::interrupted(job));
            }
            let _permit = self.permits.acquire().await;
            let past = src
                .read_managed_at(len as usize, job.size)
                .await
                .map_err(|e| CopyError::io("read", &job.src, e))?;
            return Ok(past.map_or(0, |b| b.len() as u64));
        }
        let end = ((k + 1) * len).min(job.size);
        let mut pos = k * len;
        let mut got = 0;
        while pos < end {
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
        }
        Ok(got)
    }

    /// The splice method: source → pipe → destination, both steps io_uring splice ops (which
    /// the kernel runs on its io-wq threads). Filling the pipe takes page references, not
    /// bytes; emptying it copies them into the destination's page cache.
    ///
    /// Each step asks for one pipe's worth, at most what the planned size has left; at the
    /// planned end one more asks for a byte, which must find the end of the file (a read of 0),
    /// so a file that grew shows as a longer copy, as in `pump`. Short reads read on: only a
    /// read of 0 ends a file. The pipe is always drained before it is filled again, so neither
    /// splice can block on it.
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
            let left = job.size.saturating_sub(pos).max(1);
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
            // Past the planned size: the file grew, which the caller reports.
            if pos > job.size {
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
        let (res, closed) = match self.kernel {
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
                    Err(_) => {
                        let gone = io::Error::other("the in-kernel copy threads are gone");
                        (Err(gone), Ok(()))
                    }
                }
            }
            None => {
                let mut hasher = hash.map(HashAlgo::hasher);
                let res = file::copy_data_hashing(
                    &mut s,
                    &mut d,
                    &|| self.ctx.cancelled(),
                    &|n| self.ctx.progress(n),
                    hasher.as_mut(),
                )
                .map(|n| (n, hasher.map(Hasher::finish)));
                (res, file::close(d))
            }
        };
        let copied = res.map_err(|e| stage::copy_failed(job, e))?;
        // The duplicate shares the file's open description: a write-back error a filesystem
        // reports at close (NFS, FUSE) is reported to the first close only, which is this one.
        closed.map_err(|e| CopyError::io("close", &job.dst, e))?;
        Ok(copied)
    }
}

/// Whether `src` may be read through io_uring (buffer ring or splice): only on filesystems where
/// such reads were verified to return what the file holds. Through FUSE (the campaign in
/// tests/faults.rs, kernel 6.18) three things go wrong: buffer-ring reads that go async with
/// several files in flight are reported in distinct buffers while the kernel wrote them all into
/// one (right lengths, wrong bytes); under `direct_io` a read crossing the end of file reports
/// the length asked for, zero-filled; and a splice after a short answer returns 0 mid-file.
/// Anything not on the list takes the in-kernel route, which reads like the portable engine.
fn ring_reads_trusted(src: &File) -> bool {
    const TRUSTED: [i64; 8] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
        0xF2F5_2010, // f2fs
        0xCA45_1A4E, // bcachefs
        0x8584_58F6, // ramfs
    ];
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs on a descriptor we hold open, into a buffer of the right type and size.
    if unsafe { libc::fstatfs(src.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstatfs succeeded, so it filled the struct.
    let st = unsafe { st.assume_init() };
    // `f_type` is i64 on x86_64 glibc, a narrower type on other targets.
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    TRUSTED.contains(&kind)
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
