//! A FUSE filesystem spoken directly over `/dev/fuse`: an empty, writable, in-memory directory
//! tree that creates unnamed files (`O_TMPFILE`, the kernel's `FUSE_TMPFILE`, protocol 7.37) and
//! fails the close of every file created that way: the kernel sends `FLUSH` on each `close(2)`
//! and returns the server's error from it, so `EIO` there is a close error after everything else
//! worked, the fault a copy meets when it closes a file it already linked into place.
//!
//! Raw, not `fuser`: fuser 0.18 has no tmpfile operation, and a server without one answers
//! `ENOSYS`, which the kernel turns into `EOPNOTSUPP` for `O_TMPFILE` (the engine then stages
//! named temporaries and the unnamed path is never taken). It serves just what a copy into it
//! and a test reading the copy back need, on one thread; anything else is `ENOSYS`.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// Opcodes, from include/uapi/linux/fuse.h.
const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const SETATTR: u32 = 4;
const MKDIR: u32 = 9;
const LINK: u32 = 13;
const OPEN: u32 = 14;
const READ: u32 = 15;
const WRITE: u32 = 16;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const FSYNC: u32 = 20;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const FSYNCDIR: u32 = 30;
const ACCESS: u32 = 34;
const CREATE: u32 = 35;
const INTERRUPT: u32 = 36;
const DESTROY: u32 = 38;
const BATCH_FORGET: u32 = 42;
const TMPFILE: u32 = 51;

/// The protocol this server speaks: the first with `FUSE_TMPFILE`; nothing newer is needed.
const MINOR: u32 = 37;
/// Largest `WRITE` the kernel may send (and so, with the headers, the read buffer's size).
const MAX_WRITE: u32 = 128 << 10;
/// `FUSE_BIG_WRITES`: writes up to `MAX_WRITE`, not one page each. No `FUSE_WRITEBACK_CACHE`:
/// every write reaches the server before `write(2)` returns, so a `FLUSH` has nothing to write.
const BIG_WRITES: u32 = 1 << 5;
/// `sizeof(struct fuse_in_header)`.
const IN_HEADER: usize = 40;

/// What the server saw, for a test that must prove the unnamed path was taken and failed.
#[derive(Debug, Default)]
pub struct Stats {
    /// Files created unnamed (`FUSE_TMPFILE`).
    pub tmpfiles: AtomicU64,
    /// Names given to existing inodes (`FUSE_LINK`, what `linkat` of an unnamed file sends).
    pub links: AtomicU64,
    /// Failed closes of unnamed files that had a name by then (linked into place).
    pub failed_closes_in_place: AtomicU64,
    /// Failed closes of unnamed files that never got a name.
    pub failed_closes_unnamed: AtomicU64,
}

/// Which closes of files created unnamed fail with `EIO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseFault {
    /// Those made once the file has a name (linked into place).
    AfterLink,
    /// Those made while it has none yet: a duplicate descriptor closed before the link.
    BeforeLink,
}

/// The mounted filesystem; lazily unmounted on drop.
pub struct Mount {
    pub path: PathBuf,
    pub stats: Arc<Stats>,
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Detached, as `faultfs` does: a run still inside (a failing test) must not keep the
        // unmount waiting. The server thread ends when the kernel drops the connection.
        if let Ok(c) = CString::new(self.path.as_os_str().as_bytes()) {
            // SAFETY: a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Mounts the filesystem at `mountpoint` (an existing empty directory) and returns once the
/// kernel and the server agreed on the protocol. `Unsupported` where the kernel's FUSE is older
/// than 7.37 (no `O_TMPFILE`). Needs root and `/dev/fuse` (`super::unavailable`).
pub fn mount(mountpoint: &Path, fault: CloseFault) -> io::Result<Mount> {
    // std opens it close-on-exec: the binary under test must not hold the connection.
    let dev = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let cstr =
        |s: &[u8]| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let target = cstr(mountpoint.as_os_str().as_bytes())?;
    let data = cstr(
        format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            dev.as_raw_fd()
        )
        .as_bytes(),
    )?;
    // SAFETY: valid C strings; `data` is the option string the fuse filesystem parses.
    let r = unsafe {
        libc::mount(
            c"fastcp-closefs".as_ptr(),
            target.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let m = Mount {
        path: mountpoint.to_path_buf(),
        stats: Arc::new(Stats::default()),
    };
    let (tx, rx) = mpsc::channel();
    let server = Server::new(m.stats.clone(), fault, tx);
    std::thread::Builder::new()
        .name("closefs".into())
        .spawn(move || server.serve(dev))?;
    // The kernel sends INIT at mount; its minor version says whether it has FUSE_TMPFILE.
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(minor) if minor >= MINOR => Ok(m),
        Ok(minor) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the kernel's FUSE speaks 7.{minor}: no O_TMPFILE before 7.{MINOR}"),
        )),
        Err(_) => Err(io::Error::other("no FUSE INIT from the kernel within 10 s")),
    }
}

