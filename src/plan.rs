//! The Plan: every copy job (source, destination, kind, size, mode), conflicts found before any write.
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::CrateKind;
use crate::error::PlanError;

mod feed;
mod jobs;
pub use feed::{Feed, Publisher, Selection, FIRST_CHUNK};
pub use jobs::Jobs;

/// What a job is, as users see it (`kind` in JSON: the crate kind's cargo name for an artifact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file cargo builds for a target of this crate kind.
    Artifact(CrateKind),
    DebugInfo,
    /// The `<artifact>.d` file cargo writes beside an artifact (`--dep-info`).
    DepInfo,
    File,
    Symlink,
    Dir,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Artifact(ck) => ck.as_str(),
            Kind::DebugInfo => "debug-info",
            Kind::DepInfo => "dep-info",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Dir => "dir",
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Copy a regular file's bytes (the engine's data path).
    Copy,
    /// Create a symlink with this target text.
    Symlink { target: PathBuf },
    /// Hard-link to the destination of job `of` (same inode in the source), after it is copied.
    Hardlink { of: usize },
    /// Create a directory; its mode and mtime are set after its contents.
    Dir,
}

/// One copy job.
#[derive(Debug, Clone)]
pub struct Job {
    pub src: PathBuf,
    /// Absolute (or out-dir-joined) destination path.
    pub dst: PathBuf,
    pub kind: Kind,
    pub package: Option<String>,
    pub size: u64,
    /// Permission bits (unix `st_mode & 0o7777`; elsewhere 0o644 or 0o755).
    pub mode: u32,
    pub mtime: Option<SystemTime>,
    pub op: Op,
    /// Source (device, inode), where the platform has them.
    pub src_id: Option<(u64, u64)>,
    /// The source has more than one hard link: a later job with the same `src_id` links to it.
    pub multi_link: bool,
    /// The directory the walk found this source below, held open since (`None`: a cargo
    /// artifact, or `-L`): the engine opens the source relative to it, following no symlink.
    pub src_root: Option<Arc<SourceRoot>>,
}

/// A directory a walk started from, held open from the walk to the end of the copy. Sources
/// found below it are opened beneath this descriptor with no symlink followed, so a directory of
/// the source swapped for a link mid-run (to `/etc`, say) is a per-file error, never a file from
/// outside the source in the out-dir.
#[derive(Debug)]
pub struct SourceRoot {
    pub path: PathBuf,
    pub dir: std::fs::File,
}

impl SourceRoot {
    /// Holds the directory `path` (symlinks in it followed, as the walk follows them).
    #[cfg(target_os = "linux")]
    pub fn hold(path: &std::path::Path) -> std::io::Result<SourceRoot> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(path)?;
        Ok(SourceRoot {
            path: path.to_path_buf(),
            dir,
        })
    }
}

