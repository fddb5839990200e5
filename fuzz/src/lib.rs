//! Property check of pattern and path handling, shared by the fuzz target
//! (`fuzz_targets/select_patterns.rs`), the stable corpus replayer (`src/bin/replay.rs`) and the
//! main crate's `tests/reliability.rs` (which includes this file with `#[path]`).
//!
//! Input: the first byte holds flags (bit 0: `-L/--dereference`; bit 1: the out-dir is an
//! existing directory *inside* the base instead of a fresh one beside it). The rest, read as
//! UTF-8 (lossily), is one pattern per line; a line starting with `!` is an `--exclude-glob`.
//!
//! For any input, `cargo_fastcp::select::select` must not panic, and a plan it returns must keep
//! every destination inside the out-dir (at the source's own relative path) and every source
//! inside the base, also after resolving symlinks, unless dereferencing.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use cargo_fastcp::{Config, Op};

/// Most patterns and excludes one input yields, and longest one (in chars).
const MAX_LINES: usize = 8;
const MAX_LINE: usize = 96;

/// The small fixed tree every input is matched against.
pub struct Fixture {
    pub root: PathBuf,
    /// `--from`.
    pub base: PathBuf,
    /// `base`, canonical.
    pub base_real: PathBuf,
    /// An existing out-dir inside the base (`base/out`, holding a file).
    pub out_inside: PathBuf,
    /// A fresh out-dir beside the base (never created: `select` writes nothing).
    pub out_beside: PathBuf,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// The tree, made once per process under the temp dir, removed when the process exits (libFuzzer
/// leaves through `exit`, so through an `atexit` handler).
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("fastcp-fuzz-{}", std::process::id()));
        let f = build(root);
        #[cfg(unix)]
        {
            extern "C" fn remove_fixture() {
                cleanup();
            }
            // SAFETY: registers a plain function; `cleanup` only touches the filesystem.
            unsafe { libc::atexit(remove_fixture) };
        }
        f
    })
}

/// Removes the tree (tests call this at the end; the fuzzer leaves it for its process's life).
pub fn cleanup() {
    if let Some(f) = FIXTURE.get() {
        let _ = fs::remove_dir_all(&f.root);
    }
}

fn build(root: PathBuf) -> Fixture {
    let _ = fs::remove_dir_all(&root);
    let base = root.join("base");
    let put = |rel: &str, data: &str| {
        let p = base.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir fixture");
        fs::write(&p, data).expect("write fixture");
    };
    put("a.txt", "a");
    put("README.md", "readme");
    put("dir/b.json", "{}");
    put("dir/sub/c.rs", "fn main() {}");
    put("dir/sub/deep/e.txt", "e");
    put("odd [x] {y}.txt", "odd");
    put("star*q?.txt", "meta characters in a name");
    put("back\\slash.txt", "backslash in a name");
    put(".hidden/h.txt", "h");
    put("out/already.txt", "an earlier copy");
    let outside = root.join("outside");
    fs::create_dir_all(outside.join("inner")).expect("mkdir outside");
    fs::write(outside.join("secret.txt"), "secret").expect("write outside");
    fs::write(outside.join("inner/x.txt"), "x").expect("write outside");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("../outside", base.join("link_out")).expect("symlink");
        symlink("../../outside/secret.txt", base.join("dir/secret_link")).expect("symlink");
        symlink("a.txt", base.join("file_link")).expect("symlink");
        symlink("nowhere", base.join("dangling")).expect("symlink");
        symlink("self_loop", base.join("self_loop")).expect("symlink");
        // A directory loop, deep enough that -L patterns elsewhere still succeed.
        symlink("../..", base.join("dir/sub/deep/back")).expect("symlink");
        fs::hard_link(base.join("a.txt"), base.join("dir/a_hard.txt")).expect("hard link");
    }
    let base_real = fs::canonicalize(&base).expect("canonicalize base");
    Fixture {
        out_inside: base.join("out"),
        out_beside: root.join("out"),
        base,
        base_real,
        root,
    }
}

/// The patterns, excludes and flags one input stands for.
pub struct Case {
    pub dereference: bool,
    pub out_inside: bool,
    pub patterns: Vec<String>,
    pub excludes: Vec<String>,
}

