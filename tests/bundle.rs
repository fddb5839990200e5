//! Release bundles end to end: `--checksums`, `--archive`, `--update`, `--clean` on the real
//! binary over a really built fixture, checked with the real `sha256sum`, `tar` and `unzip`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// The files the bundle tests stage from the `single` fixture.
const STAGED: &[&str] = &[
    "README.md",
    "assets/a.txt",
    "assets/sub/b.json",
    "assets/sub/deeper/c.json",
    "single-tool",
];

/// `cargo fastcp --release -o OUT README.md assets/** EXTRA…`
fn stage_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["--release".into(), "-o".into(), s(out)];
    v.extend(["README.md", "assets/**"].map(String::from));
    v.extend(extra.iter().map(|a| a.to_string()));
    v
}

/// Runs a system tool in `dir`, asserting success; returns its stdout.
#[track_caller]
fn tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e} (is it installed? .ci/run installs it)"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines_with(run: &Run, reason: &str) -> Vec<Value> {
    run.json()
        .into_iter()
        .filter(|l| l["reason"] == reason)
        .collect()
}

fn summary(run: &Run) -> Value {
    lines_with(run, "summary").pop().expect("a summary line")
}

/// `--archive` in every format.
const ALL_ARCHIVES: [&str; 6] = [
    "--archive",
    "tar.gz",
    "--archive",
    "tar.xz",
    "--archive",
    "zip",
];

/// The archive base name the default template gives for the `single` fixture.
fn default_name() -> String {
    format!("single-tool-0.1.0-{}", host_triple())
}

// ---------------------------------------------------------------------------------------------
// --checksums
// ---------------------------------------------------------------------------------------------

/// One named case per engine route (`::case_io_uring_splice`, …): an io-uring case where
/// io_uring is unavailable prints SKIP, or fails under `CARGO_FASTCP_REQUIRE_URING`.
fn checksums_files_pass_sha256sum_and_sha512sum_on_every_engine_route(route: Variant) {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    for (algo, file, sum_tool) in [
        ("sha256", "SHA256SUMS", "sha256sum"),
        ("sha512", "SHA512SUMS", "sha512sum"),
    ] {
        let out = env.out(algo);
        let mut extra = vec!["--checksums", algo, "--message-format", "json"];
        extra.extend(route.args());
        let run = env.run(&stage_args(&out, &extra));
        run.success();
        // Every copied line carries the digest the real tool computes.
        let copied = lines_with(&run, "copied");
        assert_eq!(copied.len(), STAGED.len(), "{}", run.stdout);
        for line in &copied {
            let dst = PathBuf::from(line["dst"].as_str().unwrap());
            let expected = tool(&out, sum_tool, &[&s(&dst)]);
            let expected = expected.split_whitespace().next().unwrap();
            assert_eq!(line[algo].as_str(), Some(expected), "{line}");
        }
        assert_eq!(summary(&run)["checksums_file"], s(&out.join(file)));
        let text = fs::read_to_string(out.join(file)).unwrap();
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.split_once("  ").unwrap().1)
            .collect();
        assert_lines_eq(file, STAGED, &names);
        let check = tool(&out, sum_tool, &["-c", file]);
        assert_eq!(
            check.lines().filter(|l| l.ends_with(": OK")).count(),
            STAGED.len()
        );
    }
}
method_cases!(checksums_files_pass_sha256sum_and_sha512sum_on_every_engine_route);

// ---------------------------------------------------------------------------------------------
// --archive
// ---------------------------------------------------------------------------------------------

