//! The copy engine: executes a Plan through one backend and emits events; it never prints.
//!
//! Every backend moves only regular-file bytes (`Op::Copy`) and shares the rest: directories are
//! made first (inside the out-dir, replacing symlinks, never following them), symlinks and hard
//! links after the data, directory modes and mtimes last, deepest first. Into an out-dir that
//! does not exist, all of it is built in a hidden sibling that is renamed into place at the end
//! (`tree`).
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::{Config, EngineChoice};
use crate::error::{CopyError, PlanError};
use crate::plan::{Job, Op, Plan, Selection};
pub use queue::FileQueue;
pub use stage::{Placement, Staging};

#[cfg(target_os = "linux")]
pub mod beneath;
pub mod file;
pub mod portable;
pub mod queue;
#[cfg(target_os = "linux")]
pub mod residency;
pub mod stage;
#[cfg(test)]
mod tests;
pub mod tree;
#[cfg(target_os = "linux")]
pub mod uring;

/// What the engine reports while it runs.
#[derive(Debug)]
pub enum Event {
    /// The run starts: this many files (not directories) and data bytes. When the walk is still
    /// running, this is what it found so far; `Planned` adds the rest.
    Started { files: usize, bytes: u64 },
    /// The still-running walk found this many more files and bytes.
    Planned { files: usize, bytes: u64 },
    /// Data bytes moved since the last progress event (for progress bars).
    Progress { bytes: u64 },
    /// Job `index` of the plan is in place under its final name. Into a new out-dir (built as a
    /// hidden tree), every `Done` comes once the tree is in place, at the end of the run; an
    /// interrupt removes the tree, and then there is none.
    Done { index: usize },
    /// Job `index` failed; the run goes on.
    Failed { index: usize, error: CopyError },
    /// A part of the source the feed could not read (`CopyError::Unwalked`): what is below it
    /// is not in the plan; the run goes on.
    Unwalked { error: CopyError },
    /// A directory the run wrote into could not be synced (`--fsync`): a failure that is no
    /// single job's.
    DirSyncFailed { error: CopyError },
}

/// Receives events, from any worker thread.
pub trait EventSink: Sync {
    fn event(&self, event: Event);

    /// Where copied files' digests go when the run wants them (`--checksums`): the engine then
    /// hashes the bytes it moves through its own memory, and reads back once what the kernel
    /// copied for it. A digest is in place before the file's `Done`.
    fn hash_into(&self) -> Option<&crate::bundle::Digests> {
        None
    }
}

/// A way to move regular-file bytes. Backends share this one interface and are chosen once.
pub trait Backend: Sync {
    /// The name users see (`engine` in the summary).
    fn name(&self) -> &str;
    /// Copies each job taken from `files` (all `Op::Copy`, parents already made), staged out of
    /// sight and placed atomically, reporting each through `ctx`, until the queue is closed and
    /// empty. Returns why it stopped early, if it did (its untaken files are then failed with
    /// that reason).
    fn copy_files(&self, plan: &Plan, files: &FileQueue, ctx: &Ctx<'_>) -> Option<String>;
    /// How many files took each route, for a backend that routes them (`-v`, JSON summary).
    fn routes(&self) -> Vec<(&'static str, usize)> {
        Vec::new()
    }
}

const PENDING: u8 = 0;
const OK: u8 = 1;
const FAILED: u8 = 2;

/// Shared state of one run, handed to the backend.
pub struct Ctx<'a> {
    sink: &'a dyn EventSink,
    cancel: &'a AtomicBool,
    state: States,
    /// How files are staged and placed, the same for every backend.
    pub staging: Staging,
    /// Set when the destination's device said it is full (ENOSPC, EDQUOT) during this run.
    full: AtomicBool,
    /// Where free space is asked about once `full` is set (the hidden tree, when there is one:
    /// the out-dir does not exist yet).
    out_dir: PathBuf,
    /// The hidden tree this run builds, into a new out-dir.
    tree: Option<tree::Tree>,
}

/// Per job: pending, done or failed. Allocated in blocks as the plan grows, so a streamed plan
/// needs no size up front and no lock.
struct States {
    blocks: Box<[OnceLock<Box<[AtomicU8]>>]>,
}

