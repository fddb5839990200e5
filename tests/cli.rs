//! End-to-end tests of the `cargo fastcp` CLI contract: real `cargo build` of the fixtures in
//! `tests/fixtures/`, the real binary, real files. No mocks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use predicates::Predicate;
use serde_json::Value;

/// The default selection of the `ws` fixture: every bin, cdylib and staticlib of every member.
const WS_SHIPPABLE: &[&str] = &["app-admin", "app-cli", "libffi_core.a", "libffi_core.so"];

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// One `planned`/`copied` JSON record.
#[derive(Debug)]
struct Rec {
    src: PathBuf,
    dst: PathBuf,
    bytes: u64,
    kind: String,
    package: Option<String>,
}

/// Checks the JSON stream shape (every line an object with a `reason`; exactly one `summary`,
/// last) and returns the records with `reason == wanted`, keyed by destination.
#[track_caller]
fn json_records(run: &Run, cwd: &Path, wanted: &str) -> (BTreeMap<PathBuf, Rec>, Value) {
    let lines = run.json();
    assert!(!lines.is_empty(), "no JSON output\nstderr:\n{}", run.stderr);
    for l in &lines {
        assert!(
            l["reason"].is_string(),
            "JSON line without a string `reason`: {l}"
        );
    }
    let summaries = lines.iter().filter(|l| l["reason"] == "summary").count();
    assert_eq!(
        summaries, 1,
        "expected exactly one summary line, got:\n{}",
        run.stdout
    );
    let summary = lines.last().unwrap().clone();
    assert_eq!(
        summary["reason"], "summary",
        "summary must be the last line:\n{}",
        run.stdout
    );
    for key in ["files", "bytes", "elapsed_ms", "errors"] {
        assert!(
            summary[key].is_u64(),
            "summary.{key} should be a non-negative integer: {summary}"
        );
    }
    assert!(
        summary["engine"].as_str().is_some_and(|e| !e.is_empty()),
        "summary.engine should be a non-empty string: {summary}"
    );
    let mut out = BTreeMap::new();
    for l in lines.iter().filter(|l| l["reason"] == wanted) {
        let str_field = |k: &str| {
            l[k].as_str()
                .unwrap_or_else(|| panic!("{wanted} record without string `{k}`: {l}"))
                .to_string()
        };
        assert!(
            l.get("package").is_some(),
            "{wanted} record without `package`: {l}"
        );
        let package = match &l["package"] {
            Value::Null => None,
            Value::String(p) => Some(p.clone()),
            other => panic!("`package` must be a string or null, got {other}: {l}"),
        };
        let rec = Rec {
            src: resolve(cwd, &str_field("src")),
            dst: resolve(cwd, &str_field("dst")),
            bytes: l["bytes"]
                .as_u64()
                .unwrap_or_else(|| panic!("{wanted} record without integer `bytes`: {l}")),
            kind: str_field("kind"),
            package,
        };
        let dst = rec.dst.clone();
        assert!(
            out.insert(dst, rec).is_none(),
            "duplicate destination in {l}"
        );
    }
    (out, summary)
}

/// Expected JSON record: (destination relative to out-dir, source path, kind, package).
struct Want<'a> {
    dst: &'a str,
    src: PathBuf,
    kind: &'a str,
    package: Option<&'a str>,
}

#[track_caller]
fn assert_records(recs: &BTreeMap<PathBuf, Rec>, out: &Path, want: &[Want<'_>]) {
    let exp: Vec<String> = want.iter().map(|w| s(&out.join(w.dst))).collect();
    let act: Vec<String> = recs.keys().map(|k| s(k)).collect();
    assert_set_eq("JSON record destinations", &exp, &act);
    for w in want {
        let r = &recs[&out.join(w.dst)];
        assert_eq!(r.src, w.src, "src of {}", w.dst);
        assert_eq!(r.kind, w.kind, "kind of {}", w.dst);
        assert_eq!(r.package.as_deref(), w.package, "package of {}", w.dst);
        let len = fs::symlink_metadata(&w.src).unwrap().len();
        assert_eq!(r.bytes, len, "bytes of {} (source is {len} bytes)", w.dst);
    }
}

fn human_summary_matches(line: &str) -> bool {
    predicates::str::is_match(
        r"^Copied [0-9]+ files? \([0-9]+(\.[0-9]+)? (B|KiB|MiB|GiB|TiB)\) in [0-9]+(\.[0-9]+)? s \[engine: [^\]]+\]$",
    )
    .unwrap()
    .eval(line)
}

#[track_caller]
fn assert_not_exists(p: &Path) {
    assert!(
        fs::symlink_metadata(p).is_err(),
        "{} must not exist (nothing may be written); it contains {:?}",
        p.display(),
        tree(p)
    );
}

// ---------------------------------------------------------------------------------------------
// artifact selection
// ---------------------------------------------------------------------------------------------

#[test]
fn default_selection_is_every_shippable_artifact_of_dev_profile() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["-o", &s(&out)]).success();
    assert_tree(&out, WS_SHIPPABLE);
    assert_copies(&env.target().join("debug"), &out, WS_SHIPPABLE);
}

