//! Per-file primitives every backend shares: temporary names, atomic placement, metadata, in-kernel copy.
use std::fs::{self, File};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::CopyError;
use crate::plan::Job;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The process id, read once: it is part of every temporary name.
fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A fresh temporary name in `dst`'s directory. It holds no part of the final name, so a
/// 255-byte final name still fits, and the pid keeps two concurrent runs apart.
pub fn temp_path(dst: &Path) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = format!(".fastcp-{}-{n}.tmp", pid());
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

/// A destination file being written, not yet under its final name.
pub struct Staged {
    pub file: File,
    /// `None`: an unnamed `O_TMPFILE` inode. It has no name to clean up if the run stops (not
    /// even after a second Ctrl-C), and placing it is one `linkat` instead of a create plus a
    /// `rename`, which is one directory update per file fewer.
    named: Option<TempGuard>,
    /// The mode it was created with (see `apply_meta`).
    created: u32,
}

/// Set once `O_TMPFILE` is refused (an old kernel, a filesystem without it); named
/// temporaries from then on.
#[cfg(target_os = "linux")]
static NO_TMPFILE: AtomicBool = AtomicBool::new(false);

/// Whether to stage into unnamed `O_TMPFILE` inodes. `CARGO_FASTCP_NAMED_TEMPS=1` forces named
/// temporaries, the path taken where `O_TMPFILE` is missing, so tests can cover it anywhere.
#[cfg(target_os = "linux")]
fn tmpfile_wanted() -> bool {
    static FORCED_NAMED: OnceLock<bool> = OnceLock::new();
    !NO_TMPFILE.load(Ordering::Relaxed)
        && !*FORCED_NAMED
            .get_or_init(|| std::env::var_os("CARGO_FASTCP_NAMED_TEMPS").is_some_and(|v| v == "1"))
}

/// The mode a named temporary is created with: private until its final mode is set.
pub const NAMED_MODE: u32 = 0o600;

/// Where the destination's directory is, for `O_TMPFILE`.
pub fn dst_dir(dst: &Path) -> &Path {
    match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `Some(mode)`: stage `job` as an unnamed `O_TMPFILE` inode created with `mode`, its final
/// permission bits, so that the `chmod` can usually be skipped. `None`: use a named temporary
/// created with `NAMED_MODE`. For engines that open the file themselves.
#[cfg(target_os = "linux")]
pub fn anonymous_mode(job: &Job) -> Option<u32> {
    tmpfile_wanted().then_some(job.mode & 0o777)
}

/// Whether an `O_TMPFILE` open failed because the kernel or filesystem lacks it (then remember
/// that and use a named temporary), not for a reason a named file would share.
#[cfg(target_os = "linux")]
pub fn tmpfile_unsupported(e: &io::Error) -> bool {
    let unsupported = matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    );
    if unsupported {
        NO_TMPFILE.store(true, Ordering::Relaxed);
    }
    unsupported
}

/// Opens the destination for writing, not yet under its final name: an unnamed `O_TMPFILE`
/// inode where the kernel and filesystem have it, else a named temporary created exclusively
/// (`O_CREAT|O_EXCL`: never opens an existing file or follows a planted symlink), private
/// until its mode is set.
pub fn stage(job: &Job) -> Result<Staged, CopyError> {
    #[cfg(target_os = "linux")]
    if let Some(mode) = anonymous_mode(job) {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = dst_dir(&job.dst);
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(mode)
            .open(dir)
        {
            Ok(file) => {
                return Ok(Staged {
                    file,
                    named: None,
                    created: mode,
                })
            }
            Err(e) if tmpfile_unsupported(&e) => {}
            Err(e) => return Err(CopyError::io("create a file in", dir, e)),
        }
    }
    let tmp = temp_path(&job.dst);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(NAMED_MODE);
    }
    let file = opts
        .open(&tmp)
        .map_err(|e| CopyError::io("create", &tmp, e))?;
    Ok(Staged {
        file,
        named: Some(TempGuard::new(tmp)),
        created: NAMED_MODE,
    })
}

