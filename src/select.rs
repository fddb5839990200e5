//! Selection: asks cargo (`cargo metadata --no-deps`, once) and the globs what to copy; builds the Plan.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cargo_metadata::{CrateType, Metadata, MetadataCommand, Package, TargetKind};

use crate::config::{Config, CrateKind};
use crate::error::PlanError;
use crate::plan::{Job, Kind, Op, Plan};
use crate::walk::{JobSink, PatternWalk};
use std::sync::atomic::{AtomicBool, Ordering};

/// Turns a validated config into a conflict-free plan. Reads the filesystem; writes nothing.
pub fn select(cfg: &Config) -> Result<Plan, PlanError> {
    let out_dir = cfg.out_dir.clone().unwrap_or_default();
    if cfg.out_dir.is_some() {
        check_out_dir(&out_dir)?;
    }
    let mut jobs = Vec::new();
    let mut base = cfg.from.clone();
    let mut target_dir = None;
    if cfg.selects_artifacts() || (cfg.from.is_none() && !cfg.patterns.is_empty()) {
        let meta = metadata(cfg)?;
        let tdir = cfg
            .target_dir
            .clone()
            .unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf());
        if cfg.selects_artifacts() {
            jobs.extend(artifact_jobs(cfg, &meta, &tdir, &out_dir)?);
        }
        base = Some(meta.workspace_root.clone().into_std_path_buf());
        target_dir = Some(tdir);
    }
    if !cfg.patterns.is_empty() {
        let base = base.unwrap_or_else(|| PathBuf::from("."));
        let mut prune = vec![out_dir.clone()];
        if let Some(t) = &target_dir {
            // Walking the target dir for `**` patterns is slow and never wanted, unless a
            // pattern names it.
            let named = t
                .strip_prefix(&base)
                .ok()
                .and_then(|rel| rel.to_str())
                .is_some_and(|rel| {
                    !rel.is_empty() && cfg.patterns.iter().any(|p| p.starts_with(rel))
                });
            if !named {
                prune.push(t.clone());
            }
        }
        let walk = PatternWalk {
            base: &base,
            out_dir: &out_dir,
            excludes: &cfg.exclude_globs,
            follow: cfg.dereference,
            prune,
        };
        jobs.extend(walk.collect(&cfg.patterns)?);
    }
    let plan = Plan::build(out_dir, jobs)?;
    check_same_files(&plan)?;
    Ok(plan)
}

/// A plan that a directory walk fills while the engine already copies: see [`streamed`].
pub struct Streamed<'c> {
    pub plan: Plan,
    cfg: &'c Config,
    base: PathBuf,
}

/// The walk publishes its first `FIRST_CHUNK` jobs, then chunks twice as large each time: the
/// first copies start after a few hundred entries, and a tree of millions needs a few dozen
/// chunks.
struct Publisher<'a> {
    jobs: &'a crate::plan::Jobs,
    buf: Vec<Job>,
    chunk: usize,
    pushed: usize,
    links: crate::plan::HardlinkGroups,
    errors: Vec<PlanError>,
    cancel: &'a AtomicBool,
}

impl Publisher<'_> {
    fn flush(&mut self) {
        self.jobs.publish(std::mem::take(&mut self.buf));
    }
}

impl JobSink for Publisher<'_> {
    fn push(&mut self, mut job: Job) {
        self.links.link(self.pushed, &mut job);
        self.pushed += 1;
        self.buf.push(job);
        if self.buf.len() >= self.chunk {
            self.flush();
            self.chunk *= 2;
        }
    }

    fn count(&self) -> usize {
        self.pushed
    }

    fn unreadable(&mut self, error: PlanError) -> Result<(), PlanError> {
        self.errors.push(error);
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Closes the plan when the walk ends, however it ends, so the engine never waits forever.
struct CloseOnDrop<'a>(&'a crate::plan::Jobs);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Whether this run can copy while it walks, and if so its (still empty) plan.
///
/// Streaming needs a plan that cannot conflict and a destination the copy cannot disturb:
/// `--from` with one pattern and no artifacts (one tree: every destination is distinct), no
/// `-L` (no loops to find), not `--dry-run`, and an out-dir that does not exist yet or is empty
/// (nothing in it can be a source's own file) and lies outside the tree (the walk never meets
/// what the copy makes). Every other run plans completely first.
pub fn streamed(cfg: &Config) -> Result<Option<Streamed<'_>>, PlanError> {
    let (Some(base), Some(out_dir), [_]) = (&cfg.from, &cfg.out_dir, cfg.patterns.as_slice())
    else {
        return Ok(None);
    };
    if cfg.dry_run || cfg.dereference || cfg.selects_artifacts() {
        return Ok(None);
    }
    check_out_dir(out_dir)?;
    let fresh = match std::fs::read_dir(out_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    let (Ok(base_real), Some(out_real)) = (std::fs::canonicalize(base), resolved(out_dir)) else {
        return Ok(None);
    };
    if !fresh || out_real.starts_with(&base_real) {
        return Ok(None);
    }
    Ok(Some(Streamed {
        plan: Plan::open(out_dir.clone()),
        cfg,
        base: base.clone(),
    }))
}