#[test]
fn archives_hold_one_leading_directory_owner_zero_and_exec_bits() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    let mut args = vec!["--checksums", "sha256", "--message-format", "json"];
    args.extend(ALL_ARCHIVES);
    let run = env.run(&stage_args(&out, &args));
    run.success();
    let name = default_name();
    let archives: Vec<String> = summary(&run)["archives"]
        .as_array()
        .expect("archives in the summary")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = ["tar.gz", "tar.xz", "zip"]
        .iter()
        .map(|ext| s(&out.join(format!("{name}.{ext}"))))
        .collect();
    assert_eq!(archives, expected);

    let mut in_archive: Vec<String> = STAGED.iter().map(|f| format!("{name}/{f}")).collect();
    in_archive.push(format!("{name}/SHA256SUMS"));
    for dir in ["", "assets/", "assets/sub/", "assets/sub/deeper/"] {
        in_archive.push(format!("{name}/{dir}"));
    }
    for (ext, flag) in [("tar.gz", "-tvzf"), ("tar.xz", "-tvJf")] {
        let file = format!("{name}.{ext}");
        let listing = tool(&out, "tar", &["--numeric-owner", flag, &file]);
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.split_whitespace().last().unwrap())
            .collect();
        assert_set_eq(&format!("tar {flag} {file}"), &in_archive, &names);
        for l in listing.lines() {
            assert!(l.contains(" 0/0 "), "owner and group 0: {l}");
            if l.ends_with("/single-tool") {
                assert!(l.starts_with("-rwxr-xr-x"), "exec bit kept in tar: {l}");
            }
            if l.ends_with("/README.md") {
                assert!(l.starts_with("-rw-r--r--"), "{l}");
            }
        }
        tool(&out, "sha256sum", &["-c", &format!("{file}.sha256")]);
    }
    let zip = format!("{name}.zip");
    let listing = tool(&out, "unzip", &["-l", &zip]);
    for f in &in_archive {
        assert!(
            listing.contains(f.as_str()),
            "unzip -l lacks {f}:\n{listing}"
        );
    }
    let info = tool(&out, "unzip", &["-Z", &zip]);
    let bin = info
        .lines()
        .find(|l| l.ends_with("/single-tool"))
        .unwrap_or_else(|| panic!("no single-tool in:\n{info}"));
    assert!(
        bin.starts_with("-rwxr-xr-x") && bin.contains(" unx "),
        "unix exec bits in zip: {bin}"
    );
    tool(&out, "sha256sum", &["-c", &format!("{zip}.sha256")]);

    // Unpacked, every file is the staged one, byte for byte.
    let unpacked = env.scratch().join("unpacked");
    fs::create_dir_all(&unpacked).unwrap();
    tool(
        &unpacked,
        "tar",
        &["-xzf", &s(&out.join(format!("{name}.tar.gz")))],
    );
    tool(&unpacked, "unzip", &["-q", &s(&out.join(&zip)), "-d", "z"]);
    for f in STAGED {
        let staged = fs::read(out.join(f)).unwrap();
        assert_eq!(
            fs::read(unpacked.join(&name).join(f)).unwrap(),
            staged,
            "{f}"
        );
        assert_eq!(
            fs::read(unpacked.join("z").join(&name).join(f)).unwrap(),
            staged,
            "{f}"
        );
    }
    assert_executable(&unpacked.join(&name).join("single-tool"));
    assert_executable(&unpacked.join("z").join(&name).join("single-tool"));
}

