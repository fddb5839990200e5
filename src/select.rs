//! Selection: asks cargo (`cargo metadata --no-deps`, once) and the globs what to copy; builds the Plan.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{CrateType, Metadata, MetadataCommand, Package, Target, TargetKind};

use crate::cargo::config::{build_targets, BuildTarget};
use crate::cargo::depinfo;
use crate::cargo::features::{self, FeatureFlags};
use crate::cargo::naming::{profile_dir, Platform};
use crate::config::{Config, CrateKind, TargetSelection};
use crate::error::{PlanError, StaleArtifact};
use crate::plan::{file_id, Feed, Job, Kind, Op, Plan, Publisher, Remark, Selection};
use crate::spec;
use crate::walk::PatternWalk;

/// Turns a validated config into a conflict-free plan. Reads the filesystem; writes nothing.
pub fn select(cfg: &Config) -> Result<Plan, PlanError> {
    let out_dir = cfg.out_dir.clone().unwrap_or_default();
    if cfg.out_dir.is_some() {
        check_out_dir(&out_dir)?;
    }
    let mut jobs = Vec::new();
    let mut base = cfg.from.clone();
    let mut target_dir = None;
    let mut remarks = Vec::new();
    if cfg.selects_artifacts() || (cfg.from.is_none() && !cfg.patterns.is_empty()) {
        let meta = metadata(cfg)?;
        let tdir = cfg
            .target_dir
            .clone()
            .unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf());
        if cfg.selects_artifacts() {
            jobs.extend(artifact_jobs(cfg, &meta, &tdir, &out_dir, &mut remarks)?);
        }
        base = Some(meta.workspace_root.clone().into_std_path_buf());
        target_dir = Some(tdir);
    }
    if !cfg.patterns.is_empty() {
        let base = base.unwrap_or_else(|| PathBuf::from("."));
        jobs.extend(pattern_jobs(
            cfg,
            &base,
            target_dir.as_deref(),
            &out_dir,
            &[],
        )?);
    }
    let mut plan = Plan::build(out_dir, jobs)?;
    check_same_files(&plan)?;
    plan.remarks = remarks;
    Ok(plan)
}

/// The files PATTERNs match under `base`, bound for `out_dir`. The walk never enters the
/// out-dir, `also_prune`, or the target dir (unless a pattern names it).
fn pattern_jobs(
    cfg: &Config,
    base: &Path,
    target_dir: Option<&Path>,
    out_dir: &Path,
    also_prune: &[PathBuf],
) -> Result<Vec<Job>, PlanError> {
    let mut prune = vec![
        cfg.out_dir.clone().unwrap_or_default(),
        out_dir.to_path_buf(),
    ];
    prune.extend_from_slice(also_prune);
    if let Some(t) = target_dir {
        // Walking the target dir for `**` patterns is slow and never wanted, unless a
        // pattern names it.
        let named = t
            .strip_prefix(base)
            .ok()
            .and_then(|rel| rel.to_str())
            .is_some_and(|rel| !rel.is_empty() && cfg.patterns.iter().any(|p| p.starts_with(rel)));
        if !named {
            prune.push(t.to_path_buf());
        }
    }
    let walk = PatternWalk {
        base,
        out_dir,
        excludes: &cfg.exclude_globs,
        follow: cfg.dereference,
        prune,
    };
    walk.collect(&cfg.patterns)
}

/// What to copy: a complete plan, or, where the run can copy while it walks (see
/// [`streamed`]), an empty one that the walk fills while the engine copies.
pub fn selection(cfg: &Config) -> Result<Selection<'_>, PlanError> {
    match streamed(cfg)? {
        Some(walk) => Ok(Selection::fed(walk.out_dir.clone(), walk)),
        None => select(cfg).map(Selection::Complete),
    }
}

/// The walk of one directory tree into a new out-dir, feeding a plan: see [`streamed`].
struct Streamed<'c> {
    cfg: &'c Config,
    base: PathBuf,
    out_dir: PathBuf,
}

/// Whether this run can copy while it walks, and if so its (still empty) plan.
///
/// Streaming needs a plan that cannot conflict and a destination the copy cannot disturb:
/// `--from` with one pattern and no artifacts (one tree: every destination is distinct), no
/// `-L` (no loops to find), not `--dry-run`, and an out-dir that does not exist yet or is empty
/// (nothing in it can be a source's own file) and lies outside the tree (the walk never meets
/// what the copy makes). Every other run plans completely first.
fn streamed(cfg: &Config) -> Result<Option<Streamed<'_>>, PlanError> {
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
        cfg,
        base: base.clone(),
        out_dir: out_dir.clone(),
    }))
}

/// `path` made absolute with symlinks resolved, where it does not exist (yet) as well: its
/// deepest existing ancestor, canonicalized, then the rest.
pub(crate) fn resolved(path: &Path) -> Option<PathBuf> {
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

impl Feed for Streamed<'_> {
    fn what(&self) -> &str {
        "the walk"
    }

    /// Walks the tree. `Err`: the walk could not start or matched nothing (then nothing was
    /// published).
    fn feed(&self, to: &mut Publisher<'_>) -> Result<(), PlanError> {
        let walk = PatternWalk {
            base: &self.base,
            out_dir: &self.out_dir,
            excludes: &self.cfg.exclude_globs,
            follow: false,
            prune: vec![self.out_dir.clone()],
        };
        walk.walk(&self.cfg.patterns, to)
    }
}

