//! Shared harness for the integration tests (in the style of cargo-hack / nextest).
//!
//! * Fixtures live in `tests/fixtures/<name>` (and `examples/demo-workspace`); they are never
//!   built in place.
//! * Each fixture is mirrored once per test binary into a *template* directory under
//!   `CARGO_TARGET_TMPDIR` and built there with the real `cargo build --offline`, once per
//!   profile. The template persists between runs, so re-runs are incremental no-ops.
//! * A test then either runs read-only against the shared template ([`TestEnv::shared`], outputs
//!   go to a private scratch dir), or gets its own copy of the built workspace
//!   ([`TestEnv::built`], mtimes and modes preserved), or of the unbuilt sources
//!   ([`TestEnv::fixture`]).
//!
//! Beside the fixtures, every test binary shares: processes and their output ([`process`]:
//! [`bin_command`], [`spawn`], [`Done`], [`skip`], [`real_cargo`]), content ([`content`]:
//! [`bytes`], [`put`]), trees ([`trees`]: [`walk`], [`compare_trees`], [`Scratch`]) and engines
//! as named cases ([`engines`]: [`Variant`], `engine_cases!`, `method_cases!`, the
//! `CARGO_FASTCP_REQUIRE_URING` switch), root-only setups ([`system`]: [`Tmpfs`], [`as_nobody`]).
#![allow(dead_code, unused_imports, unused_macros)]

pub mod content;
pub mod engines;
pub mod process;
pub mod system;
pub mod trees;

pub use content::*;
pub use engines::*;
pub use process::*;
pub use system::*;
pub use trees::*;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File, FileTimes};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command as StdCommand, Output};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

/// The real binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cargo-fastcp");

/// Environment variables that would redirect cargo or the binary away from the fixture.
pub const SCRUBBED_ENV: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "UPDATE_SNAPSHOTS",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixture {
    /// `tests/fixtures/ws`: virtual workspace (app-cli, ffi-core, util-lib, macros).
    Ws,
    /// `tests/fixtures/single`: one package `single-tool` + README/LICENSE/assets.
    Single,
    /// `examples/demo-workspace`: the README's quick-start workspace.
    Demo,
    /// `tests/fixtures/dylib`: one package `plugin` whose lib is a Rust `dylib`.
    Dylib,
}

impl Fixture {
    const ALL: [Fixture; 4] = [Fixture::Ws, Fixture::Single, Fixture::Demo, Fixture::Dylib];

    pub fn name(self) -> &'static str {
        match self {
            Fixture::Ws => "ws",
            Fixture::Single => "single",
            Fixture::Demo => "demo-workspace",
            Fixture::Dylib => "dylib",
        }
    }

    /// Where the pristine sources live in the repository.
    pub fn source_dir(self) -> PathBuf {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        match self {
            Fixture::Ws => repo.join("tests/fixtures/ws"),
            Fixture::Single => repo.join("tests/fixtures/single"),
            Fixture::Demo => repo.join("examples/demo-workspace"),
            Fixture::Dylib => repo.join("tests/fixtures/dylib"),
        }
    }

    /// `cargo build` invocations run (in order) to produce the template. Each profile of each
    /// fixture is built exactly once per test binary.
    fn builds(self) -> Vec<Vec<String>> {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        match self {
            Fixture::Ws => vec![
                s(&[]),
                s(&["--release", "--bins", "--lib", "--examples"]),
                s(&["--profile", "dist"]),
                s(&["--release", "--target", host_triple()]),
            ],
            Fixture::Single | Fixture::Demo | Fixture::Dylib => vec![s(&["--release"])],
        }
    }

    fn index(self) -> usize {
        Fixture::ALL.iter().position(|f| *f == self).unwrap()
    }
}

/// The host triple, from `rustc -vV`.
pub fn host_triple() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = StdCommand::new(rustc)
            .arg("-vV")
            .output()
            .expect("run rustc -vV");
        assert!(out.status.success(), "rustc -vV failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("host line in rustc -vV")
            .trim()
            .to_string()
    })
}