#[test]
fn archives_are_byte_identical_across_runs_with_and_without_source_date_epoch() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let name = default_name();
    let formats = ["tar.gz", "tar.xz", "zip"];
    // With `--checksums` the archives hold SHA256SUMS too, a file each run writes anew.
    let bundle_with = |out: &Path, epoch: Option<&str>| -> Vec<Vec<u8>> {
        let mut cmd = env.fastcp();
        match epoch {
            Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
            None => cmd.env_remove("SOURCE_DATE_EPOCH"),
        };
        let mut extra = ALL_ARCHIVES.to_vec();
        extra.extend(["--checksums", "sha256"]);
        let args = stage_args(out, &extra);
        cmd.args(&args);
        Run::from_cmd(&mut cmd, &args).success();
        formats
            .iter()
            .map(|ext| fs::read(out.join(format!("{name}.{ext}"))).unwrap())
            .collect()
    };
    let bundle = |out: &Path| bundle_with(out, Some("1700000000"));
    let first = bundle(&env.out("one"));
    // A different out-dir, made later: nothing of the run may reach the bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = bundle(&env.out("two"));
    for (i, ext) in formats.iter().enumerate() {
        assert!(
            first[i] == second[i],
            "{ext}: two runs gave different bytes"
        );
    }
    let listing = tool(
        &env.out("one"),
        "tar",
        &["-tvzf", &format!("{name}.tar.gz")],
    );
    for l in listing.lines() {
        assert!(
            l.contains("2023-11-14 22:13"),
            "mtime from SOURCE_DATE_EPOCH: {l}"
        );
    }

    // Without SOURCE_DATE_EPOCH every entry keeps its file's own mtime, the checksums file
    // included (the newest of the files it lists), so two runs still agree.
    let own = [bundle_with(&env.out("own1"), None), {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        bundle_with(&env.out("own2"), None)
    }];
    for (i, ext) in formats.iter().enumerate() {
        assert!(
            own[0][i] == own[1][i],
            "{ext} without SOURCE_DATE_EPOCH: two runs gave different bytes"
        );
    }

    env.write("assets/a.txt", "changed content\n");
    let third = bundle(&env.out("three"));
    for (i, ext) in formats.iter().enumerate() {
        assert!(
            first[i] != third[i],
            "{ext}: a changed file must change the archive"
        );
    }
}

#[test]
fn archive_name_template_and_dir() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    let dir = env.out("archives");
    env.run(&stage_args(
        &out,
        &[
            "--archive",
            "zip",
            "--archive-name",
            "{name}_v{version}",
            "--archive-dir",
            &s(&dir),
        ],
    ))
    .success();
    assert_tree(
        &dir,
        &["single-tool_v0.1.0.zip", "single-tool_v0.1.0.zip.sha256"],
    );
    let listing = tool(&dir, "unzip", &["-l", "single-tool_v0.1.0.zip"]);
    assert!(
        listing.contains("single-tool_v0.1.0/single-tool"),
        "{listing}"
    );
    // The out-dir holds the staged files only.
    assert_tree(&out, STAGED);
}

#[test]
fn bad_archive_options_are_errors_before_anything_is_written() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    for (extra, why) in [
        (
            vec!["--archive-name", "{nope}"],
            "unknown placeholder `{nope}`",
        ),
        (vec!["--archive-name", "{name"], "without its `}`"),
        (
            vec!["--archive-name", "a/{name}"],
            "could leave the archive directory",
        ),
        (
            vec!["--archive-name", ".."],
            "could leave the archive directory",
        ),
        (
            vec!["--archive-name", "{name}/.."],
            "could leave the archive directory",
        ),
        (
            vec!["--archive-dir", "assets/sub"],
            "a directory this run copies",
        ),
    ] {
        let mut args = vec!["--archive", "tar.gz"];
        args.extend(extra.iter().copied());
        let run = env.run(&stage_args(&out, &args));
        run.code(2).stderr_has(why);
        assert!(!out.exists(), "{extra:?}: nothing may be written");
    }
    assert_tree(
        &env.path("assets"),
        &["a.txt", "sub/b.json", "sub/deeper/c.json"],
    );
    let run = env.run(&["--archive", "zip", "-o", &s(&out), "--archive", "tgz"]);
    run.code(2).stderr_has("unknown archive format `tgz`");
    // No cargo package, no {name}.
    let run = env.run(&["--from", "assets", "-o", &s(&out), "--archive", "zip", "**"]);
    run.code(2).stderr_has("`{name}` has no value here");
    assert!(!out.exists());
    let mut cmd = env.fastcp();
    cmd.env("SOURCE_DATE_EPOCH", "yesterday");
    let args = stage_args(&out, &["--archive", "zip"]);
    cmd.args(&args);
    Run::from_cmd(&mut cmd, &args)
        .code(2)
        .stderr_has("SOURCE_DATE_EPOCH");
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// --update
// ---------------------------------------------------------------------------------------------