#[cfg(unix)]
const ENOTDIR: i32 = libc::ENOTDIR;
// ERROR_DIRECTORY: Windows' word for "a path component is not a directory".
#[cfg(windows)]
const ENOTDIR: i32 = 267;

/// The out-dir, or its first existing ancestor, must be a directory we may write in: checked
/// once here, so a destination that cannot be made is one error before anything is written,
/// not one per file.
fn check_out_dir(out: &Path) -> Result<(), PlanError> {
    for anc in out.ancestors() {
        if anc.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(anc) {
            Ok(md) if md.is_dir() => {
                return writable(anc).map_err(|e| PlanError::BadOutDir {
                    path: out.to_path_buf(),
                    reason: if anc == out {
                        format!("cannot write in it: {e}")
                    } else {
                        format!("cannot create it in {}: {e}", anc.display())
                    },
                })
            }
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

/// Whether this process may create entries in `dir` (effective ids, read-only mounts included).
#[cfg(unix)]
fn writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
fn writable(dir: &Path) -> std::io::Result<()> {
    if std::fs::metadata(dir)?.permissions().readonly() {
        return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
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
    for job in plan
        .jobs
        .iter()
        .filter(|j| j.op == Op::Copy && j.src_id.is_some())
    {
        let Ok(d) = std::fs::metadata(&job.dst) else {
            continue;
        };
        if job.src_id == file_id(&d) {
            return Err(PlanError::SameFile {
                src: job.src.clone(),
                dst: job.dst.clone(),
            });
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
    cmd.other_options(config_flags(cfg));
    cmd.exec().map_err(PlanError::metadata)
}

/// `--config` values, as cargo takes them.
fn config_flags(cfg: &Config) -> Vec<String> {
    cfg.cargo_config
        .iter()
        .flat_map(|c| ["--config".to_string(), c.clone()])
        .collect()
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
            if spec::is_glob(spec) {
                let hits: Vec<&&Package> = members
                    .iter()
                    .filter(|p| spec::matches(spec, &p.name))
                    .collect();
                if hits.is_empty() {
                    let all = members.iter().map(|p| p.name.as_str());
                    return Err(spec::unmatched("package", spec, all, || unreachable!()));
                }
                for p in hits {
                    if !out.iter().any(|q: &&Package| q.id == p.id) {
                        out.push(*p);
                    }
                }
                continue;
            }
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
                    let all = members.iter().map(|p| p.name.as_str());
                    return Err(spec::unmatched("package", name, all.clone(), || {
                        PlanError::UnknownPackage {
                            spec: spec.clone(),
                            members: names(all),
                        }
                    }));
                }
            }
        }
        return Ok(out);
    }
    if cfg.workspace {
        for spec in &cfg.exclude {
            if !members.iter().any(|p| spec::matches(spec, &p.name)) {
                let all = members.iter().map(|p| p.name.as_str());
                return Err(spec::unmatched("package", spec, all.clone(), || {
                    PlanError::UnknownPackage {
                        spec: spec.clone(),
                        members: names(all),
                    }
                }));
            }
        }
        return Ok(members
            .into_iter()
            .filter(|p| !cfg.exclude.iter().any(|s| spec::matches(s, &p.name)))
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

/// A target of a selected package that the selection wants, and how `cargo build` names it.
#[derive(Clone, Copy)]
struct Selected<'m> {
    pkg: &'m Package,
    target: &'m Target,
    role: Role,
}

/// What a target is to the selection flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Bin,
    Example,
    Lib,
}

impl Role {
    fn of(target: &Target) -> Option<Role> {
        if target.kind.contains(&TargetKind::Bin) {
            Some(Role::Bin)
        } else if target.kind.contains(&TargetKind::Example) {
            Some(Role::Example)
        } else if is_lib_target(&target.kind) {
            Some(Role::Lib)
        } else {
            None
        }
    }
}

impl Selected<'_> {
    /// `bin `tool` of package `a` (a/src/main.rs)`: which target, wherever its files land.
    fn describe(&self) -> String {
        let role = match self.role {
            Role::Bin => "bin",
            Role::Example => "example",
            Role::Lib => "lib",
        };
        format!(
            "{role} `{}` of package `{}` ({})",
            self.target.name, self.pkg.name, self.target.src_path
        )
    }

    /// The `cargo build` flag that builds exactly this target.
    fn flag(&self) -> String {
        match self.role {
            Role::Bin => format!("--bin {}", self.target.name),
            Role::Example => format!("--example {}", self.target.name),
            Role::Lib => "--lib".to_string(),
        }
    }
}

/// Where one platform's build puts its artifacts, and where they go in the out-dir.
#[derive(Clone)]
struct Layout {
    /// `None`: the host, with no `--target`.
    target: Option<BuildTarget>,
    platform: Platform,
    /// `<target-dir>[/<triple>]/<profile-dir>`.
    dir: PathBuf,
    /// `<target-dir>/<profile-dir>`: proc-macros are host artifacts even with `--target`.
    host_dir: PathBuf,
    /// The out-dir, or `<out-dir>/<triple>` when several triples are staged.
    out: PathBuf,
}

/// One file the selection expects cargo to have written.
struct Expected {
    /// The directory it is in and its name there (`.dSYM` bundles are directories).
    dir: PathBuf,
    file: String,
    kind: Kind,
    out: PathBuf,
}

/// Turns the selection into the artifact files it names ([`expectation`]). Each expected file
/// is then found on disk ([`stage_expected`]) or reported missing with the command that builds
/// it, and an artifact older than its sources is said ([`check_fresh`]).
fn artifact_jobs(
    cfg: &Config,
    meta: &Metadata,
    target_dir: &Path,
    out_dir: &Path,
    remarks: &mut Vec<Remark>,
) -> Result<Vec<Job>, PlanError> {
    let expected = expectation(cfg, meta, target_dir, out_dir, remarks)?;
    // Dep-info paths are absolute.
    let abs_target_dir = std::path::absolute(target_dir).unwrap_or_else(|_| target_dir.into());
    let mut jobs = Vec::new();
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for (layout, sel, exp) in &expected.files {
        let first = jobs.len();
        if !stage_expected(exp, &sel.pkg.name, &mut jobs)? {
            // Debug info exists only as the profile makes it (a .dwp only when packed).
            if exp.kind == Kind::DebugInfo {
                let p = exp.dir.join(&exp.file);
                remarks.push(Remark::Warning(format!(
                    "no debug info file {}",
                    p.display()
                )));
                continue;
            }
            let cmd = build_command(cfg, &expected.layouts[*layout], sel);
            missing.push((exp.dir.join(&exp.file), cmd));
        }
        stale.extend(
            jobs[first..]
                .iter()
                .filter_map(|j| check_fresh(j, meta, &abs_target_dir)),
        );
    }
    if !missing.is_empty() {
        return Err(PlanError::MissingArtifacts(missing));
    }
    if jobs.is_empty() {
        return Err(expected.nothing_selected());
    }
    if cfg.require_fresh && !stale.is_empty() {
        return Err(PlanError::Stale(stale));
    }
    remarks.extend(stale.into_iter().map(|s| Remark::Warning(s.to_string())));
    Ok(jobs)
}

/// Every file the selection expects cargo to have written (or to write), with the layout and
/// target it belongs to: the steps a run with and one without `--build` share.
struct Expectation<'m> {
    packages: Vec<&'m Package>,
    kinds: Vec<CrateKind>,
    layouts: Vec<Layout>,
    /// (index into `layouts`, target, file).
    files: Vec<(usize, Selected<'m>, Expected)>,
}

impl Expectation<'_> {
    fn nothing_selected(&self) -> PlanError {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
        PlanError::NothingSelected {
            packages: names(self.packages.iter().map(|p| p.name.as_str())),
            kinds: kinds.join(", "),
        }
    }
}

/// Which packages ([`selected_packages`]), which of their targets ([`selected_targets`]), which
/// crate kinds of them ([`wanted_kinds`]), in which target-dir layouts ([`layouts`]): the files
/// that makes, bound for `out`, with no two targets on one destination ([`Destinations`]).
fn expectation<'m>(
    cfg: &Config,
    meta: &'m Metadata,
    target_dir: &Path,
    out: &Path,
    remarks: &mut Vec<Remark>,
) -> Result<Expectation<'m>, PlanError> {
    let packages = selected_packages(cfg, meta)?;
    check_named_targets(&cfg.targets, &packages)?;
    let kinds = wanted_kinds(&cfg.targets);
    let targets = selected_targets(cfg, &packages, remarks)?;
    let layouts = layouts(cfg, target_dir, out)?;
    let mut destinations = Destinations::default();
    let mut files = Vec::new();
    for (i, layout) in layouts.iter().enumerate() {
        for sel in &targets {
            for exp in expected_files(layout, sel, &kinds, cfg.debug_files, cfg.dep_info) {
                destinations.claim(exp.out.join(&exp.file), sel)?;
                files.push((i, *sel, exp));
            }
        }
    }
    Ok(Expectation {
        packages,
        kinds,
        layouts,
        files,
    })
}

