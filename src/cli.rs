//! The command line: the only module that knows clap. Turns arguments into a validated `Config`.
use std::ffi::OsString;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, ValueEnum};

use crate::bundle::{ArchiveFormat, HashAlgo, UpdateMode};
use crate::config::{
    default_jobs, Color, Config, CopyMethod, CrateKind, EngineChoice, EngineTuning, GithubStep,
    Output, TargetSelection,
};

const EXIT_CODES: &str = "\
Exit codes:
  0    everything was copied
  1    some files failed (each one reported; the rest were copied)
  2    usage, selection or planning error (nothing was written)
  130  interrupted by SIGINT (143: SIGTERM); no partial file is left under a final name";

/// Copy cargo build artifacts (and globbed files) into a directory, fast.
///
/// Asks cargo which packages and targets the workspace has, picks the artifacts you select from
/// the target directory (bins, cdylibs, staticlibs and dylibs by default; .d files only with
/// --dep-info, rlibs or proc-macros only when asked), adds files matched by PATTERNs, checks the whole plan for
/// conflicts, then copies: on Linux through io_uring when the kernel allows it, elsewhere with a
/// portable engine. Each file is written under a temporary name and renamed into place.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-fastcp",
    bin_name = "cargo fastcp",
    version,
    after_help = EXIT_CODES,
    after_long_help = EXIT_CODES,
    max_term_width = 100
)]
struct Cli {
    /// Directory to copy into (created if missing); required unless --dry-run
    #[arg(short = 'o', long, value_name = "DIR")]
    out_dir: Option<PathBuf>,

    /// Globs of extra files to copy, relative to the workspace root (or --from)
    ///
    /// `**` crosses directories, `*` does not. Matched files keep their relative path under the
    /// out-dir; a directory a pattern names is copied whole. A pattern that matches nothing is an
    /// error. Patterns alone (no package or target flag) copy only what they match.
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,

    /// Print the plan (source → destination, size) and write nothing
    #[arg(long)]
    dry_run: bool,

    /// Files copied concurrently [default: available cores]
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Human, value_name = "FMT")]
    message_format: FormatArg,

    /// No progress bar or summary line; errors only
    #[arg(short, long)]
    quiet: bool,

    /// Say more (which engine and why; -vv: every file)
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,

    /// Coloring: auto, always, never
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        env = "CARGO_TERM_COLOR",
        hide_env_values = true
    )]
    color: Option<ColorArg>,

    // Each group below is one help heading, in the order the help lists them; a flattened
    // group's heading stays set for what follows, so the headless options above come first.
    #[command(flatten)]
    package_args: PackageArgs,
    #[command(flatten)]
    target_args: TargetArgs,
    #[command(flatten)]
    compilation: CompilationArgs,
    #[command(flatten)]
    files: FileArgs,
    #[command(flatten)]
    engine_args: EngineArgs,
    #[command(flatten)]
    reporting: ReportingArgs,
    #[command(flatten)]
    feature_args: FeatureArgs,
    #[command(flatten)]
    manifest_options: ManifestOptions,
    #[command(flatten)]
    bundle: BundleArgs,
    #[command(flatten)]
    tuning: TuningArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Package Selection")]
struct PackageArgs {
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,

    /// Package to take artifacts from (repeatable)
    #[arg(short, long = "package", value_name = "SPEC")]
    package: Vec<String>,

    /// All workspace members
    #[arg(long, alias = "all")]
    workspace: bool,

    /// Leave out a package (with --workspace)
    #[arg(long, value_name = "SPEC", requires = "workspace")]
    exclude: Vec<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Target Selection")]
struct TargetArgs {
    /// Only this binary (repeatable)
    #[arg(long = "bin", value_name = "NAME")]
    bin: Vec<String>,

    /// All binaries
    #[arg(long)]
    bins: bool,

    /// Only this example (repeatable)
    #[arg(long = "example", value_name = "NAME")]
    example: Vec<String>,

    /// All examples
    #[arg(long)]
    examples: bool,

    /// The library target (every crate type it builds, rlib included)
    #[arg(long)]
    lib: bool,

    /// Only artifacts of this crate type (repeatable)
    #[arg(long = "crate-type", value_name = "TYPE", value_parser = crate_kind)]
    crate_type: Vec<CrateKind>,