#[test]
fn update_copies_nothing_the_second_time_and_only_what_changed() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    let json = |extra: &[&str]| {
        let mut args = vec!["--update", "--message-format", "json"];
        args.extend_from_slice(extra);
        env.run(&stage_args(&out, &args))
    };
    let first = json(&[]);
    first.success();
    assert_eq!(lines_with(&first, "copied").len(), STAGED.len());
    assert_eq!(summary(&first)["skipped"], 0);

    let second = json(&[]);
    second.success();
    assert!(
        lines_with(&second, "copied").is_empty(),
        "{}",
        second.stdout
    );
    assert_eq!(lines_with(&second, "skipped").len(), STAGED.len());
    assert_eq!(summary(&second)["skipped"], STAGED.len());
    assert_eq!(summary(&second)["files"], 0);

    // Same size, other bytes, a new mtime: copied; everything else is not.
    env.write("assets/a.txt", "ASSET A CONTENTS\n");
    set_mtime(&env.path("assets/a.txt"), 1_800_000_000, 5);
    let dry = json(&["--dry-run"]);
    dry.success();
    let planned: Vec<Value> = lines_with(&dry, "planned");
    assert_eq!(planned.len(), 1, "{}", dry.stdout);
    assert_eq!(lines_with(&dry, "skipped").len(), STAGED.len() - 1);
    assert_ne!(
        fs::read(out.join("assets/a.txt")).unwrap(),
        b"ASSET A CONTENTS\n"
    );

    let third = json(&[]);
    third.success();
    let copied = lines_with(&third, "copied");
    assert_eq!(copied.len(), 1, "{}", third.stdout);
    assert_eq!(copied[0]["dst"], s(&out.join("assets/a.txt")));
    assert_copies(env.root(), &out, &["README.md", "assets/a.txt"]);

    // The human summary counts what was left alone.
    let human = env.run(&stage_args(&out, &["--update"]));
    human
        .success()
        .stderr_has(&format!("Copied 0 files (0 B), {} unchanged", STAGED.len()));
}

#[test]
fn update_content_compares_bytes_not_mtimes() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    env.run(&stage_args(&out, &[])).success();
    // Only the mtime moves: the quick check would copy it, a content check keeps it.
    set_mtime(&env.path("README.md"), 1_800_000_000, 0);
    let run = env.run(&stage_args(
        &out,
        &["--update=content", "--message-format", "json"],
    ));
    run.success();
    assert!(lines_with(&run, "copied").is_empty(), "{}", run.stdout);
    assert_eq!(summary(&run)["skipped"], STAGED.len());
    // The kept file took the source's mtime, so a quick check now agrees.
    assert_copies(env.root(), &out, &["README.md"]);
    // Same size and mtime, other bytes: only a content check sees it.
    let meta = fs::metadata(out.join("assets/a.txt")).unwrap();
    fs::write(out.join("assets/a.txt"), "X".repeat(meta.len() as usize)).unwrap();
    set_mtime(
        &out.join("assets/a.txt"),
        meta.modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        meta.modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    let quick = env.run(&stage_args(&out, &["--update", "--message-format", "json"]));
    assert!(lines_with(&quick, "copied").is_empty(), "{}", quick.stdout);
    let content = env.run(&stage_args(
        &out,
        &["--update=content", "--message-format", "json"],
    ));
    let copied = lines_with(&content, "copied");
    assert_eq!(copied.len(), 1, "{}", content.stdout);
    assert_copies(env.root(), &out, &["assets/a.txt"]);
}

// ---------------------------------------------------------------------------------------------
// --clean
// ---------------------------------------------------------------------------------------------

#[test]
fn clean_empties_the_out_dir_first() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    fs::create_dir_all(out.join("old/sub")).unwrap();
    fs::write(out.join("old/sub/stale"), "stale").unwrap();
    fs::write(out.join("stale.txt"), "stale").unwrap();
    env.run(&stage_args(&out, &["--clean"])).success();
    assert_tree(&out, STAGED);
}

