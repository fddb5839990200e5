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

mod common;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    assert_faithful_copy, bytes, counts, set_mode, set_mtime_nofollow, walk, Done, Rng, Scratch,
    Variant, BIN,
};
use serde_json::Value;

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

// ---------------------------------------------------------------------------------------------
// The tree

struct Corpus {
    /// In a directory removed at process exit.
    src: PathBuf,
    /// Non-directory entries and data bytes (each hard-link group once): the summary's counts.
    files: u64,
    bytes: u64,
    /// The non-UTF-8 file's path relative to `src`, to find it in the JSON lines.
    non_utf8: PathBuf,
}

static CORPUS: OnceLock<Corpus> = OnceLock::new();

fn corpus() -> &'static Corpus {
    CORPUS.get_or_init(|| {
        let t0 = Instant::now();
        let src = Scratch::new("matrix-src-").until_exit().join("src");
        let non_utf8 = build_tree(&src);
        let (files, bytes) = counts(&src);
        eprintln!(
            "matrix: tree of {files} files, {} MiB generated in {:.1} s at {}",
            bytes >> 20,
            t0.elapsed().as_secs_f64(),
            src.display()
        );
        Corpus {
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

/// Held shared by every copy of the corpus and exclusively by the test that evicts part of it
/// from the page cache: a copy running beside it would read the evicted files back in.
static SOURCE_CACHE: RwLock<()> = RwLock::new(());

/// Copies the corpus with `variant` (and extra environment for the binary) into a fresh out-dir
/// and checks everything, beside other copies of the corpus. Returns the summary line.
fn check_variant(variant: Variant, name: &str, env: &[(&str, &str)]) -> Value {
    let _shared = SOURCE_CACHE.read().unwrap_or_else(|e| e.into_inner());
    copy_and_check(variant, name, env)
}

/// The copy and checks of [`check_variant`], for a caller that already holds [`SOURCE_CACHE`].
fn copy_and_check(variant: Variant, name: &str, env: &[(&str, &str)]) -> Value {
    let c = corpus();
    let scratch = Scratch::new(&format!("matrix-{name}-"));
    let out_dir = scratch.path().join("out");
    let t0 = Instant::now();
    let out: Done = Command::new(BIN)
        .arg("-o")
        .arg(&out_dir)
        .arg("--from")
        .arg(&c.src)
        .arg("**")
        .args(variant.args())
        .args(["--message-format", "json"])
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().copied())
        .output()
        .expect("run the binary")
        .into();
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "[{name}] copy failed\n{}",
        out.describe()
    );
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("[{name}] bad JSON {l:?}: {e}")))
        .collect();
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["reason"], "summary", "[{name}] {}", out.describe());
    assert_eq!(
        summary["engine"],
        variant.engine(),
        "[{name}] wrong engine in the summary\n{}",
        out.describe()
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

    // A new out-dir is built as a hidden sibling and renamed into place: nothing else is left.
    let beside: Vec<_> = fs::read_dir(scratch.path())
        .expect("read the scratch dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, ["out"], "[{name}] left beside the out-dir");
    // The out-dir's name says which variant this is.
    assert_faithful_copy(&c.src, &out_dir);
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
    summary.clone()
}

/// The tree, copied by each engine and copy method.
fn copies_the_tree(variant: Variant) {
    check_variant(variant, &variant.to_string(), &[]);
}
method_cases!(copies_the_tree);

/// Drops every other regular file of `root` (in path order) from the page cache, after
/// flushing it (only clean pages can be dropped).
fn evict_half(root: &Path) -> usize {
    let mut n = 0;
    for (k, (path, md)) in walk(root).iter().filter(|(_, m)| m.is_file()).enumerate() {
        if k % 2 == 1 || md.len() == 0 {
            continue;
        }
        common::evict(&root.join(path));
        n += 1;
    }
    n
}

/// The routed default (`--copy-method auto`) on a tree half of which was evicted from the page
/// cache: warm files are copied on threads, cold ones through the ring, in one run, and the
/// summary counts both routes.
#[test]
fn routed_default_on_a_half_evicted_tree() {
    let v = Variant::IoUringAuto;
    if !v.runs_here("routed_default_on_a_half_evicted_tree") {
        return;
    }
    let src = &corpus().src;
    let _alone = SOURCE_CACHE.write().unwrap_or_else(|e| e.into_inner());
    let evicted = evict_half(src);
    assert!(evicted > 4_000, "{evicted} files evicted");
    let summary = copy_and_check(v, "routed-half-evicted", &[]);
    let routes = &summary["routes"];
    let (warm, cold) = (routes["warm"].as_u64(), routes["cold"].as_u64());
    assert!(
        warm.is_some_and(|n| n > 0) && cold.is_some_and(|n| n > 0),
        "both routes should have run: {summary}"
    );
    assert_eq!(
        warm.unwrap_or(0) + cold.unwrap_or(0),
        summary["files"].as_u64().unwrap_or(0) - counts_of_links(&corpus().src),
        "every regular file took one route: {summary}"
    );
}

/// Symlinks and hard links after the first of a group: entries counted in `files` that take
/// no copy route.
fn counts_of_links(root: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    walk(root)
        .values()
        .filter(|m| m.file_type().is_symlink() || (m.is_file() && !seen.insert((m.dev(), m.ino()))))
        .count() as u64
}

/// Where `O_TMPFILE` is missing, files are staged under named temporaries and renamed into
/// place: that path, forced, on both engines.
fn named_temporaries(variant: Variant) {
    check_variant(
        variant,
        &format!("{variant}-named-temps"),
        &[("CARGO_FASTCP_NAMED_TEMPS", "1")],
    );
}
engine_cases!(named_temporaries);

/// Each file staged and placed on its own (into an existing out-dir, or with whole-tree
/// staging off), where every other case builds its new out-dir as a hidden tree.
fn placed_file_by_file(variant: Variant) {
    check_variant(
        variant,
        &format!("{variant}-per-file"),
        &[("CARGO_FASTCP_TREE_STAGING", "off")],
    );
}
engine_cases!(placed_file_by_file);

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
