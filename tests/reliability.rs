//! Reliability proofs (issue 5): every failure case ends in a correct result or a clear error that
//! names the path and the cause, and nothing is lost. Each test runs the real binary; the table in
//! `docs/reliability.md` maps every case to its tests here.
//!
//! Cases that touch the data path (2, 5, 6, 7, 8, 12) run with `--engine portable` and again with
//! `--engine io-uring` (cases 2 and 5-8: with each `--copy-method`) when that engine is available
//! here; otherwise that variant is skipped with a reason printed on stderr (straight to the file
//! descriptor, so `cargo test` shows it). The same goes for setups that need root (privilege
//! drop, tmpfs and tracefs mounts) or strace.
#![cfg(unix)]

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{
    as_nobody, assert_final_files_whole, assert_no_temps, bin_command, bytes, entries,
    io_uring_runs_here, is_root, mount, nobody_sh, note, put, reason, run_cmd, send_signal, skip,
    spawn, summary_of, this_test, umount_lazy, Done, Scratch, Tmpfs, Variant, BIN, NOBODY,
};
use serde_json::Value;
use tempfile::TempDir;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_check;

fn tmp() -> TempDir {
    tempfile::Builder::new()
        .prefix("fastcp-rel-")
        .tempdir()
        .expect("tempdir")
}

/// `cargo-fastcp -o OUT --from FROM ARGS... ` in `cwd`, waited for.
fn copy(cwd: &Path, from: &Path, out: &Path, args: &[&str]) -> Done {
    let mut c = bin_command(cwd);
    c.arg("-o").arg(out).arg("--from").arg(from).args(args);
    run_cmd(c)
}

// =============================================================================================
// Case 1: source missing / artifact not built
// =============================================================================================

/// A tiny one-bin workspace, never built.
fn tiny_workspace(root: &Path) -> PathBuf {
    let ws = root.join("ws");
    put(
        &ws.join("Cargo.toml"),
        b"[package]\nname = \"tiny-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n\n[workspace]\n",
    );
    put(&ws.join("src/main.rs"), b"fn main() {}\n");
    ws
}

#[test]
fn case01_unbuilt_artifact_exits_2_before_any_write_naming_path_and_build_command() {
    let t = tmp();
    let ws = tiny_workspace(t.path());
    for (flags, dir, build) in [
        (
            &[][..],
            "debug",
            "cargo build --manifest-path ws/Cargo.toml -p tiny-app --bin tiny-app",
        ),
        (
            &["--release"][..],
            "release",
            "cargo build --manifest-path ws/Cargo.toml --release -p tiny-app --bin tiny-app",
        ),
    ] {
        let out = t.path().join("dist/nested");
        let mut c = bin_command(t.path());
        c.args(["--manifest-path", "ws/Cargo.toml", "-o", "dist/nested"])
            .args(flags);
        let d = run_cmd(c);
        d.expect_code(2, "an unbuilt artifact is a planning error");
        let artifact = ws.join("target").join(dir).join("tiny-app");
        let artifact_real = fs::canonicalize(&ws)
            .unwrap()
            .join("target")
            .join(dir)
            .join("tiny-app");
        assert!(
            d.stderr.contains(&*artifact.to_string_lossy())
                || d.stderr.contains(&*artifact_real.to_string_lossy()),
            "names the missing artifact {}: {}",
            artifact.display(),
            d.describe()
        );
        assert!(
            d.stderr.contains(build),
            "names the command that builds it (`{build}`): {}",
            d.describe()
        );
        assert!(d.stderr.contains("not built"), "{}", d.describe());
        assert!(!out.exists(), "out-dir was created: {}", d.describe());
        assert!(
            !t.path().join("dist").exists(),
            "out-dir parent was created"
        );
        assert!(!ws.join("target").exists(), "fastcp must not build");
    }
}

#[test]
fn case01_missing_pattern_source_or_from_dir_exits_2_before_any_write() {
    let t = tmp();
    put(&t.path().join("src/present.txt"), b"here");
    let out = t.path().join("out");
    // A literal pattern naming a missing file.
    let d = copy(
        t.path(),
        Path::new("src"),
        &out,
        &["present.txt", "gone.txt"],
    );
    d.expect_code(2, "a pattern that matches nothing");
    assert!(
        d.stderr.contains("gone.txt") && d.stderr.contains("matched nothing"),
        "{}",
        d.describe()
    );
    assert!(!out.exists(), "nothing may be written: {}", d.describe());
    // A missing --from directory.
    let d = copy(t.path(), Path::new("no-such-dir"), &out, &["**"]);
    d.expect_code(2, "a missing --from dir");
    assert!(
        d.stderr.contains("no-such-dir") && d.stderr.contains("No such file or directory"),
        "{}",
        d.describe()
    );
    assert!(!out.exists());
}

// =============================================================================================
// Case 2: a source file unreadable
// =============================================================================================

/// For a test that needs `unreadable` to be unreadable and `readable` readable: whether to drop
/// to uid 65534 (root reads anything) and the binary to run. The build dir may be private (e.g.
/// under /root): then a copy of the binary in `root` is used. `None`: the setup cannot be had
/// here, and the skip has been printed.
fn unprivileged(root: &Path, readable: &Path, unreadable: &Path) -> Option<(bool, PathBuf)> {
    let drop_privs = is_root();
    let mut bin = PathBuf::from(BIN);
    if drop_privs {
        if nobody_sh(r#"test -x "$1""#, &[&bin]) != Ok(true) {
            bin = root.join("bin/cargo-fastcp");
            fs::create_dir_all(bin.parent().unwrap()).unwrap();
            fs::copy(BIN, &bin).unwrap();
        }
        match nobody_sh(
            r#"test -r "$1" && ! test -r "$2" && test -w "$3" && test -x "$4""#,
            &[readable, unreadable, root, &bin],
        ) {
            Ok(true) => {}
            Ok(false) => {
                skip(
                    &this_test(),
                    &format!(
                        "as uid {NOBODY} the setup is not as needed (a readable source, an \
                         unreadable one, a writable out-dir parent and an executable binary at {})",
                        bin.display()
                    ),
                );
                return None;
            }
            Err(e) => {
                skip(&this_test(), &e);
                return None;
            }
        }
    } else if fs::File::open(unreadable).is_ok() {
        skip(
            &this_test(),
            "a mode-000 source is still readable to this user",
        );
        return None;
    }
    Some((drop_privs, bin))
}

/// The command for `bin` (from `unprivileged`), run in `root`.
fn unprivileged_cmd(bin: &Path, root: &Path) -> Command {
    if bin == Path::new(BIN) {
        return bin_command(root);
    }
    let mut c = Command::new(bin);
    c.current_dir(root);
    c
}

