//! The copy engine: executes a Plan through one backend and emits events; it never prints.
//!
//! Every backend moves only regular-file bytes (`Op::Copy`) and shares the rest: directories are
//! made first (inside the out-dir, replacing symlinks, never following them), symlinks and hard
//! links after the data, directory modes and mtimes last, deepest first.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, EngineChoice};
use crate::error::{CopyError, PlanError};
use crate::plan::{Op, Plan};

pub mod file;
pub mod portable;
#[cfg(target_os = "linux")]
pub mod uring;

/// What the engine reports while it runs.
#[derive(Debug)]
pub enum Event {
    /// The run starts: this many files (not directories) and data bytes.
    Started { files: usize, bytes: u64 },
    /// Data bytes moved since the last progress event (for progress bars).
    Progress { bytes: u64 },
    /// Job `index` of the plan is in place under its final name.
    Done { index: usize },
    /// Job `index` failed; the run goes on.
    Failed { index: usize, error: CopyError },
}

/// Receives events, from any worker thread.
pub trait EventSink: Sync {
    fn event(&self, event: Event);
}

/// A way to move regular-file bytes. Backends share this one interface and are chosen once.
pub trait Backend: Sync {
    /// The name users see (`engine` in the summary).
    fn name(&self) -> &str;
    /// Copies each job in `files` (all `Op::Copy`, parents already made) to a temporary name in
    /// its destination directory and renames it into place, reporting through `ctx`.
    fn copy_files(&self, plan: &Plan, files: &[usize], ctx: &Ctx<'_>);
}

const PENDING: u8 = 0;
const OK: u8 = 1;
const FAILED: u8 = 2;

/// Shared state of one run, handed to the backend.
pub struct Ctx<'a> {
    sink: &'a dyn EventSink,
    cancel: &'a AtomicBool,
    state: Vec<AtomicU8>,
    pub fsync: bool,
}

impl Ctx<'_> {
    pub fn done(&self, index: usize) {
        self.state[index].store(OK, Ordering::Release);
        self.sink.event(Event::Done { index });
    }

    pub fn fail(&self, index: usize, error: CopyError) {
        self.state[index].store(FAILED, Ordering::Release);
        self.sink.event(Event::Failed { index, error });
    }

    pub fn progress(&self, bytes: u64) {
        self.sink.event(Event::Progress { bytes });
    }

    /// True once SIGINT/SIGTERM arrived: stop starting work, abandon what is in flight.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn ok(&self, index: usize) -> bool {
        self.state[index].load(Ordering::Acquire) == OK
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub engine: String,
    pub files: usize,
    pub bytes: u64,
    pub errors: usize,
    pub elapsed: Duration,
    pub interrupted: bool,
}

/// The backend chosen for a run, and why (shown at `-v`).
pub struct Chosen {
    pub backend: Box<dyn Backend>,
    pub reason: String,
}

/// Picks the backend once: by platform at compile time, by an io_uring probe at run time.
pub fn choose(cfg: &Config) -> Result<Chosen, PlanError> {
    let portable = |reason: String| Chosen {
        backend: Box::new(portable::Portable::new(cfg.jobs.get())),
        reason,
    };
    match cfg.engine {
        EngineChoice::Portable => Ok(portable("--engine portable".into())),
        #[cfg(target_os = "linux")]
        EngineChoice::Auto | EngineChoice::IoUring => match uring::probe() {
            Ok(()) => Ok(Chosen {
                backend: Box::new(uring::IoUring::new(cfg)),
                reason: "io_uring probe succeeded (ring set up, a buffer-select read submitted and completed, buffer ring registered)".into(),
            }),
            Err(why) if cfg.engine == EngineChoice::Auto => {
                Ok(portable(format!("io_uring unavailable ({why}); using the portable engine")))
            }
            Err(why) => Err(PlanError::EngineUnavailable(why)),
        },
        #[cfg(not(target_os = "linux"))]
        EngineChoice::Auto => Ok(portable("io_uring exists only on Linux".into())),
        #[cfg(not(target_os = "linux"))]
        EngineChoice::IoUring => Err(PlanError::EngineUnavailable(
            "io_uring exists only on Linux".into(),
        )),
    }
}