    /// Also copy debug info files next to artifacts (.pdb on MSVC, .dSYM on Apple, .dwp on Linux)
    #[arg(long)]
    debug_files: bool,

    /// Also copy the dep-info file (<artifact>.d) cargo writes next to each selected artifact;
    /// a missing one is an error, as a missing artifact is
    #[arg(long)]
    dep_info: bool,

    /// An artifact older than a source it was built from is an error (exit 2), not a warning
    #[arg(long)]
    require_fresh: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Compilation Options")]
struct CompilationArgs {
    /// Artifacts of the release profile
    #[arg(short = 'r', long, conflicts_with = "profile")]
    release: bool,

    /// Artifacts of this profile (dev → debug/, release → release/, custom → its name)
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,

    /// Artifacts built for this target triple (repeatable; several go to <out-dir>/<triple>/)
    #[arg(long = "target", value_name = "TRIPLE")]
    target: Vec<String>,

    /// Directory of build outputs [default: cargo's target directory]
    #[arg(
        long,
        value_name = "DIR",
        env = "CARGO_TARGET_DIR",
        hide_env_values = true
    )]
    target_dir: Option<PathBuf>,

    /// Override a cargo configuration value (KEY=VALUE or a .toml file), as `cargo --config`
    #[arg(long = "config", value_name = "KEY=VALUE|PATH")]
    cargo_config: Vec<String>,

    /// Run `cargo build` with this selection first; stage what it reports as it builds
    #[arg(long, conflicts_with = "from")]
    build: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Files")]
struct FileArgs {
    /// Match PATTERNs under this directory instead of the workspace; cargo is not run
    #[arg(
        long,
        value_name = "DIR",
        requires = "patterns",
        conflicts_with_all = ["package", "workspace", "bin", "bins", "example", "examples", "lib", "crate_type", "release", "profile", "target", "manifest_path"],
    )]
    from: Option<PathBuf>,

    /// Leave out matches of this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    exclude_glob: Vec<String>,

    /// Follow symlinks (copy what they point to); loops are an error
    #[arg(short = 'L', long)]
    dereference: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Engine")]
struct EngineArgs {
    /// Copy engine: io-uring (Linux), portable, or auto (io-uring where the kernel allows it)
    #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
    engine: EngineArg,

    /// How io-uring moves bytes: buffer-ring, copy-file-range, splice, or auto (by file size)
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    copy_method: MethodArg,

    /// Files in flight per io-uring worker
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    max_in_flight: u16,

    /// Flush files and directories to disk before reporting success
    #[arg(long)]
    fsync: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Reporting")]
struct ReportingArgs {
    /// With --github-output: also write the JSON-lines report (one object per file, then a
    /// summary) to this file, named by the `manifest` output
    #[arg(long, value_name = "FILE", requires = "github_output")]
    manifest: Option<PathBuf>,

    /// Report as a GitHub Actions step: outputs to $GITHUB_OUTPUT, the job summary to
    /// $GITHUB_STEP_SUMMARY, error annotations on stdout, the log on stderr
    #[arg(long, conflicts_with = "message_format")]
    github_output: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Feature Selection")]
struct FeatureArgs {
    /// Features of the selected packages (comma- or space-separated; repeatable)
    #[arg(short = 'F', long, value_name = "FEATURES")]
    features: Vec<String>,

    /// All features of the selected packages
    #[arg(long)]
    all_features: bool,

    /// Not the `default` feature of the selected packages
    #[arg(long)]
    no_default_features: bool,
}

/// Cargo's own flags, passed on to `cargo build`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Manifest Options")]
struct ManifestOptions {
    /// With --build: require Cargo.lock is up to date (as cargo's --locked)
    #[arg(long)]
    locked: bool,

    /// With --build: require Cargo.lock and cache are up to date (as cargo's --frozen)
    #[arg(long)]
    frozen: bool,

    /// With --build: run without accessing the network (as cargo's --offline)
    #[arg(long)]
    offline: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Bundle")]
struct BundleArgs {
    /// Write SHA256SUMS or SHA512SUMS into the out-dir (each digest also in the JSON lines)
    #[arg(long, value_enum, value_name = "ALGO")]
    checksums: Option<ChecksumArg>,

