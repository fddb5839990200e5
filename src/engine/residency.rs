//! How much of a file is in the page cache: `cachestat(2)` (Linux 6.5+), else a few
//! `preadv2(RWF_MINCORE)` samples. The router uses it to send warm data to in-kernel copies on
//! plain threads and cold data to the io_uring buffer ring, where many reads wait at once.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};

/// What a probe saw: `cached` of `pages` pages are in the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    pub cached: u64,
    pub pages: u64,
}

impl Residency {
    /// An empty file: no pages, nothing to read.
    pub const EMPTY: Residency = Residency {
        cached: 0,
        pages: 0,
    };

    /// At least half of the pages are cached (an empty file counts as cached: nothing to read).
    /// Half, not all: a file partly evicted still reads mostly from memory, and a file read
    /// cold reads every page from the disk, so the two cases sit far apart.
    pub fn warm(&self) -> bool {
        self.pages == 0 || self.cached * 2 >= self.pages
    }
}

/// Which probe works here, found on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Cachestat,
    Mincore,
}

const UNKNOWN: u8 = 0;
const CACHESTAT: u8 = 1;
const MINCORE: u8 = 2;
static METHOD: AtomicU8 = AtomicU8::new(UNKNOWN);

/// `cachestat` has the same number on every architecture that has it (it came after the
/// syscall tables were unified); libc 0.2 does not export it for most targets.
const SYS_CACHESTAT: libc::c_long = 451;
const PAGE: u64 = 4096;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// The probe this process uses: `cachestat` where the kernel has it, else `mincore`.
pub fn method() -> Method {
    match METHOD.load(Ordering::Relaxed) {
        CACHESTAT => Method::Cachestat,
        MINCORE => Method::Mincore,
        _ => Method::Cachestat,
    }
}

/// How much of the first `len` bytes of `file` is cached. `len` is the planned size; a probe is
/// advice, so any error just means "unknown" (`None`), and the caller routes by its default.
pub fn probe(file: &File, len: u64) -> Option<Residency> {
    if METHOD.load(Ordering::Relaxed) != MINCORE {
        match cachestat(file, len) {
            Ok(r) => {
                METHOD.store(CACHESTAT, Ordering::Relaxed);
                return Some(r);
            }
            // Missing syscall (before 6.5) or filtered (seccomp): mincore from now on.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                METHOD.store(MINCORE, Ordering::Relaxed);
            }
            Err(_) => return None,
        }
    }
    mincore(file, len).ok()
}

/// One `cachestat` over `0..len` (whole pages).
pub fn cachestat(file: &File, len: u64) -> io::Result<Residency> {
    let pages = len.div_ceil(PAGE);
    if pages == 0 {
        return Ok(Residency::EMPTY);
    }
    let range = CachestatRange {
        off: 0,
        len: pages * PAGE,
    };
    let mut cs = Cachestat::default();
    // SAFETY: an open descriptor, a valid range and a zeroed result struct of the kernel's
    // layout (five u64s), flags 0 as the syscall requires.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Residency {
        cached: cs.nr_cache.min(pages),
        pages,
    })
}

/// At most this many pages (256 MiB) are looked at by `mincore`; a file is read from its start,
/// so its first part says what the copy will meet first.
const MINCORE_PAGES: u64 = 1 << 16;