fn case02_unreadable_source_is_reported_others_copied_exit_1(engine: Variant) {
    let t = tmp();
    let root = t.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
    let src = root.join("src");
    put(&src.join("a.txt"), b"alpha");
    put(&src.join("b_secret.txt"), b"no one may read this");
    put(&src.join("c.txt"), &bytes(300_000, 2));
    put(&src.join("sub/d.txt"), b"delta");
    let secret = src.join("b_secret.txt");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();

    let Some((drop_privs, bin)) = unprivileged(root, &src.join("a.txt"), &secret) else {
        return;
    };

    for json in [true, false] {
        let out = root.join(format!("out-{engine}-{json}"));
        let mut c = unprivileged_cmd(&bin, root);
        c.arg("-o")
            .arg(&out)
            .args(["--from", "src"])
            .args(engine.args());
        if json {
            c.args(["--message-format", "json"]);
        }
        c.arg("**");
        if drop_privs {
            as_nobody(&mut c);
        }
        let d = run_cmd(c);
        d.expect_code(1, "one unreadable file");
        if json {
            let lines = d.json();
            let failed = reason(&lines, "failed");
            assert_eq!(failed.len(), 1, "{}", d.describe());
            let f = failed[0];
            assert!(
                f["src"].as_str().unwrap().ends_with("b_secret.txt"),
                "{}",
                d.describe()
            );
            let err = f["error"].as_str().unwrap();
            assert!(
                err.contains("b_secret.txt") && err.contains("Permission denied"),
                "error names the path and the cause: {err}"
            );
            let s = summary_of(&lines);
            assert_eq!(s["errors"], 1, "{}", d.describe());
            assert_eq!(s["files"], 3, "{}", d.describe());
            assert_eq!(reason(&lines, "copied").len(), 3, "{}", d.describe());
        } else {
            assert!(
                d.stderr.contains("b_secret.txt") && d.stderr.contains("Permission denied"),
                "human output names the path and the cause: {}",
                d.describe()
            );
        }
        assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"alpha");
        assert_eq!(fs::read(out.join("c.txt")).unwrap(), bytes(300_000, 2));
        assert_eq!(fs::read(out.join("sub/d.txt")).unwrap(), b"delta");
        assert!(
            fs::symlink_metadata(out.join("b_secret.txt")).is_err(),
            "nothing under the unreadable file's final name"
        );
        assert_no_temps(&out);
    }
}
method_cases!(case02_unreadable_source_is_reported_others_copied_exit_1);

