//! Setups that need root: dropping to an unprivileged user, and mounts (a small tmpfs to fill,
//! tracefs). Each says why it cannot be had instead of failing, so the test can print `SKIP`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of `nobody`.
pub const NOBODY: libc::uid_t = 65534;

/// Makes the child drop to uid/gid 65534 (and no supplementary groups) before exec.
pub fn as_nobody(cmd: &mut Command) {
    as_user_with(cmd, NOBODY, Vec::new());
}

/// Makes the child set `limits` (resource, value: soft and hard) and then drop to uid/gid `uid`
/// (no supplementary groups) before exec: a process that fails under a limit root ignores.
pub fn as_user_with(
    cmd: &mut Command,
    uid: libc::uid_t,
    limits: Vec<(libc::__rlimit_resource_t, u64)>,
) {
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &(res, v) in &limits {
                let lim = libc::rlimit {
                    rlim_cur: v,
                    rlim_max: v,
                };
                if libc::setrlimit(res, &lim) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(uid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `sh -c script` as nobody; true when it exits 0.
pub fn nobody_sh(script: &str, args: &[&Path]) -> Result<bool, String> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script).arg("sh").args(args);
    as_nobody(&mut c);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c.status()
        .map(|s| s.success())
        .map_err(|e| format!("cannot run a child as uid {NOBODY}: {e}"))
}

fn c_string(s: &[u8]) -> CString {
    CString::new(s).expect("no NUL in mount arguments")
}

/// `mount -t fstype source target [-o data]`, as root; `Err` says why not.
pub fn mount(fstype: &str, source: &str, target: &Path, data: Option<&str>) -> Result<(), String> {
    if !is_root() {
        return Err(format!("not root: cannot mount {fstype}"));
    }
    fs::create_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    let (src, dir, ty) = (
        c_string(source.as_bytes()),
        c_string(target.as_os_str().as_bytes()),
        c_string(fstype.as_bytes()),
    );
    let data = data.map(|d| c_string(d.as_bytes()));
    let data_ptr = data
        .as_ref()
        .map_or(std::ptr::null(), |d| d.as_ptr().cast());
    // SAFETY: valid NUL-terminated strings (or a null data pointer); flags 0.
    let r = unsafe { libc::mount(src.as_ptr(), dir.as_ptr(), ty.as_ptr(), 0, data_ptr) };
    if r != 0 {
        return Err(format!(
            "mount -t {fstype} failed: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Detaches the mount at `target` (lazily: it goes once nothing uses it).
pub fn umount_lazy(target: &Path) {
    let c = c_string(target.as_os_str().as_bytes());
    // SAFETY: a valid path string.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
}

/// A tmpfs mounted for one test; unmounted (lazily) on drop, even when the test panics.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` (`2m`, …) at `dir`, created if missing.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        Tmpfs::with_options(dir, &format!("size={size}"))
    }

    /// A tmpfs at `dir` mounted with `options` (`size=1m,nr_inodes=12`, …).
    pub fn with_options(dir: &Path, options: &str) -> Result<Tmpfs, String> {
        mount("tmpfs", "tmpfs", dir, Some(&format!("{options},mode=0755")))?;
        Ok(Tmpfs(dir.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        umount_lazy(&self.0);
    }
}