/// The built template of `fixture` (shared by every test in this binary; treat as read-only).
pub fn template(fixture: Fixture) -> &'static Path {
    static TEMPLATES: [OnceLock<PathBuf>; Fixture::ALL.len()] =
        [const { OnceLock::new() }; Fixture::ALL.len()];
    TEMPLATES[fixture.index()].get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fastcp-fixtures")
            .join(fixture.name());
        sync_tree(&fixture.source_dir(), &dir).unwrap_or_else(|e| {
            panic!(
                "mirroring fixture {} into {}: {e}",
                fixture.name(),
                dir.display()
            )
        });
        for args in fixture.builds() {
            cargo_build(&dir, &args);
        }
        dir
    })
}

/// Runs the real `cargo build --offline <args>` in `dir`, panicking with its output on failure.
pub fn cargo_build<S: AsRef<OsStr>>(dir: &Path, args: &[S]) {
    let mut cmd = StdCommand::new(real_cargo());
    cmd.current_dir(dir)
        .args(["build", "--offline", "--quiet"])
        .args(args);
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("spawn cargo build");
    assert!(
        out.status.success(),
        "cargo build {:?} failed in {}\n--- stdout\n{}\n--- stderr\n{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// One test's view of a fixture workspace.
pub struct TestEnv {
    root: PathBuf,
    tmp: TempDir,
    shared: bool,
}

impl TestEnv {
    /// A fresh, *unbuilt* copy of the fixture sources.
    pub fn fixture(fixture: Fixture) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("fastcp-test-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join(fixture.name());
        copy_tree(&fixture.source_dir(), &root, &|_| false).unwrap();
        TestEnv {
            root,
            tmp,
            shared: false,
        }
    }

    /// A private copy of the *built* workspace, including the artifacts under `target/`, with
    /// mtimes and modes preserved. Cargo's internal bookkeeping (`deps/`, `incremental/`,
    /// `.fingerprint/`, `build/`) is left out: it is large and is not an artifact.
    pub fn built(fixture: Fixture) -> Self {
        Self::built_only(fixture, &[])
    }

    /// Like [`TestEnv::built`], but copies only the listed profile directories of `target/`
    /// (e.g. `"release"`, `"x86_64-unknown-linux-gnu/release"`); empty = all of them.
    pub fn built_only(fixture: Fixture, profile_dirs: &[&str]) -> Self {
        let tmpl = template(fixture);
        let tmp = tempfile::Builder::new()
            .prefix("fastcp-test-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join(fixture.name());
        let keep: Vec<PathBuf> = profile_dirs
            .iter()
            .map(|d| Path::new("target").join(d))
            .collect();
        let skip = |rel: &Path| {
            if !rel.starts_with("target") {
                return false;
            }
            let internal = rel.file_name().is_some_and(|n| {
                [
                    "deps",
                    "incremental",
                    ".fingerprint",
                    "build",
                    ".cargo-lock",
                ]
                .iter()
                .any(|s| n == OsStr::new(s))
            });
            // with a keep-list, copy only paths on the way to or inside a kept dir
            let unwanted = !keep.is_empty()
                && !keep
                    .iter()
                    .any(|k| k.starts_with(rel) || rel.starts_with(k));
            internal || unwanted
        };
        copy_tree(tmpl, &root, &skip).unwrap();
        TestEnv {
            root,
            tmp,
            shared: false,
        }
    }

    /// The shared built template itself, for read-only tests. Write outputs only to
    /// [`TestEnv::out`] (an absolute path outside the workspace).
    pub fn shared(fixture: Fixture) -> Self {
        let root = template(fixture).to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix("fastcp-test-")
            .tempdir()
            .unwrap();
        TestEnv {
            root,
            tmp,
            shared: true,
        }
    }

    /// An empty scratch directory that is not a cargo workspace at all.
    pub fn empty() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("fastcp-test-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("plain");
        fs::create_dir(&root).unwrap();
        TestEnv {
            root,
            tmp,
            shared: false,
        }
    }

    /// The workspace root (the binary's working directory).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/<rel>`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The default target dir of the workspace.
    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// A private scratch directory outside the workspace.
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// An absolute, not yet existing output directory outside the workspace.
    pub fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join("out").join(name)
    }

    /// Runs the real `cargo build --offline <args>` in this workspace.
    pub fn build(&self, args: &[&str]) {
        assert!(!self.shared, "never build inside the shared template");
        cargo_build(&self.root, args);
    }

    /// Writes a file below the workspace root (creating parents).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        assert!(!self.shared, "never modify the shared template");
        let p = self.root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        p
    }

    /// `cargo-fastcp` (no `fastcp` argument), cwd = workspace root, deterministic environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(BIN);
        cmd.current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env("CARGO_TERM_COLOR", "never")
            .env("COLUMNS", "100")
            .timeout(std::time::Duration::from_secs(120));
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd
    }

    /// `cargo-fastcp fastcp` — how cargo invokes a subcommand.
    pub fn fastcp(&self) -> assert_cmd::Command {
        let mut cmd = self.cmd();
        cmd.arg("fastcp");
        cmd
    }

    /// Runs `cargo-fastcp fastcp <args>` and captures the result.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let mut cmd = self.fastcp();
        cmd.args(args);
        Run::from_cmd(&mut cmd, args)
    }
}