/// An unreadable source directory. Into a new out-dir the copy streams (it runs while the walk
/// does), so by the time the walk meets the directory other files may be in place: it is
/// reported like an unreadable file, the rest is copied, exit 1. Into an out-dir that already
/// holds files the plan is complete before any write: planning fails, exit 2, nothing written.
fn case02_unreadable_source_directory_streamed_is_reported_others_copied(engine: Variant) {
    let t = tmp();
    let root = t.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
    let src = root.join("src");
    put(&src.join("a.txt"), b"alpha");
    put(&src.join("locked/inside.txt"), b"hidden");
    put(&src.join("z/d.txt"), b"delta");
    let locked = src.join("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();

    let Some((drop_privs, bin)) = unprivileged(root, &src.join("a.txt"), &locked) else {
        return;
    };
    let command = |out: &Path, engine: Variant| {
        let mut c = unprivileged_cmd(&bin, root);
        c.arg("-o")
            .arg(out)
            .args(["--from", "src", "--message-format", "json"])
            .args(engine.args())
            .arg("**");
        if drop_privs {
            as_nobody(&mut c);
        }
        c
    };
    let out = root.join(format!("out-{engine}"));
    let d = run_cmd(command(&out, engine));
    d.expect_code(1, "an unreadable directory, streamed");
    let lines = d.json();
    let failed = reason(&lines, "failed");
    assert_eq!(failed.len(), 1, "{}", d.describe());
    let err = failed[0]["error"].as_str().unwrap();
    assert!(
        err.contains("src/locked") && err.contains("Permission denied"),
        "the error names the directory and the cause: {err}"
    );
    assert_eq!(summary_of(&lines)["errors"], 1, "{}", d.describe());
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(fs::read(out.join("z/d.txt")).unwrap(), b"delta");
    assert!(!out.join("locked/inside.txt").exists());
    assert_no_temps(&out);

    // An out-dir with files in it: a complete plan first, which fails before any write.
    let full = root.join(format!("full-{engine}"));
    put(&full.join("keep.txt"), b"keep");
    fs::set_permissions(&full, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(full.join("keep.txt"), fs::Permissions::from_mode(0o666)).unwrap();
    let d = run_cmd(command(&full, engine));
    d.expect_code(2, "an unreadable directory, planned first");
    assert!(d.stderr.contains("src/locked"), "{}", d.describe());
    assert!(
        !full.join("a.txt").exists(),
        "nothing written: {}",
        d.describe()
    );
}
method_cases!(case02_unreadable_source_directory_streamed_is_reported_others_copied);

// =============================================================================================
// Case 3: out-dir is a file, or a component of it is
// =============================================================================================

#[test]
fn case03_out_dir_that_is_a_file_exits_2() {
    let t = tmp();
    put(&t.path().join("src/a.txt"), b"a");
    put(&t.path().join("afile"), b"precious");
    for out in ["afile", "afile/x", "afile/x/y"] {
        let d = copy(t.path(), Path::new("src"), Path::new(out), &["**"]);
        d.expect_code(2, out);
        let e = d.stderr.to_lowercase();
        assert!(
            e.contains(out) && e.contains("not a directory"),
            "names the out-dir and the cause: {}",
            d.describe()
        );
        assert_eq!(fs::read(t.path().join("afile")).unwrap(), b"precious");
        assert!(t.path().join("afile").is_file());
    }
    assert_eq!(
        entries(t.path()),
        [
            PathBuf::from("afile"),
            PathBuf::from("src"),
            PathBuf::from("src/a.txt")
        ]
    );
}

#[test]
fn case03_out_dir_component_that_is_a_file_is_named() {
    let t = tmp();
    put(&t.path().join("src/a.txt"), b"a");
    put(&t.path().join("afile"), b"precious");
    let d = copy(t.path(), Path::new("src"), Path::new("afile/x/y"), &["**"]);
    d.expect_code(2, "component is a file");
    assert!(
        d.stderr
            .contains("out-dir afile/x/y: afile is not a directory"),
        "names the component that is a file: {}",
        d.describe()
    );
}

#[test]
fn plan_io_errors_state_their_cause_once() {
    let t = tmp();
    put(&t.path().join("src/a.txt"), b"a");
    symlink("self", t.path().join("src/self")).unwrap();
    let d = copy(
        t.path(),
        Path::new("src"),
        Path::new("out"),
        &["-L", "self"],
    );
    d.expect_code(2, "ELOOP while planning");
    assert_eq!(
        d.stderr
            .matches("Too many levels of symbolic links")
            .count(),
        1,
        "{}",
        d.describe()
    );
    let d = copy(t.path(), Path::new("missing"), Path::new("out"), &["**"]);
    d.expect_code(2, "missing --from");
    assert_eq!(
        d.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        d.describe()
    );
}

// =============================================================================================
// Case 4: source and destination are the same file; out-dir inside the copied tree
// =============================================================================================

fn case04_tree(root: &Path) -> Vec<u8> {
    let content = bytes(70_000, 4);
    put(&root.join("src/a/x.bin"), &content);
    put(&root.join("src/y.txt"), b"why");
    content
}

fn assert_case04_source_intact(root: &Path, content: &[u8]) {
    assert_eq!(fs::read(root.join("src/a/x.bin")).unwrap(), content);
    assert_eq!(fs::read(root.join("src/y.txt")).unwrap(), b"why");
    assert_no_temps(&root.join("src"));
}

#[test]
fn case04_out_dir_equal_to_from_is_refused_and_source_intact() {
    let t = tmp();
    let content = case04_tree(t.path());
    for out in ["src", "./src/", "src/."] {
        for engine in ["portable", "auto"] {
            let d = copy(
                t.path(),
                Path::new("src"),
                Path::new(out),
                &["--engine", engine, "**"],
            );
            d.expect_code(2, format!("-o {out} --from src"));
            assert!(d.stderr.contains("same file"), "says why: {}", d.describe());
            assert_case04_source_intact(t.path(), &content);
        }
    }
}

#[test]
fn case04_out_dir_symlinked_to_from_is_refused() {
    let t = tmp();
    let content = case04_tree(t.path());
    symlink("src", t.path().join("alias")).unwrap();
    let d = copy(t.path(), Path::new("src"), Path::new("alias"), &["**"]);
    d.expect_code(2, "out-dir is a symlink to --from");
    assert!(d.stderr.contains("same file"), "{}", d.describe());
    assert_case04_source_intact(t.path(), &content);
}

#[test]
fn case04_destination_symlink_or_hardlink_to_the_source_is_refused() {
    let t = tmp();
    let content = case04_tree(t.path());
    let out = t.path().join("out");
    // A symlink at the destination that points at the source file.
    fs::create_dir_all(out.join("a")).unwrap();
    symlink(t.path().join("src/a/x.bin"), out.join("a/x.bin")).unwrap();
    let d = copy(t.path(), Path::new("src"), &out, &["**"]);
    d.expect_code(2, "destination symlink to the source");
    assert!(
        d.stderr.contains("same file") && d.stderr.contains("x.bin"),
        "{}",
        d.describe()
    );
    assert_case04_source_intact(t.path(), &content);
    assert!(fs::symlink_metadata(out.join("a/x.bin"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A hard link of the source at the destination.
    fs::remove_file(out.join("a/x.bin")).unwrap();
    fs::hard_link(t.path().join("src/a/x.bin"), out.join("a/x.bin")).unwrap();
    let d = copy(t.path(), Path::new("src"), &out, &["**"]);
    d.expect_code(2, "destination hard link of the source");
    assert!(
        d.stderr.contains("same file") && d.stderr.contains("x.bin"),
        "{}",
        d.describe()
    );
    assert_case04_source_intact(t.path(), &content);
    assert_eq!(
        fs::metadata(t.path().join("src/a/x.bin")).unwrap().nlink(),
        2
    );
    assert!(!out.join("y.txt").exists(), "nothing written");
}

#[test]
fn case04_out_dir_inside_the_copied_tree_never_recurses() {
    let t = tmp();
    let root = t.path();
    put(&root.join("a.txt"), b"a");
    put(&root.join("d/b.txt"), b"b");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut c = bin_command(root);
        c.args([
            "--from",
            ".",
            "-o",
            "./sub/out",
            "--message-format",
            "json",
            "**",
        ]);
        let d = run_cmd(c);
        assert!(
            d.code() == Some(0) || d.code() == Some(2),
            "refused or excluded: {}",
            d.describe()
        );
        runs.push(entries(&root.join("sub/out")));
    }
    let after = runs.last().unwrap();
    assert!(
        after.iter().all(|p| !p.starts_with("sub/out")),
        "the out-dir was copied into itself: {after:?}"
    );
    assert_eq!(
        runs[1], runs[2],
        "each run adds more: recursion across runs"
    );
    assert!(after.contains(&PathBuf::from("a.txt")));
    assert!(after.contains(&PathBuf::from("d/b.txt")));
    // Same with an absolute out-dir and a pattern that names the out-dir's parent.
    let out_abs = root.join("sub/out");
    let d = copy(root, Path::new("."), &out_abs, &["sub", "a.txt"]);
    assert!(
        d.code() == Some(0) || d.code() == Some(2),
        "refused or excluded: {}",
        d.describe()
    );
    assert!(
        entries(&out_abs).iter().all(|p| !p.starts_with("sub/out")),
        "{:?}",
        entries(&out_abs)
    );
}

#[test]
fn case04_pattern_naming_the_out_dir_never_copies_it_into_itself() {
    let t = tmp();
    let root = t.path();
    put(&root.join("a.txt"), b"a");
    put(&root.join("d/b.txt"), b"b");
    let first = copy(root, Path::new("."), Path::new("./sub/out"), &["**"]);
    first.expect_code(0, "first run");
    for pat in ["sub/out/**", "sub/out/a.txt", "sub/out/**"] {
        let d = copy(root, Path::new("."), Path::new("./sub/out"), &[pat]);
        assert!(
            d.code() == Some(0) || d.code() == Some(2),
            "refused or excluded: {}",
            d.describe()
        );
        let after = entries(&root.join("sub/out"));
        assert!(
            after.iter().all(|p| !p.starts_with("sub/out")),
            "`{pat}` copied the out-dir into itself: {after:?}"
        );
    }
}

// =============================================================================================
// Case 5: disk full mid-copy
// =============================================================================================

fn case05_disk_full_exits_1_without_partial_or_temporary_files(engine: Variant) {
    let t = tmp();
    let src = t.path().join("src");
    put(&src.join("a_small.txt"), &bytes(10_000, 51));
    put(&src.join("b_big.bin"), &bytes(3 << 20, 52)); // larger than the whole filesystem
    for i in 0..5 {
        put(
            &src.join(format!("c_mid{i}.bin")),
            &bytes(700 << 10, 53 + i),
        );
    }
    put(&src.join("d/e_small.txt"), &bytes(5_000, 60));
    let mnt = t.path().join("mnt");
    let _fs = match Tmpfs::mount(&mnt, "2m") {
        Ok(m) => m,
        Err(e) => return skip(&this_test(), &e),
    };
    for json in [true, false] {
        let out = mnt.join("out");
        let _ = fs::remove_dir_all(&out);
        let mut args = engine.args();
        if json {
            args.extend(["--message-format", "json"]);
        }
        args.push("**");
        let d = copy(t.path(), Path::new("src"), &out, &args);
        d.expect_code(1, format!("ENOSPC ({engine})"));
        if json {
            let lines = d.json();
            let failed = reason(&lines, "failed");
            assert!(
                failed.iter().any(|f| {
                    f["src"].as_str().unwrap().ends_with("b_big.bin")
                        && f["error"]
                            .as_str()
                            .unwrap()
                            .contains("No space left on device")
                }),
                "the file larger than the disk is reported with its cause: {}",
                d.describe()
            );
            let s = summary_of(&lines);
            assert_eq!(s["errors"].as_u64().unwrap() as usize, failed.len());
            for c in reason(&lines, "copied") {
                let dst = Path::new(c["dst"].as_str().unwrap());
                let rel = dst.strip_prefix(&out).unwrap();
                assert_eq!(
                    fs::read(dst).unwrap(),
                    fs::read(src.join(rel)).unwrap(),
                    "reported copied: {}",
                    dst.display()
                );
            }
            for f in failed {
                let dst = Path::new(f["dst"].as_str().unwrap());
                assert!(
                    fs::symlink_metadata(dst).is_err(),
                    "failed file under its final name: {}",
                    dst.display()
                );
            }
        } else {
            assert!(
                d.stderr.contains("b_big.bin") && d.stderr.contains("No space left on device"),
                "{}",
                d.describe()
            );
        }
        assert_final_files_whole(&out, &src);
        assert!(
            !out.join("b_big.bin").exists(),
            "a file larger than the disk cannot be whole"
        );
        assert_no_temps(&out);
    }
}
method_cases!(case05_disk_full_exits_1_without_partial_or_temporary_files);

fn case05_disk_full_keeps_the_previous_version_of_a_file(engine: Variant) {
    let t = tmp();
    let src = t.path().join("src");
    put(&src.join("big.bin"), &bytes(3 << 20, 55));
    let mnt = t.path().join("mnt");
    let _fs = match Tmpfs::mount(&mnt, "2m") {
        Ok(m) => m,
        Err(e) => return skip(&this_test(), &e),
    };
    let out = mnt.join("out");
    let _ = fs::remove_dir_all(&out);
    put(&out.join("big.bin"), b"the previous version");
    let mut args = engine.args();
    args.push("**");
    let d = copy(t.path(), Path::new("src"), &out, &args);
    d.expect_code(1, engine);
    assert!(
        d.stderr.contains("big.bin") && d.stderr.contains("No space left on device"),
        "{}",
        d.describe()
    );
    assert_eq!(
        fs::read(out.join("big.bin")).unwrap(),
        b"the previous version",
        "the file under the final name is untouched ({engine})"
    );
    assert_no_temps(&out);
}
method_cases!(case05_disk_full_keeps_the_previous_version_of_a_file);

// =============================================================================================
// Case 6: SIGINT / SIGTERM mid-copy
// =============================================================================================

fn big_tree(src: &Path) {
    // Large files first in plan order, so the signal lands inside a large copy; then many small
    // files, so the run is long enough for the signal to land at all.
    let block = bytes(1 << 20, 6);
    fs::create_dir_all(src.join("a_big")).unwrap();
    for i in 0..4u8 {
        let mut f = fs::File::create(src.join(format!("a_big/big{i}.bin"))).unwrap();
        for mib in 0..50u32 {
            let mut b = block.clone();
            b[..4].copy_from_slice(&mib.to_le_bytes());
            b[4] = i;
            f.write_all(&b).unwrap();
        }
    }
    for d in 0..30 {
        for f in 0..100 {
            put(
                &src.join(format!("b_small/d{d:02}/f{f:03}.txt")),
                format!("file {d}/{f}\n").repeat(f + 1).as_bytes(),
            );
        }
    }
}

/// The directory holding `src/` (a [`big_tree`]), made once and shared by the case 6 tests,
/// which only read it.
fn big_tree_root() -> &'static Path {
    static ROOT: OnceLock<&'static Path> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Scratch::new("fastcp-rel-signals-").until_exit();
        big_tree(&root.join("src"));
        root
    })
}

fn case06_sigint_and_sigterm_stop_promptly_leaving_only_whole_files(engine: Variant) {
    let t = tmp();
    let root = big_tree_root();
    let src = root.join("src");
    for (sig, code, late) in [
        (libc::SIGINT, 130, false),
        (libc::SIGTERM, 143, true),
        (libc::SIGTERM, 143, false),
        (libc::SIGINT, 130, true),
    ] {
        let phase = if late { "small files" } else { "large files" };
        let out = t.path().join(format!("out-{engine}-{sig}-{late}"));
        let mut c = bin_command(root);
        c.arg("-o").arg(&out).args(engine.args()).args([
            "--from",
            "src",
            "--message-format",
            "json",
            "**",
        ]);
        // Files placed one by one, which an interrupt leaves in place (a new out-dir built as
        // a hidden tree is removed whole: tests/tree_staging.rs).
        c.env("CARGO_FASTCP_TREE_STAGING", "off");
        let mut p = spawn(c);
        let start = Instant::now();
        let limit = Duration::from_secs(60);
        if late {
            // Once the first small file is in place: the large ones are done or nearly.
            let first = out.join("b_small/d00/f000.txt");
            while !first.exists() && !p.exited() && start.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(1));
            }
        } else {
            // Directories are made right after planning: signal ~100 ms into the data.
            while !out.exists() && !p.exited() && start.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            !p.exited(),
            "the copy finished before the signal; the tree is too small to test ({engine}, {phase})"
        );
        send_signal(p.pid(), sig);
        let sent = Instant::now();
        let d = p
            .wait_within(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("did not stop after signal {sig} ({engine}): {e}"));
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "took {took:?} to stop after signal {sig} ({engine}, {phase})"
        );
        d.expect_code(code, format!("signal {sig} ({engine}, {phase})"));
        let lines = d.json();
        let s = summary_of(&lines);
        assert_eq!(s["interrupted"], true, "{}", d.describe());
        let whole = assert_final_files_whole(&out, &src);
        assert_no_temps(&out);
        for c in reason(&lines, "copied") {
            assert!(
                Path::new(c["dst"].as_str().unwrap()).is_file(),
                "reported copied but missing: {c}"
            );
        }
        assert!(
            whole < 3004,
            "everything was copied: the signal came too late ({engine})"
        );
        note(&format!(
            "{engine} signal {sig} during {phase}: stopped in {took:?}, {whole} whole files kept"
        ));
    }
}
method_cases!(case06_sigint_and_sigterm_stop_promptly_leaving_only_whole_files);