impl Staged {
    /// The path errors about the staged file name: its temporary name, or the destination.
    pub fn label<'a>(&'a self, dst: &'a Path) -> &'a Path {
        match &self.named {
            Some(g) => g.path(),
            None => dst,
        }
    }

    /// Puts the finished file under its final name, atomically.
    pub fn place(self, dst: &Path) -> Result<(), CopyError> {
        match self.named {
            Some(guard) => guard.commit(dst),
            None => link_into_place(&self.file, dst),
        }
    }
}

/// Gives an unnamed (`O_TMPFILE`) file its final name. `linkat` never replaces anything, so a
/// destination that exists (an earlier version, a symlink that must not be followed) gets the
/// file under a temporary name first, which `rename` then moves over it atomically.
#[cfg(unix)]
pub fn link_into_place(file: &File, dst: &Path) -> Result<(), CopyError> {
    let err = |e| CopyError::io("link into place", dst, e);
    match link_fd(file, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let guard = TempGuard::new(temp_path(dst));
            link_fd(file, guard.path()).map_err(err)?;
            guard.commit(dst)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(not(unix))]
pub fn link_into_place(_file: &File, dst: &Path) -> Result<(), CopyError> {
    Err(CopyError::io(
        "link into place",
        dst,
        io::Error::from(io::ErrorKind::Unsupported),
    ))
}

/// A path as the C string a raw syscall takes.
#[cfg(unix)]
fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// A raw syscall's `0 or -1 with errno` as a `Result`.
#[cfg(unix)]
fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `linkat(fd, "", AT_EMPTY_PATH)`; where that needs a capability the caller lacks (kernels
/// before 6.10 without CAP_DAC_READ_SEARCH), the `/proc/self/fd` link that `open(2)` documents.
#[cfg(unix)]
fn link_fd(file: &File, at: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let to = c_path(at)?;
    let fd = file.as_raw_fd();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a descriptor we own, valid C strings.
        let r = unsafe {
            libc::linkat(
                fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        match check(r) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) => {}
            done => return done,
        }
    }
    let proc = c_path(Path::new(&format!("/proc/self/fd/{fd}")))?;
    // SAFETY: valid C strings.
    check(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
}

/// The process umask, from `/proc/self/status` (Linux 4.7+; reading it with `umask(2)` would
/// change it for a moment under other threads). `None`: unknown, so always `chmod`.
fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
    })
}

/// Whether a file created with `created` as its mode still needs a `chmod` to get `mode`.
pub fn needs_chmod(created: u32, mode: u32) -> bool {
    created != mode || mode & 0o7000 != 0 || umask().is_none_or(|m| m & mode != 0)
}

/// Gives a finished file its source's mode bits and mtime (ns). `created`: the mode it was
/// created with, so a `chmod` that changes nothing is skipped.
pub fn apply_meta(f: &File, job: &Job, created: u32) -> io::Result<()> {
    #[cfg(unix)]
    if needs_chmod(created, job.mode) {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(job.mode))?;
    }
    #[cfg(not(unix))]
    {
        let _ = created;
        let mut p = f.metadata()?.permissions();
        p.set_readonly(job.mode & 0o222 == 0);
        f.set_permissions(p)?;
    }
    if let Some(m) = job.mtime {
        f.set_times(fs::FileTimes::new().set_modified(m))?;
    }
    Ok(())
}

/// The end of every regular-file copy: size check, metadata, optional fsync, placement.
pub fn finish(staged: Staged, job: &Job, copied: u64, fsync: bool) -> Result<(), CopyError> {
    if copied != job.size {
        return Err(CopyError::Changed {
            path: job.src.clone(),
            expected: job.size,
            actual: copied,
        });
    }
    let label = staged.label(&job.dst);
    apply_meta(&staged.file, job, staged.created)
        .map_err(|e| CopyError::io("set metadata of", label, e))?;
    if fsync {
        staged
            .file
            .sync_all()
            .map_err(|e| CopyError::io("fsync", label, e))?;
    }
    staged.place(&job.dst)
}