const STATE_BLOCK: usize = 1 << 16;
/// 2^32 jobs: far beyond any tree a run can hold in memory.
const STATE_BLOCKS: usize = 1 << 16;

impl States {
    fn new() -> States {
        States {
            blocks: (0..STATE_BLOCKS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn slot(&self, index: usize) -> Option<&AtomicU8> {
        let block = self
            .blocks
            .get(index / STATE_BLOCK)?
            .get_or_init(|| (0..STATE_BLOCK).map(|_| AtomicU8::new(PENDING)).collect());
        block.get(index % STATE_BLOCK)
    }

    fn set(&self, index: usize, v: u8) {
        if let Some(s) = self.slot(index) {
            s.store(v, Ordering::Release);
        }
    }

    fn get(&self, index: usize) -> u8 {
        self.slot(index)
            .map_or(FAILED, |s| s.load(Ordering::Acquire))
    }
}

impl Ctx<'_> {
    /// See [`EventSink::hash_into`].
    pub fn digests(&self) -> Option<&crate::bundle::Digests> {
        self.sink.hash_into()
    }

    /// Job `index` is finished. In a hidden tree its `Done` waits for the tree's placement
    /// ([`Run::place_tree`]): a `Done` names a file that is under its final name.
    pub fn done(&self, index: usize) {
        self.state.set(index, OK);
        if self.tree.is_none() {
            self.sink.event(Event::Done { index });
        }
    }

    pub fn fail(&self, index: usize, mut error: CopyError) {
        // A path in the hidden tree is named as the out-dir path the user asked for.
        if let (Some(tree), Some(path)) = (&self.tree, error.path_mut()) {
            if let Some(final_path) = tree.unmap(path) {
                *path = final_path;
            }
        }
        if error.is_out_of_space() {
            self.full.store(true, Ordering::Relaxed);
        }
        self.state.set(index, FAILED);
        self.sink.event(Event::Failed { index, error });
    }

    pub fn progress(&self, bytes: u64) {
        self.sink.event(Event::Progress { bytes });
    }

    /// Whether to start `job`. Once the destination filled up in this run, a file is started
    /// only if the space its device reports free can hold it and an inode is left: a full
    /// device then costs one `statvfs` per file left, not an open, a failed write and a cleanup
    /// each, and the files left are reported as not copied for that reason.
    pub fn admit(&self, job: &Job) -> Result<(), CopyError> {
        if !self.full.load(Ordering::Relaxed) {
            return Ok(());
        }
        match file::free_space(&self.out_dir) {
            // Out of inodes (a tmpfs's nr_inodes, a small ext4): no file can be created,
            // whatever the free bytes say.
            Some(free) if free.inodes == Some(0) => Err(CopyError::DestinationFull {
                path: job.src.clone(),
                free: free.bytes,
                no_inodes: true,
            }),
            Some(free) if job.size.div_ceil(free.block).saturating_mul(free.block) > free.bytes => {
                Err(CopyError::DestinationFull {
                    path: job.src.clone(),
                    free: free.bytes,
                    no_inodes: false,
                })
            }
            _ => Ok(()),
        }
    }

    /// Where `job` is written: its destination, or its place in the hidden tree.
    pub fn dst<'j>(&self, job: &'j Job) -> Cow<'j, Path> {
        self.at(&job.dst)
    }

