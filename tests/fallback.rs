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

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-fastcp");

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
fn run_fastcp<S: AsRef<OsStr>>(args: &[S], deny: &[(i64, i32)]) -> Output {
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
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout (last 2 KiB) ---\n{}\n--- stderr ---\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 2048),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The `{"reason":"summary",...}` line of a JSON run.
fn summary(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    let v: Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary line\n{}", describe(out)));
    assert_eq!(
        v["reason"],
        "summary",
        "the last JSON line should be the summary\n{}",
        describe(out)
    );
    v
}

// ---------------------------------------------------------------------------------------------
// A small tree that exercises the data path (sizes around buffer boundaries) and the rest

struct Tree {
    _tmp: TempDir,
    src: PathBuf,
    scratch: PathBuf,
}

/// Deterministic, position-dependent bytes: a misplaced or repeated block changes the content.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
        fs::write(&p, pattern(len, i as u64 + 1)).unwrap();
        let t = std::time::UNIX_EPOCH
            + std::time::Duration::new(1_700_000_000 + i as u64 * 3600, 123_456_789 + i as u32);
        let f = fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(t).unwrap();
        drop(f);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
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

/// `dst` is a faithful copy of `src`: same entries, bytes, modes, mtimes (ns), symlink targets,
/// hard-link groups kept; no stray temporary file.
fn assert_copy(src: &Path, dst: &Path) {
    let mut problems = Vec::new();
    let mut stack = vec![PathBuf::new()];
    let mut src_inodes: Vec<(u64, PathBuf)> = Vec::new();
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(src.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let dst_names: Vec<_> = fs::read_dir(dst.join(&rel))
            .unwrap_or_else(|e| panic!("{}: {e}", dst.join(&rel).display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        for n in &dst_names {
            if !names.contains(n) {
                problems.push(format!(
                    "extra entry in the copy: {}",
                    rel.join(n).display()
                ));
            }
        }
        for name in names {
            let r = rel.join(&name);
            let (s, d) = (src.join(&r), dst.join(&r));
            let sm = fs::symlink_metadata(&s).unwrap();
            let dm = match fs::symlink_metadata(&d) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(format!("{}: missing ({e})", r.display()));
                    continue;
                }
            };
            if sm.file_type() != dm.file_type() {
                problems.push(format!("{}: type differs", r.display()));
                continue;
            }
            if sm.is_dir() {
                stack.push(r.clone());
            } else if sm.file_type().is_symlink() {
                if fs::read_link(&s).unwrap() != fs::read_link(&d).unwrap() {
                    problems.push(format!("{}: symlink target differs", r.display()));
                }
            } else if fs::read(&s).unwrap() != fs::read(&d).unwrap() {
                problems.push(format!("{}: content differs", r.display()));
            }
            if !sm.file_type().is_symlink() && sm.mode() & 0o7777 != dm.mode() & 0o7777 {
                problems.push(format!(
                    "{}: mode {:o} -> {:o}",
                    r.display(),
                    sm.mode() & 0o7777,
                    dm.mode() & 0o7777
                ));
            }
            let (st, dt) = ((sm.mtime(), sm.mtime_nsec()), (dm.mtime(), dm.mtime_nsec()));
            if st != dt {
                problems.push(format!("{}: mtime {st:?} -> {dt:?}", r.display()));
            }
            if sm.is_file() && sm.nlink() > 1 {
                src_inodes.push((sm.ino(), r.clone()));
            }
        }
    }
    // Hard-link groups: same source inode -> same destination inode.
    src_inodes.sort();
    for pair in src_inodes.windows(2) {
        if pair[0].0 == pair[1].0 {
            let a = fs::metadata(dst.join(&pair[0].1)).unwrap().ino();
            let b = fs::metadata(dst.join(&pair[1].1)).unwrap().ino();
            if a != b {
                problems.push(format!(
                    "hard link lost: {} and {} are separate files in the copy",
                    pair[0].1.display(),
                    pair[1].1.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} is not a faithful copy of {}:\n  {}",
        dst.display(),
        src.display(),
        problems.join("\n  ")
    );
}

/// Files (not directories) and data bytes the tree holds, as the summary counts them.
fn expected_counts(src: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            files += 1;
            if m.is_file() && seen.insert(m.ino()) {
                bytes += m.len();
            }
        }
    }
    (files, bytes)
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

/// Under a filter denying `deny`: `auto` copies byte-exact with the portable engine and `-v` says
/// why; `--engine io-uring` exits 2, writes nothing, and names io_uring and the failure.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn check_fallback(case: &str, deny: &[(i64, i32)]) {
    let t = tree();
    let src = t.src.as_os_str();

    // 1. auto falls back, the copy is exact, the summary names the portable engine.
    let out = t.out(&format!("{case}-auto"));
    let run = run_fastcp(
        &[
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--from"),
            src,
            OsStr::new("**"),
            OsStr::new("--message-format"),
            OsStr::new("json"),
        ],
        deny,
    );
    assert!(
        run.status.success(),
        "[{case}] `--engine auto` under the filter should succeed\n{}",
        describe(&run)
    );
    let s = summary(&run);
    assert_eq!(
        s["engine"],
        "portable",
        "[{case}] with io_uring denied, auto must report the fallback engine\n{}",
        describe(&run)
    );
    let (files, bytes) = expected_counts(&t.src);
    assert_eq!(s["errors"], 0, "[{case}] {s}");
    assert_eq!(s["files"], files, "[{case}] files in summary: {s}");
    assert_eq!(s["bytes"], bytes, "[{case}] bytes in summary: {s}");
    assert_copy(&t.src, &out);

    // 2. -v explains the choice (human output, stderr).
    let out_v = t.out(&format!("{case}-verbose"));
    let run = run_fastcp(
        &[
            OsStr::new("-o"),
            out_v.as_os_str(),
            OsStr::new("--from"),
            src,
            OsStr::new("**"),
            OsStr::new("-v"),
        ],
        deny,
    );
    assert!(run.status.success(), "[{case}] -v run\n{}", describe(&run));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("engine: portable") && err.contains("io_uring"),
        "[{case}] -v should say the portable engine was chosen because io_uring is unavailable\n{}",
        describe(&run)
    );
    assert!(
        err.contains("[engine: portable]"),
        "[{case}] the summary line should name the portable engine\n{}",
        describe(&run)
    );
    assert_copy(&t.src, &out_v);

    // 3. Asking for io-uring explicitly is a clear error: exit 2, nothing written.
    let out_u = t.out(&format!("{case}-io-uring"));
    let run = run_fastcp(
        &[
            OsStr::new("-o"),
            out_u.as_os_str(),
            OsStr::new("--from"),
            src,
            OsStr::new("**"),
            OsStr::new("--engine"),
            OsStr::new("io-uring"),
        ],
        deny,
    );
    assert_eq!(
        run.status.code(),
        Some(2),
        "[{case}] --engine io-uring under the filter must exit 2\n{}",
        describe(&run)
    );
    assert!(
        !out_u.exists(),
        "[{case}] --engine io-uring failed but wrote {}",
        out_u.display()
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.starts_with("error:") && (err.contains("io-uring") || err.contains("io_uring")),
        "[{case}] the error should start with `error:` and name io-uring\n{}",
        describe(&run)
    );
    let errno = deny[0].1;
    let words = errno_words(errno);
    assert!(
        words.iter().any(|w| err.contains(w.as_str())),
        "[{case}] the error should say why io_uring is unavailable (one of {words:?}: the errno \
         the kernel returned)\n{}",
        describe(&run)
    );
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_setup_enosys_falls_back_to_portable() {
    // A kernel built without CONFIG_IO_URING, or a seccomp profile answering ENOSYS (Docker's).
    check_fallback("setup-ENOSYS", &[(seccomp::IO_URING_SETUP, libc::ENOSYS)]);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_setup_eperm_falls_back_to_portable() {
    // kernel.io_uring_disabled=2 (or =1 outside io_uring_group), or an EPERM seccomp profile.
    check_fallback("setup-EPERM", &[(seccomp::IO_URING_SETUP, libc::EPERM)]);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_enter_denied_falls_back_to_portable() {
    // Partial denial: the ring can be set up but never entered. The probe must submit and reap
    // a NOP to notice this; setting up a ring alone proves nothing.
    check_fallback("enter-EPERM", &[(seccomp::IO_URING_ENTER, libc::EPERM)]);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn io_uring_register_denied_falls_back_to_portable() {
    // Partial denial of registration (the buffer ring needs io_uring_register).
    check_fallback(
        "register-EPERM",
        &[(seccomp::IO_URING_REGISTER, libc::EPERM)],
    );
}

/// The filter itself works: a raw `io_uring_setup` in a filtered child fails with the errno.
/// (If this fails, the fallback cases above prove nothing.)
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn the_filter_denies_io_uring_setup() {
    for errno in [libc::ENOSYS, libc::EPERM] {
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
                    let r =
                        unsafe { libc::syscall(seccomp::IO_URING_SETUP, 1, params.as_mut_ptr()) };
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
}

/// Whether this kernel and process allow io_uring at all, and if not, why.
fn io_uring_allowed_here() -> Result<(), String> {
    match fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(v) if v.trim() != "0" => {
            return Err(format!(
                "/proc/sys/kernel/io_uring_disabled is {}",
                v.trim()
            ));
        }
        _ => {}
    }
    let mut params = [0u8; 120]; // struct io_uring_params
                                 // SAFETY: io_uring_setup(1, &params) returns a new fd or -1; the fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(format!(
            "io_uring_setup fails in this process: {} (a container's seccomp profile?)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: closing the fd io_uring_setup just returned.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Control: with nothing denied, on a kernel that allows io_uring, `auto` picks io_uring, and the
/// copy is exact.
#[test]
fn auto_picks_io_uring_where_the_kernel_allows_it() {
    if let Err(why) = io_uring_allowed_here() {
        eprintln!("skipped: io_uring is not available on this machine ({why})");
        return;
    }
    let t = tree();
    let out = t.out("control");
    let run = run_fastcp(
        &[
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new("--from"),
            t.src.as_os_str(),
            OsStr::new("**"),
            OsStr::new("--message-format"),
            OsStr::new("json"),
        ],
        &[],
    );
    assert!(run.status.success(), "control run\n{}", describe(&run));
    let s = summary(&run);
    assert_eq!(
        s["engine"],
        "io-uring",
        "io_uring works on this machine (io_uring_setup succeeds in the test process), so \
         `--engine auto` should pick it\n{}",
        describe(&run)
    );
    assert_eq!(s["errors"], 0, "{s}");
    assert_copy(&t.src, &out);
}