/// The held directory, for opens beneath it (the ring's op keeps an `Arc` of it alive).
#[cfg(unix)]
impl std::os::fd::AsFd for SourceRoot {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

impl Job {
    /// A job for `src` whose metadata (not following a final symlink) is `md`.
    pub fn from_metadata(
        src: PathBuf,
        dst: PathBuf,
        kind: Kind,
        package: Option<String>,
        md: &std::fs::Metadata,
        op: Op,
    ) -> Job {
        Job {
            size: if op == Op::Copy { md.len() } else { 0 },
            mode: mode_of(md),
            mtime: md.modified().ok(),
            src_id: file_id(md),
            multi_link: multi_link(md),
            src_root: None,
            src,
            dst,
            kind,
            package,
            op,
        }
    }
}

#[cfg(unix)]
fn mode_of(md: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(md: &std::fs::Metadata) -> u32 {
    if md.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// A file's identity (device, inode), where the platform has one: hard links, loops and a
/// destination that is its own source are all found by it.
#[cfg(unix)]
pub(crate) fn file_id(md: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((md.dev(), md.ino()))
}

#[cfg(not(unix))]
pub(crate) fn file_id(_md: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(unix)]
fn multi_link(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    md.is_file() && md.nlink() > 1
}

#[cfg(not(unix))]
fn multi_link(_md: &std::fs::Metadata) -> bool {
    false
}

/// The jobs of one run, checked for conflicts. A plan is either complete when the engine gets
/// it, or (a single directory walk into a new out-dir, where conflicts cannot arise) filled by
/// the walk while the engine already copies what it has published: see [`Jobs`].
#[derive(Debug, Default)]
pub struct Plan {
    pub out_dir: PathBuf,
    pub jobs: Jobs,
    /// What selection found worth saying that is not an error, for the reporter.
    pub remarks: Vec<Remark>,
}

/// A remark of selection: a warning is always shown (but with `-q`), a note at `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remark {
    Warning(String),
    Note(String),
}

impl Plan {
    /// A plan the walk will fill; `jobs` grows until [`Jobs::close`].
    pub fn open(out_dir: PathBuf) -> Plan {
        Plan {
            out_dir,
            jobs: Jobs::open(),
            remarks: Vec::new(),
        }
    }

    /// Bytes the data path will move (hardlinks and symlinks move none).
    pub fn total_bytes(&self) -> u64 {
        self.jobs
            .iter()
            .filter(|j| j.op == Op::Copy)
            .map(|j| j.size)
            .sum()
    }

    /// Jobs that produce a file users count (everything but directories).
    pub fn file_count(&self) -> usize {
        self.jobs.iter().filter(|j| j.op != Op::Dir).count()
    }

    /// Builds a plan from candidate jobs: drops exact duplicates (the same source reaching the same
    /// destination through two patterns), rejects two sources for one destination and a path that
    /// would be both a file and a directory, and links hardlink groups to their first member.
    pub fn build(out_dir: PathBuf, candidates: Vec<Job>) -> Result<Plan, PlanError> {
        let mut jobs: Vec<Job> = Vec::with_capacity(candidates.len());
        // Keyed by the raw path bytes: `Path`'s own Hash walks components and costs more than
        // the whole walk on trees of 50,000 files. Every destination is built by `join`, so equal
        // paths have equal bytes.
        let mut by_dst: HashMap<OsString, usize> = HashMap::with_capacity(candidates.len());
        for job in candidates {
            if let Some(&i) = by_dst.get(job.dst.as_os_str()) {
                let other = &jobs[i];
                if other.src == job.src || (other.op == Op::Dir && job.op == Op::Dir) {
                    continue;
                }
                return Err(PlanError::Conflict {
                    dst: job.dst,
                    a: other.src.clone(),
                    b: job.src,
                });
            }
            by_dst.insert(job.dst.clone().into_os_string(), jobs.len());
            jobs.push(job);
        }
        // A non-directory job whose destination is an ancestor of another job's destination.
        let files: HashMap<&OsStr, &Job> = jobs
            .iter()
            .filter(|j| j.op != Op::Dir)
            .map(|j| (j.dst.as_os_str(), j))
            .collect();
        for j in &jobs {
            for anc in j.dst.ancestors().skip(1) {
                if let Some(file_job) = files.get(anc.as_os_str()) {
                    return Err(PlanError::FileDirConflict {
                        dst: anc.to_path_buf(),
                        src: file_job.src.clone(),
                    });
                }
            }
        }
        let mut links = HardlinkGroups::default();
        for (i, job) in jobs.iter_mut().enumerate() {
            links.link(i, job);
        }
        Ok(Plan {
            out_dir,
            jobs: Jobs::from(jobs),
            remarks: Vec::new(),
        })
    }
}

/// Later members of a hard-link group become links to the first: bytes never copied twice.
#[derive(Debug, Default)]
pub struct HardlinkGroups {
    first: HashMap<(u64, u64), usize>,
}

impl HardlinkGroups {
    /// `job` will be job `index` of the plan.
    pub fn link(&mut self, index: usize, job: &mut Job) {
        let (Op::Copy, true, Some(id)) = (&job.op, job.multi_link, job.src_id) else {
            return;
        };
        match self.first.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => {
                job.op = Op::Hardlink { of: *e.get() };
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-byte job (a directory for `Op::Dir`), for the plan's and the job list's tests.
    pub(super) fn job(src: &str, dst: &str, op: Op) -> Job {
        Job {
            src: PathBuf::from(src),
            dst: PathBuf::from(dst),
            kind: if op == Op::Dir { Kind::Dir } else { Kind::File },
            package: None,
            size: 1,
            mode: 0o644,
            mtime: None,
            op,
            src_id: None,
            multi_link: false,
            src_root: None,
        }
    }

    fn dsts(plan: &Plan) -> Vec<&str> {
        plan.jobs.iter().map(|j| j.dst.to_str().unwrap()).collect()
    }

    #[test]
    fn the_same_source_reached_twice_is_copied_once() {
        let plan = Plan::build(
            "/o".into(),
            vec![
                job("/s/a", "/o/a", Op::Copy),
                job("/s/b", "/o/b", Op::Copy),
                job("/s/a", "/o/a", Op::Copy),
            ],
        )
        .unwrap();
        assert_eq!(dsts(&plan), ["/o/a", "/o/b"]);
    }

    #[test]
    fn two_walks_into_one_directory_merge() {
        let plan = Plan::build(
            "/o".into(),
            vec![
                job("/s1/d", "/o/d", Op::Dir),
                job("/s2/d", "/o/d", Op::Dir),
                job("/s2/d/x", "/o/d/x", Op::Copy),
            ],
        )
        .unwrap();
        assert_eq!(dsts(&plan), ["/o/d", "/o/d/x"]);
    }

    #[test]
    fn two_sources_for_one_destination_are_a_conflict_naming_both() {
        let err = Plan::build(
            "/o".into(),
            vec![
                job("/s1/a", "/o/a", Op::Copy),
                job("/s2/a", "/o/a", Op::Copy),
            ],
        )
        .unwrap_err();
        match err {
            PlanError::Conflict { dst, a, b } => {
                assert_eq!((dst, a, b), ("/o/a".into(), "/s1/a".into(), "/s2/a".into()));
            }
            other => panic!("expected Conflict, got {other}"),
        }
        // A file and a directory for one path conflict too: only two directories merge.
        let err = Plan::build(
            "/o".into(),
            vec![
                job("/s1/a", "/o/a", Op::Dir),
                job("/s2/a", "/o/a", Op::Copy),
            ],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Conflict { .. }), "{err}");
    }

    #[test]
    fn a_file_where_another_job_needs_a_directory_is_a_file_dir_conflict() {
        // Whichever comes first, however deep below the file the other job lies, and whatever
        // the non-directory is.
        for jobs in [
            vec![
                job("/s/x", "/o/x", Op::Copy),
                job("/t/x/y", "/o/x/y", Op::Copy),
            ],
            vec![
                job("/t/x/y/z", "/o/x/y/z", Op::Copy),
                job("/s/x", "/o/x", Op::Copy),
            ],
            vec![
                job("/s/x", "/o/x", Op::Symlink { target: "t".into() }),
                job("/t/x/y", "/o/x/y", Op::Dir),
            ],
        ] {
            match Plan::build("/o".into(), jobs).unwrap_err() {
                PlanError::FileDirConflict { dst, src } => {
                    assert_eq!((dst, src), ("/o/x".into(), "/s/x".into()));
                }
                other => panic!("expected FileDirConflict, got {other}"),
            }
        }
    }

    #[test]
    fn later_members_of_a_hard_link_group_link_to_the_first() {
        let linked = |src: &str, dst: &str, id: (u64, u64)| Job {
            src_id: Some(id),
            multi_link: true,
            ..job(src, dst, Op::Copy)
        };
        let plan = Plan::build(
            "/o".into(),
            vec![
                job("/s/plain", "/o/plain", Op::Copy),
                linked("/s/a", "/o/a", (1, 7)),
                linked("/s/b", "/o/b", (1, 8)),
                linked("/s/c", "/o/c", (1, 7)),
            ],
        )
        .unwrap();
        let ops: Vec<&Op> = plan.jobs.iter().map(|j| &j.op).collect();
        assert_eq!(
            ops,
            [&Op::Copy, &Op::Copy, &Op::Copy, &Op::Hardlink { of: 1 }]
        );
        assert_eq!(plan.total_bytes(), 3, "a link moves no bytes");
        assert_eq!(plan.file_count(), 4);
    }
}