    /// Where a path of the out-dir is written in this run.
    fn at<'p>(&self, path: &'p Path) -> Cow<'p, Path> {
        match &self.tree {
            Some(t) => t.map(path),
            None => Cow::Borrowed(path),
        }
    }

    /// True once SIGINT/SIGTERM arrived: stop starting work, abandon what is in flight.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn ok(&self, index: usize) -> bool {
        self.state.get(index) == OK
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
    /// Files per route taken, where the backend routes (empty otherwise).
    pub routes: Vec<(&'static str, usize)>,
    /// Why the out-dir could not be made when the run came to make it (the up-front check
    /// passed, the filesystem refused): the run then wrote nothing and stopped.
    pub out_dir_error: Option<String>,
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

/// Runs a selection: copies its plan with [`execute`] while a fed plan's feed runs beside it,
/// then reports what the feed could not read, each as an [`Event::Unwalked`] counted as an
/// error. `Err`: nothing was written, because the feed failed before it published anything or
/// the out-dir could not be made (one error for the destination, as the up-front check gives).
pub fn run(
    selection: &Selection<'_>,
    backend: &dyn Backend,
    staging: Staging,
    sink: &dyn EventSink,
    cancel: &AtomicBool,
) -> Result<Summary, PlanError> {
    let (mut summary, unread) =
        selection.run(cancel, |plan| execute(plan, backend, staging, sink, cancel))?;
    if let Some(reason) = summary.out_dir_error.take() {
        return Err(PlanError::BadOutDir {
            path: selection.plan().out_dir.clone(),
            reason,
        });
    }
    summary.errors += unread.len();
    for e in unread {
        sink.event(Event::Unwalked {
            error: CopyError::Unwalked(e),
        });
    }
    Ok(summary)
}

/// Runs the whole plan: directories, data (through `backend`), links, directory metadata.
///
/// The plan may still be growing (a fed plan): this thread then makes the directories of each
/// newly published chunk and queues its files while the backend copies earlier ones, so the
/// first byte moves long before the feed ends. Links and directory metadata wait for the
/// complete plan, as they do for a complete one.
pub fn execute(
    plan: &Plan,
    backend: &dyn Backend,
    staging: Staging,
    sink: &dyn EventSink,
    cancel: &AtomicBool,
) -> Summary {
    let start = Instant::now();
    let mut staging = staging;
    let tree = match staging.placement {
        Placement::TreeIfNew => tree::Tree::for_new(&plan.out_dir),
        _ => None,
    };
    staging.placement = match tree {
        Some(_) => Placement::InTree,
        None => Placement::PerFile,
    };
    let run = Run {
        plan,
        ctx: Ctx {
            sink,
            cancel,
            state: States::new(),
            staging,
            full: AtomicBool::new(false),
            out_dir: tree
                .as_ref()
                .map_or_else(|| plan.out_dir.clone(), |t| t.hidden().to_path_buf()),
            tree,
        },
        #[cfg(target_os = "linux")]
        held: std::sync::Mutex::new(None),
        above: std::sync::Mutex::new(Vec::new()),
        out_dir_error: OnceLock::new(),
    };
    // What is published now is counted in `Started`; later chunks in `Planned`.
    let counted = plan.jobs.len();
    let (files, bytes) = run.count(0..counted);
    sink.event(Event::Started { files, bytes });
    let (links, stopped) = run.copy_data(backend, counted);
    run.fail_untaken(stopped);
    run.place_links(&links);
    run.finish_dirs();
    let placed = run.place_tree();
    let mut summary = run.summary(backend.name(), start);
    if !placed {
        (summary.files, summary.bytes) = (0, 0);
    }
    summary.routes = backend.routes();
    summary.out_dir_error = run.out_dir_error.into_inner();
    summary
}

/// One run of [`execute`], its steps in the order they run.
struct Run<'a> {
    plan: &'a Plan,
    ctx: Ctx<'a>,
    /// The out-dir held open from the data step to the end (links, directory metadata).
    #[cfg(target_os = "linux")]
    held: std::sync::Mutex<Option<beneath::RootGuard>>,
    /// Directories above the out-dir that gained an entry when the run made it (`--fsync`
    /// flushes them too: a new out-dir's name is data like any other).
    above: std::sync::Mutex<Vec<PathBuf>>,
    /// Set when the out-dir (or the hidden tree) could not be made: no job is taken after that.
    out_dir_error: OnceLock<String>,
}

