//! Reflinks, proven on real filesystems: an XFS image (reflink is mkfs.xfs's default) and a
//! btrfs image, loop-mounted; a `bins`-like tree copied there by the real binary shares its
//! extents with the source (FIEMAP's shared flag, through `filefrag -v`) and does not use up
//! free space by the bytes copied. A plain `cp --reflink=never` is the control that shows both
//! checks fail when bytes are copied. Speed (against ext4) is the bench's business.
//!
//! Needs root (mkfs on an image, loop mounts): prints `SKIP:` and returns where mounting is not
//! allowed. `mkfs.xfs`/`mkfs.btrfs` missing is a failure, not a skip: `.ci/run` installs them.
#![cfg(target_os = "linux")]

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{is_root, BIN};

const MIB: usize = 1 << 20;

/// A loop-mounted filesystem image, unmounted and deleted on drop.
struct Mounted {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Makes a `size`-byte image with `mkfs` and mounts it. `None` (after a printed SKIP) where
/// mounting is not allowed here.
fn mount(fs_type: &str, mkfs: &[&str], size: u64) -> Option<Mounted> {
    if !is_root() {
        println!("SKIP: {fs_type} reflink test: mkfs and loop mounts need root");
        return None;
    }
    let tmp = tempfile::Builder::new()
        .prefix("fastcp-reflink-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    let img = tmp.path().join(format!("{fs_type}.img"));
    File::create(&img)
        .and_then(|f| f.set_len(size))
        .expect("image file");
    let out = Command::new(mkfs[0])
        .args(&mkfs[1..])
        .arg(&img)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install {} (.ci/run does)",
                mkfs[0],
                if fs_type == "xfs" {
                    "xfsprogs"
                } else {
                    "btrfs-progs"
                }
            )
        });
    assert!(
        out.status.success(),
        "{mkfs:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tmp.path().join("mnt");
    fs::create_dir(&dir).expect("mount point");
    let out = Command::new("mount")
        .args(["-t", fs_type, "-o", "loop"])
        .arg(&img)
        .arg(&dir)
        .output()
        .expect("run mount");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A container without loop devices or without CAP_SYS_ADMIN: not something a test can
        // fix. Anything else is a real failure.
        let not_allowed = [
            "permission denied",
            "not permitted",
            "failed to setup loop",
            "no such device",
            "could not find any free loop",
        ]
        .iter()
        .any(|s| err.to_lowercase().contains(s));
        if not_allowed || !Path::new("/dev/loop-control").exists() {
            println!(
                "SKIP: {fs_type} reflink test: cannot loop-mount here: {}",
                err.trim()
            );
            return None;
        }
        panic!("mount -t {fs_type} -o loop failed: {err}");
    }
    Some(Mounted { _tmp: tmp, dir })
}

/// Distinct bytes per file and per 4 KiB block, so no filesystem could share them by dedup.
fn write_file(path: &Path, len: usize, seed: u64) {
    let mut f = File::create(path).expect("create");
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        buf.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    buf.truncate(len);
    f.write_all(&buf).expect("write");
    f.sync_all().expect("fsync");
}

/// A small `bins`: executables of a few MiB (odd sizes, one not a block multiple), one just
/// above the io-uring engine's size threshold (64 KiB), and a small file, which is copied
/// byte by byte on purpose and so is not checked for sharing.
const FILES: &[(&str, usize, bool)] = &[
    ("bin/app", 9 * MIB + 123, true),
    ("bin/tool", 6 * MIB, true),
    ("lib/libcore.so", 3 * MIB + 1, true),
    ("lib/plugin.so", 100 << 10, true),
    ("README", 10 << 10, false),
];

fn make_bins(src: &Path) {
    for (i, (name, len, _)) in FILES.iter().enumerate() {
        let p = src.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        write_file(&p, *len, i as u64 + 1);
    }
}

fn shared_bytes() -> u64 {
    FILES.iter().filter(|f| f.2).map(|f| f.1 as u64).sum()
}

/// Free bytes of the filesystem at `dir`, after a `sync` so delayed allocation has happened.
fn free_bytes(dir: &Path) -> u64 {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path");
    // SAFETY: statvfs into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    st.f_bfree * st.f_frsize
}