#[test]
fn release_copies_every_shippable_artifact_cargo_style() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "-o", &s(&out)]).success();
    // no .d files (only with --dep-info), rlibs, proc-macros or examples by default
    assert_tree(&out, WS_SHIPPABLE);
    assert_copies(&env.target().join("release"), &out, WS_SHIPPABLE);
    for exe in ["app-cli", "app-admin", "libffi_core.so"] {
        assert_executable(&out.join(exe));
    }
}

/// `--crate-type T` for every crate type.
fn every_crate_type() -> Vec<&'static str> {
    [
        "bin",
        "example",
        "cdylib",
        "staticlib",
        "rlib",
        "proc-macro",
    ]
    .into_iter()
    .flat_map(|t| ["--crate-type", t])
    .collect()
}

/// `--dep-info` plans exactly the `.d` files cargo wrote beside the artifacts it uplifted: a
/// hyphenated bin, an example, a proc-macro, an rlib, and a cdylib + staticlib + rlib sharing one.
#[test]
fn dep_info_names_are_the_ones_cargo_wrote() {
    let env = TestEnv::shared(Fixture::Ws);
    let mut args = vec!["--release", "--bins", "--examples", "--lib", "--dep-info"];
    args.extend(every_crate_type());
    args.extend(["--dry-run", "--message-format", "json"]);
    let run = env.run(&args);
    run.success();
    let planned: BTreeSet<String> = run
        .json()
        .iter()
        .filter(|l| l["kind"] == "dep-info")
        .map(|l| l["src"].as_str().unwrap().to_string())
        .collect();
    // Cargo keeps a hashed copy of an example's `.d` beside the uplifted one: `demo-<hash>.d`.
    let hashed = |p: &Path| {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        stem.rsplit_once('-')
            .is_some_and(|(_, h)| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let release = env.target().join("release");
    let written: BTreeSet<String> = [release.clone(), release.join("examples")]
        .iter()
        .flat_map(|d| fs::read_dir(d).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "d") && !hashed(p))
        .map(|p| s(&p))
        .collect();
    assert_eq!(planned, written);
    assert_eq!(planned.len(), 6, "{planned:#?}");
}

#[test]
fn release_works_without_the_fastcp_argument() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let args = ["--release", "-o", &s(&out)];
    let mut cmd = env.cmd();
    cmd.args(args);
    Run::from_cmd(&mut cmd, &args).success();
    assert_tree(&out, WS_SHIPPABLE);
    assert_copies(&env.target().join("release"), &out, WS_SHIPPABLE);
}

#[test]
fn real_cargo_dispatches_to_the_subcommand() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let path = std::env::join_paths(std::iter::once(bin_dir().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = ["fastcp", "--release", "-o", &s(&out)];
    let mut cmd = assert_cmd::Command::new(cargo);
    cmd.current_dir(env.root())
        .env("PATH", path)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .args(args);
    Run::from_cmd(&mut cmd, &args).success();
    assert_tree(&out, WS_SHIPPABLE);
    assert_copies(&env.target().join("release"), &out, WS_SHIPPABLE);
}

#[test]
fn one_binary() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "--bin", "app-cli", "-o", &s(&out)])
        .success();
    assert_tree(&out, &["app-cli"]);
    assert_same_file(&env.target().join("release/app-cli"), &out.join("app-cli"));
    assert_executable(&out.join("app-cli"));
}

#[test]
fn second_binary_from_src_bin_keeps_its_hyphen() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "--bin", "app-admin", "-o", &s(&out)])
        .success();
    assert_tree(&out, &["app-admin"]);
    assert_same_file(
        &env.target().join("release/app-admin"),
        &out.join("app-admin"),
    );
}

/// `--release --bins -o OUT` succeeds and leaves exactly the two binaries in `out`, faithful
/// copies of the built ones.
fn release_bins_into(env: &TestEnv, out: &Path) {
    let bins = ["app-admin", "app-cli"];
    env.run(&["--release", "--bins", "-o", &s(out)]).success();
    assert_tree(out, &bins);
    assert_copies(&env.target().join("release"), out, &bins);
}

/// `PREFIX… -o OUT FLAGS…` into a fresh `case<i>` out-dir, which must succeed: the out-dir and
/// the run.
fn case_run(env: &TestEnv, i: usize, prefix: &[&str], flags: &[&str]) -> (PathBuf, Run) {
    let out = env.out(&format!("case{i}"));
    let o = s(&out);
    let run = env.run(&[prefix, &["-o", &o], flags].concat());
    run.success();
    (out, run)
}

/// Selects the `cdylib` of the `ffi-core` package.
const FFI_CDYLIB: &[&str] = &["-p", "ffi-core", "--crate-type", "cdylib"];

#[test]
fn bins_selects_all_binaries() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    release_bins_into(&env, &out);
}

#[test]
fn example_lands_flat_in_out_dir() {
    let env = TestEnv::shared(Fixture::Ws);
    let src = env.target().join("release/examples/demo");
    for flag in [&["--example", "demo"][..], &["--examples"][..]] {
        let out = env.out(&format!("dist{}", flag.len()));
        let mut args = vec!["--release", "-o"];
        let o = s(&out);
        args.push(&o);
        args.extend_from_slice(flag);
        env.run(&args).success();
        assert_tree(&out, &["demo"]);
        assert_same_file(&src, &out.join("demo"));
        assert_executable(&out.join("demo"));
    }
}

