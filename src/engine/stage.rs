//! Staging, shared by every backend: a destination file is written out of sight (an unnamed
//! `O_TMPFILE` inode, or an exclusive temporary name) and placed under its final name atomically
//! (`linkat`, or `rename`), blocking or through the ring; inside a hidden tree (`engine::tree`),
//! which is out of sight as a whole, it is created under its name there. Nothing here leaves a
//! temporary behind or a partial file under a final name.
use std::borrow::Cow;
use std::fs::{self, File};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::config::Config;
use crate::error::CopyError;
use crate::plan::Job;

/// Files smaller than this are not worth an in-kernel copy: the portable engine moves them with
/// one `read` and one `write` through a per-thread buffer, and the io-uring engine's `auto`
/// method through the buffer ring. For them a reflink attempt and a `copy_file_range` that must
/// be called again to see the end of file cost more syscalls than the bytes cost to move
/// (measured: see docs/copy-method.md).
pub const SMALL_FILE: u64 = 64 << 10;

/// The error for a copy that stopped because the run was cancelled (SIGINT/SIGTERM).
pub fn interrupted(job: &Job) -> CopyError {
    CopyError::Interrupted {
        path: job.src.clone(),
    }
}

/// The error for a failed byte copy of `job`: an interrupt (a cancel seen between chunks) is
/// reported as such, anything else as an I/O error on the source.
pub fn copy_failed(job: &Job, e: io::Error) -> CopyError {
    if e.kind() == io::ErrorKind::Interrupted {
        interrupted(job)
    } else {
        CopyError::io("copy", &job.src, e)
    }
}

/// The `io::Error` a chunked copy returns when it sees the cancel flag; [`copy_failed`] turns it
/// into [`CopyError::Interrupted`].
pub fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "interrupted by signal")
}

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
    /// The directory `path` is relative to and removed beneath (a hidden tree's files), so
    /// that a component swapped for a symlink meanwhile never makes the removal hit a file
    /// elsewhere.
    #[cfg(target_os = "linux")]
    root: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl TempGuard {
    pub fn new(path: PathBuf) -> Self {
        TempGuard {
            path: Some(path),
            #[cfg(target_os = "linux")]
            root: None,
        }
    }

    /// The file at `rel` beneath the held directory `root`.
    #[cfg(target_os = "linux")]
    pub fn beneath(root: std::sync::Arc<std::os::fd::OwnedFd>, rel: PathBuf) -> Self {
        TempGuard {
            path: Some(rel),
            root: Some(root),
        }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Forgets the temporary path without removing it: the caller has renamed it into place
    /// itself (through the ring, not with `commit`), or it is the file's own name in a hidden
    /// tree.
    fn disarm(mut self) {
        self.path = None;
    }

    /// Renames the temporary into place. `rename` replaces a symlink at `dst` rather than
    /// writing through it, so nothing is written outside the out-dir.
    pub fn commit(self, dst: &Path) -> Result<(), CopyError> {
        self.commit_to(dst, dst)
    }

    /// Renames the temporary to `at`, naming `dst` in an error (`at` may be the final name
    /// through a held directory).
    pub fn commit_to(mut self, at: &Path, dst: &Path) -> Result<(), CopyError> {
        let Some(tmp) = self.path.take() else {
            return Ok(());
        };
        fs::rename(&tmp, at).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CopyError::placing(dst, e)
        })
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        let Some(p) = self.path.take() else {
            return;
        };
        #[cfg(target_os = "linux")]
        if let Some(root) = self.root.take() {
            use std::os::fd::AsFd;
            let _ = super::beneath::remove_file(root.as_fd(), &p);
            return;
        }
        let _ = fs::remove_file(p);
    }
}

/// The mode a named temporary is created with: private until its final mode is set.
pub const NAMED_MODE: u32 = 0o600;