/// One inode: a directory or a regular file, its bytes in memory.
struct Node {
    /// Type and permission bits.
    mode: u32,
    nlink: u32,
    data: Vec<u8>,
    times: [(u64, u32); 3],
    children: BTreeMap<Vec<u8>, u64>,
}

/// Indexes into `Node::times`.
const ATIME: usize = 0;
const MTIME: usize = 1;
const CTIME: usize = 2;

fn now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

impl Node {
    fn new(mode: u32, nlink: u32) -> Node {
        Node {
            mode,
            nlink,
            data: Vec::new(),
            times: [now(); 3],
            children: BTreeMap::new(),
        }
    }

    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

struct Server {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    next_fh: u64,
    /// Open handles of files created unnamed: their `FLUSH` may fail (`fault`).
    unnamed: HashSet<u64>,
    fault: CloseFault,
    stats: Arc<Stats>,
    init: mpsc::Sender<u32>,
}

/// A reply's payload, or the errno to answer with.
type Reply = Result<Vec<u8>, i32>;

/// Little-endian fields of a request body; missing bytes read as 0 (the kernel sends whole
/// structs, but a short body must not panic the only thread that answers the mount).
fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap()))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
}

/// The NUL-terminated name at `at`.
fn name_at(b: &[u8], at: usize) -> &[u8] {
    let s = b.get(at..).unwrap_or_default();
    &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
}

/// Appends little-endian fields.
trait Put {
    fn u16(&mut self, v: u16) -> &mut Self;
    fn u32(&mut self, v: u32) -> &mut Self;
    fn u64(&mut self, v: u64) -> &mut Self;
}

impl Put for Vec<u8> {
    fn u16(&mut self, v: u16) -> &mut Self {
        self.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.extend_from_slice(&v.to_le_bytes());
        self
    }
}

impl Server {
    fn new(stats: Arc<Stats>, fault: CloseFault, init: mpsc::Sender<u32>) -> Server {
        let root = Node::new(libc::S_IFDIR | 0o755, 2);
        Server {
            nodes: HashMap::from([(1, root)]),
            next_ino: 2,
            next_fh: 1,
            unnamed: HashSet::new(),
            fault,
            stats,
            init,
        }
    }

    /// Answers requests until the kernel drops the connection (unmounted: `ENODEV`).
    fn serve(mut self, dev: File) {
        let mut buf = vec![0u8; MAX_WRITE as usize + 4096];
        loop {
            let n = match (&dev).read(&mut buf) {
                Ok(n) => n,
                // ENOENT: the request was interrupted before it was read.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => continue,
                Err(_) => return,
            };
            let req = &buf[..n];
            let (unique, reply) = (u64_at(req, 8), self.handle(req));
            let Some(reply) = reply else { continue };
            let (len, error, payload) = match reply {
                Ok(p) => (16 + p.len(), 0, p),
                Err(errno) => (16, -errno, Vec::new()),
            };
            let mut out = Vec::with_capacity(len);
            out.u32(len as u32).u32(error as u32).u64(unique);
            out.extend_from_slice(&payload);
            // One write per reply. An error (the request was interrupted meanwhile) leaves
            // nothing to do.
            let _ = (&dev).write(&out);
        }
    }

    /// The reply to one request; `None` for those that take none.
    fn handle(&mut self, req: &[u8]) -> Option<Reply> {
        let (op, node) = (u32_at(req, 4), u64_at(req, 16));
        let b = req.get(IN_HEADER..).unwrap_or_default();
        Some(match op {
            FORGET | BATCH_FORGET | INTERRUPT => return None,
            INIT => self.init(b),
            LOOKUP => self.lookup(node, name_at(b, 0)),
            GETATTR => self.attr_out(node),
            SETATTR => self.setattr(node, b),
            MKDIR => self.mkdir(node, u32_at(b, 0), name_at(b, 8)),
            CREATE | TMPFILE => self.create(op, node, u32_at(b, 4), name_at(b, 16)),
            LINK => self.link(u64_at(b, 0), node, name_at(b, 8)),
            OPEN => Ok(self.open_out(false)),
            READ => self.read(node, u64_at(b, 8), u32_at(b, 16)),
            WRITE => {
                let size = u32_at(b, 16) as usize;
                match b.get(40..40 + size) {
                    Some(data) => self.write(node, u64_at(b, 8), data),
                    None => Err(libc::EINVAL),
                }
            }
            FLUSH => self.flush(node, u64_at(b, 0)),
            RELEASE => self.release(node, u64_at(b, 0)),
            OPENDIR => Ok(self.open_out(false)),
            READDIR => self.readdir(node, u64_at(b, 8), u32_at(b, 16)),
            STATFS => Ok(statfs()),
            RELEASEDIR | FSYNC | FSYNCDIR | ACCESS | DESTROY => Ok(Vec::new()),
            _ => Err(libc::ENOSYS),
        })
    }

