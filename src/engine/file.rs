//! Per-file primitives every backend shares: temporary names, atomic placement, metadata, in-kernel copy.
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CopyError;
use crate::plan::Job;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name in `dst`'s directory. It holds no part of the final name, so a
/// 255-byte final name still fits, and the pid keeps two concurrent runs apart.
pub fn temp_path(dst: &Path) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!(".fastcp-{}-{n}.tmp", std::process::id());
    match dst.parent() {
        Some(p) => p.join(name),
        None => PathBuf::from(name),
    }
}

/// Removes its temporary path on drop unless `commit` renamed it into place: an error, a panic
/// or an interrupt never leaves a temporary file behind, nor a partial file under a final name.
pub struct TempGuard {
    path: Option<PathBuf>,
}

impl TempGuard {
    pub fn new(path: PathBuf) -> Self {
        TempGuard { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Forgets the temporary path without removing it: the caller has renamed it into place
    /// itself (the io-uring engine renames through the ring, not with `commit`).
    pub fn disarm(mut self) {
        self.path = None;
    }

    /// Renames the temporary into place. `rename` replaces a symlink at `dst` rather than
    /// writing through it, so nothing is written outside the out-dir.
    pub fn commit(mut self, dst: &Path) -> Result<(), CopyError> {
        let Some(tmp) = self.path.take() else {
            return Ok(());
        };
        fs::rename(&tmp, dst).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CopyError::io("rename into place", dst, e)
        })
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Creates the temporary file exclusively (`O_CREAT|O_EXCL`: never opens an existing file or
/// follows a planted symlink), private until its mode is set.
pub fn create_temp(dst: &Path) -> Result<(File, TempGuard), CopyError> {
    let tmp = temp_path(dst);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(&tmp)
        .map_err(|e| CopyError::io("create", &tmp, e))?;
    Ok((f, TempGuard::new(tmp)))
}

/// Gives a finished temporary file its source's mode bits and mtime (ns).
pub fn apply_meta(f: &File, job: &Job) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(job.mode))?;
    }
    #[cfg(not(unix))]
    {
        let mut p = f.metadata()?.permissions();
        p.set_readonly(job.mode & 0o222 == 0);
        f.set_permissions(p)?;
    }
    if let Some(m) = job.mtime {
        f.set_times(fs::FileTimes::new().set_modified(m))?;
    }
    Ok(())
}

/// The end of every regular-file copy: size check, metadata, optional fsync, rename into place.
pub fn finish(
    f: &File,
    guard: TempGuard,
    job: &Job,
    copied: u64,
    fsync: bool,
) -> Result<(), CopyError> {
    if copied != job.size {
        return Err(CopyError::Changed {
            path: job.src.clone(),
            expected: job.size,
            actual: copied,
        });
    }
    apply_meta(f, job).map_err(|e| CopyError::io("set metadata of", guard.path(), e))?;
    if fsync {
        f.sync_all()
            .map_err(|e| CopyError::io("fsync", guard.path(), e))?;
    }
    guard.commit(&job.dst)
}

/// Copies one regular file with the OS's own copy (in-kernel where it has one) and places it.
/// `cancelled` is polled between chunks so an interrupt stops a large file promptly.
pub fn copy_regular(
    job: &Job,
    fsync: bool,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> Result<(), CopyError> {
    let mut src = File::open(&job.src).map_err(|e| CopyError::io("open", &job.src, e))?;
    let (mut dst, guard) = create_temp(&job.dst)?;
    let copied = copy_data(&mut src, &mut dst, cancelled, progress).map_err(|e| {
        if e.kind() == io::ErrorKind::Interrupted {
            CopyError::Interrupted {
                path: job.src.clone(),
            }
        } else {
            CopyError::io("copy", &job.src, e)
        }
    })?;
    finish(&dst, guard, job, copied, fsync)
}

/// Bytes from `src` to `dst` until EOF; returns how many.
pub fn copy_data(
    src: &mut File,
    dst: &mut File,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    if let Some(n) = copy_in_kernel(src, dst, cancelled, progress)? {
        return Ok(n);
    }
    copy_userspace(src, dst, cancelled, progress)
}

const CHUNK: usize = 16 << 20;

fn interrupted() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "interrupted by signal")
}

