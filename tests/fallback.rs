//! The io_uring → portable fallback, proven against the real binary.
//!
//! Each case runs `cargo-fastcp` in a child process under a seccomp filter (installed in
//! `pre_exec`: `PR_SET_NO_NEW_PRIVS`, then `seccomp(SECCOMP_SET_MODE_FILTER)`) that makes chosen
//! io_uring syscalls fail with a chosen errno, the way container runtimes and hardened kernels
//! do. `--engine auto` must then copy everything byte-exact through the portable engine and say
//! so in the JSON summary; `--engine io-uring` must exit 2, write nothing and say why.
//!
//! A control case runs without a filter: where the kernel allows io_uring, `auto` must pick it.
#![cfg(target_os = "linux")]
// The seccomp cases are built for x86_64 and aarch64 only.
#![cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_faithful_copy, bytes, counts, io_uring_gate, kernel_refuses_io_uring, put, set_mode,
    summary_of, Done, BIN,
};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// The seccomp filter

/// Classic BPF + seccomp plumbing. The constants not in `libc` come from
/// `<linux/audit.h>` (`AUDIT_ARCH_*`) and `<linux/seccomp.h>` (`struct seccomp_data` layout).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod seccomp {
    use std::io;

    /// `seccomp_data.arch` of the architecture this test was built for.
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64 = EM_X86_64 | 64BIT | LE
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64 = EM_AARCH64 | 64BIT | LE

    /// The io_uring syscalls (same numbers, 425..427, on x86_64 and aarch64).
    pub const IO_URING_SETUP: i64 = libc::SYS_io_uring_setup;
    pub const IO_URING_ENTER: i64 = libc::SYS_io_uring_enter;
    pub const IO_URING_REGISTER: i64 = libc::SYS_io_uring_register;

    /// Offsets into `struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }`.
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;

    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt,
            jf,
            k,
        }
    }

    /// A program that fails each `(syscall, errno)` in `deny` with that errno and allows every
    /// other syscall of this architecture. A syscall of a foreign architecture kills the process
    /// (the binary never makes one; a filter that silently let one through would prove nothing).
    pub fn program(deny: &[(i64, i32)]) -> Vec<libc::sock_filter> {
        let ld_abs = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
        let ret = libc::BPF_RET | libc::BPF_K;
        let mut p = vec![
            stmt(ld_abs, OFF_ARCH),
            jeq(AUDIT_ARCH, 1, 0),
            stmt(ret, libc::SECCOMP_RET_KILL_PROCESS),
            stmt(ld_abs, OFF_NR),
        ];
        for &(nr, errno) in deny {
            p.push(jeq(nr as u32, 0, 1));
            p.push(stmt(
                ret,
                libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
            ));
        }
        p.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
        p
    }

    /// Installs `prog` on the calling thread (and everything it execs). Only async-signal-safe
    /// calls: this runs in the forked child, between `fork` and `exec`.
    pub fn install(prog: &[libc::sock_filter]) -> io::Result<()> {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: plain prctl/seccomp syscalls; `fprog` points at `prog`, alive for the call.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            let flags: libc::c_ulong = 0;
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Runs the binary with `args`, under a filter denying `deny` when it is non-empty.
fn run_fastcp<S: AsRef<OsStr>>(args: &[S], deny: &[(i64, i32)]) -> Done {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("CARGO_TARGET_DIR");
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if !deny.is_empty() {
        use std::os::unix::process::CommandExt;
        let prog = seccomp::program(deny);
        // SAFETY: the closure only makes raw syscalls on memory built before the fork.
        unsafe {
            cmd.pre_exec(move || seccomp::install(&prog));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    assert!(
        deny.is_empty(),
        "seccomp cases are built for x86_64/aarch64 only"
    );
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
        .into()
}

/// The `{"reason":"summary",...}` line of a JSON run.
fn summary(run: &Done) -> Value {
    summary_of(&run.json()).clone()
}

// ---------------------------------------------------------------------------------------------
// A small tree that exercises the data path (sizes around buffer boundaries) and the rest

struct Tree {
    _tmp: TempDir,
    src: PathBuf,
    scratch: PathBuf,
}

fn tree() -> Tree {
    let tmp = tempfile::Builder::new()
        .prefix("fallback-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    let src = tmp.path().join("src");
    let scratch = tmp.path().join("out");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir_all(&scratch).unwrap();
    let files: &[(&str, usize, u32)] = &[
        ("empty", 0, 0o644),
        ("one", 1, 0o644),
        ("tool", 4096, 0o755),
        ("sub/64k-1", (64 << 10) - 1, 0o644),
        ("sub/64k", 64 << 10, 0o600),
        ("sub/64k+1", (64 << 10) + 1, 0o444),
        ("sub/deeper/1m+1", (1 << 20) + 1, 0o755),
        ("sub/deeper/3m+17", (3 << 20) + 17, 0o700),
    ];
    for (i, &(rel, len, mode)) in files.iter().enumerate() {
        let p = src.join(rel);
        put(&p, &bytes(len, i as u64 + 1));
        let t = std::time::UNIX_EPOCH
            + std::time::Duration::new(1_700_000_000 + i as u64 * 3600, 123_456_789 + i as u32);
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(t).unwrap();
        drop(f);
        set_mode(&p, mode);
    }
    fs::hard_link(src.join("tool"), src.join("sub/tool-link")).unwrap();
    std::os::unix::fs::symlink("../tool", src.join("sub/tool-sym")).unwrap();
    std::os::unix::fs::symlink("no/such/file", src.join("dangling")).unwrap();
    Tree {
        _tmp: tmp,
        src,
        scratch,
    }
}

impl Tree {
    fn out(&self, name: &str) -> PathBuf {
        let p = self.scratch.join(name);
        assert!(!p.exists(), "{} is reused", p.display());
        p
    }
}

fn errno_words(errno: i32) -> Vec<String> {
    let name = match errno {
        libc::ENOSYS => "ENOSYS",
        libc::EPERM => "EPERM",
        _ => "",
    };
    vec![
        std::io::Error::from_raw_os_error(errno)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_string(),
        format!("os error {errno}"),
        name.to_string(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

// ---------------------------------------------------------------------------------------------
// The cases

/// `-o OUT --from SRC ** EXTRA…`.
fn copy_args<'a>(out: &'a Path, src: &'a Path, extra: &'a [&'a str]) -> Vec<&'a OsStr> {
    let mut v = vec![
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--from"),
        src.as_os_str(),
        OsStr::new("**"),
    ];
    v.extend(extra.iter().map(OsStr::new));
    v
}

/// Under a filter denying `deny`, `auto` falls back: the copy is exact and the summary names
/// the portable engine.
fn auto_falls_back(case: &str, deny: &[(i64, i32)]) {
    let t = tree();
    let out = t.out(&format!("{case}-auto"));
    let run = run_fastcp(
        &copy_args(&out, &t.src, &["--message-format", "json"]),
        deny,
    );
    assert!(
        run.status.success(),
        "[{case}] `--engine auto` under the filter should succeed\n{}",
        run.describe()
    );
    let s = summary(&run);
    assert_eq!(
        s["engine"],
        "portable",
        "[{case}] with io_uring denied, auto must report the fallback engine\n{}",
        run.describe()
    );
    let (files, bytes) = counts(&t.src);
    assert_eq!(s["errors"], 0, "[{case}] {s}");
    assert_eq!(s["files"], files, "[{case}] files in summary: {s}");
    assert_eq!(s["bytes"], bytes, "[{case}] bytes in summary: {s}");
    assert_faithful_copy(&t.src, &out);
}

/// Under a filter denying `deny`, `auto -v` explains the choice (human output, stderr).
fn auto_verbose_says_why(case: &str, deny: &[(i64, i32)]) {
    let t = tree();
    let out_v = t.out(&format!("{case}-verbose"));
    let run = run_fastcp(&copy_args(&out_v, &t.src, &["-v"]), deny);
    assert!(run.status.success(), "[{case}] -v run\n{}", run.describe());
    let err = &run.stderr;
    assert!(
        err.contains("engine: portable") && err.contains("io_uring"),
        "[{case}] -v should say the portable engine was chosen because io_uring is unavailable\n{}",
        run.describe()
    );
    assert!(
        err.contains("[engine: portable]"),
        "[{case}] the summary line should name the portable engine\n{}",
        run.describe()
    );
    assert_faithful_copy(&t.src, &out_v);
}

/// Under a filter denying `deny`, asking for io-uring explicitly is a clear error: exit 2,
/// nothing written, io-uring and the errno named.
fn io_uring_is_refused(case: &str, deny: &[(i64, i32)]) {
    let t = tree();
    let out_u = t.out(&format!("{case}-io-uring"));
    let run = run_fastcp(&copy_args(&out_u, &t.src, &["--engine", "io-uring"]), deny);
    assert_eq!(
        run.code(),
        Some(2),
        "[{case}] --engine io-uring under the filter must exit 2\n{}",
        run.describe()
    );
    assert!(
        !out_u.exists(),
        "[{case}] --engine io-uring failed but wrote {}",
        out_u.display()
    );
    let err = &run.stderr;
    assert!(
        err.starts_with("error:") && (err.contains("io-uring") || err.contains("io_uring")),
        "[{case}] the error should start with `error:` and name io-uring\n{}",
        run.describe()
    );
    let errno = deny[0].1;
    let words = errno_words(errno);
    assert!(
        words.iter().any(|w| err.contains(w.as_str())),
        "[{case}] the error should say why io_uring is unavailable (one of {words:?}: the errno \
         the kernel returned)\n{}",
        run.describe()
    );
}

/// One denial as named cases: `case_auto` (falls back, exact copy), `case_auto_verbose` (`-v`
/// says why) and `case_io_uring` (exit 2, nothing written, the errno named).
macro_rules! denial_cases {
    ($(#[$meta:meta])* $name:ident: $syscall:ident => $errno:ident) => {
        $(#[$meta])*
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        mod $name {
            use super::*;

            const DENY: &[(i64, i32)] = &[(seccomp::$syscall, libc::$errno)];
            const CASE: &str = concat!(stringify!($syscall), "-", stringify!($errno));

            #[test]
            fn case_auto() {
                auto_falls_back(CASE, DENY);
            }

            #[test]
            fn case_auto_verbose() {
                auto_verbose_says_why(CASE, DENY);
            }

            #[test]
            fn case_io_uring() {
                io_uring_is_refused(CASE, DENY);
            }
        }
    };
}

denial_cases! {
    /// A kernel built without CONFIG_IO_URING, or a seccomp profile answering ENOSYS (Docker's).
    io_uring_setup_enosys_falls_back_to_portable: IO_URING_SETUP => ENOSYS
}

denial_cases! {
    /// kernel.io_uring_disabled=2 (or =1 outside io_uring_group), or an EPERM seccomp profile.
    io_uring_setup_eperm_falls_back_to_portable: IO_URING_SETUP => EPERM
}

denial_cases! {
    /// Partial denial: the ring can be set up but never entered. The probe must submit and reap
    /// a NOP to notice this; setting up a ring alone proves nothing.
    io_uring_enter_denied_falls_back_to_portable: IO_URING_ENTER => EPERM
}

denial_cases! {
    /// Partial denial of registration (the buffer ring needs io_uring_register).
    io_uring_register_denied_falls_back_to_portable: IO_URING_REGISTER => EPERM
}

/// The filter itself works: a raw `io_uring_setup` in a filtered child fails with the errno.
/// (If this fails, the fallback cases above prove nothing.)
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn filter_denies_io_uring_setup(errno: i32) {
    let prog = seccomp::program(&[(seccomp::IO_URING_SETUP, errno)]);
    // SAFETY: fork in a test process; the child only makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = match seccomp::install(&prog) {
            Err(_) => 100,
            Ok(()) => {
                let mut params = [0u8; 120]; // struct io_uring_params
                                             // SAFETY: io_uring_setup(1, &params); a raw syscall.
                let r = unsafe { libc::syscall(seccomp::IO_URING_SETUP, 1, params.as_mut_ptr()) };
                let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if r < 0 && e == errno {
                    0
                } else {
                    101
                }
            }
        };
        // SAFETY: leave the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the seccomp filter did not make io_uring_setup fail with errno {errno} (child status \
         {status:#x}: 100 = filter not installed, 101 = syscall not denied)"
    );
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod the_filter_denies_io_uring_setup {
    use super::*;

    #[test]
    fn case_enosys() {
        filter_denies_io_uring_setup(libc::ENOSYS);
    }

    #[test]
    fn case_eperm() {
        filter_denies_io_uring_setup(libc::EPERM);
    }
}

/// Control: with nothing denied, on a kernel that allows io_uring, `auto` picks io_uring, and the
/// copy is exact. Where the kernel refuses io_uring this prints SKIP, or fails under
/// `CARGO_FASTCP_REQUIRE_URING=1`.
#[test]
fn auto_picks_io_uring_where_the_kernel_allows_it() {
    let name = "auto_picks_io_uring_where_the_kernel_allows_it";
    if !io_uring_gate(name, kernel_refuses_io_uring().as_deref()) {
        return;
    }
    let t = tree();
    let out = t.out("control");
    let run = run_fastcp(&copy_args(&out, &t.src, &["--message-format", "json"]), &[]);
    assert!(run.status.success(), "control run\n{}", run.describe());
    let s = summary(&run);
    assert_eq!(
        s["engine"],
        "io-uring",
        "io_uring works on this machine (io_uring_setup succeeds in the test process), so \
         `--engine auto` should pick it\n{}",
        run.describe()
    );
    assert_eq!(s["errors"], 0, "{s}");
    assert_faithful_copy(&t.src, &out);
}
