//! Running processes: the binary under test with a clean environment, children whose output is
//! drained while they run, a time limit on every wait, readable failure messages, and the real
//! `cargo` found once by absolute path.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{BIN, SCRUBBED_ENV};

/// Generous limit for any single run; a hang fails the test instead of stalling CI.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Says why (part of) a test did not run, on the real stderr: libtest captures only the print
/// macros, so this shows up in `cargo test` output even for a passing test.
pub fn skip(test: &str, reason: &str) {
    let _ = writeln!(io::stderr(), "SKIP {test}: {reason}");
}

/// [`skip`], except in CI ([`in_ci`]): what the test needs (root, a mount, a tool) is part of the
/// CI machine, so its absence there is a failure, not a skip.
#[track_caller]
pub fn skip_outside_ci(test: &str, reason: &str) {
    assert!(!in_ci(), "{test} must run in CI but cannot: {reason}");
    skip(test, reason)
}

/// The running test's name (libtest names each test's thread after it): for `SKIP` lines and
/// notes, without a constant that repeats the function's name.
pub fn this_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned()
}

/// A line for the test log, after the running test's name (on the real stderr, like [`skip`]).
pub fn note(line: &str) {
    let _ = writeln!(io::stderr(), "{}: {line}", this_test());
}

/// Whether this runs in CI (`CI` set to anything but empty, `0` or `false`, as CI services do).
/// There a missing tool is a broken setup, not a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The binary under test, run in `cwd`, without the environment that would redirect cargo away
/// from the test's own workspace.
pub fn bin_command(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd);
    for v in SCRUBBED_ENV {
        c.env_remove(v);
    }
    c
}

/// The real `cargo`, by absolute path: `CARGO` (set by cargo for its tests), else the first
/// `cargo` on `PATH`, resolved once, before any test puts a stand-in `cargo` on a child's `PATH`.
pub fn real_cargo() -> &'static Path {
    static CARGO: OnceLock<PathBuf> = OnceLock::new();
    CARGO.get_or_init(|| {
        find_cargo(std::env::var_os("CARGO"), std::env::var_os("PATH")).unwrap_or_else(|| {
            panic!("cargo not found: CARGO is unset and no executable `cargo` is on PATH")
        })
    })
}

/// [`real_cargo`]'s rule, for given values of `CARGO` and `PATH`.
pub fn find_cargo(cargo: Option<OsString>, path: Option<OsString>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(c) = cargo.filter(|c| !c.is_empty()) {
        return Some(PathBuf::from(c));
    }
    std::env::split_paths(&path?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("cargo"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A spawned run whose stdout and stderr are drained by threads (a chatty child never blocks).
pub struct Proc {
    child: Child,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

/// The outcome of a finished process.
pub struct Done {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Done {
    fn from(out: Output) -> Done {
        Done {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Done {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn describe(&self) -> String {
        describe_output(&self.status, &self.stdout, &self.stderr)
    }

    /// Every non-empty stdout line, parsed as JSON.
    pub fn json(&self) -> Vec<Value> {
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
    pub fn expect_code(&self, code: i32, what: impl std::fmt::Display) {
        assert_eq!(self.code(), Some(code), "{what}: {}", self.describe());
    }

    /// The `failed` JSON lines of a `--message-format json` run: source path → error text.
    pub fn failures(&self) -> std::collections::HashMap<String, String> {
        reason(&self.json(), "failed")
            .into_iter()
            .map(|l| {
                let text = |k: &str| l[k].as_str().unwrap_or("").to_string();
                (text("src"), text("error"))
            })
            .collect()
    }
}

/// Status, stdout and stderr for an assertion message. A long stdout (a JSON run over thousands
/// of files) is cut to its first 40 lines that are not `copied` records and its last 2 KiB.
pub fn describe_output(status: &ExitStatus, stdout: &str, stderr: &str) -> String {
    const LONG: usize = 16 << 10;
    if stdout.len() <= LONG {
        return format!("status {status:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    }
    let lines: Vec<&str> = stdout.lines().collect();
    let interesting: Vec<&str> = lines
        .iter()
        .filter(|l| !l.contains(r#""reason":"copied""#))
        .take(40)
        .copied()
        .collect();
    format!(
        "status {status:?}\n--- stdout ({} lines; all but `copied` lines, first 40)\n{}\n--- stdout \
         (last 2 KiB)\n{}\n--- stderr\n{stderr}",
        lines.len(),
        interesting.join("\n"),
        tail(stdout, 2048),
    )
}

/// The last `n` bytes of `s` (or a little less, at a character boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Starts `cmd` with stdin closed and its output drained.
pub fn spawn(mut cmd: Command) -> Proc {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    Proc { child, out, err }
}

/// Runs `cmd` to its end (at most [`RUN_LIMIT`]).
pub fn run_cmd(cmd: Command) -> Done {
    spawn(cmd).wait()
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits at most `limit`; on time-out kills the child and returns `Err` with its output.
    pub fn wait_within(mut self, limit: Duration) -> Result<Done, String> {
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
        let take = |h: Option<JoinHandle<Vec<u8>>>| {
            let bytes = h.map(|h| h.join().unwrap()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let (stdout, stderr) = (take(self.out.take()), take(self.err.take()));
        match status {
            Some(status) => Ok(Done {
                status,
                stdout,
                stderr,
            }),
            None => Err(format!(
                "still running after {limit:?}; killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            )),
        }
    }

    /// Waits at most [`RUN_LIMIT`], panicking on time-out.
    pub fn wait(self) -> Done {
        self.wait_within(RUN_LIMIT)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Sends `sig` to a child we spawned and have not reaped.
pub fn send_signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

// ---------------------------------------------------------------------------------------------
// JSON lines

/// The last line, which must be the `summary`.
#[track_caller]
pub fn summary_of(lines: &[Value]) -> &Value {
    let last = lines.last().expect("no JSON output");
    assert_eq!(
        last["reason"], "summary",
        "last line is the summary: {last}"
    );
    last
}

/// The lines whose `reason` is `r`.
pub fn reason<'a>(lines: &'a [Value], r: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["reason"] == r).collect()
}
