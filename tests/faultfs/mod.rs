//! A FUSE filesystem that injects faults where the data flows: it serves a real directory
//! read-only, and per file can fail a read with `EIO` from a chosen offset on, answer every
//! read short, answer slowly, or change the file's size between the stat and the reads.
//! Optionally every file is opened `direct_io` (no page cache: the reader sees exactly what the
//! server answers). It runs inside the test process on `fuser`'s own threads; the binary under
//! test is a separate process reading through the kernel, as it would from any network or
//! userspace filesystem. [`raw`] is the writable one, spoken without fuser: an out-dir whose
//! closes fail.
#![allow(dead_code)]

pub mod raw;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    Request,
};

/// What goes wrong with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every read that reaches byte `at` or beyond fails with `EIO`.
    Eio { at: u64 },
    /// Every read is answered with at most `max` bytes (a valid answer under `direct_io`; in
    /// page-cache mode the kernel takes a short answer as the end of the file).
    Short { max: u32 },
    /// Every read waits this long before it is answered.
    Slow { per_read: Duration },
    /// From the first open on, the file is `to` bytes long (cut, or grown with other bytes):
    /// the stat before the copy saw the old size.
    Resize { to: u64 },
}

/// How the filesystem behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Open every file `FOPEN_DIRECT_IO`.
    pub direct_io: bool,
    /// Faults by path relative to the served directory.
    pub faults: HashMap<PathBuf, Fault>,
}

/// What the filesystem saw (for tests that prove a fault was really hit).
#[derive(Debug, Default)]
pub struct Stats {
    pub reads: AtomicU64,
    pub eio: AtomicU64,
    pub short: AtomicU64,
}

/// A mounted fault filesystem; unmounted on drop.
pub struct Mount {
    session: Option<BackgroundSession>,
    pub path: PathBuf,
    pub stats: Arc<Stats>,
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            // A reader still inside the mount (a run killed by a failing test) would keep a
            // plain unmount waiting; detach instead.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
            drop(s);
        }
    }
}

/// Why the fault filesystem cannot run here, if it cannot: not root (the mount syscall needs
/// it, and no fusermount is assumed), or no `/dev/fuse`.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the FUSE mount needs the mount syscall".into());
    }
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        return Some(format!("/dev/fuse: {e}"));
    }
    None
}

/// Serves `backing` at `mountpoint` (an existing empty directory) until the result is dropped.
pub fn mount(backing: &Path, mountpoint: &Path, options: Options) -> io::Result<Mount> {
    let stats = Arc::new(Stats::default());
    let fs = FaultFs {
        backing: backing.to_path_buf(),
        options,
        inodes: Mutex::new(Inodes::new()),
        resized: Mutex::new(HashMap::new()),
        stats: stats.clone(),
        opened_any: AtomicBool::new(false),
    };
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("fastcp-faultfs".into()),
        MountOption::DefaultPermissions,
    ];
    // Slow reads must not hold up every other file: several request threads.
    cfg.n_threads = Some(4);
    let session = fuser::spawn_mount(fs, mountpoint, &cfg)?;
    Ok(Mount {
        session: Some(session),
        path: mountpoint.to_path_buf(),
        stats,
    })
}

struct Inodes {
    by_ino: Vec<PathBuf>,
    by_path: HashMap<PathBuf, u64>,
}

impl Inodes {
    fn new() -> Inodes {
        // Inode 1 is the root; index 0 is unused.
        Inodes {
            by_ino: vec![PathBuf::new(), PathBuf::new()],
            by_path: HashMap::from([(PathBuf::new(), 1)]),
        }
    }

    fn ino(&mut self, rel: &Path) -> u64 {
        if let Some(&i) = self.by_path.get(rel) {
            return i;
        }
        let i = self.by_ino.len() as u64;
        self.by_ino.push(rel.to_path_buf());
        self.by_path.insert(rel.to_path_buf(), i);
        i
    }

    fn path(&self, ino: INodeNo) -> Option<PathBuf> {
        self.by_ino
            .get(ino.0 as usize)
            .cloned()
            .filter(|_| ino.0 > 0)
    }
}

struct FaultFs {
    backing: PathBuf,
    options: Options,
    inodes: Mutex<Inodes>,
    /// Files whose `Resize` took effect (opened at least once).
    resized: Mutex<HashMap<PathBuf, u64>>,
    stats: Arc<Stats>,
    opened_any: AtomicBool,
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Byte `i` of the part a `Resize` grew a file by: anything but the source's own bytes.
fn grown_byte(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ 0xA5) as u8
}