    fn init(&mut self, b: &[u8]) -> Reply {
        let (major, minor) = (u32_at(b, 0), u32_at(b, 4));
        let _ = self.init.send(if major == 7 { minor } else { 0 });
        let mut out = Vec::with_capacity(64);
        out.u32(7)
            .u32(minor.min(MINOR))
            .u32(u32_at(b, 8)) // max_readahead: the kernel's
            .u32(u32_at(b, 12) & BIG_WRITES)
            .u16(16) // max_background
            .u16(12) // congestion_threshold
            .u32(MAX_WRITE)
            .u32(1); // time_gran: nanoseconds
        out.resize(64, 0); // max_pages (default), flags2, reserved
        Ok(out)
    }

    fn node(&self, ino: u64) -> Result<&Node, i32> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, i32> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    /// `struct fuse_attr` of `ino`.
    fn attr(&self, ino: u64, out: &mut Vec<u8>) -> Result<(), i32> {
        let n = self.node(ino)?;
        let size = n.data.len() as u64;
        out.u64(ino).u64(size).u64(size.div_ceil(512));
        for (s, _) in n.times {
            out.u64(s);
        }
        for (_, ns) in n.times {
            out.u32(ns);
        }
        out.u32(n.mode).u32(n.nlink).u32(0).u32(0); // uid, gid: root's
        out.u32(0).u32(4096).u32(0); // rdev, blksize, flags
        Ok(())
    }

    /// `struct fuse_entry_out` of `ino`; nothing cached (timeouts 0): every access asks.
    fn entry_out(&self, ino: u64) -> Reply {
        let mut out = Vec::with_capacity(128);
        out.u64(ino).u64(1).u64(0).u64(0).u32(0).u32(0);
        self.attr(ino, &mut out)?;
        Ok(out)
    }

    fn attr_out(&self, ino: u64) -> Reply {
        let mut out = Vec::with_capacity(104);
        out.u64(0).u32(0).u32(0);
        self.attr(ino, &mut out)?;
        Ok(out)
    }

    /// A new handle (`struct fuse_open_out`); `unnamed`: one whose close is to fail.
    fn open_out(&mut self, unnamed: bool) -> Vec<u8> {
        let fh = self.next_fh;
        self.next_fh += 1;
        if unnamed {
            self.unnamed.insert(fh);
        }
        let mut out = Vec::with_capacity(16);
        out.u64(fh).u32(0).u32(0);
        out
    }

    fn lookup(&self, dir: u64, name: &[u8]) -> Reply {
        let ino = *self.node(dir)?.children.get(name).ok_or(libc::ENOENT)?;
        self.entry_out(ino)
    }

    /// `name` in `dir` for `ino`, which gains a link.
    fn add_name(&mut self, dir: u64, name: &[u8], ino: u64) -> Result<(), i32> {
        let d = self.node_mut(dir)?;
        if !d.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if d.children.contains_key(name) {
            return Err(libc::EEXIST);
        }
        d.children.insert(name.to_vec(), ino);
        d.times[MTIME] = now();
        let n = self.node_mut(ino)?;
        n.nlink += 1;
        n.times[CTIME] = now();
        Ok(())
    }

