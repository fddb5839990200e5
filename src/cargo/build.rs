//! `--build`: runs `cargo build` with the run's selection and feeds each artifact cargo reports
//! to the engine as its `compiler-artifact` message arrives, staged out of sight; the out-dir
//! changes only once the build has succeeded.
//!
//! Copying while cargo still compiles and leaving the out-dir untouched by a failed build pull
//! two ways; the engine places every file it finishes. So the fed plan's destinations lie in a
//! hidden directory beside the out-dir, on its file system: the bytes move while cargo works,
//! and when cargo has succeeded each finished file is renamed into the out-dir (a rename per
//! file, atomic, no bytes). A failed or interrupted build removes the hidden directory and the
//! out-dir is as it was. Renaming needs one file system, which a sibling of the out-dir gives
//! and the target dir need not.
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;

use cargo_metadata::Message;

use crate::config::{Color, Config, Output};
use crate::engine::{Event, EventSink};
use crate::error::{CopyError, PlanError};
use crate::plan::{Feed, Job, Kind, Op, Plan, Publisher, Remark};
use crate::select::{build_selection, BuildSelection};

/// `cargo build` did not succeed (or did not run): the run exits with cargo's status.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` {}", match .status { Some(s) => format!("failed ({s})"), None => "did not finish".into() })]
pub struct BuildFailed {
    pub command: String,
    pub status: Option<ExitStatus>,
}

impl BuildFailed {
    /// Cargo's exit code (128 + the signal that ended it; 101, cargo's own, when unknown).
    pub fn exit_code(&self) -> u8 {
        let Some(status) = self.status else {
            return 101;
        };
        #[cfg(unix)]
        if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
            return 128u8.saturating_add(sig as u8);
        }
        status.code().map_or(101, |c| c as u8)
    }
}

/// One `cargo build` run and where its artifacts are staged.
pub struct CargoBuild {
    cargo: OsString,
    args: Vec<String>,
    selection: BuildSelection,
    /// The hidden directory beside the out-dir that the engine copies into.
    staging: PathBuf,
    out_dir: PathBuf,
    status: Mutex<Option<ExitStatus>>,
    /// Every file cargo's `compiler-artifact` messages named.
    reported: Mutex<HashSet<PathBuf>>,
}

impl CargoBuild {
    /// Plans the build: the selection (checked against `cargo metadata` before cargo builds
    /// anything) and the command.
    pub fn new(cfg: &Config) -> Result<CargoBuild, PlanError> {
        let out_dir = cfg.out_dir.clone().unwrap_or_default();
        let staging = if cfg.dry_run {
            out_dir.clone()
        } else {
            staging_dir(&out_dir)?
        };
        let selection = build_selection(cfg, &staging)?;
        Ok(CargoBuild {
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            args: build_args(cfg),
            selection,
            staging,
            out_dir,
            status: Mutex::new(None),
            reported: Mutex::default(),
        })
    }

    /// The command as a user would type it.
    pub fn command_line(&self) -> String {
        let mut line = String::from("cargo");
        for a in &self.args {
            line.push(' ');
            line.push_str(a);
        }
        line
    }

    pub fn selection(&self) -> &BuildSelection {
        &self.selection
    }