impl Run<'_> {
    /// Files (everything but directories) and data bytes among jobs `range`.
    fn count(&self, range: std::ops::Range<usize>) -> (usize, u64) {
        range
            .map(|i| &self.plan.jobs[i])
            .filter(|j| j.op != Op::Dir)
            .fold((0, 0), |(f, b), j| {
                (f + 1, b + if j.op == Op::Copy { j.size } else { 0 })
            })
    }

    /// The data step: `backend` copies on a scoped thread while this thread takes each newly
    /// published chunk of the plan ([`Run::take_chunk`]) until the plan is closed and taken, or
    /// the run is cancelled. Returns the links to place after the data, and why the backend
    /// stopped early, if it did.
    fn copy_data(&self, backend: &dyn Backend, counted: usize) -> (Vec<usize>, Option<String>) {
        let queue = FileQueue::new();
        let mut dirs = DirMaker::new(&self.plan.out_dir, self.ctx.tree.as_ref());
        let mut links = Vec::new();
        let stopped = std::thread::scope(|s| {
            let copier = s.spawn(|| backend.copy_files(self.plan, &queue, &self.ctx));
            let mut seen = 0;
            loop {
                let (n, closed) = self.plan.jobs.wait_beyond(seen);
                if self.ctx.cancelled() {
                    break;
                }
                if n > seen {
                    self.take_chunk(seen..n, counted, &mut dirs, &queue, &mut links);
                    seen = n;
                }
                // Nothing can be written: the feed may stop, and no job is reported one by one.
                if let Some(e) = dirs.out_dir_error() {
                    let _ = self.out_dir_error.set(format!("cannot create it: {e}"));
                    self.plan.jobs.abandon();
                    break;
                }
                if closed && seen == self.plan.jobs.len() {
                    break;
                }
            }
            queue.close();
            match copier.join() {
                Ok(why) => why,
                Err(p) => Some(format!("the copy engine panicked: {}", panic_text(&p))),
            }
        });
        #[cfg(target_os = "linux")]
        {
            *self
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = dirs.held.take();
        }
        *self
            .above
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::mem::take(&mut dirs.above);
        (links, stopped)
    }

    /// Jobs `range`, just published: their directories are made, then each job goes where it
    /// belongs: a file to the backend's queue (large ones first), a link to `links` for after
    /// the data, a directory is done; a job whose directory could not be made fails. Files
    /// beyond the first `counted` jobs are announced in a `Planned` event.
    fn take_chunk(
        &self,
        range: std::ops::Range<usize>,
        counted: usize,
        dirs: &mut DirMaker,
        queue: &FileQueue,
        links: &mut Vec<usize>,
    ) {
        dirs.make(self.plan, range.clone());
        if dirs.out_dir_error().is_some() {
            return;
        }
        let mut ready = Vec::new();
        for i in range.clone() {
            let job = &self.plan.jobs[i];
            if let Some((path, err)) = dirs.failure_for(job) {
                let error = CopyError::io("create directory", path, clone_io(err));
                self.ctx.fail(i, error);
                continue;
            }
            match job.op {
                Op::Copy => ready.push(i),
                Op::Symlink { .. } | Op::Hardlink { .. } => links.push(i),
                Op::Dir => self.ctx.state.set(i, OK),
            }
        }
        let (files, bytes) = self.count(range.start.max(counted)..range.end);
        if files > 0 {
            self.ctx.sink.event(Event::Planned { files, bytes });
        }
        order_for_balance(self.plan, &mut ready);
        queue.push_grouped(
            ready
                .into_iter()
                .map(|i| (i, dir_group(&self.plan.jobs[i]))),
        );
    }

    /// Files no worker took or finished (the backend stopped early, for `why`): each is
    /// reported, so none goes missing silently. After a cancel, unstarted files stay unreported.
    fn fail_untaken(&self, why: Option<String>) {
        if self.ctx.cancelled() || self.out_dir_error.get().is_some() {
            return;
        }
        let why = why.unwrap_or_else(|| "the copy engine stopped".into());
        for (i, job) in self.plan.jobs.iter().enumerate() {
            if job.op == Op::Copy && self.ctx.state.get(i) == PENDING {
                let cause = std::io::Error::other(why.clone());
                self.ctx.fail(i, CopyError::io("copy", &job.src, cause));
            }
        }
    }

    /// Symlinks and hard links, after the data: a hard link needs its first member in place,
    /// and fails with it.
    fn place_links(&self, links: &[usize]) {
        let jobs = &self.plan.jobs;
        for &i in links {
            if self.ctx.cancelled() {
                break;
            }
            let job = &jobs[i];
            let dst = self.ctx.dst(job);
            let res = match &job.op {
                Op::Symlink { target } => file::place_symlink(target, job, &dst),
                Op::Hardlink { of } if self.ctx.ok(*of) => {
                    file::place_hardlink(&self.ctx.dst(&jobs[*of]), &dst)
                }
                Op::Hardlink { .. } => Err(CopyError::LinkSourceFailed {
                    path: job.src.clone(),
                }),
                _ => continue,
            };
            match res {
                Ok(()) => self.ctx.done(i),
                Err(e) => self.ctx.fail(i, e),
            }
        }
    }

    /// Directory modes and mtimes, deepest first so setting a parent's mtime comes after its
    /// children changed it; then, with `--fsync`, every directory written into.
    fn finish_dirs(&self) {
        if self.ctx.cancelled() {
            return;
        }
        self.finish_dirs_at(true);
    }

    /// [`Run::finish_dirs`], in the hidden tree (`in_tree`) or at the final paths.
    fn finish_dirs_at(&self, in_tree: bool) {
        let at = |p| {
            if in_tree {
                self.ctx.at(p)
            } else {
                Cow::Borrowed(p)
            }
        };
        let jobs = &self.plan.jobs;
        let mut dirs: Vec<usize> = (0..jobs.len())
            .filter(|&i| jobs[i].op == Op::Dir && self.ctx.ok(i))
            .collect();
        dirs.sort_by_key(|&i| std::cmp::Reverse(jobs[i].dst.components().count()));
        for i in dirs {
            if let Err(e) = file::set_dir_meta(&jobs[i], &at(&jobs[i].dst)) {
                self.ctx.fail(i, e);
            }
        }
        // A hidden tree's directories are synced once it is in place (`place_tree`).
        if self.ctx.staging.fsync && !(in_tree && self.ctx.tree.is_some()) {
            self.sync_dirs();
        }
    }

    /// `--fsync`: every directory written into, at its final path, then the directories above
    /// the out-dir that gained an entry when the run made it.
    fn sync_dirs(&self) {
        let above = self
            .above
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for dir in parents(self.plan, 0..self.plan.jobs.len())
            .iter()
            .chain(above.iter())
        {
            if let Err(error) = file::fsync_dir(dir) {
                self.ctx.sink.event(Event::DirSyncFailed { error });
            }
        }
    }

    /// The end of a run that built a hidden tree: an interrupted run removes it; any other is
    /// renamed into place whole (failed files were never in it: the files that copied are
    /// placed, as `cp -r` and rsync leave them), then, with `--fsync`, its directories, the
    /// out-dir's parent and the ancestors the run made are synced. Where the out-dir appeared meanwhile (another run's tree won the rename), the
    /// files are placed one by one into it. Returns false when nothing was placed.
    fn place_tree(&self) -> bool {
        let Some(tree) = &self.ctx.tree else {
            return true;
        };
        if self.ctx.cancelled() {
            tree.discard();
            return false;
        }
        match tree.place() {
            tree::Placed::Whole => {
                // Its files were synced before the rename; its directories, the out-dir's
                // parent that holds its new name, and each ancestor the run made, now.
                if self.ctx.staging.fsync {
                    self.sync_dirs();
                }
            }
            tree::Placed::OneByOne(_) => {
                self.place_one_by_one(tree);
                tree.discard();
            }
            tree::Placed::Nothing => {}
        }
        for (i, job) in self.plan.jobs.iter().enumerate() {
            if job.op != Op::Dir && self.ctx.ok(i) {
                self.ctx.sink.event(Event::Done { index: i });
            }
        }
        true
    }

    /// Moves every finished job of the hidden tree into the out-dir that exists now: each
    /// directory made (a symlink in its way replaced, as for any existing out-dir), each file,
    /// symlink and hard link renamed over whatever is there (atomic, as per-file placement
    /// is); then the directories' metadata again, on the final paths.
    fn place_one_by_one(&self, tree: &tree::Tree) {
        let root = tree.out_dir();
        let made_root = std::fs::create_dir_all(root);
        // Held as any existing out-dir is: nothing below it is reached through a symlink.
        #[cfg(target_os = "linux")]
        let _held = beneath::hold_root(root).ok();
        let jobs = &self.plan.jobs;
        let mut made: HashSet<PathBuf> = HashSet::new();
        for (i, job) in jobs.iter().enumerate() {
            if !self.ctx.ok(i) {
                continue;
            }
            let dir = match job.op {
                Op::Dir => job.dst.as_path(),
                _ => job.dst.parent().unwrap_or(root),
            };
            let mut res = made_root.as_ref().map(|_| ()).map_err(clone_io);
            if res.is_ok() && !made.contains(dir) {
                res = file::ensure_dir(root, dir);
                if res.is_ok() {
                    made.insert(dir.to_path_buf());
                }
            }
            if res.is_ok() && job.op != Op::Dir {
                if let Err(e) = move_beneath(&tree.map(&job.dst), &job.dst) {
                    self.ctx.fail(i, CopyError::placing(&job.dst, e));
                    continue;
                }
            }
            if let Err(e) = res {
                self.ctx.fail(i, CopyError::io("place", &job.dst, e));
            }
        }
        self.finish_dirs_at(false);
    }

    /// The tally: files (not directories) and bytes in place, jobs failed.
    fn summary(&self, engine: &str, start: Instant) -> Summary {
        let (mut files, mut bytes, mut errors) = (0, 0, 0);
        for (i, job) in self.plan.jobs.iter().enumerate() {
            match self.ctx.state.get(i) {
                OK if job.op != Op::Dir => {
                    files += 1;
                    if job.op == Op::Copy {
                        bytes += job.size;
                    }
                }
                FAILED => errors += 1,
                _ => {}
            }
        }
        Summary {
            engine: engine.to_string(),
            files,
            bytes,
            errors,
            elapsed: start.elapsed(),
            interrupted: self.ctx.cancelled(),
            routes: Vec::new(),
            out_dir_error: None,
        }
    }
}