/// How every file of one run is staged and placed; the same for every backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staging {
    /// `--fsync`: each file is flushed before it is placed, and every directory written into
    /// at the end of the run.
    pub fsync: bool,
    /// Named temporaries even where `O_TMPFILE` works (the path taken where it is missing),
    /// so that tests can cover that path anywhere.
    pub named_temps: bool,
    /// Whether a run into an out-dir that does not exist builds the whole tree hidden and
    /// renames it into place at the end (see `engine::tree`).
    pub placement: Placement,
}

/// Where finished files go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// Each file is staged out of sight and placed under its final name atomically.
    #[default]
    PerFile,
    /// Whole-tree staging when the out-dir is new; `PerFile` into an existing one.
    TreeIfNew,
    /// The run is building a hidden tree: each file is created under its own name in it (the
    /// engine sets this once it has the tree).
    InTree,
}

/// Whether whole-tree staging is on when nothing asks otherwise (`--tree-staging`).
pub const TREE_STAGING_DEFAULT: bool = true;

impl Staging {
    /// The staging `cfg` asks for. `--build` stages into its own hidden directory already
    /// (`cargo::build`), so it places file by file there.
    pub fn of(cfg: &Config) -> Staging {
        let tree = cfg.tuning.tree_staging.unwrap_or(TREE_STAGING_DEFAULT) && !cfg.build;
        Staging {
            fsync: cfg.fsync,
            named_temps: cfg.tuning.named_temps,
            placement: if tree {
                Placement::TreeIfNew
            } else {
                Placement::PerFile
            },
        }
    }
}

/// Set once `O_TMPFILE` is refused (an old kernel, a filesystem without it); named
/// temporaries from then on.
#[cfg(target_os = "linux")]
static NO_TMPFILE: AtomicBool = AtomicBool::new(false);

/// Whether to stage into an unnamed `O_TMPFILE` inode.
#[cfg(target_os = "linux")]
fn tmpfile_wanted(staging: Staging) -> bool {
    !staging.named_temps && !NO_TMPFILE.load(Ordering::Relaxed)
}

#[cfg(not(target_os = "linux"))]
fn tmpfile_wanted(_staging: Staging) -> bool {
    false
}

/// Whether an `O_TMPFILE` open failed because the kernel or filesystem lacks it (then remember
/// that and use a named temporary), not for a reason a named file would share.
#[cfg(target_os = "linux")]
fn tmpfile_unsupported(e: &io::Error) -> bool {
    let unsupported = matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
    );
    if unsupported {
        NO_TMPFILE.store(true, Ordering::Relaxed);
    }
    unsupported
}

#[cfg(not(target_os = "linux"))]
fn tmpfile_unsupported(_e: &io::Error) -> bool {
    false
}

