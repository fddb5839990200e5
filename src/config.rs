//! The plain, validated run configuration that drives everything after the CLI.
use std::num::NonZeroUsize;
use std::path::PathBuf;

/// A crate kind as `cargo build` names it, used by `--crate-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrateKind {
    Bin,
    Example,
    Cdylib,
    Staticlib,
    Dylib,
    Rlib,
    ProcMacro,
}

impl CrateKind {
    pub const ALL: [CrateKind; 7] = [
        CrateKind::Bin,
        CrateKind::Example,
        CrateKind::Cdylib,
        CrateKind::Staticlib,
        CrateKind::Dylib,
        CrateKind::Rlib,
        CrateKind::ProcMacro,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CrateKind::Bin => "bin",
            CrateKind::Example => "example",
            CrateKind::Cdylib => "cdylib",
            CrateKind::Staticlib => "staticlib",
            CrateKind::Dylib => "dylib",
            CrateKind::Rlib => "rlib",
            CrateKind::ProcMacro => "proc-macro",
        }
    }

    pub fn parse(s: &str) -> Option<CrateKind> {
        CrateKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Which targets of the selected packages to take artifacts from.
#[derive(Debug, Clone, Default)]
pub struct TargetSelection {
    pub bins: Vec<String>,
    pub all_bins: bool,
    pub examples: Vec<String>,
    pub all_examples: bool,
    pub lib: bool,
    /// Empty means "what ships": bin, cdylib, staticlib, dylib.
    pub crate_types: Vec<CrateKind>,
}

impl TargetSelection {
    /// True when a target flag (not only `--crate-type`) narrows the targets.
    pub fn names_targets(&self) -> bool {
        !self.bins.is_empty()
            || self.all_bins
            || !self.examples.is_empty()
            || self.all_examples
            || self.lib
    }
}

/// Which reporter a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Quiet,
    Json,
}

/// When diagnostics and the progress line use colour (`--color`, `CARGO_TERM_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Colour when stderr is a terminal (and `NO_COLOR` is unset).
    Auto,
    Always,
    Never,
}

/// `--engine`: which backend copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    Auto,
    IoUring,
    Portable,
}

/// How a regular file's bytes move (io-uring engine; the portable engine always uses the OS copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// Buffer ring below the size threshold, in-kernel copy above it.
    Auto,
    BufferRing,
    CopyFileRange,
    /// Source → pipe → destination through io_uring splice ops: page references in, one copy out.
    Splice,
}