/// `rename(from, to)`, each side reached through its held directory where one is held.
fn move_beneath(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let (from, _a) = beneath::through(from)?;
        let (to, _b) = beneath::through(to)?;
        std::fs::rename(from, to)
    }
    #[cfg(not(target_os = "linux"))]
    std::fs::rename(from, to)
}

/// Files below this size are taken in runs of their directory (see [`queue::Taker`]); a larger
/// one is a group of its own, so a run never holds more than a few MiB of another worker's
/// share.
const GROUPED_BELOW: u64 = 256 << 10;

/// Up to this many files of one directory go to one worker at a time.
pub const GROUP_RUN: usize = 32;

/// The queue group of a job: its destination directory for a small file; a larger one is taken
/// alone.
fn dir_group(job: &Job) -> Option<u64> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let dir = job.dst.parent().filter(|_| job.size < GROUPED_BELOW)?;
    // Equal for one directory, rarely for two (then two directories share a run: still correct).
    Some(BuildHasherDefault::<DefaultHasher>::default().hash_one(dir))
}

/// Files of at least this size are queued first, largest first.
const LARGE_FIRST: u64 = 1 << 20;

/// Large files first, largest first (then the rest in walk order): a large file started last
/// would leave the other workers idle while it finishes alone.
fn order_for_balance(plan: &Plan, ready: &mut [usize]) {
    let size = |i: usize| plan.jobs[i].size;
    ready.sort_by_key(|&i| std::cmp::Reverse(if size(i) >= LARGE_FIRST { size(i) } else { 0 }));
}