/// What `--build` stages: every file the selection expects cargo to report, by its path in the
/// target dir, with where it goes. Made from `cargo metadata` before the build starts, so a
/// selection error (an unknown target, features left out, two targets on one name) stops the
/// run before cargo does any work.
pub struct BuildSelection {
    expected: HashMap<PathBuf, Staging>,
    /// Files PATTERNs match, walked before the build: the feed publishes them first.
    pub files: Vec<Job>,
    /// The expected files in selection order (for `--dry-run`).
    order: Vec<PathBuf>,
    /// Notes of selection (targets left out for their features).
    pub remarks: Vec<Remark>,
}

/// Where one expected artifact goes.
struct Staging {
    dst: PathBuf,
    kind: Kind,
    package: String,
    target: String,
}

impl BuildSelection {
    /// The jobs that stage the files of one `compiler-artifact` message: those of its
    /// `filenames` the selection expects from that target; the rest (build scripts,
    /// dependencies, rlibs and proc-macros nobody asked for, `.rmeta`) are not staged.
    pub fn jobs(&self, target: &str, filenames: &[PathBuf]) -> Result<Vec<Job>, PlanError> {
        let mut jobs = Vec::new();
        for file in filenames {
            let Some(st) = self.expected.get(file).filter(|st| st.target == target) else {
                continue;
            };
            let md = std::fs::metadata(file).map_err(|e| PlanError::io(file, e))?;
            if md.is_dir() {
                // A .dSYM bundle: its whole tree.
                let (Some(base), Some(name)) = (file.parent(), file.file_name()) else {
                    continue;
                };
                // Cargo's `.dSYM` is a symlink into deps/: stage what it points to.
                let linked = std::fs::symlink_metadata(file).is_ok_and(|m| m.is_symlink());
                let walk = PatternWalk {
                    base,
                    out_dir: st.dst.parent().unwrap_or(Path::new("")),
                    excludes: &[],
                    follow: linked,
                    prune: Vec::new(),
                };
                jobs.extend(walk.collect(&[name.to_string_lossy().into_owned()])?);
                continue;
            }
            jobs.push(Job::from_metadata(
                file.clone(),
                st.dst.clone(),
                st.kind,
                Some(st.package.clone()),
                &md,
                Op::Copy,
            ));
        }
        Ok(jobs)
    }