#[test]
fn clean_refuses_directories_that_matter_and_removes_nothing() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let sentinel = |dir: &Path| {
        let p = dir.join("fastcp-sentinel");
        fs::write(&p, "keep").unwrap();
        p
    };
    let home = env.scratch().join("home");
    fs::create_dir_all(&home).unwrap();
    // With -L, a link in the copied tree makes a file elsewhere a source.
    let tree = env.scratch().join("tree");
    fs::create_dir_all(tree.join("data")).unwrap();
    fs::create_dir_all(tree.join("elsewhere")).unwrap();
    fs::write(tree.join("elsewhere/x"), "x").unwrap();
    std::os::unix::fs::symlink("../elsewhere/x", tree.join("data/y")).unwrap();
    let cases: Vec<(PathBuf, Vec<String>, &str)> = vec![
        (env.root().to_path_buf(), vec![], "it is the workspace root"),
        (
            env.root().parent().unwrap().to_path_buf(),
            vec![],
            "it holds the workspace root",
        ),
        (env.target(), vec![], "it is the target directory"),
        (home.clone(), vec![], "it is the home directory"),
        (
            tree.join("elsewhere"),
            vec![
                "-L".into(),
                "--from".into(),
                s(&tree.join("data")),
                "*".into(),
            ],
            "a source of this copy",
        ),
    ];
    for (dir, from, why) in cases {
        let kept = sentinel(&dir);
        let mut args = vec!["--clean".to_string(), "-o".into(), s(&dir)];
        if from.is_empty() {
            args.push("--release".into());
        }
        args.extend(from);
        let mut cmd = env.fastcp();
        cmd.env("HOME", &home);
        // rustup finds its toolchains through HOME unless told where they are.
        for (var, default) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
            let real = std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(default));
            cmd.env(var, real);
        }
        cmd.args(&args);
        Run::from_cmd(&mut cmd, &args)
            .code(2)
            .stderr_has("--clean refuses")
            .stderr_has(why);
        assert!(kept.exists(), "{}: nothing may be removed", dir.display());
        fs::remove_file(kept).unwrap();
    }
    let run = env.run(&["--clean", "-o", "/", "--release"]);
    run.code(2).stderr_has("--clean refuses to empty /");
}

// ---------------------------------------------------------------------------------------------
// --debug-files
// ---------------------------------------------------------------------------------------------

