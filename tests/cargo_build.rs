//! `--build`: the real `cargo build` on `tests/fixtures/cargo-ws` (a build script, a proc-macro
//! dependency, a cdylib, a bin behind a feature), its artifacts staged as cargo reports them,
//! and a failed build that leaves the out-dir as it was.
mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_same_file, assert_tree, copy_tree, names, Run, BIN};

/// A private, unbuilt copy of the fixture, and a scratch directory beside it for out-dirs.
fn private() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("fastcp-build-")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("ws");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-ws");
    copy_tree(&src, &root, &|_| false).unwrap();
    (tmp, root)
}

/// `cargo fastcp <args>` in `dir`, cargo offline.
fn fastcp<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Run {
    fastcp_with(dir, &[], args)
}

/// [`fastcp`] with `env` set.
fn fastcp_with<S: AsRef<OsStr>>(dir: &Path, env: &[(&str, &OsStr)], args: &[S]) -> Run {
    let mut cmd = assert_cmd::Command::new(BIN);
    cmd.envs(env.iter().copied());
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .timeout(Duration::from_secs(300))
        .arg("fastcp")
        .args(args);
    Run::from_cmd(&mut cmd, args)
}

/// What a staged binary prints.
fn output_of(bin: &Path) -> String {
    let out = Command::new(bin).output().unwrap();
    assert!(out.status.success(), "{} failed", bin.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", file.display());
    fs::write(file, text.replace(from, to)).unwrap();
}

#[test]
fn build_stages_what_cargo_built_and_only_the_selected_artifacts() {
    let (tmp, ws) = private();
    let out = tmp.path().join("dist");
    let debug = ws.join("target/debug");

    // --dry-run: says what it would build and stage; builds and writes nothing.
    fastcp(&ws, &["--build", "--dry-run", "-o", &s(&out)])
        .success()
        .stderr_has("would run: cargo build --message-format=json-render-diagnostics")
        .output_has("dist/app");
    assert!(!out.exists() && !debug.join("app").exists());

    // One workspace, one target dir for the whole sequence: each build is incremental.
    fastcp(&ws, &["--build", "-o", &s(&out)])
        .success()
        .stderr_has("Compiling app");
    // Not the build script, the proc-macro, the feature-gated bin or any dependency file.
    assert_tree(&out, &["app", "libplugin.so"]);
    assert_same_file(&debug.join("app"), &out.join("app"));
    assert_same_file(&debug.join("libplugin.so"), &out.join("libplugin.so"));
    assert_eq!(output_of(&out.join("app")), "hello v1 42");
    assert_eq!(names(tmp.path()), ["dist", "ws"], "no staging dir is left");

    edit(&ws.join("app/src/main.rs"), "v1", "v2");
    fastcp(&ws, &["--build", "-o", &s(&out)]).success();
    assert_eq!(output_of(&out.join("app")), "hello v2 42");
    assert_same_file(&debug.join("app"), &out.join("app"));

    // --dep-info: each artifact's `.d`, which cargo names in no message and writes after the
    // artifact's, as this rebuild left it.
    let with_d = tmp.path().join("dep-info");
    let args = ["--build", "--dep-info", "-o", &s(&with_d)];
    fastcp(
        &ws,
        &["--dry-run"]
            .iter()
            .chain(&args)
            .copied()
            .collect::<Vec<_>>(),
    )
    .success()
    .output_has("dep-info/app.d");
    edit(&ws.join("app/src/main.rs"), "v2", "v3");
    fastcp(&ws, &args).success().stderr_has("Compiling app");
    let staged = ["app", "app.d", "libplugin.d", "libplugin.so"];
    assert_tree(&with_d, &staged);
    for f in staged {
        assert_same_file(&debug.join(f), &with_d.join(f));
    }
    assert_eq!(output_of(&with_d.join("app")), "hello v3 42");

    // The selection flags reach cargo: features, examples, packages.
    let out = tmp.path().join("extra");
    fastcp(
        &ws,
        &["--build", "--features", "extra", "--bins", "-o", &s(&out)],
    )
    .success();
    assert_tree(&out, &["app", "extra"]);
    assert_eq!(output_of(&out.join("extra")), "extra");
    let out = tmp.path().join("example");
    fastcp(&ws, &["--build", "--example", "ex_ffi", "-o", &s(&out)]).success();
    assert_tree(&out, &["libex_ffi.so"]);
    assert_same_file(
        &debug.join("examples/libex_ffi.so"),
        &out.join("libex_ffi.so"),
    );
    let out = tmp.path().join("macro");
    fastcp(&ws, &["--build", "-p", "derive", "--lib", "-o", &s(&out)]).success();
    assert_tree(&out, &["libderive.so"]);
}

#[test]
fn a_failed_build_exits_as_cargo_did_and_leaves_the_out_dir_as_it_was() {
    let (tmp, ws) = private();
    let out = tmp.path().join("dist");
    let build = ["--build", "--features", "extra", "-o", &s(&out)];
    fastcp(&ws, &build).success();
    assert_tree(&out, &["app", "extra", "libplugin.so"]);
    fs::write(out.join("notes.txt"), "kept\n").unwrap();
    let before: Vec<(String, Vec<u8>)> = names(&out)
        .into_iter()
        .map(|n| (n.clone(), fs::read(out.join(&n)).unwrap()))
        .collect();

    // Only `extra` breaks: cargo reports `app` and `libplugin.so` (fresh) first, so they are
    // fed to the engine and copied before cargo fails; none of them may be placed.
    edit(
        &ws.join("app/src/bin/extra.rs"),
        "fn main() {",
        "fn main() { let _x: u32 = \"no\";",
    );
    let run = fastcp(&ws, &build);
    // What cargo itself exits with on this workspace.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let direct = Command::new(cargo)
        .current_dir(&ws)
        .args(["build", "--offline", "--quiet", "--features", "extra"])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(!direct.status.success());
    run.code(direct.status.code().unwrap())
        .stderr_has("error[E0308]")
        .stderr_has("nothing was copied");
    let after: Vec<(String, Vec<u8>)> = names(&out)
        .into_iter()
        .map(|n| (n.clone(), fs::read(out.join(&n)).unwrap()))
        .collect();
    assert!(before == after, "the out-dir changed");
    assert_eq!(names(tmp.path()), ["dist", "ws"], "no staging dir is left");
}

#[test]
fn the_readme_quick_start_builds_and_stages_the_demo_workspace() {
    // The README's first command, on a copy of the demo workspace: artifacts and PATTERN files.
    let env = common::TestEnv::fixture(common::Fixture::Demo);
    let out = env.out("dist");
    env.run(&[
        "--build",
        "--release",
        "--offline",
        "-o",
        &s(&out),
        "README.md",
        "assets/**",
    ])
    .success();
    common::assert_demo_quick_start(&env, &out);
}

#[test]
fn an_expected_artifact_cargo_never_reports_fails_the_run_and_places_nothing() {
    let (tmp, ws) = private();
    let out = tmp.path().join("dist");
    // Without split debug info no `.dwp` is written or reported: said, as without --build.
    fastcp(&ws, &["--build", "--debug-files", "-o", &s(&out)])
        .success()
        .stderr_has("warning: no debug info file")
        .stderr_has("app.dwp");
    assert_tree(&out, &["app", "libplugin.so"]);

    // The real cargo, behind a wrapper that drops `--features`: the build succeeds without the
    // feature-gated bin the selection expects, as when a naming rule or a feature resolution
    // disagrees with cargo's. Staging the rest and exiting 0 would ship an incomplete bundle.
    let wrapper = tmp.path().join("cargo-without-features");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nskip=0\nfor a do\n  shift\n  if [ $skip = 1 ]; then skip=0; continue; fi\n  \
             if [ \"$a\" = --features ]; then skip=1; continue; fi\n  set -- \"$@\" \"$a\"\ndone\n\
             exec '{}' \"$@\"\n",
            common::real_cargo().display()
        ),
    )
    .unwrap();
    common::set_mode(&wrapper, 0o755);
    let args = ["--build", "--features", "extra", "-o", &s(&out)];
    fastcp_with(&ws, &[("CARGO", wrapper.as_os_str())], &args)
        .code(2)
        .stderr_has("succeeded but never reported")
        .stderr_has(&format!(
            "{} (target `extra` of package `app`)",
            ws.join("target/debug/extra").display()
        ))
        .stderr_has("nothing was copied");
    assert_tree(&out, &["app", "libplugin.so"]);
    assert_eq!(
        names(tmp.path()),
        ["cargo-without-features", "dist", "ws"],
        "no staging dir is left"
    );
}

#[test]
fn a_selection_error_stops_the_run_before_cargo_builds_anything() {
    let (tmp, ws) = private();
    let out = tmp.path().join("dist");
    // Two members with a bin `app`: refused from cargo metadata, naming both sources.
    fastcp(&ws, &["--build", "--workspace", "-o", &s(&out)])
        .code(2)
        .stderr_has("bin `app` of package `app`")
        .stderr_has("bin `app` of package `other`");
    // A bin whose required features are off, asked for by name: the error names them.
    fastcp(&ws, &["--build", "--bin", "extra", "-o", &s(&out)])
        .code(2)
        .stderr_has("requires the features extra");
    assert!(!ws.join("target").exists(), "cargo built something");
    assert_eq!(names(tmp.path()), ["ws"], "nothing was written");
}