#[test]
fn custom_profile_package_and_crate_type() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let o = s(&out);
    env.run(&[&["--profile", "dist"], FFI_CDYLIB, &["-o", &o]].concat())
        .success();
    assert_tree(&out, &["libffi_core.so"]);
    assert_same_file(
        &env.target().join("dist/libffi_core.so"),
        &out.join("libffi_core.so"),
    );
}

#[test]
fn rust_dylib_is_shippable_by_default() {
    let env = TestEnv::shared(Fixture::Dylib);
    let src = env.target().join("release/libplugin.so");
    let out = env.out("default");
    let run = env.run(&["--release", "-o", &s(&out), "--message-format", "json"]);
    run.success();
    assert_tree(&out, &["libplugin.so"]);
    assert_same_file(&src, &out.join("libplugin.so"));
    let (recs, summary) = json_records(&run, env.root(), "copied");
    assert_records(
        &recs,
        &out,
        &[Want {
            dst: "libplugin.so",
            src: src.clone(),
            kind: "dylib",
            package: Some("plugin"),
        }],
    );
    assert_eq!(summary["files"], 1, "{summary}");

    let out = env.out("crate-type");
    env.run(&["--release", "--crate-type", "dylib", "-o", &s(&out)])
        .success();
    assert_tree(&out, &["libplugin.so"]);
}

#[test]
fn crate_type_filters() {
    let env = TestEnv::shared(Fixture::Ws);
    let release = env.target().join("release");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--crate-type", "staticlib"], &["libffi_core.a"]),
        (
            &["--crate-type", "cdylib", "--crate-type", "staticlib"],
            &["libffi_core.a", "libffi_core.so"],
        ),
        (
            &["--crate-type", "rlib"],
            &["libffi_core.rlib", "libutil_lib.rlib"],
        ),
        (&["--crate-type", "proc-macro"], &["libmacros.so"]),
        (&["--crate-type", "bin"], &["app-admin", "app-cli"]),
        (&["--crate-type", "example"], &["demo"]),
    ];
    for (i, (flags, expected)) in cases.iter().enumerate() {
        let (out, _) = case_run(&env, i, &["--release"], flags);
        assert_tree(&out, expected);
        for name in *expected {
            let src = if *name == "demo" {
                release.join("examples/demo")
            } else {
                release.join(name)
            };
            assert_same_file(&src, &out.join(name));
        }
    }
}

#[test]
fn lib_selects_every_library_kind_of_the_lib_target() {
    let env = TestEnv::shared(Fixture::Ws);
    let release = env.target().join("release");
    let cases: &[(&str, &[&str])] = &[
        (
            "ffi-core",
            &["libffi_core.a", "libffi_core.rlib", "libffi_core.so"],
        ),
        ("util-lib", &["libutil_lib.rlib"]),
        ("macros", &["libmacros.so"]),
    ];
    for (pkg, expected) in cases {
        let out = env.out(pkg);
        env.run(&["--release", "-p", pkg, "--lib", "-o", &s(&out)])
            .success();
        assert_tree(&out, expected);
        assert_copies(&release, &out, expected);
    }
}

#[test]
fn target_flags_add_up() {
    let env = TestEnv::shared(Fixture::Ws);
    let release = env.target().join("release");
    let out = env.out("bins-examples");
    env.run(&["--release", "--bins", "--examples", "-o", &s(&out)])
        .success();
    assert_tree(&out, &["app-admin", "app-cli", "demo"]);
    assert_same_file(&release.join("examples/demo"), &out.join("demo"));

    let out = env.out("two-bins");
    env.run(&[
        "--release",
        "--bin",
        "app-cli",
        "--bin",
        "app-admin",
        "-o",
        &s(&out),
    ])
    .success();
    assert_tree(&out, &["app-admin", "app-cli"]);
    assert_copies(&release, &out, &["app-admin", "app-cli"]);
}

#[test]
fn package_selection() {
    let env = TestEnv::shared(Fixture::Ws);
    let release = env.target().join("release");
    let cases: &[(&[&str], &[&str])] = &[
        (&["-p", "ffi-core"], &["libffi_core.a", "libffi_core.so"]),
        (&["--package", "app-cli"], &["app-admin", "app-cli"]),
        (&["-p", "app-cli", "-p", "ffi-core"], WS_SHIPPABLE),
        (&["--workspace"], WS_SHIPPABLE),
        (
            &["--workspace", "--exclude", "ffi-core"],
            &["app-admin", "app-cli"],
        ),
        (
            &["--workspace", "--exclude", "app-cli"],
            &["libffi_core.a", "libffi_core.so"],
        ),
    ];
    for (i, (flags, expected)) in cases.iter().enumerate() {
        let (out, _) = case_run(&env, i, &["--release"], flags);
        assert_tree(&out, expected);
        assert_copies(&release, &out, expected);
    }
}

