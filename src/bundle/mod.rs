//! Release bundles: what a run does around the copy (`--clean` before it, `--update` skips, checksums and archives after).
//!
//! Everything that can be wrong with a bundle (a bad `--archive-name`, an out-dir `--clean` must
//! not empty, an archive that would land among the sources) is found by [`prepare`], before
//! anything is written. [`Bundle::finish`] then writes the checksums file and the archives from
//! the staged copies, each under a temporary name renamed into place.
use std::io;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::config::{Config, CrateKind};
use crate::engine::{EventSink, Summary};
use crate::error::CopyError;
use crate::plan::{Job, Kind, Op, Plan, Selection};

pub mod archive;
pub mod checksums;
pub mod clean;
pub mod name;
pub mod update;

pub use archive::ArchiveFormat;
pub use checksums::{Digests, HashAlgo};
pub use update::UpdateMode;

/// Something wrong with the bundle options (found before anything is written: exit 2), or a
/// bundle file that could not be written after the copy.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("--archive-name `{template}`: {reason}")]
    Template { template: String, reason: String },
    #[error("--clean refuses to empty {}: {reason}", .path.display())]
    CleanRefused { path: PathBuf, reason: String },
    #[error("archive {} would be written inside {}, a directory this run copies", .archive.display(), .dir.display())]
    ArchiveInSource { archive: PathBuf, dir: PathBuf },
    #[error("{} is both {what} and a file this run stages (from {})", .path.display(), .src.display())]
    Collides {
        path: PathBuf,
        what: &'static str,
        src: PathBuf,
    },
    #[error(
        "--archive with {0} --target triples: one archive names one target; run once per --target"
    )]
    SeveralTargets(usize),
    #[error("--archive needs an out-dir (-o) to archive")]
    NoOutDir,
    #[error("asking cargo: {0}")]
    Metadata(String),
    #[error("cannot tell the host triple for {{target}}: {0}")]
    Host(String),
    #[error("{0}")]
    Update(String),
    #[error("{}: {cause}", .path.display())]
    Io { path: PathBuf, cause: io::Error },
}

impl From<BundleError> for CopyError {
    /// A bundle file that could not be written after the copy is reported like a file that
    /// could not be copied: named, and counted in the exit code.
    fn from(e: BundleError) -> CopyError {
        match e {
            BundleError::Io { path, cause } => CopyError::io("write", path, cause),
            other => CopyError::io("write", "", io::Error::other(other.to_string())),
        }
    }
}

impl BundleError {
    fn io(path: &Path, cause: io::Error) -> Self {
        BundleError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// Whether a run may copy while its walk still runs: not when the whole plan must be known
/// first, to check it (`--clean`, `--archive`) or to list it (`--checksums`). `--update` does
/// not stop it: a streamed run writes into an empty out-dir, where nothing is up to date.
pub fn may_stream(cfg: &Config) -> bool {
    cfg.checksums.is_none() && cfg.archives.is_empty() && !cfg.clean
}

/// The bundle steps of one run, checked.
#[derive(Debug)]
pub struct Bundle {
    out_dir: PathBuf,
    checksums: Option<HashAlgo>,
    /// Archives to write: format and final path.
    archives: Vec<(ArchiveFormat, PathBuf)>,
    /// The archives' leading directory (and base name).
    root: String,
    epoch: Option<u64>,
    clean: bool,
    /// `--update`: the planned files already in place.
    skipped: Vec<Job>,
    digests: Option<Arc<Digests>>,
}

/// One archive written, with its digest (also in `<archive>.sha256`).
#[derive(Debug, Clone)]
pub struct ArchiveOut {
    pub path: PathBuf,
    pub sha256: String,
}

/// What [`Bundle::finish`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub archives: Vec<ArchiveOut>,
    pub checksums_file: Option<PathBuf>,
}

/// Checks the bundle options against `plan` and the filesystem, and with `--update` takes the
/// files already in place out of the plan; writes nothing. Returns the plan to copy.
pub fn prepare<'a>(
    cfg: &Config,
    selection: Selection<'a>,
) -> Result<(Selection<'a>, Bundle), BundleError> {
    let mut bundle = check(cfg, selection.plan())?;
    // A fed plan writes into an empty out-dir, where nothing is up to date yet.
    let selection = match (selection, cfg.update) {
        (Selection::Complete(plan), Some(mode)) if cfg.out_dir.is_some() => {
            let (plan, skipped) = update::split(plan, mode, cfg.dry_run)
                .map_err(|e| BundleError::Update(e.to_string()))?;
            bundle.skipped = skipped;
            Selection::Complete(plan)
        }
        (selection, _) => selection,
    };
    Ok((selection, bundle))
}

