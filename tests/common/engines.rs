//! Engines and copy methods as named test cases, and whether io_uring may be skipped.
//!
//! `method_cases!(name)` / `engine_cases!(name)` turn `fn name(v: Variant)` into one `#[test]`
//! per variant (`name::case_portable`, `name::case_io_uring_splice`, …), so a failure names the
//! engine (ripgrep's `rgtest!`, xcp's `test_case`). An io-uring case prints `SKIP` and
//! passes where the binary says io-uring is unavailable, unless `CARGO_FASTCP_REQUIRE_URING=1`
//! (set by `.ci/run`): then it fails.

use std::fmt;
use std::fs;
use std::sync::OnceLock;

use super::process::{bin_command, run_cmd, skip};

/// Whether io-uring variants must run (`CARGO_FASTCP_REQUIRE_URING` set, and not to `0`).
pub fn uring_required() -> bool {
    std::env::var_os("CARGO_FASTCP_REQUIRE_URING").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Why the binary says `--engine io-uring` cannot run here, if it does. Any other failure of the
/// check (not exit 2 with "not available") panics: the check itself is broken then.
pub fn io_uring_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("fastcp-uring-check-")
            .tempdir()
            .expect("tempdir");
        fs::write(dir.path().join("f"), "x").unwrap();
        let mut c = bin_command(dir.path());
        c.args(["--dry-run", "--engine", "io-uring", "-q", "-o", "out"])
            .args(["--from", ".", "f"]);
        let d = run_cmd(c);
        if d.code() == Some(0) {
            return None;
        }
        let why = d.stderr.trim().to_string();
        assert!(
            d.code() == Some(2) && why.contains("not available"),
            "the io-uring availability check failed in an unexpected way\n{}",
            d.describe()
        );
        Some(why)
    })
    .as_deref()
}

/// Why this kernel and process refuse io_uring, if they do: the sysctl, then a raw
/// `io_uring_setup` in the test process itself (independent of the binary's own probe).
#[cfg(target_os = "linux")]
pub fn kernel_refuses_io_uring() -> Option<String> {
    match fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(v) if v.trim() != "0" => {
            return Some(format!(
                "/proc/sys/kernel/io_uring_disabled is {}",
                v.trim()
            ))
        }
        _ => {}
    }
    let mut params = [0u8; 120]; // struct io_uring_params
                                 // SAFETY: io_uring_setup(1, &params) returns a new fd or -1; the fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
    if fd < 0 {
        return Some(format!(
            "io_uring_setup fails in this process: {} (a container's seccomp profile?)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: closing the fd io_uring_setup just returned.
    unsafe { libc::close(fd as i32) };
    None
}

/// Gate for a test (or part of one) that needs io_uring, given why it is unavailable (`None`:
/// it is available). Prints `SKIP` and returns false; under [`uring_required`] it panics.
#[track_caller]
pub fn io_uring_gate(test: &str, unavailable: Option<&str>) -> bool {
    match unavailable {
        None => true,
        Some(why) if uring_required() => panic!(
            "{test}: io_uring is required here (CARGO_FASTCP_REQUIRE_URING is set) but it is \
             unavailable: {why}"
        ),
        Some(why) => {
            skip(test, &format!("io_uring is not available here: {why}"));
            false
        }
    }
}

/// [`io_uring_gate`] with the binary's own answer ([`io_uring_unavailable`]).
#[track_caller]
pub fn io_uring_runs_here(test: &str) -> bool {
    io_uring_gate(test, io_uring_unavailable())
}

/// One engine, and for io-uring one way to move bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Portable,
    /// `--engine io-uring --copy-method auto`: the method picked by file size (the default).
    IoUringAuto,
    IoUringBufferRing,
    IoUringCopyFileRange,
    IoUringSplice,
}

impl Variant {
    /// Every engine and copy method (what [`method_cases!`] names).
    pub const ALL: [Variant; 5] = [
        Variant::Portable,
        Variant::IoUringAuto,
        Variant::IoUringBufferRing,
        Variant::IoUringCopyFileRange,
        Variant::IoUringSplice,
    ];

    /// The engine as the summary names it.
    pub fn engine(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            _ => "io-uring",
        }
    }

    /// The `--copy-method` of an io-uring variant.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Variant::Portable => None,
            Variant::IoUringAuto => Some("auto"),
            Variant::IoUringBufferRing => Some("buffer-ring"),
            Variant::IoUringCopyFileRange => Some("copy-file-range"),
            Variant::IoUringSplice => Some("splice"),
        }
    }

    /// The binary's flags for this variant.
    pub fn args(self) -> Vec<&'static str> {
        let mut v = vec!["--engine", self.engine()];
        if let Some(m) = self.method() {
            v.extend(["--copy-method", m]);
        }
        v
    }

    pub fn is_io_uring(self) -> bool {
        self != Variant::Portable
    }

    /// Whether this variant runs here (see [`io_uring_runs_here`]).
    #[track_caller]
    pub fn runs_here(self, test: &str) -> bool {
        !self.is_io_uring() || io_uring_runs_here(test)
    }
}

/// `portable`, `io-uring+auto`, `io-uring+splice`, …: for out-dir names and messages.
impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.method() {
            None => f.write_str(self.engine()),
            Some(m) => write!(f, "{}+{m}", self.engine()),
        }
    }
}

/// `variant_cases!(name; case_a => VariantA, …)`: next to `fn name(v: Variant)`, a module `name`
/// with one `#[test]` per listed case that calls it (a function and a module may share a name).
/// The body stays an ordinary function, so rustfmt and clippy see it. Use [`engine_cases!`] or
/// [`method_cases!`].
#[macro_export]
macro_rules! variant_cases {
    ($name:ident; $($case:ident => $variant:ident),+ $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $case() {
                    let v = $crate::common::Variant::$variant;
                    if v.runs_here(concat!(stringify!($name), "::", stringify!($case))) {
                        super::$name(v);
                    }
                }
            )+
        }
    };
}

/// `engine_cases!(name)`: `fn name(v: Variant)` as one test per engine, `name::case_portable` and
/// `name::case_io_uring` (its default method).
#[macro_export]
macro_rules! engine_cases {
    ($name:ident) => {
        $crate::variant_cases!($name; case_portable => Portable, case_io_uring => IoUringAuto);
    };
}

/// `method_cases!(name)`: `fn name(v: Variant)` as one test per engine and copy method:
/// `name::case_portable`, `case_io_uring_auto`, `case_io_uring_buffer_ring`,
/// `case_io_uring_copy_file_range`, `case_io_uring_splice`.
#[macro_export]
macro_rules! method_cases {
    ($name:ident) => {
        $crate::variant_cases!(
            $name;
            case_portable => Portable,
            case_io_uring_auto => IoUringAuto,
            case_io_uring_buffer_ring => IoUringBufferRing,
            case_io_uring_copy_file_range => IoUringCopyFileRange,
            case_io_uring_splice => IoUringSplice,
        );
    };
}
