//! Building one worker's compio runtime: a real io_uring driver (never the silent poll fallback)
//! and its buffer ring of page-aligned buffers.
use std::alloc::{self, Layout};
use std::io;
use std::mem::MaybeUninit;
use std::num::NonZeroU16;
use std::ptr::NonNull;

use compio::driver::op::OpCodeFlag;
use compio::driver::{BufferAllocator, DriverType, ProactorBuilder};
use compio::runtime::{Runtime, RuntimeBuilder};

/// The kernel's limit on entries in one provided-buffer ring, and the largest count compio
/// accepts (its `u16` rounding up to a power of two overflows above it).
pub const MAX_BUFFERS: u16 = 32768;

const PAGE: usize = 4096;

/// Allocates pool buffers on page boundaries. Measured here before: compio's default `Box`
/// allocator puts buffers at page offset 16, and the kernel's `_copy_to_iter` into such buffers
/// gave intermittent 3-5x slow runs; page-aligned buffers removed them and gained 10-30%.
pub struct PageAligned;

fn layout(len: u32) -> Layout {
    // A page-multiple size keeps the next allocation page-aligned too and cannot fail: `len`
    // fits in u32 and PAGE is a power of two.
    let size = (len as usize).max(1).next_multiple_of(PAGE);
    match Layout::from_size_align(size, PAGE) {
        Ok(l) => l,
        Err(_) => alloc::handle_alloc_error(Layout::new::<[u8; PAGE]>()),
    }
}

impl BufferAllocator for PageAligned {
    fn allocate(len: u32) -> NonNull<MaybeUninit<u8>> {
        let layout = layout(len);
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        match NonNull::new(ptr.cast::<MaybeUninit<u8>>()) {
            Some(p) => p,
            None => alloc::handle_alloc_error(layout),
        }
    }

    unsafe fn deallocate(ptr: NonNull<MaybeUninit<u8>>, len: u32) {
        // SAFETY: compio hands back a pointer `allocate` returned for the same `len`, so the
        // layout matches the one it was allocated with.
        unsafe { alloc::dealloc(ptr.as_ptr().cast(), layout(len)) }
    }
}

/// The shape of a worker's buffer ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Buffers in the ring: a power of two, 1..=32768.
    pub buffers: u16,
    /// Bytes per buffer: a page multiple.
    pub buffer_len: usize,
}

impl PoolShape {
    /// Clamps a requested shape to what compio and the kernel accept: the count rounded up to a
    /// power of two and at most 32768 (compio panics above), the length a page multiple
    /// between 4 KiB and 16 MiB.
    pub fn new(buffers: usize, buffer_len: usize) -> PoolShape {
        let buffers = buffers.clamp(1, MAX_BUFFERS as usize).next_power_of_two() as u16;
        let buffer_len = buffer_len.clamp(PAGE, 16 << 20).next_multiple_of(PAGE);
        PoolShape {
            buffers,
            buffer_len,
        }
    }
}

/// The io_uring setup flags a worker's ring asks for: `SINGLE_ISSUER` (only the worker's own
/// thread submits, so the kernel skips cross-thread locking) and `COOP_TASKRUN` (completions
/// run when the worker next enters the kernel, not by interrupting it). Measured on 10,000
/// small files through the ring: see docs/copy-method.md. `Config::tuning` can override them
/// for measurement: a comma-separated list of `single_issuer`, `coop_taskrun`,
/// `defer_taskrun`, `taskrun_flag`, or `none`.
pub const DEFAULT_SETUP: &str = "single_issuer,coop_taskrun";

/// Builds a runtime on the calling thread whose driver is io_uring (compio's fusion driver
/// would otherwise fall back to `poll` when `io_uring_setup` fails, and run every file op on
/// its blocking pool) with the opcodes the engine submits, and a buffer ring of `shape`.
/// A kernel that refuses the setup flags (`SINGLE_ISSUER` needs 6.0) gets a ring without them.
pub fn build(shape: PoolShape) -> io::Result<Runtime> {
    build_with_setup(shape, DEFAULT_SETUP)
}

/// [`build`] with the setup flags `setup` (see [`DEFAULT_SETUP`]).
pub fn build_with_setup(shape: PoolShape, setup: &str) -> io::Result<Runtime> {
    match build_with(shape, setup) {
        Err(e) if setup != "none" && e.raw_os_error() == Some(libc::EINVAL) => {
            build_with(shape, "none")
        }
        res => res,
    }
}

fn build_with(shape: PoolShape, setup: &str) -> io::Result<Runtime> {
    let mut pb = ProactorBuilder::new();
    pb.driver_type(DriverType::IoUring)
        .detect_opcode_support(
            OpCodeFlag::Read
                | OpCodeFlag::Write
                | OpCodeFlag::OpenAt
                | OpCodeFlag::Close
                | OpCodeFlag::Fsync,
        )
        // Room for every lane's reads and writes without the SQ filling up mid-batch.
        .capacity(1024)
        .buffer_pool_size(NonZeroU16::new(shape.buffers).unwrap_or(NonZeroU16::MIN))
        .buffer_pool_buffer_len(shape.buffer_len)
        .buffer_pool_allocator::<PageAligned>();
    for flag in setup.split(',').map(str::trim) {
        match flag {
            "single_issuer" => pb.single_issuer(true),
            "coop_taskrun" => pb.coop_taskrun(true),
            // DEFER_TASKRUN is refused without SINGLE_ISSUER.
            "defer_taskrun" => pb.single_issuer(true).defer_taskrun(true),
            "taskrun_flag" => pb.taskrun_flag(true),
            _ => &mut pb,
        };
    }
    let rt = RuntimeBuilder::new().with_proactor(pb).build()?;
    if rt.driver_type() != DriverType::IoUring {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "compio chose the {:?} driver, not io_uring",
                rt.driver_type()
            ),
        ));
    }
    // The pool is made lazily; make it now so a failing buffer-ring registration shows here.
    if !rt.buffer_pool()?.is_io_uring()? {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the buffer pool is not an io_uring provided-buffer ring",
        ));
    }
    Ok(rt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_clamped() {
        assert_eq!(PoolShape::new(0, 0), PoolShape::new(1, 4096));
        assert_eq!(PoolShape::new(100, 5000).buffers, 128);
        assert_eq!(PoolShape::new(100, 5000).buffer_len, 8192);
        assert_eq!(PoolShape::new(40000, 1 << 30).buffers, MAX_BUFFERS);
        assert_eq!(PoolShape::new(40000, 1 << 30).buffer_len, 16 << 20);
    }

    #[test]
    fn buffers_are_page_aligned() {
        let p = PageAligned::allocate(12345);
        assert_eq!(p.as_ptr() as usize % PAGE, 0);
        // SAFETY: allocated just above with the same length.
        unsafe { PageAligned::deallocate(p, 12345) };
    }
}