/// `mmap` the file's first pages (no access, nothing is read), ask `mincore` which are
/// resident, unmap. Exact and free of side effects, at three syscalls. (A `preadv2(RWF_MINCORE)`
/// sample was tried first: a miss still starts read-ahead, and on a fast disk that read-ahead
/// completes before the next sample, so evicted files looked cached.) Since Linux 5.2 `mincore`
/// reports a file's real state only to its owner or a writer; anyone else sees every page as
/// resident, so such files are routed as warm, today's default.
pub fn mincore(file: &File, len: u64) -> io::Result<Residency> {
    let pages = len.div_ceil(PAGE);
    if pages == 0 {
        return Ok(Residency::EMPTY);
    }
    let looked = pages.min(MINCORE_PAGES);
    let bytes =
        usize::try_from(looked * PAGE).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a fresh shared read-only mapping of an open descriptor; never dereferenced, only
    // passed to mincore and unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut vec = vec![0u8; looked as usize];
    // SAFETY: `addr..addr+bytes` is the mapping made above; `vec` has one byte per page.
    let r = unsafe { libc::mincore(addr, bytes, vec.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: unmapping exactly the mapping made above.
    unsafe { libc::munmap(addr, bytes) };
    if r != 0 {
        return Err(err);
    }
    let hits = vec.iter().filter(|&&b| b & 1 != 0).count() as u64;
    Ok(Residency {
        cached: hits * pages / looked,
        pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::path::Path;

    /// A file of `len` distinct-ish bytes, synced so `POSIX_FADV_DONTNEED` can drop its pages
    /// (it drops only clean ones). On the build's own filesystem: tmpfs keeps every page.
    fn file_of(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).expect("create");
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        f.write_all(&data).expect("write");
        f.sync_all().expect("fsync");
        p
    }

    fn warm(p: &Path) -> File {
        let mut f = File::open(p).expect("open");
        let mut v = Vec::new();
        f.read_to_end(&mut v).expect("read");
        f
    }

    fn evict(f: &File) {
        // SAFETY: advisory call on an open descriptor.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "fadvise");
    }

    fn scratch() -> tempfile::TempDir {
        // Under target/, on a disk-backed filesystem: /tmp may be tmpfs, whose pages never
        // leave the cache.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&base).expect("target dir");
        tempfile::tempdir_in(base).expect("tempdir")
    }

    fn is_tmpfs(p: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).expect("path");
        // SAFETY: statfs into a zeroed struct we own.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        (unsafe { libc::statfs(c.as_ptr(), &mut st) }) == 0
            && st.f_type as u64 == libc::TMPFS_MAGIC as u64
    }

    /// Warm, a probe sees (nearly) every page; after eviction it sees at most a few. Eviction is
    /// advice the kernel may partly ignore (a page under read-ahead, say), so "cold" is
    /// asserted as "under half", the router's own line, not as zero.
    fn warm_then_cold(probe: fn(&File, u64) -> io::Result<Residency>) {
        let dir = scratch();
        if is_tmpfs(dir.path()) {
            println!("SKIP: the build directory is on tmpfs, whose pages cannot be evicted");
            return;
        }
        for (name, len) in [("one-page", 100usize), ("big", 3 << 20)] {
            let p = file_of(dir.path(), name, len);
            let f = warm(&p);
            let r = probe(&f, len as u64).expect("probe warm");
            assert_eq!(r.pages, (len as u64).div_ceil(PAGE), "{name}");
            assert_eq!(r.cached, r.pages, "{name}: warm but {r:?}");
            assert!(r.warm(), "{name}");
            evict(&f);
            let r = probe(&f, len as u64).expect("probe cold");
            assert!(!r.warm(), "{name}: evicted but {r:?}");
            // And the probe itself pulled nothing in.
            let again = probe(&f, len as u64).expect("probe again");
            assert!(
                !again.warm(),
                "{name}: the probe read the file in: {again:?}"
            );
        }
    }

    #[test]
    fn cachestat_sees_warm_and_evicted_files() {
        let f = File::open("/proc/self/exe").expect("open");
        if let Err(e) = cachestat(&f, 4096) {
            if e.raw_os_error() == Some(libc::ENOSYS) {
                println!("SKIP: this kernel has no cachestat (Linux < 6.5); fallback tested below");
                return;
            }
        }
        warm_then_cold(cachestat);
    }

    #[test]
    fn mincore_sees_warm_and_evicted_files() {
        warm_then_cold(mincore);
    }

    #[test]
    fn probe_of_an_empty_file_is_warm() {
        let dir = scratch();
        let p = file_of(dir.path(), "empty", 0);
        let f = File::open(p).expect("open");
        let r = probe(&f, 0).expect("probe");
        assert_eq!(r.pages, 0);
        assert!(r.warm());
    }

    #[test]
    fn partly_cached_file_is_measured_by_pages() {
        let dir = scratch();
        if is_tmpfs(dir.path()) {
            println!("SKIP: tmpfs");
            return;
        }
        let len = 64 * PAGE as usize;
        let p = file_of(dir.path(), "half", len);
        let f = warm(&p);
        evict(&f);
        // Read back the first quarter only, without read-ahead pulling in the rest.
        // SAFETY: advisory call on an open descriptor.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        let mut g = File::open(&p).expect("open");
        // SAFETY: as above, on the descriptor used for the read.
        unsafe { libc::posix_fadvise(g.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        let mut buf = vec![0u8; len / 4];
        g.read_exact(&mut buf).expect("read");
        for (name, r) in [
            ("cachestat", cachestat(&f, len as u64)),
            ("mincore", mincore(&f, len as u64)),
        ] {
            let Ok(r) = r else {
                println!("SKIP: {name} unavailable: {r:?}");
                continue;
            };
            assert_eq!(r.pages, 64);
            assert!(
                (16..64).contains(&r.cached),
                "{name}: a quarter read back, yet {r:?}"
            );
        }
    }
}