/// A panic payload as text, for the reason a worker or the probe gives.
pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Every directory jobs `range` of the plan write into; set order puts a parent before its
/// children.
fn parents(plan: &Plan, range: std::ops::Range<usize>) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    // Jobs come in walk order, so runs of them share a parent: each run costs one ordered insert
    // (with its path comparisons and allocation), not one per file.
    let mut last: Option<&Path> = None;
    for i in range {
        let job = &plan.jobs[i];
        if job.op == Op::Dir {
            dirs.insert(job.dst.clone());
        }
        if let Some(p) = job.dst.parent() {
            if last != Some(p) {
                dirs.insert(p.to_path_buf());
                last = Some(p);
            }
        }
    }
    dirs
}

/// The parent of `dir` and of each missing ancestor of it: the directories that gain an entry
/// when `dir` is made with its ancestors.
fn parents_of_missing(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
        .filter_map(Path::parent)
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .collect()
}

/// Makes the directories a plan needs, chunk by chunk, remembering what it made and what failed
/// (with the failing path), so a later chunk neither re-checks the one nor retries the other.
struct DirMaker<'t> {
    made: HashSet<PathBuf>,
    failed: HashMap<PathBuf, (PathBuf, std::io::Error)>,
    /// `None` until the first chunk: the out-dir is made only once there is something to put in.
    out_dir: Option<Result<(), std::io::Error>>,
    root: PathBuf,
    /// The directories that gained an entry when the out-dir (and missing ancestors) was made.
    above: Vec<PathBuf>,
    /// The out-dir (or the hidden tree) held open while the run writes below it (see
    /// `beneath`).
    #[cfg(target_os = "linux")]
    held: Option<beneath::RootGuard>,
    /// The hidden tree the directories are made in, if the run builds one.
    tree: Option<&'t tree::Tree>,
}