    /// Also pack the staged files into an archive: tar.gz, tar.xz or zip (repeatable)
    ///
    /// One leading directory named like the archive; reproducible (sorted entries, owner 0,
    /// modes kept, mtimes from SOURCE_DATE_EPOCH when set); a <archive>.sha256 beside it.
    #[arg(long = "archive", value_name = "FORMAT", value_parser = archive_format)]
    archive: Vec<ArchiveFormat>,

    /// Archive name and leading directory: {name}, {version}, {target} [default: {name}-{version}-{target}]
    #[arg(long, value_name = "TEMPLATE", requires = "archive")]
    archive_name: Option<String>,

    /// Write archives into DIR [default: the out-dir]
    #[arg(long, value_name = "DIR", requires = "archive")]
    archive_dir: Option<PathBuf>,

    /// Skip files already in place: same size and mtime (quick), or the same bytes (=content)
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "quick"
    )]
    update: Option<UpdateArg>,

    /// Empty the out-dir first (refused for /, $HOME, the workspace or target dir and their
    /// ancestors, and any directory holding a source)
    #[arg(long, conflicts_with = "update")]
    clean: bool,
}

/// The engine's measurement and testing knobs: hidden, each also read from its environment
/// variable, all of them into `Config::tuning`.
#[derive(Debug, Args)]
struct TuningArgs {
    /// Measurement knob: buffers per io-uring worker ring
    #[arg(long, hide = true, value_name = "N", env = "CARGO_FASTCP_URING_BUFFERS", value_parser = size)]
    uring_buffers: Option<usize>,

    /// Measurement knob: bytes per io-uring ring buffer (k/m/g suffixes)
    #[arg(long, hide = true, value_name = "BYTES", env = "CARGO_FASTCP_URING_BUFFER_LEN", value_parser = size)]
    uring_buffer_len: Option<usize>,

    /// Measurement knob: chunks of one file in flight (buffer-ring method)
    #[arg(long, hide = true, value_name = "N", env = "CARGO_FASTCP_URING_FILE_WINDOW", value_parser = size)]
    uring_file_window: Option<usize>,

    /// Measurement knob: smallest file for the in-kernel copy under --copy-method auto
    #[arg(long, hide = true, value_name = "BYTES", env = "CARGO_FASTCP_URING_THRESHOLD", value_parser = size)]
    uring_threshold: Option<usize>,

    /// Testing knob: stage into named temporaries even where O_TMPFILE works
    #[arg(long, hide = true, env = "CARGO_FASTCP_NAMED_TEMPS", value_parser = one_is_true)]
    named_temps: bool,

    /// Measurement knob: build a new out-dir as a hidden tree renamed into place (on) or place
    /// each file (off)
    #[arg(long, hide = true, value_name = "on|off", env = "CARGO_FASTCP_TREE_STAGING", value_parser = on_off)]
    tree_staging: Option<bool>,

    /// Measurement knob: small files per residency probe under --copy-method auto
    #[arg(long, hide = true, value_name = "N", env = "CARGO_FASTCP_PROBE_EVERY", value_parser = clap::value_parser!(u32))]
    probe_every: Option<u32>,

    /// Measurement knob: the io-uring rings' setup flags (comma-separated, or none)
    #[arg(
        long,
        hide = true,
        value_name = "FLAGS",
        env = "CARGO_FASTCP_URING_SETUP"
    )]
    uring_setup: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl ColorArg {
    fn clap(self) -> clap::ColorChoice {
        match self {
            ColorArg::Auto => clap::ColorChoice::Auto,
            ColorArg::Always => clap::ColorChoice::Always,
            ColorArg::Never => clap::ColorChoice::Never,
        }
    }

    fn config(self) -> Color {
        match self {
            ColorArg::Auto => Color::Auto,
            ColorArg::Always => Color::Always,
            ColorArg::Never => Color::Never,
        }
    }
}

/// `--color` as the last occurrence in `args` spells it, else `CARGO_TERM_COLOR`: read before
/// parsing, so that clap's own errors follow it too.
fn color_before_parsing(args: &[OsString]) -> ColorArg {
    let parse = |v: &str| ColorArg::from_str(v, true).ok();
    let mut found = None;
    let mut it = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix("--color=") {
            found = parse(v).or(found);
        } else if a == "--color" {
            found = it.next().and_then(parse).or(found);
        }
    }
    found
        .or_else(|| {
            std::env::var("CARGO_TERM_COLOR")
                .ok()
                .and_then(|v| parse(&v))
        })
        .unwrap_or(ColorArg::Auto)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChecksumArg {
    Sha256,
    Sha512,
}