/// `path` made absolute with symlinks resolved, where it does not exist (yet) as well: its
/// deepest existing ancestor, canonicalized, then the rest.
fn resolved(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            let mut out = real;
            out.extend(rest.iter().rev());
            return Some(out);
        }
        rest.push(cur.file_name()?.to_os_string());
        cur = cur.parent()?;
    }
}

impl Streamed<'_> {
    /// Walks the tree, publishing jobs into `self.plan` as it goes, and closes the plan. `Err`:
    /// the walk could not start or matched nothing (then nothing was published). `Ok`: the
    /// directories and links it could not read, skipped and left for the caller to report.
    pub fn walk(&self, cancel: &AtomicBool) -> Result<Vec<PlanError>, PlanError> {
        let jobs = &self.plan.jobs;
        let _close = CloseOnDrop(jobs);
        let walk = PatternWalk {
            base: &self.base,
            out_dir: &self.plan.out_dir,
            excludes: &self.cfg.exclude_globs,
            follow: false,
            prune: vec![self.plan.out_dir.clone()],
        };
        let mut publisher = Publisher {
            jobs,
            buf: Vec::with_capacity(crate::plan::FIRST_CHUNK),
            chunk: crate::plan::FIRST_CHUNK,
            pushed: 0,
            links: Default::default(),
            errors: Vec::new(),
            cancel,
        };
        let res = walk.walk(&self.cfg.patterns, &mut publisher);
        publisher.flush();
        res.map(|()| publisher.errors)
    }
}

#[cfg(unix)]
const ENOTDIR: i32 = libc::ENOTDIR;
// ERROR_DIRECTORY: Windows' word for "a path component is not a directory".
#[cfg(windows)]
const ENOTDIR: i32 = 267;

/// The out-dir, or its first existing ancestor, must be a directory.
fn check_out_dir(out: &Path) -> Result<(), PlanError> {
    for anc in out.ancestors() {
        if anc.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(anc) {
            Ok(md) if md.is_dir() => return Ok(()),
            Ok(_) => {
                let reason = if anc == out {
                    "exists and is not a directory".to_string()
                } else {
                    format!("{} is not a directory", anc.display())
                };
                return Err(PlanError::BadOutDir {
                    path: out.to_path_buf(),
                    reason,
                });
            }
            // ENOTDIR: some ancestor is a file; walking up finds and names it.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(ENOTDIR) =>
            {
                continue
            }
            Err(e) => return Err(PlanError::io(anc, e)),
        }
    }
    Ok(())
}

/// Refuses a plan whose destination already is its source (same path, a symlink to it, or a
/// hard link of it): the copy would gain nothing and could lose the source.
fn check_same_files(plan: &Plan) -> Result<(), PlanError> {
    // Nothing can be its own destination in an out-dir that does not exist yet.
    if plan.out_dir.as_os_str().is_empty() || !plan.out_dir.exists() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        for job in plan.jobs.iter().filter(|j| j.op == Op::Copy) {
            let Ok(d) = std::fs::metadata(&job.dst) else {
                continue;
            };
            if job.src_id == Some((d.dev(), d.ino())) {
                return Err(PlanError::SameFile {
                    src: job.src.clone(),
                    dst: job.dst.clone(),
                });
            }
        }
    }
    Ok(())
}

fn metadata(cfg: &Config) -> Result<Metadata, PlanError> {
    let mut cmd = MetadataCommand::new();
    cmd.no_deps();
    if let Some(m) = &cfg.manifest_path {
        cmd.manifest_path(m);
    }
    cmd.exec().map_err(|e| PlanError::Metadata(e.to_string()))
}

