//! Correctness matrix: one hostile tree, copied by every engine and copy method, checked entry by
//! entry (bytes, mode, mtime in ns, symlink target text, hard-link groups) and, where the shared
//! bench scripts are present, by `verify-copy.py --mtime --strict` as well.
//!
//! The tree is generated once per test binary (`OnceLock`) under `CARGO_TARGET_TMPDIR` and removed
//! at exit; each variant copies into its own fresh out-dir on the same filesystem.
//!
//! * ≥ 10,000 small files in 100 directories, empty files, a hidden file
//! * sizes of exactly 64 KiB, 128 KiB and 1 MiB (a pool buffer) and ±1 byte of each, 5 MiB and
//!   5 MiB + 3 (many buffers), one 256 MiB + 7 file of real (non-sparse) bytes in which every
//!   4 KiB page is distinct
//! * relative, absolute, dangling, self-referencing and directory symlinks, a non-UTF-8 target
//! * a hard-link group of 3 across directories, a group of 2 executables, one of 2 large files
//! * modes 0755, 0700, 0644, 0444 (files) and 0555, 0700 (directories)
//! * non-UTF-8 names (file and directory), a newline in a name, 255-byte names, 64 levels deep
//! * fixed mtimes with nanoseconds on every file, symlink and directory
//!
//! Linux only: the io-uring variants are Linux's, and macOS's APFS refuses non-UTF-8 names.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-fastcp");

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Small files in the tree (≥ 10,000).
const SMALL_DIRS: usize = 100;
const SMALL_PER_DIR: usize = 100;
/// The one large file: ≥ 256 MiB, and not a multiple of any buffer size.
const BIG: usize = 256 * MIB + 7;
/// Directory levels of the deep chain.
const DEPTH: usize = 64;

// ---------------------------------------------------------------------------------------------
// Content

