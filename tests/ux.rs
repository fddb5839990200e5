//! "Feels like cargo" (issue 15): progress in a real pseudo-terminal, cargo-styled diagnostics,
//! cargo's selection habits, one error for one cause, and the JSON fields scripts rely on. Every
//! test runs the real binary.
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// progress, read frame by frame from a pseudo-terminal
// ---------------------------------------------------------------------------------------------

/// A tree large enough that the copy takes a while even on a fast machine: many small files (the
/// walk takes time) and a few large ones (the copy does).
fn progress_tree(root: &Path) -> PathBuf {
    let src = root.join("tree");
    let block: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    for d in 0..40 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..60 {
            fs::write(dir.join(format!("f{f:02}")), &block).unwrap();
        }
    }
    let big: Vec<u8> = block.iter().copied().cycle().take(16 << 20).collect();
    for i in 0..3 {
        fs::write(src.join(format!("big{i}")), &big).unwrap();
    }
    src
}

/// Single-quotes `a` for `sh`.
fn sh_quote(a: &str) -> String {
    format!("'{}'", a.replace('\'', r"'\''"))
}

/// Runs the binary with stderr on a pseudo-terminal `cols` columns wide (util-linux `script`)
/// and returns everything the terminal received.
fn in_pty(cwd: &Path, cols: u16, args: &[&str]) -> (i32, String) {
    let mut line = format!("stty cols {cols} rows 30 && exec {}", sh_quote(BIN));
    for a in args {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .env_remove("CARGO_TERM_COLOR")
        .env_remove("COLUMNS")
        .env("TERM", "xterm-256color")
        .output()
        .expect("run `script` (util-linux) to get a pseudo-terminal");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Removes ANSI escape sequences (CSI and OSC) from terminal output.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                for c in chars.by_ref() {
                    if c == '\x07' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The progress frames the terminal showed: every carriage-return/newline separated piece that
/// is not an ordinary log line.
fn frames(raw: &str) -> Vec<String> {
    strip_ansi(raw)
        .split(['\r', '\n'])
        .map(|f| f.trim_end().to_string())
        .filter(|f| !f.is_empty())
        .filter(|f| {
            !f.starts_with("Copied ") && !f.starts_with("error") && !f.starts_with("warning")
        })
        .collect()
}

/// The total a frame shows: files found so far (counter) or files in the plan (bar).
fn frame_total(frame: &str) -> Option<u64> {
    let digits = |s: &str| -> Option<u64> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse().ok()
    };
    if let Some(i) = frame.find("found ") {
        return digits(&frame[i + 6..]);
    }
    // `copied/total`, the first fraction of the line
    let slash = frame.find('/')?;
    let before = frame[..slash]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .count();
    (before > 0).then(|| digits(&frame[slash + 1..])).flatten()
}

/// Whether a frame shows a size (`0 B`, `20.1 MiB/48.4 MiB`, `(3.0 KiB)`).
fn shows_bytes(frame: &str) -> bool {
    let words: Vec<&str> = frame.split_whitespace().collect();
    words.windows(2).any(|w| {
        let number = w[0].rsplit(['/', '(']).next().unwrap_or_default();
        let unit = w[1].trim_end_matches([')', ',', '+']);
        let unit = unit.split('/').next().unwrap_or_default();
        number.parse::<f64>().is_ok() && ["B", "KiB", "MiB", "GiB", "TiB"].contains(&unit)
    })
}

fn is_bar(frame: &str) -> bool {
    frame.contains('[') && frame.contains(']')
}

#[track_caller]
fn check_frames(raw: &str, cols: u16) -> Vec<String> {
    let frames = frames(raw);
    assert!(!frames.is_empty(), "no progress frame at all:\n{raw:?}");
    for f in &frames {
        assert!(
            f.chars().count() <= usize::from(cols),
            "a {}-column frame would wrap ({} columns): {f:?}",
            cols,
            f.chars().count()
        );
    }
    // From 40 columns on, the bytes stay: the rate, header and ETA make room first.
    if cols >= 40 {
        for f in &frames {
            assert!(shows_bytes(f), "a {cols}-column frame without bytes: {f:?}");
        }
    }
    let totals: Vec<u64> = frames.iter().filter_map(|f| frame_total(f)).collect();
    assert!(!totals.is_empty(), "no frame shows a total: {frames:#?}");
    for w in totals.windows(2) {
        assert!(
            w[0] <= w[1],
            "the total went down ({} -> {}): {frames:#?}",
            w[0],
            w[1]
        );
    }
    // The bar keeps one length at one width: it does not shrink as the counts grow.
    let bar_ends: Vec<Option<usize>> = frames
        .iter()
        .filter(|f| is_bar(f))
        .map(|f| f.chars().position(|c| c == ']'))
        .collect();
    assert!(
        bar_ends.windows(2).all(|w| w[0] == w[1]),
        "the bar changed length ({bar_ends:?}): {frames:#?}"
    );
    // Once a bar is shown (the total is known), no counter comes back.
    if let Some(first_bar) = frames.iter().position(|f| is_bar(f)) {
        assert!(
            frames[first_bar..].iter().all(|f| !f.contains("found ")),
            "a counter after the bar: {frames:#?}"
        );
    }
    frames
}

/// Copies the progress tree with `--from SRC '**'` on a `cols`-wide terminal; returns the checked
/// frames and everything the terminal got. `complete`: into a non-empty out-dir, so the plan is
/// complete before the copy starts; else into a new one, so the walk streams into the copy.
fn progress_run(cols: u16, complete: bool) -> (Vec<String>, String) {
    let env = TestEnv::empty();
    let src = progress_tree(env.scratch());
    let out = env.out("copy");
    if complete {
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("keep"), "x").unwrap();
    }
    let args = ["--from", &s(&src), "-o", &s(&out), "**"];
    let (code, raw) = in_pty(env.root(), cols, &args);
    assert_eq!(code, 0, "{raw}");
    let plain = strip_ansi(&raw);
    let summary_size = plain
        .split("Copied 2403 files (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("summary line missing:\n{raw}"));
    let frames = check_frames(&raw, cols);
    // One size formatter: a bar wide enough to show bytes shows the summary's total, as written.
    // (Only a complete plan is sure to draw a bar: a streamed run may finish as its walk does.)
    if complete && cols >= 100 {
        let total = format!("/{summary_size},");
        assert!(
            frames.iter().any(|f| is_bar(f) && f.contains(&total)),
            "no bar frame shows the total {total:?}: {frames:#?}"
        );
    }
    (frames, raw)
}

fn progress_streamed(cols: u16) {
    let (frames, _) = progress_run(cols, false);
    // The walk is still running when the first frame is drawn: a counter, not a guessed bar.
    assert!(
        frames[0].contains("found ") || frames[0].contains('+'),
        "the first frame of a streamed copy is a counter: {frames:#?}"
    );
    // With room, the counter says it all: a spinner, files and bytes found and copied, elapsed.
    if cols >= 100 {
        let f = &frames[0];
        let words = [
            "Copying ",
            " found ",
            " files (",
            ") so far, copied ",
            " files (",
        ];
        let mut at = 0;
        for w in words {
            at += f[at..]
                .find(w)
                .unwrap_or_else(|| panic!("{w:?} missing in {f:?}"));
        }
        let elapsed = f.rsplit(", ").next().unwrap_or_default();
        assert!(
            elapsed.ends_with('s') && elapsed[..elapsed.len() - 1].parse::<u64>().is_ok(),
            "no elapsed time at the end of {f:?}"
        );
    }
}

fn progress_planned(cols: u16) {
    let (frames, _) = progress_run(cols, true);
    assert!(
        frames.iter().all(|f| is_bar(f) && !f.contains("found ")),
        "a complete plan shows only the bar: {frames:#?}"
    );
    assert!(
        frames.iter().all(|f| frame_total(f) == Some(2403)),
        "every frame shows the final total: {frames:#?}"
    );
    if cols >= 50 {
        assert!(frames.iter().all(|f| f.contains("ETA")), "{frames:#?}");
    }
}

#[test]
fn progress_streamed_fits_40_columns() {
    progress_streamed(40);
}

#[test]
fn progress_streamed_fits_60_columns() {
    progress_streamed(60);
}

#[test]
fn progress_streamed_fits_160_columns() {
    progress_streamed(160);
}

#[test]
fn progress_planned_fits_24_columns() {
    progress_planned(24);
}

#[test]
fn progress_planned_fits_40_columns() {
    progress_planned(40);
}

#[test]
fn progress_planned_fits_60_columns() {
    progress_planned(60);
}

#[test]
fn progress_planned_fits_120_columns() {
    progress_planned(120);
}

#[test]
fn no_progress_without_a_terminal_or_with_quiet() {
    let env = TestEnv::empty();
    let src = progress_tree(env.scratch());
    let out = env.out("copy");
    let run = env.run(&["--from", &s(&src), "-o", &s(&out), "**"]);
    run.success();
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains("found "),
        "progress drawn to a pipe:\n{}",
        run.stderr
    );
    let out = env.out("quiet");
    let (code, raw) = in_pty(
        env.root(),
        80,
        &["-q", "--from", &s(&src), "-o", &s(&out), "**"],
    );
    assert_eq!(code, 0, "{raw}");
    assert_eq!(strip_ansi(&raw).trim(), "", "-q prints nothing on success");
}

// ---------------------------------------------------------------------------------------------
// failures count files
// ---------------------------------------------------------------------------------------------

#[test]
fn failures_count_files_not_directories() {
    let env = TestEnv::empty();
    let src = env.scratch().join("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/x"), "x").unwrap();
    fs::write(src.join("a/y"), "y").unwrap();
    fs::write(src.join("b"), "b").unwrap();
    // A non-empty directory squats on the destination of `b`.
    let out = env.out("dist");
    fs::create_dir_all(out.join("b/keep")).unwrap();
    let run = env.run(&["--from", &s(&src), "-o", &s(&out), "**"]);
    run.code(1)
        .stderr_has("error: 1 of 3 files failed")
        .stderr_has("Copied 2 files");
    assert!(!run.stderr.contains("of 4 files"), "{}", run.stderr);
}