/// Where the destination's directory is, for `O_TMPFILE`.
fn dst_dir(dst: &Path) -> &Path {
    match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// One way to open a destination file that has no final name yet; each backend opens it with
/// its own I/O (a blocking `open`, an io_uring `openat`).
#[derive(Debug, Clone, Copy)]
pub enum Open<'a> {
    /// An unnamed `O_TMPFILE` inode in `dir`, created with `mode`, its final permission bits,
    /// so that the `chmod` can usually be skipped.
    Unnamed { dir: &'a Path, mode: u32 },
    /// A new file at `path`, created exclusively (`O_CREAT|O_EXCL`: never opens an existing
    /// file or follows a planted symlink) with `mode`: `NAMED_MODE`, private until its mode is
    /// set, for a temporary beside final names; in a hidden tree the final permission bits, as
    /// for an unnamed inode, so that the `chmod` can usually be skipped.
    Named { path: &'a Path, mode: u32 },
    /// A new file at `rel` beneath the held directory `root`, created exclusively with `mode`
    /// in one `openat2` that follows no symlink (a hidden tree's files: no parent to hold, no
    /// path through `/proc`).
    #[cfg(target_os = "linux")]
    Beneath {
        root: &'a std::sync::Arc<std::os::fd::OwnedFd>,
        rel: &'a Path,
        mode: u32,
    },
}

/// The flags of a staged file created by name: exclusive, and readable too (`--checksums` reads
/// back once what the kernel copied: reflink, copy_file_range, splice).
#[cfg(target_os = "linux")]
const CREATE_NEW: libc::c_int = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;

impl Open<'_> {
    /// Opens the file with blocking calls.
    fn blocking(self) -> io::Result<File> {
        let mut opts = fs::OpenOptions::new();
        // Readable too: `--checksums` reads back once what the kernel copied (reflink,
        // copy_file_range, splice), through the staged file itself.
        opts.read(true).write(true);
        match self {
            #[cfg(target_os = "linux")]
            Open::Unnamed { dir, mode } => {
                use std::os::unix::fs::OpenOptionsExt;
                opts.custom_flags(libc::O_TMPFILE).mode(mode).open(dir)
            }
            #[cfg(not(target_os = "linux"))]
            Open::Unnamed { .. } => Err(io::Error::from(io::ErrorKind::Unsupported)),
            Open::Named { path, mode } => {
                opts.create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(mode);
                }
                #[cfg(not(unix))]
                let _ = mode;
                opts.open(path)
            }
            #[cfg(target_os = "linux")]
            Open::Beneath { root, rel, mode } => {
                use std::os::fd::AsFd;
                super::beneath::open_beneath(root.as_fd(), rel, CREATE_NEW, mode).map(File::from)
            }
        }
    }

    /// Opens the file through the calling worker's ring.
    #[cfg(target_os = "linux")]
    async fn ring(self) -> io::Result<compio::fs::File> {
        let mut opts = compio::fs::OpenOptions::new();
        opts.read(true).write(true);
        match self {
            Open::Unnamed { dir, mode } => {
                opts.custom_flags(libc::O_TMPFILE)
                    .mode(mode)
                    .open(dir)
                    .await
            }
            Open::Named { path, mode } => opts.create_new(true).mode(mode).open(path).await,
            Open::Beneath { root, rel, mode } => {
                super::uring::open_beneath(root.clone(), rel, CREATE_NEW, mode).await
            }
        }
    }
}

/// A destination file being written, not yet under its final name. `F` is the backend's file
/// type: `std::fs::File`, or compio's for the ring.
pub struct Staged<'d, F> {
    pub file: F,
    /// Where the file goes: its final name, or its name in the hidden tree.
    dst: Cow<'d, Path>,
    /// `None`: an unnamed `O_TMPFILE` inode. It has no name to clean up if the run stops (not
    /// even after a second Ctrl-C), and placing it is one `linkat` instead of a create plus a
    /// `rename`, which is one directory update per file fewer.
    named: Option<TempGuard>,
    /// The named file is `dst` itself, inside a hidden tree: it needs no placing, and its guard
    /// removes it unless it was finished.
    in_tree: bool,
    /// The mode it was created with (see `apply_meta`).
    created: u32,
    /// Where it is placed: the final name through the held destination directory
    /// (`/proc/self/fd/N/name`), or the plain destination path where nothing is held.
    at: PathBuf,
    /// The destination directory, held open (Linux, under a run's out-dir) so that a component
    /// swapped for a symlink meanwhile is never written through. Dropped last.
    #[cfg(target_os = "linux")]
    _held: Option<super::beneath::Held>,
}

