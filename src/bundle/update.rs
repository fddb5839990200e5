//! `--update`: which planned files are already in place (rsync's quick check, or by content) and so are skipped.
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use crate::error::PlanError;
use crate::plan::{Job, Op, Plan};

/// How `--update` decides that a destination is up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Same size and mtime (to the nanosecond: copies keep it) and same mode.
    QuickCheck,
    /// Same size and the same bytes; a differing mtime or mode is then set, not copied.
    Content,
}

/// Splits a complete plan into the jobs still to run and the files already in place. The jobs
/// to run form a new plan (its hard-link groups re-formed over what is left); directories are
/// always kept, so their modes and mtimes are set as in a full copy. `dry_run`: decide only,
/// touch nothing (`Content` would otherwise fix the metadata of files it keeps).
pub fn split(plan: Plan, mode: UpdateMode, dry_run: bool) -> Result<(Plan, Vec<Job>), PlanError> {
    let out_dir = plan.out_dir.clone();
    let mut keep = Vec::new();
    let mut skipped = Vec::new();
    for job in plan.jobs.iter() {
        let mut job = job.clone();
        // A hard link of another job is checked as the file it is; if both stay, `build`
        // links them again.
        if matches!(job.op, Op::Hardlink { .. }) {
            job.op = Op::Copy;
        }
        if up_to_date(&job, mode, dry_run) {
            skipped.push(job);
        } else {
            keep.push(job);
        }
    }
    Ok((Plan::build(out_dir, keep)?, skipped))
}

/// Whether `job`'s destination already is what the copy would make.
fn up_to_date(job: &Job, mode: UpdateMode, dry_run: bool) -> bool {
    let Ok(md) = fs::symlink_metadata(&job.dst) else {
        return false;
    };
    match &job.op {
        Op::Symlink { target } => {
            md.file_type().is_symlink() && fs::read_link(&job.dst).is_ok_and(|t| &t == target)
        }
        Op::Copy if md.is_file() && md.len() == job.size => match mode {
            UpdateMode::QuickCheck => md.modified().ok() == job.mtime && mode_of(&md) == job.mode,
            UpdateMode::Content => {
                same_bytes(&job.src, &job.dst, job.size).unwrap_or(false)
                    && (dry_run || fix_meta(job, &md).is_ok())
            }
        },
        _ => false,
    }
}

#[cfg(unix)]
fn mode_of(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(_md: &fs::Metadata) -> u32 {
    0
}

/// Gives a kept destination the source's mtime and mode, where they differ.
fn fix_meta(job: &Job, md: &fs::Metadata) -> io::Result<()> {
    if md.modified().ok() == job.mtime && mode_of(md) == job.mode {
        return Ok(());
    }
    set_meta(&job.dst, job)
}

/// The source's mtime and mode on `path`.
fn set_meta(path: &Path, job: &Job) -> io::Result<()> {
    let f = File::options().write(true).open(path)?;
    if let Some(m) = job.mtime {
        f.set_times(fs::FileTimes::new().set_modified(m))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(job.mode))?;
    }
    Ok(())
}

/// Compares two files of `size` bytes, chunk by chunk, stopping at the first difference.
fn same_bytes(a: &Path, b: &Path, size: u64) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    const CHUNK: usize = 1 << 20;
    let len = usize::try_from(size.min(CHUNK as u64)).unwrap_or(CHUNK);
    let (mut ba, mut bb) = (vec![0u8; len.max(1)], vec![0u8; len.max(1)]);
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(ba.len() as u64)).unwrap_or(ba.len());
        fa.read_exact(&mut ba[..n])?;
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    // Both must end here: a source that grew since it was planned is not up to date.
    Ok(fa.read(&mut ba[..1])? == 0 && fb.read(&mut bb[..1])? == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Kind;
    use std::path::PathBuf;

    fn job(src: PathBuf, dst: PathBuf) -> Job {
        let md = fs::symlink_metadata(&src).unwrap();
        Job::from_metadata(src, dst, Kind::File, None, &md, Op::Copy)
    }

    #[test]
    fn quick_check_and_content_decide_as_documented() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(&out).unwrap();
        for n in ["same", "changed", "missing", "touched"] {
            fs::write(src.join(n), format!("{n} v1")).unwrap();
        }
        let jobs: Vec<Job> = ["same", "changed", "missing", "touched"]
            .iter()
            .map(|n| job(src.join(n), out.join(n)))
            .collect();
        for j in &jobs[..2] {
            fs::copy(&j.src, &j.dst).unwrap();
            set_meta(&j.dst, j).unwrap();
        }
        // Same size, other bytes, same mtime: only a content check sees it.
        fs::write(&jobs[1].dst, "chxnged v1").unwrap();
        set_meta(&jobs[1].dst, &jobs[1]).unwrap();
        // Same bytes, other mtime: the quick check copies it, a content check keeps it.
        fs::write(&jobs[3].dst, "touched v1").unwrap();

        let plan = Plan::build(out.clone(), jobs.clone()).unwrap();
        let (todo, skipped) = split(plan, UpdateMode::QuickCheck, false).unwrap();
        let names = |v: Vec<&Job>| -> Vec<String> {
            v.iter()
                .map(|j| j.dst.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(skipped.iter().collect()), ["same", "changed"]);
        assert_eq!(names(todo.jobs.iter().collect()), ["missing", "touched"]);

        let plan = Plan::build(out.clone(), jobs.clone()).unwrap();
        let (todo, skipped) = split(plan, UpdateMode::Content, false).unwrap();
        assert_eq!(names(skipped.iter().collect()), ["same", "touched"]);
        assert_eq!(names(todo.jobs.iter().collect()), ["changed", "missing"]);
        // The kept file got the source's mtime: a quick check now agrees.
        let plan = Plan::build(out.clone(), vec![jobs[3].clone()]).unwrap();
        let (todo, _) = split(plan, UpdateMode::QuickCheck, false).unwrap();
        assert!(todo.jobs.is_empty());
    }
}
