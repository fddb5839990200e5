//! The ring's `openat2` (`IORING_OP_OPENAT2`): a file opened beneath a held directory with
//! nothing followed, in one submission. compio's own open op is `openat`, which has no
//! `RESOLVE_BENEATH`, so before this each ring open first held the file's parent directory
//! (a blocking `openat2` and a `close`) and then opened `/proc/self/fd/N/name` through it:
//! three path walks and two descriptors per file where one walk does.
//!
//! The kernel has the op wherever this engine runs: its probe registers a buffer ring, which
//! needs Linux 5.19, and `IORING_OP_OPENAT2` came in 5.6.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::task::Poll;

use compio::driver::{Decision, Extra, IourOpCode, OpEntry, PollOpCode};
use io_uring::{opcode, types};

use crate::engine::beneath;

/// `openat2(dir, path, how)`; `D` keeps `dir` open until the kernel is done with it (an op
/// outlives a future dropped mid-flight).
pub struct OpenAt2<D> {
    dir: D,
    path: CString,
    how: types::OpenHow,
    flags: libc::c_int,
    mode: u32,
    opened: Option<OwnedFd>,
}

impl<D: AsFd> OpenAt2<D> {
    /// Opens `rel` (relative, no `..`) beneath `dir` with `flags` (`O_CLOEXEC` and
    /// `O_NOFOLLOW` added) and `mode`, no symlink followed on the way.
    fn new(dir: D, rel: &Path, flags: libc::c_int, mode: u32) -> io::Result<Self> {
        let flags = beneath::open_flags(flags);
        Ok(OpenAt2 {
            path: beneath::relative_c_path(rel)?,
            how: types::OpenHow::new()
                .flags(flags as u64)
                .mode(u64::from(mode))
                .resolve(beneath::RESOLVE),
            dir,
            flags,
            mode,
            opened: None,
        })
    }
}

// SAFETY: the entry points at `path` and `how`, which live in the op, and compio keeps the op
// in place until its completion arrives.
unsafe impl<D: AsFd> IourOpCode for OpenAt2<D> {
    type Control = ();

    fn create_entry(&mut self, _: &mut ()) -> OpEntry {
        opcode::OpenAt2::new(
            types::Fd(self.dir.as_fd().as_raw_fd()),
            self.path.as_ptr(),
            &self.how,
        )
        .build()
        .into()
    }

    fn call_blocking(&mut self, _: &mut ()) -> io::Result<usize> {
        self.blocking()
    }

    unsafe fn set_result(&mut self, _: &mut (), res: &io::Result<usize>, _: &Extra) {
        // After a blocking call the descriptor is in place already and `res` is not one.
        if self.opened.is_some() {
            return;
        }
        if let Ok(fd) = res {
            // SAFETY: a descriptor the kernel just opened for this op, owned by nothing else.
            self.opened = Some(unsafe { OwnedFd::from_raw_fd(*fd as libc::c_int) });
        }
    }
}

// SAFETY: the polling driver only runs the blocking call, on its own threads.
unsafe impl<D: AsFd> PollOpCode for OpenAt2<D> {
    type Control = ();

    fn pre_submit(&mut self, _: &mut ()) -> io::Result<Decision> {
        Ok(Decision::Blocking)
    }

    fn operate(&mut self, _: &mut ()) -> Poll<io::Result<usize>> {
        Poll::Ready(self.blocking())
    }
}

impl<D: AsFd> OpenAt2<D> {
    fn blocking(&mut self) -> io::Result<usize> {
        let fd = beneath::openat2(self.dir.as_fd(), &self.path, self.flags, self.mode)?;
        self.opened = Some(fd);
        Ok(0)
    }
}

/// Opens `rel` beneath `dir` through the calling worker's ring (see [`OpenAt2::new`]).
pub async fn open_beneath<D: AsFd + 'static>(
    dir: D,
    rel: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<compio::fs::File> {
    let op = OpenAt2::new(dir, rel, flags, mode)?;
    let compio::buf::BufResult(res, op) = compio::runtime::submit(op).await;
    res?;
    let fd = op
        .opened
        .ok_or_else(|| io::Error::other("openat2 completed without a descriptor"))?;
    // SAFETY: the descriptor is owned and handed over whole.
    Ok(unsafe { compio::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) })
}