/// A directory where a file goes in an existing out-dir (full, or empty) is said as `cp` says
/// it, naming the final path, on every way a file is placed (an unnamed inode linked in, a named
/// temporary renamed, the ring's rename); the file fails, the directory stays, the rest is copied.
#[test]
fn a_directory_in_a_files_place_is_said_as_cp_says_it() {
    let env = TestEnv::empty();
    let src = env.scratch().join("src");
    fs::create_dir_all(&src).unwrap();
    for f in ["full", "empty", "fine"] {
        fs::write(src.join(f), f).unwrap();
    }
    let variants: [(&[&str], &str); 3] = [(&[], "0"), (&[], "1"), (&["--engine", "portable"], "0")];
    for (i, (extra, named)) in variants.into_iter().enumerate() {
        let out = env.out(&format!("dist{i}"));
        fs::create_dir_all(out.join("full/keep")).unwrap();
        fs::create_dir_all(out.join("empty")).unwrap();
        let mut args = vec!["--from", src.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend(extra);
        args.push("**");
        let mut cmd = env.fastcp();
        cmd.env("CARGO_FASTCP_NAMED_TEMPS", named).args(&args);
        let run = Run::from_cmd(&mut cmd, &args);
        let what = format!("{extra:?}, named temps {named}");
        run.code(1).stderr_has("error: 2 of 3 files failed");
        for d in ["full", "empty"] {
            let said = format!(
                "error: cannot overwrite directory {} with a file\n",
                s(&out.join(d))
            );
            assert!(
                run.stderr.contains(&said),
                "{what}: {said:?} in\n{}",
                run.stderr
            );
            assert!(out.join(d).is_dir(), "{what}");
        }
        assert!(
            !run.stderr.contains("rename into place"),
            "{what}: {}",
            run.stderr
        );
        assert_eq!(fs::read(out.join("fine")).unwrap(), b"fine", "{what}");
        assert!(out.join("full/keep").is_dir(), "{what}");
    }
}

#[test]
fn one_cause_for_many_files_is_said_once() {
    let env = TestEnv::empty();
    let src = env.scratch().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("d/f{i}")), "x").unwrap();
    }
    fs::write(src.join("top"), "t").unwrap();
    // A file stands where the directory `d` belongs: its five files fail for that one cause.
    let out = env.out("dist");
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("d"), "squat").unwrap();
    let args = ["--from", &s(&src), "-o", &s(&out), "**"];
    let run = env.run(&args);
    run.code(1)
        .stderr_has("error: 5 of 6 files failed, and 1 directory\n")
        .stderr_has("Copied 1 file ");
    assert_eq!(
        run.stderr.matches("cannot create directory").count(),
        1,
        "{}",
        run.stderr
    );
    // Scripts still get a line per file.
    let mut json = args.to_vec();
    json.extend(["--message-format", "json"]);
    let lines = env.run(&json).json();
    let failed = lines.iter().filter(|l| l["reason"] == "failed");
    let files = failed.filter(|l| l["src"].as_str().is_some_and(|p| p.contains("/d/f")));
    assert_eq!(files.count(), 5, "{lines:#?}");
}