/// Everything a run needs, validated. Built by `cli`, or directly by tests and benchmarks.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-o/--out-dir`: where files go; `None` only with `--dry-run`.
    pub out_dir: Option<PathBuf>,
    /// `--manifest-path`: the workspace's Cargo.toml; `None`: cargo finds it from the cwd.
    pub manifest_path: Option<PathBuf>,
    /// `-p/--package`: the packages to take artifacts from; empty: cargo's default members.
    pub packages: Vec<String>,
    /// `--workspace`: every member.
    pub workspace: bool,
    /// `--exclude`: members left out of `--workspace`.
    pub exclude: Vec<String>,
    /// The target flags (`--bin`, `--bins`, `--example`, `--examples`, `--lib`, `--crate-type`).
    pub targets: TargetSelection,
    /// Cargo profile named by `--release`/`--profile`; `None` means cargo's default, dev.
    pub profile: Option<String>,
    /// `--target`: target triples whose artifacts are selected; empty: the host's.
    pub triples: Vec<String>,
    /// `--target-dir`/`CARGO_TARGET_DIR`; `None`: cargo's own.
    pub target_dir: Option<PathBuf>,
    /// Globs of extra files, relative to the workspace root or `from`.
    pub patterns: Vec<String>,
    /// `--from`: match `patterns` under this directory; cargo is not run.
    pub from: Option<PathBuf>,
    /// `--exclude-glob`: matches of these globs are left out.
    pub exclude_globs: Vec<String>,
    /// `--dry-run`: report the plan, write nothing.
    pub dry_run: bool,
    /// `-j/--jobs`: files copied concurrently (worker threads).
    pub jobs: NonZeroUsize,
    /// `--message-format`/`--quiet`: which reporter.
    pub output: Output,
    /// `-v` count: 1 says which engine and why, 2 every file.
    pub verbose: u8,
    /// `--engine`: which backend, or auto.
    pub engine: EngineChoice,
    /// `--copy-method`: how the io-uring engine moves bytes.
    pub copy_method: CopyMethod,
    /// Files in flight per io-uring worker.
    pub max_in_flight: usize,
    /// `-L/--dereference`: follow symlinks, copying what they point to.
    pub dereference: bool,
    /// `--debug-files`: also copy debug info next to artifacts.
    pub debug_files: bool,
    /// `--dep-info`: also copy the dep-info file (`<artifact>.d`) next to each artifact.
    pub dep_info: bool,
    /// `--fsync`: flush files and directories before reporting success.
    pub fsync: bool,
    /// Colour on stderr: `--color`, else `CARGO_TERM_COLOR`, else auto.
    pub color: Color,
    /// `--manifest` (with `--github-output`): also write the JSON-lines report (one object per
    /// file, then the summary) to this file.
    pub manifest: Option<PathBuf>,
    /// `--github-output`: report as a GitHub Actions step (outputs, job summary, annotations)
    /// instead of the human output.
    pub github: Option<GithubStep>,
    /// `--config KEY=VALUE|PATH` values, handed to every cargo command as given.
    pub cargo_config: Vec<String>,
    /// `--features`: features of the selected packages (`feat` or `package/feat`), as cargo
    /// takes them (comma- or space-separated values are split).
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// An artifact older than a source it was built from is an error, not a warning.
    pub require_fresh: bool,
    /// `--build`: run `cargo build` with this selection and stage what it reports.
    pub build: bool,
    /// `--locked`: handed to cargo as given.
    pub locked: bool,
    /// `--frozen`: handed to cargo as given.
    pub frozen: bool,
    /// `--offline`: handed to cargo as given.
    pub offline: bool,
    /// `-j` as given (with `--build`, cargo's jobs too; unset, cargo's own default applies).
    pub jobs_given: Option<NonZeroUsize>,
    /// `--checksums`: write `SHA256SUMS`/`SHA512SUMS` in the out-dir and each file's digest in
    /// its JSON line.
    pub checksums: Option<crate::bundle::HashAlgo>,
    /// `--archive` (repeatable): archives of the staged files, in these formats.
    pub archives: Vec<crate::bundle::ArchiveFormat>,
    /// `--archive-name`: the archive's name template; `None` is `{name}-{version}-{target}`.
    pub archive_name: Option<String>,
    /// `--archive-dir`: where archives go; `None` is the out-dir.
    pub archive_dir: Option<PathBuf>,
    /// `SOURCE_DATE_EPOCH`: the mtime of every archive entry, when set.
    pub source_date_epoch: Option<u64>,
    /// `--update`: skip files whose destination is already up to date.
    pub update: Option<crate::bundle::UpdateMode>,
    /// `--clean`: empty the out-dir before copying.
    pub clean: bool,
    /// The engine's measurement knobs (hidden flags); the defaults everywhere else.
    pub tuning: EngineTuning,
}

/// Knobs for measuring the engine (see docs/copy-method.md), set by hidden flags or their
/// `CARGO_FASTCP_*` environment variables. `None`: the engine's measured default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineTuning {
    /// Buffers in each io-uring worker's ring (default: two per file in flight, 16 to 256).
    pub buffers: Option<usize>,
    /// Bytes per ring buffer (default 128 KiB).
    pub buffer_len: Option<usize>,
    /// Chunks of one file in flight at once under the buffer-ring method (default 4, at most 64).
    pub file_window: Option<usize>,
    /// `--copy-method auto`: files of this size and larger take the in-kernel copy (default
    /// 64 KiB).
    pub threshold: Option<u64>,
    /// Stage into named temporaries even where `O_TMPFILE` works: the path taken where it is
    /// missing, so that tests can cover it anywhere.
    pub named_temps: bool,
    /// Whole-tree staging into a new out-dir (`--tree-staging on|off`; default: the engine's,
    /// `engine::stage::TREE_STAGING_DEFAULT`).
    pub tree_staging: Option<bool>,
    /// `--copy-method auto`: small files per page-cache residency probe (default 16).
    pub probe_every: Option<u32>,
    /// The io-uring workers' ring setup flags, comma-separated (`single_issuer`,
    /// `coop_taskrun`, `defer_taskrun`, `taskrun_flag`, or `none`); default
    /// `single_issuer,coop_taskrun`.
    pub uring_setup: Option<String>,
}

