//! Reporters turn engine events into output (human with indicatif, quiet, JSON lines); chosen once.
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;

use crate::bundle::{Digests, HashAlgo, Outputs};
use crate::config::Output;
use crate::engine::{Event, EventSink, Summary};
use crate::error::CopyError;
use crate::plan::{Job, Op, Plan};
use std::sync::OnceLock;

pub mod github;

/// Output for one run.
pub trait Reporter: EventSink {
    /// `--dry-run`: the plan, nothing written.
    fn planned(&self, engine: &str);
    /// The end of a run.
    fn finish(&self, summary: &Summary);
    /// A remark shown at `-v` (human output only).
    fn note(&self, text: &str);
    /// A warning on stderr, `warning: <text>` (not with `-q`).
    fn warn(&self, text: &str);
    /// A line of the run's own on stderr (`--build --dry-run`: the command it would run).
    fn info(&self, text: &str) {
        eprintln!("{text}");
    }
    fn as_sink(&self) -> &dyn EventSink;
    /// `--update`: files already in place, left alone (before `planned` or the copy).
    fn skipped(&self, _jobs: &[Job]) {}
    /// `--checksums`: where each copied file's digest is found when it is reported.
    fn digests(&self, _digests: Arc<Digests>) {}
    /// The checksums file and archives written after the copy (before `finish`).
    fn bundled(&self, _outputs: &Outputs) {}
}

/// What `--update`, `--checksums` and `--archive` add to a run's output.
#[derive(Default)]
struct Extras {
    skipped: OnceLock<Vec<Job>>,
    digests: OnceLock<Arc<Digests>>,
    outputs: OnceLock<Outputs>,
}

impl Extras {
    fn skipped(&self) -> &[Job] {
        self.skipped.get().map_or(&[], Vec::as_slice)
    }

    fn skipped_files(&self) -> usize {
        self.skipped().iter().filter(|j| j.op != Op::Dir).count()
    }

    /// `", 120 unchanged"` when `--update` left files alone.
    fn unchanged(&self) -> String {
        match self.skipped_files() {
            0 => String::new(),
            n => format!(", {n} unchanged"),
        }
    }

    fn digest(&self, job: &Job) -> (Option<String>, Option<String>) {
        let Some(d) = self.digests.get() else {
            return (None, None);
        };
        let hex = d.get(&job.dst);
        match d.algo() {
            HashAlgo::Sha256 => (hex, None),
            HashAlgo::Sha512 => (None, hex),
        }
    }
}

/// The reporter for `output`, over `plan`'s jobs.
pub fn new<'p>(output: Output, verbose: u8, plan: &'p Plan) -> Box<dyn Reporter + 'p> {
    match output {
        Output::Json => Box::new(Json::new(plan, Box::new(std::io::stdout()))),
        Output::Human | Output::Quiet => {
            Box::new(Human::new(plan, output == Output::Quiet, verbose))
        }
    }
}

/// `12.3 MiB`: binary units, one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// The kind of a diagnostic line, styled as cargo styles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Help,
    Note,
}

impl Level {
    const ALL: [Level; 4] = [Level::Error, Level::Warning, Level::Help, Level::Note];

    fn label(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Help => "help",
            Level::Note => "note",
        }
    }

    /// Cargo's colours: bold red errors, bold yellow warnings, bold cyan help and notes.
    fn style(self) -> anstyle::Style {
        let color = match self {
            Level::Error => anstyle::AnsiColor::Red,
            Level::Warning => anstyle::AnsiColor::Yellow,
            Level::Help | Level::Note => anstyle::AnsiColor::Cyan,
        };
        anstyle::Style::new().bold().fg_color(Some(color.into()))
    }
}

