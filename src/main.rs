//! `cargo fastcp`: one path for every run — parse, select, choose the engine, copy, report — and
//! the documented exit codes.
use std::process::ExitCode;

use anyhow::Context;
use cargo_fastcp::cargo::build::{BuildFailed, CargoBuild, HeldEvents};
use cargo_fastcp::plan::{Remark, Selection};
use cargo_fastcp::{bundle, cli, engine, report, select, signal, Config};

fn main() -> ExitCode {
    signal::install();
    let cfg = match cli::parse(std::env::args_os()) {
        Ok(cfg) => cfg,
        Err(e) => e.exit(),
    };
    report::set_color(cfg.color);
    // Every error that reaches here was raised before anything was written.
    match run(&cfg).context("nothing was copied") {
        Ok(code) => code,
        Err(e) => {
            // A failed `cargo build` (--build) exits as cargo did; every other error with 2.
            let code = e
                .downcast_ref::<BuildFailed>()
                .map_or(2, BuildFailed::exit_code);
            match &cfg.github {
                Some(step) => report::github::failed(&cfg, step, &format!("{e:#}"), code),
                None => report::planning_error(cfg.output, cfg.dry_run, &format!("{e:#}")),
            }
            ExitCode::from(code)
        }
    }
}

/// Selects what to copy (a complete plan, or one a walk still feeds while the engine copies),
/// chooses the engine once, and runs the plan through it into one reporter.
fn run(cfg: &Config) -> anyhow::Result<ExitCode> {
    if cfg.build {
        return run_build(cfg);
    }
    // A bundle that must see the whole plan first (to check it, or to list it) gets it whole.
    let selection = if bundle::may_stream(cfg) {
        select::selection(cfg)?
    } else {
        Selection::Complete(select::select(cfg)?)
    };
    let (selection, bundle) = bundle::prepare(cfg, selection)?;
    let chosen = engine::choose(cfg)?;
    let engine = chosen.backend.name();
    let reporter = report::github::for_run(cfg, selection.plan())?;
    say(reporter.as_ref(), &selection.plan().remarks);
    reporter.skipped(bundle.skipped());
    if let Some(digests) = bundle.digests() {
        reporter.digests(digests);
    }
    let streaming = match selection.feed() {
        Some(feed) => format!("; copying while {} runs", feed.what()),
        None => String::new(),
    };
    reporter.note(&format!("engine: {engine} ({}){streaming}", chosen.reason));
    if cfg.dry_run {
        reporter.planned(engine);
        return Ok(ExitCode::SUCCESS);
    }
    bundle.clean()?;
    let mut summary = engine::run(
        &selection,
        chosen.backend.as_ref(),
        engine::Staging::of(cfg),
        &bundle.sink(reporter.as_sink(), selection.plan()),
        signal::flag(),
    )?;
    bundle_after(&bundle, selection.plan(), &mut summary, reporter.as_ref());
    reporter.finish(&summary);
    Ok(exit_code(&summary))
}

/// `--build`: cargo builds while the engine copies each selected artifact it reports into a
/// hidden staging directory; only a successful build moves them into the out-dir (see
/// `cargo::build`), and only then are they reported, under their final names.
fn run_build(cfg: &Config) -> anyhow::Result<ExitCode> {
    let build = CargoBuild::new(cfg)?;
    // The bundle is checked against what the build is expected to stage.
    let expected = build
        .selection()
        .expected_plan(cfg.out_dir.clone().unwrap_or_default())?;
    let (_, bundle) = bundle::prepare(cfg, Selection::Complete(expected))?;
    let chosen = engine::choose(cfg)?;
    let engine = chosen.backend.name();
    if cfg.dry_run {
        let plan = build
            .selection()
            .expected_plan(cfg.out_dir.clone().unwrap_or_default())?;
        let reporter = report::github::for_run(cfg, &plan)?;
        say(reporter.as_ref(), &build.selection().remarks);
        reporter.info(&format!("would run: {}", build.command_line()));
        reporter.planned(engine);
        return Ok(ExitCode::SUCCESS);
    }
    let selection = Selection::fed(build.staging().to_path_buf(), &build);
    let held = HeldEvents::default();
    let summary = engine::run(
        &selection,
        chosen.backend.as_ref(),
        engine::Staging::of(cfg),
        &bundle.sink(&held, selection.plan()),
        signal::flag(),
    );
    // Anything but a finished copy of a successful build places nothing.
    let mut summary = match summary {
        Ok(s) if s.interrupted => {
            build.discard();
            report::diagnostic(report::Level::Error, "interrupted; nothing was copied");
            return Ok(exit_code(&s));
        }
        Err(e) => {
            build.discard();
            return Err(e.into());
        }
        Ok(s) => match build.outcome() {
            Ok(()) => s,
            Err(failed) => {
                build.discard();
                return Err(failed.into());
            }
        },
    };
    let unreported = build.unreported().inspect_err(|_| build.discard())?;
    let done = held.done(selection.plan().jobs.len());
    let (plan, failed) = build.place(selection.plan(), &done);
    summary.errors += failed.len();
    summary.files -= failed.len().min(summary.files);
    bundle.moved(selection.plan(), &plan);
    let reporter = report::github::for_run(cfg, &plan)?;
    say(reporter.as_ref(), &build.selection().remarks);
    say(reporter.as_ref(), &unreported);
    if let Some(digests) = bundle.digests() {
        reporter.digests(digests);
    }
    reporter.note(&format!(
        "engine: {engine} ({}); copying while cargo builds",
        chosen.reason
    ));
    held.replay(reporter.as_sink(), failed);
    bundle_after(&bundle, &plan, &mut summary, reporter.as_ref());
    reporter.finish(&summary);
    Ok(exit_code(&summary))
}

/// Selection's warnings and notes, through the reporter.
fn say(reporter: &dyn report::Reporter, remarks: &[Remark]) {
    for remark in remarks {
        match remark {
            Remark::Warning(text) => reporter.warn(text),
            Remark::Note(text) => reporter.note(text),
        }
    }
}

fn exit_code(summary: &engine::Summary) -> ExitCode {
    if summary.interrupted {
        ExitCode::from(128 + signal::received().unwrap_or(2) as u8)
    } else if summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// After the copy: the checksums file and archives, reported; a failure to write them counts
/// as one more error.
fn bundle_after(
    bundle: &bundle::Bundle,
    plan: &cargo_fastcp::Plan,
    summary: &mut engine::Summary,
    reporter: &dyn report::Reporter,
) {
    match bundle.after(plan, summary) {
        Ok(Some(outputs)) => reporter.bundled(&outputs),
        Ok(None) => {}
        Err(e) => {
            summary.errors += 1;
            reporter.as_sink().event(engine::Event::Failed {
                index: usize::MAX,
                error: e.into(),
            });
        }
    }
}
