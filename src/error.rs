//! Library error types: planning errors (nothing written) and per-file copy errors.
use std::io;
use std::path::PathBuf;

/// Something wrong with the selection or the plan; raised before anything is written (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Cargo's own message when cargo said why (see [`PlanError::metadata`]).
    #[error("{0}")]
    Metadata(String),
    #[error("package `{spec}` is not a member of the workspace (members: {members})")]
    UnknownPackage { spec: String, members: String },
    #[error("no {kind} target named `{name}` in the selected packages (available: {available})")]
    UnknownTarget {
        kind: &'static str,
        name: String,
        available: String,
    },
    #[error("the selection matches no artifact: packages {packages} build no {kinds} target of the selected targets (see --crate-type, --lib, --bins, --examples)")]
    NothingSelected { packages: String, kinds: String },
    #[error("no library target in the selected packages")]
    NoLib,
    #[error("{}", missing_message(.0))]
    MissingArtifacts(Vec<(PathBuf, String)>),
    #[error("two sources map to one destination {}:\n  {}\n  {}", .dst.display(), .a.display(), .b.display())]
    Conflict {
        dst: PathBuf,
        a: PathBuf,
        b: PathBuf,
    },
    #[error("destination {} would be both a file (from {}) and a directory", .dst.display(), .src.display())]
    FileDirConflict { dst: PathBuf, src: PathBuf },
    #[error("pattern `{pattern}` matched nothing under {}", .base.display())]
    NoMatch { pattern: String, base: PathBuf },
    #[error("pattern `{pattern}` matched only excluded files under {} (see --exclude-glob)", .base.display())]
    OnlyExcluded { pattern: String, base: PathBuf },
    #[error("invalid pattern `{pattern}`: {reason}")]
    BadPattern { pattern: String, reason: String },
    /// The cause is part of the message, not a `source()`: callers print one line, not a chain
    /// that repeats it.
    #[error("{}: {cause}", .path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("pattern `{pattern}` reaches into the out-dir {}; copying it would copy the out-dir into itself", .out_dir.display())]
    InsideOutDir { pattern: String, out_dir: PathBuf },
    #[error("{} and its destination {} are the same file; refusing to copy a file onto itself", .src.display(), .dst.display())]
    SameFile { src: PathBuf, dst: PathBuf },
    #[error("out-dir {}: {reason}", .path.display())]
    BadOutDir { path: PathBuf, reason: String },
    #[error("symlink loop at {} (it leads back to {})", .path.display(), .ancestor.display())]
    SymlinkLoop { path: PathBuf, ancestor: PathBuf },
    #[error("{} is outside {} (through a symlinked directory); pass -L/--dereference to follow it", .path.display(), .base.display())]
    Escapes { path: PathBuf, base: PathBuf },
    #[error("engine io-uring is not available here: {0}")]
    EngineUnavailable(String),
    #[error("cargo configuration: {0}")]
    CargoConfig(String),
    /// A `--features` entry no selected package has, in cargo's words (cargo refuses it too).
    #[error("{0}")]
    UnknownFeatures(String),
    #[error("{target} requires the features {features}; pass `{flag}`")]
    RequiredFeatures {
        target: String,
        features: String,
        flag: String,
    },
    #[error("two selected artifacts land on one destination {}:\n  {a}\n  {b}", .dst.display())]
    ArtifactCollision { dst: PathBuf, a: String, b: String },
    #[error("{}", stale_message(.0))]
    Stale(Vec<StaleArtifact>),
    #[error("--build: {0}")]
    Build(String),
    /// A `-p`/`--exclude`/`--bin`/`--example` glob that matches nothing.
    #[error("no {what} matches pattern `{pattern}` (available: {available})")]
    NoSpecMatch {
        what: &'static str,
        pattern: String,
        available: String,
    },
    /// An error with cargo's `help:` line under it.
    #[error("{error}\n\nhelp: {help}")]
    Help { error: Box<PlanError>, help: String },
}

/// An artifact older than a source cargo built it from.
#[derive(Debug, Clone)]
pub struct StaleArtifact {
    pub artifact: PathBuf,
    pub source: PathBuf,
}