// =============================================================================================
// Case 7: source file changing while copied
// =============================================================================================

/// `n` small files in `src/a/`, walked before the file that changes.
fn small_files(src: &Path, n: u64) {
    for i in 0..n {
        put(&src.join(format!("a/{i:04}.txt")), &bytes(512, i));
    }
}

/// A run of `engine` with one worker, JSON output, from `cwd/src` into `out`, started.
fn spawn_one_worker(cwd: &Path, out: &Path, engine: Variant) -> common::Proc {
    let mut c = bin_command(cwd);
    c.arg("-o").arg(out).args(engine.args()).args([
        "--from",
        "src",
        "-j",
        "1",
        "--message-format",
        "json",
        "**",
    ]);
    // Files placed one by one: the tests watch the out-dir appear while the run goes on.
    c.env("CARGO_FASTCP_TREE_STAGING", "off");
    spawn(c)
}

fn case07_source_truncated_during_the_run_is_reported_not_copied_short(engine: Variant) {
    let t = tmp();
    let src = t.path().join("src");
    small_files(&src, 2000);
    // Last in the (sorted) walk, and under the 1 MiB from which files are queued first: with
    // one worker it is copied after the 2000 others, well after the truncation below.
    let victim = src.join("z/z_changing.bin");
    put(&victim, &bytes(900 << 10, 7));
    let out = t.path().join(format!("out-trunc-{engine}"));
    // An out-dir that already holds a file: the whole tree is planned before anything is
    // written (a new one would be copied while the walk runs, and the victim, walked last,
    // would be planned after the truncation). So `a/` appearing means planning is over.
    put(&out.join("already-here.txt"), b"kept");
    let mut p = spawn_one_worker(t.path(), &out, engine);
    while !out.join("a").exists() && !p.exited() {
        std::thread::sleep(Duration::from_micros(200));
    }
    // Planned at 900 KiB; now 100 KiB.
    fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(100 << 10)
        .unwrap();
    let d = p.wait();
    let lines = d.json();
    let failed = reason(&lines, "failed");
    assert!(
        failed
            .iter()
            .any(|f| f["src"].as_str().unwrap().ends_with("z_changing.bin")
                && f["error"]
                    .as_str()
                    .unwrap()
                    .contains("changed while it was copied")),
        "a source that shrank after planning is reported ({engine}): {}",
        d.describe()
    );
    d.expect_code(1, engine);
    assert!(
        fs::symlink_metadata(out.join("z/z_changing.bin")).is_err(),
        "no short copy under the final name ({engine})"
    );
    assert_copied_sizes_match_json(&lines);
    assert_no_temps(&out);
}
method_cases!(case07_source_truncated_during_the_run_is_reported_not_copied_short);