/// Captured outcome of one invocation, with asserting accessors that print everything on failure.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_cmd<S: AsRef<OsStr>>(cmd: &mut assert_cmd::Command, args: &[S]) -> Run {
        let out: Output = cmd.output().expect("spawn cargo-fastcp");
        Run {
            args: args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn dump(&self) -> String {
        format!(
            "args: {:?}\nexit code: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "expected exit code {expected}\n{}",
            self.dump()
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        self.code(0)
    }

    /// Asserts stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stdout or stderr contains `needle`.
    #[track_caller]
    pub fn output_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "output should contain {needle:?}\n{}",
            self.dump()
        );
        self
    }

    /// Asserts stderr is empty.
    #[track_caller]
    pub fn stderr_empty(&self) -> &Self {
        assert!(
            self.stderr.is_empty(),
            "stderr should be empty\n{}",
            self.dump()
        );
        self
    }

    /// Parses stdout as JSON lines (every line must be a JSON object).
    #[track_caller]
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .enumerate()
            .map(|(i, line)| match serde_json::from_str::<Value>(line) {
                Ok(v) if v.is_object() => v,
                Ok(_) | Err(_) => panic!(
                    "stdout line {} is not a JSON object: {line:?}\n{}",
                    i + 1,
                    self.dump()
                ),
            })
            .collect()
    }

    /// The last non-empty line of stderr.
    pub fn last_stderr_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

// ---------------------------------------------------------------------------------------------
// File-system helpers
// ---------------------------------------------------------------------------------------------