#[test]
fn default_members_are_the_default_selection() {
    let env = TestEnv::built_only(Fixture::Ws, &["release"]);
    let manifest = fs::read_to_string(env.path("Cargo.toml")).unwrap();
    let patched = manifest.replace(
        "members = [",
        "default-members = [\"ffi-core\"]\nmembers = [",
    );
    assert_ne!(manifest, patched, "fixture manifest changed shape");
    env.write("Cargo.toml", patched);
    env.run(&["--release", "-o", "dist"]).success();
    assert_tree(&env.path("dist"), &["libffi_core.a", "libffi_core.so"]);
    // --workspace still means every member
    env.run(&["--release", "--workspace", "-o", "all"])
        .success();
    assert_tree(&env.path("all"), WS_SHIPPABLE);
    assert_copies(
        &env.target().join("release"),
        &env.path("all"),
        WS_SHIPPABLE,
    );
}

#[test]
fn profile_directory_mapping() {
    let env = TestEnv::shared(Fixture::Ws);
    let cases: &[(&[&str], &str)] = &[
        (&["--profile", "dev"], "debug"),
        (&["--profile", "test"], "debug"),
        (&["--profile", "release"], "release"),
        (&["--profile", "bench"], "release"),
        (&["--profile", "dist"], "dist"),
    ];
    for (i, (flags, dir)) in cases.iter().enumerate() {
        let (out, _) = case_run(&env, i, &[], flags);
        assert_tree(&out, WS_SHIPPABLE);
        assert_copies(&env.target().join(dir), &out, WS_SHIPPABLE);
    }
}

#[test]
fn single_target_triple_reads_the_triple_dir_and_stays_flat() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let host = host_triple();
    env.run(&["--release", "--target", host, "-o", &s(&out)])
        .success();
    assert_tree(&out, WS_SHIPPABLE);
    assert_copies(&env.target().join(host).join("release"), &out, WS_SHIPPABLE);
}

#[test]
fn several_target_triples_get_one_subdir_each() {
    let host = host_triple();
    let env = TestEnv::built_only(Fixture::Ws, &[&format!("{host}/release")]);
    // Only the host can be built here; stage a second triple's artifacts by hand.
    let other = "aarch64-unknown-linux-gnu";
    let host_dir = env.target().join(host).join("release");
    let other_dir = env.target().join(other).join("release");
    fs::create_dir_all(&other_dir).unwrap();
    for n in WS_SHIPPABLE {
        copy_file_preserving(&host_dir.join(n), &other_dir.join(n)).unwrap();
    }
    set_mtime(&other_dir.join("app-cli"), 1_500_000_000, 123_456_789);

    env.run(&[
        "--release",
        "--target",
        host,
        "--target",
        other,
        "-o",
        "dist",
    ])
    .success();
    let out = env.path("dist");
    let expected: Vec<String> = [host, other]
        .iter()
        .flat_map(|t| WS_SHIPPABLE.iter().map(move |n| format!("{t}/{n}")))
        .collect();
    let exp: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_tree(&out, &exp);
    assert_copies(&host_dir, &out.join(host), WS_SHIPPABLE);
    assert_copies(&other_dir, &out.join(other), WS_SHIPPABLE);
}

#[test]
fn target_dir_flag_and_env_override_metadata() {
    let env = TestEnv::built_only(Fixture::Ws, &["release"]);
    fs::rename(env.target(), env.path("elsewhere")).unwrap();
    let src = env.path("elsewhere/release");

    env.run(&["--release", "--target-dir", "elsewhere", "-o", "dist1"])
        .success();
    assert_tree(&env.path("dist1"), WS_SHIPPABLE);
    assert_copies(&src, &env.path("dist1"), WS_SHIPPABLE);

    let args = ["--release", "-o", "dist2"];
    let mut cmd = env.fastcp();
    cmd.env("CARGO_TARGET_DIR", env.path("elsewhere"))
        .args(args);
    Run::from_cmd(&mut cmd, &args).success();
    assert_tree(&env.path("dist2"), WS_SHIPPABLE);
    assert_copies(&src, &env.path("dist2"), WS_SHIPPABLE);

    // --target-dir wins over CARGO_TARGET_DIR
    let args = ["--release", "--target-dir", "elsewhere", "-o", "dist3"];
    let mut cmd = env.fastcp();
    cmd.env("CARGO_TARGET_DIR", env.path("nowhere")).args(args);
    Run::from_cmd(&mut cmd, &args).success();
    assert_tree(&env.path("dist3"), WS_SHIPPABLE);
}

#[test]
fn manifest_path_from_another_directory() {
    let ws = TestEnv::shared(Fixture::Ws);
    let single = TestEnv::shared(Fixture::Single);
    let elsewhere = TestEnv::empty();

    let out = elsewhere.out("ws");
    elsewhere
        .run(&[
            "--release",
            "--manifest-path",
            &s(&ws.path("Cargo.toml")),
            "-o",
            &s(&out),
        ])
        .success();
    assert_tree(&out, WS_SHIPPABLE);
    assert_copies(&ws.target().join("release"), &out, WS_SHIPPABLE);

    // patterns are relative to the workspace root, not the cwd
    let out = elsewhere.out("single");
    elsewhere
        .run(&[
            "--manifest-path",
            &s(&single.path("Cargo.toml")),
            "-o",
            &s(&out),
            "README.md",
        ])
        .success();
    assert_tree(&out, &["README.md"]);
    assert_same_file(&single.path("README.md"), &out.join("README.md"));
}

