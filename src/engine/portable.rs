//! The portable backend: `-j` threads, each copying whole files with the OS's own copy.
use super::{file, Backend, Ctx, FileQueue};
use crate::error::CopyError;
use crate::plan::{Job, Plan};

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
            let mut files = files.taker(super::GROUP_RUN);
            while let Some(i) = files.next_blocking() {
                if ctx.cancelled() {
                    break;
                }
                let job = &plan.jobs[i];
                match ctx.admit(job).and_then(|()| copy_one(job, ctx)) {
                    Ok(()) => ctx.done(i),
                    Err(e) => ctx.fail(i, e),
                }
            }
        };
        std::thread::scope(|s| {
            // A thread that cannot be started (RLIMIT_NPROC, memory) is one worker fewer; this
            // thread always works, so the files are copied by however many there are.
            for n in 1..self.threads {
                let _ = std::thread::Builder::new()
                    .name(format!("fastcp-copy-{n}"))
                    .spawn_scoped(s, worker);
            }
            worker();
        });
        None
    }
}

/// Linux: the engine's own staging (`O_TMPFILE`, reflink, `copy_file_range`).
#[cfg(target_os = "linux")]
fn copy_one(job: &Job, ctx: &Ctx<'_>) -> Result<(), CopyError> {
    copy_staged(job, ctx)
}

/// The engine's own staging, through `file`.
fn copy_staged(job: &Job, ctx: &Ctx<'_>) -> Result<(), CopyError> {
    file::copy_regular(job, None, ctx)
}

/// Elsewhere: `std::fs::copy`, which is the OS's native copy (`fclonefileat`, an APFS clone,
/// else `fcopyfile` on macOS; `CopyFileExW`, block cloning on ReFS/Dev Drive, on Windows), into
/// a fresh temporary name; then the mode and mtime, and a rename into place, as everywhere.
/// With `--fsync` the staged copy of `file` is used instead: the native copy may leave the file
/// read-only, and flushing it needs a handle open for writing.
#[cfg(not(target_os = "linux"))]
fn copy_one(job: &Job, ctx: &Ctx<'_>) -> Result<(), CopyError> {
    use super::stage::{apply_meta, temp_path, TempGuard};
    use std::fs;
    if ctx.staging.fsync {
        return copy_staged(job, ctx);
    }
    let dst = ctx.dst(job);
    let guard = TempGuard::new(temp_path(&dst));
    let tmp = guard.path().to_path_buf();
    let copied = fs::copy(&job.src, &tmp).map_err(|e| CopyError::io("copy", &job.src, e))?;
    ctx.progress(copied);
    if copied != job.size {
        return Err(CopyError::Changed {
            path: job.src.clone(),
            expected: job.size,
            actual: copied,
        });
    }
    {
        // The copy took the source's permissions, maybe read-only: open only for what setting
        // metadata needs, never for writing data.
        let mut opts = fs::OpenOptions::new();
        #[cfg(windows)]
        {
            use std::os::windows::fs::OpenOptionsExt;
            // FILE_WRITE_ATTRIBUTES | FILE_READ_ATTRIBUTES: allowed on a read-only file.
            opts.access_mode(0x0100 | 0x0080);
        }
        #[cfg(not(windows))]
        opts.read(true);
        let f = opts
            .open(&tmp)
            .map_err(|e| CopyError::io("open", &tmp, e))?;
        // Created with whatever mode the OS copy chose: 0 never matches, so the mode is set.
        apply_meta(&f, job, 0).map_err(|e| CopyError::io("set metadata of", &tmp, e))?;
    }
    guard.commit(&dst)
}
