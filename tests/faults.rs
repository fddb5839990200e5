//! Faults from the kernel, not from the test (issue 16): reads that fail or come back short from a
//! FUSE filesystem, runs killed at random points, a device that fills up, concurrent runs into one
//! out-dir, and a destination whose directories are swapped for symlinks while a run writes.
//! Every case runs the real binary on both engines and every copy method (one named test per
//! variant); `docs/reliability.md` lists each fault, how it is injected and what the user sees.
#![cfg(target_os = "linux")]

mod common;
mod faultfs;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use faultfs::Fault;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Any single run longer than this is a hang: it is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Says why (part of) a test did not run, on the real stderr (libtest captures only the print
/// macros), so `cargo test` shows it even for a passing test.
fn skip(test: &str, reason: &str) {
    let _ = writeln!(io::stderr(), "SKIP {test}: {reason}");
}

fn tmp() -> TempDir {
    tempfile::Builder::new()
        .prefix("fastcp-faults-")
        .tempdir()
        .expect("tempdir")
}

fn fastcp(args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(common::BIN);
    for v in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_BUILD_TARGET"] {
        c.env_remove(v);
    }
    c.args(args);
    c
}

/// A spawned run whose stdout and stderr are drained by threads (a chatty child never blocks).
struct Proc {
    child: Child,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

struct Done {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

fn spawn(mut cmd: Command) -> Proc {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    Proc { child, out, err }
}

impl Proc {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits at most `limit`; on time-out kills the child and panics with its output.
    fn wait_within(mut self, limit: Duration) -> Done {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let elapsed = start.elapsed();
        let text = |h: Option<JoinHandle<Vec<u8>>>| {
            String::from_utf8_lossy(&h.map(|h| h.join().unwrap()).unwrap_or_default())
                .into_owned()
        };
        let (stdout, stderr) = (text(self.out.take()), text(self.err.take()));
        match status {
            Some(status) => Done {
                status,
                stdout,
                stderr,
                elapsed,
            },
            None => panic!(
                "still running after {limit:?} (a hang); killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            ),
        }
    }

    fn wait(self) -> Done {
        self.wait_within(RUN_LIMIT)
    }
}

impl Done {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "status {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }

    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.describe()))
            })
            .collect()
    }

    #[track_caller]
    fn expect_code(&self, code: i32, what: &str) {
        assert_eq!(self.code(), Some(code), "{what}: {}", self.describe());
    }

    /// `failed` JSON lines: source path → error text.
    fn failures(&self) -> HashMap<String, String> {
        self.json()
            .iter()
            .filter(|l| l["reason"] == "failed")
            .map(|l| {
                (
                    l["src"].as_str().unwrap_or("").to_string(),
                    l["error"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

/// `cargo-fastcp -o OUT --from FROM --message-format json <variant flags> ARGS... '**'`.
fn tree_copy(from: &Path, out: &Path, variant: &str, extra: &[&str]) -> Command {
    let mut c = fastcp(&[]);
    c.arg("-o")
        .arg(out)
        .arg("--from")
        .arg(from)
        .args(["--message-format", "json"])
        .args(eargs(variant))
        .args(extra)
        .arg("**");
    c
}

// ---------------------------------------------------------------------------------------------
// Engines and copy methods
// ---------------------------------------------------------------------------------------------

/// `Ok` when `--engine io-uring` runs here, else the binary's own reason.
fn io_uring_available() -> &'static Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE.get_or_init(|| {
        let t = tmp();
        fs::write(t.path().join("f"), "x").unwrap();
        let mut c = fastcp(&[]);
        c.current_dir(t.path()).args([
            "--dry-run",
            "--engine",
            "io-uring",
            "-o",
            "out",
            "--from",
            ".",
            "f",
        ]);
        let d = spawn(c).wait();
        if d.code() == Some(0) {
            Ok(())
        } else {
            Err(format!(
                "the binary says (exit {:?}): {}",
                d.code(),
                d.stderr.trim()
            ))
        }
    })
}

/// The flags of a variant: `portable`, `io-uring`, or `io-uring+<copy-method>`.
fn eargs(variant: &str) -> Vec<&str> {
    match variant.split_once('+') {
        Some((engine, method)) => vec!["--engine", engine, "--copy-method", method],
        None => vec!["--engine", variant],
    }
}

/// False (and a SKIP line) when `variant` needs io-uring and it is not available here.
fn runs_here(test: &str, variant: &str) -> bool {
    if variant.starts_with("io-uring") {
        if let Err(why) = io_uring_available() {
            skip(test, &format!("{variant} not run: {why}"));
            return false;
        }
    }
    true
}

/// One named test per engine and copy method, each calling `$f(variant)`.
macro_rules! per_variant {
    ($($module:ident => $f:ident;)*) => {$(
        mod $module {
            #[test]
            fn portable() {
                super::$f("portable")
            }
            #[test]
            fn io_uring_auto() {
                super::$f("io-uring")
            }
            #[test]
            fn io_uring_buffer_ring() {
                super::$f("io-uring+buffer-ring")
            }
            #[test]
            fn io_uring_copy_file_range() {
                super::$f("io-uring+copy-file-range")
            }
            #[test]
            fn io_uring_splice() {
                super::$f("io-uring+splice")
            }
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// Trees and checks
// ---------------------------------------------------------------------------------------------

/// Deterministic, incompressible-looking bytes (so a short or mixed copy never compares equal).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn put(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// Every entry below `dir` (not following symlinks), relative, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                go(root, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    go(dir, dir, &mut v);
    v.sort();
    v
}

fn is_temp(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(".fastcp-"))
}

#[track_caller]
fn assert_no_temps(dir: &Path) {
    let temps: Vec<PathBuf> = entries(dir).into_iter().filter(|p| is_temp(p)).collect();
    assert!(
        temps.is_empty(),
        "temporary files left in {}: {temps:?}",
        dir.display()
    );
}

/// `dst` has exactly `src`'s bytes, mode and mtime.
#[track_caller]
fn assert_exact(src: &Path, dst: &Path) {
    let (s, d) = (fs::metadata(src).unwrap(), fs::symlink_metadata(dst).unwrap());
    assert!(d.is_file(), "{} is not a regular file", dst.display());
    let (sb, db) = (fs::read(src).unwrap(), fs::read(dst).unwrap());
    assert!(
        sb == db,
        "{} differs from its source {} ({} bytes, source {})",
        dst.display(),
        src.display(),
        db.len(),
        sb.len()
    );
    assert_eq!(
        d.mode() & 0o7777,
        s.mode() & 0o7777,
        "mode of {}",
        dst.display()
    );
    assert_eq!(
        (d.mtime(), d.mtime_nsec()),
        (s.mtime(), s.mtime_nsec()),
        "mtime of {}",
        dst.display()
    );
}

// ---------------------------------------------------------------------------------------------
// 1. A faulty filesystem (FUSE)
// ---------------------------------------------------------------------------------------------

/// The source tree the FUSE cases serve: healthy files of every interesting size around the
/// 128 KiB pool buffer and the 64 KiB auto threshold (the sizes the first report named among
/// them), and the faulty ones. Returns the healthy files' names.
fn fuse_tree(backing: &Path) -> Vec<String> {
    let mut ok = Vec::new();
    for (k, size) in [
        0usize, 1, 4095, 37_000, 65_536, 131_072, 131_073, 740_000, 1_480_000, 3_000_001,
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("ok/f{k}-{size}.bin");
        put(&backing.join(&name), &noise(size, k as u64 + 1));
        ok.push(name);
    }
    for (name, size) in [
        ("bad/eio-mid.bin", 1_000_000),
        ("bad/eio-start.bin", 100_000),
        ("bad/shrinks.bin", 500_000),
        ("bad/grows.bin", 300_000),
        ("odd/short.bin", 740_000),
        ("odd/short-small.bin", 37_000),
        ("odd/slow.bin", 600_000),
    ] {
        put(&backing.join(name), &noise(size, name.len() as u64 * 7));
    }
    ok
}

fn fuse_faults(direct_io: bool) -> faultfs::Options {
    let mut faults = HashMap::new();
    faults.insert("bad/eio-mid.bin".into(), Fault::Eio { at: 300_000 });
    faults.insert("bad/eio-start.bin".into(), Fault::Eio { at: 0 });
    faults.insert("bad/shrinks.bin".into(), Fault::Resize { to: 200_000 });
    faults.insert("bad/grows.bin".into(), Fault::Resize { to: 400_000 });
    faults.insert(
        "odd/slow.bin".into(),
        Fault::Slow {
            per_read: Duration::from_millis(15),
        },
    );
    // A short answer is valid only where the kernel passes it on as it is (direct_io); through
    // the page cache FUSE takes it for the end of the file.
    if direct_io {
        faults.insert("odd/short.bin".into(), Fault::Short { max: 10_000 });
        faults.insert("odd/short-small.bin".into(), Fault::Short { max: 4_000 });
    }
    faultfs::Options { direct_io, faults }
}

/// Copies the fault tree through FUSE with `variant`: the four faulty files are reported by
/// path with their cause, exit 1, nothing under their names and no temporary; every other file
/// (short and slow answers included) exact; no hang.
fn fuse_case(test: &str, variant: &str, direct_io: bool) {
    if !runs_here(test, variant) {
        return;
    }
    if let Some(why) = faultfs::unavailable() {
        return skip(test, &why);
    }
    let t = tmp();
    let (backing, mnt, out) = (t.path().join("backing"), t.path().join("mnt"), t.path().join("out"));
    fs::create_dir_all(&mnt).unwrap();
    let ok = fuse_tree(&backing);
    let m = faultfs::mount(&backing, &mnt, fuse_faults(direct_io)).expect("mount the FUSE fs");
    let d = spawn(tree_copy(&mnt, &out, variant, &[])).wait();
    d.expect_code(1, "faulty files are reported, exit 1");
    let failures = d.failures();
    let src = |n: &str| mnt.join(n).display().to_string();
    let expect = [
        ("bad/eio-mid.bin", "Input/output error"),
        ("bad/eio-start.bin", "Input/output error"),
        ("bad/shrinks.bin", "changed while it was copied"),
        ("bad/grows.bin", "changed while it was copied"),
    ];
    for (name, cause) in expect {
        let err = failures.get(&src(name)).unwrap_or_else(|| {
            panic!("{name} is not reported as failed\n{}", d.describe())
        });
        assert!(
            err.contains(cause) && err.contains(&src(name)),
            "{name}: error names the path and `{cause}`: {err}"
        );
        assert!(
            fs::symlink_metadata(out.join(name)).is_err(),
            "{name} failed but stands under its final name"
        );
    }
    assert_eq!(
        failures.len(),
        expect.len(),
        "only the faulty files fail\n{}",
        d.describe()
    );
    for name in ok
        .iter()
        .map(String::as_str)
        .chain(["odd/short.bin", "odd/short-small.bin", "odd/slow.bin"])
    {
        assert_exact(&backing.join(name), &out.join(name));
    }
    assert_no_temps(&out);
    assert!(
        m.stats.eio.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the EIO fault was hit"
    );
    if direct_io {
        assert!(
            m.stats.short.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "short answers were given"
        );
    }
    drop(m);
}

fn fuse_page_cache(variant: &str) {
    fuse_case("fuse_page_cache", variant, false)
}

fn fuse_direct_io(variant: &str) {
    fuse_case("fuse_direct_io", variant, true)
}

per_variant! {
    fuse_page_cache => fuse_page_cache;
    fuse_direct_io => fuse_direct_io;
}