    /// The jobs that stage the dep-info file of each expected artifact in `reported`, which
    /// they join. Cargo names no `.d` in its messages and writes it beside the artifact only
    /// after the artifact's message, so this runs once cargo has exited; one cargo did not
    /// write stays unreported.
    pub fn dep_info_jobs(&self, reported: &mut HashSet<PathBuf>) -> Result<Vec<Job>, PlanError> {
        let mut jobs = Vec::new();
        for src in &self.order {
            if !matches!(self.expected[src].kind, Kind::Artifact(_)) || !reported.contains(src) {
                continue;
            }
            let Some(d) = depinfo::path_for(src) else {
                continue;
            };
            let Some(st) = self.expected.get(&d).filter(|st| st.kind == Kind::DepInfo) else {
                continue;
            };
            if reported.contains(&d) {
                continue;
            }
            let md = match std::fs::metadata(&d) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(PlanError::io(&d, e)),
            };
            let package = Some(st.package.clone());
            jobs.push(Job::from_metadata(
                d.clone(),
                st.dst.clone(),
                st.kind,
                package,
                &md,
                Op::Copy,
            ));
            reported.insert(d);
        }
        Ok(jobs)
    }

    /// The expected files (in selection order, with their kind and target) that are not among
    /// `reported`: what a successful build should have written but cargo never named.
    pub fn unreported<'s>(
        &'s self,
        reported: &'s HashSet<PathBuf>,
    ) -> impl Iterator<Item = (&'s Path, Kind, &'s str, &'s str)> + 's {
        self.order
            .iter()
            .filter(|src| !reported.contains(*src))
            .map(|src| {
                let st = &self.expected[src];
                (
                    src.as_path(),
                    st.kind,
                    st.target.as_str(),
                    st.package.as_str(),
                )
            })
    }

    /// A plan of every expected file, as far as the target dir has it now (`--dry-run`: what a
    /// build would stage; a file not built yet shows with size 0), and the PATTERN files.
    pub fn expected_plan(&self, out_dir: PathBuf) -> Result<Plan, PlanError> {
        let artifacts = self.order.iter().map(|src| {
            let st = &self.expected[src];
            let size = std::fs::metadata(src).map_or(0, |m| m.len());
            Job {
                src: src.clone(),
                dst: st.dst.clone(),
                kind: st.kind,
                package: Some(st.package.clone()),
                size,
                mode: 0o755,
                mtime: None,
                op: Op::Copy,
                src_id: None,
                multi_link: false,
                src_root: None,
            }
        });
        Plan::build(
            out_dir,
            artifacts.chain(self.files.iter().cloned()).collect(),
        )
    }
}

/// The selection of a `--build` run whose artifacts go to `out` (`--dry-run`: the out-dir; else
/// the hidden staging directory beside it). The same steps as [`artifact_jobs`], but nothing
/// needs to exist yet.
pub fn build_selection(cfg: &Config, out: &Path) -> Result<BuildSelection, PlanError> {
    let meta = metadata(cfg)?;
    let target_dir = cfg
        .target_dir
        .clone()
        .unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf());
    // Cargo reports absolute paths.
    let target_dir = std::path::absolute(&target_dir).map_err(|e| PlanError::io(&target_dir, e))?;
    let mut remarks = Vec::new();
    let expectation = expectation(cfg, &meta, &target_dir, out, &mut remarks)?;
    if expectation.files.is_empty() {
        return Err(expectation.nothing_selected());
    }
    let mut expected = HashMap::new();
    let mut order = Vec::new();
    for (_, sel, exp) in expectation.files {
        let src = exp.dir.join(&exp.file);
        order.push(src.clone());
        let staging = Staging {
            dst: exp.out.join(&exp.file),
            kind: exp.kind,
            package: sel.pkg.name.to_string(),
            target: sel.target.name.clone(),
        };
        expected.insert(src, staging);
    }
    let files = if cfg.patterns.is_empty() {
        Vec::new()
    } else {
        let base = meta.workspace_root.clone().into_std_path_buf();
        pattern_jobs(cfg, &base, Some(&target_dir), out, &[])?
    };
    let selection = BuildSelection {
        expected,
        files,
        order,
        remarks,
    };
    // The same conflict checks as a complete plan's, over what the build will stage.
    selection.expected_plan(out.to_path_buf())?;
    Ok(selection)
}