impl ChecksumArg {
    fn config(self) -> HashAlgo {
        match self {
            ChecksumArg::Sha256 => HashAlgo::Sha256,
            ChecksumArg::Sha512 => HashAlgo::Sha512,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum UpdateArg {
    /// Same size, mtime and mode
    Quick,
    /// Same bytes
    Content,
}

impl UpdateArg {
    fn config(self) -> UpdateMode {
        match self {
            UpdateArg::Quick => UpdateMode::QuickCheck,
            UpdateArg::Content => UpdateMode::Content,
        }
    }
}

fn archive_format(s: &str) -> Result<ArchiveFormat, String> {
    ArchiveFormat::parse(s)
        .ok_or_else(|| format!("unknown archive format `{s}` (one of: tar.gz, tar.xz, zip)"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EngineArg {
    Auto,
    IoUring,
    Portable,
}

impl EngineArg {
    fn config(self) -> EngineChoice {
        match self {
            EngineArg::Auto => EngineChoice::Auto,
            EngineArg::IoUring => EngineChoice::IoUring,
            EngineArg::Portable => EngineChoice::Portable,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MethodArg {
    Auto,
    BufferRing,
    CopyFileRange,
    Splice,
}

impl MethodArg {
    fn config(self) -> CopyMethod {
        match self {
            MethodArg::Auto => CopyMethod::Auto,
            MethodArg::BufferRing => CopyMethod::BufferRing,
            MethodArg::CopyFileRange => CopyMethod::CopyFileRange,
            MethodArg::Splice => CopyMethod::Splice,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

fn crate_kind(s: &str) -> Result<CrateKind, String> {
    CrateKind::parse(s).ok_or_else(|| {
        let all: Vec<&str> = CrateKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown crate type `{s}` (one of: {})", all.join(", "))
    })
}

/// Drops the `fastcp` that cargo passes when run as `cargo fastcp`.
fn strip_subcommand(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "fastcp") {
        args.remove(1);
    }
    args
}

/// Parses arguments (as `cargo fastcp …` or `cargo-fastcp …`) into a validated config.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Config, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let args = strip_subcommand(args);
    let mut cmd = Cli::command().color(color_before_parsing(&args).clap());
    let cli = cmd
        .try_get_matches_from_mut(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|e| e.format(&mut cmd))?;
    into_config(cli).map_err(|e| e.format(&mut cmd))
}

fn usage(msg: impl std::fmt::Display) -> clap::Error {
    use clap::CommandFactory;
    Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg)
}

/// The whole `Config` in one literal (a field the CLI forgets does not compile); each area's
/// flags are checked and converted by its own group.
fn into_config(cli: Cli) -> Result<Config, clap::Error> {
    if cli.quiet && cli.verbose > 0 {
        return Err(usage("cannot set both --verbose and --quiet"));
    }
    if cli.out_dir.is_none() && !cli.dry_run {
        return Err(usage("-o/--out-dir <DIR> is required (or pass --dry-run)"));
    }
    if cli.compilation.build && (cli.bundle.clean || cli.bundle.update.is_some()) {
        return Err(usage(
            "--build does not combine with --update or --clean (it places a fresh build): run `cargo build` first",
        ));
    }
    let github = match cli.reporting.github_output {
        true => Some(github_step(|name| std::env::var_os(name))?),
        false => None,
    };
    let source_date_epoch = source_date_epoch(&cli.bundle.archive)?;
    let (profile, triples) = cli.compilation.profile_and_triples()?;
    let jobs_given = cli.jobs.and_then(|j| NonZeroUsize::new(j.into()));
    Ok(Config {
        out_dir: cli.out_dir,
        manifest_path: cli.package_args.manifest_path,
        packages: cli.package_args.package,
        workspace: cli.package_args.workspace,
        exclude: cli.package_args.exclude,
        debug_files: cli.target_args.debug_files,
        dep_info: cli.target_args.dep_info,
        require_fresh: cli.target_args.require_fresh,
        targets: cli.target_args.selection(),
        profile,
        triples,
        target_dir: cli
            .compilation
            .target_dir
            .filter(|p| !p.as_os_str().is_empty()),
        cargo_config: cli.compilation.cargo_config,
        build: cli.compilation.build,
        patterns: cli.patterns,
        from: cli.files.from,
        exclude_globs: cli.files.exclude_glob,
        dereference: cli.files.dereference,
        dry_run: cli.dry_run,
        jobs: jobs_given.unwrap_or_else(default_jobs),
        jobs_given,
        output: match (cli.message_format, cli.quiet) {
            (FormatArg::Json, _) => Output::Json,
            (FormatArg::Human, true) => Output::Quiet,
            (FormatArg::Human, false) => Output::Human,
        },
        verbose: cli.verbose,
        color: cli.color.map_or(Color::Auto, ColorArg::config),
        engine: cli.engine_args.engine.config(),
        copy_method: cli.engine_args.copy_method.config(),
        max_in_flight: cli.engine_args.max_in_flight.into(),
        fsync: cli.engine_args.fsync,
        tuning: cli.tuning.config(),
        manifest: cli.reporting.manifest,
        github,
        features: cli.feature_args.list(),
        all_features: cli.feature_args.all_features,
        no_default_features: cli.feature_args.no_default_features,
        locked: cli.manifest_options.locked,
        frozen: cli.manifest_options.frozen,
        offline: cli.manifest_options.offline,
        checksums: cli.bundle.checksums.map(ChecksumArg::config),
        archives: cli.bundle.archive,
        archive_name: cli.bundle.archive_name,
        archive_dir: cli.bundle.archive_dir,
        source_date_epoch,
        update: cli.bundle.update.map(UpdateArg::config),
        clean: cli.bundle.clean,
    })
}

impl TargetArgs {
    fn selection(self) -> TargetSelection {
        TargetSelection {
            bins: self.bin,
            all_bins: self.bins,
            examples: self.example,
            all_examples: self.examples,
            lib: self.lib,
            crate_types: self.crate_type,
        }
    }
}

impl CompilationArgs {
    /// The profile (`None`: dev) and the triples, refused where a name would lead out of the
    /// target directory.
    fn profile_and_triples(&self) -> Result<(Option<String>, Vec<String>), clap::Error> {
        if let Some(p) = &self.profile {
            if p.is_empty() || p.contains(['/', '\\']) || p == ".." || p == "." {
                return Err(usage(format!("invalid profile name `{p}`")));
            }
        }
        for t in &self.target {
            // A target spec file is named by its stem; anything else is a directory name.
            let name = t.strip_suffix(".json").map_or(t.as_str(), |spec| {
                spec.rsplit(['/', '\\']).next().unwrap_or_default()
            });
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                return Err(usage(format!("invalid target triple `{t}`")));
            }
        }
        let profile = match (self.release, &self.profile) {
            (true, _) => Some("release".into()),
            // `dev` is the default: spelled out, it selects exactly what leaving it out does.
            (false, Some(p)) if p == "dev" => None,
            (false, p) => p.clone(),
        };
        Ok((profile, self.target.clone()))
    }
}

impl FeatureArgs {
    /// `-F a,b -F "c d"`: every feature named, each once as given.
    fn list(&self) -> Vec<String> {
        self.features
            .iter()
            .flat_map(|f| f.split([',', ' ']))
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect()
    }
}

impl TuningArgs {
    fn config(self) -> EngineTuning {
        EngineTuning {
            buffers: self.uring_buffers,
            buffer_len: self.uring_buffer_len,
            file_window: self.uring_file_window,
            threshold: self.uring_threshold.map(|n| n as u64),
            named_temps: self.named_temps,
            tree_staging: self.tree_staging,
            probe_every: self.probe_every,
            uring_setup: self.uring_setup,
        }
    }
}

/// A switch's value, from the flag (`true`) or its environment variable: on only for `1` (or
/// `true`), off for anything else, as the variable always meant.
fn one_is_true(s: &str) -> Result<bool, std::convert::Infallible> {
    Ok(s == "1" || s == "true")
}

/// `on`/`off` (or `1`/`0`, `true`/`false`).
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "1" | "true" => Ok(true),
        "off" | "0" | "false" => Ok(false),
        _ => Err(format!("expected on or off, not {s:?}")),
    }
}

/// A byte count, optionally with a binary `k`/`m`/`g` suffix (the measurement knobs).
fn size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a byte count (a number, optionally with k, m or g)"))
}

/// The runner's files and names for `--github-output`, from its environment (`var`).
fn github_step(var: impl Fn(&str) -> Option<OsString>) -> Result<GithubStep, clap::Error> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let output = set("GITHUB_OUTPUT").ok_or_else(|| {
        usage("--github-output needs GITHUB_OUTPUT (set in a GitHub Actions step)")
    })?;
    // GITHUB_WORKFLOW_REF is `owner/repo/.github/workflows/x.yml@ref`.
    let workflow_file = match (set("GITHUB_WORKFLOW_REF"), set("GITHUB_REPOSITORY")) {
        (Some(r), Some(repo)) => {
            let (r, repo) = (r.to_string_lossy(), repo.to_string_lossy());
            r.strip_prefix(&format!("{repo}/"))
                .and_then(|rest| rest.split('@').next())
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
        }
        _ => None,
    };
    Ok(GithubStep {
        output: output.into(),
        summary: set("GITHUB_STEP_SUMMARY").map(PathBuf::from),
        workspace: set("GITHUB_WORKSPACE").map(PathBuf::from),
        workflow_file,
        summary_rows: 500,
    })
}

/// `SOURCE_DATE_EPOCH`, which only archives read: an unusable value is an error only where it
/// would be used.
fn source_date_epoch(archives: &[ArchiveFormat]) -> Result<Option<u64>, clap::Error> {
    if archives.is_empty() {
        return Ok(None);
    }
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match v.to_str().and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(e) => Ok(Some(e)),
        None => Err(usage(format!(
            "SOURCE_DATE_EPOCH=`{}` is not a number of seconds since 1970",
            v.to_string_lossy()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn cargo_style_and_direct_invocations_parse_alike() {
        let a = parse(args(&["cargo-fastcp", "fastcp", "--release", "-o", "d"])).unwrap();
        let b = parse(args(&["cargo-fastcp", "--release", "-o", "d"])).unwrap();
        assert_eq!(a.profile(), "release");
        assert_eq!(b.profile(), "release");
        assert_eq!(a.out_dir, b.out_dir);
    }

    #[test]
    fn cargo_habits_parse_as_cargo_reads_them() {
        let cfg = parse(args(&["x", "--all", "--profile", "dev", "-o", "d"])).unwrap();
        assert!(cfg.workspace, "--all is --workspace");
        assert_eq!(cfg.profile, None, "--profile dev is the default");
        let color = |a: &[&str]| color_before_parsing(&args(a));
        assert_eq!(
            color(&["x", "--color", "never", "--color=always"]),
            ColorArg::Always
        );
        assert_eq!(
            color(&["x", "--color=always", "--color", "never"]),
            ColorArg::Never
        );
        let cfg = parse(args(&["x", "--color", "never", "-o", "d"])).unwrap();
        assert_eq!(cfg.color, Color::Never);
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        for bad in [
            &["x", "--release", "--profile", "dev", "-o", "d"][..],
            &["x", "-j", "0", "-o", "d"],
            &["x", "--release"],
            &["x", "--from", "d", "-o", "o"],
            &["x", "--from", "d", "-p", "a", "-o", "o", "*"],
            &["x", "--exclude", "a", "-o", "o"],
            &["x", "--crate-type", "exe", "-o", "o"],
            &["x", "--max-in-flight", "0", "-o", "o"],
            &["x", "-q", "-v", "-o", "o"],
            &["x", "--color", "sometimes", "-o", "o"],
            &[
                "x",
                "--github-output",
                "--message-format",
                "json",
                "-o",
                "o",
            ],
        ] {
            let e = parse(args(bad)).expect_err(&format!("{bad:?} should fail"));
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn flags_become_the_config_fields_they_name() {
        let cfg = parse(args(&[
            "x",
            "-o",
            "d",
            "--profile",
            "dist",
            "--target-dir",
            "t",
            "-F",
            "a,b c",
            "--features",
            "d",
            "-j",
            "3",
            "--message-format",
            "json",
            "--checksums",
            "sha512",
            "--update",
            "--engine",
            "portable",
            "--copy-method",
            "splice",
        ]))
        .unwrap();
        assert_eq!(cfg.profile(), "dist");
        assert_eq!(cfg.target_dir, Some(PathBuf::from("t")));
        assert_eq!(cfg.features, ["a", "b", "c", "d"]);
        assert_eq!(
            (cfg.jobs.get(), cfg.jobs_given.map(|j| j.get())),
            (3, Some(3))
        );
        assert_eq!(cfg.output, Output::Json);
        assert!(matches!(cfg.checksums, Some(HashAlgo::Sha512)));
        assert!(matches!(cfg.update, Some(UpdateMode::QuickCheck)));
        assert!(matches!(cfg.engine, EngineChoice::Portable));
        assert!(matches!(cfg.copy_method, CopyMethod::Splice));
        let cfg = parse(args(&["x", "--dry-run", "-q", "--update=content"])).unwrap();
        assert_eq!((cfg.out_dir, cfg.output), (None, Output::Quiet));
        assert_eq!(cfg.jobs_given, None);
        assert_eq!(cfg.jobs, default_jobs());
        assert!(matches!(cfg.update, Some(UpdateMode::Content)));
    }

    #[test]
    fn hidden_knobs_fill_the_engine_tuning() {
        let cfg = parse(args(&[
            "x",
            "--dry-run",
            "--uring-buffers",
            "8",
            "--uring-buffer-len",
            "256k",
            "--uring-file-window",
            "4",
            "--uring-threshold",
            "1m",
            "--named-temps",
            "1",
            "--probe-every",
            "16",
            "--uring-setup",
            "none",
        ]))
        .unwrap();
        let t = cfg.tuning;
        assert_eq!(
            (t.buffers, t.buffer_len, t.file_window, t.threshold),
            (Some(8), Some(256 << 10), Some(4), Some(1 << 20))
        );
        assert!(t.named_temps);
        assert_eq!(t.probe_every, Some(16));
        assert_eq!(t.uring_setup.as_deref(), Some("none"));
    }

    #[test]
    fn profile_and_triple_names_that_would_leave_the_target_dir_are_refused() {
        for bad in ["..", ".", "a/b", "a\\b", ""] {
            let e = parse(args(&["x", "--dry-run", "--profile", bad])).unwrap_err();
            assert_eq!(e.exit_code(), 2, "--profile {bad:?}");
        }
        for bad in ["../x", ".hidden", "a/b", "dir/.json"] {
            let e = parse(args(&["x", "--dry-run", "--target", bad])).unwrap_err();
            assert_eq!(e.exit_code(), 2, "--target {bad:?}");
        }
        // A target spec file is named by its stem.
        let cfg = parse(args(&["x", "--dry-run", "--target", "specs/my-os.json"])).unwrap();
        assert_eq!(cfg.triples, ["specs/my-os.json"]);
    }

    #[test]
    fn build_refuses_update_and_clean() {
        for bad in [
            &["x", "--build", "--update", "-o", "o"][..],
            &["x", "--build", "--clean", "-o", "o"],
        ] {
            let e = parse(args(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
            assert!(e.to_string().contains("--build does not combine"), "{e}");
        }
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(size("4096").ok(), Some(4096));
        assert_eq!(size("128k").ok(), Some(128 << 10));
        assert_eq!(size(" 2M ").ok(), Some(2 << 20));
        assert_eq!(size("1g").ok(), Some(1 << 30));
        assert_eq!(size("x").ok(), None);
        assert_eq!(size("").ok(), None);
    }

    #[test]
    fn github_step_reads_the_runner_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let step = github_step(env(&[
            ("GITHUB_OUTPUT", "/t/out"),
            ("GITHUB_STEP_SUMMARY", ""),
            ("GITHUB_REPOSITORY", "o/r"),
            (
                "GITHUB_WORKFLOW_REF",
                "o/r/.github/workflows/ci.yml@refs/heads/main",
            ),
        ]))
        .unwrap();
        assert_eq!(step.output, PathBuf::from("/t/out"));
        assert_eq!(step.summary, None);
        assert_eq!(
            step.workflow_file.as_deref(),
            Some(".github/workflows/ci.yml")
        );
        let e = github_step(env(&[("GITHUB_STEP_SUMMARY", "/t/s")])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