/// Files smaller than this are copied with one `read` and one `write` through a per-thread
/// buffer: for them a reflink attempt and a `copy_file_range` that must be called again to see
/// the end of file cost more syscalls than the bytes cost to move.
pub const SMALL_FILE: u64 = 64 << 10;

/// Copies one regular file with the OS's own copy (in-kernel where it has one) and places it.
/// `cancelled` is polled between chunks so an interrupt stops a large file promptly.
pub fn copy_regular(
    job: &Job,
    fsync: bool,
    cancelled: &dyn Fn() -> bool,
    progress: &dyn Fn(u64),
) -> Result<(), CopyError> {
    let mut src = File::open(&job.src).map_err(|e| CopyError::io("open", &job.src, e))?;
    let mut staged = stage(job)?;
    let copied = if job.size < SMALL_FILE {
        copy_small(&mut src, &mut staged.file, job.size, progress)
    } else {
        copy_data(&mut src, &mut staged.file, cancelled, progress)
    }
    .map_err(|e| {
        if e.kind() == io::ErrorKind::Interrupted {
            CopyError::Interrupted {
                path: job.src.clone(),
            }
        } else {
            CopyError::io("copy", &job.src, e)
        }
    })?;
    finish(staged, job, copied, fsync)
}

/// A file expected to hold `size` (< SMALL_FILE) bytes: one read asks for one byte more, so a
/// short read that reaches `size` is the end of file and a file that grew shows as too long.
fn copy_small(
    src: &mut File,
    dst: &mut File,
    size: u64,
    progress: &dyn Fn(u64),
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
            if got >= size as usize {
                break;
            }
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
    // Set once the destination's filesystem says it cannot clone at all: from then on a failed
    // ioctl per file would be pure cost. (EXDEV, a source on another filesystem, does not set
    // it.) One out-dir is one filesystem, short of mounts inside it, which then only lose the
    // reflink, not the copy.
    static NO_REFLINK: AtomicBool = AtomicBool::new(false);
    if !NO_REFLINK.load(Ordering::Relaxed) {
        // SAFETY: plain ioctl on two open descriptors we own for the duration of the call.
        if unsafe { libc::ioctl(d, FICLONE as _, s) } == 0 {
            let n = dst.metadata()?.len();
            progress(n);
            return Ok(Some(n));
        }
        if matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EOPNOTSUPP | libc::ENOTTY)
        ) {
            NO_REFLINK.store(true, Ordering::Relaxed);
        }
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
        set_mtime_nofollow(guard.path(), m)
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

/// Places a hard link to an already placed destination, atomically.
pub fn place_hardlink(first_dst: &Path, job: &Job) -> Result<(), CopyError> {
    let guard = TempGuard::new(temp_path(&job.dst));
    fs::hard_link(first_dst, guard.path()).map_err(|e| CopyError::io("hard-link", &job.dst, e))?;
    guard.commit(&job.dst)
}

/// A directory's mode and mtime, set once its contents are in place. By path, not through an
/// open descriptor: two syscalls, not four, per directory.
pub fn set_dir_meta(job: &Job) -> Result<(), CopyError> {
    let err = |e| CopyError::io("set metadata of", &job.dst, e);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Some(m) = job.mtime {
            set_mtime_nofollow(&job.dst, m).map_err(err)?;
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

/// Makes `dir`, whose parent this run already made or checked: one `mkdir`, and a look at what
/// is there only when something is.
pub fn make_dir_in_checked_parent(dir: &Path) -> io::Result<()> {
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
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => continue,
            Ok(_) => check_existing_dir(&cur)?,
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