/// Checks what the bundle will write before anything is: the archive name template, where the
/// archives go, that nothing of ours collides with a copied file, and that `--clean` may empty
/// the out-dir.
fn check(cfg: &Config, plan: &Plan) -> Result<Bundle, BundleError> {
    let out_dir = plan.out_dir.clone();
    let mut formats = Vec::new();
    for f in &cfg.archives {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }
    let template = cfg
        .archive_name
        .clone()
        .unwrap_or_else(|| name::DEFAULT_TEMPLATE.to_string());
    let used = name::placeholders(&template).map_err(bad_template(&template))?;
    // Cargo is asked again only for what the plan does not carry: package versions and, for
    // --clean, the workspace root and target directory.
    let needs_meta = cfg.from.is_none() && (!formats.is_empty() || cfg.clean);
    let meta = if needs_meta {
        Some(metadata(cfg)?)
    } else {
        None
    };
    let (root, archives) = if formats.is_empty() {
        (String::new(), Vec::new())
    } else {
        archives(cfg, plan, meta.as_ref(), &formats, &template, &used)?
    };
    check_ours(cfg, plan, meta.as_ref(), &archives)?;
    if cfg.clean && cfg.out_dir.is_some() {
        check_clean(cfg, plan, meta.as_ref())?;
    }
    Ok(Bundle {
        out_dir,
        checksums: cfg.checksums,
        archives,
        root,
        epoch: cfg.source_date_epoch,
        clean: cfg.clean,
        skipped: Vec::new(),
        digests: cfg.checksums.map(|a| Arc::new(Digests::new(a))),
    })
}

fn bad_template(template: &str) -> impl Fn(String) -> BundleError + '_ {
    move |reason| BundleError::Template {
        template: template.to_string(),
        reason,
    }
}

/// The archives' leading directory (`template` rendered; `used`: its placeholders) and each
/// format's path.
fn archives(
    cfg: &Config,
    plan: &Plan,
    meta: Option<&cargo_metadata::Metadata>,
    formats: &[ArchiveFormat],
    template: &str,
    used: &[&str],
) -> Result<(String, Vec<(ArchiveFormat, PathBuf)>), BundleError> {
    if cfg.out_dir.is_none() {
        return Err(BundleError::NoOutDir);
    }
    let mut vars = name::Vars::default();
    if let Some(meta) = meta {
        (vars.name, vars.version) = identity(meta, plan);
    }
    if used.contains(&"target") {
        // The platforms the artifacts were selected for, as cargo resolves them
        // (`--target`, `--config`, `build.target`); none means the host.
        let cwd = std::env::current_dir().map_err(|e| BundleError::io(Path::new("."), e))?;
        let targets = crate::cargo::config::build_targets(&cfg.triples, &cfg.cargo_config, &cwd)
            .map_err(|e| BundleError::Metadata(e.to_string()))?;
        vars.target = Some(match targets.as_slice() {
            [] => host_triple(meta)?,
            [one] => one.name.clone(),
            several => return Err(BundleError::SeveralTargets(several.len())),
        });
    }
    let root = name::render(template, &vars).map_err(bad_template(template))?;
    let dir = cfg
        .archive_dir
        .clone()
        .unwrap_or_else(|| plan.out_dir.clone());
    let archives = formats
        .iter()
        .map(|f| (*f, dir.join(format!("{root}.{}", f.ext()))))
        .collect();
    Ok((root, archives))
}