#[test]
fn debug_files_stage_the_dwarf_package_of_a_packed_split_build() {
    let env = TestEnv::fixture(Fixture::Single);
    let manifest = env.path("Cargo.toml");
    let mut toml = fs::read_to_string(&manifest).unwrap();
    toml.push_str("\n[profile.release]\ndebug = true\nsplit-debuginfo = \"packed\"\n");
    fs::write(&manifest, toml).unwrap();
    env.build(&["--release"]);
    let out = env.out("dist");
    let run = env.run(&[
        "--release",
        "--debug-files",
        "-o",
        &s(&out),
        "--message-format",
        "json",
    ]);
    run.success();
    assert_tree(&out, &["single-tool", "single-tool.dwp"]);
    assert_copies(
        &env.target().join("release"),
        &out,
        &["single-tool", "single-tool.dwp"],
    );
    let kinds: Vec<(String, String)> = lines_with(&run, "copied")
        .iter()
        .map(|l| {
            (
                l["dst"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                l["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("single-tool.dwp".into(), "debug-info".into())),
        "{kinds:?}"
    );
}

#[test]
fn debug_files_without_split_debug_info_warn_and_stage_the_rest() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let out = env.out("dist");
    let run = env.run(&["--release", "--debug-files", "-o", &s(&out)]);
    run.success().stderr_has("no debug info file");
    assert_tree(&out, &["single-tool"]);
}

/// Cargo leaves `<bin>.dSYM` as a symlink to `deps/<bin>-<hash>.dSYM`: the staged bundle is a
/// real directory holding what the link points to. (The Apple layout is made by hand: this
/// checks the selection and the copy, which need no Apple toolchain.)
#[test]
fn a_dsym_symlink_is_staged_as_the_directory_it_points_to() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let dir = env.target().join("aarch64-apple-darwin/release");
    let bundle = dir.join("deps/single-tool-0123abcd.dSYM");
    fs::create_dir_all(bundle.join("Contents/Resources/DWARF")).unwrap();
    fs::write(bundle.join("Contents/Info.plist"), "<plist/>").unwrap();
    fs::write(
        bundle.join("Contents/Resources/DWARF/single-tool"),
        "dwarf bytes",
    )
    .unwrap();
    fs::write(dir.join("single-tool"), "a mach-o binary").unwrap();
    set_mode(&dir.join("single-tool"), 0o755);
    std::os::unix::fs::symlink(
        "deps/single-tool-0123abcd.dSYM",
        dir.join("single-tool.dSYM"),
    )
    .unwrap();
    let out = env.out("dist");
    env.run(&[
        "--release",
        "--target",
        "aarch64-apple-darwin",
        "--debug-files",
        "-o",
        &s(&out),
    ])
    .success();
    let staged = out.join("single-tool.dSYM");
    assert!(
        fs::symlink_metadata(&staged).unwrap().is_dir(),
        "{} should be a real directory",
        staged.display()
    );
    assert_tree(
        &out,
        &[
            "single-tool",
            "single-tool.dSYM/Contents/Info.plist",
            "single-tool.dSYM/Contents/Resources/DWARF/single-tool",
        ],
    );
    assert_copies(
        &bundle,
        &staged,
        &[
            "Contents/Info.plist",
            "Contents/Resources/DWARF/single-tool",
        ],
    );
}

/// `{target}` is the platform cargo's own configuration builds for (here `--config
/// build.target`), not the host, when no `--target` is given. The cross-built binary is made by
/// hand: the selection and the name are what is checked.
#[test]
fn the_archive_target_follows_cargo_configuration() {
    let env = TestEnv::built_only(Fixture::Single, &["release"]);
    let triple = "aarch64-unknown-linux-gnu";
    let dir = env.target().join(triple).join("release");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("single-tool"), "an aarch64 binary").unwrap();
    set_mode(&dir.join("single-tool"), 0o755);
    let out = env.out("dist");
    env.run(&[
        "--release",
        "--config",
        &format!("build.target=\"{triple}\""),
        "--archive",
        "tar.gz",
        "-o",
        &s(&out),
    ])
    .success();
    let name = format!("single-tool-0.1.0-{triple}");
    assert_tree(
        &out,
        &[
            "single-tool",
            &format!("{name}.tar.gz"),
            &format!("{name}.tar.gz.sha256"),
        ],
    );
}

/// `--build` with `--checksums` and `--archive`: cargo builds, the engine stages what it
/// reports, and the bundle is made from the placed files.
#[test]
fn build_then_checksums_and_archive() {
    let env = TestEnv::fixture(Fixture::Single);
    let out = env.out("dist");
    let run = env.run(&[
        "--build",
        "--offline",
        "--release",
        "-o",
        &s(&out),
        "--checksums",
        "sha256",
        "--archive",
        "tar.gz",
        "--message-format",
        "json",
    ]);
    run.success();
    let name = default_name();
    assert_tree(
        &out,
        &[
            "SHA256SUMS",
            "single-tool",
            &format!("{name}.tar.gz"),
            &format!("{name}.tar.gz.sha256"),
        ],
    );
    tool(&out, "sha256sum", &["-c", "SHA256SUMS"]);
    let copied = lines_with(&run, "copied");
    assert_eq!(copied.len(), 1, "{}", run.stdout);
    let digest = tool(&out, "sha256sum", &["single-tool"]);
    assert_eq!(
        copied[0]["sha256"].as_str(),
        digest.split_whitespace().next()
    );
    let listing = tool(&out, "tar", &["-tzf", &format!("{name}.tar.gz")]);
    assert!(
        listing.contains(&format!("{name}/single-tool")),
        "{listing}"
    );
    // --update and --clean do not combine with a build.
    env.run(&["--build", "--release", "-o", &s(&out), "--clean"])
        .code(2)
        .stderr_has("--build does not combine");
}
