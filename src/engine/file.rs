//! Per-file work every backend shares besides staging: the blocking byte copies (one
//! read/write, in-kernel, userspace), links, directories and their metadata.
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path};
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};

use super::stage::{self, Staged, TempGuard, SMALL_FILE};
#[cfg(unix)]
use super::stage::{c_path, check};
use super::Ctx;
use crate::bundle::checksums::Hasher;
use crate::error::CopyError;
use crate::plan::Job;

/// Closes `f` and returns what `close(2)` said: some filesystems (NFS, FUSE) report write-back
/// errors only there, and dropping a `File` discards them.
#[cfg(unix)]
pub fn close(f: File) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: the descriptor is owned, taken out of its File, and closed once.
    if unsafe { libc::close(f.into_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `job`'s source opened for reading: beneath the directory its walk held, following no symlink
/// (see `beneath::open_source`), where it has one; else by path.
pub fn open_source(job: &Job) -> std::io::Result<File> {
    #[cfg(target_os = "linux")]
    if let Some(root) = &job.src_root {
        return super::beneath::open_source(root, &job.src);
    }
    File::open(&job.src)
}

/// Copies one regular file with the OS's own copy (in-kernel where it has one) and places it
/// where `ctx` puts `job`. `opened` is the source when the caller already has it open (the
/// router, to probe its residency); otherwise it is opened here. An interrupt is seen between
/// chunks, so it stops a large file promptly. With `--checksums`, the file's digest is taken on
/// the way and recorded once it is placed.
pub fn copy_regular(job: &Job, opened: Option<File>, ctx: &Ctx<'_>) -> Result<(), CopyError> {
    let mut src = match opened {
        Some(src) => src,
        None => open_source(job).map_err(|e| CopyError::io("open", &job.src, e))?,
    };
    let mut staged = Staged::open(job, ctx.dst(job), ctx.staging)?;
    let digests = ctx.digests();
    let mut hasher = digests.map(|d| d.algo().hasher());
    let progress = |n| ctx.progress(n);
    let copied = if job.size < SMALL_FILE {
        copy_small(
            &mut src,
            &mut staged.file,
            job.size,
            &progress,
            hasher.as_mut(),
        )
    } else {
        copy_data_hashing(
            &mut src,
            &mut staged.file,
            &|| ctx.cancelled(),
            &progress,
            hasher.as_mut(),
        )
    }
    .map_err(|e| stage::copy_failed(job, e))?;
    staged.finish(job, copied, ctx.staging)?;
    // Keyed by the final name: the checksums file lists the placed tree.
    if let (Some(d), Some(h)) = (digests, hasher) {
        d.insert(&job.dst, h.finish());
    }
    Ok(())
}

/// A file expected to hold `size` (< SMALL_FILE) bytes: reads ask for one byte more, so a file
/// that grew shows as too long. Short reads read on; only a read of 0 is the end of file (FUSE
/// and network filesystems answer short in the middle of a file).
fn copy_small(
    src: &mut File,
    dst: &mut File,
    size: u64,
    progress: &dyn Fn(u64),
    hash: Option<&mut Hasher>,
) -> io::Result<u64> {
    use std::io::{Read, Write};
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        let want = size as usize + 1;
        if buf.len() < want {
            buf.resize(SMALL_FILE as usize + 1, 0);
        }
        let mut got = 0;
        while got < want {
            match src.read(&mut buf[got..want]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if let Some(h) = hash {
            h.update(&buf[..got]);
        }
        dst.write_all(&buf[..got])?;
        progress(got as u64);
        Ok(got as u64)
    })
}

/// Bytes from `src` to `dst` until EOF; returns how many.
pub fn copy_data(
    src: &mut File,
    dst: &mut File,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> io::Result<u64> {
    copy_data_hashing(src, dst, cancelled, progress, None)
}

/// [`copy_data`], feeding `hash` with the bytes: as they pass through the user buffer, or,
/// where the kernel copied them, by reading the copy back once through `dst` (opened
/// readable for it).
pub fn copy_data_hashing(
    src: &mut File,
    dst: &mut File,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
    hash: Option<&mut Hasher>,
) -> io::Result<u64> {
    #[cfg(target_os = "linux")]
    if let Some(n) = copy_in_kernel(src, dst, cancelled, progress)? {
        if let Some(h) = hash {
            read_back(dst, n, h)?;
        }
        return Ok(n);
    }
    copy_userspace(src, dst, cancelled, progress, hash)
}

/// Feeds `hash` with the first `len` bytes of `file`, read at offsets (its position is left
/// alone).
#[cfg(unix)]
pub fn read_back(file: &File, len: u64, hash: &mut Hasher) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; (1 << 20).min(len as usize).max(1)];
    let mut pos = 0u64;
    while pos < len {
        let want = buf.len().min((len - pos) as usize);
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(())
}

const CHUNK: usize = 16 << 20;

/// Read/write through a user buffer: where no in-kernel copy exists or applies.
fn copy_userspace(
    src: &mut File,
    dst: &mut File,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
    mut hash: Option<&mut Hasher>,
) -> io::Result<u64> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if cancelled() {
            return Err(stage::cancelled());
        }
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(h) = hash.as_deref_mut() {
            h.update(&buf[..n]);
        }
        dst.write_all(&buf[..n])?;
        total += n as u64;
        progress(n as u64);
    }
}

