//! Glob patterns and directory trees → candidate jobs, walked with std (no writes).
use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::PlanError;
use crate::plan::{file_id, Job, Kind, Op, Publisher, SourceRoot};

/// Identity of a directory for pruning and loop detection.
type DirId = (u64, u64);

/// Where the walk puts what it finds.
pub(crate) trait JobSink {
    fn push(&mut self, job: Job);
    /// Jobs pushed so far.
    fn count(&self) -> usize;
    /// A directory or link that cannot be read. `Err` stops the walk (a complete plan: nothing
    /// has been written, so the whole run fails); `Ok` skips it and walks on (a streamed plan,
    /// where copies are already under way: the error is reported with the copy's failures).
    fn unreadable(&mut self, error: PlanError) -> Result<(), PlanError>;
    /// Stop walking (the run was interrupted).
    fn stopped(&self) -> bool {
        false
    }
}

impl JobSink for Vec<Job> {
    fn push(&mut self, job: Job) {
        Vec::push(self, job);
    }

    fn count(&self) -> usize {
        self.len()
    }

    fn unreadable(&mut self, error: PlanError) -> Result<(), PlanError> {
        Err(error)
    }
}

/// A fed plan: the walk publishes as it goes, and skips what it cannot read (copies are already
/// under way; the error is reported with the copy's failures).
impl JobSink for Publisher<'_> {
    fn push(&mut self, job: Job) {
        Publisher::push(self, job);
    }

    fn count(&self) -> usize {
        Publisher::count(self)
    }

    fn unreadable(&mut self, error: PlanError) -> Result<(), PlanError> {
        Publisher::unreadable(self, error);
        Ok(())
    }

    fn stopped(&self) -> bool {
        Publisher::stopped(self)
    }
}

/// Settings shared by every pattern of one run.
pub(crate) struct PatternWalk<'a> {
    pub base: &'a Path,
    pub out_dir: &'a Path,
    pub excludes: &'a [String],
    pub follow: bool,
    /// Directories never descended into (the out-dir, the cargo target dir when not named).
    pub prune: Vec<PathBuf>,
}

fn build_glob(pattern: &str) -> Result<globset::Glob, PlanError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(cfg!(unix))
        .build()
        .map_err(|e| PlanError::BadPattern {
            pattern: pattern.to_string(),
            reason: e.kind().to_string(),
        })
}

/// Rejects patterns that could reach outside their base: absolute paths and `..`.
fn check_pattern(pattern: &str) -> Result<(), PlanError> {
    let bad = |reason: &str| {
        Err(PlanError::BadPattern {
            pattern: pattern.to_string(),
            reason: reason.to_string(),
        })
    };
    if pattern.is_empty() {
        return bad("empty pattern");
    }
    let p = Path::new(pattern);
    if p.is_absolute() || pattern.starts_with('/') || pattern.starts_with('\\') {
        return bad("absolute patterns are not allowed; patterns are relative to the workspace root or --from");
    }
    if p.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::Prefix(_) | Component::RootDir
        )
    }) {
        return bad("`..` is not allowed; patterns cannot reach outside their base");
    }
    Ok(())
}

fn is_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '{', '\\'])
}

/// The leading components of a pattern that contain no glob syntax.
fn literal_prefix(pattern: &str) -> (PathBuf, bool) {
    let mut prefix = PathBuf::new();
    let parts: Vec<&str> = pattern
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    for (i, part) in parts.iter().enumerate() {
        if is_meta(part) {
            return (prefix, false);
        }
        if i + 1 == parts.len() {
            prefix.push(part);
            return (prefix, true);
        }
        prefix.push(part);
    }
    (prefix, true)
}