/// `level: text`, with the label styled; a later line of `text` that starts with `help:`,
/// `note:` or `warning:` gets its label styled too. The ANSI codes are stripped on the way out
/// when colour is off (see [`set_color`]).
pub fn styled(level: Level, text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (lvl, rest) = if i == 0 {
            (Some(level), line)
        } else {
            match Level::ALL.into_iter().find_map(|l| {
                line.strip_prefix(l.label())
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|r| (l, r.trim_start()))
            }) {
                Some((l, r)) => (Some(l), r),
                None => (None, line),
            }
        };
        match lvl {
            Some(l) => {
                let st = l.style();
                let _ = write!(out, "{st}{}:{st:#} {rest}", l.label());
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Prints a diagnostic to stderr (see [`styled`]).
pub fn diagnostic(level: Level, text: &str) {
    anstream::eprintln!("{}", styled(level, text));
}

/// How to colour stderr, as cargo's `--color` (`CARGO_TERM_COLOR`) does; call once, early.
pub fn set_color(choice: crate::config::Color) {
    use crate::config::Color;
    let choice = match choice {
        Color::Auto => anstream::ColorChoice::Auto,
        Color::Always => anstream::ColorChoice::Always,
        Color::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

struct Human<'p> {
    plan: &'p Plan,
    quiet: bool,
    verbose: u8,
    progress: Option<Progress>,
    /// Files (not directories) that failed, and everything else that failed (directories, trees
    /// a streamed walk could not read): the summary counts files as files.
    failed_files: AtomicU64,
    failed_other: AtomicU64,
    extras: Extras,
    /// Files not started because the destination was full: said once, with the count, at the
    /// end (JSON still has a line per file).
    not_started_full: AtomicU64,
    /// Errors already printed: one cause shared by many files (a directory that cannot be made)
    /// is said once, as cargo says a repeated diagnostic once (JSON still has a line per file).
    said: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl<'p> Human<'p> {
    fn new(plan: &'p Plan, quiet: bool, verbose: u8) -> Self {
        let progress = (!quiet && std::io::stderr().is_terminal()).then(|| Progress::new(plan));
        Human {
            plan,
            quiet,
            verbose,
            progress,
            failed_files: AtomicU64::new(0),
            failed_other: AtomicU64::new(0),
            extras: Extras::default(),
            not_started_full: AtomicU64::new(0),
            said: Default::default(),
        }
    }

    /// `error: <text>`, unless the same text was said already.
    fn error(&self, text: String) {
        let new = self
            .said
            .lock()
            .map_or(true, |mut said| said.insert(text.clone()));
        if new {
            self.eprint(&styled(Level::Error, &text));
        }
    }

    /// `3 of 60 files failed`, `and 1 directory` when one failed too (files count as files).
    fn failure_count(&self) -> Option<String> {
        let files = self.failed_files.load(Ordering::Relaxed);
        let other = self.failed_other.load(Ordering::Relaxed) as usize;
        let dirs = match other {
            0 => String::new(),
            1 => "1 directory".to_string(),
            n => format!("{n} directories"),
        };
        if files == 0 {
            return (other > 0).then(|| format!("{dirs} failed"));
        }
        let total = self.plan.file_count();
        let also = if other > 0 {
            format!(", and {dirs}")
        } else {
            String::new()
        };
        Some(format!(
            "{files} of {total} file{} failed{also}",
            plural(total)
        ))
    }

    fn eprint(&self, line: &str) {
        match &self.progress {
            Some(p) => p.bar.suspend(|| anstream::eprintln!("{line}")),
            None => anstream::eprintln!("{line}"),
        }
    }
}

impl EventSink for Human<'_> {
    fn event(&self, event: Event) {
        match event {
            Event::Started { files, bytes } => {
                if let Some(p) = &self.progress {
                    p.found(files as u64, bytes);
                    p.check_known(self.plan);
                }
            }
            Event::Planned { files, bytes } => {
                if let Some(p) = &self.progress {
                    p.found(files as u64, bytes);
                    p.check_known(self.plan);
                }
            }
            Event::Progress { bytes } => {
                if let Some(p) = &self.progress {
                    p.bar.inc(bytes);
                    p.check_known(self.plan);
                }
            }
            Event::Done { index } => {
                if let Some(p) = &self.progress {
                    p.counts.copied_files.fetch_add(1, Ordering::Relaxed);
                    p.check_known(self.plan);
                }
                if self.verbose > 1 {
                    let job = &self.plan.jobs[index];
                    self.eprint(&format!("{} -> {}", job.src.display(), job.dst.display()));
                }
            }
            // The interruption is said once at the end, not as a failure of each file in flight.
            Event::Failed {
                error: CopyError::Interrupted { .. },
                ..
            } => {}
            Event::Failed { index, error } => {
                let is_file = self.plan.jobs.get(index).is_some_and(|j| j.op != Op::Dir);
                let counter = if is_file {
                    &self.failed_files
                } else {
                    &self.failed_other
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if matches!(error, CopyError::DestinationFull { .. }) {
                    self.not_started_full.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                self.error(error.to_string());
            }
            Event::Unwalked { error } | Event::DirSyncFailed { error } => {
                self.failed_other.fetch_add(1, Ordering::Relaxed);
                self.error(error.to_string());
            }
        }
    }
}

/// The live progress line: a counter while a streamed walk is still finding files, a bar with an
/// ETA once the plan is complete (its totals then never change again). Every frame is laid out
/// for the terminal's current width, so it never wraps.
struct Progress {
    bar: ProgressBar,
    counts: Arc<Counts>,
}

/// A run that ends in an error instead of a summary (the out-dir could not be made) leaves no
/// frame behind above its error line.
impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// What the progress line shows, shared with its formatters.
#[derive(Default)]
struct Counts {
    found_files: AtomicU64,
    found_bytes: AtomicU64,
    copied_files: AtomicU64,
    /// Set once the plan is complete; `total_*` hold its final size from then on.
    known: AtomicBool,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
}

/// The bar shrinks before the text around it does, down to this many columns, and to a stub of
/// `STUB_BAR` once only the compact texts fit.
const MIN_BAR: usize = 10;
const STUB_BAR: usize = 5;
/// `     Copying `: cargo's status word, right-aligned in 12 columns, and a space.
const HEADER_WIDTH: usize = 13;

impl Progress {
    /// A counter, or at once a bar when `plan` is already complete.
    fn new(plan: &Plan) -> Progress {
        let counts = Arc::new(Counts::default());
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(counter_style(&counts));
        let p = Progress { bar, counts };
        p.check_known(plan);
        if !p.counts.known.load(Ordering::Acquire) {
            // Drawn now, on this thread: the counter is the first frame of a plan still being
            // fed, however late the ticker thread starts.
            p.bar.tick();
        }
        // Redraws while nothing else moves, so the elapsed time and the spinner stay live.
        p.bar.enable_steady_tick(Duration::from_millis(100));
        p
    }

    fn found(&self, files: u64, bytes: u64) {
        self.counts.found_files.fetch_add(files, Ordering::Relaxed);
        self.counts.found_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Switches from the counter to the bar once the plan can no longer grow.
    fn check_known(&self, plan: &Plan) {
        let c = &self.counts;
        if c.known.load(Ordering::Acquire) || !plan.jobs.is_closed() {
            return;
        }
        if c.known
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let bytes = plan.total_bytes();
        c.total_files
            .store(plan.file_count() as u64, Ordering::Relaxed);
        c.total_bytes.store(bytes, Ordering::Relaxed);
        // Style first: setting the length draws a frame.
        self.bar.set_style(bar_style(c));
        self.bar.set_length(bytes);
        // Drawn now, not at the next tick: a short run shows its totals at least once.
        self.bar.tick();
    }
}

/// The terminal's width now (it may change while the bar runs); 80 when it cannot be asked.
fn term_width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, cols)| usize::from(cols))
}

/// The first candidate that fits `width` columns, or the last one cut to fit.
fn fit(width: usize, candidates: &[String]) -> String {
    if let Some(c) = candidates.iter().find(|c| c.chars().count() <= width) {
        return c.clone();
    }
    candidates
        .last()
        .map(|c| c.chars().take(width).collect())
        .unwrap_or_default()
}

/// `     Copying `, cargo's right-aligned status word (bold cyan, as cargo's progress header),
/// when the layout has room for it.
fn header(show: bool) -> String {
    if !show {
        return String::new();
    }
    let style = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Cyan.into()));
    if color_enabled() {
        format!("{style}{:>12}{style:#} ", "Copying")
    } else {
        format!("{:>12} ", "Copying")
    }
}

/// Whether styled output goes to stderr (`--color`, `CARGO_TERM_COLOR`, and the terminal).
fn color_enabled() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

fn secs(d: Duration) -> String {
    format!("{:#}", indicatif::HumanDuration(d))
}

/// One column is left free: a line that fills the last column makes some terminals wrap.
fn usable_width() -> usize {
    term_width().saturating_sub(1)
}

/// Braille spinner frames, as indicatif's default spinner; advanced by elapsed time.
const SPINNER: [char; 8] = ['⠁', '⠂', '⠄', '⡀', '⢀', '⠠', '⠐', '⠈'];

/// The counter's layouts, fullest first: (header shown, which text of [`counter_text`]). What
/// goes first is what says least: the `so far`, then the header and the elapsed time, then the
/// words; the bytes stay until not even `copied/found` files and bytes fit.
const COUNTER_LAYOUTS: [(bool, usize); 7] = [
    (true, 0),
    (true, 1),
    (false, 1),
    (false, 2),
    (false, 3),
    (false, 4),
    (false, 5),
];

/// The counter's texts, longest first: files (`ff`) and bytes (`fb`) found, files (`cf`) and
/// bytes (`cb`) copied, elapsed time (`el`).
fn counter_text(ff: u64, fb: &str, cf: u64, cb: &str, el: &str) -> [String; 6] {
    [
        format!("found {ff} files ({fb}) so far, copied {cf} files ({cb}), {el}"),
        format!("found {ff} files ({fb}), copied {cf} ({cb}), {el}"),
        format!("found {ff} ({fb}), copied {cf} ({cb})"),
        format!("{cf}/{ff}+ files, {cb}/{fb}+"),
        format!("{cf}/{ff}+, {cb}"),
        format!("{cf}/{ff}+"),
    ]
}

/// The counter's line in `width` columns: the first layout that fits (the spinner and its space
/// take 2), else the barest cut to fit.
fn counter_line(width: usize, spin: char, texts: &[String; 6]) -> String {
    let fits = |&&(head, i): &&(bool, usize)| {
        let used = if head { HEADER_WIDTH } else { 0 } + 2;
        used + texts[i].chars().count() <= width
    };
    let (head, i) = *COUNTER_LAYOUTS
        .iter()
        .find(fits)
        .unwrap_or(&COUNTER_LAYOUTS[COUNTER_LAYOUTS.len() - 1]);
    let room = width.saturating_sub(if head { HEADER_WIDTH } else { 0 } + 2);
    format!("{}{spin} {}", header(head), fit(room, &texts[i..=i]))
}

/// While the walk still runs: `Copying ⠂ found 3841 files (43.8 MiB) so far, copied …, 2s`.
fn counter_style(counts: &Arc<Counts>) -> ProgressStyle {
    let c = Arc::clone(counts);
    let line = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let texts = counter_text(
            c.found_files.load(Ordering::Relaxed),
            &human_bytes(c.found_bytes.load(Ordering::Relaxed)),
            c.copied_files.load(Ordering::Relaxed),
            &human_bytes(state.pos()),
            &secs(state.elapsed()),
        );
        let spin = SPINNER[(state.elapsed().as_millis() / 100) as usize % SPINNER.len()];
        let _ = write!(w, "{}", counter_line(usable_width(), spin, &texts));
    };
    ProgressStyle::with_template("{line}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("line", line)
}

/// The text after the bar, its fields already formatted.
struct BarText {
    files: String,
    bytes: String,
    rate: String,
    elapsed: String,
    eta: String,
}

impl BarText {
    /// Longest first (see [`BAR_LAYOUTS`]).
    fn candidates(&self) -> [String; 5] {
        let BarText {
            files,
            bytes,
            rate,
            elapsed,
            eta,
        } = self;
        [
            format!("{files} files, {bytes}, {rate}/s, {elapsed}, ETA {eta}"),
            format!("{files} files, {bytes}, ETA {eta}"),
            format!("{files}, {bytes}, ETA {eta}"),
            format!("{files}, {bytes}"),
            files.clone(),
        ]
    }

    /// Every field at its widest for these totals (`1023.9 KiB` copied, a rate in the TiB/s, a
    /// four-character duration): the layout chosen from it stays put while the numbers grow.
    fn widest(total_files: u64, total_bytes: u64) -> BarText {
        let tb = human_bytes(total_bytes);
        let copied = if total_bytes < 1024 { tb.len() } else { 10 };
        BarText {
            files: format!("{total_files}/{total_files}"),
            bytes: format!("{}/{tb}", "9".repeat(copied)),
            rate: "9".repeat(10),
            elapsed: "9".repeat(4),
            eta: "9".repeat(4),
        }
    }
}

/// The bar's layouts, fullest first: (header shown, the bar's least width, which text of
/// [`BarText::candidates`]). The rate and elapsed time go first, then the header, then the ETA
/// and the word `files` while the bar shrinks to a stub; the bytes copied stay until not even
/// `copied/total` files and bytes fit.
const BAR_LAYOUTS: [(bool, usize, usize); 6] = [
    (true, MIN_BAR, 0),
    (true, MIN_BAR, 1),
    (false, MIN_BAR, 1),
    (false, STUB_BAR, 2),
    (false, STUB_BAR, 3),
    (false, STUB_BAR, 4),
];

/// The layout for `width` columns: the first whose widest form (`[`, `] ` around the bar
/// included) fits, else the barest. Chosen from the widest form, it stays put for the whole run.
fn bar_layout(width: usize, widest: &BarText) -> (bool, usize, usize) {
    let texts = widest.candidates();
    let fixed = |head: bool, bar: usize| if head { HEADER_WIDTH } else { 0 } + 3 + bar;
    *BAR_LAYOUTS
        .iter()
        .find(|&&(head, bar, i)| fixed(head, bar) + texts[i].chars().count() <= width)
        .unwrap_or(&BAR_LAYOUTS[BAR_LAYOUTS.len() - 1])
}

/// The bar's text for `width` columns, in the layout [`bar_layout`] chose, padded to its widest
/// form, so the bar beside it keeps one length for the whole run (it never shrinks as the counts
/// grow).
fn bar_text(width: usize, now: &BarText, widest: &BarText) -> String {
    let (head, bar, i) = bar_layout(width, widest);
    let room = width.saturating_sub(if head { HEADER_WIDTH } else { 0 } + 3 + bar);
    let padded = widest.candidates()[i].chars().count().min(room);
    fit(room, &[format!("{:<padded$}", now.candidates()[i])])
}

/// Once the plan is complete: `Copying [=====>    ] 1765/3841 files, 20.1 MiB/43.8 MiB, …, ETA 3s`.
fn bar_style(counts: &Arc<Counts>) -> ProgressStyle {
    let c = Arc::clone(counts);
    let info = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let tf = c.total_files.load(Ordering::Relaxed);
        let tb = c.total_bytes.load(Ordering::Relaxed);
        let cf = c.copied_files.load(Ordering::Relaxed);
        let now = BarText {
            files: format!("{cf}/{tf}"),
            bytes: format!("{}/{}", human_bytes(state.pos()), human_bytes(tb)),
            rate: human_bytes(state.per_sec() as u64),
            elapsed: secs(state.elapsed()),
            // No byte has moved yet: there is no rate to estimate from.
            eta: if state.pos() == 0 {
                "?".to_string()
            } else {
                secs(state.eta())
            },
        };
        let _ = write!(
            w,
            "{}",
            bar_text(usable_width(), &now, &BarText::widest(tf, tb))
        );
    };
    let c = Arc::clone(counts);
    let head = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
        let widest = BarText::widest(
            c.total_files.load(Ordering::Relaxed),
            c.total_bytes.load(Ordering::Relaxed),
        );
        let _ = write!(w, "{}", header(bar_layout(usable_width(), &widest).0));
    };
    ProgressStyle::with_template("{head}[{wide_bar}] {info}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("head", head)
        .with_key("info", info)
        .progress_chars("=> ")
}