#[test]
fn out_dir_is_created_with_parents_and_may_exist() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("a/b/c");
    release_bins_into(&env, &out);
    // existing out-dir, stale file at a destination: overwritten
    fs::write(out.join("app-cli"), b"stale").unwrap();
    release_bins_into(&env, &out);
}

#[test]
fn jobs_and_quiet() {
    let env = TestEnv::shared(Fixture::Ws);
    for (i, flags) in [
        &["-j", "1"][..],
        &["--jobs", "3"][..],
        &["-q"][..],
        &["--quiet", "-j", "2"][..],
    ]
    .iter()
    .enumerate()
    {
        let (out, run) = case_run(&env, i, &["--release"], flags);
        if flags.contains(&"-q") || flags.contains(&"--quiet") {
            run.stderr_empty();
        }
        assert_tree(&out, WS_SHIPPABLE);
        assert_copies(&env.target().join("release"), &out, WS_SHIPPABLE);
    }
}

// ---------------------------------------------------------------------------------------------
// patterns
// ---------------------------------------------------------------------------------------------

const SINGLE_FILES: &[&str] = &[
    "LICENSE",
    "README.md",
    "assets/a.txt",
    "assets/sub/b.json",
    "assets/sub/deeper/c.json",
];

#[test]
fn patterns_alone_copy_only_what_they_match() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    env.run(&["-o", &s(&out), "README.md", "LICENSE", "assets/**"])
        .success();
    assert_tree(&out, SINGLE_FILES);
    assert_copies(env.root(), &out, SINGLE_FILES);
}

#[test]
fn artifacts_plus_extra_files() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    env.run(&[
        "--release",
        "-o",
        &s(&out),
        "README.md",
        "LICENSE",
        "assets/**",
    ])
    .success();
    let mut expected = SINGLE_FILES.to_vec();
    expected.push("single-tool");
    assert_tree(&out, &expected);
    assert_copies(env.root(), &out, SINGLE_FILES);
    assert_same_file(
        &env.target().join("release/single-tool"),
        &out.join("single-tool"),
    );
    assert_executable(&out.join("single-tool"));
}

#[test]
fn a_directory_pattern_is_copied_recursively() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    env.run(&["-o", &s(&out), "assets"]).success();
    let expected = [
        "assets/a.txt",
        "assets/sub/b.json",
        "assets/sub/deeper/c.json",
    ];
    assert_tree(&out, &expected);
    assert_copies(env.root(), &out, &expected);
}

#[test]
fn recursive_glob_keeps_relative_paths() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    env.run(&["-o", &s(&out), "assets/**/*.json"]).success();
    assert_tree(&out, &["assets/sub/b.json", "assets/sub/deeper/c.json"]);
}

#[test]
fn exclude_glob_removes_matches() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    env.run(&[
        "-o",
        &s(&out),
        "assets/**",
        "--exclude-glob",
        "**/deeper/**",
        "--exclude-glob",
        "**/*.txt",
    ])
    .success();
    assert_tree(&out, &["assets/sub/b.json"]);
    assert_same_file(
        &env.path("assets/sub/b.json"),
        &out.join("assets/sub/b.json"),
    );
}

#[test]
fn from_dir_glob_is_relative_to_from() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("out");
    env.run(&["-o", &s(&out), "--from", "assets", "**/*.json"])
        .success();
    assert_tree(&out, &["sub/b.json", "sub/deeper/c.json"]);
    assert_same_file(&env.path("assets/sub/b.json"), &out.join("sub/b.json"));
    assert_same_file(
        &env.path("assets/sub/deeper/c.json"),
        &out.join("sub/deeper/c.json"),
    );
}

#[test]
fn from_never_runs_cargo() {
    // no Cargo.toml anywhere, no cargo on PATH, $CARGO pointing nowhere
    let env = TestEnv::empty();
    let data = env.path("some/dir");
    fs::create_dir_all(data.join("x/y")).unwrap();
    fs::write(data.join("top.json"), b"{}\n").unwrap();
    fs::write(data.join("x/y/deep.json"), b"[1,2,3]\n").unwrap();
    fs::write(data.join("x/skip.txt"), b"no\n").unwrap();
    let empty_path = env.scratch().join("empty-path");
    fs::create_dir(&empty_path).unwrap();

    let args = ["-o", "out", "--from", "some/dir", "**/*.json"];
    let mut cmd = env.fastcp();
    cmd.env("PATH", &empty_path)
        .env("CARGO", "/nonexistent/cargo")
        .args(args);
    Run::from_cmd(&mut cmd, &args).success();
    let out = env.path("out");
    assert_tree(&out, &["top.json", "x/y/deep.json"]);
    assert_copies(&data, &out, &["top.json", "x/y/deep.json"]);
}

#[test]
fn pattern_copies_preserve_mode_and_mtime() {
    let env = TestEnv::fixture(Fixture::Single);
    set_mode(&env.path("assets/a.txt"), 0o750);
    set_mode(&env.path("assets/sub/b.json"), 0o600);
    set_mtime(&env.path("assets/sub/b.json"), 1_000_000_000, 987_654_321);
    set_mtime(&env.path("assets/a.txt"), 1_234_567_890, 1);
    env.run(&["-o", "dist", "assets/**"]).success();
    let out = env.path("dist");
    assert_tree(
        &out,
        &[
            "assets/a.txt",
            "assets/sub/b.json",
            "assets/sub/deeper/c.json",
        ],
    );
    assert_copies(
        env.root(),
        &out,
        &[
            "assets/a.txt",
            "assets/sub/b.json",
            "assets/sub/deeper/c.json",
        ],
    );
}