impl PatternWalk<'_> {
    /// Expands every pattern into jobs; a pattern that matches nothing is an error.
    pub fn collect(&self, patterns: &[String]) -> Result<Vec<Job>, PlanError> {
        let mut jobs = Vec::new();
        self.walk(patterns, &mut jobs)?;
        Ok(jobs)
    }

    /// Expands every pattern into `sink`, in order; a pattern that matches nothing is an error.
    pub fn walk(&self, patterns: &[String], sink: &mut dyn JobSink) -> Result<(), PlanError> {
        let mut ex = GlobSetBuilder::new();
        for e in self.excludes {
            ex.add(build_glob(e.trim_end_matches('/'))?);
        }
        let excludes = ex.build().map_err(|e| PlanError::BadPattern {
            pattern: self.excludes.join(", "),
            reason: e.to_string(),
        })?;
        let base_real = fs::canonicalize(self.base).map_err(|e| PlanError::io(self.base, e))?;
        let mut prune_ids = HashSet::new();
        for p in &self.prune {
            if let Some(id) = fs::metadata(p).ok().as_ref().and_then(file_id) {
                prune_ids.insert(id);
            }
        }
        let out_real = fs::canonicalize(self.out_dir).ok();
        for pattern in patterns {
            check_pattern(pattern)?;
            let before = sink.count();
            let (prefix, literal) = literal_prefix(pattern);
            let start = self.base.join(&prefix);
            // The walk prunes the out-dir when it meets it; a pattern that starts inside it
            // never meets it. (An out-dir that is the base itself is the same-file error.)
            if let (Some(out), Ok(real)) = (&out_real, fs::canonicalize(&start)) {
                if real.starts_with(out) && *out != base_real {
                    return Err(PlanError::InsideOutDir {
                        pattern: pattern.clone(),
                        out_dir: self.out_dir.to_path_buf(),
                    });
                }
            }
            let mut w = Walker {
                walk: self,
                excludes: &excludes,
                prune_ids: &prune_ids,
                base_real: &base_real,
                jobs: &mut *sink,
                excluded_match: false,
                unreadable: false,
                root: None,
            };
            w.check_inside(&start)?;
            if literal {
                if excludes.is_match(&prefix) {
                    let (pattern, base) = (pattern.clone(), self.base.to_path_buf());
                    return Err(if w.stat(&start).is_ok() {
                        PlanError::OnlyExcluded { pattern, base }
                    } else {
                        PlanError::NoMatch { pattern, base }
                    });
                }
                match w.stat(&start) {
                    Ok(md) => {
                        let dir = if md.is_dir() {
                            Some(start.as_path())
                        } else {
                            start.parent()
                        };
                        w.hold(dir);
                        w.add(&start, &prefix, md, &mut Vec::new())?
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(PlanError::io(&start, e)),
                }
            } else {
                let glob = build_glob(pattern)?;
                let set =
                    GlobSetBuilder::new()
                        .add(glob)
                        .build()
                        .map_err(|e| PlanError::BadPattern {
                            pattern: pattern.clone(),
                            reason: e.to_string(),
                        })?;
                if let Ok(md) = w.stat(&start) {
                    if md.is_dir() {
                        w.hold(Some(&start));
                        let mut stack = file_id(&md).into_iter().collect();
                        w.search(&start, &prefix, &set, &mut stack)?;
                    }
                }
            }
            let (excluded_match, unreadable) = (w.excluded_match, w.unreadable);
            // A fed plan that skipped an unreadable directory has already reported why it
            // found nothing there; "matched nothing" would hide that error.
            if sink.count() == before && !sink.stopped() && !unreadable {
                let base = self.base.to_path_buf();
                let pattern = pattern.clone();
                return Err(if excluded_match {
                    PlanError::OnlyExcluded { pattern, base }
                } else {
                    PlanError::NoMatch { pattern, base }
                });
            }
        }
        Ok(())
    }
}

