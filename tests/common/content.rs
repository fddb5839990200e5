//! Test content: deterministic bytes, files put in place with their parents, and files made
//! cold (out of the page cache).

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;

/// xorshift64*: deterministic, and fast even unoptimized because it is used a word at a time.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`0` for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let w = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

/// `len` deterministic, incompressible-looking bytes for `seed`: a short, misplaced, repeated or
/// mixed copy never compares equal.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// Writes `data` to `path`, creating its parent directories.
pub fn put(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Drops the file at `path` from the page cache, after flushing it (only clean pages can be
/// dropped), so a copy meets a cold file: what `--copy-method auto` sends through the ring.
pub fn evict(path: &Path) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {} to evict: {e}", path.display()));
    f.sync_all().expect("fsync before evicting");
    // SAFETY: advisory call on an open descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}