/// Every file and symlink below `dir`, as sorted `/`-separated relative paths. Directories are not
/// listed themselves. A missing `dir` yields an empty list.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for entry in rd {
            let entry = entry.unwrap();
            let ft = entry.file_type().unwrap();
            let p = entry.path();
            if ft.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(rel_str(p.strip_prefix(base).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn rel_str(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Asserts two line sets are equal, printing expected/actual and the missing/extra lines.
#[track_caller]
pub fn assert_lines_eq<E: AsRef<str>, A: AsRef<str>>(what: &str, expected: &[E], actual: &[A]) {
    let exp: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    let act: Vec<&str> = actual.iter().map(AsRef::as_ref).collect();
    if exp == act {
        return;
    }
    panic!("{}", line_diff(what, &exp, &act));
}

/// Like [`assert_lines_eq`] but order-insensitive.
#[track_caller]
pub fn assert_set_eq<E: AsRef<str>, A: AsRef<str>>(what: &str, expected: &[E], actual: &[A]) {
    let mut exp: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
    let mut act: Vec<&str> = actual.iter().map(AsRef::as_ref).collect();
    exp.sort_unstable();
    act.sort_unstable();
    if exp == act {
        return;
    }
    panic!("{}", line_diff(what, &exp, &act));
}

/// Renders a readable diff of two line lists.
pub fn line_diff(what: &str, exp: &[&str], act: &[&str]) -> String {
    let es: BTreeSet<&str> = exp.iter().copied().collect();
    let as_: BTreeSet<&str> = act.iter().copied().collect();
    let mut s = format!("{what}: mismatch\n--- expected ({})\n", exp.len());
    for l in exp {
        let _ = writeln!(s, "    {l}");
    }
    let _ = writeln!(s, "--- actual ({})", act.len());
    for l in act {
        let _ = writeln!(s, "    {l}");
    }
    let _ = writeln!(s, "--- diff");
    for l in es.difference(&as_) {
        let _ = writeln!(s, "  - missing: {l}");
    }
    for l in as_.difference(&es) {
        let _ = writeln!(s, "  + extra:   {l}");
    }
    if es == as_ {
        let _ = writeln!(s, "  (same lines, different order or multiplicity)");
    }
    s
}

/// Asserts the tree below `dir` is exactly `expected`.
#[track_caller]
pub fn assert_tree(dir: &Path, expected: &[&str]) {
    let mut exp: Vec<&str> = expected.to_vec();
    exp.sort_unstable();
    assert_lines_eq(&format!("file tree of {}", dir.display()), &exp, &tree(dir));
}

/// Asserts `dst` is a faithful copy of `src`: same bytes, same permission bits, same mtime
/// (nanosecond-equal).
#[track_caller]
pub fn assert_same_file(src: &Path, dst: &Path) {
    let sm = fs::symlink_metadata(src).unwrap_or_else(|e| panic!("stat {}: {e}", src.display()));
    let dm = fs::symlink_metadata(dst).unwrap_or_else(|e| panic!("stat {}: {e}", dst.display()));
    assert!(
        dm.is_file(),
        "{} should be a regular file, is {:?}",
        dst.display(),
        dm.file_type()
    );
    let sb = fs::read(src).unwrap();
    let db = fs::read(dst).unwrap();
    if sb != db {
        let first = sb
            .iter()
            .zip(&db)
            .position(|(a, b)| a != b)
            .unwrap_or(sb.len().min(db.len()));
        panic!(
            "contents differ: {} ({} bytes) vs {} ({} bytes); first difference at byte {first}",
            src.display(),
            sb.len(),
            dst.display(),
            db.len()
        );
    }
    let (smode, dmode) = (
        sm.permissions().mode() & 0o7777,
        dm.permissions().mode() & 0o7777,
    );
    assert_eq!(
        smode,
        dmode,
        "mode differs: {} is {smode:o}, {} is {dmode:o}",
        src.display(),
        dst.display()
    );
    let (st, dt) = (mtime_ns(&sm), mtime_ns(&dm));
    assert_eq!(
        st,
        dt,
        "mtime differs (ns since epoch): {} = {st}, {} = {dt}",
        src.display(),
        dst.display()
    );
}

/// Asserts every file in `names` under `out` is a faithful copy of the same name under `src_dir`.
#[track_caller]
pub fn assert_copies(src_dir: &Path, out: &Path, names: &[&str]) {
    for n in names {
        assert_same_file(&src_dir.join(n), &out.join(n));
    }
}

pub fn mtime_ns(m: &fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// Asserts `out` holds what the README's quick start (`--release -o OUT README.md 'assets/**'` in
/// `examples/demo-workspace`) stages: exactly its two files and its two release artifacts,
/// faithful copies.
#[track_caller]
pub fn assert_demo_quick_start(env: &TestEnv, out: &Path) {
    let (files, artifacts) = (
        ["README.md", "assets/logo.txt"],
        ["hello-fastcp", "libdemo_ffi.so"],
    );
    assert_tree(out, &[files, artifacts].concat());
    assert_copies(env.root(), out, &files);
    assert_copies(&env.target().join("release"), out, &artifacts);
}

/// Asserts `p` is executable by its owner.
#[track_caller]
pub fn assert_executable(p: &Path) {
    let mode = fs::metadata(p).unwrap().permissions().mode();
    assert!(
        mode & 0o100 != 0,
        "{} should be executable, mode is {:o}",
        p.display(),
        mode & 0o7777
    );
}

/// Sets a file's mtime (and atime) to `secs.nanos` since the epoch.
pub fn set_mtime(p: &Path, secs: u64, nanos: u32) {
    let t = UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

pub fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Recursively copies `src` to `dst` (which must not exist), preserving modes, mtimes and
/// symlinks. `skip` gets paths relative to `src`.
pub fn copy_tree(src: &Path, dst: &Path, skip: &dyn Fn(&Path) -> bool) -> io::Result<()> {
    fn go(base: &Path, src: &Path, dst: &Path, skip: &dyn Fn(&Path) -> bool) -> io::Result<()> {
        fs::create_dir_all(dst)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let from = entry.path();
            if skip(from.strip_prefix(base).unwrap()) {
                continue;
            }
            let to = dst.join(entry.file_name());
            let ft = entry.file_type()?;
            if ft.is_dir() {
                go(base, &from, &to, skip)?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            } else {
                copy_file_preserving(&from, &to)?;
            }
        }
        let meta = fs::metadata(src)?;
        fs::set_permissions(dst, meta.permissions())?;
        set_times_from(dst, &meta)
    }
    go(src, src, dst, skip)
}

/// Copies one regular file, preserving permission bits and atime/mtime.
pub fn copy_file_preserving(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?; // copies permission bits too
    set_times_from(to, &fs::metadata(from)?)
}

fn set_times_from(p: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let times = FileTimes::new()
        .set_accessed(meta.accessed().unwrap_or(SystemTime::now()))
        .set_modified(meta.modified()?);
    // Directories can be opened read-only and still have their times set.
    File::open(p)?.set_times(times)
}

/// Makes `dst` mirror `src`, leaving `dst/target` alone and rewriting only files whose contents
/// differ (so cargo's mtime-based freshness checks keep the previous build when nothing changed).
fn sync_tree(src: &Path, dst: &Path) -> io::Result<()> {
    fn go(src: &Path, dst: &Path, top: bool) -> io::Result<()> {
        fs::create_dir_all(dst)?;
        let mut wanted = BTreeSet::new();
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            let name = entry.file_name();
            if top && name == "target" {
                continue; // a stray build in the sources must never leak into the template
            }
            wanted.insert(name.clone());
            let (from, to) = (entry.path(), dst.join(&name));
            if entry.file_type()?.is_dir() {
                if to.exists() && !to.is_dir() {
                    fs::remove_file(&to)?;
                }
                go(&from, &to, false)?;
            } else {
                if to.is_dir() {
                    fs::remove_dir_all(&to)?;
                }
                let same = fs::read(&to)
                    .ok()
                    .is_some_and(|old| old == fs::read(&from).unwrap_or_default());
                if !same {
                    fs::copy(&from, &to)?;
                }
                fs::set_permissions(&to, fs::metadata(&from)?.permissions())?;
            }
        }
        for entry in fs::read_dir(dst)? {
            let entry = entry?;
            let name = entry.file_name();
            if wanted.contains(&name) || (top && name == "target") {
                continue;
            }
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(entry.path())?;
            } else {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
    go(src, dst, true)
}

/// Resolves a path printed by the binary (absolute, or relative to `cwd`) and normalizes it
/// lexically (`.` and `..` removed).
pub fn resolve(cwd: &Path, printed: &str) -> PathBuf {
    let p = Path::new(printed);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The directory holding the binary under test (to put it on `PATH` for `cargo fastcp`).
pub fn bin_dir() -> &'static Path {
    Path::new(BIN).parent().unwrap()
}

/// Nanoseconds since the epoch of a file's mtime.
pub fn file_mtime_ns(p: &Path) -> i128 {
    mtime_ns(&fs::symlink_metadata(p).unwrap())
}

/// Seconds since the epoch, for readable messages.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