/// Runs the whole plan: directories, data (through `backend`), links, directory metadata.
pub fn execute(
    plan: &Plan,
    backend: &dyn Backend,
    fsync: bool,
    sink: &dyn EventSink,
    cancel: &AtomicBool,
) -> Summary {
    let start = Instant::now();
    let ctx = Ctx {
        sink,
        cancel,
        state: (0..plan.jobs.len())
            .map(|_| AtomicU8::new(PENDING))
            .collect(),
        fsync,
    };
    sink.event(Event::Started {
        files: plan.file_count(),
        bytes: plan.total_bytes(),
    });

    let dir_errors = make_dirs(plan);
    let mut files = Vec::new();
    let mut links = Vec::new();
    for (i, job) in plan.jobs.iter().enumerate() {
        let parent = job.dst.parent().unwrap_or(Path::new(""));
        let broken = if job.op == Op::Dir {
            dir_errors.get(job.dst.as_path())
        } else {
            dir_errors.get(parent)
        };
        if let Some((path, err)) = broken {
            ctx.fail(i, CopyError::io("create directory", path, clone_io(err)));
            continue;
        }
        match job.op {
            Op::Copy => files.push(i),
            Op::Symlink { .. } | Op::Hardlink { .. } => links.push(i),
            Op::Dir => ctx.state[i].store(OK, Ordering::Release),
        }
    }

    backend.copy_files(plan, &files, &ctx);

    for &i in &links {
        if ctx.cancelled() {
            break;
        }
        let job = &plan.jobs[i];
        let res = match &job.op {
            Op::Symlink { target } => file::place_symlink(target, job),
            Op::Hardlink { of } if ctx.ok(*of) => file::place_hardlink(&plan.jobs[*of].dst, job),
            Op::Hardlink { .. } => Err(CopyError::LinkSourceFailed {
                path: job.src.clone(),
            }),
            _ => continue,
        };
        match res {
            Ok(()) => ctx.done(i),
            Err(e) => ctx.fail(i, e),
        }
    }

    // Deepest first, so setting a parent's mtime comes after its children changed it.
    if !ctx.cancelled() {
        let mut dirs: Vec<usize> = (0..plan.jobs.len())
            .filter(|&i| plan.jobs[i].op == Op::Dir && ctx.ok(i))
            .collect();
        dirs.sort_by_key(|&i| std::cmp::Reverse(plan.jobs[i].dst.components().count()));
        for i in dirs {
            if let Err(e) = file::set_dir_meta(&plan.jobs[i]) {
                ctx.fail(i, e);
            }
        }
        if fsync {
            for dir in &parents(plan) {
                if let Err(e) = file::fsync_dir(dir) {
                    sink.event(Event::Failed {
                        index: usize::MAX,
                        error: e,
                    });
                }
            }
        }
    }

    let interrupted = ctx.cancelled();
    let mut errors = 0;
    let mut files_done = 0;
    let mut bytes = 0;
    for (i, job) in plan.jobs.iter().enumerate() {
        match ctx.state[i].load(Ordering::Acquire) {
            OK if job.op != Op::Dir => {
                files_done += 1;
                if job.op == Op::Copy {
                    bytes += job.size;
                }
            }
            FAILED => errors += 1,
            _ => {}
        }
    }
    Summary {
        engine: backend.name().to_string(),
        files: files_done,
        bytes,
        errors,
        elapsed: start.elapsed(),
        interrupted,
    }
}

/// Every directory the plan writes into; set order puts a parent before its children.
fn parents(plan: &Plan) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for job in &plan.jobs {
        if job.op == Op::Dir {
            dirs.insert(job.dst.clone());
        }
        if let Some(p) = job.dst.parent() {
            dirs.insert(p.to_path_buf());
        }
    }
    dirs
}

/// Makes every directory the plan needs. Returns the ones that failed, with the failing path.
fn make_dirs(plan: &Plan) -> HashMap<PathBuf, (PathBuf, std::io::Error)> {
    let mut failed: HashMap<PathBuf, (PathBuf, std::io::Error)> = HashMap::new();
    if !plan.out_dir.as_os_str().is_empty() {
        if let Err(e) = std::fs::create_dir_all(&plan.out_dir) {
            for dir in parents(plan) {
                failed.insert(dir, (plan.out_dir.clone(), clone_io(&e)));
            }
            return failed;
        }
    }
    // Made or checked in this run. Parents come before their children in `parents`' order, so
    // most directories need one `mkdir` and no walk over their ancestors.
    let mut made: HashSet<PathBuf> = HashSet::new();
    for dir in parents(plan) {
        if let Some(anc) = dir.ancestors().skip(1).find(|a| failed.contains_key(*a)) {
            let (path, e) = &failed[anc];
            let v = (path.clone(), clone_io(e));
            failed.insert(dir, v);
            continue;
        }
        let parent_ok = dir
            .parent()
            .is_some_and(|p| p == plan.out_dir || made.contains(p));
        let res = if parent_ok {
            file::make_dir_in_checked_parent(&dir)
        } else {
            file::ensure_dir(&plan.out_dir, &dir)
        };
        match res {
            Ok(()) => {
                made.insert(dir);
            }
            Err(e) => {
                failed.insert(dir.clone(), (dir, e));
            }
        }
    }
    failed
}

fn clone_io(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}
