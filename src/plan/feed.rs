//! How a plan reaches the engine: complete before the copy starts, or still being fed while the
//! engine copies what is already published (fd's buffering and streaming receiver modes).
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{HardlinkGroups, Job, Jobs, Plan};
use crate::error::PlanError;

/// Something that fills a plan while the engine copies it: a directory walk today; a running
/// cargo build fits the same way. It runs on its own thread, beside the copy.
pub trait Feed: Sync {
    /// What is feeding, for `-v` ("copying while {what} runs").
    fn what(&self) -> &str;

    /// Publishes jobs through `to` until the source is exhausted or [`Publisher::stopped`].
    /// A part it cannot read goes to [`Publisher::unreadable`] and the feed goes on. `Err`: the
    /// feed failed as a whole (it could not start, or matched nothing).
    fn feed(&self, to: &mut Publisher<'_>) -> Result<(), PlanError>;
}

/// What selection hands the engine.
pub enum Selection<'a> {
    /// Planned completely before anything is written: conflicts checked, the job list closed.
    Complete(Plan),
    /// A plan that `feed` fills on its own thread while the engine copies what it published.
    Fed {
        plan: Plan,
        feed: Box<dyn Feed + 'a>,
    },
}

impl<'a> Selection<'a> {
    /// An empty plan into `out_dir` that `feed` will fill.
    pub fn fed(out_dir: PathBuf, feed: impl Feed + 'a) -> Self {
        Selection::Fed {
            plan: Plan::open(out_dir),
            feed: Box::new(feed),
        }
    }

    /// The plan, as far as it is known.
    pub fn plan(&self) -> &Plan {
        match self {
            Selection::Complete(plan) | Selection::Fed { plan, .. } => plan,
        }
    }

    /// What still feeds the plan, if anything does.
    pub fn feed(&self) -> Option<&dyn Feed> {
        match self {
            Selection::Complete(_) => None,
            Selection::Fed { feed, .. } => Some(feed.as_ref()),
        }
    }

    /// Runs `copy` over the plan on this thread. A fed plan's feed runs beside it on a scoped
    /// thread, and the plan is closed when the feed ends, however it ends, so `copy` never
    /// waits forever.
    ///
    /// Returns what `copy` returned and the parts of the source the feed could not read
    /// (skipped; for the caller to report). `Err`: the feed failed before it published a job,
    /// so nothing was written.
    pub fn run<R>(
        &self,
        cancel: &AtomicBool,
        copy: impl FnOnce(&Plan) -> R,
    ) -> Result<(R, Vec<PlanError>), PlanError> {
        let (plan, feed) = match self {
            Selection::Complete(plan) => return Ok((copy(plan), Vec::new())),
            Selection::Fed { plan, feed } => (plan, feed.as_ref()),
        };
        let (copied, fed) = std::thread::scope(|s| {
            let feeder = s.spawn(|| {
                let _close = CloseOnDrop(&plan.jobs);
                let mut to = Publisher::new(&plan.jobs, cancel);
                let res = feed.feed(&mut to);
                to.flush();
                res.map(|()| to.unread)
            });
            let copied = copy(plan);
            let fed = feeder
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (copied, fed)
        });
        match fed {
            Ok(unread) => Ok((copied, unread)),
            Err(e) if plan.jobs.is_empty() => Err(e),
            Err(e) => Ok((copied, vec![e])),
        }
    }
}

/// Closes the plan when the feed ends, however it ends (a panic too).
struct CloseOnDrop<'a>(&'a Jobs);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The first chunk a feed publishes: small, so the first byte moves after a few hundred entries.
pub const FIRST_CHUNK: usize = 256;

/// How a feed publishes: its first `FIRST_CHUNK` jobs, then chunks twice as large each time (a
/// tree of millions needs a few dozen), later members of a hard-link group turned into links
/// to the first.
pub struct Publisher<'a> {
    jobs: &'a Jobs,
    buf: Vec<Job>,
    chunk: usize,
    pushed: usize,
    links: HardlinkGroups,
    unread: Vec<PlanError>,
    cancel: &'a AtomicBool,
}

impl<'a> Publisher<'a> {
    fn new(jobs: &'a Jobs, cancel: &'a AtomicBool) -> Self {
        Publisher {
            jobs,
            buf: Vec::with_capacity(FIRST_CHUNK),
            chunk: FIRST_CHUNK,
            pushed: 0,
            links: HardlinkGroups::default(),
            unread: Vec::new(),
            cancel,
        }
    }

    /// Adds `job` to the plan (published with its chunk).
    pub fn push(&mut self, mut job: Job) {
        self.links.link(self.pushed, &mut job);
        self.pushed += 1;
        self.buf.push(job);
        if self.buf.len() >= self.chunk {
            self.flush();
            self.chunk *= 2;
        }
    }

    /// Jobs pushed so far.
    pub fn count(&self) -> usize {
        self.pushed
    }

    /// A part of the source that cannot be read: skipped, reported when the copy ends.
    pub fn unreadable(&mut self, error: PlanError) {
        self.unread.push(error);
    }

    /// Whether the feed should stop: the run was interrupted, or the copy takes no more jobs.
    pub fn stopped(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.jobs.is_abandoned()
    }

    /// Publishes what is buffered now: a feed whose items come slowly (a build's artifacts)
    /// hands each to the engine as it arrives.
    pub fn flush(&mut self) {
        self.jobs.publish(std::mem::take(&mut self.buf));
    }
}
