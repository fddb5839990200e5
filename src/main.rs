//! `cargo fastcp`: one path for every run — parse, select, choose the engine, copy, report — and
//! the documented exit codes.
use std::process::ExitCode;

use anyhow::Context;
use cargo_fastcp::plan::Remark;
use cargo_fastcp::{cli, engine, report, select, signal, Config};

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
        Err(e) => match &cfg.github {
            Some(step) => {
                report::github::failed(&cfg, step, &format!("{e:#}"), 2);
                ExitCode::from(2)
            }
            None => {
                report::diagnostic(report::Level::Error, &format!("{e:#}"));
                ExitCode::from(2)
            }
        },
    }
}

/// Selects what to copy (a complete plan, or one a walk still feeds while the engine copies),
/// chooses the engine once, and runs the plan through it into one reporter.
fn run(cfg: &Config) -> anyhow::Result<ExitCode> {
    let selection = select::selection(cfg)?;
    let chosen = engine::choose(cfg)?;
    let engine = chosen.backend.name();
    let reporter = report::github::for_run(cfg, selection.plan())?;
    for remark in &selection.plan().remarks {
        match remark {
            Remark::Warning(text) => reporter.warn(text),
            Remark::Note(text) => reporter.note(text),
        }
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
    let summary = engine::run(
        &selection,
        chosen.backend.as_ref(),
        cfg.fsync,
        reporter.as_sink(),
        signal::flag(),
    )?;
    reporter.finish(&summary);
    Ok(exit_code(&summary))
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