fn selected_packages<'m>(cfg: &Config, meta: &'m Metadata) -> Result<Vec<&'m Package>, PlanError> {
    let members: Vec<&Package> = meta
        .packages
        .iter()
        .filter(|p| meta.workspace_members.contains(&p.id))
        .collect();
    if !cfg.packages.is_empty() {
        let mut out = Vec::new();
        for spec in &cfg.packages {
            let (name, version) = match spec.split_once('@') {
                Some((n, v)) => (n, Some(v)),
                None => (spec.as_str(), None),
            };
            let found = members
                .iter()
                .find(|p| p.name == name && version.is_none_or(|v| p.version.to_string() == v));
            match found {
                Some(p) if !out.iter().any(|q: &&Package| q.id == p.id) => out.push(*p),
                Some(_) => {}
                None => {
                    return Err(PlanError::UnknownPackage {
                        spec: spec.clone(),
                        members: names(members.iter().map(|p| p.name.as_str())),
                    })
                }
            }
        }
        return Ok(out);
    }
    if cfg.workspace {
        for spec in &cfg.exclude {
            if !members.iter().any(|p| &p.name == spec) {
                return Err(PlanError::UnknownPackage {
                    spec: spec.clone(),
                    members: names(members.iter().map(|p| p.name.as_str())),
                });
            }
        }
        return Ok(members
            .into_iter()
            .filter(|p| !cfg.exclude.contains(&p.name))
            .collect());
    }
    if meta.workspace_default_members.is_available() {
        let defaults = &*meta.workspace_default_members;
        return Ok(members
            .into_iter()
            .filter(|p| defaults.contains(&p.id))
            .collect());
    }
    Ok(members)
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: BTreeSet<&str> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// The directory cargo puts a profile's outputs in.
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// File naming conventions of a target platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    Unix,
    Apple,
    Msvc,
    WinGnu,
    Wasm,
}

impl Platform {
    fn of(triple: Option<&str>) -> Platform {
        match triple {
            None => Platform::host(),
            Some(t) if t.starts_with("wasm32") || t.starts_with("wasm64") => Platform::Wasm,
            Some(t) if t.contains("windows-msvc") => Platform::Msvc,
            Some(t) if t.contains("windows-gnu") => Platform::WinGnu,
            Some(t) if t.contains("-apple-") => Platform::Apple,
            Some(_) => Platform::Unix,
        }
    }

    fn host() -> Platform {
        if cfg!(all(windows, target_env = "msvc")) {
            Platform::Msvc
        } else if cfg!(windows) {
            Platform::WinGnu
        } else if cfg!(target_vendor = "apple") {
            Platform::Apple
        } else {
            Platform::Unix
        }
    }

    /// File names cargo writes for one crate kind of one target, with the kind each file counts as.
    fn files(self, ck: CrateKind, name: &str, debug_files: bool) -> Vec<(String, Kind)> {
        let lib = name.replace('-', "_");
        let mut v = Vec::new();
        match ck {
            CrateKind::Bin | CrateKind::Example => {
                let kind = if ck == CrateKind::Bin {
                    Kind::Bin
                } else {
                    Kind::Example
                };
                match self {
                    Platform::Msvc | Platform::WinGnu => v.push((format!("{name}.exe"), kind)),
                    Platform::Wasm => v.push((format!("{name}.wasm"), kind)),
                    _ => v.push((name.to_string(), kind)),
                }
                if debug_files {
                    match self {
                        Platform::Msvc => v.push((format!("{lib}.pdb"), Kind::DebugInfo)),
                        Platform::Apple => v.push((format!("{name}.dSYM"), Kind::DebugInfo)),
                        _ => {}
                    }
                }
            }
            CrateKind::Cdylib | CrateKind::Dylib => {
                let kind = if ck == CrateKind::Cdylib {
                    Kind::Cdylib
                } else {
                    Kind::Dylib
                };
                match self {
                    Platform::Unix => v.push((format!("lib{lib}.so"), kind)),
                    Platform::Apple => v.push((format!("lib{lib}.dylib"), kind)),
                    Platform::Msvc => {
                        v.push((format!("{lib}.dll"), kind));
                        v.push((format!("{lib}.dll.lib"), kind));
                    }
                    Platform::WinGnu => {
                        v.push((format!("{lib}.dll"), kind));
                        v.push((format!("lib{lib}.dll.a"), kind));
                    }
                    Platform::Wasm => v.push((format!("{lib}.wasm"), kind)),
                }
                if debug_files {
                    match self {
                        Platform::Msvc => v.push((format!("{lib}.pdb"), Kind::DebugInfo)),
                        Platform::Apple => {
                            v.push((format!("lib{lib}.dylib.dSYM"), Kind::DebugInfo))
                        }
                        _ => {}
                    }
                }
            }
            CrateKind::Staticlib => match self {
                Platform::Msvc => v.push((format!("{lib}.lib"), Kind::Staticlib)),
                _ => v.push((format!("lib{lib}.a"), Kind::Staticlib)),
            },
            CrateKind::Rlib => v.push((format!("lib{lib}.rlib"), Kind::Rlib)),
            CrateKind::ProcMacro => {
                // Proc-macros always build for the host.
                let host = Platform::host();
                let file = match host {
                    Platform::Apple => format!("lib{lib}.dylib"),
                    Platform::Msvc | Platform::WinGnu => format!("{lib}.dll"),
                    _ => format!("lib{lib}.so"),
                };
                v.push((file, Kind::ProcMacro));
            }
        }
        v
    }
}

