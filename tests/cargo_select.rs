//! Selection asks cargo: its configuration (build.target, CARGO_BUILD_TARGET, custom profiles,
//! --config), required features, examples, colliding names and stale artifacts, each on real
//! builds of `tests/fixtures/cargo-ws`.
mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use common::{assert_copies, assert_tree, cargo_build, copy_tree, host_triple, Run, BIN};

/// Environment variables that would point cargo or the binary elsewhere than the fixture says.
const SCRUBBED: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
];

fn fixture_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-ws")
}

/// The fixture, built once per test binary and read-only afterwards: `--features extra`
/// (so `target/debug/extra` exists, as after an earlier feature build), `--examples`, and the
/// custom profile `ship` from `.cargo/config.toml`. Its target dir persists between runs (the
/// sources keep their mtimes), so a re-run builds nothing.
fn template() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fastcp-cargo-ws");
        if dir.exists() {
            for entry in fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_name() != "target" {
                    let p = entry.path();
                    if entry.file_type().unwrap().is_dir() {
                        fs::remove_dir_all(p).unwrap();
                    } else {
                        fs::remove_file(p).unwrap();
                    }
                }
            }
        }
        copy_tree(&fixture_src(), &dir, &|_| false).unwrap();
        cargo_build(&dir, &["--features", "extra"]);
        cargo_build(&dir, &["--examples"]);
        cargo_build(&dir, &["--profile", "ship"]);
        dir
    })
}

/// A private, unbuilt copy of the fixture.
fn private() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("fastcp-cargo-")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("ws");
    copy_tree(&fixture_src(), &root, &|_| false).unwrap();
    (tmp, root)
}

/// Runs the binary as `cargo fastcp <args>` in `dir` with `env` set.
fn fastcp<S: AsRef<OsStr>>(dir: &Path, env: &[(&str, &str)], args: &[S]) -> Run {
    let mut cmd = assert_cmd::Command::new(BIN);
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120))
        .arg("fastcp")
        .args(args);
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from_cmd(&mut cmd, args)
}

/// `cargo build --offline --quiet <args>` in `dir` with `env` set.
fn cargo_with_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--offline", "--quiet"])
        .args(args);
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo build {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Appends `[build]` with `line` to the workspace's `.cargo/config.toml`.
fn add_build_config(ws: &Path, line: &str) {
    let config = ws.join(".cargo/config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[build]\n{line}\n"));
    fs::write(&config, text).unwrap();
}