impl<'d, F> Staged<'d, F> {
    /// The staging sequence both backends follow, `open` doing the I/O: in a hidden tree the
    /// file itself, created exclusively; else an unnamed `O_TMPFILE` inode where the kernel and
    /// filesystem have it, else a named temporary.
    async fn open_with(
        job: &Job,
        dst: Cow<'d, Path>,
        staging: Staging,
        open: impl AsyncFn(Open<'_>) -> io::Result<F>,
    ) -> Result<Self, CopyError> {
        let in_tree = staging.placement == Placement::InTree;
        #[cfg(target_os = "linux")]
        if in_tree {
            if let Some((root, rel)) = super::beneath::root_of(&dst) {
                let mode = job.mode & 0o777;
                let file = open(Open::Beneath {
                    root: &root,
                    rel: &rel,
                    mode,
                })
                .await
                .map_err(|e| CopyError::io("create", &*dst, e))?;
                return Ok(Staged {
                    file,
                    at: dst.to_path_buf(),
                    dst,
                    named: Some(TempGuard::beneath(root, rel)),
                    in_tree,
                    created: mode,
                    _held: None,
                });
            }
        }
        #[cfg(target_os = "linux")]
        let (at, held) = super::beneath::through(&dst)
            .map_err(|e| CopyError::io("open the directory of", &*dst, e))?;
        #[cfg(not(target_os = "linux"))]
        let at = dst.to_path_buf();
        let mut done = if !in_tree && tmpfile_wanted(staging) {
            let (dir, mode) = (dst_dir(&at), job.mode & 0o777);
            match open(Open::Unnamed { dir, mode }).await {
                Ok(file) => Some((file, None, mode)),
                Err(e) if tmpfile_unsupported(&e) => None,
                Err(e) => {
                    return Err(CopyError::io("create a file in", dst_dir(&dst), e));
                }
            }
        } else {
            None
        };
        if done.is_none() {
            // In a hidden tree the file is created under its own name there.
            let tmp = if in_tree { at.clone() } else { temp_path(&at) };
            let mode = if in_tree {
                job.mode & 0o777
            } else {
                NAMED_MODE
            };
            let what = if in_tree {
                "create"
            } else {
                "create a temporary for"
            };
            let file = open(Open::Named { path: &tmp, mode })
                .await
                .map_err(|e| CopyError::io(what, &*dst, e))?;
            done = Some((file, Some(TempGuard::new(tmp)), mode));
        }
        let (file, named, created) = done
            .ok_or_else(|| CopyError::io("create", &*dst, io::Error::other("no staging file")))?;
        Ok(Staged {
            file,
            dst,
            named,
            in_tree,
            created,
            at,
            #[cfg(target_os = "linux")]
            _held: held,
        })
    }

    /// The path errors about the staged file name: its destination (a temporary's name, or the
    /// `/proc/self/fd/N/…` form it is reached through, means nothing to the user; in a hidden
    /// tree, `Ctx::fail` names the final path).
    pub fn label(&self) -> &Path {
        &self.dst
    }

    /// The checks and metadata every finished file gets before it is placed: `copied` must be
    /// the planned size (else the source changed under the copy), then the source's mode and
    /// mtime. `file` is the staged file as a std `File`.
    fn seal(&self, file: &File, job: &Job, copied: u64) -> Result<(), CopyError> {
        if copied != job.size {
            return Err(CopyError::Changed {
                path: job.src.clone(),
                expected: job.size,
                actual: copied,
            });
        }
        apply_meta(file, job, self.created)
            .map_err(|e| CopyError::io("set metadata of", self.label(), e))
    }
}

/// Blocking: the portable backend, and the ring engine's blocking threads.
impl<'d> Staged<'d, File> {
    /// Opens `job`'s destination `dst` for writing, not yet under its final name.
    pub fn open(job: &Job, dst: Cow<'d, Path>, staging: Staging) -> Result<Self, CopyError> {
        // Every await inside is on an already-completed future (the I/O is blocking), so one
        // poll finishes it.
        let staged = Self::open_with(job, dst, staging, async |how| how.blocking());
        let mut staged = std::pin::pin!(staged);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(r) = staged.as_mut().poll(&mut cx) {
                return r;
            }
        }
    }

    /// Size check, metadata, optional fsync, then the file under its final name.
    pub fn finish(self, job: &Job, copied: u64, staging: Staging) -> Result<(), CopyError> {
        self.seal(&self.file, job, copied)?;
        if staging.fsync {
            self.file
                .sync_all()
                .map_err(|e| CopyError::io("fsync", self.label(), e))?;
        }
        match self.named {
            Some(guard) if self.in_tree => {
                guard.disarm();
                Ok(())
            }
            Some(guard) => guard.commit_to(&self.at, &self.dst),
            None => link_into_place(&self.file, &self.at, &self.dst),
        }
    }
}

