//! Directory trees: listing, comparing a copy with its source entry by entry, scratch
//! directories that are removed even when read-only, and what a run may leave behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Every entry below `root` (not `root` itself, symlinks not followed), relative, with its
/// lstat. A directory that cannot be read (or a missing `root`) contributes nothing.
pub fn walk(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(r.clone());
            }
            out.insert(r, md);
        }
    }
    out
}

/// The names in `dir` itself, directories too, sorted: a leftover staging directory shows here.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every entry below `dir` (not following symlinks), relative, sorted.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_keys().collect()
}

/// Non-directory entries, and data bytes counting each hard-link group once: what the summary
/// of a copy of `src` counts.
pub fn counts(src: &Path) -> (u64, u64) {
    let mut seen = HashSet::new();
    let (mut files, mut bytes) = (0, 0);
    for md in walk(src).values().filter(|m| !m.is_dir()) {
        files += 1;
        if md.is_file() && seen.insert(md.ino()) {
            bytes += md.len();
        }
    }
    (files, bytes)
}

/// Whether two files hold the same bytes (read a MiB at a time: they may be large).
pub fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn mtime(md: &fs::Metadata) -> (i64, i64) {
    (md.mtime(), md.mtime_nsec())
}

/// Compares the copy `dst` with `src` entry by entry: same entries and types, bytes, permission
/// bits, mtimes (ns), symlink target text, hard-link groups kept (and not merged), no entry
/// that is the source's own inode. Returns every problem found.
pub fn compare_trees(src: &Path, dst: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let s = walk(src);
    let d = walk(dst);
    for r in d.keys().filter(|r| !s.contains_key(*r)) {
        problems.push(format!("extra entry in the copy: {r:?}"));
    }
    // Source inode -> destination inode and first member, to check hard-link groups.
    let mut groups: HashMap<u64, (u64, PathBuf)> = HashMap::new();
    let mut dst_group_inodes: HashMap<u64, u64> = HashMap::new();
    for (r, sm) in &s {
        let Some(dm) = d.get(r) else {
            problems.push(format!("missing from the copy: {r:?}"));
            continue;
        };
        let (sp, dp) = (src.join(r), dst.join(r));
        let (st, dt) = (sm.file_type(), dm.file_type());
        if st.is_dir() != dt.is_dir() || st.is_symlink() != dt.is_symlink() {
            problems.push(format!("{r:?}: type {st:?} -> {dt:?}"));
            continue;
        }
        if !st.is_symlink() && sm.mode() & 0o7777 != dm.mode() & 0o7777 {
            problems.push(format!(
                "{r:?}: mode {:04o} -> {:04o}",
                sm.mode() & 0o7777,
                dm.mode() & 0o7777
            ));
        }
        if mtime(sm) != mtime(dm) {
            problems.push(format!("{r:?}: mtime {:?} -> {:?}", mtime(sm), mtime(dm)));
        }
        if st.is_symlink() {
            let (a, b) = (fs::read_link(&sp).unwrap(), fs::read_link(&dp).unwrap());
            if a != b {
                problems.push(format!("{r:?}: symlink target {a:?} -> {b:?}"));
            }
        } else if st.is_file() {
            if sm.len() != dm.len() {
                problems.push(format!("{r:?}: size {} -> {}", sm.len(), dm.len()));
            } else {
                match same_bytes(&sp, &dp) {
                    Ok(true) => {}
                    Ok(false) => problems.push(format!("{r:?}: content differs")),
                    Err(e) => problems.push(format!("{r:?}: cannot compare: {e}")),
                }
            }
            if sm.dev() == dm.dev() && sm.ino() == dm.ino() {
                problems.push(format!("{r:?}: the copy IS the source inode"));
            }
            check_link_group(r, sm, dm, &mut groups, &mut dst_group_inodes, &mut problems);
        }
    }
    problems
}

