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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cfg: &cargo_fastcp::Config) -> anyhow::Result<ExitCode> {
    let plan = select::select(cfg).context("nothing was copied")?;
    let chosen = engine::choose(cfg).context("nothing was copied")?;
    let reporter = report::new(cfg.output, cfg.verbose, &plan);
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
    Ok(if summary.interrupted {
        ExitCode::from(128 + signal::received().unwrap_or(2) as u8)
    } else if summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