fn out_of(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    tmp.path().join("out").join(name)
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fastcp-out-")
        .tempdir()
        .unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[track_caller]
fn assert_not_exists(p: &Path) {
    assert!(!p.exists(), "{} should not exist", p.display());
}

#[test]
fn bins_whose_required_features_are_off_are_not_staged() {
    let ws = template();
    let tmp = scratch();
    let debug = ws.join("target/debug");
    // An earlier `--features extra` build left `extra` in target/: cargo would not build it
    // now, so it is not staged.
    assert!(debug.join("extra").exists(), "the fixture build made extra");
    let out = out_of(&tmp, "default");
    let run = fastcp(ws, &[], &["-v", "-o", &s(&out)]);
    run.success()
        .stderr_has("bin `extra` of package `app`")
        .stderr_has("requires the features extra");
    assert_tree(&out, &["app", "libplugin.so"]);
    assert_copies(&debug, &out, &["app", "libplugin.so"]);

    for flags in [
        &["--features", "extra"][..],
        &["--all-features"],
        &["-F", "app/extra"],
    ] {
        let out = out_of(&tmp, &format!("with-{}", flags.join("-").replace('/', "_")));
        let mut args = vec!["-o".to_string(), s(&out)];
        args.extend(flags.iter().map(|f| f.to_string()));
        fastcp(ws, &[], &args).success();
        assert_tree(&out, &["app", "extra", "libplugin.so"]);
        assert_copies(&debug, &out, &["app", "extra", "libplugin.so"]);
    }
}

#[test]
fn asking_for_a_bin_whose_features_are_off_names_them() {
    let ws = template();
    let tmp = scratch();
    let out = out_of(&tmp, "named");
    fastcp(ws, &[], &["--bin", "extra", "-o", &s(&out)])
        .code(2)
        .stderr_has("bin `extra` of package `app`")
        .stderr_has("requires the features extra")
        .stderr_has("--features extra");
    assert_not_exists(&out);
    fastcp(
        ws,
        &[],
        &["--bin", "extra", "--features", "extra", "-o", &s(&out)],
    )
    .success();
    assert_tree(&out, &["extra"]);
}

/// What real `cargo build <args>` says before building (its `error: …` and following lines).
fn cargo_refusal(ws: &Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(common::real_cargo());
    cmd.current_dir(ws).args(["build", "--offline"]).args(args);
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    let out = cmd.env("CARGO_TERM_COLOR", "never").output().unwrap();
    assert!(
        !out.status.success(),
        "cargo build {args:?} was expected to refuse"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let at = stderr.find("error: ").expect("cargo printed an error");
    stderr[at + "error: ".len()..].trim_end().to_string()
}

#[test]
fn a_feature_no_selected_package_has_is_refused_in_cargos_words() {
    let ws = template();
    let tmp = scratch();
    for args in [
        &["--features", "nope"][..],
        &["--features", "nope,zz"],
        &["-p", "plugin", "--features", "nope"],
        &["-p", "plugin", "--features", "app/extra"],
    ] {
        let cargo_says = cargo_refusal(ws, args);
        let out = out_of(&tmp, "refused");
        let mut ours: Vec<&str> = args.to_vec();
        ours.extend(["-o", out.to_str().unwrap()]);
        fastcp(ws, &[], &ours).code(2).stderr_has(&cargo_says);
        assert_not_exists(&out);
    }
    // Known features, of a package or of one of its dependencies, pass as before.
    let out = out_of(&tmp, "known");
    fastcp(ws, &[], &["--features", "extra,app/extra", "-o", &s(&out)]).success();
    assert_tree(&out, &["app", "extra", "libplugin.so"]);
}

#[test]
fn a_cdylib_example_is_staged_only_when_asked_for() {
    let ws = template();
    let tmp = scratch();
    let examples = ws.join("target/debug/examples");
    assert!(
        examples.join("libex_ffi.so").exists(),
        "the fixture build made it"
    );
    let out = out_of(&tmp, "default");
    fastcp(ws, &[], &["-o", &s(&out)]).success();
    assert_tree(&out, &["app", "libplugin.so"]);
    let out = out_of(&tmp, "asked");
    fastcp(ws, &[], &["--example", "ex_ffi", "-o", &s(&out)]).success();
    assert_tree(&out, &["libex_ffi.so"]);
    assert_copies(&examples, &out, &["libex_ffi.so"]);
}

#[test]
fn dep_info_files_are_staged_only_with_dep_info() {
    let ws = template();
    let tmp = scratch();
    let debug = ws.join("target/debug");
    assert!(debug.join("app.d").exists(), "cargo wrote app's dep-info");
    let out = out_of(&tmp, "default");
    fastcp(ws, &[], &["-o", &s(&out)]).success();
    assert_tree(&out, &["app", "libplugin.so"]);

    let out = out_of(&tmp, "asked");
    let run = fastcp(
        ws,
        &[],
        &["--dep-info", "--message-format", "json", "-o", &s(&out)],
    );
    run.success();
    let staged = ["app", "app.d", "libplugin.d", "libplugin.so"];
    assert_tree(&out, &staged);
    assert_copies(&debug, &out, &staged);
    // JSON names the kind of file.
    let kind_of = |name: &str| {
        let dst = s(&out.join(name));
        let line = run.json().into_iter().find(|l| l["dst"] == dst.as_str());
        line.map(|l| l["kind"].to_string())
    };
    assert_eq!(kind_of("app.d").as_deref(), Some("\"dep-info\""));
    assert_eq!(kind_of("app").as_deref(), Some("\"bin\""));

    // A target dir holding the artifact without its dep-info: an error naming the missing
    // file, as a missing artifact's is, and nothing written.
    let bare = tmp.path().join("bare");
    fs::create_dir_all(bare.join("debug")).unwrap();
    fs::copy(debug.join("app"), bare.join("debug/app")).unwrap();
    let out = out_of(&tmp, "missing");
    let args = [
        "--bin",
        "app",
        "--dep-info",
        "--target-dir",
        &s(&bare),
        "-o",
        &s(&out),
    ];
    fastcp(ws, &[], &args)
        .code(2)
        .stderr_has(&s(&bare.join("debug/app.d")));
    assert_not_exists(&out);
}

#[test]
fn a_custom_profile_from_cargo_config_reads_its_directory() {
    let ws = template();
    let tmp = scratch();
    let out = out_of(&tmp, "ship");
    fastcp(ws, &[], &["--profile", "ship", "-o", &s(&out)]).success();
    assert_tree(&out, &["app", "libplugin.so"]);
    assert_copies(&ws.join("target/ship"), &out, &["app", "libplugin.so"]);
}

#[test]
fn two_members_with_one_bin_name_are_an_error_naming_both() {
    let ws = template();
    let tmp = scratch();
    let out = out_of(&tmp, "all");
    let run = fastcp(ws, &[], &["--workspace", "-o", &s(&out)]);
    run.code(2)
        .stderr_has("bin `app` of package `app`")
        .stderr_has("bin `app` of package `other`")
        .stderr_has("app/src/main.rs")
        .stderr_has("other/src/main.rs");
    assert_not_exists(&out);
}

#[test]
fn the_build_target_comes_from_cargo_config_env_and_config_flag() {
    let (tmp, ws) = private();
    let host = host_triple();
    // v1 for the host without --target; v2 for the same triple by CARGO_BUILD_TARGET, into
    // target/<triple>/debug. Staging must take v2 wherever cargo's configuration names it.
    cargo_build(&ws, &[] as &[&str]);
    let main = ws.join("app/src/main.rs");
    let v2 = fs::read_to_string(&main).unwrap().replace("v1", "v2");
    fs::write(&main, v2).unwrap();
    cargo_with_env(&ws, &[("CARGO_BUILD_TARGET", host)], &[]);
    let triple_dir = ws.join("target").join(host).join("debug");
    assert_ne!(
        fs::read(triple_dir.join("app")).unwrap(),
        fs::read(ws.join("target/debug/app")).unwrap(),
        "v1 and v2 differ"
    );

    let out = out_of(&tmp, "env");
    fastcp(&ws, &[("CARGO_BUILD_TARGET", host)], &["-o", &s(&out)]).success();
    assert_tree(&out, &["app", "libplugin.so"]);
    assert_copies(&triple_dir, &out, &["app", "libplugin.so"]);

    let out = out_of(&tmp, "flag");
    let flag = format!("build.target=\"{host}\"");
    fastcp(&ws, &[], &["--config", &flag, "-o", &s(&out)]).success();
    assert_copies(&triple_dir, &out, &["app", "libplugin.so"]);

    add_build_config(&ws, &format!("target = [\"{host}\"]"));
    // Config files are read from the working directory upward, as cargo reads them (and in a
    // member's directory, cargo selects that member).
    let out = out_of(&tmp, "config");
    fastcp(&ws.join("app"), &[], &["-o", &s(&out)]).success();
    assert_tree(&out, &["app"]);
    assert_copies(&triple_dir, &out, &["app"]);

    // The same triple twice is one layout: flat, not nested in out/<triple>/.
    let out = out_of(&tmp, "twice");
    fastcp(
        &ws,
        &[],
        &["--target", host, "--target", host, "-o", &s(&out)],
    )
    .success();
    assert_tree(&out, &["app", "libplugin.so"]);

    // A custom target spec builds into target/<file stem>/.
    let spec_dir = ws.join("target/my-os/debug");
    fs::create_dir_all(&spec_dir).unwrap();
    for f in ["app", "libplugin.so"] {
        common::copy_file_preserving(&triple_dir.join(f), &spec_dir.join(f)).unwrap();
    }
    let out = out_of(&tmp, "spec");
    fastcp(&ws, &[], &["--target", "specs/my-os.json", "-o", &s(&out)]).success();
    assert_tree(&out, &["app", "libplugin.so"]);
    assert_copies(&spec_dir, &out, &["app", "libplugin.so"]);
}

#[test]
fn the_target_dir_comes_from_cargo_config_env_and_config_flag() {
    // An unbuilt copy whose configuration points at the built template's target dir: by the
    // environment, by --config, then by its own .cargo/config.toml.
    let (tmp, ws) = private();
    let target = s(&template().join("target"));
    let quoted = format!("{target:?}");
    let flag = format!("build.target-dir={quoted}");
    let cases = [
        (
            "env",
            Some(("CARGO_BUILD_TARGET_DIR", target.as_str())),
            None,
        ),
        ("flag", None, Some(flag.as_str())),
        ("config", None, None),
    ];
    for (name, env, config_flag) in cases {
        if name == "config" {
            add_build_config(&ws, &format!("target-dir = {quoted}"));
        }
        let out = out_of(&tmp, name);
        let mut args = vec!["-o".to_string(), s(&out)];
        if let Some(f) = config_flag {
            args.extend(["--config".to_string(), f.to_string()]);
        }
        fastcp(&ws, env.as_slice(), &args).success();
        assert_tree(&out, &["app", "libplugin.so"]);
        let debug = template().join("target/debug");
        assert_copies(&debug, &out, &["app", "libplugin.so"]);
    }
    assert_not_exists(&ws.join("target"));
}

#[test]
fn an_artifact_older_than_its_sources_is_said_and_refused_with_require_fresh() {
    let (tmp, ws) = private();
    // `plugin` depends on a crate beside the workspace, by path: cargo judges its sources by
    // mtime as it judges the workspace's.
    let shared = tmp.path().join("shared");
    fs::create_dir_all(shared.join("src")).unwrap();
    fs::write(
        shared.join("Cargo.toml"),
        "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    fs::write(shared.join("src/lib.rs"), "pub fn n() -> u32 { 1 }\n").unwrap();
    let manifest = ws.join("plugin/Cargo.toml");
    let mut text = fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[dependencies]\nshared = { path = \"../../shared\" }\n");
    fs::write(&manifest, text).unwrap();
    cargo_build(&ws, &[] as &[&str]);
    // A source outside the workspace (a registry crate's, say) is judged by cargo by its
    // version, not its mtime: a newer one makes nothing stale.
    let later = SystemTime::now() + Duration::from_secs(60);
    let outside = tmp.path().join("registry-src.rs");
    fs::write(&outside, "// not ours\n").unwrap();
    set_modified(&outside, later);
    let dep_info = ws.join("target/debug/app.d");
    let mut text = fs::read_to_string(&dep_info).unwrap();
    let first_line_end = text.find('\n').unwrap();
    text.insert_str(first_line_end, &format!(" {}", outside.display()));
    fs::write(&dep_info, text).unwrap();
    let out = out_of(&tmp, "fresh");
    fastcp(&ws, &[], &["-o", &s(&out)])
        .success()
        .stderr_empty_of_warnings();

    // The proc-macro dependency's source counts too: it is in app's dep-info.
    let src = ws.join("derive/src/lib.rs");
    set_modified(&src, later);
    let out = out_of(&tmp, "stale");
    fastcp(&ws, &[], &["-o", &s(&out)]).success().stderr_has(
        "warning: target/debug/app is older than derive/src/lib.rs; run cargo build or use --build",
    );
    assert_tree(&out, &["app", "libplugin.so"]);

    let out = out_of(&tmp, "refused");
    fastcp(&ws, &[], &["--require-fresh", "-o", &s(&out)])
        .code(2)
        .stderr_has("target/debug/app is older than derive/src/lib.rs");
    assert_not_exists(&out);

    let lib = shared.join("src/lib.rs");
    set_modified(&lib, later);
    let out = out_of(&tmp, "path-dep");
    fastcp(&ws, &[], &["-o", &s(&out)])
        .success()
        .stderr_has(&format!(
            "warning: target/debug/libplugin.so is older than {}",
            lib.display()
        ));
}

/// Gives `path` the modification time `when`.
fn set_modified(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

trait NoWarnings {
    fn stderr_empty_of_warnings(&self) -> &Self;
}

impl NoWarnings for Run {
    #[track_caller]
    fn stderr_empty_of_warnings(&self) -> &Self {
        assert!(
            !self.stderr.contains("warning:"),
            "no warning expected:\n{}",
            self.stderr
        );
        self
    }
}

#[test]
fn the_build_it_with_hint_is_a_command_that_works() {
    let (tmp, ws) = private();
    let host = host_triple();
    let out = out_of(&tmp, "dist");
    // Unbuilt: the hint must carry the profile (from config), the target, the target dir, the
    // features the bin requires, and `app@0.1.0`, since the lock file also holds a vendored
    // package named `app`.
    let args = [
        "--profile",
        "ship",
        "--target",
        host,
        "--target-dir",
        "elsewhere",
        "--bin",
        "extra",
        "--features",
        "extra",
        "-o",
        &s(&out),
    ];
    let run = fastcp(&ws, &[], &args);
    run.code(2).stderr_has("-p app@0.1.0 --bin extra");
    let hint = run
        .stderr
        .split("(build it with `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no hint in:\n{}", run.stderr));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{hint} --offline --quiet"))
        .current_dir(&ws)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap();
    assert!(status.success(), "the hint failed: {hint}");
    fastcp(&ws, &[], &args).success();
    assert_tree(&out, &["extra"]);
    assert_copies(
        &ws.join("elsewhere").join(host).join("ship"),
        &out,
        &["extra"],
    );
}
