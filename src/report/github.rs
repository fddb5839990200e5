//! `--github-output`: a GitHub Actions step's report — outputs, job summary, annotations, log.
//!
//! The step's outputs go to `$GITHUB_OUTPUT` (heredoc form, so any path survives), the markdown
//! summary to `$GITHUB_STEP_SUMMARY`, error annotations (escaped per the workflow-command rules)
//! to stdout, and a plain log to stderr. Log lines never begin with `::` and never span lines,
//! so no file name can act as a workflow command.
use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::BufWriter;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::bundle::{Digests, Outputs};
use crate::config::{Config, GithubStep};
use crate::engine::{Event, EventSink, Summary};
use crate::plan::{Job, Op, Plan};
use crate::report::{self, human_bytes, Reporter};

/// `--manifest` names a file that cannot be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the manifest {}: {source}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The reporter for `cfg`: the GitHub step report with `--github-output` (and the JSON-lines
/// manifest file with `--manifest`), else the `--message-format` one.
pub fn for_run<'p>(
    cfg: &'p Config,
    plan: &'p Plan,
) -> Result<Box<dyn Reporter + 'p>, ManifestError> {
    let Some(step) = &cfg.github else {
        return Ok(report::new(cfg.output, cfg.verbose, plan));
    };
    let manifest = match &cfg.manifest {
        Some(path) => {
            let file = File::create(path).map_err(|source| ManifestError {
                path: path.clone(),
                source,
            })?;
            Some(report::json_to(plan, Box::new(BufWriter::new(file))))
        }
        None => None,
    };
    Ok(Box::new(Github {
        plan,
        step,
        cfg,
        manifest,
        out_dir: absolute(&plan.out_dir),
        bundled: OnceLock::new(),
        state: Mutex::new(State::default()),
    }))
}

/// The reporter for a run with `--github-output`.
struct Github<'p> {
    plan: &'p Plan,
    step: &'p GithubStep,
    cfg: &'p Config,
    /// `--manifest`: the JSON-lines reporter writing the file; complete before the outputs
    /// name it.
    manifest: Option<Box<dyn Reporter + 'p>>,
    /// The out-dir, absolute: the `out-dir` output.
    out_dir: PathBuf,
    /// `--archive`/`--checksums`: what was written after the copy.
    bundled: OnceLock<Outputs>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Files reported copied (or planned).
    listed: usize,
    /// Job indices of the summary table's rows (the first `summary_rows` files).
    rows: Vec<usize>,
    /// Failed jobs (`None`: a failure no job owns, e.g. an unreadable directory) and why.
    failures: Vec<(Option<usize>, String)>,
    /// `--update`: files already in place, left alone.
    unchanged: usize,
}