#[test]
fn symlinks_are_reported_and_copied_as_symlinks() {
    let env = TestEnv::fixture(Fixture::Single);
    std::os::unix::fs::symlink("a.txt", env.path("assets/link.txt")).unwrap();
    let run = env.run(&["-o", "dist", "--message-format", "json", "assets/**"]);
    run.success();
    let out = env.path("dist");
    let (recs, _) = json_records(&run, env.root(), "copied");
    let link = &recs[&out.join("assets/link.txt")];
    assert_eq!(link.kind, "symlink", "{link:?}");
    assert_eq!(link.package, None);
    let meta = fs::symlink_metadata(out.join("assets/link.txt")).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "dist/assets/link.txt should be a symlink"
    );
    assert_eq!(
        fs::read_link(out.join("assets/link.txt")).unwrap(),
        Path::new("a.txt")
    );
}

// ---------------------------------------------------------------------------------------------
// dry run, JSON, human output
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let run = env.run(&["--release", "-o", &s(&out), "--dry-run"]);
    run.success();
    assert_not_exists(&out);
    for n in WS_SHIPPABLE {
        run.output_has(&format!("release/{n}"));
    }
    // without -o
    env.run(&["--release", "--dry-run"]).success();
    assert_not_exists(&env.path("dist"));
}

#[test]
fn dry_run_json_plans_every_file() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    // `--bins` (a target flag) so that artifacts are selected next to the patterns
    let run = env.run(&[
        "--release",
        "--bins",
        "-o",
        &s(&out),
        "--dry-run",
        "--message-format",
        "json",
        "README.md",
        "assets/sub/**",
    ]);
    run.success();
    assert_not_exists(&out);
    let (recs, summary) = json_records(&run, env.root(), "planned");
    assert_records(
        &recs,
        &out,
        &[
            Want {
                dst: "single-tool",
                src: env.target().join("release/single-tool"),
                kind: "bin",
                package: Some("single-tool"),
            },
            Want {
                dst: "README.md",
                src: env.path("README.md"),
                kind: "file",
                package: None,
            },
            Want {
                dst: "assets/sub/b.json",
                src: env.path("assets/sub/b.json"),
                kind: "file",
                package: None,
            },
            Want {
                dst: "assets/sub/deeper/c.json",
                src: env.path("assets/sub/deeper/c.json"),
                kind: "file",
                package: None,
            },
        ],
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    let copied = run
        .json()
        .iter()
        .filter(|l| l["reason"] == "copied")
        .count();
    assert_eq!(
        copied, 0,
        "a dry run must not report copied files:\n{}",
        run.stdout
    );
}

#[test]
fn json_reports_every_copied_file_with_its_kind_and_package() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let o = s(&out);
    let mut args = vec!["--release", "-o", &o, "--message-format", "json"];
    args.extend(every_crate_type());
    let run = env.run(&args);
    run.success();
    let rel = env.target().join("release");
    let want = [
        Want {
            dst: "app-cli",
            src: rel.join("app-cli"),
            kind: "bin",
            package: Some("app-cli"),
        },
        Want {
            dst: "app-admin",
            src: rel.join("app-admin"),
            kind: "bin",
            package: Some("app-cli"),
        },
        Want {
            dst: "demo",
            src: rel.join("examples/demo"),
            kind: "example",
            package: Some("app-cli"),
        },
        Want {
            dst: "libffi_core.so",
            src: rel.join("libffi_core.so"),
            kind: "cdylib",
            package: Some("ffi-core"),
        },
        Want {
            dst: "libffi_core.a",
            src: rel.join("libffi_core.a"),
            kind: "staticlib",
            package: Some("ffi-core"),
        },
        Want {
            dst: "libffi_core.rlib",
            src: rel.join("libffi_core.rlib"),
            kind: "rlib",
            package: Some("ffi-core"),
        },
        Want {
            dst: "libutil_lib.rlib",
            src: rel.join("libutil_lib.rlib"),
            kind: "rlib",
            package: Some("util-lib"),
        },
        Want {
            dst: "libmacros.so",
            src: rel.join("libmacros.so"),
            kind: "proc-macro",
            package: Some("macros"),
        },
    ];
    let (recs, summary) = json_records(&run, env.root(), "copied");
    assert_records(&recs, &out, &want);
    let total: u64 = want
        .iter()
        .map(|w| fs::metadata(&w.src).unwrap().len())
        .sum();
    assert_eq!(summary["files"], want.len(), "{summary}");
    assert_eq!(summary["bytes"], total, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    for w in &want {
        assert_same_file(&w.src, &out.join(w.dst));
    }
    assert!(
        run.json()
            .iter()
            .all(|l| l["reason"] == "copied" || l["reason"] == "summary"),
        "only copied + summary lines expected:\n{}",
        run.stdout
    );
}

#[test]
fn human_mode_ends_with_a_summary_line_on_stderr() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let run = env.run(&["--release", "-o", &s(&out)]);
    run.success();
    let last = run.last_stderr_line();
    assert!(
        human_summary_matches(last),
        "unexpected final stderr line {last:?}\n{}",
        run.stderr
    );
    assert!(last.starts_with("Copied 4 files ("), "{last:?}");
}