fn crate_kinds(kinds: &[TargetKind], crate_types: &[CrateType]) -> Vec<CrateKind> {
    if kinds.contains(&TargetKind::Example) {
        let lib_like: Vec<CrateKind> = crate_types.iter().filter_map(lib_kind).collect();
        return if lib_like.is_empty() {
            vec![CrateKind::Example]
        } else {
            lib_like
        };
    }
    if kinds.contains(&TargetKind::Bin) {
        return vec![CrateKind::Bin];
    }
    crate_types.iter().filter_map(lib_kind).collect()
}

fn lib_kind(ct: &CrateType) -> Option<CrateKind> {
    Some(match ct {
        CrateType::Lib | CrateType::RLib => CrateKind::Rlib,
        CrateType::CDyLib => CrateKind::Cdylib,
        CrateType::DyLib => CrateKind::Dylib,
        CrateType::StaticLib => CrateKind::Staticlib,
        CrateType::ProcMacro => CrateKind::ProcMacro,
        _ => return None,
    })
}

fn is_lib_target(kinds: &[TargetKind]) -> bool {
    kinds.iter().any(|k| {
        matches!(
            k,
            TargetKind::Lib
                | TargetKind::RLib
                | TargetKind::CDyLib
                | TargetKind::DyLib
                | TargetKind::StaticLib
                | TargetKind::ProcMacro
        )
    })
}

/// The `cargo build` command that produces one target's artifacts.
fn build_command(cfg: &Config, triple: Option<&str>, pkg: &str, target: &str) -> String {
    let mut cmd = String::from("cargo build");
    if let Some(m) = &cfg.manifest_path {
        cmd.push_str(&format!(" --manifest-path {}", m.display()));
    }
    match cfg.profile() {
        "dev" => {}
        "release" => cmd.push_str(" --release"),
        p => cmd.push_str(&format!(" --profile {p}")),
    }
    if let Some(t) = triple {
        cmd.push_str(&format!(" --target {t}"));
    }
    cmd.push_str(&format!(" -p {pkg} {target}"));
    cmd
}

