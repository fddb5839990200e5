//! Whole-tree staging into a new out-dir (Linux): the run builds the tree in a hidden sibling
//! `.<name>.fastcp-<pid>` and renames it into place at the end. An interrupt leaves neither
//! the hidden tree nor the out-dir; a hidden tree a killed run left is removed by the next run
//! (one whose run is alive is not); two runs into one new out-dir both succeed, the loser placing
//! its files one by one; the output names final paths, never hidden ones.
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{
    assert_faithful_copy, bin_command, bytes, put, reason, send_signal, spawn, summary_of, Scratch,
    Tmpfs, Variant,
};

/// A tree long enough to interrupt: 4 files of 40 MiB first (large files are queued first),
/// then 3,000 small ones in 30 directories. Made once, only read.
fn big_src() -> &'static Path {
    static SRC: OnceLock<&'static Path> = OnceLock::new();
    SRC.get_or_init(|| {
        let root = Scratch::new("fastcp-tree-big-").until_exit();
        let src = root.join("src");
        for i in 0..4u64 {
            put(&src.join(format!("a_big/big{i}.bin")), &bytes(40 << 20, i));
        }
        small_files(&src, 3_000);
        Box::leak(src.into_boxed_path())
    })
}

fn small_files(src: &Path, n: usize) {
    for k in 0..n {
        let text = format!("file {k}\n").repeat(k % 50 + 1);
        put(
            &src.join(format!("b_small/d{:02}/f{k:04}.txt", k % 30)),
            text.as_bytes(),
        );
    }
}

/// A small tree (500 files), made once.
fn small_src() -> &'static Path {
    static SRC: OnceLock<&'static Path> = OnceLock::new();
    SRC.get_or_init(|| {
        let root = Scratch::new("fastcp-tree-small-").until_exit();
        let src = root.join("src");
        small_files(&src, 500);
        Box::leak(src.into_boxed_path())
    })
}

/// `cargo-fastcp -o OUT --from SRC '**' --message-format json` with `variant` and `extra`.
fn copy_cmd(src: &Path, out: &Path, variant: Variant, extra: &[&str]) -> std::process::Command {
    let mut c = bin_command(out.parent().expect("out has a parent"));
    c.arg("-o")
        .arg(out)
        .arg("--from")
        .arg(src)
        .arg("**")
        .args(variant.args())
        .args(["--message-format", "json"])
        .args(extra);
    c
}

/// The hidden trees (`.<name>.fastcp-<pid>`) beside `out`.
fn hidden_trees(out: &Path) -> Vec<PathBuf> {
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!(".{name}.fastcp-");
    fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Waits until the run `pid` has made its hidden tree for `out` (or `limit` passes).
fn wait_for_hidden(out: &Path, pid: i32, limit: Duration) -> PathBuf {
    let name = out.file_name().unwrap().to_string_lossy().into_owned();
    let hidden = out.with_file_name(format!(".{name}.fastcp-{pid}"));
    let start = Instant::now();
    while !hidden.exists() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        hidden.is_dir(),
        "no hidden tree {} appeared",
        hidden.display()
    );
    hidden
}

/// Every `copied` line names a final path under `out` (never a hidden one) that exists.
fn assert_copied_lines_final(lines: &[serde_json::Value], out: &Path, files: usize) {
    let copied = reason(lines, "copied");
    assert_eq!(copied.len(), files, "`copied` lines");
    for c in copied {
        let dst = Path::new(c["dst"].as_str().expect("dst"));
        assert!(dst.starts_with(out), "dst outside the out-dir: {c}");
        assert!(
            dst.symlink_metadata().is_ok(),
            "reported copied but missing: {c}"
        );
    }
}

fn interrupt_leaves_neither_hidden_tree_nor_out_dir(variant: Variant) {
    let t = Scratch::new("fastcp-tree-int-");
    let out = t.path().join("out");
    let p = spawn(copy_cmd(big_src(), &out, variant, &[]));
    let pid = p.pid();
    let hidden = wait_for_hidden(&out, pid, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(100));
    send_signal(pid, libc::SIGINT);
    let d = p
        .wait_within(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("did not stop after SIGINT: {e}"));
    d.expect_code(130, "SIGINT mid-run");
    let lines = d.json();
    let s = summary_of(&lines);
    assert_eq!(s["interrupted"], true, "{}", d.describe());
    assert_eq!(s["files"], 0, "nothing is placed: {s}");
    assert!(reason(&lines, "copied").is_empty(), "{}", d.describe());
    assert!(!hidden.exists(), "hidden tree left: {}", hidden.display());
    assert!(!out.exists(), "the out-dir was made by an interrupted run");
    assert!(hidden_trees(&out).is_empty());
}
engine_cases!(interrupt_leaves_neither_hidden_tree_nor_out_dir);

/// A pid no process has: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = c.id();
    c.wait().expect("wait");
    pid
}

#[test]
fn a_stale_hidden_tree_is_removed_and_a_live_runs_is_kept() {
    let t = Scratch::new("fastcp-tree-stale-");
    let out = t.path().join("out");
    let dead = t.path().join(format!(".out.fastcp-{}", dead_pid()));
    let live = t.path().join(format!(".out.fastcp-{}", std::process::id()));
    let other = t.path().join(format!(".other.fastcp-{}", dead_pid()));
    for d in [&dead, &live, &other] {
        put(&d.join("sub/left.txt"), b"left by a run");
    }
    let d = common::run_cmd(copy_cmd(small_src(), &out, Variant::Portable, &[]));
    d.expect_code(0, "a run beside hidden trees");
    assert!(!dead.exists(), "the dead run's tree was not removed");
    assert!(
        live.join("sub/left.txt").is_file(),
        "a live run's tree was removed"
    );
    assert!(other.exists(), "another out-dir's tree was touched");
    assert_faithful_copy(small_src(), &out);
}