/// `-j` when not given: one file in flight per available core.
pub fn default_jobs() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Where a GitHub Actions step's report goes; read from the runner's environment by `cli`.
#[derive(Debug, Clone, Default)]
pub struct GithubStep {
    /// `$GITHUB_OUTPUT`: the step's outputs are appended here (`name<<DELIMITER` form).
    pub output: PathBuf,
    /// `$GITHUB_STEP_SUMMARY`: the markdown job summary is appended here, when set.
    pub summary: Option<PathBuf>,
    /// `$GITHUB_WORKSPACE`: a failed file's annotation names its path relative to this.
    pub workspace: Option<PathBuf>,
    /// The workflow file (from `$GITHUB_WORKFLOW_REF`) that run-level errors point at.
    pub workflow_file: Option<String>,
    /// Rows of the summary's file table; the rest become one "… and N more" row.
    pub summary_rows: usize,
}

impl Config {
    /// A config with every default, copying nothing until fields are set.
    pub fn new() -> Self {
        Config {
            out_dir: None,
            manifest_path: None,
            packages: Vec::new(),
            workspace: false,
            exclude: Vec::new(),
            targets: TargetSelection::default(),
            profile: None,
            triples: Vec::new(),
            target_dir: None,
            patterns: Vec::new(),
            from: None,
            exclude_globs: Vec::new(),
            dry_run: false,
            jobs: default_jobs(),
            output: Output::Human,
            verbose: 0,
            engine: EngineChoice::Auto,
            copy_method: CopyMethod::Auto,
            max_in_flight: 32,
            dereference: false,
            debug_files: false,
            dep_info: false,
            fsync: false,
            manifest: None,
            github: None,
            cargo_config: Vec::new(),
            features: Vec::new(),
            all_features: false,
            no_default_features: false,
            require_fresh: false,
            color: Color::Auto,
            build: false,
            locked: false,
            frozen: false,
            offline: false,
            jobs_given: None,
            checksums: None,
            archives: Vec::new(),
            archive_name: None,
            archive_dir: None,
            source_date_epoch: None,
            update: None,
            clean: false,
            tuning: EngineTuning::default(),
        }
    }

    /// The cargo profile whose artifacts are selected.
    pub fn profile(&self) -> &str {
        self.profile.as_deref().unwrap_or("dev")
    }

    /// Artifacts are selected when no pattern is given, or when any flag that only means
    /// something for artifacts is (package, target, crate type, profile, triple): so
    /// `--release -o dist README.md` stages the release artifacts and README.md.
    pub fn selects_artifacts(&self) -> bool {
        if self.from.is_some() {
            return false;
        }
        self.patterns.is_empty()
            || self.build
            || self.targets.names_targets()
            || !self.targets.crate_types.is_empty()
            || !self.packages.is_empty()
            || self.workspace
            || self.profile.is_some()
            || !self.triples.is_empty()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_alone_copy_only_what_they_match() {
        let with = |edit: fn(&mut Config)| {
            let mut cfg = Config::new();
            edit(&mut cfg);
            cfg
        };
        assert!(
            Config::new().selects_artifacts(),
            "no pattern: the artifacts"
        );
        assert_eq!(Config::new().profile(), "dev");
        let patterns = |c: &mut Config| c.patterns = vec!["README.md".into()];
        assert!(!with(patterns).selects_artifacts());
        // Any flag that only means something for artifacts brings them back.
        for edit in [
            (|c: &mut Config| c.profile = Some("release".into())) as fn(&mut Config),
            |c| c.packages = vec!["app".into()],
            |c| c.workspace = true,
            |c| c.triples = vec!["x86_64-unknown-linux-musl".into()],
            |c| c.targets.crate_types = vec![CrateKind::Cdylib],
            |c| c.targets.lib = true,
            |c| c.targets.all_bins = true,
            |c| c.build = true,
        ] {
            let mut cfg = with(patterns);
            edit(&mut cfg);
            assert!(cfg.selects_artifacts(), "{cfg:?}");
        }
        // `--from` matches files under a directory: never artifacts.
        let from = with(|c| {
            c.from = Some("d".into());
            c.patterns = vec!["**".into()];
        });
        assert!(!from.selects_artifacts());
    }

    #[test]
    fn crate_kinds_round_trip_through_their_cargo_names() {
        for k in CrateKind::ALL {
            assert_eq!(CrateKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(CrateKind::parse("exe"), None);
    }
}
