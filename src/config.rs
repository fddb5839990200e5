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
    pub out_dir: Option<PathBuf>,
    pub manifest_path: Option<PathBuf>,
    pub packages: Vec<String>,
    pub workspace: bool,
    pub exclude: Vec<String>,
    pub targets: TargetSelection,
    /// Cargo profile named by `--release`/`--profile`; `None` means cargo's default, dev.
    pub profile: Option<String>,
    pub triples: Vec<String>,
    pub target_dir: Option<PathBuf>,
    pub patterns: Vec<String>,
    pub from: Option<PathBuf>,
    pub exclude_globs: Vec<String>,
    pub dry_run: bool,
    pub jobs: NonZeroUsize,
    pub output: Output,
    pub verbose: u8,
    pub engine: EngineChoice,
    pub copy_method: CopyMethod,
    /// Files in flight per io-uring worker.
    pub max_in_flight: usize,
    pub dereference: bool,
    pub debug_files: bool,
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
    /// `--locked`, `--frozen`, `--offline`: handed to cargo as given.
    pub locked: bool,
    pub frozen: bool,
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
            jobs: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            output: Output::Human,
            verbose: 0,
            engine: EngineChoice::Auto,
            copy_method: CopyMethod::Auto,
            max_in_flight: 32,
            dereference: false,
            debug_files: false,
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
