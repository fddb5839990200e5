//! Reporters turn engine events into output (human with indicatif, quiet, JSON lines); chosen once.
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::config::Output;
use crate::engine::{Event, EventSink, Summary};
use crate::plan::{Op, Plan};

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
    fn as_sink(&self) -> &dyn EventSink;
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
    bar: Option<ProgressBar>,
    files: AtomicU64,
    /// Files to copy, as far as the plan is known (a streamed walk adds to it).
    planned: AtomicU64,
}

impl<'p> Human<'p> {
    fn new(plan: &'p Plan, quiet: bool, verbose: u8) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {msg} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Human {
            plan,
            quiet,
            verbose,
            bar,
            files: AtomicU64::new(0),
            planned: AtomicU64::new(0),
        }
    }

    fn eprint(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl EventSink for Human<'_> {
    fn event(&self, event: Event) {
        match event {
            Event::Started { files, bytes } => {
                self.planned.store(files as u64, Ordering::Relaxed);
                if let Some(bar) = &self.bar {
                    bar.set_length(bytes);
                    bar.set_message(format!("0/{files} files"));
                }
            }
            Event::Planned { files, bytes } => {
                self.planned.fetch_add(files as u64, Ordering::Relaxed);
                if let Some(bar) = &self.bar {
                    bar.inc_length(bytes);
                }
            }
            Event::Progress { bytes } => {
                if let Some(bar) = &self.bar {
                    bar.inc(bytes);
                }
            }
            Event::Done { index } => {
                let n = self.files.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(bar) = &self.bar {
                    let total = self.planned.load(Ordering::Relaxed);
                    bar.set_message(format!("{n}/{total} files"));
                }
                if self.verbose > 1 {
                    let job = &self.plan.jobs[index];
                    self.eprint(&format!("{} -> {}", job.src.display(), job.dst.display()));
                }
            }
            Event::Failed { error, .. }
            | Event::Unwalked { error }
            | Event::DirSyncFailed { error } => self.eprint(&format!("error: {error}")),
        }
    }
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
        if !self.quiet {
            let n = self.plan.file_count();
            let _ = writeln!(
                out,
                "Would copy {n} file{} ({}) [engine: {engine}] (dry run: nothing written)",
                plural(n),
                human_bytes(self.plan.total_bytes())
            );
        }
    }

    fn finish(&self, s: &Summary) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if s.errors > 0 {
            eprintln!(
                "error: {} of {} file{} failed",
                s.errors,
                self.plan.jobs.len(),
                plural(self.plan.jobs.len())
            );
        }
        if s.interrupted {
            eprintln!(
                "interrupted: stopped after {} file{}; no partial file left",
                s.files,
                plural(s.files)
            );
        } else if !self.quiet {
            eprintln!(
                "Copied {} file{} ({}) in {:.2} s [engine: {}]",
                s.files,
                plural(s.files),
                human_bytes(s.bytes),
                s.elapsed.as_secs_f64(),
                s.engine
            );
        }
    }

    fn note(&self, text: &str) {
        if self.verbose > 0 {
            self.eprint(text);
        }
    }

    fn warn(&self, text: &str) {
        if !self.quiet {
            self.eprint(&format!("warning: {text}"));
        }
    }

    fn as_sink(&self) -> &dyn EventSink {
        self
    }
}

/// JSON lines on stdout, cargo-style `reason` first; field order is stable (the Action parses it).
struct Json<'p> {
    plan: &'p Plan,
    out: std::sync::Mutex<Box<dyn Write + Send + 'p>>,
}

/// JSON lines written to `out` (a `--manifest` file) instead of stdout.
pub fn json_to<'p>(plan: &'p Plan, out: Box<dyn Write + Send + 'p>) -> Box<dyn Reporter + 'p> {
    Box::new(Json::new(plan, out))
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
}

impl<'p> Json<'p> {
    fn new(plan: &'p Plan, out: Box<dyn Write + Send + 'p>) -> Self {
        Json {
            plan,
            out: std::sync::Mutex::new(out),
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
        self.emit(&FailedLine {
            reason: "failed",
            src: job.map(|j| j.src.to_string_lossy().into_owned()),
            dst: job.map(|j| j.dst.to_string_lossy().into_owned()),
            error: error.to_string(),
            src_bytes: job.and_then(|j| raw_bytes(&j.src)),
            dst_bytes: job.and_then(|j| raw_bytes(&j.dst)),
        });
    }

    fn file_line(&self, reason: &'static str, index: usize) {
        let job = &self.plan.jobs[index];
        if job.op == Op::Dir {
            return;
        }
        self.emit(&FileLine {
            reason,
            src: job.src.to_string_lossy().into_owned(),
            dst: job.dst.to_string_lossy().into_owned(),
            bytes: job.size,
            kind: job.kind.as_str(),
            package: job.package.as_deref(),
            src_bytes: raw_bytes(&job.src),
            dst_bytes: raw_bytes(&job.dst),
        });
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
        self.emit(&SummaryLine {
            reason: "summary",
            files: self.plan.file_count(),
            bytes: self.plan.total_bytes(),
            engine,
            elapsed_ms: 0,
            errors: 0,
            dry_run: true,
            interrupted: false,
        });
        self.flush();
    }

    fn finish(&self, s: &Summary) {
        self.emit(&SummaryLine {
            reason: "summary",
            files: s.files,
            bytes: s.bytes,
            engine: &s.engine,
            elapsed_ms: s.elapsed.as_millis(),
            errors: s.errors,
            dry_run: false,
            interrupted: s.interrupted,
        });
        self.flush();
    }

    fn note(&self, _text: &str) {}

    /// Stdout stays JSON lines; a warning goes where cargo's go, to stderr.
    fn warn(&self, text: &str) {
        eprintln!("warning: {text}");
    }

    fn as_sink(&self) -> &dyn EventSink {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_cargo() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12_897_485), "12.3 MiB");
    }
}