impl Github<'_> {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn list(&self, state: &mut State, index: usize) {
        let Some(job) = self.plan.jobs.get(index) else {
            return;
        };
        if job.op == Op::Dir {
            return;
        }
        state.listed += 1;
        if state.rows.len() < self.step.summary_rows {
            state.rows.push(index);
        }
        log(&format!(
            "  {:<8} {:>10}  {:?}",
            job.kind.as_str(),
            human_bytes(job.size),
            self.shown(&job.dst)
        ));
    }

    /// A destination as the summary shows it: relative to the out-dir (or the workspace).
    fn shown(&self, p: &Path) -> PathBuf {
        let out_dir = &self.out_dir;
        for base in [
            Some(self.plan.out_dir.as_path()),
            Some(out_dir.as_path()),
            self.step.workspace.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Ok(rel) = p.strip_prefix(base) {
                if !rel.as_os_str().is_empty() {
                    return rel.to_path_buf();
                }
            }
        }
        p.to_path_buf()
    }

    /// Outputs, log line, annotations and summary at the end of a run (or a dry run).
    fn report(&self, totals: Totals<'_>) {
        let state = self.state();
        let out_dir = &self.out_dir;
        let mut problems = Vec::new();
        let bundled = self.bundled.get();
        if let Err(e) = write_outputs(
            self.step,
            self.cfg,
            out_dir,
            (totals.files, totals.bytes, totals.engine),
            bundled,
        ) {
            problems.push(e);
        }

        let what = if totals.dry_run {
            "Dry run: would stage"
        } else {
            "Staged"
        };
        log(&format!(
            "{what} {} file(s), {} ({} bytes) into {:?} with the {} engine",
            totals.files,
            human_bytes(totals.bytes),
            totals.bytes,
            out_dir,
            totals.engine
        ));

        let mut commands = String::new();
        for (index, error) in &state.failures {
            let job = index.and_then(|i| self.plan.jobs.get(i));
            let (file, message) = match job {
                Some(j) => (
                    Some(self.relative_to_workspace(&j.src)),
                    format!("{error} ({} -> {})", j.src.display(), j.dst.display()),
                ),
                None => (None, error.clone()),
            };
            annotation(
                &mut commands,
                file.as_deref(),
                "cargo-fastcp: could not copy a file",
                &message,
            );
        }
        if totals.interrupted {
            annotation(
                &mut commands,
                self.run_file().as_deref(),
                "cargo-fastcp was interrupted",
                &format!(
                    "stopped after {} file(s); no partial file was left",
                    totals.files
                ),
            );
        } else if totals.errors > 0 {
            annotation(
                &mut commands,
                self.run_file().as_deref(),
                "cargo-fastcp failed (exit code 1)",
                &format!("{} file(s) could not be copied", totals.errors),
            );
        }

        if let Some(path) = &self.step.summary {
            let md = self.summary_markdown(&state, &totals, out_dir);
            if let Err(e) = append(path, &md) {
                problems.push(e);
            }
        }
        emit_commands(commands, &problems);
    }

    fn relative_to_workspace(&self, p: &Path) -> String {
        let rel = self
            .step
            .workspace
            .as_deref()
            .and_then(|w| p.strip_prefix(w).ok())
            .filter(|r| !r.as_os_str().is_empty())
            .unwrap_or(p);
        rel.to_string_lossy().replace('\\', "/")
    }

    /// Where a run-level error points: the workflow file, else the manifest path.
    fn run_file(&self) -> Option<String> {
        run_file(self.step, self.cfg)
    }

    /// The job summary: what was staged, the bundle, the files, the failures, how it ended.
    fn summary_markdown(&self, state: &State, t: &Totals<'_>, out_dir: &Path) -> String {
        let mut md = String::from("### cargo-fastcp\n\n");
        summary_headline(&mut md, state, t, out_dir);
        md.push_str("\n\n");
        self.summary_bundle(&mut md);
        self.summary_files(&mut md, state);
        self.summary_failures(&mut md, state);
        if t.interrupted {
            md.push_str("**Interrupted**: no partial file was left.\n\n");
        } else if t.errors > 0 {
            md.push_str("**cargo-fastcp exited with code 1.**\n\n");
        }
        md
    }

    /// The bundle's files and their SHA-256, when it wrote any.
    fn summary_bundle(&self, md: &mut String) {
        if let Some(b) = self.bundled.get() {
            if !b.archives.is_empty() || b.checksums_file.is_some() {
                md.push_str("| bundle | SHA-256 |\n| --- | --- |\n");
                for a in &b.archives {
                    let _ = writeln!(
                        md,
                        "| <code>{}</code> | <code>{}</code> |",
                        md_cell(&self.shown(&a.path).to_string_lossy()),
                        md_cell(&a.sha256)
                    );
                }
                if let Some(c) = &b.checksums_file {
                    let _ = writeln!(
                        md,
                        "| <code>{}</code> | |",
                        md_cell(&self.shown(c).to_string_lossy())
                    );
                }
                md.push('\n');
            }
        }
    }

    /// The staged files, up to the step's row limit.
    fn summary_files(&self, md: &mut String, state: &State) {
        if !state.rows.is_empty() {
            md.push_str("| artifact | kind | size |\n| --- | --- | ---: |\n");
            for &i in &state.rows {
                let job = &self.plan.jobs[i];
                let _ = writeln!(
                    md,
                    "| <code>{}</code> | {} | {} |",
                    md_cell(&self.shown(&job.dst).to_string_lossy()),
                    job.kind.as_str(),
                    human_bytes(job.size)
                );
            }
            let more = state.listed.saturating_sub(state.rows.len());
            if more > 0 {
                let _ = writeln!(
                    md,
                    "| … and {more} more (the manifest output lists them all) | | |"
                );
            }
            md.push('\n');
        }
    }

    /// The failed files, up to the step's row limit.
    fn summary_failures(&self, md: &mut String, state: &State) {
        if !state.failures.is_empty() {
            let _ = write!(
                md,
                "**{} file(s) failed:**\n\n| artifact | error |\n| --- | --- |\n",
                state.failures.len()
            );
            for (index, error) in state.failures.iter().take(self.step.summary_rows) {
                let what = index
                    .and_then(|i| self.plan.jobs.get(i))
                    .map(|j| self.relative_to_workspace(&j.src))
                    .unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| <code>{}</code> | {} |",
                    md_cell(&what),
                    md_cell(error)
                );
            }
            let more = state.failures.len().saturating_sub(self.step.summary_rows);
            if more > 0 {
                let _ = writeln!(md, "| … and {more} more | |");
            }
            md.push('\n');
        }
    }
}