impl FaultFs {
    fn rel(&self, ino: INodeNo) -> Option<PathBuf> {
        self.inodes.lock().unwrap().path(ino)
    }

    /// The size this file has now, as served.
    fn size(&self, rel: &Path, real: u64) -> u64 {
        self.resized
            .lock()
            .unwrap()
            .get(rel)
            .copied()
            .unwrap_or(real)
    }

    fn attr(&self, rel: &Path, ino: u64) -> io::Result<FileAttr> {
        let md = fs::symlink_metadata(self.backing.join(rel))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            FileType::Directory
        } else if ft.is_symlink() {
            FileType::Symlink
        } else if ft.is_file() {
            FileType::RegularFile
        } else if ft.is_fifo() {
            FileType::NamedPipe
        } else {
            FileType::CharDevice
        };
        let size = if ft.is_file() {
            self.size(rel, md.len())
        } else {
            md.len()
        };
        let t = |s: i64, ns: i64| {
            if s >= 0 {
                UNIX_EPOCH + Duration::new(s as u64, ns as u32)
            } else {
                UNIX_EPOCH
            }
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t(md.atime(), md.atime_nsec()),
            mtime: t(md.mtime(), md.mtime_nsec()),
            ctime: t(md.ctime(), md.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink() as u32,
            uid: md.uid(),
            gid: md.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Bytes `offset..offset + size` of the file as served (after any resize).
    fn content(&self, rel: &Path, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let f = File::open(self.backing.join(rel))?;
        let real = f.metadata()?.len();
        let len = self.size(rel, real);
        if offset >= len {
            return Ok(Vec::new());
        }
        let end = len.min(offset + u64::from(size));
        let mut buf = vec![0u8; (end - offset) as usize];
        let from_file = real.min(end).saturating_sub(offset) as usize;
        f.read_exact_at(&mut buf[..from_file], offset)?;
        for (k, b) in buf[from_file..].iter_mut().enumerate() {
            *b = grown_byte(offset + (from_file + k) as u64);
        }
        Ok(buf)
    }
}

const TTL: Duration = Duration::ZERO;

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(dir) = self.rel(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let rel = dir.join(name);
        let ino = self.inodes.lock().unwrap().ino(&rel);
        match self.attr(&rel, ino) {
            Ok(a) => reply.entry(&TTL, &a, fuser::Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match self.attr(&rel, ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        match fs::read_link(self.backing.join(rel)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        self.opened_any.store(true, Ordering::Relaxed);
        if let Some(Fault::Resize { to }) = self.options.faults.get(&rel) {
            self.resized.lock().unwrap().insert(rel.clone(), *to);
        }
        let flags = if self.options.direct_io {
            FopenFlags::FOPEN_DIRECT_IO
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(0), flags);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let mut size = size;
        match self.options.faults.get(&rel) {
            Some(Fault::Eio { at }) if offset + u64::from(size) > *at => {
                self.stats.eio.fetch_add(1, Ordering::Relaxed);
                return reply.error(Errno::EIO);
            }
            Some(Fault::Short { max }) if size > *max => {
                self.stats.short.fetch_add(1, Ordering::Relaxed);
                size = *max;
            }
            Some(Fault::Slow { per_read }) => std::thread::sleep(*per_read),
            _ => {}
        }
        match self.content(&rel, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(rel) = self.rel(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let rd = match fs::read_dir(self.backing.join(&rel)) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut names: Vec<(std::ffi::OsString, FileType)> = Vec::new();
        for e in rd {
            let Ok(e) = e else { continue };
            let Ok(ft) = e.file_type() else { continue };
            let kind = if ft.is_dir() {
                FileType::Directory
            } else if ft.is_symlink() {
                FileType::Symlink
            } else {
                FileType::RegularFile
            };
            names.push((e.file_name(), kind));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut all = vec![
            (ino.0, FileType::Directory, std::ffi::OsString::from(".")),
            (ino.0, FileType::Directory, std::ffi::OsString::from("..")),
        ];
        {
            let mut inodes = self.inodes.lock().unwrap();
            for (name, kind) in names {
                let i = inodes.ino(&rel.join(&name));
                all.push((i, kind, name));
            }
        }
        for (k, (i, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), (k + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }
}