fn artifact_jobs(
    cfg: &Config,
    meta: &Metadata,
    target_dir: &Path,
    out_dir: &Path,
) -> Result<Vec<Job>, PlanError> {
    let packages = selected_packages(cfg, meta)?;
    let sel = &cfg.targets;
    let kinds: Vec<CrateKind> = if !sel.crate_types.is_empty() {
        sel.crate_types.clone()
    } else if sel.names_targets() {
        CrateKind::ALL.to_vec()
    } else {
        vec![
            CrateKind::Bin,
            CrateKind::Cdylib,
            CrateKind::Staticlib,
            CrateKind::Dylib,
        ]
    };
    let all_targets = || packages.iter().flat_map(|p| p.targets.iter());
    for (wanted, kind, label) in [
        (&sel.bins, TargetKind::Bin, "bin"),
        (&sel.examples, TargetKind::Example, "example"),
    ] {
        for name in wanted {
            if !all_targets().any(|t| t.kind.contains(&kind) && &t.name == name) {
                return Err(PlanError::UnknownTarget {
                    kind: label,
                    name: name.clone(),
                    available: names(
                        all_targets()
                            .filter(|t| t.kind.contains(&kind))
                            .map(|t| t.name.as_str()),
                    ),
                });
            }
        }
    }
    if sel.lib && !all_targets().any(|t| is_lib_target(&t.kind)) {
        return Err(PlanError::NoLib);
    }

    let triples: Vec<Option<&str>> = if cfg.triples.is_empty() {
        vec![None]
    } else {
        cfg.triples.iter().map(|t| Some(t.as_str())).collect()
    };
    let mut jobs = Vec::new();
    let mut missing = Vec::new();
    for &triple in &triples {
        let platform = Platform::of(triple);
        let pdir = profile_dir(cfg.profile());
        let dir = match triple {
            Some(t) => target_dir.join(t).join(pdir),
            None => target_dir.join(pdir),
        };
        let out = match triple {
            Some(t) if triples.len() > 1 => out_dir.join(t),
            _ => out_dir.to_path_buf(),
        };
        for pkg in &packages {
            for t in &pkg.targets {
                let is_bin = t.kind.contains(&TargetKind::Bin);
                let is_example = t.kind.contains(&TargetKind::Example);
                let is_lib = is_lib_target(&t.kind);
                let wanted = if sel.names_targets() {
                    (is_bin && (sel.all_bins || sel.bins.contains(&t.name)))
                        || (is_example && (sel.all_examples || sel.examples.contains(&t.name)))
                        || (is_lib && sel.lib)
                } else {
                    is_bin || is_lib || is_example
                };
                if !wanted {
                    continue;
                }
                let flag = if is_bin {
                    format!("--bin {}", t.name)
                } else if is_example {
                    format!("--example {}", t.name)
                } else {
                    "--lib".to_string()
                };
                for ck in crate_kinds(&t.kind, &t.crate_types) {
                    if !kinds.contains(&ck) {
                        continue;
                    }
                    for (file, kind) in platform.files(ck, &t.name, cfg.debug_files) {
                        let src_dir = if ck == CrateKind::ProcMacro && triple.is_some() {
                            target_dir.join(pdir)
                        } else if is_example {
                            dir.join("examples")
                        } else {
                            dir.clone()
                        };
                        let src = src_dir.join(&file);
                        match std::fs::metadata(&src) {
                            Ok(md) => {
                                let op = if md.is_dir() { Op::Dir } else { Op::Copy };
                                let dst = out.join(&file);
                                if md.is_dir() {
                                    // dSYM bundles are directories: copy them whole.
                                    let walk = PatternWalk {
                                        base: &src_dir,
                                        out_dir: &out,
                                        excludes: &[],
                                        follow: false,
                                        prune: Vec::new(),
                                    };
                                    jobs.extend(walk.collect(std::slice::from_ref(&file))?);
                                    continue;
                                }
                                jobs.push(Job::from_metadata(
                                    src,
                                    dst,
                                    kind,
                                    Some(pkg.name.clone()),
                                    &md,
                                    op,
                                ));
                            }
                            Err(_) => {
                                missing.push((src, build_command(cfg, triple, &pkg.name, &flag)))
                            }
                        }
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(PlanError::MissingArtifacts(missing));
    }
    if jobs.is_empty() {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        return Err(PlanError::NothingSelected {
            packages: names(packages.iter().map(|p| p.name.as_str())),
            kinds: kinds.join(", "),
        });
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_triple() {
        let f = |t, ck, n| {
            Platform::of(Some(t))
                .files(ck, n, true)
                .into_iter()
                .map(|(f, _)| f)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            f("x86_64-unknown-linux-gnu", CrateKind::Cdylib, "ffi-core"),
            ["libffi_core.so"]
        );
        assert_eq!(
            f("x86_64-unknown-linux-gnu", CrateKind::Bin, "app-cli"),
            ["app-cli"]
        );
        assert_eq!(
            f("aarch64-apple-darwin", CrateKind::Cdylib, "a-b"),
            ["liba_b.dylib", "liba_b.dylib.dSYM"]
        );
        assert_eq!(
            f("x86_64-pc-windows-msvc", CrateKind::Bin, "app-cli"),
            ["app-cli.exe", "app_cli.pdb"]
        );
        assert_eq!(
            f("x86_64-pc-windows-msvc", CrateKind::Staticlib, "a-b"),
            ["a_b.lib"]
        );
        assert_eq!(
            f("x86_64-pc-windows-gnu", CrateKind::Cdylib, "a"),
            ["a.dll", "liba.dll.a"]
        );
        assert_eq!(
            f("x86_64-pc-windows-gnu", CrateKind::Staticlib, "a"),
            ["liba.a"]
        );
        assert_eq!(
            f("wasm32-unknown-unknown", CrateKind::Cdylib, "a-b"),
            ["a_b.wasm"]
        );
        assert_eq!(f("wasm32-wasip1", CrateKind::Bin, "app"), ["app.wasm"]);
    }

    #[test]
    fn profile_dirs_match_cargo() {
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("test"), "debug");
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("bench"), "release");
        assert_eq!(profile_dir("dist"), "dist");
    }
}