pub fn parse(data: &[u8]) -> Option<Case> {
    let (&flags, rest) = data.split_first()?;
    let text = String::from_utf8_lossy(rest);
    let mut case = Case {
        dereference: flags & 1 != 0,
        out_inside: flags & 2 != 0,
        patterns: Vec::new(),
        excludes: Vec::new(),
    };
    for line in text.split('\n').filter(|l| !l.is_empty()).take(MAX_LINES) {
        let line: String = line.chars().take(MAX_LINE).collect();
        match line.strip_prefix('!') {
            Some(ex) => case.excludes.push(ex.to_string()),
            None => case.patterns.push(line),
        }
    }
    Some(case)
}

/// Runs one input; panics on a broken invariant.
pub fn check(data: &[u8]) {
    let _ = outcome(data);
}

/// Runs one input like [`check`] and says what `select` made of it: `ok: N jobs` or the error
/// (the fixture's root shown as `<root>`). The replayer prints this with `-v`.
pub fn outcome(data: &[u8]) -> String {
    let Some(case) = parse(data) else {
        return "empty input".into();
    };
    let f = fixture();
    let out = if case.out_inside {
        f.out_inside.clone()
    } else {
        f.out_beside.clone()
    };
    let mut cfg = Config::new();
    cfg.from = Some(f.base.clone());
    cfg.out_dir = Some(out.clone());
    cfg.patterns = case.patterns.clone();
    cfg.exclude_globs = case.excludes.clone();
    cfg.dereference = case.dereference;
    match cargo_fastcp::select::select(&cfg) {
        // Any refusal is fine; its message must render.
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            format!(
                "error: {}",
                msg.replace(&*f.root.to_string_lossy(), "<root>")
            )
        }
        Ok(plan) => {
            verify(f, &case, &out, &plan);
            format!("ok: {} jobs", plan.jobs.len())
        }
    }
}

fn only_normal(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn verify(f: &Fixture, case: &Case, out: &Path, plan: &cargo_fastcp::Plan) {
    let ctx = || {
        format!(
            "patterns {:?}, excludes {:?}, -L {}, out-dir {}",
            case.patterns,
            case.excludes,
            case.dereference,
            out.display()
        )
    };
    assert_eq!(plan.out_dir, out, "{}", ctx());
    let mut seen = HashSet::new();
    for job in &plan.jobs {
        let rel = job.dst.strip_prefix(out).unwrap_or_else(|_| {
            panic!(
                "destination {} is outside the out-dir ({})",
                job.dst.display(),
                ctx()
            )
        });
        assert!(
            only_normal(rel),
            "destination {} is not a plain path below the out-dir ({})",
            job.dst.display(),
            ctx()
        );
        assert!(
            job.op == Op::Dir || rel.components().next().is_some(),
            "a file job writes the out-dir itself ({})",
            ctx()
        );
        assert!(
            seen.insert(job.dst.clone()),
            "two jobs write {} ({})",
            job.dst.display(),
            ctx()
        );
        let srel = job.src.strip_prefix(&f.base).unwrap_or_else(|_| {
            panic!(
                "source {} is not under the base ({})",
                job.src.display(),
                ctx()
            )
        });
        assert!(
            only_normal(srel),
            "source {} is not a plain path below the base ({})",
            job.src.display(),
            ctx()
        );
        assert_eq!(
            rel,
            srel,
            "a pattern copy must keep its relative path ({})",
            ctx()
        );
        if case.dereference {
            continue;
        }
        // Without -L nothing is reached through a symlink that leaves the base. (The base itself,
        // from the pattern `.`, has no parent inside the base to check.)
        if let Some(parent) = job.src.parent().filter(|_| !srel.as_os_str().is_empty()) {
            let real = fs::canonicalize(parent).unwrap_or_else(|e| {
                panic!("planned source dir {}: {e} ({})", parent.display(), ctx())
            });
            assert!(
                real.starts_with(&f.base_real),
                "source {} resolves outside the base, to {} ({})",
                job.src.display(),
                real.display(),
                ctx()
            );
        }
        let md = fs::symlink_metadata(&job.src)
            .unwrap_or_else(|e| panic!("planned source {}: {e} ({})", job.src.display(), ctx()));
        let ok = match job.op {
            Op::Copy | Op::Hardlink { .. } => md.is_file(),
            Op::Dir => md.is_dir(),
            Op::Symlink { .. } => md.file_type().is_symlink(),
        };
        assert!(
            ok,
            "job {:?} for {} does not match what the source is ({})",
            job.op,
            job.src.display(),
            ctx()
        );
    }
}