/// Makes `dst` share `src`'s extents (`FICLONE`): `Some(bytes)` when it did, `None` where this
/// pair cannot (the caller copies; not an error).
#[cfg(target_os = "linux")]
pub fn reflink(src: &File, dst: &File) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    // FICLONE = _IOW(0x94, 9, int)
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // Set once the destination's filesystem says it cannot clone at all: from then on a failed
    // ioctl per file would be pure cost. (EXDEV, a source on another filesystem, does not set
    // it.) One out-dir is one filesystem, short of mounts inside it, which then only lose the
    // reflink, not the copy.
    static NO_REFLINK: AtomicBool = AtomicBool::new(false);
    if NO_REFLINK.load(Ordering::Relaxed) {
        return Ok(None);
    }
    // SAFETY: plain ioctl on two open descriptors we own for the duration of the call.
    if unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) } == 0 {
        return Ok(Some(dst.metadata()?.len()));
    }
    if matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENOTTY)
    ) {
        NO_REFLINK.store(true, Ordering::Relaxed);
    }
    Ok(None)
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
    if let Some(n) = reflink(src, dst)? {
        progress(n);
        return Ok(Some(n));
    }
    let mut total = 0u64;
    loop {
        if cancelled() {
            return Err(stage::cancelled());
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

/// Places `job`'s symlink at `dst` atomically: made under a temporary name, its own mtime set,
/// renamed over.
pub fn place_symlink(target: &Path, job: &Job, dst: &Path) -> Result<(), CopyError> {
    let guard = TempGuard::new(stage::temp_path(dst));
    make_symlink(target, guard.path()).map_err(|e| CopyError::io("create symlink", dst, e))?;
    #[cfg(unix)]
    if let Some(m) = job.mtime {
        set_mtime_nofollow(guard.path(), m).map_err(|e| CopyError::io("set mtime of", dst, e))?;
    }
    #[cfg(not(unix))]
    let _ = job;
    guard.commit(dst)
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
fn set_mtime_nofollow(path: &Path, mtime: std::time::SystemTime) -> io::Result<()> {
    let d = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d,
        Err(_) => return Ok(()),
    };
    let c = c_path(path)?;
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
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Places a hard link at `dst` to an already placed destination, atomically.
pub fn place_hardlink(first_dst: &Path, dst: &Path) -> Result<(), CopyError> {
    let guard = TempGuard::new(stage::temp_path(dst));
    fs::hard_link(first_dst, guard.path()).map_err(|e| CopyError::io("hard-link", dst, e))?;
    guard.commit(dst)
}

/// `job`'s directory mode and mtime on `dst`, set once its contents are in place. By path, not
/// through an open descriptor: two syscalls, not four, per directory.
pub fn set_dir_meta(job: &Job, dst: &Path) -> Result<(), CopyError> {
    let err = |e| CopyError::io("set metadata of", dst, e);
    // Through a descriptor opened beneath the out-dir: a directory swapped for a symlink since
    // it was made is an error, not a chmod of whatever the link points to.
    #[cfg(target_os = "linux")]
    if let Some(dir) = super::beneath::open_dir(dst) {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.map_err(err)?;
        if let Some(m) = job.mtime {
            dir.set_times(fs::FileTimes::new().set_modified(m))
                .map_err(err)?;
        }
        return dir
            .set_permissions(fs::Permissions::from_mode(job.mode))
            .map_err(err);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Some(m) = job.mtime {
            set_mtime_nofollow(dst, m).map_err(err)?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(job.mode)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = (err, job);
    Ok(())
}

pub fn fsync_dir(dir: &Path) -> Result<(), CopyError> {
    #[cfg(unix)]
    {
        #[cfg(target_os = "linux")]
        let held = super::beneath::open_dir(dir);
        #[cfg(not(target_os = "linux"))]
        let held: Option<io::Result<File>> = None;
        let d = held
            .unwrap_or_else(|| File::open(dir))
            .map_err(|e| CopyError::io("open", dir, e))?;
        d.sync_all().map_err(|e| CopyError::io("fsync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes `dir`, whose parent this run already made or checked: one `mkdir`, and a look at what
/// is there only when something is.
pub fn make_dir_in_checked_parent(dir: &Path) -> io::Result<()> {
    // Made in its parent held open beneath the out-dir (see `beneath`).
    #[cfg(target_os = "linux")]
    let (at, _held) = super::beneath::through(dir)?;
    #[cfg(target_os = "linux")]
    let dir = at.as_path();
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_existing_dir(dir),
        Err(e) => Err(e),
    }
}

/// Something is at `dir`: fine if a directory; a symlink is replaced by a real directory
/// (following it could write outside the out-dir); anything else is an error.
fn check_existing_dir(dir: &Path) -> io::Result<()> {
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        Ok(())
    } else if md.file_type().is_symlink() {
        fs::remove_file(dir)?;
        fs::create_dir(dir)
    } else {
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file stands where a directory belongs",
        ))
    }
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
        #[cfg(target_os = "linux")]
        let (at, _held) = super::beneath::through(&cur)?;
        #[cfg(not(target_os = "linux"))]
        let at = cur.clone();
        match fs::symlink_metadata(&at) {
            Ok(md) if md.is_dir() => continue,
            Ok(_) => check_existing_dir(&at)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&at) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && at.is_dir() => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a filesystem has left for an unprivileged writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Free {
    pub bytes: u64,
    /// Its block size: a file takes whole blocks.
    pub block: u64,
    /// Inodes left; `None` where the filesystem has no fixed count (btrfs reports 0 of 0).
    pub inodes: Option<u64>,
}

/// What `dir`'s filesystem has left; `None` where that cannot be asked.
pub fn free_space(dir: &Path) -> Option<Free> {
    #[cfg(unix)]
    {
        let c = c_path(dir).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a valid C string and a buffer of the type statvfs fills.
        if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: statvfs succeeded, so it filled the struct.
        let st = unsafe { st.assume_init() };
        // The field types differ between targets (u64 on x86_64 glibc, u32 elsewhere).
        #[allow(clippy::unnecessary_cast)]
        let (block, avail) = ((st.f_frsize as u64).max(1), st.f_bavail as u64);
        #[allow(clippy::unnecessary_cast)]
        let inodes = (st.f_files as u64 > 0).then_some(st.f_favail as u64);
        Some(Free {
            bytes: avail.saturating_mul(block),
            block,
            inodes,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}