/// Read/write through a user buffer: where no in-kernel copy exists or applies.
fn copy_userspace(
    src: &mut File,
    dst: &mut File,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> io::Result<u64> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if cancelled() {
            return Err(interrupted());
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        total += n as u64;
        progress(n as u64);
    }
}

/// Reflink (`FICLONE`) where the filesystem shares extents, else `copy_file_range` in chunks.
/// `Ok(None)`: not supported for this pair; the caller falls back (not an error).
#[cfg(target_os = "linux")]
pub fn copy_in_kernel(
    src: &File,
    dst: &File,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    let (s, d) = (src.as_raw_fd(), dst.as_raw_fd());
    // FICLONE = _IOW(0x94, 9, int)
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: plain ioctl on two open descriptors we own for the duration of the call.
    if unsafe { libc::ioctl(d, FICLONE as _, s) } == 0 {
        let n = dst.metadata()?.len();
        progress(n);
        return Ok(Some(n));
    }
    let mut total = 0u64;
    loop {
        if cancelled() {
            return Err(interrupted());
        }
        // SAFETY: null offsets use and advance the descriptors' own file positions.
        let r = unsafe {
            libc::copy_file_range(s, std::ptr::null_mut(), d, std::ptr::null_mut(), CHUNK, 0)
        };
        if r == 0 {
            return Ok(Some(total));
        }
        if r > 0 {
            total += r as u64;
            progress(r as u64);
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOSYS | libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL | libc::EPERM)
                if total == 0 =>
            {
                return Ok(None)
            }
            _ => return Err(err),
        }
    }
}

/// Places a symlink atomically: made under a temporary name, its own mtime set, renamed over.
pub fn place_symlink(target: &Path, job: &Job) -> Result<(), CopyError> {
    let guard = TempGuard::new(temp_path(&job.dst));
    make_symlink(target, guard.path()).map_err(|e| CopyError::io("create symlink", &job.dst, e))?;
    #[cfg(unix)]
    if let Some(m) = job.mtime {
        set_symlink_mtime(guard.path(), m)
            .map_err(|e| CopyError::io("set mtime of", &job.dst, e))?;
    }
    guard.commit(&job.dst)
}

#[cfg(unix)]
fn make_symlink(target: &Path, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(windows)]
fn make_symlink(target: &Path, at: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, at)
}

#[cfg(unix)]
fn set_symlink_mtime(path: &Path, mtime: std::time::SystemTime) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let d = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d,
        Err(_) => return Ok(()),
    };
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: d.as_secs() as libc::time_t,
            tv_nsec: d.subsec_nanos() as _,
        },
    ];
    // SAFETY: valid C string and a two-element timespec array, as utimensat requires.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Places a hard link to an already placed destination, atomically.
pub fn place_hardlink(first_dst: &Path, job: &Job) -> Result<(), CopyError> {
    let guard = TempGuard::new(temp_path(&job.dst));
    fs::hard_link(first_dst, guard.path()).map_err(|e| CopyError::io("hard-link", &job.dst, e))?;
    guard.commit(&job.dst)
}

/// A directory's mode and mtime, set once its contents are in place.
pub fn set_dir_meta(job: &Job) -> Result<(), CopyError> {
    let err = |e| CopyError::io("set metadata of", &job.dst, e);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Some(m) = job.mtime {
            let d = File::open(&job.dst).map_err(err)?;
            d.set_times(fs::FileTimes::new().set_modified(m))
                .map_err(err)?;
        }
        fs::set_permissions(&job.dst, fs::Permissions::from_mode(job.mode)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = err;
    Ok(())
}

pub fn fsync_dir(dir: &Path) -> Result<(), CopyError> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| CopyError::io("open", dir, e))?;
        d.sync_all().map_err(|e| CopyError::io("fsync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes `dir` (inside `out_dir`) one component at a time. A symlink where a directory belongs
/// is replaced by a real directory: following it could write outside the out-dir.
pub fn ensure_dir(out_dir: &Path, dir: &Path) -> io::Result<()> {
    let Ok(rel) = dir.strip_prefix(out_dir) else {
        return fs::create_dir_all(dir);
    };
    let mut cur = out_dir.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path leaves the out-dir",
            ));
        };
        cur.push(name);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => continue,
            Ok(md) if md.file_type().is_symlink() => {
                fs::remove_file(&cur)?;
                fs::create_dir(&cur)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file stands where a directory belongs",
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && cur.is_dir() => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
