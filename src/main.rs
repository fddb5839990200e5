//! `cargo fastcp`: parse, plan, copy, report; maps outcomes to documented exit codes.
use std::process::ExitCode;

use anyhow::Context;
use cargo_fastcp::{cli, engine, report, select, signal};

fn main() -> ExitCode {
    signal::install();
    let cfg = match cli::parse(std::env::args_os()) {
        Ok(cfg) => cfg,
        Err(e) => e.exit(),
    };
    match run(&cfg) {
        Ok(code) => code,
        Err(e) => match &cfg.github {
            Some(step) => {
                report::github::failed(&cfg, step, &format!("{e:#}"), 2);
                ExitCode::from(2)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(cfg: &cargo_fastcp::Config) -> anyhow::Result<ExitCode> {
    if let Some(streamed) = select::streamed(cfg).context("nothing was copied")? {
        return run_streamed(cfg, &streamed);
    }
    let plan = select::select(cfg).context("nothing was copied")?;
    let chosen = engine::choose(cfg).context("nothing was copied")?;
    let reporter = report::github::for_run(cfg, &plan).context("nothing was copied")?;
    reporter.note(&format!(
        "engine: {} ({})",
        chosen.backend.name(),
        chosen.reason
    ));
    if cfg.dry_run {
        reporter.planned(chosen.backend.name());
        return Ok(ExitCode::SUCCESS);
    }
    let summary = engine::execute(
        &plan,
        chosen.backend.as_ref(),
        cfg.fsync,
        reporter.as_sink(),
        signal::flag(),
    );
    reporter.finish(&summary);
    Ok(exit_code(&summary))
}

/// A directory tree into a new out-dir: the walk fills the plan while the engine copies it.
fn run_streamed(
    cfg: &cargo_fastcp::Config,
    streamed: &select::Streamed<'_>,
) -> anyhow::Result<ExitCode> {
    let plan = &streamed.plan;
    let chosen = engine::choose(cfg).context("nothing was copied")?;
    let reporter = report::github::for_run(cfg, plan).context("nothing was copied")?;
    reporter.note(&format!(
        "engine: {} ({}); copying while the walk runs",
        chosen.backend.name(),
        chosen.reason
    ));
    let (mut summary, walked) = std::thread::scope(|s| {
        let walker = s.spawn(|| streamed.walk(signal::flag()));
        let summary = engine::execute(
            plan,
            chosen.backend.as_ref(),
            cfg.fsync,
            reporter.as_sink(),
            signal::flag(),
        );
        let walked = walker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (summary, walked)
    });
    let unread = match walked {
        // Nothing matched, or the walk could not start: nothing was published, so nothing
        // was written, as for a complete plan.
        Err(e) if plan.jobs.is_empty() => {
            return Err(anyhow::Error::new(e).context("nothing was copied"))
        }
        Err(e) => vec![e],
        Ok(unread) => unread,
    };
    summary.errors += unread.len();
    for e in unread {
        reporter.as_sink().event(engine::Event::Failed {
            index: usize::MAX,
            error: cargo_fastcp::CopyError::Unwalked(e),
        });
    }
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