fn two_concurrent_runs_into_one_new_out_dir_both_succeed(variant: Variant) {
    let t = Scratch::new("fastcp-tree-race-");
    let out = t.path().join("out");
    let a = spawn(copy_cmd(small_src(), &out, variant, &[]));
    let b = spawn(copy_cmd(small_src(), &out, variant, &[]));
    for d in [a.wait(), b.wait()] {
        d.expect_code(0, "two runs into one new out-dir");
        let lines = d.json();
        assert_eq!(summary_of(&lines)["errors"], 0, "{}", d.describe());
        assert_copied_lines_final(&lines, &out, 500);
    }
    assert_faithful_copy(small_src(), &out);
    assert!(hidden_trees(&out).is_empty(), "{:?}", hidden_trees(&out));
}
engine_cases!(two_concurrent_runs_into_one_new_out_dir_both_succeed);

/// The rename's loser, made to lose for certain: an out-dir (with a file of its own and a stale
/// copy of one of ours) appears while the run builds its hidden tree. Every file is placed into
/// it one by one; what was there and is not ours stays.
fn an_out_dir_made_mid_run_gets_the_files_one_by_one(variant: Variant) {
    let t = Scratch::new("fastcp-tree-lose-");
    let out = t.path().join("out");
    let p = spawn(copy_cmd(big_src(), &out, variant, &[]));
    wait_for_hidden(&out, p.pid(), Duration::from_secs(60));
    put(&out.join("theirs.txt"), b"not ours");
    put(&out.join("b_small/d00/f0000.txt"), b"an older copy");
    let d = p.wait();
    d.expect_code(0, "a run whose out-dir appeared meanwhile");
    assert_copied_lines_final(&d.json(), &out, 3_004);
    assert_eq!(fs::read(out.join("theirs.txt")).unwrap(), b"not ours");
    fs::remove_file(out.join("theirs.txt")).unwrap();
    assert_faithful_copy(big_src(), &out);
    assert!(hidden_trees(&out).is_empty(), "{:?}", hidden_trees(&out));
}
engine_cases!(an_out_dir_made_mid_run_gets_the_files_one_by_one);

/// `--fsync` and `--checksums` on the whole-tree route: the tree is placed whole and the
/// checksums file lists the final paths.
fn fsync_and_checksums_on_the_whole_tree(variant: Variant) {
    let t = Scratch::new("fastcp-tree-fsync-");
    let out = t.path().join("out");
    let d = common::run_cmd(copy_cmd(
        small_src(),
        &out,
        variant,
        &["--fsync", "--checksums", "sha256"],
    ));
    d.expect_code(0, "--fsync --checksums into a new out-dir");
    let lines = d.json();
    assert_copied_lines_final(&lines, &out, 500);
    let sums = fs::read_to_string(out.join("SHA256SUMS")).expect("SHA256SUMS");
    assert_eq!(sums.lines().count(), 500, "{sums}");
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .expect("sha256sum");
    assert!(check.status.success(), "{check:?}");
    fs::remove_file(out.join("SHA256SUMS")).unwrap();
    assert_faithful_copy(small_src(), &out);
    assert!(hidden_trees(&out).is_empty());
}
engine_cases!(fsync_and_checksums_on_the_whole_tree);

/// A failure on the destination's side inside the hidden tree (the out-dir's filesystem runs out
/// of inodes part way) names each failed file by its final path under the out-dir, never by the
/// hidden tree's name or a `/proc/self/fd/N/…` form; the files that fit are placed.
fn a_failure_in_the_hidden_tree_names_the_final_path(variant: Variant) {
    let t = Scratch::new("fastcp-tree-enospc-");
    let small = t.path().join("small");
    let _mount = match Tmpfs::with_options(&small, "size=1m,nr_inodes=12") {
        Ok(m) => m,
        Err(why) => return common::skip("a_failure_in_the_hidden_tree_names_the_final_path", &why),
    };
    let src = t.path().join("src");
    for k in 0..20 {
        put(
            &src.join(format!("d{}/f{k:02}", k % 2)),
            k.to_string().as_bytes(),
        );
    }
    let out = small.join("out");
    let d = common::run_cmd(copy_cmd(&src, &out, variant, &[]));
    d.expect_code(1, "a new out-dir on a filesystem out of inodes");
    let lines = d.json();
    let failed = reason(&lines, "failed");
    assert!(!failed.is_empty(), "{}", d.describe());
    let mut enospc = 0;
    for f in &failed {
        let error = f["error"].as_str().expect("error");
        // Once no inode is left the rest are not started, named by their source (`enospc_inodes`
        // in tests/faults.rs); the hidden-name check below covers them too.
        if error.ends_with("not copied: the destination is full (no inodes left)") {
            continue;
        }
        enospc += 1;
        let named = format!("{}/d", out.display());
        assert!(error.contains(&named), "{error:?} does not name {named}/…");
        assert!(error.contains("No space left"), "{error:?}");
    }
    assert!(enospc > 0, "a file met ENOSPC: {}", d.describe());
    let said = format!("{}{}", d.stdout, d.stderr);
    assert!(
        !said.contains(".fastcp-"),
        "a hidden name: {}",
        d.describe()
    );
    assert!(
        !said.contains("/proc/self/fd"),
        "a /proc form: {}",
        d.describe()
    );
    let placed = reason(&lines, "copied").len();
    assert_eq!(placed + failed.len(), 20, "{}", d.describe());
    assert!(hidden_trees(&out).is_empty());
}
method_cases!(a_failure_in_the_hidden_tree_names_the_final_path);