/// The files the bundle writes (checksums file, archives and their checksum files) must not be
/// files the copy places.
fn check_ours(
    cfg: &Config,
    plan: &Plan,
    meta: Option<&cargo_metadata::Metadata>,
    archives: &[(ArchiveFormat, PathBuf)],
) -> Result<(), BundleError> {
    let sums = cfg.checksums.map(|a| plan.out_dir.join(a.sums_file()));
    let mut ours: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(s) = &sums {
        ours.push((s.clone(), "the checksums file"));
    }
    for (_, a) in archives {
        ours.push((a.clone(), "an archive"));
        ours.push((sidecar(a), "an archive's checksum file"));
    }
    if ours.is_empty() {
        return Ok(());
    }
    let base = cfg
        .from
        .clone()
        .or_else(|| meta.map(|m| m.workspace_root.clone().into_std_path_buf()));
    check_collisions(plan, base.as_deref(), &ours)
}

/// `--clean` is refused for a directory whose emptying would lose what matters (see
/// `clean::refusal`).
fn check_clean(
    cfg: &Config,
    plan: &Plan,
    meta: Option<&cargo_metadata::Metadata>,
) -> Result<(), BundleError> {
    let guarded = clean::Guarded {
        home: std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from),
        workspace_root: meta.map(|m| m.workspace_root.clone().into_std_path_buf()),
        target_dir: cfg
            .target_dir
            .clone()
            .or_else(|| meta.map(|m| m.target_directory.clone().into_std_path_buf())),
    };
    let mut sources: Vec<&Path> = plan.jobs.iter().map(|j| j.src.as_path()).collect();
    if let Some(from) = &cfg.from {
        sources.push(from);
    }
    clean::refusal(&plan.out_dir, &guarded, sources).map_err(|reason| BundleError::CleanRefused {
        path: plan.out_dir.clone(),
        reason,
    })
}

/// `<archive>.sha256`.
fn sidecar(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}