/// Every file the JSON calls copied has exactly the size the JSON says.
fn assert_copied_sizes_match_json(lines: &[Value]) {
    for c in reason(lines, "copied") {
        let dst = Path::new(c["dst"].as_str().unwrap());
        let md = fs::symlink_metadata(dst).unwrap();
        if md.is_file() {
            assert_eq!(
                md.len(),
                c["bytes"].as_u64().unwrap(),
                "{} differs from the size the JSON reports",
                dst.display()
            );
        }
    }
}

fn case07_source_growing_during_the_copy_is_reported_or_copied_consistently(engine: Variant) {
    let t = tmp();
    let src = t.path().join("src");
    small_files(&src, 400);
    let victim = src.join("z_growing.bin");
    let planned = bytes(8 << 20, 71);
    put(&victim, &planned);
    let out = t.path().join(format!("out-grow-{engine}"));
    let mut p = spawn_one_worker(t.path(), &out, engine);
    while !out.exists() && !p.exited() {
        std::thread::sleep(Duration::from_micros(200));
    }
    // Append 64 KiB chunks until the run ends.
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let stop = stop.clone();
        let victim = victim.clone();
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(victim).unwrap();
            let chunk = bytes(64 << 10, 72);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 2048 {
                f.write_all(&chunk).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let d = p.wait();
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    let lines = d.json();
    assert_copied_sizes_match_json(&lines);
    assert_no_temps(&out);
    let failed = reason(&lines, "failed");
    let dst = out.join("z_growing.bin");
    if failed.is_empty() {
        d.expect_code(0, engine);
        // A clean copy must be the planned snapshot, whole.
        assert_eq!(
            fs::read(&dst).unwrap(),
            planned,
            "not the planned snapshot ({engine})"
        );
        note(&format!(
            "{engine}: copied a consistent snapshot of the planned size"
        ));
    } else {
        d.expect_code(1, engine);
        assert_eq!(failed.len(), 1, "{}", d.describe());
        let err = failed[0]["error"].as_str().unwrap();
        assert!(
            err.contains("z_growing.bin") && err.contains("changed while it was copied"),
            "{err}"
        );
        assert!(fs::symlink_metadata(&dst).is_err(), "{engine}");
        note(&format!("{engine}: reported: {err}"));
    }
}
method_cases!(case07_source_growing_during_the_copy_is_reported_or_copied_consistently);

// =============================================================================================
// Case 8: symlinks at the destination are replaced, never written through
// =============================================================================================

fn case08_destination_symlinks_are_replaced_not_followed(engine: Variant) {
    let t = tmp();
    let root = t.path();
    let src = root.join("src");
    put(&src.join("x.txt"), b"new x");
    put(&src.join("h.txt"), b"new h");
    put(&src.join("dangling.txt"), b"new dangling");
    put(&src.join("sub/inner.txt"), b"new inner");
    put(&src.join("big.bin"), &bytes(2 << 20, 8));
    let outside = root.join(format!("outside-{engine}"));
    put(&outside.join("victim.txt"), b"victim");
    put(&outside.join("victim_big.bin"), b"victim big");
    put(&outside.join("hard_victim.txt"), b"hard victim");
    put(&outside.join("dir/keep.txt"), b"keep");
    let out = root.join(format!("out-{engine}"));
    fs::create_dir_all(&out).unwrap();
    symlink(outside.join("victim.txt"), out.join("x.txt")).unwrap();
    symlink(outside.join("victim_big.bin"), out.join("big.bin")).unwrap();
    symlink(outside.join("not_there.txt"), out.join("dangling.txt")).unwrap();
    symlink(outside.join("dir"), out.join("sub")).unwrap();
    fs::hard_link(outside.join("hard_victim.txt"), out.join("h.txt")).unwrap();

    let mut args = engine.args();
    args.push("**");
    let d = copy(root, Path::new("src"), &out, &args);
    d.expect_code(0, engine);
    for (rel, want) in [
        ("x.txt", &b"new x"[..]),
        ("h.txt", b"new h"),
        ("dangling.txt", b"new dangling"),
        ("sub/inner.txt", b"new inner"),
    ] {
        let md = fs::symlink_metadata(out.join(rel)).unwrap();
        assert!(md.is_file(), "{rel} is a regular file now ({engine})");
        assert_eq!(fs::read(out.join(rel)).unwrap(), want);
    }
    assert_eq!(fs::read(out.join("big.bin")).unwrap(), bytes(2 << 20, 8));
    assert!(fs::symlink_metadata(out.join("sub")).unwrap().is_dir());
    assert_eq!(fs::read(outside.join("victim.txt")).unwrap(), b"victim");
    assert_eq!(
        fs::read(outside.join("victim_big.bin")).unwrap(),
        b"victim big"
    );
    assert_eq!(
        fs::read(outside.join("hard_victim.txt")).unwrap(),
        b"hard victim"
    );
    assert!(!outside.join("not_there.txt").exists(), "{engine}");
    assert_eq!(
        entries(&outside),
        [
            PathBuf::from("dir"),
            PathBuf::from("dir/keep.txt"),
            PathBuf::from("hard_victim.txt"),
            PathBuf::from("victim.txt"),
            PathBuf::from("victim_big.bin"),
        ],
        "nothing written outside the out-dir ({engine})"
    );
    assert_no_temps(&out);
}
method_cases!(case08_destination_symlinks_are_replaced_not_followed);

// =============================================================================================
// Case 9: patterns stay inside their base
// =============================================================================================

#[test]
fn case09_patterns_cannot_leave_their_base_without_dereference() {
    let t = tmp();
    let root = t.path();
    put(&root.join("outside/secret.txt"), b"secret");
    put(&root.join("base/a.txt"), b"a");
    symlink("../outside", root.join("base/link")).unwrap();
    let base = Path::new("base");
    let secret = b"secret";
    let any_secret = |out: &Path| {
        entries(out).iter().any(|p| {
            let q = out.join(p);
            fs::symlink_metadata(&q).is_ok_and(|m| m.is_file())
                && fs::read(&q).is_ok_and(|b| b == secret)
        })
    };

    // `..` and absolute patterns: refused before anything is written.
    let abs = root.join("outside/secret.txt");
    for (pat, why) in [
        ("../outside/secret.txt", "`..` is not allowed"),
        ("a/../../outside/secret.txt", "`..` is not allowed"),
        ("**/../*", "`..` is not allowed"),
        (abs.to_str().unwrap(), "absolute patterns are not allowed"),
        ("/etc/passwd", "absolute patterns are not allowed"),
    ] {
        let out = root.join("out-rel");
        let d = copy(root, base, &out, &[pat]);
        d.expect_code(2, pat);
        assert!(
            d.stderr.contains(pat) && d.stderr.contains(why),
            "{pat}: {}",
            d.describe()
        );
        assert!(!out.exists(), "{pat}: nothing written");
    }

    // Through a symlinked directory: refused (or matches nothing) without -L.
    for pat in ["link/secret.txt", "link/*", "link/**"] {
        let out = root.join("out-link");
        let d = copy(root, base, &out, &[pat]);
        d.expect_code(2, pat);
        assert!(
            d.stderr.contains(pat) || d.stderr.contains("link"),
            "{}",
            d.describe()
        );
        assert!(!out.exists(), "{pat}: nothing written");
    }
    let d = copy(root, base, &root.join("out-link"), &["link/secret.txt"]);
    assert!(
        d.stderr.contains("outside") && d.stderr.contains("-L"),
        "says why and how: {}",
        d.describe()
    );

    // `**` copies the symlink as a symlink, never what it points to.
    let out = root.join("out-all");
    let d = copy(root, base, &out, &["**"]);
    d.expect_code(0, "**");
    assert!(fs::symlink_metadata(out.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!any_secret(&out), "{:?}", entries(&out));

    // With -L the user asked to follow: allowed.
    let out = root.join("out-deref");
    let d = copy(root, base, &out, &["-L", "link/*"]);
    d.expect_code(0, "-L link/*");
    assert_eq!(fs::read(out.join("link/secret.txt")).unwrap(), secret);
}

// =============================================================================================
// Case 10: symlink loop with -L
// =============================================================================================

#[test]
fn case10_symlink_loops_with_dereference_are_errors_not_hangs() {
    let t = tmp();
    let root = t.path();
    put(&root.join("base/a/f.txt"), b"f");
    put(&root.join("base/c/g.txt"), b"g");
    // Loops: to an ancestor, a two-directory cycle, and a link to itself.
    symlink("..", root.join("base/a/up")).unwrap();
    let cases: [(&str, &[&str], &str); 4] = [
        ("ancestor", &["**"], "symlink loop"),
        ("ancestor, literal", &["a"], "symlink loop"),
        ("cycle", &["c/**"], "symlink loop"),
        ("self", &["self"], "Too many levels of symbolic links"),
    ];
    for (what, pats, msg) in cases {
        match what {
            "cycle" => {
                let _ = fs::remove_file(root.join("base/a/up"));
                symlink("../c", root.join("base/a/to_c")).unwrap();
                symlink("../a", root.join("base/c/to_a")).unwrap();
            }
            "self" => symlink("self", root.join("base/self")).unwrap(),
            _ => {}
        }
        let out = root.join("out");
        let mut c = bin_command(root);
        c.arg("-o")
            .arg(&out)
            .args(["--from", "base", "-L"])
            .args(pats);
        let d = spawn(c)
            .wait_within(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{what}: hangs: {e}"));
        d.expect_code(2, what);
        assert!(d.stderr.contains(msg), "{what}: {}", d.describe());
        assert!(
            d.stderr.contains("base/"),
            "{what}: names the path: {}",
            d.describe()
        );
        assert!(!out.exists(), "{what}: nothing written");
    }
    // Without -L the same tree copies, links as links.
    let out = root.join("out-nofollow");
    let d = copy(root, Path::new("base"), &out, &["**"]);
    d.expect_code(0, "no -L");
    assert!(fs::symlink_metadata(out.join("a/to_c"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(out.join("self")).unwrap(), Path::new("self"));
}

// =============================================================================================
// Case 11: non-UTF-8 file names
// =============================================================================================

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[test]
fn case11_non_utf8_names_are_copied_exactly_and_reported_exactly_in_json() {
    let t = tmp();
    let root = t.path();
    let src = root.join("src");
    let file = src.join(os(b"caf\xe9.txt"));
    let dir_file = src.join(os(b"d\xff\xfe")).join(os(b"n\x80.bin"));
    put(&file, b"latin-1 name");
    put(&dir_file, b"invalid bytes name");

    // JSON: exact bytes in src_bytes/dst_bytes.
    let out = root.join("out-json");
    let d = copy(
        root,
        Path::new("src"),
        &out,
        &["--message-format", "json", "**"],
    );
    d.expect_code(0, "json");
    assert_eq!(
        fs::read(out.join(os(b"caf\xe9.txt"))).unwrap(),
        b"latin-1 name"
    );
    assert_eq!(
        fs::read(out.join(os(b"d\xff\xfe")).join(os(b"n\x80.bin"))).unwrap(),
        b"invalid bytes name"
    );
    let lines = d.json();
    let copied = reason(&lines, "copied");
    assert_eq!(copied.len(), 2, "{}", d.describe());
    let bytes = |v: &Value| -> Vec<u8> {
        v.as_array()
            .unwrap_or_else(|| panic!("expected a byte array, got {v}"))
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect()
    };
    let mut srcs = Vec::new();
    for c in copied {
        let s = bytes(&c["src_bytes"]);
        let dst = bytes(&c["dst_bytes"]);
        assert!(
            c["src"].as_str().unwrap().contains('\u{FFFD}'),
            "lossy text form: {c}"
        );
        let s_path = PathBuf::from(OsStr::from_bytes(&s));
        let d_path = PathBuf::from(OsStr::from_bytes(&dst));
        let rel = s_path.strip_prefix("src").unwrap();
        assert_eq!(d_path, out.join(rel), "dst_bytes is the exact destination");
        assert!(d_path.is_file(), "{}", d_path.display());
        srcs.push(s_path);
    }
    srcs.sort();
    assert_eq!(
        srcs,
        [
            Path::new("src").join(os(b"caf\xe9.txt")),
            Path::new("src")
                .join(os(b"d\xff\xfe"))
                .join(os(b"n\x80.bin")),
        ]
    );

    // Human: shown lossily (-vv lists every file), never as mangled bytes.
    let out = root.join("out-human");
    let d = copy(root, Path::new("src"), &out, &["-vv", "**"]);
    d.expect_code(0, "human");
    assert!(d.stderr.contains("caf\u{FFFD}.txt"), "{}", d.describe());
    assert!(d.stderr.contains("n\u{FFFD}.bin"), "{}", d.describe());
    assert!(out.join(os(b"caf\xe9.txt")).is_file());
}

#[test]
fn case11_non_utf8_pattern_is_a_usage_error_and_globs_reach_such_names() {
    let t = tmp();
    let root = t.path();
    put(&root.join("src").join(os(b"caf\xe9.txt")), b"latin-1 name");
    // Patterns are UTF-8 text: a literal non-UTF-8 pattern is refused before anything is written.
    let out = root.join("out-literal");
    let mut c = bin_command(root);
    c.arg("-o")
        .arg(&out)
        .args(["--from", "src"])
        .arg(os(b"caf\xe9.txt"));
    let d = run_cmd(c);
    d.expect_code(2, "non-UTF-8 pattern");
    assert!(d.stderr.contains("invalid UTF-8"), "{}", d.describe());
    assert!(!out.exists());
    // Globs match such names byte-exactly.
    for pat in ["caf?.txt", "caf*.txt", "caf[!a].txt"] {
        let out = root.join("out-glob");
        let _ = fs::remove_dir_all(&out);
        let d = copy(root, Path::new("src"), &out, &[pat]);
        d.expect_code(0, pat);
        assert_eq!(
            fs::read(out.join(os(b"caf\xe9.txt"))).unwrap(),
            b"latin-1 name",
            "{pat}"
        );
    }
}

#[test]
fn case11_failed_non_utf8_names_are_reported_exactly_in_json() {
    let t = tmp();
    let root = t.path();
    put(&root.join("src").join(os(b"caf\xe9.txt")), b"x");
    // A non-empty directory where the file must go: the rename into place fails.
    let out = root.join("out");
    put(&out.join(os(b"caf\xe9.txt")).join("blocker"), b"b");
    let d = copy(
        root,
        Path::new("src"),
        &out,
        &["--message-format", "json", "**"],
    );
    d.expect_code(1, "rename onto a directory");
    let lines = d.json();
    let failed = reason(&lines, "failed");
    assert_eq!(failed.len(), 1, "{}", d.describe());
    let want: Vec<Value> = b"src/caf\xe9.txt".iter().map(|&b| Value::from(b)).collect();
    assert_eq!(
        failed[0]["src_bytes"],
        Value::Array(want),
        "{}",
        d.describe()
    );
    assert!(failed[0]["dst_bytes"].is_array(), "{}", d.describe());
}

// =============================================================================================
// Case 12: two runs into the same out-dir at once
// =============================================================================================

fn version_tree(dir: &Path, fill: u8, sizes: &dyn Fn(usize) -> usize) {
    for i in 0..60 {
        put(
            &dir.join(format!("d{}/f{i:02}.bin", i % 4)),
            &vec![fill; sizes(i)],
        );
    }
}

/// Runs A (engine `ea`) and B (engine `eb`) copy two versions of a tree into one out-dir at once,
/// four rounds with either started first: every file ends whole, from one version or the other.
fn case12_concurrent_runs_leave_every_file_whole_from_one_version(ea: Variant, eb: Variant) {
    let t = tmp();
    let root = t.path();
    let size_a = |i: usize| 1_000 + i * 40_001 + if i % 10 == 0 { 4 << 20 } else { 0 };
    let size_b = |i: usize| 2_000 + i * 39_999 + if i % 10 == 5 { 4 << 20 } else { 0 };
    version_tree(&root.join("va"), b'A', &size_a);
    version_tree(&root.join("vb"), b'B', &size_b);
    let out = root.join(format!("out-{ea}-{eb}"));
    for round in 0..4 {
        let mk = |from: &str, engine: Variant| {
            let mut c = bin_command(root);
            c.arg("-o")
                .arg(&out)
                .args(["--from", from, "--engine", engine.engine(), "**"]);
            spawn(c)
        };
        let (pa, pb) = if round % 2 == 0 {
            (mk("va", ea), mk("vb", eb))
        } else {
            let pb = mk("vb", eb);
            (mk("va", ea), pb)
        };
        let (da, db) = (pa.wait(), pb.wait());
        da.expect_code(0, format!("run A, round {round} ({ea}/{eb})"));
        db.expect_code(0, format!("run B, round {round} ({ea}/{eb})"));
        for i in 0..60 {
            let p = out.join(format!("d{}/f{i:02}.bin", i % 4));
            let got = fs::read(&p).unwrap();
            let whole_a = got.len() == size_a(i) && got.iter().all(|&b| b == b'A');
            let whole_b = got.len() == size_b(i) && got.iter().all(|&b| b == b'B');
            assert!(
                whole_a || whole_b,
                "{} is neither version whole: {} bytes (A {}, B {}) round {round} ({ea}/{eb})",
                p.display(),
                got.len(),
                size_a(i),
                size_b(i)
            );
        }
        assert_no_temps(&out);
    }
}

/// Case 12 as named cases: both runs portable, both io-uring, one of each.
mod case12_concurrent_runs_leave_every_file_whole_from_one_version {
    use super::{io_uring_runs_here, this_test, Variant};

    #[test]
    fn case_portable() {
        super::case12_concurrent_runs_leave_every_file_whole_from_one_version(
            Variant::Portable,
            Variant::Portable,
        );
    }

    #[test]
    fn case_io_uring() {
        if io_uring_runs_here(&this_test()) {
            super::case12_concurrent_runs_leave_every_file_whole_from_one_version(
                Variant::IoUringAuto,
                Variant::IoUringAuto,
            );
        }
    }

    #[test]
    fn case_portable_with_io_uring() {
        if io_uring_runs_here(&this_test()) {
            super::case12_concurrent_runs_leave_every_file_whole_from_one_version(
                Variant::Portable,
                Variant::IoUringAuto,
            );
        }
    }
}

// =============================================================================================
// Case 13: --fsync
// =============================================================================================

fn fsync_tree(src: &Path, files: usize) {
    for i in 0..files {
        put(
            &src.join(format!("d{:02}/f{i:04}.txt", i % 10)),
            format!("{i}\n").repeat(i % 50 + 1).as_bytes(),
        );
    }
}

fn case13_fsync_copies_correctly(engine: Variant) {
    let t = tmp();
    let src = t.path().join("src");
    fsync_tree(&src, 40);
    let out = t.path().join(format!("out-{engine}"));
    let d = copy(
        t.path(),
        Path::new("src"),
        &out,
        &[
            "--fsync",
            "--engine",
            engine.engine(),
            "--message-format",
            "json",
            "**",
        ],
    );
    d.expect_code(0, engine);
    assert_eq!(summary_of(&d.json())["files"], 40);
    assert_eq!(assert_final_files_whole(&out, &src), 40);
    assert_no_temps(&out);
}
engine_cases!(case13_fsync_copies_correctly);

/// `fsync`/`fdatasync` calls counted by `strace -f -c`, or why strace cannot count here.
fn count_fsyncs(root: &Path, args: &[&str]) -> Result<(u64, Done), String> {
    let report = root.join(format!("strace-{}.txt", args.join("_").replace('/', "_")));
    let mut c = Command::new("strace");
    c.current_dir(root)
        .args(["-f", "-c", "-o"])
        .arg(&report)
        .args(["-e", "trace=fsync,fdatasync", BIN])
        .args(args);
    for v in common::SCRUBBED_ENV {
        c.env_remove(v);
    }
    let mut p = match c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => return Err(format!("strace is not available: {e}")),
    };
    let mut err = String::new();
    let mut out = String::new();
    p.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    p.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = p.wait().unwrap();
    let text = fs::read_to_string(&report).unwrap_or_default();
    if err.contains("ptrace") || (!status.success() && text.is_empty()) {
        return Err(format!("strace cannot trace here: {}", err.trim()));
    }
    let calls = text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.last() {
                Some(&"fsync") | Some(&"fdatasync") => cols.get(3)?.parse::<u64>().ok(),
                _ => None,
            }
        })
        .sum();
    Ok((
        calls,
        Done {
            status,
            stdout: out,
            stderr: err,
        },
    ))
}

fn case13_fsync_flushes_every_file_and_directory_strace(engine: Variant) {
    let t = tmp();
    let root = t.path();
    let src = root.join("src");
    fsync_tree(&src, 40);
    // 40 files; directories written: out, d00..d09.
    let (files, dirs) = (40, 11);
    let (with, d) = match count_fsyncs(
        root,
        &[
            "-o",
            &format!("out-{engine}"),
            "--from",
            "src",
            "--engine",
            engine.engine(),
            "--fsync",
            "**",
        ],
    ) {
        Ok(r) => r,
        Err(why) => return skip(&this_test(), &why),
    };
    d.expect_code(0, engine);
    let (without, d) = count_fsyncs(
        root,
        &[
            "-o",
            &format!("out-nofsync-{engine}"),
            "--from",
            "src",
            "--engine",
            engine.engine(),
            "**",
        ],
    )
    .expect("strace worked a moment ago");
    d.expect_code(0, engine);
    assert_eq!(without, 0, "no fsync without --fsync ({engine})");
    if engine == Variant::Portable {
        assert!(
            with >= files + dirs,
            "--fsync made {with} fsync calls; want at least {files} files + {dirs} directories"
        );
    } else {
        // io_uring may flush files with IORING_OP_FSYNC, which strace cannot see; the
        // directories are flushed by the shared engine code with fsync(2).
        assert!(
            with >= dirs,
            "--fsync made {with} fsync calls ({engine}); want at least {dirs} directories"
        );
    }
    note(&format!(
        "{engine}: {with} fsync calls with --fsync, {without} without"
    ));
}
engine_cases!(case13_fsync_flushes_every_file_and_directory_strace);

// =============================================================================================
// Fuzz corpus replay (pattern and path handling; see fuzz/)
// =============================================================================================

#[test]
fn fuzz_corpus_replays_without_panic_or_escape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/select_patterns");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus too small: {}", files.len());
    let result = std::panic::catch_unwind(|| {
        for f in &files {
            let data = fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| fuzz_check::check(&data));
            assert!(r.is_ok(), "corpus input {} failed the check", f.display());
        }
    });
    fuzz_check::cleanup();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A private tracefs mount with its own trace instance that records `io_uring_submit_req` events