impl std::fmt::Display for StaleArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is older than {}; run cargo build or use --build",
            shown(&self.artifact).display(),
            shown(&self.source).display()
        )
    }
}

/// A path as the user would type it: relative to the working directory when below it.
fn shown(p: &std::path::Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(PathBuf::from))
        .unwrap_or_else(|| p.to_path_buf())
}

fn stale_message(stale: &[StaleArtifact]) -> String {
    let mut s = String::from("artifacts are older than their sources (--require-fresh):");
    for a in stale {
        s.push_str(&format!("\n  {a}"));
    }
    s
}

fn missing_message(missing: &[(PathBuf, String)]) -> String {
    let mut s = String::from("selected artifacts are not built:");
    for (path, cmd) in missing {
        s.push_str(&format!("\n  {} (build it with `{cmd}`)", path.display()));
    }
    s
}

impl PlanError {
    /// `cargo metadata` failed: cargo's own error line(s) when cargo ran and said why (without
    /// its `error:` prefix, which the caller prints once), else what kept it from running.
    pub fn metadata(e: cargo_metadata::Error) -> Self {
        if let cargo_metadata::Error::CargoMetadata { stderr } = &e {
            let plain = anstream::adapter::strip_str(stderr).to_string();
            let text = plain.trim();
            let text = text.strip_prefix("error:").unwrap_or(text).trim_start();
            if !text.is_empty() {
                return PlanError::Metadata(text.to_string());
            }
        }
        PlanError::Metadata(format!("`cargo metadata` failed: {e}"))
    }

    pub fn io(path: impl Into<PathBuf>, cause: io::Error) -> Self {
        PlanError::Io {
            path: path.into(),
            cause,
        }
    }
}

/// One file that could not be copied. The run goes on; the exit code becomes 1.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cannot {op} {}: {cause}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("{} changed while it was copied (expected {expected} bytes, read {actual})", .path.display())]
    Changed {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    /// A directory stands where a file (or link) goes: left as it is, as `cp` leaves it.
    #[error("cannot overwrite directory {} with a file", .path.display())]
    DirectoryInTheWay { path: PathBuf },
    #[error("{} not copied: the file it is a hard link of failed", .path.display())]
    LinkSourceFailed { path: PathBuf },
    #[error("{} not copied: interrupted", .path.display())]
    Interrupted { path: PathBuf },
    /// Not started: the destination filled up earlier in the run and this file does not fit
    /// (`no_inodes`: no file can be created there at all).
    #[error(
        "{} not copied: the destination is full ({})",
        .path.display(),
        if *.no_inodes { "no inodes left".to_string() } else { format!("{free} bytes free") }
    )]
    DestinationFull {
        path: PathBuf,
        free: u64,
        no_inodes: bool,
    },
    /// A directory or link a streamed walk could not read: what is below it is not copied.
    #[error("{0}; what is below it was not copied")]
    Unwalked(PlanError),
}

impl CopyError {
    /// The destination's device (or the user's quota on it) is full.
    pub fn is_out_of_space(&self) -> bool {
        let CopyError::Io { cause, .. } = self else {
            return false;
        };
        #[cfg(unix)]
        {
            matches!(cause.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        }
        #[cfg(not(unix))]
        {
            cause.kind() == io::ErrorKind::StorageFull
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, cause: io::Error) -> Self {
        CopyError::Io {
            op,
            path: path.into(),
            cause,
        }
    }

    /// The path the error names.
    pub fn path_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            CopyError::Io { path, .. }
            | CopyError::Changed { path, .. }
            | CopyError::DirectoryInTheWay { path }
            | CopyError::LinkSourceFailed { path }
            | CopyError::Interrupted { path }
            | CopyError::DestinationFull { path, .. } => Some(path),
            CopyError::Unwalked(_) => None,
        }
    }

    /// Renaming a finished file onto its final name `dst` failed: a directory in the way is said
    /// in the user's words, not as the rename's `EISDIR`.
    pub fn placing(dst: impl Into<PathBuf>, cause: io::Error) -> Self {
        if cause.kind() == io::ErrorKind::IsADirectory {
            return CopyError::DirectoryInTheWay { path: dst.into() };
        }
        CopyError::io("rename into place", dst, cause)
    }
}