#[test]
fn human_summary_regex_accepts_the_documented_example() {
    assert!(human_summary_matches(
        "Copied 4 files (12.3 MiB) in 0.04 s [engine: io_uring]"
    ));
    assert!(!human_summary_matches("Copied 4 files"));
}

// ---------------------------------------------------------------------------------------------
// failures
// ---------------------------------------------------------------------------------------------

#[test]
fn partial_failure_exits_1_and_copies_the_rest() {
    let env = TestEnv::built_only(Fixture::Ws, &["release"]);
    // a non-empty directory squats on one destination
    env.write("dist/app-cli/keep", "x");
    let run = env.run(&["--release", "-o", "dist", "--message-format", "json"]);
    run.code(1);
    let out = env.path("dist");
    let lines = run.json();
    let failed: Vec<&Value> = lines.iter().filter(|l| l["reason"] == "failed").collect();
    assert_eq!(failed.len(), 1, "expected one failed line:\n{}", run.stdout);
    let f = failed[0];
    assert_eq!(
        resolve(env.root(), f["src"].as_str().expect("failed.src")),
        env.target().join("release/app-cli"),
        "{f}"
    );
    assert_eq!(
        resolve(env.root(), f["dst"].as_str().expect("failed.dst")),
        out.join("app-cli"),
        "{f}"
    );
    assert!(
        f["error"].as_str().is_some_and(|e| !e.is_empty()),
        "failed.error: {f}"
    );
    let (recs, summary) = json_records(&run, env.root(), "copied");
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!(summary["errors"], 1, "{summary}");
    assert_eq!(summary["files"], 3, "{summary}");
    let rest = ["app-admin", "libffi_core.a", "libffi_core.so"];
    assert_copies(&env.target().join("release"), &out, &rest);
    assert_tree(
        &out,
        &[
            "app-admin",
            "app-cli/keep",
            "libffi_core.a",
            "libffi_core.so",
        ],
    );
}

#[test]
fn missing_artifact_names_path_and_build_command() {
    let env = TestEnv::fixture(Fixture::Ws); // never built
    for (profile, missing, build) in [
        (
            &["--release"][..],
            "release/libffi_core.so",
            "cargo build --release",
        ),
        (
            &["--profile", "dist"][..],
            "dist/libffi_core.so",
            "cargo build --profile dist",
        ),
    ] {
        let run = env.run(&[profile, FFI_CDYLIB, &["-o", "dist"]].concat());
        run.code(2).stderr_has("libffi_core.so").stderr_has(build);
        assert!(
            run.stderr.contains(missing),
            "should name the missing path:\n{}",
            run.stderr
        );
        assert_not_exists(&env.path("dist"));
    }
}

#[test]
fn one_missing_artifact_means_nothing_is_written() {
    let env = TestEnv::built_only(Fixture::Ws, &["release"]);
    fs::remove_file(env.target().join("release/app-admin")).unwrap();
    let run = env.run(&["--release", "-o", "dist"]);
    run.code(2)
        .stderr_has("release/app-admin")
        .stderr_has("cargo build --release");
    assert_not_exists(&env.path("dist"));
}

#[test]
fn moved_target_dir_without_override_is_a_missing_artifact_error() {
    let env = TestEnv::built_only(Fixture::Ws, &["release"]);
    fs::rename(env.target(), env.path("elsewhere")).unwrap();
    env.run(&["--release", "-o", "dist"])
        .code(2)
        .stderr_has("cargo build --release");
    assert_not_exists(&env.path("dist"));
}

#[test]
fn unknown_package() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "-p", "nope", "-o", &s(&out)])
        .code(2)
        .stderr_has("nope");
    assert_not_exists(&out);
    // same without the `fastcp` argument
    let args = ["--release", "-p", "nope", "-o", &s(&out)];
    let mut cmd = env.cmd();
    cmd.args(args);
    Run::from_cmd(&mut cmd, &args).code(2).stderr_has("nope");
    assert_not_exists(&out);
}

#[test]
fn unknown_bin_and_example() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "--bin", "no-such-bin", "-o", &s(&out)])
        .code(2)
        .stderr_has("no-such-bin");
    assert_not_exists(&out);
    env.run(&["--release", "--example", "no-such-example", "-o", &s(&out)])
        .code(2)
        .stderr_has("no-such-example");
    assert_not_exists(&out);
}

#[test]
fn a_selection_matching_no_artifact_is_an_error() {
    // util-lib builds only an rlib: nothing ships by default, and saying so beats "Copied 0 files".
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    env.run(&["--release", "-p", "util-lib", "-o", &s(&out)])
        .code(2)
        .stderr_has("util-lib");
    assert_not_exists(&out);
    env.run(&[
        "--release",
        "--bin",
        "app-admin",
        "--crate-type",
        "cdylib",
        "-o",
        &s(&out),
    ])
    .code(2)
    .stderr_has("matches no artifact");
    assert_not_exists(&out);
}

