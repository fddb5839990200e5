//! Destination operations that stay inside the out-dir while its tree changes underneath: every
//! directory a file is staged in, linked into or renamed into is opened relative to a descriptor
//! of the out-dir held for the run, with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`
//! (Linux 5.6+; before it, one `O_NOFOLLOW | O_DIRECTORY` open per component). A component
//! swapped for a symlink after the plan is then a per-file error (`ELOOP`), never a write
//! through the link. A file of a hidden tree is created by one such `openat2` beneath the tree
//! (the ring's through `uring::open`); path-taking calls (links and renames into an existing
//! out-dir) reach the held parent through its `/proc/self/fd/N` name, which resolves to that very
//! directory whatever was moved since.
//!
//! Runs register their out-dir ([`hold_root`]); a destination under no registered out-dir (a
//! unit test staging directly) keeps plain paths.
//!
//! Sources get the same treatment: a file the walk found is opened beneath the directory the
//! walk started from, held since ([`crate::plan::SourceRoot`], [`open_source`]).
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use super::stage::c_path;
use crate::plan::SourceRoot;

static ROOTS: RwLock<Vec<(PathBuf, Arc<OwnedFd>)>> = RwLock::new(Vec::new());

/// An out-dir held open for a run; forgotten on drop.
pub struct RootGuard {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        let mut roots = ROOTS.write().unwrap_or_else(PoisonError::into_inner);
        roots.retain(|(p, fd)| !(p == &self.path && Arc::ptr_eq(fd, &self.fd)));
    }
}

/// Holds `out_dir` (which exists) open as the root every destination below it is reached from.
pub fn hold_root(out_dir: &Path) -> io::Result<RootGuard> {
    let c = c_path(out_dir)?;
    // SAFETY: a valid C string; the descriptor returned is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened and owned by nothing else.
    let fd = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
    ROOTS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push((out_dir.to_path_buf(), fd.clone()));
    Ok(RootGuard {
        path: out_dir.to_path_buf(),
        fd,
    })
}

/// The registered out-dir `path` is below, and `path` relative to it.
pub fn root_of(path: &Path) -> Option<(Arc<OwnedFd>, PathBuf)> {
    let roots = ROOTS.read().unwrap_or_else(PoisonError::into_inner);
    roots
        .iter()
        .filter_map(|(root, fd)| Some((fd, path.strip_prefix(root).ok()?, root)))
        .max_by_key(|(_, _, root)| root.as_os_str().len())
        .map(|(fd, rel, _)| (fd.clone(), rel.to_path_buf()))
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// How every open beneath a held directory resolves: inside it, no symlink followed.
pub const RESOLVE: u64 = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;

/// The flags every open beneath a held directory adds to the caller's.
pub fn open_flags(flags: libc::c_int) -> libc::c_int {
    flags | libc::O_CLOEXEC | libc::O_NOFOLLOW
}

/// `rel` as a C string for an open beneath a directory: `.` when empty, refused when it has a
/// `..`, a root or a prefix.
pub fn relative_c_path(rel: &Path) -> io::Result<std::ffi::CString> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path leaves the directory it is opened beneath",
        ));
    }
    if rel.as_os_str().is_empty() {
        c_path(Path::new("."))
    } else {
        c_path(rel)
    }
}

/// Opens `rel` (no `..`, no absolute part) below `root` without following any symlink, creating
/// it with `mode` where `flags` ask to.
pub fn open_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    openat2(root, &relative_c_path(rel)?, open_flags(flags), mode)
}