/// `filefrag -v`: the extents of `path` and whether each carries the shared flag.
fn extents(path: &Path) -> Vec<(String, bool)> {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .expect("run filefrag (e2fsprogs)");
    assert!(
        out.status.success(),
        "filefrag -v {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // Extent lines start with "<n>:"; the flags are the last column.
        .filter(|l| {
            l.trim_start()
                .split(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
        })
        .map(|l| (l.trim().to_string(), l.contains("shared")))
        .collect()
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    fs::read(a).expect("read source") == fs::read(b).expect("read copy")
}

/// Drops the source's pages, so the copy meets a cold file (the router must still reflink).
fn evict(root: &Path) {
    for (name, _, _) in FILES {
        common::evict(&root.join(name));
    }
}

/// What one copy did: its extents' sharing and the free space it used.
struct Outcome {
    unshared: Vec<String>,
    used: u64,
}

fn copy_and_measure(m: &Mounted, out: &str, cmd: &mut Command) -> Outcome {
    let src = m.dir.join("src");
    let dst = m.dir.join(out);
    let before = free_bytes(&m.dir);
    let res = cmd.output().expect("run the copy");
    assert!(
        res.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
    let after = free_bytes(&m.dir);
    let mut unshared = Vec::new();
    for (name, _, check) in FILES {
        let (s, d) = (src.join(name), dst.join(name));
        assert!(same_bytes(&s, &d), "{out}: {name} differs from its source");
        if !check {
            continue;
        }
        let ext = extents(&d);
        assert!(
            !ext.is_empty(),
            "{out}: filefrag found no extents in {name}"
        );
        for (line, shared) in ext {
            if !shared {
                unshared.push(format!("{name}: {line}"));
            }
        }
    }
    Outcome {
        unshared,
        used: before.saturating_sub(after),
    }
}

fn fastcp(m: &Mounted, out: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("-o")
        .arg(m.dir.join(out))
        .arg("--from")
        .arg(m.dir.join("src"))
        .arg("**")
        .arg("-q")
        .args(extra);
    c
}

fn reflinks_on(fs_type: &str, mkfs: &[&str], size: u64) {
    let Some(m) = mount(fs_type, mkfs, size) else {
        return;
    };
    make_bins(&m.dir.join("src"));
    let bytes = shared_bytes();

    // The control: a copy of the bytes is seen as such by both checks.
    let mut cp = Command::new("cp");
    cp.args(["-r", "--reflink=never"])
        .arg(m.dir.join("src"))
        .arg(m.dir.join("control"));
    let control = copy_and_measure(&m, "control", &mut cp);
    assert!(
        !control.unshared.is_empty(),
        "{fs_type}: a byte copy showed shared extents: the check proves nothing"
    );
    assert!(
        control.used >= bytes * 9 / 10,
        "{fs_type}: a byte copy of {bytes} bytes used only {} bytes of free space",
        control.used
    );

    let cases: [(&str, &[&str], bool); 4] = [
        ("default", &[], false),
        ("default-cold", &[], true),
        ("portable", &["--engine", "portable"], false),
        ("portable-cold", &["--engine", "portable"], true),
    ];
    for (out, extra, cold) in cases {
        if cold {
            evict(&m.dir.join("src"));
        }
        let got = copy_and_measure(&m, out, &mut fastcp(&m, out, extra));
        assert!(
            got.unshared.is_empty(),
            "{fs_type} {out}: extents not shared:\n{}",
            got.unshared.join("\n")
        );
        // Sharing costs metadata only: far less than the bytes (allow a tenth).
        assert!(
            got.used < bytes / 10,
            "{fs_type} {out}: free space dropped by {} bytes for {bytes} bytes of reflinked data",
            got.used
        );
        println!(
            "{fs_type} {out}: all extents shared; free space used {} KiB for {} KiB copied (control: {} KiB)",
            got.used >> 10,
            bytes >> 10,
            control.used >> 10
        );
    }
}

#[test]
fn xfs_copies_share_extents() {
    // 300 MiB is mkfs.xfs's minimum size.
    reflinks_on("xfs", &["mkfs.xfs", "-q", "-f"], 320 << 20);
}

#[test]
fn btrfs_copies_share_extents() {
    reflinks_on("btrfs", &["mkfs.btrfs", "-q", "-f"], 256 << 20);
}