impl Reporter for Human<'_> {
    fn planned(&self, engine: &str) {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for job in self.plan.jobs.iter().filter(|j| j.op != Op::Dir) {
            let what = match &job.op {
                Op::Symlink { target } => format!("symlink to {}", target.display()),
                Op::Hardlink { of } => {
                    format!("hard link of {}", self.plan.jobs[*of].dst.display())
                }
                _ => human_bytes(job.size),
            };
            let _ = writeln!(
                out,
                "{} -> {} ({what})",
                job.src.display(),
                job.dst.display()
            );
        }
        for job in self.extras.skipped().iter().filter(|j| j.op != Op::Dir) {
            let _ = writeln!(
                out,
                "{} -> {} (unchanged, skipped)",
                job.src.display(),
                job.dst.display()
            );
        }
        if !self.quiet {
            let n = self.plan.file_count();
            let _ = writeln!(
                out,
                "Would copy {n} file{} ({}){} [engine: {engine}] (dry run: nothing written)",
                plural(n),
                human_bytes(self.plan.total_bytes()),
                self.extras.unchanged()
            );
        }
    }

    fn finish(&self, s: &Summary) {
        if let Some(p) = &self.progress {
            p.bar.finish_and_clear();
        }
        let full = self.not_started_full.load(Ordering::Relaxed);
        if full > 0 {
            let text = format!(
                "{full} file{} not copied: the destination {} is full",
                plural(full as usize),
                self.plan.out_dir.display()
            );
            diagnostic(Level::Error, &text);
        }
        if let Some(text) = self.failure_count() {
            diagnostic(Level::Error, &text);
        }
        if s.interrupted {
            // An error as cargo styles one, like `--build`'s "interrupted; nothing was copied".
            let text = format!(
                "interrupted: stopped after {} file{}; no partial file left",
                s.files,
                plural(s.files)
            );
            diagnostic(Level::Error, &text);
        } else if !self.quiet {
            eprintln!(
                "Copied {} file{} ({}){} in {:.2} s [engine: {}]",
                s.files,
                plural(s.files),
                human_bytes(s.bytes),
                self.extras.unchanged(),
                s.elapsed.as_secs_f64(),
                s.engine
            );
            if let Some(o) = self.extras.outputs.get() {
                if let Some(sums) = &o.checksums_file {
                    eprintln!("Wrote {}", sums.display());
                }
                for a in &o.archives {
                    eprintln!("Wrote {} (sha256 {})", a.path.display(), a.sha256);
                }
            }
        }
        if self.verbose > 0 && !s.routes.is_empty() {
            let routes: Vec<String> = s.routes.iter().map(|(r, n)| format!("{r} {n}")).collect();
            self.eprint(&format!(
                "routes (files): {} (warm: copied on threads; cold: through the io_uring ring)",
                routes.join(", ")
            ));
        }
    }

    fn note(&self, text: &str) {
        if self.verbose > 0 {
            self.eprint(&styled(Level::Note, text));
        }
    }

    fn warn(&self, text: &str) {
        if !self.quiet {
            self.eprint(&styled(Level::Warning, text));
        }
    }

    fn as_sink(&self) -> &dyn EventSink {
        self
    }

    fn skipped(&self, jobs: &[Job]) {
        if self.verbose > 1 {
            for job in jobs.iter().filter(|j| j.op != Op::Dir) {
                self.eprint(&format!("{} unchanged, skipped", job.dst.display()));
            }
        }
        let _ = self.extras.skipped.set(jobs.to_vec());
    }

    fn digests(&self, digests: Arc<Digests>) {
        let _ = self.extras.digests.set(digests);
    }

    fn bundled(&self, outputs: &Outputs) {
        let _ = self.extras.outputs.set(outputs.clone());
    }
}

