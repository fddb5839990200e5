//! Whole-tree staging into a new out-dir (Linux): the hidden sibling `.<name>.fastcp-<pid>` the
//! run builds the tree in, its one `renameat2(RENAME_NOREPLACE)` into place, the placement file
//! by file when another run's tree got there first, and the removal of hidden trees whose run
//! was killed.
//!
//! Files inside a tree no one else sees need no staging of their own: each is created under its
//! final name with `O_CREAT|O_EXCL` (no `O_TMPFILE`, whose ext4 orphan-list lock is taken twice
//! per file, and no `linkat` per file), and the whole tree appears at once.
use std::borrow::Cow;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// The hidden tree of one run and the out-dir it becomes.
#[derive(Debug)]
pub struct Tree {
    out_dir: PathBuf,
    hidden: PathBuf,
}

/// How the hidden tree ended up.
#[derive(Debug)]
pub enum Placed {
    /// Renamed into place whole.
    Whole,
    /// The out-dir exists now (another run's tree, or anything else that made it meanwhile),
    /// or the filesystem has no `RENAME_NOREPLACE`: the caller places the files one by one.
    OneByOne(io::Error),
    /// Nothing to place: the run never made the hidden tree (nothing was planned).
    Nothing,
}

impl Tree {
    /// The tree for a run into `out_dir`, when `out_dir` does not exist yet (nothing, not even
    /// a dangling symlink, at its path) and has a name to hide beside. Hidden trees that killed
    /// runs left beside it are removed first.
    #[cfg(not(target_os = "linux"))]
    pub fn for_new(_out_dir: &Path) -> Option<Tree> {
        None
    }

    /// See the other platforms' `for_new`: on Linux, the tree when the out-dir is new.
    #[cfg(target_os = "linux")]
    pub fn for_new(out_dir: &Path) -> Option<Tree> {
        let name = out_dir.file_name()?;
        match std::fs::symlink_metadata(out_dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            _ => return None,
        }
        let parent = out_dir.parent().unwrap_or(Path::new(""));
        remove_stale(parent, name);
        let hidden = parent.join(hidden_name(name, std::process::id()));
        Some(Tree {
            out_dir: out_dir.to_path_buf(),
            hidden,
        })
    }

    pub fn hidden(&self) -> &Path {
        &self.hidden
    }

    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// Where `dst` (a path in the out-dir) is written in the hidden tree.
    pub fn map<'a>(&self, dst: &'a Path) -> Cow<'a, Path> {
        match dst.strip_prefix(&self.out_dir) {
            Ok(rel) if rel.as_os_str().is_empty() => Cow::Owned(self.hidden.clone()),
            Ok(rel) => Cow::Owned(self.hidden.join(rel)),
            // Never the case for a plan's jobs; written where planned rather than guessed at.
            Err(_) => Cow::Borrowed(dst),
        }
    }

    /// The out-dir path of `path` when it is in the hidden tree (what an error about it names:
    /// the user asked for the out-dir, and the hidden name is gone by the end of the run).
    pub fn unmap(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.hidden).ok()?;
        Some(self.out_dir.join(rel))
    }

    /// Makes the hidden tree's root (and the out-dir's missing ancestors). Exclusive: a name
    /// that exists (it holds this live process's pid) is not written into.
    pub fn make(&self) -> io::Result<()> {
        if let Some(p) = self.hidden.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(p)?;
        }
        std::fs::create_dir(&self.hidden)
    }

    /// One `renameat2(RENAME_NOREPLACE)` of the hidden tree onto the out-dir.
    pub fn place(&self) -> Placed {
        match rename_noreplace(&self.hidden, &self.out_dir) {
            Ok(()) => Placed::Whole,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.hidden.exists() => {
                Placed::Nothing
            }
            Err(e) => Placed::OneByOne(e),
        }
    }

    /// Removes the hidden tree and everything in it (an interrupt, or what is left of it after
    /// its files were placed one by one).
    pub fn discard(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.hidden) {
            debug_assert!(e.kind() == io::ErrorKind::NotFound, "{e}");
        }
    }
}

#[cfg(target_os = "linux")]
/// `.<name>.fastcp-<pid>`.
fn hidden_name(name: &std::ffi::OsStr, pid: u32) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".fastcp-{pid}"));
    s
}

#[cfg(target_os = "linux")]
/// The pid in `entry` if it is a hidden tree's name for the out-dir `name`.
fn owner(entry: &std::ffi::OsStr, name: &std::ffi::OsStr) -> Option<u32> {
    use std::os::unix::ffi::OsStrExt;
    let prefix = hidden_name(name, 0);
    let prefix = &prefix.as_bytes()[..prefix.len() - 1];
    let rest = entry.as_bytes().strip_prefix(prefix)?;
    if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) || rest[0] == b'0' {
        return None;
    }
    std::str::from_utf8(rest).ok()?.parse().ok()
}

#[cfg(target_os = "linux")]
/// Whether a process with this pid exists (`kill(pid, 0)`: `EPERM` is someone else's, alive).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(target_os = "linux")]
/// Removes, in `parent`, the hidden trees for the out-dir `name` whose run is gone (killed
/// before it could remove its own). A tree whose pid is alive is another run's, left alone.
/// Best effort: what cannot be read or removed stays, and the run goes on.
pub fn remove_stale(parent: &Path, name: &std::ffi::OsStr) {
    let dir = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = owner(&entry.file_name(), name) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && pid != std::process::id() && !alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(target_os = "linux")]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use super::stage::{c_path, check};
    let (f, t) = (c_path(from)?, c_path(to)?);
    // SAFETY: valid C strings; AT_FDCWD resolves them as paths.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
}

#[cfg(not(target_os = "linux"))]
fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn owner_reads_only_this_out_dirs_hidden_names() {
        let name = OsStr::new("dist");
        assert_eq!(owner(OsStr::new(".dist.fastcp-4242"), name), Some(4242));
        assert_eq!(owner(OsStr::new(".dist.fastcp-"), name), None);
        assert_eq!(owner(OsStr::new(".dist.fastcp-12x"), name), None);
        assert_eq!(owner(OsStr::new(".dist.fastcp-build-12"), name), None);
        assert_eq!(owner(OsStr::new(".dist2.fastcp-12"), name), None);
        assert_eq!(owner(OsStr::new(".fastcp-12-3.tmp"), name), None);
    }

    #[test]
    fn map_moves_out_dir_paths_into_the_hidden_tree() {
        let t = Tree {
            out_dir: PathBuf::from("/x/dist"),
            hidden: PathBuf::from("/x/.dist.fastcp-7"),
        };
        assert_eq!(
            t.map(Path::new("/x/dist/a/b")),
            Path::new("/x/.dist.fastcp-7/a/b")
        );
        assert_eq!(t.map(Path::new("/x/dist")), Path::new("/x/.dist.fastcp-7"));
        let back = |p: &str| t.unmap(Path::new(p));
        assert_eq!(
            back("/x/.dist.fastcp-7/a/b"),
            Some(PathBuf::from("/x/dist/a/b"))
        );
        assert_eq!(back("/x/.dist.fastcp-7"), Some(PathBuf::from("/x/dist")));
        assert_eq!(back("/x/.dist.fastcp-70/a"), None);
        assert_eq!(back("/x/src/a"), None);
    }
}