    fn new_node(&mut self, mode: u32) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(mode, 0));
        ino
    }

    fn mkdir(&mut self, dir: u64, mode: u32, name: &[u8]) -> Reply {
        self.node(dir)?;
        let ino = self.new_node(libc::S_IFDIR | (mode & 0o7777));
        self.node_mut(ino)?.nlink = 1; // its own "."; `add_name` adds the entry
        self.add_name(dir, name, ino)?;
        self.entry_out(ino)
    }

    /// CREATE (a named file, opened) or TMPFILE (an unnamed one, opened; the kernel's mode has
    /// the umask applied already, as FUSE_DONT_MASK is not asked for).
    fn create(&mut self, op: u32, dir: u64, mode: u32, name: &[u8]) -> Reply {
        if !self.node(dir)?.is_dir() {
            return Err(libc::ENOTDIR);
        }
        if op == CREATE && self.node(dir)?.children.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.new_node(libc::S_IFREG | (mode & 0o7777));
        if op == CREATE {
            self.add_name(dir, name, ino)?;
        } else {
            self.stats.tmpfiles.fetch_add(1, Ordering::Relaxed);
        }
        let mut out = self.entry_out(ino)?;
        out.extend(self.open_out(op == TMPFILE));
        Ok(out)
    }

    fn link(&mut self, ino: u64, dir: u64, name: &[u8]) -> Reply {
        if self.node(ino)?.is_dir() {
            return Err(libc::EPERM);
        }
        self.add_name(dir, name, ino)?;
        self.stats.links.fetch_add(1, Ordering::Relaxed);
        self.entry_out(ino)
    }

    fn setattr(&mut self, ino: u64, b: &[u8]) -> Reply {
        const FATTR_MODE: u32 = 1 << 0;
        const FATTR_SIZE: u32 = 1 << 3;
        const FATTR_ATIME: u32 = 1 << 4;
        const FATTR_MTIME: u32 = 1 << 5;
        const FATTR_ATIME_NOW: u32 = 1 << 7;
        const FATTR_MTIME_NOW: u32 = 1 << 8;
        let valid = u32_at(b, 0);
        let n = self.node_mut(ino)?;
        if valid & FATTR_MODE != 0 {
            n.mode = (n.mode & libc::S_IFMT) | (u32_at(b, 68) & 0o7777);
        }
        if valid & FATTR_SIZE != 0 {
            n.data.resize(u64_at(b, 16) as usize, 0);
        }
        // (the offsets of the seconds and nanoseconds in struct fuse_setattr_in)
        for (set, now_bit, which, secs, nsecs) in [
            (FATTR_ATIME, FATTR_ATIME_NOW, ATIME, 32, 56),
            (FATTR_MTIME, FATTR_MTIME_NOW, MTIME, 40, 60),
        ] {
            if valid & now_bit != 0 {
                n.times[which] = now();
            } else if valid & set != 0 {
                n.times[which] = (u64_at(b, secs), u32_at(b, nsecs));
            }
        }
        n.times[CTIME] = now();
        self.attr_out(ino)
    }

    fn read(&self, ino: u64, offset: u64, size: u32) -> Reply {
        let data = &self.node(ino)?.data;
        let start = (offset as usize).min(data.len());
        let end = (start + size as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Reply {
        let n = self.node_mut(ino)?;
        let (start, end) = (offset as usize, offset as usize + bytes.len());
        if n.data.len() < end {
            n.data.resize(end, 0);
        }
        n.data[start..end].copy_from_slice(bytes);
        n.times[MTIME] = now();
        let mut out = Vec::with_capacity(8);
        out.u32(bytes.len() as u32).u32(0);
        Ok(out)
    }

    /// The injected fault: the close of a file created unnamed fails, after everything it
    /// wrote is stored (writes are synchronous), once it has a name or while it has none
    /// (`fault`).
    fn flush(&mut self, ino: u64, fh: u64) -> Reply {
        if !self.unnamed.contains(&fh) {
            return Ok(Vec::new());
        }
        let (counter, fault) = if self.node(ino)?.nlink > 0 {
            (&self.stats.failed_closes_in_place, CloseFault::AfterLink)
        } else {
            (&self.stats.failed_closes_unnamed, CloseFault::BeforeLink)
        };
        if fault != self.fault {
            return Ok(Vec::new());
        }
        counter.fetch_add(1, Ordering::Relaxed);
        Err(libc::EIO)
    }

    fn release(&mut self, ino: u64, fh: u64) -> Reply {
        self.unnamed.remove(&fh);
        // An unnamed file never linked is gone with its last handle, as on a disk.
        if self.nodes.get(&ino).is_some_and(|n| n.nlink == 0) {
            self.nodes.remove(&ino);
        }
        Ok(Vec::new())
    }

    /// `struct fuse_dirent`s from entry `offset` on, as many as fit in `size` bytes.
    fn readdir(&self, dir: u64, offset: u64, size: u32) -> Reply {
        let mut out = Vec::new();
        for (k, (name, &ino)) in self.node(dir)?.children.iter().enumerate() {
            if (k as u64) < offset {
                continue;
            }
            let rec = (24 + name.len()).next_multiple_of(8);
            if out.len() + rec > size as usize {
                break;
            }
            let kind = if self.node(ino)?.is_dir() {
                libc::DT_DIR
            } else {
                libc::DT_REG
            };
            out.u64(ino)
                .u64(k as u64 + 1)
                .u32(name.len() as u32)
                .u32(u32::from(kind));
            out.extend_from_slice(name);
            out.resize(out.len().next_multiple_of(8), 0);
        }
        Ok(out)
    }
}

/// `struct fuse_kstatfs`: room enough for any test.
fn statfs() -> Vec<u8> {
    let mut out = Vec::with_capacity(80);
    out.u64(1 << 20)
        .u64(1 << 19)
        .u64(1 << 19)
        .u64(1 << 16)
        .u64(1 << 15);
    out.u32(4096).u32(255).u32(4096);
    out.resize(80, 0);
    out
}