/// of one opcode for one process tree (`set_event_pid` + `event-fork`). Unmounted on drop.
struct UringTrace {
    _mount: TempDir,
    root: PathBuf,
    instance: PathBuf,
}

impl UringTrace {
    fn new(opcode: u8) -> Result<UringTrace, String> {
        let mount_dir = tmp();
        let root = mount_dir.path().join("tracefs");
        mount("tracefs", "nodev", &root, None)?;
        let mut t = UringTrace {
            _mount: mount_dir,
            instance: root.join(format!("instances/fastcp-rel-{}", std::process::id())),
            root,
        };
        if !t.root.join("events/io_uring/io_uring_submit_req").exists() {
            return Err("this kernel has no io_uring_submit_req trace event".into());
        }
        let _ = fs::remove_dir(&t.instance);
        fs::create_dir(&t.instance).map_err(|e| format!("trace instance: {e}"))?;
        let ev = t.instance.join("events/io_uring/io_uring_submit_req");
        let setup = [
            (t.instance.join("options/event-fork"), "1".to_string()),
            (ev.join("filter"), format!("opcode == {opcode}")),
            (ev.join("enable"), "1".to_string()),
        ];
        for (file, value) in setup {
            if let Err(e) = fs::write(&file, value) {
                t.instance = PathBuf::new();
                return Err(format!("{}: {e}", file.display()));
            }
        }
        Ok(t)
    }