/// JSON lines on stdout, cargo-style `reason` first; field order is stable (the Action parses it).
struct Json<'p> {
    plan: &'p Plan,
    out: std::sync::Mutex<Box<dyn Write + Send + 'p>>,
    extras: Extras,
    /// A relative destination goes out joined to this, so `dst` is absolute. (`src` is as
    /// selection found it: absolute from cargo, relative to the cwd for a relative `--from`.)
    cwd: Option<std::path::PathBuf>,
}

/// JSON lines written to `out` (a `--manifest` file) instead of stdout.
pub fn json_to<'p>(plan: &'p Plan, out: Box<dyn Write + Send + 'p>) -> Box<dyn Reporter + 'p> {
    Box::new(Json::new(plan, out))
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    reason: &'static str,
    message: &'a str,
}

/// An error raised before anything was written (exit 2): on stderr as cargo prints one, and
/// with `--message-format json` also on stdout, as a `{"reason":"error"}` line and then the
/// summary (nothing copied, one error), so a script reading stdout always gets its summary.
pub fn planning_error(output: Output, dry_run: bool, message: &str) {
    diagnostic(Level::Error, message);
    if output != Output::Json {
        return;
    }
    let mut out = std::io::stdout().lock();
    let error = ErrorLine {
        reason: "error",
        message,
    };
    let summary = SummaryLine {
        reason: "summary",
        files: 0,
        bytes: 0,
        engine: "none",
        elapsed_ms: 0,
        errors: 1,
        dry_run,
        interrupted: false,
        skipped: 0,
        archives: Vec::new(),
        checksums_file: None,
        routes: None,
    };
    let lines = [
        serde_json::to_string(&error),
        serde_json::to_string(&summary),
    ];
    for line in lines.into_iter().flatten() {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// Paths go out as UTF-8 strings; a name that is not UTF-8 goes out lossily in `src`/`dst`
/// and exactly, as its raw bytes, in `src_bytes`/`dst_bytes`.
fn raw_bytes(p: &Path) -> Option<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        p.to_str()
            .is_none()
            .then(|| p.as_os_str().as_bytes().to_vec())
    }
    #[cfg(not(unix))]
    {
        let _ = p;
        None
    }
}