    /// Where the engine copies to.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// How cargo exited; `None` before it has, or when it could not be started.
    pub fn status(&self) -> Option<ExitStatus> {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err` unless cargo ran and succeeded.
    pub fn outcome(&self) -> Result<(), BuildFailed> {
        match self.status() {
            Some(s) if s.success() => Ok(()),
            status => Err(BuildFailed {
                command: self.command_line(),
                status,
            }),
        }
    }

    /// After a successful build, the files the selection expected that cargo never reported.
    /// Debug info exists only as the profile makes it: a warning, as without `--build`. Any
    /// other file means cargo did not build what the selection promised (a naming rule or a
    /// feature resolution that disagrees with cargo's): the run fails rather than place an
    /// incomplete bundle.
    pub fn unreported(&self) -> Result<Vec<Remark>, PlanError> {
        let reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let mut warnings = Vec::new();
        let mut missing = Vec::new();
        for (file, kind, target, package) in self.selection.unreported(&reported) {
            if kind == Kind::DebugInfo {
                warnings.push(Remark::Warning(format!(
                    "no debug info file {}",
                    file.display()
                )));
            } else if kind == Kind::DepInfo {
                missing.push(format!(
                    "{} (no dep-info file written for target `{target}` of package `{package}`)",
                    file.display()
                ));
            } else {
                missing.push(format!(
                    "{} (target `{target}` of package `{package}`)",
                    file.display()
                ));
            }
        }
        if missing.is_empty() {
            return Ok(warnings);
        }
        Err(PlanError::Build(format!(
            "`{}` succeeded but never reported {}",
            self.command_line(),
            missing.join(", ")
        )))
    }

    /// Moves the jobs of `staged` that the engine finished (`done[i]`) from the staging
    /// directory into the out-dir, then removes the staging directory. Returns the plan with
    /// the final destinations (same job indices) and the moves that failed.
    pub fn place(&self, staged: &Plan, done: &[bool]) -> (Plan, Vec<(usize, CopyError)>) {
        let mut jobs = Vec::with_capacity(staged.jobs.len());
        let mut failed = Vec::new();
        for (i, job) in staged.jobs.iter().enumerate() {
            let rel = job.dst.strip_prefix(&self.staging).unwrap_or(&job.dst);
            let dst = self.out_dir.join(rel);
            if done.get(i).copied().unwrap_or(false) {
                if let Err(e) = move_into_place(job, &dst) {
                    failed.push((i, e));
                }
            }
            jobs.push(Job { dst, ..job.clone() });
        }
        self.discard();
        let plan = Plan {
            out_dir: self.out_dir.clone(),
            jobs: jobs.into(),
            remarks: Vec::new(),
        };
        (plan, failed)
    }

    /// Removes the staging directory and whatever the engine put there.
    pub fn discard(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.staging) {
            debug_assert!(e.kind() == std::io::ErrorKind::NotFound, "{e}");
        }
    }
}

fn move_into_place(job: &Job, dst: &Path) -> Result<(), CopyError> {
    if job.op == Op::Dir {
        return std::fs::create_dir_all(dst).map_err(|e| CopyError::io("create", dst, e));
    }
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CopyError::io("create", parent, e))?;
    }
    std::fs::rename(&job.dst, dst).map_err(|e| CopyError::io("place", dst, e))
}

/// A hidden directory beside `out_dir`, in its nearest existing ancestor (so on the file system
/// the out-dir is or will be on), named for this process.
fn staging_dir(out_dir: &Path) -> Result<PathBuf, PlanError> {
    let abs = std::path::absolute(out_dir).map_err(|e| PlanError::io(out_dir, e))?;
    let name = abs
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let anchor = abs
        .ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("."));
    Ok(anchor.join(format!(".{name}.fastcp-build-{}", std::process::id())))
}

/// `build` and the selection and build flags of `cfg`, as cargo takes them.
fn build_args(cfg: &Config) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "build".into(),
        "--message-format=json-render-diagnostics".into(),
    ];
    let mut flag = |name: &str, on: bool| {
        if on {
            a.push(name.into());
        }
    };
    flag("--workspace", cfg.workspace);
    flag("--bins", cfg.targets.all_bins);
    flag("--examples", cfg.targets.all_examples);
    flag("--lib", cfg.targets.lib);
    flag("--all-features", cfg.all_features);
    flag("--no-default-features", cfg.no_default_features);
    flag("--locked", cfg.locked);
    flag("--frozen", cfg.frozen);
    flag("--offline", cfg.offline);
    flag("--quiet", cfg.output == Output::Quiet);
    let pairs = [
        ("--package", &cfg.packages),
        ("--exclude", &cfg.exclude),
        ("--bin", &cfg.targets.bins),
        ("--example", &cfg.targets.examples),
        ("--target", &cfg.triples),
        ("--config", &cfg.cargo_config),
    ];
    for (name, values) in pairs {
        for v in values {
            a.push(name.into());
            a.push(v.clone());
        }
    }
    if !cfg.features.is_empty() {
        a.push("--features".into());
        a.push(cfg.features.join(","));
    }
    if let Some(p) = &cfg.profile {
        a.push("--profile".into());
        a.push(p.clone());
    }
    if let Some(m) = &cfg.manifest_path {
        a.push("--manifest-path".into());
        a.push(m.display().to_string());
    }
    if let Some(d) = &cfg.target_dir {
        a.push("--target-dir".into());
        a.push(d.display().to_string());
    }
    match cfg.color {
        Color::Always => a.extend(["--color".into(), "always".into()]),
        Color::Never => a.extend(["--color".into(), "never".into()]),
        Color::Auto => {}
    }
    if let Some(j) = cfg.jobs_given {
        a.push("--jobs".into());
        a.push(j.to_string());
    }
    a
}

impl Feed for &CargoBuild {
    fn what(&self) -> &str {
        "cargo build"
    }

    /// Runs cargo, its diagnostics going to the terminal as cargo renders them, and publishes
    /// the jobs of each selected artifact as its message arrives. A failed build is no feed
    /// error: its exit status is kept for [`CargoBuild::status`].
    fn feed(&self, to: &mut Publisher<'_>) -> Result<(), PlanError> {
        let mut child = Command::new(&self.cargo)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| PlanError::Build(format!("cannot run cargo: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(PlanError::Build("cargo's output is not piped".into()));
        };
        // After the spawn: a cargo that cannot start leaves the plan empty (nothing written).
        for job in &self.selection.files {
            to.push(job.clone());
        }
        to.flush();
        let mut failure = None;
        for message in Message::parse_stream(BufReader::new(stdout)) {
            if to.stopped() {
                let _ = child.kill();
                break;
            }
            let Ok(Message::CompilerArtifact(artifact)) = message else {
                continue;
            };
            let files: Vec<PathBuf> = artifact
                .filenames
                .iter()
                .map(|f| f.clone().into_std_path_buf())
                .collect();
            self.reported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(files.iter().cloned());
            match self.selection.jobs(&artifact.target.name, &files) {
                Ok(jobs) => {
                    for job in jobs {
                        to.push(job);
                    }
                    to.flush();
                }
                Err(e) => failure = Some(e),
            }
        }
        let status = child
            .wait()
            .map_err(|e| PlanError::Build(format!("waiting for cargo: {e}")))?;
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
        if status.success() && !to.stopped() {
            let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
            match self.selection.dep_info_jobs(&mut reported) {
                Ok(jobs) => {
                    for job in jobs {
                        to.push(job);
                    }
                    to.flush();
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The engine's events of a `--build` run, held until the build's outcome is known: a
/// reporter then gets them over the plan with the final destinations.
#[derive(Default)]
pub struct HeldEvents(Mutex<Vec<Event>>);

impl EventSink for HeldEvents {
    fn event(&self, event: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

impl HeldEvents {
    /// Which of `jobs` jobs the engine finished.
    pub fn done(&self, jobs: usize) -> Vec<bool> {
        let mut done = vec![false; jobs];
        for e in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if let Event::Done { index } = e {
                if let Some(d) = done.get_mut(*index) {
                    *d = true;
                }
            }
        }
        done
    }

    /// Hands the events to `sink`, a job whose placing failed as `Failed` rather than `Done`.
    pub fn replay(self, sink: &dyn EventSink, failed: Vec<(usize, CopyError)>) {
        let mut failed: std::collections::HashMap<usize, CopyError> = failed.into_iter().collect();
        for e in self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            match e {
                Event::Done { index } => match failed.remove(&index) {
                    Some(error) => sink.event(Event::Failed { index, error }),
                    None => sink.event(Event::Done { index }),
                },
                other => sink.event(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetSelection;

    #[test]
    fn every_selection_and_build_flag_reaches_cargo() {
        let cfg = Config {
            packages: vec!["a@0.1.0".into()],
            workspace: true,
            exclude: vec!["b".into()],
            targets: TargetSelection {
                bins: vec!["x".into()],
                all_bins: true,
                examples: vec!["e".into()],
                all_examples: true,
                lib: true,
                crate_types: vec![],
            },
            profile: Some("ship".into()),
            triples: vec!["specs/os.json".into(), "x86_64-unknown-linux-gnu".into()],
            target_dir: Some("t".into()),
            manifest_path: Some("w/Cargo.toml".into()),
            cargo_config: vec!["build.jobs=2".into()],
            features: vec!["f".into(), "a/g".into()],
            all_features: true,
            no_default_features: true,
            locked: true,
            frozen: true,
            offline: true,
            jobs_given: std::num::NonZeroUsize::new(3),
            ..Config::new()
        };
        let args = build_args(&cfg).join(" ");
        assert_eq!(
            args,
            "build --message-format=json-render-diagnostics --workspace --bins --examples --lib \
             --all-features --no-default-features --locked --frozen --offline --package a@0.1.0 \
             --exclude b --bin x --example e --target specs/os.json \
             --target x86_64-unknown-linux-gnu --config build.jobs=2 --features f,a/g \
             --profile ship --manifest-path w/Cargo.toml --target-dir t --jobs 3"
        );
        assert_eq!(
            build_args(&Config::new()).join(" "),
            "build --message-format=json-render-diagnostics"
        );
    }

    #[test]
    fn the_staging_dir_is_a_hidden_sibling_of_the_out_dir() {
        let tmp = std::env::temp_dir();
        let staging = staging_dir(&tmp.join("no-such-parent/dist")).unwrap();
        assert_eq!(
            staging.parent(),
            Some(tmp.as_path()),
            "nearest existing ancestor"
        );
        let name = staging.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".dist.fastcp-build-"), "{name}");
    }
}