/// Which selected target each destination came from: two that land on one name (a bin `tool`
/// in two members, whose files even share one path in the target dir) are an error naming both.
#[derive(Default)]
struct Destinations(HashMap<PathBuf, String>);

impl Destinations {
    fn claim(&mut self, dst: PathBuf, sel: &Selected<'_>) -> Result<(), PlanError> {
        let origin = sel.describe();
        match self.0.get(&dst) {
            Some(first) if *first != origin => Err(PlanError::ArtifactCollision {
                dst,
                a: first.clone(),
                b: origin,
            }),
            Some(_) => Ok(()),
            None => {
                self.0.insert(dst, origin);
                Ok(())
            }
        }
    }
}

/// `Some` when a source `job` (an artifact file) was built from is newer than it.
///
/// Only sources in the workspace and in the members' path dependencies (a sibling crate outside
/// the workspace, say) count, and none under the target dir: those are what cargo itself
/// judges by mtime. A registry crate's sources are judged by version, and a restored cache may
/// well give them newer mtimes than the artifact without making it stale.
fn check_fresh(job: &Job, meta: &Metadata, target_dir: &Path) -> Option<StaleArtifact> {
    if job.op != Op::Copy || !matches!(job.kind, Kind::Artifact(_)) {
        return None;
    }
    let root = meta.workspace_root.as_std_path();
    let path_deps: Vec<&Path> = meta
        .packages
        .iter()
        .flat_map(|p| p.dependencies.iter().filter_map(|d| d.path.as_deref()))
        .map(|d| d.as_std_path())
        .collect();
    let ours = |p: &Path| {
        (p.starts_with(root) || path_deps.iter().any(|d| p.starts_with(d)))
            && !p.starts_with(target_dir)
    };
    let source = depinfo::newer_source(&job.src, job.mtime?, root, ours)?;
    Some(StaleArtifact {
        artifact: job.src.clone(),
        source,
    })
}

/// Crate kinds to stage: `--crate-type` if given; every kind when a target is named (`--lib`
/// means the rlib too); otherwise what ships: bins, cdylibs, staticlibs, dylibs.
fn wanted_kinds(sel: &TargetSelection) -> Vec<CrateKind> {
    if !sel.crate_types.is_empty() {
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
    }
}

/// Every target named by `--bin`/`--example`/`--lib` exists in the selected packages.
fn check_named_targets(sel: &TargetSelection, packages: &[&Package]) -> Result<(), PlanError> {
    let all_targets = || packages.iter().flat_map(|p| p.targets.iter());
    for (wanted, kind, label) in [
        (&sel.bins, TargetKind::Bin, "bin"),
        (&sel.examples, TargetKind::Example, "example"),
    ] {
        let of_kind = || {
            all_targets()
                .filter(|t| t.kind.contains(&kind))
                .map(|t| t.name.as_str())
        };
        for name in wanted {
            if !of_kind().any(|t| spec::matches(name, t)) {
                let what = if kind == TargetKind::Bin {
                    "bin target"
                } else {
                    "example target"
                };
                return Err(spec::unmatched(what, name, of_kind(), || {
                    PlanError::UnknownTarget {
                        kind: label,
                        name: name.clone(),
                        available: names(of_kind()),
                    }
                }));
            }
        }
    }
    if sel.lib && !all_targets().any(|t| is_lib_target(&t.kind)) {
        return Err(PlanError::NoLib);
    }
    Ok(())
}

