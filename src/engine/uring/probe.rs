//! The io_uring probe run before the engine commits: can this process really use io_uring?
//!
//! Three ways it can be missing, each seen in the wild: `io_uring_setup` denied (seccomp in
//! containers, `kernel.io_uring_disabled`), where compio's fusion driver silently picks `poll`;
//! only `io_uring_enter` denied, where compio picks io_uring and then panics in its poll loop;
//! and provided-buffer rings unsupported (kernels before 5.19).
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use compio::io::AsyncReadManagedAt;

use super::panic_text;
use super::ring::{self, PoolShape};

/// Succeeds when a ring is set up, a real operation is submitted and completed through
/// compio's io_uring driver (open `/dev/zero`, a buffer-select read of 16 bytes into the buffer
/// ring, close), and the buffer pool reports itself as an io_uring one.
pub fn probe() -> Result<(), String> {
    raw_syscalls()?;
    // compio panics rather than errors when the kernel refuses a submit, so the compio part
    // runs on a throwaway thread: a panic there is a failed probe, never a dead process.
    let probe = std::thread::Builder::new()
        .name("fastcp-uring-probe".into())
        .spawn(|| catch_unwind(AssertUnwindSafe(through_compio)))
        .map_err(|e| format!("cannot start the probe thread: {e}"))?;
    match probe.join() {
        Ok(Ok(res)) => res,
        Ok(Err(panic)) | Err(panic) => Err(format!(
            "compio's io_uring driver panicked: {}",
            panic_text(&panic)
        )),
    }
}

/// `io_uring_setup` then an `io_uring_enter` that submits and waits for nothing: both must be
/// allowed. Done by hand first so the common refusals give a clean reason, without compio
/// printing a panic.
fn raw_syscalls() -> Result<(), String> {
    // struct io_uring_params is 120 bytes; the kernel fills it in. Zeroed means no flags.
    let mut params = [0u32; 30];
    // SAFETY: io_uring_setup(entries, params) with a writable, correctly sized params buffer.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 2u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(format!("io_uring_setup: {}", io::Error::last_os_error()));
    }
    let fd = fd as libc::c_int;
    // SAFETY: io_uring_enter(fd, to_submit=0, min_complete=0, flags=0, sig=NULL, sz=0) only
    // asks whether entering is allowed; it touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            0u32,
            0u32,
            0u32,
            std::ptr::null::<libc::c_void>(),
            0usize,
        )
    };
    let enter_err = (r < 0).then(io::Error::last_os_error);
    // compio learns the supported opcodes through IORING_REGISTER_PROBE and registers the
    // buffer ring through io_uring_register too; where a filter denies only that call, compio
    // would call every opcode unsupported. Asking here names the real cause.
    const IORING_REGISTER_PROBE: u32 = 8;
    // struct io_uring_probe (16 bytes) followed by 256 struct io_uring_probe_op (8 bytes each).
    let mut probe_buf = [0u64; 2 + 256];
    // SAFETY: io_uring_register(fd, PROBE, buf, nr_ops) with a zeroed buffer large enough for
    // the header and 256 ops, as the kernel requires.
    let reg = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd,
            IORING_REGISTER_PROBE,
            probe_buf.as_mut_ptr(),
            256u32,
        )
    };
    let reg_err = (reg < 0).then(io::Error::last_os_error);
    // SAFETY: closing the ring descriptor opened above, exactly once.
    unsafe { libc::close(fd) };
    if let Some(err) = enter_err {
        return Err(format!("io_uring_enter: {err}"));
    }
    match reg_err {
        // EINVAL: a kernel without the probe opcode (before 5.6); compio copes with that.
        Some(err) if err.raw_os_error() != Some(libc::EINVAL) => {
            Err(format!("io_uring_register: {err}"))
        }
        _ => Ok(()),
    }
}

fn through_compio() -> Result<(), String> {
    let rt = ring::build(PoolShape::new(2, 4096)).map_err(|e| format!("io_uring driver: {e}"))?;
    rt.block_on(async {
        let f = compio::fs::File::open("/dev/zero")
            .await
            .map_err(|e| format!("open /dev/zero through io_uring: {e}"))?;
        let buf = f
            .read_managed_at(16, 0)
            .await
            .map_err(|e| format!("buffer-ring read through io_uring: {e}"))?;
        match buf {
            Some(b) if b.len() == 16 && b.iter().all(|&x| x == 0) => {}
            Some(b) => {
                return Err(format!(
                    "buffer-ring read returned {} bytes, not 16",
                    b.len()
                ))
            }
            None => return Err("buffer-ring read of /dev/zero returned end of file".into()),
        }
        f.close()
            .await
            .map_err(|e| format!("close through io_uring: {e}"))
    })
}