/// xorshift64*: deterministic, fast even unoptimized when used a word at a time.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let w = self.next().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// Writes `len` bytes in which every 4 KiB page starts with its own page number: a page written
/// at the wrong offset, twice, or not at all shows up in a byte compare.
fn write_big(path: &Path, len: usize) -> io::Result<()> {
    let mut block = vec![0u8; MIB];
    Rng::new(0xB16).fill(&mut block);
    let mut f = File::create(path)?;
    let mut written = 0usize;
    let mut page = 0u64;
    while written < len {
        let n = (len - written).min(MIB);
        for p in (0..n).step_by(4 * KIB) {
            let end = (p + 16).min(n);
            let stamp = [page.to_le_bytes(), (!page).to_le_bytes()].concat();
            block[p..end].copy_from_slice(&stamp[..end - p]);
            page += 1;
        }
        f.write_all(&block[..n])?;
        written += n;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Metadata helpers

/// A fixed time with nanoseconds, distinct per `i`.
fn stamp(i: u64) -> SystemTime {
    UNIX_EPOCH
        + Duration::new(
            1_600_000_000 + i * 61,
            ((i * 7_919 + 123_457) % 1_000_000_000) as u32,
        )
}

fn c_path(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// Sets the mtime (and atime) of `p` itself, not following a symlink.
fn set_mtime_nofollow(p: &Path, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as _,
    };
    let times = [ts, ts];
    let c = c_path(p);
    // SAFETY: valid C string and a two-element timespec array.
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

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Removes a tree even where read-only directories (0555) would stop `remove_dir_all`.
fn force_remove(root: &Path) {
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

/// A directory removed (forcibly) on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("tempdir")
            .keep();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        force_remove(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The tree

struct Corpus {
    /// Holds `src`; removed at process exit.
    root: PathBuf,
    src: PathBuf,
    /// Non-directory entries and data bytes (each hard-link group once): the summary's counts.
    files: u64,
    bytes: u64,
    /// The non-UTF-8 file's path relative to `src`, to find it in the JSON lines.
    non_utf8: PathBuf,
}

static CORPUS: OnceLock<Corpus> = OnceLock::new();

extern "C" fn remove_corpus() {
    if let Some(c) = CORPUS.get() {
        force_remove(&c.root);
    }
}

fn corpus() -> &'static Corpus {
    CORPUS.get_or_init(|| {
        let t0 = Instant::now();
        let root = Scratch::new("matrix-src-");
        let src = root.0.join("src");
        let non_utf8 = build_tree(&src);
        let (files, bytes) = counts(&src);
        let root = {
            let p = root.0.clone();
            std::mem::forget(root);
            p
        };
        // SAFETY: registering a plain `extern "C" fn()`; it runs once at process exit.
        unsafe { libc::atexit(remove_corpus) };
        eprintln!(
            "matrix: tree of {files} files, {} MiB generated in {:.1} s at {}",
            bytes >> 20,
            t0.elapsed().as_secs_f64(),
            src.display()
        );
        Corpus {
            root,
            src,
            files,
            bytes,
            non_utf8,
        }
    })
}

/// Builds the tree; returns the relative path of the non-UTF-8 file.
fn build_tree(src: &Path) -> PathBuf {
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mkdir = |p: PathBuf, dirs: &mut Vec<PathBuf>| {
        fs::create_dir_all(&p).unwrap();
        dirs.push(p);
    };
    // A regular file: bytes, mode, mtime (ns).
    let file = |p: &Path, data: &[u8], mode: u32, t: SystemTime| {
        let mut f = File::create(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        f.write_all(data).unwrap();
        f.set_modified(t).unwrap();
        drop(f);
        set_mode(p, mode);
    };
    let link = |target: &OsStr, p: &Path, t: SystemTime| {
        symlink(target, p).unwrap();
        set_mtime_nofollow(p, t);
    };
    mkdir(src.to_path_buf(), &mut dirs);

    // ≥ 10,000 small files (0..4 KiB; every 97th empty).
    let small = src.join("small");
    mkdir(small.clone(), &mut dirs);
    for d in 0..SMALL_DIRS {
        let dir = small.join(format!("d{d:02}"));
        mkdir(dir.clone(), &mut dirs);
        for i in 0..SMALL_PER_DIR {
            let k = (d * SMALL_PER_DIR + i) as u64;
            let len = if k % 97 == 0 {
                0
            } else {
                (k * 2_654_435_761 % 4096) as usize
            };
            let mode = if k % 10 == 0 { 0o755 } else { 0o644 };
            let n = next();
            file(
                &dir.join(format!("f{i:03}.rs")),
                &bytes(len, k),
                mode,
                stamp(n),
            );
        }
    }

    // Empty files and a hidden one.
    let empty = src.join("empty");
    mkdir(empty.clone(), &mut dirs);
    file(&empty.join("empty-644"), b"", 0o644, stamp(next()));
    file(&empty.join("empty-755"), b"", 0o755, stamp(next()));
    file(&empty.join(".hidden-empty"), b"", 0o600, stamp(next()));
    file(
        &src.join(".hidden"),
        b"dot file at the top\n",
        0o644,
        stamp(next()),
    );

    // Buffer-boundary sizes: one pool buffer (64 KiB; also 128 KiB and 1 MiB), ±1, many buffers.
    let sizes = src.join("sizes");
    mkdir(sizes.clone(), &mut dirs);
    for (name, base) in [("64k", 64 * KIB), ("128k", 128 * KIB), ("1m", MIB)] {
        for (suffix, len) in [("-1", base - 1), ("", base), ("+1", base + 1)] {
            let n = next();
            file(
                &sizes.join(format!("{name}{suffix}")),
                &bytes(len, 1000 + n),
                0o644,
                stamp(n),
            );
        }
    }
    for (name, len) in [("5m", 5 * MIB), ("5m+3", 5 * MIB + 3), ("3", 3)] {
        let n = next();
        file(&sizes.join(name), &bytes(len, 2000 + n), 0o644, stamp(n));
    }
    let big_dir = src.join("big");
    mkdir(big_dir.clone(), &mut dirs);
    let big = big_dir.join("256m+7.bin");
    write_big(&big, BIG).unwrap();
    let f = File::options().write(true).open(&big).unwrap();
    f.set_modified(stamp(next())).unwrap();
    drop(f);

    // Modes.
    let modes = src.join("modes");
    mkdir(modes.clone(), &mut dirs);
    for mode in [0o755, 0o700, 0o644, 0o444] {
        let n = next();
        file(
            &modes.join(format!("m{mode:04o}")),
            &bytes(300 + mode as usize, n),
            mode,
            stamp(n),
        );
    }
    let ro = modes.join("ro-dir-0555");
    mkdir(ro.clone(), &mut dirs);
    file(
        &ro.join("inside"),
        b"in a read-only dir\n",
        0o644,
        stamp(next()),
    );
    let private = modes.join("private-dir-0700");
    mkdir(private.clone(), &mut dirs);
    file(&private.join("secret"), b"private\n", 0o600, stamp(next()));

    // Hard links: a group of 3 across directories, 2 executables, 2 multi-buffer files.
    let hard = src.join("hard");
    mkdir(hard.join("sub"), &mut dirs);
    dirs.push(hard.clone());
    file(&hard.join("a"), &bytes(10_000, 31), 0o644, stamp(next()));
    fs::hard_link(hard.join("a"), hard.join("sub/b")).unwrap();
    fs::hard_link(hard.join("a"), src.join("empty/c-hardlink-of-hard-a")).unwrap();
    file(&hard.join("tool"), &bytes(70_000, 32), 0o755, stamp(next()));
    fs::hard_link(hard.join("tool"), hard.join("tool-deps-1234abcd")).unwrap();
    file(
        &hard.join("big-a"),
        &bytes(3 * MIB + 5, 33),
        0o644,
        stamp(next()),
    );
    fs::hard_link(hard.join("big-a"), hard.join("sub/big-b")).unwrap();

    // Symlinks: relative, absolute (outside and inside the tree), dangling, to a directory,
    // to itself, and one whose target text is not UTF-8.
    let links = src.join("links");
    mkdir(links.clone(), &mut dirs);
    link(
        OsStr::new("../sizes/64k"),
        &links.join("rel"),
        stamp(next()),
    );
    link(
        OsStr::new("/etc/hostname"),
        &links.join("abs-outside"),
        stamp(next()),
    );
    link(
        src.join("sizes/3").as_os_str(),
        &links.join("abs-inside"),
        stamp(next()),
    );
    link(
        OsStr::new("no/such/target"),
        &links.join("dangling"),
        stamp(next()),
    );
    link(
        OsStr::new("../small/d00"),
        &links.join("to-dir"),
        stamp(next()),
    );
    link(
        OsStr::new("self-loop"),
        &links.join("self-loop"),
        stamp(next()),
    );
    link(
        OsStr::from_bytes(b"target-\xff\xfe"),
        &links.join("non-utf8-target"),
        stamp(next()),
    );

    // Names: non-UTF-8 (file, directory), a newline, 255 bytes (file and directory), unicode.
    let names = src.join("names");
    mkdir(names.clone(), &mut dirs);
    let bad = OsStr::from_bytes(b"bad\xff\xfe");
    file(&names.join(bad), b"non-UTF-8 name\n", 0o644, stamp(next()));
    let bad_dir = names.join(OsStr::from_bytes(b"dir-\xc3\x28"));
    mkdir(bad_dir.clone(), &mut dirs);
    file(
        &bad_dir.join(OsStr::from_bytes(b"inner-\x80")),
        &bytes(65 * KIB, 41),
        0o644,
        stamp(next()),
    );
    file(&names.join("new\nline"), b"newline\n", 0o644, stamp(next()));
    file(&names.join("with space"), b"space\n", 0o644, stamp(next()));
    file(
        &names.join("ünïcödé-名前"),
        b"unicode\n",
        0o644,
        stamp(next()),
    );
    let long = |c: char, ext: &str| {
        let mut s: String = std::iter::repeat_n(c, 255 - ext.len()).collect();
        s.push_str(ext);
        assert_eq!(s.len(), 255);
        s
    };
    file(
        &names.join(long('n', ".bin")),
        &bytes(100, 42),
        0o644,
        stamp(next()),
    );
    let long_dir = names.join(long('D', ""));
    mkdir(long_dir.clone(), &mut dirs);
    file(
        &long_dir.join(long('f', ".txt")),
        &bytes(129 * KIB, 43),
        0o755,
        stamp(next()),
    );

    // 64 levels deep, a file at the bottom and one halfway.
    let mut deep = src.join("deep");
    mkdir(deep.clone(), &mut dirs);
    for level in 0..DEPTH {
        deep.push(format!("level-{level:02}"));
        mkdir(deep.clone(), &mut dirs);
        if level == DEPTH / 2 {
            file(&deep.join("halfway"), b"halfway\n", 0o644, stamp(next()));
        }
    }
    file(
        &deep.join("bottom"),
        &bytes(64 * KIB + 1, 44),
        0o644,
        stamp(next()),
    );

    // Directory modes and mtimes last, deepest first, once everything inside exists.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in &dirs {
        set_mtime_nofollow(d, stamp(next()));
    }
    set_mode(&private, 0o700);
    set_mode(&ro, 0o555);
    PathBuf::from("names").join(bad)
}

/// Non-directory entries, and data bytes counting each hard-link group once.
fn counts(src: &Path) -> (u64, u64) {
    let mut seen = std::collections::HashSet::new();
    let (mut files, mut bytes) = (0, 0);
    for (_, md) in walk(src) {
        if md.is_dir() {
            continue;
        }
        files += 1;
        if md.is_file() && seen.insert(md.ino()) {
            bytes += md.len();
        }
    }
    (files, bytes)
}

/// Every entry below `root` (not `root` itself), relative, with its lstat.
fn walk(root: &Path) -> BTreeMap<PathBuf, fs::Metadata> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
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

// ---------------------------------------------------------------------------------------------
// Checks

fn same_bytes(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; MIB], vec![0u8; MIB]);
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

fn mtime(md: &fs::Metadata) -> (i64, i64) {
    (md.mtime(), md.mtime_nsec())
}

/// Compares the copy `dst` with `src` entry by entry; returns every problem found.
fn compare(src: &Path, dst: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let s = walk(src);
    let d = walk(dst);
    for r in d.keys().filter(|r| !s.contains_key(*r)) {
        problems.push(format!("extra entry in the copy: {r:?}"));
    }
    // Source inode -> (destination inode, first member), to check hard-link groups.
    let mut groups: HashMap<u64, (u64, PathBuf, u64)> = HashMap::new();
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
            if sm.nlink() > 1 {
                match groups.get(&sm.ino()) {
                    Some((ino, first, _)) if *ino != dm.ino() => problems.push(format!(
                        "hard link lost: {first:?} and {r:?} share an inode in the source, \
                         not in the copy"
                    )),
                    Some(_) => {}
                    None => {
                        if let Some(other) = dst_group_inodes.insert(dm.ino(), sm.ino()) {
                            problems.push(format!(
                                "{r:?}: two source hard-link groups ({other}, {}) merged into one \
                                 inode in the copy",
                                sm.ino()
                            ));
                        }
                        groups.insert(sm.ino(), (dm.ino(), r.clone(), sm.nlink()));
                    }
                }
                if dm.nlink() != sm.nlink() {
                    problems.push(format!(
                        "{r:?}: {} links in the source, {} in the copy",
                        sm.nlink(),
                        dm.nlink()
                    ));
                }
            } else if dm.nlink() != 1 {
                problems.push(format!(
                    "{r:?}: not a hard link in the source, {} links in the copy",
                    dm.nlink()
                ));
            }
        }
    }
    problems
}

/// `verify-copy.py SRC DST --mtime --strict` from the shared bench scripts, when present.
fn verify_with_script(src: &Path, dst: &Path) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/bench/verify-copy.py")
        .to_path_buf();
    if !script.is_file() {
        return Ok(format!(
            "skipped verify-copy.py: {} does not exist (the shared/ scripts sit beside the clone \
             in CI)",
            script.display()
        ));
    }
    let out = match Command::new("python3")
        .arg(&script)
        .arg(src)
        .arg(dst)
        .args(["--mtime", "--strict"])
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok("skipped verify-copy.py: python3 is not installed".into())
        }
        Err(e) => return Err(format!("cannot run python3 {}: {e}", script.display())),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