/// `openat2(root, rel, flags, mode)` resolved by [`RESOLVE`]; `rel` from [`relative_c_path`],
/// `flags` from [`open_flags`].
pub fn openat2(
    root: BorrowedFd<'_>,
    rel: &std::ffi::CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: flags as u64,
        mode: u64::from(mode),
        resolve: RESOLVE,
    };
    // SAFETY: openat2(dirfd, path, how, size) with a valid C string and a struct of the size
    // passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd >= 0 {
        // SAFETY: a descriptor just opened and owned by nothing else.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(err);
    }
    // No openat2 (Linux < 5.6): one component at a time, none of them followed.
    let mut cur = root.try_clone_to_owned()?;
    let mut parts = rel
        .to_bytes()
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .peekable();
    while let Some(part) = parts.next() {
        let name = c_path(Path::new(OsStr::from_bytes(part)))?;
        let last = parts.peek().is_none();
        let f = if last {
            flags
        } else {
            libc::O_PATH | libc::O_DIRECTORY
        };
        // SAFETY: a held directory descriptor and a valid C string.
        let fd = unsafe {
            libc::openat(
                cur.as_raw_fd(),
                name.as_ptr(),
                f | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(if last { mode } else { 0 }),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        cur = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(cur)
}

/// A directory of the destination held open, and the name of an entry in it.
pub struct Held {
    dir: OwnedFd,
    name: PathBuf,
}

impl Held {
    /// The held directory as a path: `/proc/self/fd/N`.
    pub fn dir_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()))
    }

    /// The entry as a path through the held directory.
    pub fn entry_path(&self) -> PathBuf {
        self.dir_path().join(&self.name)
    }
}

/// Whether `/proc/self/fd` names descriptors (it does wherever /proc is mounted).
fn proc_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// `path`'s directory opened beneath its run's out-dir, nothing followed; `None` when `path` is
/// under no registered out-dir (or /proc is missing), so plain paths are used.
pub fn parent(path: &Path) -> Option<io::Result<Held>> {
    if !proc_works() {
        return None;
    }
    let (root, rel) = root_of(path)?;
    parent_beneath(root.as_fd(), &rel)
}

/// `rel`'s directory opened beneath `root`; `None` when `rel` has no last component.
fn parent_beneath(root: BorrowedFd<'_>, rel: &Path) -> Option<io::Result<Held>> {
    let name = rel.file_name()?.to_os_string();
    let dir = rel.parent().unwrap_or(Path::new(""));
    Some(
        open_beneath(root, dir, libc::O_PATH | libc::O_DIRECTORY, 0).map(|dir| Held {
            dir,
            name: PathBuf::from(name),
        }),
    )
}

/// `src` relative to the walked directory `root` it was found below.
pub fn below<'a>(root: &SourceRoot, src: &'a Path) -> io::Result<&'a Path> {
    src.strip_prefix(&root.path)
        .ok()
        .filter(|rel| rel.file_name().is_some())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the source is not below the directory it was found in",
            )
        })
}

/// A source found by the walk, opened for reading beneath the directory the walk held: a
/// directory on the way swapped for a symlink since (to `/etc`, say) is `ELOOP`, a per-file
/// error, never a file from outside the source.
pub fn open_source(root: &SourceRoot, src: &Path) -> io::Result<File> {
    open_beneath(root.dir.as_fd(), below(root, src)?, libc::O_RDONLY, 0).map(File::from)
}

/// The directory `path` itself, opened for reading beneath its run's out-dir (for `fchmod`,
/// `futimens`, `fsync`); `None` as for [`parent`].
pub fn open_dir(path: &Path) -> Option<io::Result<File>> {
    let (root, rel) = root_of(path)?;
    Some(open_beneath(root.as_fd(), &rel, libc::O_RDONLY | libc::O_DIRECTORY, 0).map(File::from))
}

/// `path` as a path through its held parent, or itself where nothing is held; the guard keeps
/// the parent open while the path is used.
pub fn through(path: &Path) -> io::Result<(PathBuf, Option<Held>)> {
    match parent(path) {
        Some(Ok(h)) => Ok((h.entry_path(), Some(h))),
        Some(Err(e)) => Err(e),
        None => Ok((path.to_path_buf(), None)),
    }
}

/// Removes the file `rel` beneath `root`: its directory opened beneath, nothing followed, then
/// `unlinkat` there.
pub fn remove_file(root: BorrowedFd<'_>, rel: &Path) -> io::Result<()> {
    let dir = rel.parent().unwrap_or(Path::new(""));
    let dir = open_beneath(root, dir, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let name = c_path(Path::new(name_of(rel)))?;
    // SAFETY: a held directory descriptor and a valid C string.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The last component of `path` (for messages and `*at` calls).
pub fn name_of(path: &Path) -> &OsStr {
    path.file_name().unwrap_or_else(|| OsStr::from_bytes(b"."))
}