/// The summary's first sentence: what was staged where, by which engine, how fast, how well.
fn summary_headline(md: &mut String, state: &State, t: &Totals<'_>, out_dir: &Path) {
    let dest = md_cell(&out_dir.to_string_lossy());
    let size = human_bytes(t.bytes);
    if t.dry_run {
        let _ = write!(
            md,
            "Dry run: **{}** file(s), **{size}** ({} bytes) would be staged into <code>{dest}</code>",
            t.files, t.bytes
        );
    } else {
        let _ = write!(
            md,
            "Staged **{}** file(s), **{size}** ({} bytes) into <code>{dest}</code>",
            t.files, t.bytes
        );
    }
    let _ = write!(md, " with the **{}** engine", md_cell(t.engine));
    if let Some(ms) = t.elapsed_ms {
        let _ = write!(md, " in {ms} ms");
    }
    md.push('.');
    if state.unchanged > 0 {
        let _ = write!(md, " {} file(s) were already in place.", state.unchanged);
    }
    if t.errors > 0 {
        let _ = write!(md, " **{} error(s).**", t.errors);
    }
}

/// What the end of a run reports.
struct Totals<'a> {
    files: usize,
    bytes: u64,
    engine: &'a str,
    errors: usize,
    elapsed_ms: Option<u128>,
    dry_run: bool,
    interrupted: bool,
}

impl EventSink for Github<'_> {
    fn event(&self, event: Event) {
        match event {
            Event::Done { index } => {
                self.list(&mut self.state(), index);
                if let Some(m) = &self.manifest {
                    m.event(event);
                }
            }
            Event::Failed { index, error } => {
                let text = error.to_string();
                if let Some(m) = &self.manifest {
                    m.event(Event::Failed { index, error });
                }
                let error = text;
                let job = self.plan.jobs.get(index);
                match job {
                    Some(j) => log(&format!(
                        "  FAILED   {:?} -> {:?}: {}",
                        j.src,
                        j.dst,
                        one_line(&error)
                    )),
                    None => log(&format!("  FAILED   {}", one_line(&error))),
                }
                self.state()
                    .failures
                    .push((job.is_some().then_some(index), error));
            }
            // No job of the plan: a part the walk could not read, a directory's fsync.
            Event::Unwalked { ref error } | Event::DirSyncFailed { ref error } => {
                let error = error.to_string();
                log(&format!("  FAILED   {}", one_line(&error)));
                self.state().failures.push((None, error));
                if let Some(m) = &self.manifest {
                    m.event(event);
                }
            }
            Event::Started { .. } | Event::Planned { .. } | Event::Progress { .. } => {
                if let Some(m) = &self.manifest {
                    m.event(event);
                }
            }
        }
    }
}