// ---------------------------------------------------------------------------------------------
// Running the binary

fn describe(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let interesting: Vec<&str> = lines
        .iter()
        .filter(|l| !l.contains(r#""reason":"copied""#))
        .take(40)
        .copied()
        .collect();
    format!(
        "status: {:?}\n--- stdout ({} lines; all but `copied` lines, first 40) ---\n{}\n--- \
         stderr ---\n{}",
        out.status,
        lines.len(),
        interesting.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Why the binary says the io-uring engine cannot run here, if it does.
fn io_uring_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let c = corpus();
        let out = Command::new(BIN)
            .arg("--dry-run")
            .args(["--engine", "io-uring", "-q", "--from"])
            .arg(&c.src)
            .arg(".hidden")
            .output()
            .expect("run the binary");
        if out.status.success() {
            return None;
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert!(
            out.status.code() == Some(2) && err.contains("not available"),
            "the io-uring availability check failed in an unexpected way\n{}",
            describe(&out)
        );
        Some(err)
    })
    .as_deref()
}

/// Copies the corpus with `args` into a fresh out-dir and checks everything.
fn check_variant(name: &str, args: &[&str], engine: &str) {
    check_variant_env(name, args, engine, &[]);
}

/// `check_variant` with extra environment variables for the binary.
fn check_variant_env(name: &str, args: &[&str], engine: &str, env: &[(&str, &str)]) {
    let c = corpus();
    if engine == "io-uring" {
        if let Some(why) = io_uring_unavailable() {
            eprintln!("skipped {name}: the binary says io-uring is unavailable here: {why}");
            return;
        }
    }
    let scratch = Scratch::new(&format!("matrix-{name}-"));
    let out_dir = scratch.0.join("out");
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .arg("-o")
        .arg(&out_dir)
        .arg("--from")
        .arg(&c.src)
        .arg("**")
        .args(args)
        .args(["--message-format", "json"])
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().copied())
        .output()
        .expect("run the binary");
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "[{name}] copy failed\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("[{name}] bad JSON {l:?}: {e}")))
        .collect();
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["reason"], "summary", "[{name}] {}", describe(&out));
    assert_eq!(
        summary["engine"],
        engine,
        "[{name}] wrong engine in the summary\n{}",
        describe(&out)
    );
    assert_eq!(summary["errors"], 0, "[{name}] {summary}");
    assert_eq!(summary["files"], c.files, "[{name}] file count: {summary}");
    assert_eq!(summary["bytes"], c.bytes, "[{name}] byte count: {summary}");
    let copied = lines.iter().filter(|l| l["reason"] == "copied").count() as u64;
    assert_eq!(copied, c.files, "[{name}] `copied` lines");
    // The non-UTF-8 name is reported exactly, as raw bytes.
    let want = out_dir.join(&c.non_utf8).into_os_string().into_vec();
    let found = lines.iter().any(|l| {
        l["dst_bytes"].as_array().is_some_and(|a| {
            a.iter()
                .map(|b| b.as_u64().unwrap_or(256) as u8)
                .collect::<Vec<_>>()
                == want
        })
    });
    assert!(
        found,
        "[{name}] no `copied` line carries dst_bytes = {:?}",
        OsString::from_vec(want)
    );

    let problems = compare(&c.src, &out_dir);
    assert!(
        problems.is_empty(),
        "[{name}] {} problem(s) in the copy:\n  {}",
        problems.len(),
        problems
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    match verify_with_script(&c.src, &out_dir) {
        Ok(text) => eprintln!("[{name}] {}", text.trim_end()),
        Err(text) => panic!("[{name}] verify-copy.py --mtime --strict failed:\n{text}"),
    }
    eprintln!(
        "[{name}] ok: {} files, {} MiB copied in {:.2} s",
        c.files,
        c.bytes >> 20,
        took.as_secs_f64()
    );
}

#[test]
fn portable_engine() {
    check_variant("portable", &["--engine", "portable"], "portable");
}

#[test]
fn io_uring_buffer_ring() {
    check_variant(
        "io-uring-buffer-ring",
        &["--engine", "io-uring", "--copy-method", "buffer-ring"],
        "io-uring",
    );
}

#[test]
fn io_uring_copy_file_range() {
    check_variant(
        "io-uring-copy-file-range",
        &["--engine", "io-uring", "--copy-method", "copy-file-range"],
        "io-uring",
    );
}

#[test]
fn io_uring_splice() {
    check_variant(
        "io-uring-splice",
        &["--engine", "io-uring", "--copy-method", "splice"],
        "io-uring",
    );
}

#[test]
fn io_uring_auto_method() {
    check_variant(
        "io-uring-auto",
        &["--engine", "io-uring", "--copy-method", "auto"],
        "io-uring",
    );
}

/// Where `O_TMPFILE` is missing, files are staged under named temporaries and renamed into
/// place: that path, forced, on both engines.
#[test]
fn named_temporaries_portable() {
    check_variant_env(
        "portable-named-temps",
        &["--engine", "portable"],
        "portable",
        &[("CARGO_FASTCP_NAMED_TEMPS", "1")],
    );
}

#[test]
fn named_temporaries_io_uring() {
    check_variant_env(
        "io-uring-named-temps",
        &["--engine", "io-uring", "--copy-method", "auto"],
        "io-uring",
        &[("CARGO_FASTCP_NAMED_TEMPS", "1")],
    );
}

/// The generator itself: the tree has what the matrix claims to cover.
#[test]
fn the_tree_covers_the_matrix() {
    let c = corpus();
    let all = walk(&c.src);
    let files = all.values().filter(|m| m.is_file()).count();
    assert!(files >= 10_000, "{files} regular files");
    let big = &all[Path::new("big/256m+7.bin")];
    assert!(
        big.len() >= 256 << 20 && big.blocks() * 512 >= big.len(),
        "big file is sparse"
    );
    assert_eq!(all[Path::new("hard/a")].nlink(), 3);
    let depth = all.keys().map(|p| p.components().count()).max().unwrap();
    assert!(depth > DEPTH, "deepest entry at {depth} components");
    assert!(all.keys().any(|p| p.to_str().is_none()), "a non-UTF-8 name");
    assert!(all
        .keys()
        .any(|p| p.file_name().is_some_and(|n| n.len() == 255)));
}