    /// A command that puts its own pid into this instance's `set_event_pid`, then execs `BIN`.
    fn command(&self, cwd: &Path) -> Command {
        let mut c = Command::new("sh");
        c.current_dir(cwd)
            .args(["-c", r#"echo $$ > "$1" && shift && exec "$@""#, "sh"])
            .arg(self.instance.join("set_event_pid"))
            .arg(BIN);
        for v in common::SCRUBBED_ENV {
            c.env_remove(v);
        }
        c
    }

    /// Events recorded so far (the buffer is cleared).
    fn take(&self) -> usize {
        let trace = self.instance.join("trace");
        let n = fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("io_uring_submit_req:"))
            .count();
        let _ = fs::write(&trace, "");
        n
    }
}

impl Drop for UringTrace {
    fn drop(&mut self) {
        if !self.instance.as_os_str().is_empty() {
            let _ = fs::write(
                self.instance
                    .join("events/io_uring/io_uring_submit_req/enable"),
                "0",
            );
            let _ = fs::remove_dir(&self.instance);
        }
        umount_lazy(&self.root);
    }
}

/// `IORING_OP_FSYNC`.
const IORING_OP_FSYNC: u8 = 3;

#[test]
fn case13_fsync_io_uring_submits_an_fsync_for_every_file_tracefs() {
    if !io_uring_runs_here(&this_test()) {
        return;
    }
    let trace = match UringTrace::new(IORING_OP_FSYNC) {
        Ok(t) => t,
        Err(why) => return skip(&this_test(), &why),
    };
    let t = tmp();
    let root = t.path();
    fsync_tree(&root.join("src"), 40);
    let mut counts = Vec::new();
    for fsync in [true, false] {
        let mut c = trace.command(root);
        c.args([
            "-o",
            &format!("out-{fsync}"),
            "--from",
            "src",
            "--engine",
            "io-uring",
        ]);
        if fsync {
            c.arg("--fsync");
        }
        c.arg("**");
        run_cmd(c).expect_code(0, "io-uring copy under trace");
        counts.push(trace.take());
    }
    assert!(
        counts[0] >= 40,
        "--fsync submitted {} IORING_OP_FSYNC for 40 files",
        counts[0]
    );
    assert_eq!(counts[1], 0, "IORING_OP_FSYNC without --fsync");
    note(&format!(
        "{} IORING_OP_FSYNC submissions with --fsync, {} without",
        counts[0], counts[1]
    ));
}