impl Reporter for Github<'_> {
    fn planned(&self, engine: &str) {
        if let Some(m) = &self.manifest {
            m.planned(engine);
        }
        {
            let mut state = self.state();
            for i in 0..self.plan.jobs.len() {
                self.list(&mut state, i);
            }
        }
        self.report(Totals {
            files: self.plan.file_count(),
            bytes: self.plan.total_bytes(),
            engine,
            errors: 0,
            elapsed_ms: None,
            dry_run: true,
            interrupted: false,
        });
    }

    fn finish(&self, s: &Summary) {
        if let Some(m) = &self.manifest {
            m.finish(s);
        }
        self.report(Totals {
            files: s.files,
            bytes: s.bytes,
            engine: &s.engine,
            errors: s.errors,
            elapsed_ms: Some(s.elapsed.as_millis()),
            dry_run: false,
            interrupted: s.interrupted,
        });
    }

    fn note(&self, text: &str) {
        if self.cfg.verbose > 0 {
            log(&one_line(text));
        }
    }

    /// In the log, and as a warning annotation on the run.
    fn warn(&self, text: &str) {
        log(&format!("warning: {}", one_line(text)));
        let warning = format!(
            "::warning title={}::{}\n",
            escape_property("cargo-fastcp"),
            escape_data(text)
        );
        emit_commands(warning, &[]);
    }

    fn as_sink(&self) -> &dyn EventSink {
        self
    }

    fn skipped(&self, jobs: &[Job]) {
        if let Some(m) = &self.manifest {
            m.skipped(jobs);
        }
        self.state().unchanged += jobs.iter().filter(|j| j.op != Op::Dir).count();
    }

    fn digests(&self, digests: Arc<Digests>) {
        if let Some(m) = &self.manifest {
            m.digests(digests);
        }
    }

    fn bundled(&self, outputs: &Outputs) {
        if let Some(m) = &self.manifest {
            m.bundled(outputs);
        }
        for a in &outputs.archives {
            log(&format!("archive {:?} (SHA-256 {})", a.path, a.sha256));
        }
        if let Some(c) = &outputs.checksums_file {
            log(&format!("checksums {c:?}"));
        }
        let _ = self.bundled.set(outputs.clone());
    }
}

/// A run that failed before copying (a selection or planning error, exit code `code`): the
/// outputs say nothing was staged, the summary and an annotation give the cause.
pub fn failed(cfg: &Config, step: &GithubStep, cause: &str, code: u8) {
    log(&format!("error: {}", one_line(cause)));
    let out_dir = cfg.out_dir.as_deref().map(absolute).unwrap_or_default();
    let mut problems = Vec::new();
    // The manifest output names a file that exists, even when nothing went into it.
    if let Some(m) = &cfg.manifest {
        if let Err(e) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m)
        {
            problems.push(format!("{}: {e}", m.display()));
        }
    }
    if let Err(e) = write_outputs(step, cfg, &out_dir, (0, 0, ""), None) {
        problems.push(e);
    }
    if let Some(path) = &step.summary {
        let md = format!(
            "### cargo-fastcp\n\n**Failed with exit code {code}**; nothing was staged into <code>{}</code>:\n\n<pre>{}</pre>\n\n",
            md_cell(&out_dir.to_string_lossy()),
            html_escape(cause)
        );
        if let Err(e) = append(path, &md) {
            problems.push(e);
        }
    }
    let mut commands = String::new();
    annotation(
        &mut commands,
        run_file(step, cfg).as_deref(),
        &format!("cargo-fastcp failed (exit code {code})"),
        cause,
    );
    emit_commands(commands, &problems);
}