/// The hard-link part of [`compare_trees`] for one regular file.
fn check_link_group(
    r: &Path,
    sm: &fs::Metadata,
    dm: &fs::Metadata,
    groups: &mut HashMap<u64, (u64, PathBuf)>,
    dst_group_inodes: &mut HashMap<u64, u64>,
    problems: &mut Vec<String>,
) {
    if sm.nlink() == 1 {
        if dm.nlink() != 1 {
            problems.push(format!(
                "{r:?}: not a hard link in the source, {} links in the copy",
                dm.nlink()
            ));
        }
        return;
    }
    match groups.get(&sm.ino()) {
        Some((ino, first)) if *ino != dm.ino() => problems.push(format!(
            "hard link lost: {first:?} and {r:?} share an inode in the source, not in the copy"
        )),
        Some(_) => {}
        None => {
            if let Some(other) = dst_group_inodes.insert(dm.ino(), sm.ino()) {
                problems.push(format!(
                    "{r:?}: two source hard-link groups ({other}, {}) merged into one inode in \
                     the copy",
                    sm.ino()
                ));
            }
            groups.insert(sm.ino(), (dm.ino(), r.to_path_buf()));
        }
    }
    if dm.nlink() != sm.nlink() {
        problems.push(format!(
            "{r:?}: {} links in the source, {} in the copy",
            sm.nlink(),
            dm.nlink()
        ));
    }
}

/// Asserts [`compare_trees`] finds nothing (listing at most 60 problems).
#[track_caller]
pub fn assert_faithful_copy(src: &Path, dst: &Path) {
    let problems = compare_trees(src, dst);
    assert!(
        problems.is_empty(),
        "{} is not a faithful copy of {}: {} problem(s):\n  {}",
        dst.display(),
        src.display(),
        problems.len(),
        problems
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// Whether `p` is a staging temporary's name (`.fastcp-*`).
pub fn is_temp(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b".fastcp-"))
}

/// Asserts no staging temporary (`.fastcp-*`) is left anywhere below `dir`.
#[track_caller]
pub fn assert_no_temps(dir: &Path) {
    let temps: Vec<PathBuf> = entries(dir).into_iter().filter(|p| is_temp(p)).collect();
    assert!(
        temps.is_empty(),
        "temporary files left in {}: {temps:?}",
        dir.display()
    );
}

/// Every regular file under `out` (under its final name) equals the same path under `src`.
/// Returns how many files were checked.
#[track_caller]
pub fn assert_final_files_whole(out: &Path, src: &Path) -> usize {
    let mut n = 0;
    for (rel, md) in walk(out) {
        if !md.is_file() {
            continue;
        }
        let p = out.join(&rel);
        let want = fs::read(src.join(&rel))
            .unwrap_or_else(|e| panic!("{} has no source: {e}", p.display()));
        let got = fs::read(&p).unwrap();
        assert!(
            got == want,
            "{} is not a whole copy of its source: {} bytes, source {} bytes",
            p.display(),
            got.len(),
            want.len()
        );
        n += 1;
    }
    n
}

/// Sets the mtime (and atime) of `p` itself, not following a symlink.
pub fn set_mtime_nofollow(p: &Path, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as _,
    };
    let times = [ts, ts];
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths");
    // SAFETY: a valid C string and a two-element timespec array.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        r,
        0,
        "utimensat {}: {}",
        p.display(),
        io::Error::last_os_error()
    );
}

/// Removes a tree even where read-only directories (0555, 0000) would stop `remove_dir_all`.
pub fn force_remove(root: &Path) {
    fn open_up(p: &Path) {
        let Ok(md) = fs::symlink_metadata(p) else {
            return;
        };
        if md.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    open_up(&e.path());
                }
            }
        }
    }
    open_up(root);
    let _ = fs::remove_dir_all(root);
}

/// A directory under `CARGO_TARGET_TMPDIR` (the filesystem the build is on), removed forcibly
/// on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir")
            .keep();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Keeps the directory for the rest of the test binary (tests share it, e.g. from a
    /// `OnceLock`) and removes it when the process exits.
    pub fn until_exit(self) -> &'static Path {
        static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        static REGISTERED: OnceLock<()> = OnceLock::new();
        extern "C" fn remove_all() {
            if let Ok(dirs) = DIRS.lock() {
                dirs.iter().for_each(|d| force_remove(d));
            }
        }
        REGISTERED.get_or_init(|| {
            // SAFETY: registering a plain `extern "C" fn()`; it runs once at process exit.
            unsafe { libc::atexit(remove_all) };
        });
        let path = std::mem::ManuallyDrop::new(self).0.clone();
        DIRS.lock().unwrap().push(path.clone());
        Box::leak(path.into_boxed_path())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        force_remove(&self.0);
    }
}