impl<'t> DirMaker<'t> {
    fn new(out_dir: &Path, tree: Option<&'t tree::Tree>) -> DirMaker<'t> {
        DirMaker {
            made: HashSet::new(),
            failed: HashMap::new(),
            out_dir: None,
            root: out_dir.to_path_buf(),
            above: Vec::new(),
            #[cfg(target_os = "linux")]
            held: None,
            tree,
        }
    }

    /// Why the out-dir (or the hidden tree) could not be made, once the first chunk tried.
    fn out_dir_error(&self) -> Option<&std::io::Error> {
        self.out_dir.as_ref()?.as_ref().err()
    }

    /// Why `job` cannot be placed: its own directory (a directory job) or its parent could not
    /// be made; the path that failed and the error.
    fn failure_for(&self, job: &Job) -> Option<&(PathBuf, std::io::Error)> {
        let dir = match job.op {
            Op::Dir => job.dst.as_path(),
            _ => job.dst.parent().unwrap_or(Path::new("")),
        };
        self.failed.get(dir)
    }

    fn make(&mut self, plan: &Plan, range: std::ops::Range<usize>) {
        let (root, tree) = (self.root.clone(), self.tree);
        let above = &mut self.above;
        let made_root = self.out_dir.get_or_insert_with(|| {
            if root.as_os_str().is_empty() {
                return Ok(());
            }
            *above = parents_of_missing(&root);
            match tree {
                Some(t) => t.make(),
                None => std::fs::create_dir_all(&root),
            }
        });
        if let Err(e) = made_root {
            let e = clone_io(e);
            for dir in parents(plan, range) {
                self.failed.insert(dir, (root.clone(), clone_io(&e)));
            }
            return;
        }
        #[cfg(target_os = "linux")]
        if self.held.is_none() && !root.as_os_str().is_empty() {
            // Where it cannot be held, destinations keep plain paths. A hidden tree is held the
            // same way: everything the run writes goes below it.
            let at = self.tree.map_or(root.as_path(), |t| t.hidden());
            self.held = beneath::hold_root(at).ok();
        }
        for dir in parents(plan, range) {
            if self.made.contains(&dir) || self.failed.contains_key(&dir) {
                continue;
            }
            if let Some(anc) = dir
                .ancestors()
                .skip(1)
                .find(|a| self.failed.contains_key(*a))
            {
                let (path, e) = &self.failed[anc];
                let v = (path.clone(), clone_io(e));
                self.failed.insert(dir, v);
                continue;
            }
            // Most directories need one `mkdir` and no walk over their ancestors.
            let parent_ok = dir
                .parent()
                .is_some_and(|p| p == root || self.made.contains(p));
            let (root_at, at) = match self.tree {
                Some(t) => (t.hidden(), t.map(&dir)),
                None => (root.as_path(), Cow::Borrowed(dir.as_path())),
            };
            let res = if parent_ok {
                file::make_dir_in_checked_parent(&at)
            } else {
                file::ensure_dir(root_at, &at)
            };
            match res {
                Ok(()) => {
                    self.made.insert(dir);
                }
                Err(e) => {
                    self.failed.insert(dir.clone(), (dir, e));
                }
            }
        }
    }
}

fn clone_io(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}