/// Ring-driven: the io-uring backend's workers.
#[cfg(target_os = "linux")]
impl<'d> Staged<'d, compio::fs::File> {
    /// Opens `job`'s destination `dst` for writing through the ring, not yet under its final
    /// name.
    pub async fn open_ring(
        job: &Job,
        dst: Cow<'d, Path>,
        staging: Staging,
    ) -> Result<Self, CopyError> {
        Self::open_with(job, dst, staging, async |how| how.ring().await).await
    }

    /// Size check, metadata, optional fsync, close and placement, the I/O through the ring.
    ///
    /// The close is the file's: NFS reports write-back failures there. An unnamed file is
    /// linked into place while open (a blocking `linkat`: compio's link op has no
    /// `AT_EMPTY_PATH`), then closed; its data is in the page cache by then, so a close error
    /// comes after placement. A named one is closed, then renamed over the destination.
    pub async fn finish_ring(
        self,
        job: &Job,
        copied: u64,
        staging: Staging,
    ) -> Result<(), CopyError> {
        with_std(&self.file, |f| self.seal(f, job, copied))?;
        if staging.fsync {
            self.file
                .sync_all()
                .await
                .map_err(|e| CopyError::io("fsync", self.label(), e))?;
        }
        let Some(guard) = self.named else {
            with_std(&self.file, |f| link_into_place(f, &self.at, &self.dst))?;
            // The file is in place under its final name, whole and with its metadata: a close
            // error now cannot undo that, and reporting it as failed would contradict the disk.
            // (Write-back errors reported at close are NFS's; NFS has no O_TMPFILE, so its
            // files are named temporaries, closed before their rename.)
            let _ = self.file.close().await;
            return Ok(());
        };
        self.file
            .close()
            .await
            .map_err(|e| CopyError::io("close", &*self.dst, e))?;
        if !self.in_tree {
            // `rename` replaces a symlink at the destination rather than writing through it.
            compio::fs::rename(guard.path(), &self.at)
                .await
                .map_err(|e| CopyError::placing(&*self.dst, e))?;
        }
        guard.disarm();
        Ok(())
    }
}

/// Runs `f` on a std `File` borrowing `fd` (for fchmod/futimens/linkat, which compio offers only
/// through its blocking pool, and which cost a microsecond when done in place).
#[cfg(target_os = "linux")]
pub fn with_std<R>(fd: &impl std::os::fd::AsRawFd, f: impl FnOnce(&File) -> R) -> R {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` stays open for the whole call (its owner is borrowed), and ManuallyDrop keeps
    // this temporary File from closing it.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_raw_fd()) });
    f(&file)
}

/// Gives an unnamed (`O_TMPFILE`) file its final name. `linkat` never replaces anything, so a
/// destination that exists (an earlier version, a symlink that must not be followed) gets the
/// file under a temporary name first, which `rename` then moves over it atomically.
#[cfg(unix)]
fn link_into_place(file: &File, at: &Path, dst: &Path) -> Result<(), CopyError> {
    let err = |e| CopyError::io("link into place", dst, e);
    match link_fd(file, at) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let guard = TempGuard::new(temp_path(at));
            link_fd(file, guard.path()).map_err(err)?;
            guard.commit_to(at, dst)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(not(unix))]
fn link_into_place(_file: &File, _at: &Path, dst: &Path) -> Result<(), CopyError> {
    Err(CopyError::io(
        "link into place",
        dst,
        io::Error::from(io::ErrorKind::Unsupported),
    ))
}

/// A path as the C string a raw syscall takes.
#[cfg(unix)]
pub fn c_path(path: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// A raw syscall's `0 or -1 with errno` as a `Result`.
#[cfg(unix)]
pub fn check(r: libc::c_int) -> io::Result<()> {
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
#[cfg(unix)]
fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
    })
}

/// Whether a file created with `created` as its mode still needs a `chmod` to get `mode`.
#[cfg(unix)]
fn needs_chmod(created: u32, mode: u32) -> bool {
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