#[derive(Serialize)]
struct FileLine<'a> {
    reason: &'a str,
    src: String,
    dst: String,
    bytes: u64,
    kind: &'a str,
    package: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_bytes: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_bytes: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha512: Option<String>,
}

#[derive(Serialize)]
struct FailedLine {
    reason: &'static str,
    src: Option<String>,
    dst: Option<String>,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_bytes: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_bytes: Option<Vec<u8>>,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    reason: &'static str,
    files: usize,
    bytes: u64,
    engine: &'a str,
    elapsed_ms: u128,
    errors: usize,
    dry_run: bool,
    interrupted: bool,
    /// `--update`: files already in place, not copied.
    skipped: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    archives: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksums_file: Option<String>,
    /// Files per route (`warm`, `cold`) where the engine routed them by residency.
    #[serde(skip_serializing_if = "Option::is_none")]
    routes: Option<std::collections::BTreeMap<&'static str, usize>>,
}

impl<'p> Json<'p> {
    fn new(plan: &'p Plan, out: Box<dyn Write + Send + 'p>) -> Self {
        Json {
            plan,
            out: std::sync::Mutex::new(out),
            extras: Extras::default(),
            cwd: std::env::current_dir().ok(),
        }
    }

    /// `p` made absolute (lexically: symlinks are not resolved). A `--dry-run` without an
    /// out-dir has destinations relative to an out-dir that does not exist: they stay relative.
    fn abs(&self, p: &Path) -> std::path::PathBuf {
        match &self.cwd {
            Some(cwd) if p.is_relative() && !self.plan.out_dir.as_os_str().is_empty() => {
                cwd.join(p)
            }
            _ => p.to_path_buf(),
        }
    }