/// Asserts a collision error lists both the artifact and the workspace-root file `name`.
#[track_caller]
fn assert_collision(env: &TestEnv, run: &Run, name: &str) {
    run.code(2).stderr_has(&format!("release/{name}"));
    // the other source: the workspace-root file, absolute or relative
    let abs = s(&env.path(name));
    let mentions_root_file = run.stderr.contains(&abs)
        || run
            .stderr
            .split(|c: char| c.is_whitespace() || "'\"`,:()[]".contains(c))
            .any(|w| w == name || w == format!("./{name}"));
    assert!(
        mentions_root_file,
        "should list both sources ({abs} and target/release/{name}):\n{}",
        run.stderr
    );
    assert_not_exists(&env.path("dist"));
}

#[test]
fn two_sources_for_one_destination() {
    let env = TestEnv::built(Fixture::Single);
    env.write("single-tool", "I am not the binary\n");
    let run = env.run(&[
        "--release",
        "--bin",
        "single-tool",
        "-o",
        "dist",
        "single-tool",
    ]);
    assert_collision(&env, &run, "single-tool");
}

#[test]
fn two_sources_for_one_destination_release_and_pattern() {
    // the contract's example: `--release -o dist app-cli` with a file named like the artifact
    let env = TestEnv::built(Fixture::Single);
    env.write("single-tool", "I am not the binary\n");
    let run = env.run(&["--release", "-o", "dist", "single-tool"]);
    assert_collision(&env, &run, "single-tool");
}

#[test]
fn pattern_matching_nothing() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    env.run(&["-o", &s(&out), "nothing/**/*.xyz"])
        .code(2)
        .stderr_has("nothing/**/*.xyz");
    assert_not_exists(&out);
    // one good and one bad pattern: still nothing written
    env.run(&["-o", &s(&out), "README.md", "missing.txt"])
        .code(2)
        .stderr_has("missing.txt");
    assert_not_exists(&out);
    // with artifacts
    env.run(&["--release", "-o", &s(&out), "missing.txt"])
        .code(2)
        .stderr_has("missing.txt");
    assert_not_exists(&out);
    // with --from
    env.run(&["-o", &s(&out), "--from", "assets", "*.nope"])
        .code(2)
        .stderr_has("*.nope");
    assert_not_exists(&out);
}

#[test]
fn bad_flag_combinations_are_usage_errors() {
    let env = TestEnv::shared(Fixture::Ws);
    let out = env.out("dist");
    let o = s(&out);
    let readme = s(&env.path("Cargo.toml"));
    let cases: &[&[&str]] = &[
        &["--release", "--profile", "dev", "-o", &o],
        &["--release", "--jobs", "0", "-o", &o],
        &["--release", "-j", "0", "-o", &o],
        &["--release"],
        &[],
        &["-o", &o, &readme],
        &["-o", &o, "--no-such-flag"],
        &["--release", "-o", &o, "--message-format", "xml"],
        &["--release", "-o", &o, "--crate-type", "wasm"],
    ];
    for args in cases {
        let run = env.run(args);
        run.code(2);
        assert!(
            !run.stderr.trim().is_empty(),
            "a usage error needs a message\n{args:?}"
        );
        assert_not_exists(&out);
    }
}

#[test]
fn absolute_pattern_is_rejected_with_from_too() {
    let env = TestEnv::shared(Fixture::Single);
    let out = env.out("dist");
    let abs = s(&env.path("assets/a.txt"));
    env.run(&["-o", &s(&out), "--from", "assets", &abs]).code(2);
    assert_not_exists(&out);
}

// ---------------------------------------------------------------------------------------------
// help, demo workspace, fixture hygiene
// ---------------------------------------------------------------------------------------------

#[test]
fn help_snapshot() {
    let env = TestEnv::empty();
    let run = env.run(&["--help"]);
    run.success();
    let snap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| !v.is_empty() && v != "0") {
        fs::create_dir_all(snap.parent().unwrap()).unwrap();
        fs::write(&snap, &run.stdout).unwrap();
        return;
    }
    let expected = fs::read_to_string(&snap).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            snap.display()
        )
    });
    if expected != run.stdout {
        let exp: Vec<&str> = expected.lines().collect();
        let act: Vec<&str> = run.stdout.lines().collect();
        panic!(
            "{}\nrun `UPDATE_SNAPSHOTS=1 cargo test --test cli help_snapshot` to accept",
            line_diff(
                "`cargo-fastcp fastcp --help` vs tests/snapshots/help.txt",
                &exp,
                &act
            )
        );
    }
}

#[test]
fn demo_workspace_quick_start() {
    let env = TestEnv::shared(Fixture::Demo);
    let out = env.out("dist");
    env.run(&["--release", "-o", &s(&out), "README.md", "assets/**"])
        .success();
    common::assert_demo_quick_start(&env, &out);
}

#[test]
fn fixtures_are_never_built_in_place() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "tests/fixtures/ws",
        "tests/fixtures/single",
        "tests/fixtures/dylib",
    ] {
        let t = repo.join(f).join("target");
        assert!(
            !t.exists(),
            "{} exists: fixtures must only be built in copies",
            t.display()
        );
        for entry in fs::read_dir(repo.join(f)).unwrap() {
            let p = entry.unwrap().path();
            assert!(
                !p.join("target").exists(),
                "{} exists",
                p.join("target").display()
            );
        }
    }
}