/// The targets of the selected packages that the target flags pick: the named ones, or without
/// target flags every bin and lib (examples only when `--crate-type example` asks for them:
/// cargo never builds examples by default). A bin or example whose `required-features` the
/// feature flags leave out is not built by cargo, so not selected (a note at `-v`); naming it
/// is an error that says which features it needs.
fn selected_targets<'m>(
    cfg: &Config,
    packages: &[&'m Package],
    remarks: &mut Vec<Remark>,
) -> Result<Vec<Selected<'m>>, PlanError> {
    let sel = &cfg.targets;
    let flags = FeatureFlags {
        features: &cfg.features,
        all: cfg.all_features,
        no_default: cfg.no_default_features,
    };
    if let Some(message) = features::unknown(packages, &cfg.features) {
        return Err(PlanError::UnknownFeatures(message));
    }
    let mut out = Vec::new();
    for pkg in packages {
        let enabled = features::enabled(pkg, flags);
        for target in &pkg.targets {
            let Some(role) = Role::of(target) else {
                continue;
            };
            if !wants(sel, role, &target.name) {
                continue;
            }
            let selected = Selected { pkg, target, role };
            let missing = features::missing(target, &enabled);
            if missing.is_empty() {
                out.push(selected);
            } else if names_exactly(sel, role, &target.name) {
                return Err(PlanError::RequiredFeatures {
                    target: selected.describe(),
                    features: missing.join(", "),
                    flag: format!("--features {}", missing.join(",")),
                });
            } else {
                remarks.push(Remark::Note(format!(
                    "{} not selected: it requires the features {} (see --features)",
                    selected.describe(),
                    missing.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// Whether `--bin NAME`/`--example NAME` names this very target.
fn names_exactly(sel: &TargetSelection, role: Role, name: &str) -> bool {
    match role {
        Role::Bin => sel.bins.iter().any(|b| b == name),
        Role::Example => sel.examples.iter().any(|e| e == name),
        Role::Lib => false,
    }
}

/// Whether the target flags pick a target of this role and name.
fn wants(sel: &TargetSelection, role: Role, name: &str) -> bool {
    if !sel.names_targets() {
        return role != Role::Example || sel.crate_types.contains(&CrateKind::Example);
    }
    match role {
        Role::Bin => sel.all_bins || sel.bins.iter().any(|b| spec::matches(b, name)),
        Role::Example => sel.all_examples || sel.examples.iter().any(|e| spec::matches(e, name)),
        Role::Lib => sel.lib,
    }
}

/// One layout per platform cargo builds for (see [`build_targets`]), or the host's.
fn layouts(cfg: &Config, target_dir: &Path, out_dir: &Path) -> Result<Vec<Layout>, PlanError> {
    let cwd = std::env::current_dir().map_err(|e| PlanError::io(".", e))?;
    let targets = build_targets(&cfg.triples, &cfg.cargo_config, &cwd)?;
    let pdir = profile_dir(cfg.profile());
    let several = targets.len() > 1;
    let host = Layout {
        target: None,
        platform: Platform::host(),
        dir: target_dir.join(pdir),
        host_dir: target_dir.join(pdir),
        out: out_dir.to_path_buf(),
    };
    if targets.is_empty() {
        return Ok(vec![host]);
    }
    Ok(targets
        .into_iter()
        .map(|t| Layout {
            platform: Platform::of(Some(&t.name)),
            dir: target_dir.join(&t.name).join(pdir),
            out: if several {
                out_dir.join(&t.name)
            } else {
                out_dir.to_path_buf()
            },
            target: Some(t),
            ..host.clone()
        })
        .collect())
}

/// The files one selected target leaves in one layout, for the wanted crate kinds; with
/// `dep_info`, each artifact's `.d` file too (once: a lib's crate types share one).
fn expected_files(
    layout: &Layout,
    sel: &Selected<'_>,
    kinds: &[CrateKind],
    debug_files: bool,
    dep_info: bool,
) -> Vec<Expected> {
    let mut out = Vec::new();
    for ck in crate_kinds(&sel.target.kind, &sel.target.crate_types) {
        if !kinds.contains(&ck) {
            continue;
        }
        let dir = if ck == CrateKind::ProcMacro {
            layout.host_dir.clone()
        } else if sel.role == Role::Example {
            layout.dir.join("examples")
        } else {
            layout.dir.clone()
        };
        for (file, kind) in layout.platform.files(ck, &sel.target.name, debug_files) {
            let d = dep_info_name(&file).filter(|_| dep_info && matches!(kind, Kind::Artifact(_)));
            out.push(Expected {
                dir: dir.clone(),
                file,
                kind,
                out: layout.out.clone(),
            });
            if let Some(d) = d {
                if !out.iter().any(|e| e.dir == dir && e.file == d) {
                    out.push(Expected {
                        dir: dir.clone(),
                        file: d,
                        kind: Kind::DepInfo,
                        out: layout.out.clone(),
                    });
                }
            }
        }
    }
    out
}

/// The name of the dep-info file cargo writes beside the artifact named `file`.
fn dep_info_name(file: &str) -> Option<String> {
    let d = depinfo::path_for(Path::new(file))?;
    Some(d.to_str()?.to_string())
}

/// Adds the jobs that copy one expected file (a `.dSYM` bundle: its whole tree); `false` when
/// it is not there.
fn stage_expected(exp: &Expected, package: &str, jobs: &mut Vec<Job>) -> Result<bool, PlanError> {
    let src = exp.dir.join(&exp.file);
    let Ok(md) = std::fs::metadata(&src) else {
        return Ok(false);
    };
    if md.is_dir() {
        // Cargo leaves a `.dSYM` as a symlink into deps/: the bundle is what it points to.
        let linked = std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_symlink());
        let walk = PatternWalk {
            base: &exp.dir,
            out_dir: &exp.out,
            excludes: &[],
            follow: linked,
            prune: Vec::new(),
        };
        jobs.extend(walk.collect(std::slice::from_ref(&exp.file))?);
    } else {
        let dst = exp.out.join(&exp.file);
        jobs.push(Job::from_metadata(
            src,
            dst,
            exp.kind,
            Some(package.to_string()),
            &md,
            Op::Copy,
        ));
    }
    Ok(true)
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

/// The `cargo build` command that produces one target's artifacts: the selection's own flags
/// as given, the target's required features, and `name@version` where the name alone could
/// mean another package.
fn build_command(cfg: &Config, layout: &Layout, sel: &Selected<'_>) -> String {
    let mut cmd = String::from("cargo build");
    if let Some(m) = &cfg.manifest_path {
        cmd.push_str(&format!(" --manifest-path {}", m.display()));
    }
    match cfg.profile() {
        "dev" => {}
        "release" => cmd.push_str(" --release"),
        p => cmd.push_str(&format!(" --profile {p}")),
    }
    // A platform from cargo's configuration needs no flag: the user's `cargo build` reads it too.
    if let (Some(t), false) = (&layout.target, cfg.triples.is_empty()) {
        cmd.push_str(&format!(" --target {}", t.arg));
    }
    if let Some(d) = &cfg.target_dir {
        cmd.push_str(&format!(" --target-dir {}", d.display()));
    }
    for c in &cfg.cargo_config {
        cmd.push_str(&format!(" --config {}", shell_word(c)));
    }
    let mut features: Vec<&str> = cfg.features.iter().map(String::as_str).collect();
    for f in &sel.target.required_features {
        if !features.contains(&f.as_str()) {
            features.push(f);
        }
    }
    if cfg.all_features {
        cmd.push_str(" --all-features");
    }
    if cfg.no_default_features {
        cmd.push_str(" --no-default-features");
    }
    if !features.is_empty() {
        cmd.push_str(&format!(" --features {}", features.join(",")));
    }
    cmd.push_str(&format!(" -p {} {}", package_spec(sel.pkg), sel.flag()));
    cmd
}

/// `name`, or `name@version` when the workspace's lock file holds another package of that name
/// (then `-p name` is ambiguous to cargo).
fn package_spec(pkg: &Package) -> String {
    let lock = pkg
        .manifest_path
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|l| l.exists());
    let namesakes = lock
        .and_then(|l| std::fs::read_to_string(l).ok())
        .map_or(0, |text| lock_namesakes(&text, &pkg.name));
    if namesakes > 1 {
        format!("{}@{}", pkg.name, pkg.version)
    } else {
        pkg.name.to_string()
    }
}

/// How many packages named `name` a `Cargo.lock` holds.
fn lock_namesakes(lock: &str, name: &str) -> usize {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Locked>,
    }
    #[derive(serde::Deserialize)]
    struct Locked {
        name: String,
    }
    toml::from_str::<Lock>(lock).map_or(0, |l| l.package.iter().filter(|p| p.name == name).count())
}

/// `s` as one word for a POSIX shell: quoted when it holds anything but plain characters.
fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package as `cargo metadata` describes it, with `targets` given as (name, kinds,
    /// crate types).
    fn package(name: &str, targets: &[(&str, &[&str], &[&str])]) -> Package {
        let targets: Vec<serde_json::Value> = targets
            .iter()
            .map(|(n, kinds, types)| {
                serde_json::json!({
                    "name": n, "kind": kinds, "crate_types": types,
                    "src_path": format!("/ws/{name}/src/{n}.rs"),
                    "edition": "2021", "doctest": false, "test": false, "doc": false,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "name": name, "version": "0.1.0", "id": format!("path+file:///ws/{name}#0.1.0"),
            "dependencies": [], "targets": targets, "features": {},
            "manifest_path": format!("/ws/{name}/Cargo.toml"), "edition": "2021",
        }))
        .expect("a package as cargo metadata prints it")
    }

    fn app() -> Package {
        package(
            "app",
            &[
                ("app", &["bin"], &["bin"]),
                ("app-admin", &["bin"], &["bin"]),
                (
                    "app",
                    &["cdylib", "staticlib", "rlib"],
                    &["cdylib", "staticlib", "rlib"],
                ),
                ("demo", &["example"], &["bin"]),
                ("ex_ffi", &["example"], &["cdylib"]),
                ("build-script-build", &["custom-build"], &["bin"]),
            ],
        )
    }

    /// The selected (target, crate kinds) pairs, after the crate-kind filter.
    fn picked(sel: &TargetSelection) -> Vec<(String, Vec<CrateKind>)> {
        let pkg = app();
        let kinds = wanted_kinds(sel);
        let cfg = Config {
            targets: sel.clone(),
            ..Config::new()
        };
        selected_targets(&cfg, &[&pkg], &mut Vec::new())
            .expect("no target is named")
            .into_iter()
            .map(|s| {
                let ck: Vec<CrateKind> = crate_kinds(&s.target.kind, &s.target.crate_types)
                    .into_iter()
                    .filter(|k| kinds.contains(k))
                    .collect();
                (s.target.name.clone(), ck)
            })
            .filter(|(_, ck)| !ck.is_empty())
            .collect()
    }

    fn owned(v: &[(&str, &[CrateKind])]) -> Vec<(String, Vec<CrateKind>)> {
        v.iter().map(|(n, k)| (n.to_string(), k.to_vec())).collect()
    }

    #[test]
    fn by_default_what_ships_bins_cdylibs_staticlibs_dylibs() {
        assert_eq!(
            wanted_kinds(&TargetSelection::default()),
            [
                CrateKind::Bin,
                CrateKind::Cdylib,
                CrateKind::Staticlib,
                CrateKind::Dylib
            ]
        );
        assert_eq!(
            picked(&TargetSelection::default()),
            owned(&[
                ("app", &[CrateKind::Bin]),
                ("app-admin", &[CrateKind::Bin]),
                ("app", &[CrateKind::Cdylib, CrateKind::Staticlib]),
            ]),
            "examples only when asked for: cargo never builds them by default"
        );
    }

    #[test]
    fn naming_a_target_takes_every_kind_it_builds() {
        let sel = TargetSelection {
            lib: true,
            ..Default::default()
        };
        assert_eq!(
            picked(&sel),
            owned(&[(
                "app",
                &[CrateKind::Cdylib, CrateKind::Staticlib, CrateKind::Rlib]
            )])
        );
        let sel = TargetSelection {
            examples: vec!["demo".into()],
            bins: vec!["app-admin".into()],
            ..Default::default()
        };
        assert_eq!(
            picked(&sel),
            owned(&[
                ("app-admin", &[CrateKind::Bin]),
                ("demo", &[CrateKind::Example])
            ])
        );
    }

    #[test]
    fn crate_type_narrows_the_default_selection() {
        let sel = TargetSelection {
            crate_types: vec![CrateKind::Staticlib],
            ..Default::default()
        };
        assert_eq!(picked(&sel), owned(&[("app", &[CrateKind::Staticlib])]));
    }

    #[test]
    fn examples_by_crate_type_alone_or_all_of_them_by_flag() {
        let sel = TargetSelection {
            crate_types: vec![CrateKind::Example],
            ..Default::default()
        };
        assert_eq!(picked(&sel), owned(&[("demo", &[CrateKind::Example])]));
        let sel = TargetSelection {
            all_examples: true,
            ..Default::default()
        };
        assert_eq!(
            picked(&sel),
            owned(&[
                ("demo", &[CrateKind::Example]),
                ("ex_ffi", &[CrateKind::Cdylib])
            ]),
            "an example library is staged as the crate kind it builds"
        );
    }

    #[test]
    fn build_scripts_are_never_selected() {
        let sel = TargetSelection {
            all_bins: true,
            ..Default::default()
        };
        let names: Vec<String> = picked(&sel).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["app", "app-admin"]);
    }

    #[test]
    fn hints_quote_for_the_shell_and_count_lock_namesakes() {
        assert_eq!(shell_word("build.jobs=2"), "build.jobs=2");
        assert_eq!(shell_word("build.target=\"x\""), "'build.target=\"x\"'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        let lock = "version = 4\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"app\"\nversion = \"0.2.0\"\n\n[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n";
        assert_eq!(lock_namesakes(lock, "app"), 2);
        assert_eq!(lock_namesakes(lock, "b"), 1);
        assert_eq!(lock_namesakes("not toml [", "b"), 0);
    }

    #[test]
    fn a_target_whose_required_features_are_off_is_left_out_or_refused_by_name() {
        let pkg: Package = serde_json::from_value(serde_json::json!({
            "name": "app", "version": "0.1.0", "id": "path+file:///ws/app#0.1.0",
            "dependencies": [], "features": {"extra": [], "default": []},
            "manifest_path": "/ws/app/Cargo.toml", "edition": "2021",
            "targets": [
                {"name": "app", "kind": ["bin"], "crate_types": ["bin"],
                 "src_path": "/ws/app/src/main.rs", "edition": "2021"},
                {"name": "extra", "kind": ["bin"], "crate_types": ["bin"],
                 "required-features": ["extra"],
                 "src_path": "/ws/app/src/bin/extra.rs", "edition": "2021"},
            ],
        }))
        .unwrap();
        let names = |cfg: &Config, remarks: &mut Vec<Remark>| {
            selected_targets(cfg, &[&pkg], remarks)
                .map(|v| v.iter().map(|s| s.target.name.clone()).collect::<Vec<_>>())
        };
        let mut remarks = Vec::new();
        assert_eq!(names(&Config::new(), &mut remarks).unwrap(), ["app"]);
        assert!(
            matches!(&remarks[..], [Remark::Note(n)] if n.contains("requires the features extra")),
            "{remarks:?}"
        );
        let with = Config {
            features: vec!["extra".into()],
            ..Config::new()
        };
        assert_eq!(names(&with, &mut Vec::new()).unwrap(), ["app", "extra"]);
        let named = Config {
            targets: TargetSelection {
                bins: vec!["extra".into()],
                ..Default::default()
            },
            ..Config::new()
        };
        let err = names(&named, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(&err, PlanError::RequiredFeatures { features, .. } if features == "extra"),
            "{err}"
        );
    }
}