fn run_file(step: &GithubStep, cfg: &Config) -> Option<String> {
    step.workflow_file.clone().or_else(|| {
        cfg.manifest_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    })
}

/// The step's outputs: `(files, bytes, engine)` of the run, and what `--archive` and
/// `--checksums` wrote (`archive`: one path per line).
fn write_outputs(
    step: &GithubStep,
    cfg: &Config,
    out_dir: &Path,
    (files, bytes, engine): (usize, u64, &str),
    bundled: Option<&Outputs>,
) -> Result<(), String> {
    let manifest = cfg
        .manifest
        .as_deref()
        .map(|m| absolute(m).to_string_lossy().into_owned())
        .unwrap_or_default();
    let out_dir = out_dir.to_string_lossy();
    let archives = bundled
        .map(|b| {
            b.archives
                .iter()
                .map(|a| absolute(&a.path).to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let checksums = bundled
        .and_then(|b| b.checksums_file.as_deref())
        .map(|p| absolute(p).to_string_lossy().into_owned())
        .unwrap_or_default();
    let outputs: [(&str, &str); 7] = [
        ("files", &files.to_string()),
        ("bytes", &bytes.to_string()),
        ("engine", engine),
        ("out-dir", &out_dir),
        ("manifest", &manifest),
        ("archive", &archives),
        ("checksums-file", &checksums),
    ];
    append(&step.output, &file_command(&outputs))
}

/// `name<<DELIMITER` blocks for `$GITHUB_OUTPUT`, with a delimiter no value contains.
fn file_command(pairs: &[(&str, &str)]) -> String {
    let delim = loop {
        let d = format!("ghadelimiter_{:016x}", random());
        if pairs.iter().all(|(_, v)| !v.contains(&d)) {
            break d;
        }
    };
    let mut s = String::new();
    for (name, value) in pairs {
        let _ = write!(s, "{name}<<{delim}\n{value}\n{delim}\n");
    }
    s
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `::error file=…,title=…::message`, escaped per the workflow-command rules.
fn annotation(out: &mut String, file: Option<&str>, title: &str, message: &str) {
    out.push_str("::error ");
    if let Some(f) = file {
        let _ = write!(out, "file={},", escape_property(f));
    }
    let _ = writeln!(
        out,
        "title={}::{}",
        escape_property(title),
        escape_data(message)
    );
}

/// Issues `commands` on stdout, and an annotation for each output or summary file that could
/// not be written.
fn emit_commands(mut commands: String, problems: &[String]) {
    for p in problems {
        annotation(
            &mut commands,
            None,
            "cargo-fastcp: cannot write the step's report",
            p,
        );
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(commands.as_bytes());
    let _ = out.flush();
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One log line on stderr.
fn log(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Text on one line: a line break in a message cannot start a line of its own.
fn one_line(s: &str) -> String {
    s.replace('\r', "\\r").replace('\n', "\\n")
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text safe inside a markdown table cell's `<code>`: no HTML, no cell breaks, one line.
fn md_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '\\' => out.push_str("&#92;"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_cells_are_escaped() {
        let mut s = String::new();
        annotation(&mut s, Some("a,b:50%.txt"), "t: x", "m\r\nl 100%");
        assert_eq!(
            s,
            "::error file=a%2Cb%3A50%25.txt,title=t%3A x::m%0D%0Al 100%25\n"
        );
        assert_eq!(
            md_cell("a|b`c\\d<e>\n\u{7}"),
            "a&#124;b&#96;c&#92;d&lt;e&gt;\\n?"
        );
        assert_eq!(one_line("a\n::error::x"), "a\\n::error::x");
    }

    #[test]
    fn output_delimiters_never_occur_in_values() {
        let text = file_command(&[("a", "x\ny"), ("b", "")]);
        let delim = text.lines().next().unwrap().strip_prefix("a<<").unwrap();
        assert_eq!(
            text,
            format!("a<<{delim}\nx\ny\n{delim}\nb<<{delim}\n\n{delim}\n")
        );
    }
}