struct Walker<'a, 'w> {
    walk: &'a PatternWalk<'w>,
    excludes: &'a GlobSet,
    prune_ids: &'a HashSet<DirId>,
    base_real: &'a Path,
    jobs: &'a mut dyn JobSink,
    /// Something the pattern matches was left out by an `--exclude-glob`: a pattern left with
    /// nothing says so rather than "matched nothing".
    excluded_match: bool,
    /// Something below the pattern's start could not be read (and was reported to the sink).
    unreadable: bool,
    /// The directory this pattern's walk starts from, held open for the engine (see
    /// [`SourceRoot`]); `None` with `-L`, where links are followed by design.
    root: Option<Arc<SourceRoot>>,
}

impl Walker<'_, '_> {
    /// Holds `dir`, the pattern's start, before anything below it is read. Where it cannot be
    /// held the sources keep plain paths (and the walk reports what it cannot read).
    fn hold(&mut self, dir: Option<&Path>) {
        #[cfg(target_os = "linux")]
        if !self.walk.follow {
            self.root = dir.and_then(|d| SourceRoot::hold(d).ok()).map(Arc::new);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = dir;
    }

    /// Reports what cannot be read to the sink, remembering that this pattern met it.
    fn unreadable(&mut self, error: PlanError) -> Result<(), PlanError> {
        self.unreadable = true;
        self.jobs.unreadable(error)
    }

    fn stat(&self, path: &Path) -> std::io::Result<Metadata> {
        if self.walk.follow {
            fs::metadata(path)
        } else {
            fs::symlink_metadata(path)
        }
    }

    /// Without -L, the directory a pattern starts from must resolve inside the base.
    fn check_inside(&self, start: &Path) -> Result<(), PlanError> {
        if self.walk.follow || start == self.walk.base {
            return Ok(());
        }
        // The last component may itself be a symlink (copied as a link), so check its parent.
        let Some(parent) = start.parent() else {
            return Ok(());
        };
        match fs::canonicalize(parent) {
            Ok(real) if !real.starts_with(self.base_real) => Err(PlanError::Escapes {
                path: start.to_path_buf(),
                base: self.walk.base.to_path_buf(),
            }),
            _ => Ok(()),
        }
    }

    fn pruned(&self, md: &Metadata) -> bool {
        file_id(md).is_some_and(|id| self.prune_ids.contains(&id))
    }

    /// Looks for glob matches below `dir`; a matching directory is taken whole.
    fn search(
        &mut self,
        dir: &Path,
        rel: &Path,
        set: &GlobSet,
        stack: &mut Vec<DirId>,
    ) -> Result<(), PlanError> {
        let entries = match read_sorted(dir, self.walk.follow) {
            Ok(entries) => entries,
            Err(e) => return self.unreadable(e),
        };
        for (path, name, md) in entries {
            if self.jobs.stopped() {
                return Ok(());
            }
            let rel = rel.join(&name);
            if self.excludes.is_match(&rel) {
                self.excluded_match |= set.is_match(&rel);
                continue;
            }
            if set.is_match(&rel) {
                self.add(&path, &rel, md, stack)?;
            } else if md.is_dir() && !self.pruned(&md) {
                self.enter(&path, &md, stack)?;
                self.search(&path, &rel, set, stack)?;
                stack.pop();
            }
        }
        Ok(())
    }

    fn enter(&self, path: &Path, md: &Metadata, stack: &mut Vec<DirId>) -> Result<(), PlanError> {
        if let Some(id) = file_id(md) {
            if stack.contains(&id) {
                return Err(PlanError::SymlinkLoop {
                    path: path.to_path_buf(),
                    ancestor: fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
                });
            }
            stack.push(id);
        }
        Ok(())
    }

    /// Adds `path` (and, for a directory, everything below it) as jobs at `rel` under the out-dir.
    fn add(
        &mut self,
        path: &Path,
        rel: &Path,
        md: Metadata,
        stack: &mut Vec<DirId>,
    ) -> Result<(), PlanError> {
        let dst = self.walk.out_dir.join(rel);
        let ft = md.file_type();
        if ft.is_symlink() {
            let target = match fs::read_link(path) {
                Ok(t) => t,
                Err(e) => return self.unreadable(PlanError::io(path, e)),
            };
            self.jobs.push(Job::from_metadata(
                path.to_path_buf(),
                dst,
                Kind::Symlink,
                None,
                &md,
                Op::Symlink { target },
            ));
        } else if ft.is_dir() {
            if self.pruned(&md) {
                return Ok(());
            }
            self.jobs.push(Job::from_metadata(
                path.to_path_buf(),
                dst,
                Kind::Dir,
                None,
                &md,
                Op::Dir,
            ));
            self.enter(path, &md, stack)?;
            let entries = match read_sorted(path, self.walk.follow) {
                Ok(entries) => entries,
                Err(e) => {
                    stack.pop();
                    return self.unreadable(e);
                }
            };
            for (child, name, md) in entries {
                if self.jobs.stopped() {
                    break;
                }
                let rel = rel.join(&name);
                if self.excludes.is_match(&rel) {
                    continue;
                }
                self.add(&child, &rel, md, stack)?;
            }
            stack.pop();
        } else if ft.is_file() {
            let mut job =
                Job::from_metadata(path.to_path_buf(), dst, Kind::File, None, &md, Op::Copy);
            job.src_root = self.root.clone();
            self.jobs.push(job);
        }
        // Sockets, FIFOs and devices are not build outputs; they are skipped.
        Ok(())
    }
}

/// A directory's entries in name order (deterministic plans), with their metadata: through the
/// directory's handle (`fstatat`, no path walk from the root) unless symlinks are followed.
fn read_sorted(
    dir: &Path,
    follow: bool,
) -> Result<Vec<(PathBuf, std::ffi::OsString, Metadata)>, PlanError> {
    let rd = fs::read_dir(dir).map_err(|e| PlanError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| PlanError::io(dir, e))?;
        let path = entry.path();
        let md = if follow {
            fs::metadata(&path)
        } else {
            entry.metadata()
        };
        let md = match md {
            Ok(md) => md,
            // Listed, then renamed or removed before it could be looked at (a build or an
            // editor replacing files beside the walk): it is no longer there, so it is not
            // part of the tree; the rest of the directory is. (With -L a dangling link is
            // still there and stays an error.)
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && vanished(&path, follow) => {
                continue
            }
            Err(e) => return Err(PlanError::io(&path, e)),
        };
        out.push((path, entry.file_name(), md));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Whether `path`, which a stat just missed, is itself gone (not a link whose target is).
fn vanished(path: &Path, follow: bool) -> bool {
    !follow || fs::symlink_metadata(path).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dangling_link_is_an_error_with_dereference_and_a_link_without() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", dir.path().join("dangling")).unwrap();
        fs::write(dir.path().join("a"), "x").unwrap();
        let err = read_sorted(dir.path(), true).unwrap_err();
        assert!(err.to_string().contains("dangling"), "{err}");
        let names: Vec<_> = read_sorted(dir.path(), false)
            .unwrap()
            .into_iter()
            .map(|(_, name, _)| name)
            .collect();
        assert_eq!(names, ["a", "dangling"]);
    }

    #[test]
    fn literal_prefix_stops_at_glob_syntax() {
        assert_eq!(
            literal_prefix("assets/**"),
            (PathBuf::from("assets"), false)
        );
        assert_eq!(
            literal_prefix("README.md"),
            (PathBuf::from("README.md"), true)
        );
        assert_eq!(literal_prefix("a/b/*.json"), (PathBuf::from("a/b"), false));
        assert_eq!(literal_prefix("**/*.json"), (PathBuf::new(), false));
        assert_eq!(literal_prefix("./a/b"), (PathBuf::from("a/b"), true));
    }

    #[test]
    fn patterns_cannot_leave_their_base() {
        assert!(check_pattern("/etc/passwd").is_err());
        assert!(check_pattern("../x").is_err());
        assert!(check_pattern("a/../../x").is_err());
        assert!(check_pattern("").is_err());
        assert!(check_pattern("a/**/b..c").is_ok());
    }
}