    fn emit(&self, v: &impl Serialize) {
        if let Ok(s) = serde_json::to_string(v) {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{s}");
        }
    }

    /// The last line is out: a file's buffer goes to disk now.
    fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }

    fn failed_line(&self, job: Option<&crate::plan::Job>, error: &crate::error::CopyError) {
        let dst = job.map(|j| self.abs(&j.dst));
        self.emit(&FailedLine {
            reason: "failed",
            src: job.map(|j| j.src.to_string_lossy().into_owned()),
            dst: dst.as_ref().map(|p| p.to_string_lossy().into_owned()),
            error: error.to_string(),
            src_bytes: job.and_then(|j| raw_bytes(&j.src)),
            dst_bytes: dst.as_deref().and_then(raw_bytes),
        });
    }

    fn file_line(&self, reason: &'static str, index: usize) {
        self.job_line(reason, &self.plan.jobs[index]);
    }

    fn job_line(&self, reason: &'static str, job: &Job) {
        if job.op == Op::Dir {
            return;
        }
        let (sha256, sha512) = self.extras.digest(job);
        let dst = self.abs(&job.dst);
        self.emit(&FileLine {
            reason,
            src: job.src.to_string_lossy().into_owned(),
            dst: dst.to_string_lossy().into_owned(),
            bytes: job.size,
            kind: job.kind.as_str(),
            package: job.package.as_deref(),
            src_bytes: raw_bytes(&job.src),
            dst_bytes: raw_bytes(&dst),
            sha256,
            sha512,
        });
    }

    /// The summary's bundle fields: what `--update` skipped, what was written after the copy.
    fn bundle_fields(&self) -> (usize, Vec<String>, Option<String>) {
        let o = self.extras.outputs.get();
        (
            self.extras.skipped_files(),
            o.map(|o| {
                o.archives
                    .iter()
                    .map(|a| a.path.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
            o.and_then(|o| o.checksums_file.as_ref())
                .map(|p| p.to_string_lossy().into_owned()),
        )
    }
}

impl EventSink for Json<'_> {
    fn event(&self, event: Event) {
        match event {
            Event::Done { index } => self.file_line("copied", index),
            Event::Failed { index, error } => self.failed_line(self.plan.jobs.get(index), &error),
            // No job of the plan: `src` and `dst` are null.
            Event::Unwalked { error } | Event::DirSyncFailed { error } => {
                self.failed_line(None, &error)
            }
            Event::Started { .. } | Event::Planned { .. } | Event::Progress { .. } => {}
        }
    }
}

impl Reporter for Json<'_> {
    fn planned(&self, engine: &str) {
        for i in 0..self.plan.jobs.len() {
            self.file_line("planned", i);
        }
        let (skipped, archives, checksums_file) = self.bundle_fields();
        self.emit(&SummaryLine {
            reason: "summary",
            files: self.plan.file_count(),
            bytes: self.plan.total_bytes(),
            engine,
            elapsed_ms: 0,
            errors: 0,
            dry_run: true,
            interrupted: false,
            skipped,
            archives,
            checksums_file,
            routes: None,
        });
        self.flush();
    }

    fn finish(&self, s: &Summary) {
        let (skipped, archives, checksums_file) = self.bundle_fields();
        self.emit(&SummaryLine {
            reason: "summary",
            files: s.files,
            bytes: s.bytes,
            engine: &s.engine,
            elapsed_ms: s.elapsed.as_millis(),
            errors: s.errors,
            dry_run: false,
            interrupted: s.interrupted,
            skipped,
            archives,
            checksums_file,
            routes: (!s.routes.is_empty()).then(|| s.routes.iter().copied().collect()),
        });
        self.flush();
    }

    fn note(&self, _text: &str) {}

    /// Stdout stays JSON lines; a warning goes where cargo's go, to stderr.
    fn warn(&self, text: &str) {
        diagnostic(Level::Warning, text);
    }

    fn as_sink(&self) -> &dyn EventSink {
        self
    }

    fn skipped(&self, jobs: &[Job]) {
        for job in jobs {
            self.job_line("skipped", job);
        }
        let _ = self.extras.skipped.set(jobs.to_vec());
    }

    fn digests(&self, digests: Arc<Digests>) {
        let _ = self.extras.digests.set(digests);
    }

    fn bundled(&self, outputs: &Outputs) {
        let _ = self.extras.outputs.set(outputs.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, styled, Level};

    #[test]
    fn diagnostics_are_styled_like_cargos() {
        assert_eq!(
            styled(Level::Warning, "w\nhelp: h\n  plain"),
            "\x1b[1m\x1b[33mwarning:\x1b[0m w\n\x1b[1m\x1b[36mhelp:\x1b[0m h\n  plain"
        );
        assert_eq!(
            styled(Level::Error, "e\n\nnote: n"),
            "\x1b[1m\x1b[31merror:\x1b[0m e\n\n\x1b[1m\x1b[36mnote:\x1b[0m n"
        );
    }

    #[test]
    fn the_first_fitting_candidate_wins_and_the_last_is_cut() {
        let c = ["long text".to_string(), "short".to_string()];
        assert_eq!(super::fit(20, &c), "long text");
        assert_eq!(super::fit(6, &c), "short");
        assert_eq!(super::fit(3, &c), "sho");
    }

    #[test]
    fn the_bar_text_keeps_one_width_while_the_counts_grow() {
        use super::{bar_text, BarText};
        let widest = BarText::widest(2403, 48 << 20);
        let at = |cf: u64, copied: u64, rate: u64, secs: &str| BarText {
            files: format!("{cf}/2403"),
            bytes: format!("{}/{}", human_bytes(copied), human_bytes(48 << 20)),
            rate: human_bytes(rate),
            elapsed: secs.to_string(),
            eta: secs.to_string(),
        };
        for width in [17, 23, 39, 59, 69, 99] {
            let first = bar_text(width, &at(0, 0, 0, "0s"), &widest);
            let last = bar_text(width, &at(2403, 1000 << 10, 900 << 20, "12m"), &widest);
            assert_eq!(
                first.chars().count(),
                last.chars().count(),
                "{first:?} {last:?}"
            );
            assert!(first.chars().count() <= width, "{first:?}");
        }
        let line = bar_text(120, &at(12, 5 << 20, 1 << 20, "3s"), &widest);
        assert!(line.starts_with("12/2403 files, 5.0 MiB/48.0 MiB, 1.0 MiB/s, 3s, ETA 3s"));
    }

    #[test]
    fn narrow_layouts_drop_the_rate_header_and_eta_before_the_bytes() {
        use super::{bar_layout, bar_text, counter_line, counter_text, BarText, HEADER_WIDTH};
        let widest = BarText::widest(2403, 48 << 20);
        let now = BarText {
            files: "12/2403".into(),
            bytes: "5.0 MiB/48.0 MiB".into(),
            rate: "1.0 MiB".into(),
            elapsed: "3s".into(),
            eta: "9s".into(),
        };
        let text = |w| bar_text(w, &now, &widest).trim_end().to_string();
        // 80 columns: the header, the bar and everything but the rate and elapsed time.
        assert!(bar_layout(79, &widest).0);
        assert_eq!(text(79), "12/2403 files, 5.0 MiB/48.0 MiB, ETA 9s");
        // 60: the header goes first; 50: the word `files`; 40: the ETA; never the bytes.
        assert!(!bar_layout(59, &widest).0);
        assert_eq!(text(59), "12/2403 files, 5.0 MiB/48.0 MiB, ETA 9s");
        assert_eq!(text(49), "12/2403, 5.0 MiB/48.0 MiB, ETA 9s");
        assert_eq!(text(39), "12/2403, 5.0 MiB/48.0 MiB");
        assert_eq!(text(23), "12/2403");
        let texts = counter_text(2403, "48.4 MiB", 1200, "20.1 MiB", "2s");
        let line = |w| counter_line(w, '*', &texts);
        assert!(line(99).starts_with(&format!("{:>w$}", "Copying ", w = HEADER_WIDTH)));
        assert!(line(99)
            .ends_with("* found 2403 files (48.4 MiB) so far, copied 1200 files (20.1 MiB), 2s"));
        assert_eq!(
            line(59),
            "* found 2403 files (48.4 MiB), copied 1200 (20.1 MiB), 2s"
        );
        assert_eq!(line(49), "* found 2403 (48.4 MiB), copied 1200 (20.1 MiB)");
        assert_eq!(line(39), "* 1200/2403+ files, 20.1 MiB/48.4 MiB+");
        assert_eq!(line(23), "* 1200/2403+, 20.1 MiB");
        for w in [10, 23, 39, 49, 59, 99] {
            assert!(line(w).chars().count() <= w, "{:?}", line(w));
        }
    }

    #[test]
    fn sizes_read_like_cargo() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12_897_485), "12.3 MiB");
    }
}