#[test]
fn an_interrupt_is_one_error_not_one_per_file_in_flight() {
    let env = TestEnv::empty();
    let src = progress_tree(env.scratch());
    let out = env.out("copy");
    let mut cmd = bin_command(env.root());
    cmd.env("CARGO_TERM_COLOR", "never")
        .args(["--from", &s(&src), "-o", &s(&out), "**"]);
    let mut p = spawn(cmd);
    let start = std::time::Instant::now();
    while !out.exists() && !p.exited() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if p.exited() {
        let _ = p.wait();
        return skip(
            "an_interrupt_is_one_error",
            "the copy ended before it could be interrupted",
        );
    }
    send_signal(p.pid(), libc::SIGINT);
    let done = p.wait();
    if done.code() == Some(0) && done.stderr.starts_with("Copied ") {
        return skip(
            "an_interrupt_is_one_error",
            "the copy ended before the signal came",
        );
    }
    done.expect_code(130, "SIGINT");
    let said = done.stderr.lines().collect::<Vec<_>>();
    let once = said.len() == 1 && said[0].starts_with("error: interrupted: stopped after ");
    assert!(once, "one interrupted error, nothing per file: {said:#?}");
}

// ---------------------------------------------------------------------------------------------
// selection like cargo
// ---------------------------------------------------------------------------------------------