/// The files this module writes must be neither a staged file nor inside a directory the run
/// copies: one a pattern walks below the workspace root (or `--from`), where the next run
/// would take the archive into the next archive. Artifacts' directories (the target dir) and
/// the base itself, where a pattern only picks named files, do not count.
fn check_collisions(
    plan: &Plan,
    base: Option<&Path>,
    ours: &[(PathBuf, &'static str)],
) -> Result<(), BundleError> {
    let base = base.map(resolve);
    let mut copied_dirs = std::collections::BTreeSet::new();
    for job in plan.jobs.iter() {
        for (p, what) in ours {
            if &job.dst == p {
                return Err(BundleError::Collides {
                    path: p.clone(),
                    what,
                    src: job.src.clone(),
                });
            }
        }
        if !matches!(job.kind, Kind::File | Kind::Symlink | Kind::Dir) {
            continue;
        }
        let dir = if job.op == Op::Dir {
            Some(job.src.as_path())
        } else {
            job.src.parent()
        };
        if let Some(dir) = dir {
            copied_dirs.insert(dir.to_path_buf());
        }
    }
    let archives: Vec<(PathBuf, PathBuf)> = ours
        .iter()
        .filter(|(_, what)| *what != "the checksums file")
        .map(|(p, _)| (p.clone(), resolve(p)))
        .collect();
    for dir in copied_dirs {
        let real = resolve(&dir);
        if base.as_ref().is_some_and(|b| b == &real) {
            continue;
        }
        for (p, p_real) in &archives {
            if p_real.starts_with(&real) {
                return Err(BundleError::ArchiveInSource {
                    archive: p.clone(),
                    dir,
                });
            }
        }
    }
    Ok(())
}

/// `path` absolute, with the symlinks of its deepest existing ancestor resolved.
fn resolve(path: &Path) -> PathBuf {
    crate::select::resolved(path).unwrap_or_else(|| path.to_path_buf())
}

fn metadata(cfg: &Config) -> Result<cargo_metadata::Metadata, BundleError> {
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.no_deps();
    if let Some(m) = &cfg.manifest_path {
        cmd.manifest_path(m);
    }
    cmd.exec().map_err(|e| BundleError::Metadata(e.to_string()))
}

/// `{name}` and `{version}`: the one package the plan stages artifacts of; with several, the
/// package of the first binary, named after that binary; else the first package.
fn identity(meta: &cargo_metadata::Metadata, plan: &Plan) -> (Option<String>, Option<String>) {
    let version = |pkg: &str| {
        meta.packages
            .iter()
            .find(|p| p.name.as_str() == pkg && meta.workspace_members.contains(&p.id))
            .map(|p| p.version.to_string())
    };
    let mut packages: Vec<&str> = Vec::new();
    for p in plan.jobs.iter().filter_map(|j| j.package.as_deref()) {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    if let [one] = packages.as_slice() {
        return (Some(one.to_string()), version(one));
    }
    let first_bin = plan
        .jobs
        .iter()
        .find(|j| j.kind == Kind::Artifact(CrateKind::Bin) && j.package.is_some());
    if let Some(bin) = first_bin {
        let file = bin
            .dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file
            .strip_suffix(".exe")
            .or_else(|| file.strip_suffix(".wasm"))
            .unwrap_or(&file)
            .to_string();
        return (Some(name), bin.package.as_deref().and_then(version));
    }
    match packages.first() {
        Some(p) => (Some(p.to_string()), version(p)),
        None => (None, None),
    }
}

/// The triple cargo builds for when no `--target` is given: rustc's host.
fn host_triple(meta: Option<&cargo_metadata::Metadata>) -> Result<String, BundleError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = std::process::Command::new(&rustc);
    cmd.arg("-vV");
    // Where a rust-toolchain file picks the toolchain, the workspace's rustc is the one.
    if let Some(m) = meta {
        cmd.current_dir(m.workspace_root.as_std_path());
    }
    let out = cmd
        .output()
        .map_err(|e| BundleError::Host(format!("{}: {e}", Path::new(&rustc).display())))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| BundleError::Host("`rustc -vV` printed no host line".into()))
}

/// `dst` relative to `out_dir`, `/`-separated, as bytes.
fn rel_bytes(out_dir: &Path, dst: &Path) -> Option<Vec<u8>> {
    let rel = dst.strip_prefix(out_dir).ok()?;
    let mut v = Vec::new();
    for c in rel.components() {
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(c.as_os_str().as_encoded_bytes());
    }
    (!v.is_empty()).then_some(v)
}

/// What [`Bundle::sink`] hands the engine.
pub enum Sink<'a> {
    Plain(&'a dyn EventSink),
    Hashing(checksums::HashingSink<'a>),
}

impl EventSink for Sink<'_> {
    fn event(&self, event: crate::engine::Event) {
        match self {
            Sink::Plain(s) => s.event(event),
            Sink::Hashing(s) => s.event(event),
        }
    }

    fn hash_into(&self) -> Option<&Digests> {
        match self {
            Sink::Plain(_) => None,
            Sink::Hashing(s) => s.hash_into(),
        }
    }
}

impl Bundle {
    /// `--clean`: empties the out-dir (checked by [`prepare`]). Call only when about to copy.
    pub fn clean(&self) -> Result<(), BundleError> {
        if self.clean && !self.out_dir.as_os_str().is_empty() {
            clean::empty(&self.out_dir).map_err(|e| BundleError::io(&self.out_dir, e))?;
        }
        Ok(())
    }

    /// Files the copy placed at `staged`'s destinations now stand at `placed`'s (same job
    /// indices; `--build` moves them from its staging directory): their digests move along.
    pub fn moved(&self, staged: &Plan, placed: &Plan) {
        let Some(d) = &self.digests else { return };
        for (from, to) in staged.jobs.iter().zip(placed.jobs.iter()) {
            if let Some(hex) = d.get(&from.dst) {
                d.insert(&to.dst, hex);
            }
        }
    }

    /// `--update`: the files left alone because they are already in place.
    pub fn skipped(&self) -> &[Job] {
        &self.skipped
    }

    /// `--checksums`: the digests of copied files, filled as they are placed.
    pub fn digests(&self) -> Option<Arc<Digests>> {
        self.digests.clone()
    }

    /// The sink to hand the engine: `inner`, with each copied file hashed on its way there
    /// when `--checksums` asks for digests.
    pub fn sink<'a>(&'a self, inner: &'a dyn EventSink, plan: &'a Plan) -> Sink<'a> {
        match &self.digests {
            Some(digests) => Sink::Hashing(checksums::HashingSink {
                inner,
                plan,
                digests,
            }),
            None => Sink::Plain(inner),
        }
    }

    /// After the copy: writes the checksums file and archives, unless a file failed or the
    /// run was interrupted (then the bundle would be incomplete: `Ok(None)`).
    pub fn after(&self, copied: &Plan, summary: &Summary) -> Result<Option<Outputs>, BundleError> {
        if summary.errors > 0 || summary.interrupted {
            return Ok(None);
        }
        if self.checksums.is_none() && self.archives.is_empty() {
            return Ok(None);
        }
        let fallback;
        let digests = match &self.digests {
            Some(d) => d.as_ref(),
            None => {
                fallback = Digests::new(HashAlgo::Sha256);
                &fallback
            }
        };
        self.finish(copied, &self.skipped, digests).map(Some)
    }

    /// After a copy without errors: the checksums file over every staged file (`copied` and
    /// the `skipped` ones already in place), then each archive of them (with the checksums
    /// file) and its `.sha256`. `digests` holds what the copy already hashed; the rest is read
    /// once here.
    pub fn finish(
        &self,
        copied: &Plan,
        skipped: &[Job],
        digests: &Digests,
    ) -> Result<Outputs, BundleError> {
        let mut outputs = Outputs::default();
        let jobs: Vec<&Job> = copied.jobs.iter().chain(skipped.iter()).collect();
        let mut members: Vec<archive::Member> = jobs
            .iter()
            .filter_map(|j| {
                Some(archive::Member {
                    rel: rel_bytes(&self.out_dir, &j.dst)?,
                    path: j.dst.clone(),
                })
            })
            .collect();
        if let Some(algo) = self.checksums {
            let mut lines = Vec::new();
            for j in &jobs {
                if !matches!(j.op, Op::Copy | Op::Hardlink { .. }) {
                    continue;
                }
                let Some(rel) = rel_bytes(&self.out_dir, &j.dst) else {
                    continue;
                };
                let hex = match digests.get(&j.dst) {
                    Some(h) => h,
                    None => checksums::hash_file(algo, &j.dst)
                        .map_err(|e| BundleError::io(&j.dst, e))?,
                };
                lines.push((rel, hex));
            }
            let path = self.out_dir.join(algo.sums_file());
            // The newest mtime of the files it lists, not the time of the run: an archive
            // holding it is then as reproducible as one of those files alone.
            let newest = jobs
                .iter()
                .filter(|j| matches!(j.op, Op::Copy | Op::Hardlink { .. }))
                .filter_map(|j| j.mtime)
                .max();
            let text = checksums::sums_text(lines);
            checksums::write_atomic_with(&path, |f| {
                use std::io::Write;
                f.write_all(&text)?;
                match newest {
                    Some(t) => f.set_times(std::fs::FileTimes::new().set_modified(t)),
                    None => Ok(()),
                }
            })
            .map_err(|e| BundleError::io(&path, e))?;
            members.push(archive::Member {
                rel: algo.sums_file().as_bytes().to_vec(),
                path: path.clone(),
            });
            outputs.checksums_file = Some(path);
        }
        for (format, path) in &self.archives {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
            }
            archive::write(
                *format,
                path,
                &self.root,
                &self.out_dir,
                &members,
                self.epoch,
            )
            .map_err(|e| BundleError::io(path, e))?;
            let sha256 = checksums::hash_file(HashAlgo::Sha256, path)
                .map_err(|e| BundleError::io(path, e))?;
            let file_name = path
                .file_name()
                .map(|n| n.as_encoded_bytes().to_vec())
                .unwrap_or_default();
            let side = sidecar(path);
            checksums::write_atomic(&side, &checksums::sums_line(&sha256, &file_name))
                .map_err(|e| BundleError::io(&side, e))?;
            outputs.archives.push(ArchiveOut {
                path: path.clone(),
                sha256,
            });
        }
        Ok(outputs)
    }
}