#[test]
fn quiet_and_verbose_together_are_refused() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "-q", "-v", "-o", &s(&out)])
        .code(2)
        .stderr_has("cannot set both --verbose and --quiet");
    assert!(!out.exists());
}

#[test]
fn all_is_an_alias_of_workspace() {
    let env = TestEnv::shared(Fixture::Ws);
    let a = env.run(&["--release", "--all", "--dry-run"]);
    a.success();
    let b = env.run(&["--release", "--workspace", "--dry-run"]);
    b.success();
    assert_eq!(a.stdout, b.stdout);
    assert!(a.stdout.contains("app-cli"), "{}", a.stdout);
}

#[test]
fn profile_dev_is_the_default_spelled_out() {
    let env = TestEnv::shared(Fixture::Single);
    let plain = env.run(&["--dry-run", "README.md"]);
    plain.success();
    let dev = env.run(&["--profile", "dev", "--dry-run", "README.md"]);
    dev.success();
    assert_eq!(plain.stdout, dev.stdout);
    assert!(
        plain.stdout.contains("Would copy 1 file"),
        "{}",
        plain.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// colour
// ---------------------------------------------------------------------------------------------

/// Runs with `CARGO_TERM_COLOR` set to `term_color` (the harness sets `never` and `NO_COLOR`).
fn run_with_term_color(env: &TestEnv, term_color: &str, args: &[&str]) -> Run {
    let mut cmd = env.fastcp();
    cmd.env("CARGO_TERM_COLOR", term_color).args(args);
    Run::from_cmd(&mut cmd, args)
}

#[test]
fn colour_follows_the_color_flag_then_cargo_term_color() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let o = s(&out);
    let red_error = "\x1b[1m\x1b[31merror:\x1b[0m";
    let cyan_help = "\x1b[1m\x1b[36mhelp:\x1b[0m";
    // clap's usage error, and one of ours with a help line
    let usage: &[&str] = &["--no-such-flag"];
    let runtime: &[&str] = &["--release", "-p", "app-clli", "-o", &o];
    // (--color, CARGO_TERM_COLOR, coloured): the flag wins over the environment, as in cargo
    let cases = [
        (Some("always"), "never", true),
        (Some("never"), "always", false),
        (None, "always", true),
        (None, "never", false),
    ];
    for (flag, term, coloured) in cases {
        for base in [usage, runtime] {
            let mut args: Vec<&str> = Vec::new();
            if let Some(f) = flag {
                args.extend(["--color", f]);
            }
            args.extend_from_slice(base);
            let run = run_with_term_color(&env, term, &args);
            run.code(2);
            let what = format!("{args:?} with CARGO_TERM_COLOR={term}: {:?}", run.stderr);
            assert_eq!(run.stderr.contains('\x1b'), coloured, "{what}");
            if base == runtime {
                let (error, help) = if coloured {
                    (red_error, cyan_help)
                } else {
                    ("error:", "help:")
                };
                assert!(run.stderr.starts_with(error), "{what}");
                assert!(run.stderr.contains(help), "{what}");
            }
        }
    }
    assert!(!out.exists());
}

#[test]
fn a_warning_is_yellow_when_colour_is_on() {
    // Built here: the dep-info of a copied build names the template's sources, not these.
    let env = TestEnv::fixture(Fixture::Single);
    env.build(&["--release"]);
    // A source newer than the binary built from it: the stale-artifact warning.
    set_mtime(&env.path("src/main.rs"), 4_000_000_000, 0);
    let yellow = "\x1b[1m\x1b[33mwarning:\x1b[0m";
    let cases = [
        (Some("always"), "never", true),
        (Some("never"), "always", false),
        (None, "always", true),
        (None, "never", false),
    ];
    for (i, (flag, term, coloured)) in cases.into_iter().enumerate() {
        let out = s(&env.out(&format!("dist{i}")));
        let mut args = vec!["--release", "-o", &out];
        if let Some(f) = flag {
            args.extend(["--color", f]);
        }
        let run = run_with_term_color(&env, term, &args);
        run.success().stderr_has("is older than");
        let what = format!("{args:?} with CARGO_TERM_COLOR={term}: {:?}", run.stderr);
        let warning = if coloured { yellow } else { "warning:" };
        assert!(run.stderr.starts_with(warning), "{what}");
        assert_eq!(run.stderr.contains('\x1b'), coloured, "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// errors with help, as cargo gives them
// ---------------------------------------------------------------------------------------------

#[test]
fn a_typo_gets_cargos_similar_name_help() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let o = s(&out);
    let cases: [(&[&str], &str); 4] = [
        (
            &["-p", "app-clli"],
            "help: a package with a similar name exists: `app-cli`",
        ),
        (
            &["--workspace", "--exclude", "ffi-cor"],
            "help: a package with a similar name exists: `ffi-core`",
        ),
        (
            &["--bin", "app-admn"],
            "help: a bin target with a similar name exists: `app-admin`",
        ),
        (
            &["--example", "demoo"],
            "help: an example target with a similar name exists: `demo`",
        ),
    ];
    for (flags, help) in cases {
        let mut args = vec!["--release", "-o", &o];
        args.extend_from_slice(flags);
        let run = env.run(&args);
        run.code(2).stderr_has(help);
        assert!(!out.exists());
    }
    // Nothing similar: no help line, the list of what exists instead.
    let run = env.run(&["--release", "-o", &o, "-p", "zzzzzzzz"]);
    run.code(2).stderr_has("app-cli, ffi-core");
    assert!(!run.stderr.contains("help:"), "{}", run.stderr);
}

#[test]
fn outside_any_workspace_is_cargos_one_line_error() {
    let env = TestEnv::empty();
    let out = env.out("dist");
    let run = env.run(&["--release", "-o", &s(&out)]);
    run.code(2)
        .stderr_has("could not find `Cargo.toml`")
        .stderr_has("or any parent directory");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert!(!run.stderr.contains("error: error"), "{:?}", run.stderr);
    assert!(!run.stderr.contains("`cargo metadata`"), "{:?}", run.stderr);
    assert_eq!(run.stderr.matches("error:").count(), 1, "{:?}", run.stderr);
    assert!(!out.exists());
}

#[test]
fn a_missing_artifact_hint_repeats_target_dir_target_and_profile() {
    let env = TestEnv::fixture(Fixture::Ws); // never built
    let tdir = env.scratch().join("elsewhere");
    let triple = host_triple();
    let run = env.run(&[
        "--profile",
        "dist",
        "--target",
        triple,
        "--target-dir",
        &s(&tdir),
        "-p",
        "ffi-core",
        "--crate-type",
        "cdylib",
        "-o",
        "dist",
    ]);
    run.code(2)
        .stderr_has(&format!("--target-dir {}", tdir.display()))
        .stderr_has(&format!("--target {triple}"))
        .stderr_has("--profile dist");
    assert!(!env.path("dist").exists());
}

// ---------------------------------------------------------------------------------------------
// glob specs
// ---------------------------------------------------------------------------------------------

fn planned_dsts(run: &Run) -> Vec<String> {
    let mut v: Vec<String> = run
        .json()
        .iter()
        .filter(|l| l["reason"] == "planned")
        .map(|l| {
            let d = l["dst"].as_str().unwrap();
            Path::new(d)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn glob_specs_select_like_cargo() {
    let env = TestEnv::shared(Fixture::Ws);
    let json = ["--release", "--dry-run", "--message-format", "json"];
    let with = |extra: &[&str]| {
        let mut a = json.to_vec();
        a.extend_from_slice(extra);
        let run = env.run(&a);
        run.success();
        planned_dsts(&run)
    };
    assert_eq!(with(&["-p", "app-*"]), with(&["-p", "app-cli"]));
    assert_eq!(with(&["-p", "ffi-*"]), ["libffi_core.a", "libffi_core.so"]);
    assert_eq!(
        with(&["--workspace", "--exclude", "app*"]),
        with(&["-p", "ffi-core"])
    );
    assert_eq!(with(&["--bin", "app-*"]), ["app-admin", "app-cli"]);
    assert_eq!(with(&["--bin", "*-admin"]), ["app-admin"]);
    assert_eq!(with(&["--example", "d?mo"]), ["demo"]);

    // A glob that matches nothing is an error naming what exists.
    let o = s(&env.out("dist"));
    for (flag, pat, what) in [
        ("-p", "zz*", "no package matches pattern `zz*`"),
        ("--bin", "zz*", "no bin target matches pattern `zz*`"),
        (
            "--example",
            "zz?",
            "no example target matches pattern `zz?`",
        ),
    ] {
        env.run(&["--release", "-o", &o, flag, pat])
            .code(2)
            .stderr_has(what)
            .stderr_has("available:");
    }
    env.run(&["--release", "-o", &o, "--workspace", "--exclude", "zz*"])
        .code(2)
        .stderr_has("no package matches pattern `zz*`");
    assert!(!env.out("dist").exists());
}

// ---------------------------------------------------------------------------------------------
// one error for one cause
// ---------------------------------------------------------------------------------------------

/// A read-only tmpfs at `dir` (root only; unmounted on drop).
fn read_only_dir(dir: &Path) -> Result<Tmpfs, String> {
    let fs = Tmpfs::mount(dir, "1m")?;
    let c = std::ffi::CString::new(s(dir)).unwrap();
    // SAFETY: valid C strings; remounting our own fresh tmpfs read-only.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "remount read-only: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(fs)
}

#[test]
fn an_out_dir_that_cannot_be_made_is_one_error_before_any_write() {
    let env = TestEnv::empty();
    let src = env.scratch().join("src");
    for d in 0..6 {
        for f in 0..10 {
            let p = src.join(format!("d{d}/f{f}"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
        }
    }
    let ro = env.scratch().join("ro");
    let _mount = match read_only_dir(&ro) {
        Ok(m) => m,
        Err(why) => return skip("an_out_dir_that_cannot_be_made", &why),
    };
    for out in [ro.join("new/out"), ro.clone()] {
        for extra in [&[][..], &["--message-format", "json"]] {
            let mut args = vec![
                "--from".to_string(),
                s(&src),
                "-o".into(),
                s(&out),
                "**".into(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            let run = env.run(&args);
            run.code(2)
                .stderr_has(&s(&out))
                .stderr_has("Read-only file system");
            assert_eq!(run.stderr.lines().count(), 1, "one error: {}", run.stderr);
        }
    }
    assert_eq!(tree(&ro), Vec::<String>::new());
}

/// An out-dir the up-front check lets through (root may write anywhere) but the filesystem
/// refuses when the run makes it: `/proc` takes no new directory. The same one error and exit 2
/// as the check gives, on both engines, with and without whole-tree staging, and in JSON an
/// `error` line and the summary, no line per file.
#[test]
fn an_out_dir_refused_only_when_made_is_one_error_and_exit_2() {
    if !is_root() {
        return skip(
            "an_out_dir_refused_only_when_made",
            "not root: the up-front check refuses /proc before the run tries",
        );
    }
    let env = TestEnv::empty();
    let src = env.scratch().join("src");
    for f in ["a", "d/b", "d/e/c"] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, f).unwrap();
    }
    let out = Path::new("/proc/fastcp-no-such-dir");
    let variants: [&[&str]; 4] = [
        &[],
        &["--tree-staging", "off"],
        &["--engine", "portable"],
        &["--engine", "portable", "--tree-staging", "off"],
    ];
    for extra in variants {
        let mut args = vec!["--from", src.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend(extra);
        args.push("**");
        let run = env.run(&args);
        run.code(2)
            .stderr_has("out-dir /proc/fastcp-no-such-dir: cannot create it: ");
        assert_eq!(run.stderr.lines().count(), 1, "{extra:?}: {}", run.stderr);
        assert!(!run.stderr.contains(".fastcp-"), "{}", run.stderr);
        args.extend(["--message-format", "json"]);
        let run = env.run(&args);
        run.code(2);
        let lines = run.json();
        let reasons: Vec<_> = lines.iter().map(|l| l["reason"].clone()).collect();
        assert_eq!(reasons, ["error", "summary"], "{extra:?}: {}", run.stdout);
        assert_eq!(lines[1]["errors"], 1, "{}", run.stdout);
    }
}

#[test]
fn exclude_glob_removing_the_only_match_says_so() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    let o = s(&out);
    env.run(&["-o", &o, "README.md", "--exclude-glob", "README.md"])
        .code(2)
        .stderr_has("pattern `README.md` matched only excluded files");
    env.run(&["-o", &o, "assets/**/*.json", "--exclude-glob", "**/*.json"])
        .code(2)
        .stderr_has("matched only excluded files");
    // Still "matched nothing" when nothing was there to exclude.
    env.run(&["-o", &o, "nothing*", "--exclude-glob", "*.json"])
        .code(2)
        .stderr_has("matched nothing");
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn json_dst_is_absolute_even_for_a_relative_out_dir() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let run = env.run(&[
        "--release",
        "-o",
        "dist",
        "--message-format",
        "json",
        "README.md",
    ]);
    run.success();
    let lines = run.json();
    let copied: Vec<_> = lines.iter().filter(|l| l["reason"] == "copied").collect();
    assert_eq!(copied.len(), 2, "{}", run.stdout);
    for l in copied {
        let dst = Path::new(l["dst"].as_str().unwrap());
        assert!(dst.is_absolute(), "dst is not absolute: {l}");
        assert!(dst.starts_with(env.path("dist")), "{l}");
        assert!(dst.is_file(), "{l}");
    }
}

#[test]
fn a_planning_error_is_a_json_line_then_the_summary() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    let run = env.run(&["-o", &s(&out), "--message-format", "json", "missing.txt"]);
    run.code(2).stderr_has("missing.txt");
    let lines = run.json();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert_eq!(lines[0]["reason"], "error");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("missing.txt"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["reason"], "summary");
    assert_eq!(lines[1]["errors"], 1);
    assert_eq!(lines[1]["files"], 0);
    assert!(!out.exists());
}
