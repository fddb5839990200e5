//! Runs the composite action in `action.yml` the way the GitHub Actions runner does, on this
//! machine, and checks what a user of the action sees: staged files, step outputs, the job
//! summary, error annotations and the exit code — including for hostile input values.
//!
//! The harness (`Sandbox::run`) follows the runner's rules for composite `shell: bash` steps:
//! each `run` goes to a temp script run as `bash --noprofile --norc -eo pipefail {0}`;
//! `${{ … }}` is expanded in `env:` values only (inputs with their defaults,
//! `github.action_path`, `steps.<id>.outputs.<name>`, `runner.os`, `runner.temp`); every step
//! gets fresh `GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH` and `GITHUB_STEP_SUMMARY` files that
//! are read back afterwards (`name=value` and `name<<DELIMITER` forms, PATH prepends); a failed
//! step skips the rest; the action's `outputs` are evaluated at the end. Workflow commands in
//! the output (`::error …::`, `::stop-commands::`, the old `##[…]` form) are parsed like the
//! runner parses them.
//! Anything else in `action.yml` (another shell, `uses:`, `if:`, another expression) makes the
//! harness panic rather than guess.
//!
//! No test runs `cargo install`: the tool cache is pre-seeded with this build's binary (or with
//! small stand-in scripts), and a fake `cargo` first on PATH records any `cargo install`.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{copy_tree, host_triple, in_ci, real_cargo, skip, spawn, template, Fixture, BIN};
use yaml_rust2::{Yaml, YamlLoader};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The workflow the harness's job runs in: annotations without a file of their own point at it.
const WORKFLOW_FILE: &str = ".github/workflows/release.yml";
/// The workflow that builds and uploads the release assets.
const RELEASE_WORKFLOW: &str = ".github/workflows/release.yml";

// ------------------------------------------------------------------------------------------
// action.yml, as the runner reads it

#[derive(Debug)]
struct InputDef {
    name: String,
    default: Option<String>,
    required: bool,
}

#[derive(Debug)]
struct StepDef {
    id: Option<String>,
    run: String,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct ActionDef {
    doc: Yaml,
    inputs: Vec<InputDef>,
    outputs: Vec<(String, String)>,
    steps: Vec<StepDef>,
}

fn scalar(y: &Yaml, what: &str) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("{what}: expected a scalar, found {other:?}"),
    }
}

fn key(y: &Yaml) -> String {
    y.as_str().expect("mapping keys are strings").to_owned()
}

fn load_action() -> ActionDef {
    let text = fs::read_to_string(Path::new(REPO).join("action.yml")).expect("read action.yml");
    let mut docs = YamlLoader::load_from_str(&text).expect("action.yml is valid YAML");
    assert_eq!(docs.len(), 1, "action.yml holds one document");
    let doc = docs.remove(0);

    let mut inputs = Vec::new();
    for (k, v) in doc["inputs"].as_hash().expect("inputs mapping") {
        let name = key(k);
        for (field, _) in v.as_hash().expect("input mapping") {
            let field = key(field);
            assert!(
                ["description", "required", "default", "deprecationMessage"]
                    .contains(&field.as_str()),
                "input {name}: unknown field {field}"
            );
        }
        inputs.push(InputDef {
            default: match &v["default"] {
                Yaml::BadValue => None,
                d => Some(scalar(d, &format!("default of {name}"))),
            },
            required: v["required"].as_bool().unwrap_or(false),
            name,
        });
    }

    let mut outputs = Vec::new();
    for (k, v) in doc["outputs"].as_hash().expect("outputs mapping") {
        let value = v["value"]
            .as_str()
            .unwrap_or_else(|| panic!("output {} has no value", key(k)));
        outputs.push((key(k), value.to_owned()));
    }

    let runs = &doc["runs"];
    assert_eq!(
        runs["using"].as_str(),
        Some("composite"),
        "a composite action"
    );
    let mut steps = Vec::new();
    for step in runs["steps"].as_vec().expect("runs.steps list") {
        let mut def = StepDef {
            id: None,
            run: String::new(),
            env: Vec::new(),
        };
        let mut shell = None;
        for (k, v) in step.as_hash().expect("step mapping") {
            match key(k).as_str() {
                "id" => def.id = Some(scalar(v, "id")),
                "name" => {}
                "shell" => shell = Some(scalar(v, "shell")),
                "run" => def.run = scalar(v, "run"),
                "env" => {
                    for (ek, ev) in v.as_hash().expect("env mapping") {
                        def.env.push((key(ek), scalar(ev, "env value")));
                    }
                }
                other => panic!("the harness does not support step key `{other}` in action.yml"),
            }
        }
        assert_eq!(
            shell.as_deref(),
            Some("bash"),
            "every step runs with shell: bash"
        );
        assert!(!def.run.is_empty(), "every step has a run script");
        steps.push(def);
    }
    ActionDef {
        doc,
        inputs,
        outputs,
        steps,
    }
}

fn action() -> &'static ActionDef {
    static ACTION: OnceLock<ActionDef> = OnceLock::new();
    ACTION.get_or_init(load_action)
}

// ------------------------------------------------------------------------------------------
// Expressions, the few this action may use

struct ExprContext<'a> {
    inputs: &'a BTreeMap<String, String>,
    steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    action_path: &'a str,
    runner_temp: &'a str,
}

fn eval_expr(expr: &str, cx: &ExprContext<'_>) -> String {
    let parts: Vec<&str> = expr.trim().split('.').collect();
    match parts.as_slice() {
        ["inputs", name] => cx
            .inputs
            .get(*name)
            .cloned()
            .unwrap_or_else(|| panic!("`inputs.{name}` is not a declared input")),
        ["github", "action_path"] => cx.action_path.to_owned(),
        ["runner", "os"] => "Linux".to_owned(),
        ["runner", "temp"] => cx.runner_temp.to_owned(),
        ["steps", id, "outputs", name] => cx
            .steps
            .get(*id)
            .and_then(|o| o.get(*name))
            .cloned()
            .unwrap_or_default(),
        _ => panic!("the harness does not support the expression `{expr}`"),
    }
}

fn eval_template(text: &str, cx: &ExprContext<'_>) -> String {
    expand_expressions(text, &|expr| eval_expr(expr, cx))
}

/// `text` with every `${{ … }}` replaced by what `eval` makes of the expression inside.
fn expand_expressions(text: &str, eval: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("unterminated expression in `{text}`"));
        out.push_str(&eval(&rest[start + 3..start + end]));
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

// ------------------------------------------------------------------------------------------
// Files the runner reads back, and workflow commands

/// The runner's parser for GITHUB_OUTPUT / GITHUB_ENV files.
fn parse_file_command(text: &str, file: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), None) => {
                let (name, value) = (&line[..e], &line[e + 1..]);
                assert!(!name.is_empty(), "{file}: empty name in `{line}`");
                out.push((name.to_owned(), value.to_owned()));
            }
            (Some(e), Some(h)) if e < h => {
                let (name, value) = (&line[..e], &line[e + 1..]);
                assert!(!name.is_empty(), "{file}: empty name in `{line}`");
                out.push((name.to_owned(), value.to_owned()));
            }
            (_, Some(h)) => {
                let (name, delim) = (&line[..h], &line[h + 2..]);
                assert!(
                    !name.is_empty() && !delim.is_empty(),
                    "{file}: bad heredoc `{line}`"
                );
                let mut value = Vec::new();
                loop {
                    let l = lines.next().unwrap_or_else(|| {
                        panic!("{file}: matching delimiter `{delim}` not found")
                    });
                    if l == delim {
                        break;
                    }
                    value.push(l);
                }
                out.push((name.to_owned(), value.join("\n")));
            }
            _ => panic!("{file}: invalid format `{line}`"),
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
struct WorkflowCommand {
    name: String,
    props: BTreeMap<String, String>,
    message: String,
}

fn unescape_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(s: &str) -> String {
    unescape_data(&s.replace("%3A", ":").replace("%2C", ","))
}

/// Workflow commands in a step's output, honouring `::stop-commands::`.
fn workflow_commands(output: &str) -> Vec<WorkflowCommand> {
    let mut commands = Vec::new();
    let mut stopped: Option<String> = None;
    for line in output.lines() {
        let line = line.trim_start();
        if let Some(token) = &stopped {
            if line == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        let Some(body) = line.strip_prefix("::") else {
            // The runner also honours the old `##[command]` form anywhere in a line.
            if let Some(i) = line.find("##[") {
                commands.push(WorkflowCommand {
                    name: "##[".to_owned(),
                    props: BTreeMap::new(),
                    message: line[i..].to_owned(),
                });
            }
            continue;
        };
        let Some(end) = body.find("::") else { continue };
        let (head, message) = (&body[..end], &body[end + 2..]);
        let (name, props_text) = head.split_once(' ').unwrap_or((head, ""));
        let mut props = BTreeMap::new();
        for prop in props_text.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = prop.split_once('=').unwrap_or((prop, ""));
            props.insert(k.to_owned(), unescape_property(v));
        }
        if name == "stop-commands" {
            stopped = Some(message.to_owned());
        }
        commands.push(WorkflowCommand {
            name: name.to_owned(),
            props,
            message: unescape_data(message),
        });
    }
    commands
}

// ------------------------------------------------------------------------------------------
// The runner

#[derive(Debug)]
struct StepRun {
    id: String,
    code: i32,
    stdout: String,
    stderr: String,
}

#[derive(Debug)]
struct RunResult {
    steps: Vec<StepRun>,
    /// The exit code of the step that failed, if one did.
    failed: Option<i32>,
    outputs: BTreeMap<String, String>,
    step_outputs: BTreeMap<String, BTreeMap<String, String>>,
    commands: Vec<WorkflowCommand>,
    summary: String,
    path_added: Vec<String>,
}

impl RunResult {
    fn log(&self) -> String {
        let mut s = String::new();
        for st in &self.steps {
            s.push_str(&format!(
                "--- step {} (exit {})\n{}\n--- stderr\n{}\n",
                st.id, st.code, st.stdout, st.stderr
            ));
        }
        s
    }
    fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .unwrap_or_else(|| panic!("no output {name}\n{}", self.log()))
    }
    fn errors(&self) -> Vec<&WorkflowCommand> {
        self.commands.iter().filter(|c| c.name == "error").collect()
    }
    fn assert_ok(&self) {
        assert_eq!(self.failed, None, "the action failed\n{}", self.log());
        assert!(
            self.errors().is_empty(),
            "error annotations\n{}",
            self.log()
        );
    }
    /// Only commands the action itself means to issue appear: no injected ones.
    fn assert_only_expected_commands(&self) {
        for c in &self.commands {
            assert!(
                ["error", "warning", "stop-commands"].contains(&c.name.as_str()),
                "unexpected workflow command {c:?}\n{}",
                self.log()
            );
        }
    }
}

struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    workspace: PathBuf,
    home: PathBuf,
    runner_temp: PathBuf,
    tool_cache: PathBuf,
    fake_bin: PathBuf,
    cargo_log: PathBuf,
    /// LANG for the steps: hosted runners have C.UTF-8; minimal containers often none.
    lang: Option<&'static str>,
    /// The job's own environment (`env:` at the job level), on top of the runner's.
    job_env: Vec<(String, String)>,
    /// Where the runner checked the action out (`github.action_path`): this repository, unless
    /// a test lays out `…/_actions/OWNER/REPO/REF` as the runner does for `uses: OWNER/REPO@REF`.
    action_path: PathBuf,
}

/// Where the action's install step keeps a binary for `version`.
fn cached_bin(tool_cache: &Path, version: &str) -> PathBuf {
    tool_cache.join(format!("cargo-fastcp/{version}/x64/bin/cargo-fastcp"))
}

fn write_executable(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn real_cargo_str() -> &'static str {
    real_cargo().to_str().expect("a UTF-8 path to cargo")
}

fn fixture_source() -> PathBuf {
    Fixture::Single.source_dir()
}

/// The fixture's target directory, built once with a real `cargo build --release` (in the shared
/// template: the fixture is never built in place).
fn fixture_target() -> PathBuf {
    template(Fixture::Single).join("target")
}

/// A copy of the fixture's sources at `to`, without any `target` directory.
fn copy_fixture(to: &Path) {
    copy_tree(&fixture_source(), to, &|rel| rel.ends_with("target")).unwrap();
}

impl Sandbox {
    /// A fresh workspace (a copy of tests/fixtures/single whose target dir is the shared,
    /// already-built one), HOME, RUNNER_TEMP and tool cache. `seed` puts this build's
    /// binary in the tool cache, as a previous run of the action would have left it.
    fn new(seed: bool) -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("fastcp-action-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        let sb = Sandbox {
            workspace: root.join("work"),
            home: root.join("home"),
            runner_temp: root.join("runner-temp"),
            tool_cache: root.join("tool-cache"),
            fake_bin: root.join("fake-bin"),
            cargo_log: root.join("cargo-install.log"),
            lang: Some("C.UTF-8"),
            job_env: Vec::new(),
            action_path: PathBuf::from(REPO),
            root,
            _dir: dir,
        };
        copy_fixture(&sb.workspace);
        for d in [&sb.home, &sb.runner_temp, &sb.tool_cache] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(sb.home.join("canary"), "still here").unwrap();
        // A `cargo` that records `cargo install` (and fails it) and passes anything else on.
        write_executable(
            &sb.fake_bin.join("cargo"),
            &format!(
                "#!/bin/sh\nif [ \"$1\" = install ]; then printf '%s\\n' \"$@\" > {log}; exit 97; fi\nexec {real} \"$@\"\n",
                log = sh_quote(sb.cargo_log.to_str().unwrap()),
                real = sh_quote(real_cargo_str()),
            ),
        );
        if seed {
            let dst = cached_bin(&sb.tool_cache, VERSION);
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::copy(BIN, &dst).unwrap();
        }
        sb
    }

    fn run(&self, inputs: &[(&str, &str)]) -> RunResult {
        self.run_with(inputs, None)
    }

    /// With `file_size_limit_kib`, the steps run under `ulimit -f` with SIGXFSZ ignored, so a
    /// write past the limit fails with EFBIG: a real copy failure without root.
    fn run_with(&self, inputs: &[(&str, &str)], file_size_limit_kib: Option<u32>) -> RunResult {
        let action = action();
        let mut input_values = BTreeMap::new();
        for def in &action.inputs {
            input_values.insert(def.name.clone(), def.default.clone().unwrap_or_default());
        }
        for (name, value) in inputs {
            assert!(
                input_values.contains_key(*name),
                "`{name}` is not an input of the action"
            );
            input_values.insert((*name).to_owned(), (*value).to_owned());
        }
        for def in &action.inputs {
            if def.required {
                assert!(
                    inputs.iter().any(|(n, _)| *n == def.name),
                    "required input {} not given",
                    def.name
                );
            }
        }

        let mut path_dirs: Vec<String> = vec![self.fake_bin.to_str().unwrap().to_owned()];
        path_dirs.extend(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|p| p.to_string_lossy().into_owned()),
        );
        let real_home = std::env::var("HOME").unwrap_or_default();
        let mut base_env: BTreeMap<String, String> = BTreeMap::new();
        base_env.insert(
            "CARGO_HOME".into(),
            std::env::var("CARGO_HOME").unwrap_or(format!("{real_home}/.cargo")),
        );
        base_env.insert(
            "RUSTUP_HOME".into(),
            std::env::var("RUSTUP_HOME").unwrap_or(format!("{real_home}/.rustup")),
        );
        if let Ok(t) = std::env::var("RUSTUP_TOOLCHAIN") {
            base_env.insert("RUSTUP_TOOLCHAIN".into(), t);
        }
        base_env.insert("CARGO".into(), real_cargo_str().to_owned());
        let ws = self.workspace.to_str().unwrap().to_owned();
        let fixed = [
            ("HOME", self.home.to_str().unwrap().to_owned()),
            ("TMPDIR", self.runner_temp.to_str().unwrap().to_owned()),
            (
                "CARGO_TARGET_DIR",
                fixture_target().to_str().unwrap().to_owned(),
            ),
            ("CI", "true".into()),
            ("GITHUB_ACTIONS", "true".into()),
            (
                "GITHUB_ACTION_PATH",
                self.action_path.to_str().unwrap().into(),
            ),
            ("GITHUB_WORKSPACE", ws.clone()),
            ("GITHUB_REPOSITORY", "octo/app".into()),
            (
                "GITHUB_WORKFLOW_REF",
                format!("octo/app/{WORKFLOW_FILE}@refs/heads/main"),
            ),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
            ("RUNNER_TEMP", self.runner_temp.to_str().unwrap().into()),
            (
                "RUNNER_TOOL_CACHE",
                self.tool_cache.to_str().unwrap().into(),
            ),
        ];
        for (k, v) in fixed {
            base_env.insert(k.into(), v);
        }
        for (k, v) in &self.job_env {
            base_env.insert(k.clone(), v.clone());
        }
        if let Some(lang) = self.lang {
            base_env.insert("LANG".into(), lang.into());
        }

        let mut result = RunResult {
            steps: Vec::new(),
            failed: None,
            outputs: BTreeMap::new(),
            step_outputs: BTreeMap::new(),
            commands: Vec::new(),
            summary: String::new(),
            path_added: Vec::new(),
        };
        let files = self.root.join("files");
        fs::create_dir_all(&files).unwrap();
        for (n, step) in action.steps.iter().enumerate() {
            let id = step.id.clone().unwrap_or(format!("__{n}"));
            let cx = ExprContext {
                inputs: &input_values,
                steps: &result.step_outputs,
                action_path: self.action_path.to_str().unwrap(),
                runner_temp: self.runner_temp.to_str().unwrap(),
            };
            let step_env: Vec<(String, String)> = step
                .env
                .iter()
                .map(|(k, v)| (k.clone(), eval_template(v, &cx)))
                .collect();
            let script = self.runner_temp.join(format!("step-{n}.sh"));
            fs::write(&script, &step.run).unwrap();
            let file = |name: &str| {
                let p = files.join(format!("{n}-{name}"));
                fs::write(&p, "").unwrap();
                p
            };
            let (output_file, env_file, path_file, summary_file) =
                (file("output"), file("env"), file("path"), file("summary"));
            let mut bash = Command::new("bash");
            if let Some(kib) = file_size_limit_kib {
                bash.arg("-c").arg(format!(
                    "ulimit -f {kib}; trap '' XFSZ; exec bash --noprofile --norc -eo pipefail \"$0\""
                ));
            } else {
                bash.args(["--noprofile", "--norc", "-eo", "pipefail"]);
            }
            let out = bash
                .arg(&script)
                .current_dir(&self.workspace)
                .env_clear()
                .envs(&base_env)
                .env("PATH", path_dirs.join(":"))
                .env("GITHUB_OUTPUT", &output_file)
                .env("GITHUB_ENV", &env_file)
                .env("GITHUB_PATH", &path_file)
                .env("GITHUB_STEP_SUMMARY", &summary_file)
                .envs(step_env)
                .output()
                .expect("run bash");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            result.commands.extend(workflow_commands(&stdout));
            result.commands.extend(workflow_commands(&stderr));
            let outputs =
                parse_file_command(&fs::read_to_string(&output_file).unwrap(), "GITHUB_OUTPUT");
            result
                .step_outputs
                .insert(id.clone(), outputs.into_iter().collect());
            for (k, v) in parse_file_command(&fs::read_to_string(&env_file).unwrap(), "GITHUB_ENV")
            {
                base_env.insert(k, v);
            }
            for line in fs::read_to_string(&path_file).unwrap().lines() {
                let line = line.trim();
                if !line.is_empty() {
                    path_dirs.insert(0, line.to_owned());
                    result.path_added.push(line.to_owned());
                }
            }
            result
                .summary
                .push_str(&fs::read_to_string(&summary_file).unwrap());
            let code = out.status.code().unwrap_or(-1);
            result.steps.push(StepRun {
                id,
                code,
                stdout,
                stderr,
            });
            if code != 0 {
                result.failed = Some(code);
                break;
            }
        }
        let cx = ExprContext {
            inputs: &input_values,
            steps: &result.step_outputs,
            action_path: self.action_path.to_str().unwrap(),
            runner_temp: self.runner_temp.to_str().unwrap(),
        };
        result.outputs = action
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), eval_template(v, &cx)))
            .collect();
        result
    }

    /// Every path under the sandbox (and the fixture's target dir) whose name contains `needle`.
    fn find_named(&self, needle: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, needle: &str, hits: &mut Vec<PathBuf>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if e.file_name().to_string_lossy().contains(needle) {
                    hits.push(p.clone());
                }
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&p, needle, hits);
                }
            }
        }
        let mut hits = Vec::new();
        walk(&self.root, needle, &mut hits);
        hits
    }

    fn assert_nothing_ran(&self, result: &RunResult) {
        // `pwned` only ever appears as part of the literal names the tests create.
        let hits: Vec<_> = self
            .find_named("pwned")
            .into_iter()
            .filter(|p| p.file_name().unwrap() == "pwned")
            .collect();
        assert!(
            hits.is_empty(),
            "injected command ran: {hits:?}\n{}",
            result.log()
        );
        assert!(
            !Path::new(REPO).join("pwned").exists()
                && !std::env::current_dir().unwrap().join("pwned").exists(),
            "injected command ran in the repo"
        );
        assert_eq!(
            fs::read_to_string(self.home.join("canary")).ok().as_deref(),
            Some("still here"),
            "HOME was touched\n{}",
            result.log()
        );
        result.assert_only_expected_commands();
    }
}

/// A stand-in cargo-fastcp that reports `version`, records its arguments (NUL-separated) and
/// prints `body` (JSON lines) before exiting with `code`.
fn stub_tool(path: &Path, version: &str, argv_file: &Path, body: &str, code: i32) {
    write_executable(
        path,
        &format!(
            "#!/bin/bash\nif [ \"$1\" = --version ]; then echo 'cargo-fastcp {version}'; exit 0; fi\n\
             printf '%s\\0' \"$@\" > {argv}\ncat <<'JSON'\n{body}\nJSON\nexit {code}\n",
            argv = sh_quote(argv_file.to_str().unwrap()),
        ),
    );
}

impl Sandbox {
    /// The arguments the action passed, with the manifest path it chose (a fresh `.jsonl`
    /// under RUNNER_TEMP) replaced by `<manifest>`.
    fn argv_with_manifest(&self, argv_file: &Path) -> Vec<String> {
        let mut argv = read_argv(argv_file);
        let i = argv
            .iter()
            .position(|a| a == "--manifest")
            .expect("--manifest is passed")
            + 1;
        let manifest = Path::new(&argv[i]);
        assert!(
            manifest.starts_with(&self.runner_temp) && argv[i].ends_with(".jsonl"),
            "{argv:?}"
        );
        argv[i] = "<manifest>".into();
        argv
    }
}

fn read_argv(path: &Path) -> Vec<String> {
    let raw = fs::read(path).expect("the tool was run");
    let mut v: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect();
    assert_eq!(v.pop().as_deref(), Some(""), "NUL-terminated");
    v
}

fn manifest_lines(path: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("manifest {path}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

impl Sandbox {
    /// A stand-in tool of this version in the tool cache that prints [`SUMMARY_OK`]: returns
    /// the file its arguments go to (see [`read_argv`]).
    fn stub_cached_tool(&self) -> PathBuf {
        let argv_file = self.root.join("argv");
        stub_tool(
            &cached_bin(&self.tool_cache, VERSION),
            VERSION,
            &argv_file,
            SUMMARY_OK,
            0,
        );
        argv_file
    }

    /// The arguments the last `cargo install` got, one a line.
    fn cargo_install_log(&self) -> Vec<String> {
        fs::read_to_string(&self.cargo_log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// What the action passes to `cargo install` to put a build for this host into the tool
    /// cache under `version`, then `what` (`--path REPO`, or the crate and its version).
    fn install_args(&self, version: &str, what: &[&str]) -> Vec<String> {
        let root = self.tool_cache.join(format!("cargo-fastcp/{version}/x64"));
        let build_dir = self.runner_temp.join("cargo-fastcp-build");
        let head = [
            "install",
            "--locked",
            "--root",
            root.to_str().unwrap(),
            "--target",
            host_triple(),
            "--target-dir",
            build_dir.to_str().unwrap(),
        ];
        head.iter().chain(what).map(|a| a.to_string()).collect()
    }
}

// ------------------------------------------------------------------------------------------
// The action's definition

#[test]
fn action_yml_has_the_documented_interface() {
    let a = action();
    let names: Vec<&str> = a.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "out-dir",
            "patterns",
            "packages",
            "bins",
            "examples",
            "crate-types",
            "profile",
            "targets",
            "manifest-path",
            "exclude-globs",
            "engine",
            "dry-run",
            "build",
            "args",
            "version",
            "release-base-url",
            "checksums",
            "archive",
            "archive-name"
        ]
    );
    let required: Vec<&str> = a
        .inputs
        .iter()
        .filter(|i| i.required)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(required, ["out-dir"]);
    let profile = a.inputs.iter().find(|i| i.name == "profile").unwrap();
    assert_eq!(profile.default.as_deref(), Some("release"));
    let outputs: Vec<&str> = a.outputs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        outputs,
        [
            "files",
            "bytes",
            "engine",
            "out-dir",
            "manifest",
            "archive",
            "checksums-file"
        ]
    );

    let description = a.doc["description"].as_str().expect("description");
    assert!(!description.contains('\n') && description.len() < 200);
    assert!(a.doc["branding"]["icon"].as_str().is_some());
    assert!(a.doc["branding"]["color"].as_str().is_some());
}

#[test]
fn inputs_reach_scripts_only_through_env() {
    let a = action();
    let mut used = Vec::new();
    for step in &a.steps {
        assert!(
            !step.run.contains("${{"),
            "a run script expands an expression; pass it through env: instead"
        );
        for (_, v) in &step.env {
            let mut rest = v.as_str();
            while let Some(i) = rest.find("${{") {
                let end = rest[i..].find("}}").unwrap();
                let expr = rest[i + 3..i + end].trim();
                if let Some(name) = expr.strip_prefix("inputs.") {
                    used.push(name.to_owned());
                }
                rest = &rest[i + end + 2..];
            }
        }
    }
    for input in &a.inputs {
        assert!(
            used.contains(&input.name),
            "input {} reaches no step",
            input.name
        );
    }
}

/// Outside CI a missing shellcheck is a printed SKIP; in CI (`CI` set) it fails the test, since
/// `.ci/run` installs it.
#[test]
fn step_scripts_pass_shellcheck_when_it_is_installed() {
    const NAME: &str = "step_scripts_pass_shellcheck_when_it_is_installed";
    let probe = match Command::new("shellcheck").arg("--version").output() {
        Ok(probe) => probe,
        Err(e) if in_ci() => {
            panic!(
                "shellcheck cannot run ({e}), and CI is set: CI must have it (.ci/run installs it)"
            )
        }
        Err(e) => return skip(NAME, &format!("shellcheck is not installed ({e})")),
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    for (n, step) in action().steps.iter().enumerate() {
        let script = dir.path().join(format!("step-{n}.sh"));
        fs::write(&script, &step.run).unwrap();
        let out = Command::new("shellcheck")
            // FASTCP_* come from env:, which shellcheck cannot see.
            .args(["--shell=bash", "--exclude=SC2153,SC2154"])
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck on step {n}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

// ------------------------------------------------------------------------------------------
// With the real cargo-fastcp

#[test]
fn stages_artifacts_and_reports_outputs_and_summary() {
    let sb = Sandbox::new(true);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("bins", "single-tool"),
        ("patterns", "README.md\nassets/**\n"),
        ("exclude-globs", "**/deeper/**"),
    ]);
    r.assert_ok();

    // No cargo install: the seeded binary was reused, and its directory was put on PATH.
    assert!(!sb.cargo_log.exists(), "cargo install ran\n{}", r.log());
    let cached = cached_bin(&sb.tool_cache, VERSION);
    assert_eq!(r.step_outputs["install"]["bin"], cached.to_str().unwrap());
    assert_eq!(r.path_added, [cached.parent().unwrap().to_str().unwrap()]);

    let out_dir = sb.workspace.join("dist");
    assert_eq!(r.output("out-dir"), out_dir.to_str().unwrap());
    let expected = [
        "single-tool",
        "README.md",
        "assets/a.txt",
        "assets/sub/b.json",
    ];
    let mut total = 0;
    for f in expected {
        let staged = fs::read(out_dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{}", r.log()));
        total += staged.len() as u64;
        if f != "single-tool" {
            assert_eq!(staged, fs::read(sb.workspace.join(f)).unwrap(), "{f}");
        }
    }
    assert!(
        !out_dir.join("assets/sub/deeper/c.json").exists(),
        "excluded"
    );
    assert_eq!(r.output("files"), "4");
    assert_eq!(r.output("bytes"), total.to_string());
    let engine = r.output("engine");
    assert!(["io-uring", "portable"].contains(&engine), "{engine}");

    let manifest = r.output("manifest");
    assert!(
        Path::new(manifest).starts_with(&sb.runner_temp),
        "{manifest}"
    );
    let lines = manifest_lines(manifest);
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4]["reason"], "summary");
    assert_eq!(lines[4]["files"], 4);
    assert!(lines[..4].iter().all(|l| l["reason"] == "copied"));

    let s = &r.summary;
    assert!(s.contains("| artifact | kind | size |"), "{s}");
    assert!(s.contains("| <code>single-tool</code> | bin |"), "{s}");
    assert!(
        s.contains("| <code>README.md</code> | file | 63 B |"),
        "{s}"
    );
    assert!(
        s.contains("| <code>assets/sub/b.json</code> | file |"),
        "{s}"
    );
    assert!(s.contains(&format!("with the **{engine}** engine")), "{s}");
    assert!(s.contains("Staged **4** file(s)"), "{s}");
    assert!(s.contains(&format!("({total} bytes)")), "{s}");
}

#[test]
fn dry_run_plans_and_writes_nothing() {
    let sb = Sandbox::new(true);
    // The default profile (release) selects the artifacts alongside the patterns.
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("patterns", "assets/**"),
        ("dry-run", "true"),
    ]);
    r.assert_ok();
    assert!(!sb.workspace.join("dist").exists());
    assert_eq!(r.output("files"), "4");
    let lines = manifest_lines(r.output("manifest"));
    assert!(lines[..4].iter().all(|l| l["reason"] == "planned"));
    assert_eq!(lines[4]["reason"], "summary");
    let s = &r.summary;
    assert!(s.contains("Dry run: **4** file(s)"), "{s}");
    assert!(s.contains("| <code>single-tool</code> | bin |"), "{s}");
    assert!(
        s.contains("| <code>assets/sub/deeper/c.json</code> | file | 30 B |"),
        "{s}"
    );

    // With an empty profile, patterns alone select only what they match.
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("patterns", "assets/**"),
        ("profile", ""),
        ("dry-run", "yes"),
    ]);
    r.assert_ok();
    assert_eq!(r.output("files"), "3");
    assert!(!r.summary.contains("single-tool"), "{}", r.summary);
}

#[test]
fn a_failing_run_annotates_the_cause_and_exits_with_the_tools_code() {
    let sb = Sandbox::new(true);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("patterns", "README.md\nnot-there-100%,a:b"),
    ]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    let errors = r.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0];
    assert_eq!(e.props.get("file").map(String::as_str), Some(WORKFLOW_FILE));
    assert_eq!(e.props["title"], "cargo-fastcp failed (exit code 2)");
    assert!(
        e.message
            .contains("pattern `not-there-100%,a:b` matched nothing"),
        "{e:?}"
    );
    // Escaped per the workflow-command rules in the raw log.
    let raw = &r.steps[1].stdout;
    assert!(raw.contains("not-there-100%25,a:b"), "{raw}");
    assert_eq!(r.output("files"), "0");
    assert_eq!(r.output("bytes"), "0");
    assert!(Path::new(r.output("manifest")).exists());
    assert!(
        r.summary
            .contains("**Failed with exit code 2**; nothing was staged into <code>"),
        "{}",
        r.summary
    );
    assert!(
        r.summary
            .contains("<pre>nothing was copied: pattern `not-there-100%,a:b` matched nothing"),
        "{}",
        r.summary
    );
    assert!(!sb.workspace.join("dist/README.md").exists());
}

#[test]
fn hostile_values_are_literal_for_the_real_tool() {
    for lang in [Some("C.UTF-8"), None] {
        hostile_values_with(lang);
    }
}

fn hostile_values_with(lang: Option<&'static str>) {
    let mut sb = Sandbox::new(true);
    sb.lang = lang;
    let hostile = [
        "$(touch pwned)",
        "`touch pwned`",
        "; touch pwned; rm -rf ~",
        "a' b",
        "new\nline",
        "café ☕",
    ];
    let assets = sb.workspace.join("assets");
    for name in hostile {
        fs::write(assets.join(name), name).unwrap();
    }
    // The newline cannot be in a pattern (one per line), but a glob can match it.
    let patterns = "assets/$(touch pwned)\nassets/`touch pwned`\nassets/; touch pwned; rm -rf ~\nassets/a' b\nassets/new?line\nassets/café ☕\n";
    let out = "out $(touch pwned) `id`\n; rm -rf ~ 'x";
    let r = sb.run(&[
        ("out-dir", out),
        ("patterns", patterns),
        ("profile", ""),
        ("exclude-globs", "$(touch pwned).bak\n`id`.bak"),
        ("args", "--exclude-glob\n; touch pwned; rm -rf ~.orig\n"),
    ]);
    r.assert_ok();
    sb.assert_nothing_ran(&r);
    let out_dir = sb.workspace.join(out);
    assert_eq!(r.output("out-dir"), out_dir.to_str().unwrap());
    for name in hostile {
        assert_eq!(
            fs::read_to_string(out_dir.join("assets").join(name)).unwrap_or_default(),
            name,
            "{name:?} staged under its literal name\n{}",
            r.log()
        );
    }
    assert_eq!(r.output("files"), "6");
    // The summary shows the names (escaped for markdown/HTML), newline included.
    let s = &r.summary;
    for cell in [
        "<code>assets/$(touch pwned)</code>",
        "<code>assets/&#96;touch pwned&#96;</code>",
        "<code>assets/; touch pwned; rm -rf ~</code>",
        "<code>assets/a' b</code>",
        "<code>assets/new\\nline</code>",
        "<code>assets/café ☕</code>",
    ] {
        assert!(s.contains(cell), "{cell} in\n{s}");
    }
}

#[test]
fn hostile_profile_and_manifest_path_fail_cleanly() {
    let sb = Sandbox::new(true);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("bins", "single-tool"),
        ("profile", "$(touch pwned)\n`touch pwned`"),
    ]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    sb.assert_nothing_ran(&r);
    let e = r.errors();
    assert!(
        e[0].message
            .contains("invalid profile name `$(touch pwned)\n`touch pwned``")
            || e[0].message.contains("$(touch pwned)\n`touch pwned`"),
        "{e:?}"
    );

    let r = sb.run(&[
        ("out-dir", "dist"),
        ("manifest-path", "nope/$(touch pwned)/Cargo.toml"),
    ]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    sb.assert_nothing_ran(&r);
    assert!(
        r.errors()[0]
            .message
            .contains("nope/$(touch pwned)/Cargo.toml"),
        "{:?}",
        r.errors()
    );
}

// ------------------------------------------------------------------------------------------
// With a stand-in cargo-fastcp: exact arguments, failures, install logic

const SUMMARY_OK: &str =
    r#"{"reason":"summary","files":0,"bytes":0,"engine":"portable","elapsed_ms":1,"errors":0}"#;

#[test]
fn every_input_arrives_as_literal_arguments() {
    let sb = Sandbox::new(false);
    let argv_file = sb.stub_cached_tool();
    let r = sb.run(&[
        ("out-dir", "o $(touch pwned)\n`id`"),
        (
            "patterns",
            "  $(touch pwned)  \n\n`id`\n; rm -rf ~\na' b\n-looks-like-a-flag\n::error::injected\nx ##[warning]injected",
        ),
        ("packages", "app, $(touch pwned)\n`id`,; rm -rf ~"),
        ("bins", "a' b"),
        ("examples", "ex1 ,ex2"),
        ("crate-types", "cdylib,\nstaticlib"),
        ("profile", "dist $(touch pwned)"),
        ("targets", "x86_64-unknown-linux-musl\naarch64-apple-darwin"),
        ("manifest-path", "crates/$(touch pwned)/Cargo.toml"),
        ("exclude-globs", "*.{pdb,d}\n`id`"),
        ("engine", "portable; touch pwned"),
        ("dry-run", "TRUE"),
        ("args", "--jobs\n2\n  spaced arg  \n$(touch pwned)\r\n::add-mask::x\n"),
    ]);
    r.assert_ok();
    sb.assert_nothing_ran(&r);
    let expected = [
        "fastcp",
        "--out-dir",
        "o $(touch pwned)\n`id`",
        "--github-output",
        "--manifest",
        "<manifest>",
        "--manifest-path",
        "crates/$(touch pwned)/Cargo.toml",
        "--profile",
        "dist $(touch pwned)",
        "--package",
        "app",
        "--package",
        "$(touch pwned)",
        "--package",
        "`id`",
        "--package",
        "; rm -rf ~",
        "--bin",
        "a' b",
        "--example",
        "ex1",
        "--example",
        "ex2",
        "--crate-type",
        "cdylib",
        "--crate-type",
        "staticlib",
        "--target",
        "x86_64-unknown-linux-musl",
        "--target",
        "aarch64-apple-darwin",
        "--exclude-glob",
        "*.{pdb,d}",
        "--exclude-glob",
        "`id`",
        "--engine",
        "portable; touch pwned",
        "--dry-run",
        "--jobs",
        "2",
        "  spaced arg  ",
        "$(touch pwned)",
        "::add-mask::x",
        "--",
        "$(touch pwned)",
        "`id`",
        "; rm -rf ~",
        "a' b",
        "-looks-like-a-flag",
        "::error::injected",
        "x ##[warning]injected",
    ];
    assert_eq!(sb.argv_with_manifest(&argv_file), expected);
}

#[test]
fn defaults_and_explicit_profile_arguments() {
    let sb = Sandbox::new(false);
    let argv_file = sb.stub_cached_tool();
    sb.run(&[("out-dir", "/abs/dist")]).assert_ok();
    assert_eq!(
        sb.argv_with_manifest(&argv_file),
        [
            "fastcp",
            "--out-dir",
            "/abs/dist",
            "--github-output",
            "--manifest",
            "<manifest>",
            "--profile",
            "release"
        ]
    );
    // --from and --release conflict with --profile: the explicit argument wins.
    for extra in ["--from\nsite", "--release", "--profile=dev"] {
        sb.run(&[("out-dir", "d"), ("args", extra), ("profile", "release")])
            .assert_ok();
        let argv = read_argv(&argv_file);
        assert!(!argv.contains(&"--profile".to_owned()), "{argv:?}");
    }
    sb.run(&[("out-dir", "d"), ("args", "--\nlit"), ("patterns", "-p")])
        .assert_ok();
    assert_eq!(
        read_argv(&argv_file)[6..],
        ["--profile", "release", "--", "lit", "-p"]
    );
    let r = sb.run(&[("out-dir", "d"), ("dry-run", "maybe")]);
    assert_eq!(r.failed, Some(2));
    assert!(r.errors()[0]
        .message
        .contains("dry-run must be true or false"));
    // `build` (default off) passes --build.
    sb.run(&[("out-dir", "d"), ("build", "true")]).assert_ok();
    assert_eq!(
        read_argv(&argv_file)[6..],
        ["--profile", "release", "--build"]
    );
    let r = sb.run(&[("out-dir", "d"), ("build", "maybe")]);
    assert_eq!(r.failed, Some(2));
    assert!(r.errors()[0]
        .message
        .contains("build must be true or false"));
    let r = sb.run(&[("out-dir", "  ")]);
    assert_eq!(r.failed, Some(2));
    assert!(r.errors()[0].message.contains("out-dir input is required"));
}

#[test]
fn failed_copies_become_file_annotations() {
    let sb = Sandbox::new(true);
    // Bigger than the 64 KiB file-size limit below: writing it fails with EFBIG.
    let weird = "assets/we,ird:50%.txt";
    fs::write(sb.workspace.join(weird), vec![b'x'; 100 * 1024]).unwrap();
    let r = sb.run_with(
        &[
            ("out-dir", "dist"),
            ("profile", ""),
            ("patterns", &format!("README.md\n{weird}")),
        ],
        Some(64),
    );
    assert_eq!(r.failed, Some(1), "{}", r.log());
    let errors = r.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].props["file"], weird);
    assert_eq!(
        errors[0].props["title"],
        "cargo-fastcp: could not copy a file"
    );
    assert!(errors[0].message.contains("File too large"), "{errors:?}");
    assert_eq!(
        errors[1].props["title"],
        "cargo-fastcp failed (exit code 1)"
    );
    assert!(errors[1].message.contains("1 file(s) could not be copied"));
    // Raw escaping on the wire.
    let raw = &r.steps[1].stdout;
    assert!(raw.contains("file=assets/we%2Cird%3A50%25.txt,"), "{raw}");
    assert!(
        raw.contains("title=cargo-fastcp%3A could not copy a file::"),
        "{raw}"
    );

    assert_eq!(r.output("files"), "1");
    assert_eq!(r.output("bytes"), "63");
    assert!(["io-uring", "portable"].contains(&r.output("engine")));
    let s = &r.summary;
    assert!(
        s.contains("| <code>README.md</code> | file | 63 B |"),
        "{s}"
    );
    assert!(s.contains("**1 file(s) failed:**"), "{s}");
    assert!(s.contains("**1 error(s).**"), "{s}");
    assert!(
        s.contains("| <code>assets/we,ird:50%.txt</code> | cannot "),
        "{s}"
    );
}

#[test]
fn a_real_copy_failure_fails_the_step_with_exit_code_1() {
    let sb = Sandbox::new(true);
    // single-tool is far bigger than 64 KiB: writing it fails; README.md is copied.
    let r = sb.run_with(&[("out-dir", "dist"), ("patterns", "README.md")], Some(64));
    assert_eq!(r.failed, Some(1), "{}", r.log());
    let errors = r.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let target = fixture_target().join("release/single-tool");
    assert_eq!(errors[0].props["file"], target.to_str().unwrap());
    assert_eq!(
        errors[0].props["title"],
        "cargo-fastcp: could not copy a file"
    );
    assert!(errors[0].message.contains("File too large"), "{errors:?}");
    assert_eq!(errors[1].props["file"], WORKFLOW_FILE);
    assert_eq!(
        errors[1].props["title"],
        "cargo-fastcp failed (exit code 1)"
    );
    assert_eq!(r.output("files"), "1");
    assert_eq!(r.output("bytes"), "63");
    assert!(sb.workspace.join("dist/README.md").exists());
    assert!(!sb.workspace.join("dist/single-tool").exists());
    let s = &r.summary;
    assert!(
        s.contains("| <code>README.md</code> | file | 63 B |"),
        "{s}"
    );
    assert!(s.contains("**1 file(s) failed:**"), "{s}");
    assert!(s.contains("File too large"), "{s}");
    assert!(s.contains("**cargo-fastcp exited with code 1.**"), "{s}");
}

#[test]
fn tool_output_cannot_issue_workflow_commands() {
    let sb = Sandbox::new(false);
    let argv_file = sb.root.join("argv");
    let tool = cached_bin(&sb.tool_cache, VERSION);
    write_executable(
        &tool,
        &format!(
            "#!/bin/bash\nif [ \"$1\" = --version ]; then echo 'cargo-fastcp {VERSION}'; exit 0; fi\n\
             : > {argv}\necho '::add-mask::secret' >&2\necho '::error::injected' >&2\n\
             echo 'error: pattern `x` matched nothing' >&2\nexit 2\n",
            argv = sh_quote(argv_file.to_str().unwrap())
        ),
    );
    let r = sb.run(&[("out-dir", "dist")]);
    assert_eq!(r.failed, Some(2));
    let errors = r.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].message, "pattern `x` matched nothing");
    assert!(!r.commands.iter().any(|c| c.name == "add-mask"));
    // …but the tool's stderr is still in the log.
    assert!(r.steps[1].stdout.contains("::error::injected"));
}

#[test]
fn a_cached_binary_of_the_wanted_version_is_reused() {
    // In the tool cache (the common case) the seeded binary is used: see
    // stages_artifacts_and_reports_outputs_and_summary. Here: on PATH instead.
    let sb = Sandbox::new(false);
    let on_path = sb.fake_bin.join("cargo-fastcp");
    fs::copy(BIN, &on_path).unwrap();
    let r = sb.run(&[("out-dir", "dist"), ("patterns", "LICENSE")]);
    r.assert_ok();
    assert!(!sb.cargo_log.exists(), "cargo install ran\n{}", r.log());
    assert_eq!(r.step_outputs["install"]["bin"], on_path.to_str().unwrap());
    assert_eq!(r.step_outputs["install"]["version"], VERSION);
    assert_eq!(r.step_outputs["install"]["source"], "cached");
    assert!(
        r.steps[0].stdout.contains(&format!(
            "cargo-fastcp install: reusing cargo-fastcp {VERSION} at {}",
            on_path.display()
        )),
        "{}",
        r.log()
    );
    assert!(sb.workspace.join("dist/LICENSE").exists());
}

#[test]
fn another_version_is_installed_with_cargo_install() {
    let sb = Sandbox::new(false);
    // A stale binary of another version in the tool cache, and one on PATH.
    let stale = cached_bin(&sb.tool_cache, VERSION);
    stub_tool(&stale, "0.0.1", &sb.root.join("unused"), SUMMARY_OK, 0);
    stub_tool(
        &sb.fake_bin.join("cargo-fastcp"),
        "0.0.2",
        &sb.root.join("unused"),
        SUMMARY_OK,
        0,
    );
    // A `cargo install` that records its arguments and "installs" a stand-in reporting the
    // version it was asked for (this crate's version for --path).
    let argv_file = sb.root.join("argv");
    let template = sb.root.join("stub-template");
    write_executable(
        &template,
        &format!(
            "#!/bin/bash\nif [ \"$1\" = --version ]; then echo \"cargo-fastcp $(cat \"$(dirname \"$0\")/VERSION\")\"; exit 0; fi\n\
             printf '%s\\0' \"$@\" > {argv}\necho {summary}\n",
            argv = sh_quote(argv_file.to_str().unwrap()),
            summary = sh_quote(SUMMARY_OK),
        ),
    );
    write_executable(
        &sb.fake_bin.join("cargo"),
        &format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > {log}\nroot='' want={VERSION}\n\
             while [ $# -gt 0 ]; do case $1 in --root) root=$2; shift;; --version) want=$2; shift;; esac; shift; done\n\
             mkdir -p \"$root/bin\"\ncp {template} \"$root/bin/cargo-fastcp\"\necho \"$want\" > \"$root/bin/VERSION\"\n",
            log = sh_quote(sb.cargo_log.to_str().unwrap()),
            template = sh_quote(template.to_str().unwrap()),
        ),
    );
    let tool_dir = |v: &str| sb.tool_cache.join(format!("cargo-fastcp/{v}/x64"));

    let r = sb.run(&[("out-dir", "dist")]);
    r.assert_ok();
    assert_eq!(
        sb.cargo_install_log(),
        sb.install_args(VERSION, &["--path", REPO])
    );
    assert_eq!(r.step_outputs["install"]["bin"], stale.to_str().unwrap());
    // Each choice is announced with its reason.
    let log = &r.steps[0].stdout;
    for line in [
        format!(
            "not reusing {}: it is version 0.0.1, {VERSION} is wanted",
            stale.display()
        ),
        format!(
            "not reusing {}: it is version 0.0.2, {VERSION} is wanted",
            sb.fake_bin.join("cargo-fastcp").display()
        ),
        format!(
            "no release of cargo-fastcp {VERSION} (the action runs from a local checkout, not from a release): building the action's own checkout"
        ),
    ] {
        assert!(log.contains(&line), "{line}\n{}", r.log());
    }
    assert!(read_argv(&argv_file).starts_with(&["fastcp".to_owned()]));

    let r = sb.run(&[("out-dir", "dist"), ("version", "v9.8.7")]);
    r.assert_ok();
    let root = tool_dir("9.8.7");
    assert_eq!(
        sb.cargo_install_log(),
        sb.install_args("9.8.7", &["cargo-fastcp", "--version", "9.8.7"])
    );
    assert_eq!(
        r.step_outputs["install"]["bin"],
        root.join("bin/cargo-fastcp").to_str().unwrap()
    );

    // Installed once, reused the next time.
    fs::remove_file(&sb.cargo_log).unwrap();
    sb.run(&[("out-dir", "dist"), ("version", "9.8.7")])
        .assert_ok();
    assert!(!sb.cargo_log.exists());

    // `latest` always asks cargo, which knows whether a newer release exists.
    let r = sb.run(&[("out-dir", "dist"), ("version", "latest")]);
    r.assert_ok();
    assert!(
        r.steps[0].stdout.contains(
            "version 'latest' has no fixed release asset to download: building the newest release with cargo install"
        ),
        "{}",
        r.log()
    );
    assert_eq!(
        sb.cargo_install_log(),
        sb.install_args("latest", &["cargo-fastcp"])
    );
}

#[test]
fn a_bad_version_input_or_failed_install_fails_the_action() {
    let sb = Sandbox::new(false);
    let r = sb.run(&[("out-dir", "dist"), ("version", "1.0; touch pwned")]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    sb.assert_nothing_ran(&r);
    assert_eq!(r.steps.len(), 1, "the run step is skipped");
    assert!(r.errors()[0].message.contains("version must be empty"));

    // The fake cargo's install fails (exit 97).
    let r = sb.run(&[("out-dir", "dist")]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    assert!(sb.cargo_log.exists());
    assert_eq!(r.errors()[0].props["title"], "cargo-fastcp: install failed");
    assert_eq!(r.output("files"), "");
}

// ------------------------------------------------------------------------------------------
// The harness itself

/// The stand-in `cargo` first on the steps' PATH hands everything but `cargo install` to the real
/// cargo by absolute path, found before any PATH is changed: with `CARGO` unset (the test binary
/// run directly) a bare `cargo` would be the stand-in itself, exec'ing itself forever.
#[test]
fn the_fake_cargo_runs_the_real_cargo_by_absolute_path() {
    const NAME: &str = "the_fake_cargo_runs_the_real_cargo_by_absolute_path";
    let sb = Sandbox::new(false);
    match common::find_cargo(None, std::env::var_os("PATH")) {
        Some(found) => assert!(
            found.is_absolute() && !found.starts_with(&sb.fake_bin),
            "without CARGO the harness would run {}",
            found.display()
        ),
        None => skip(
            NAME,
            "no cargo on PATH: the rule without CARGO is not checked",
        ),
    }
    let mut path = vec![sb.fake_bin.clone()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut c = Command::new(sb.fake_bin.join("cargo"));
    c.arg("--version")
        .env_remove("CARGO")
        .env("PATH", std::env::join_paths(path).unwrap());
    let d = spawn(c)
        .wait_within(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the stand-in cargo never reached the real one: {e}"));
    d.expect_code(0, "`cargo --version` through the stand-in");
    assert!(d.stdout.starts_with("cargo "), "{}", d.describe());
}

#[test]
fn harness_parses_file_commands_like_the_runner() {
    let parsed = parse_file_command(
        "a=1\nb<<EOF\nx\n\ny=z\nEOF\n\nc=d=e\nd<<X\nX\n",
        "GITHUB_OUTPUT",
    );
    let want = [("a", "1"), ("b", "x\n\ny=z"), ("c", "d=e"), ("d", "")];
    assert_eq!(
        parsed,
        want.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
    );
    let cmds = workflow_commands(
        "::error file=a%2Cb,title=t%3A1::m%0Ax\n::stop-commands::tok\n::error::no\n::tok::\n::warning::w",
    );
    assert_eq!(cmds.len(), 3);
    assert_eq!(cmds[0].props["file"], "a,b");
    assert_eq!(cmds[0].props["title"], "t:1");
    assert_eq!(cmds[0].message, "m\nx");
    assert_eq!(cmds[2].name, "warning");
}

#[test]
fn the_summary_table_is_capped_and_the_manifest_lists_everything() {
    let sb = Sandbox::new(true);
    let many = sb.workspace.join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..512 {
        fs::write(many.join(format!("f{i:04}.txt")), i.to_string()).unwrap();
    }
    let r = sb.run(&[("out-dir", "dist"), ("profile", ""), ("patterns", "many/*")]);
    r.assert_ok();
    assert_eq!(r.output("files"), "512");
    let s = &r.summary;
    let rows = s.lines().filter(|l| l.starts_with("| <code>")).count();
    assert_eq!(rows, 500, "{s}");
    assert!(
        s.contains("| … and 12 more (the manifest output lists them all) | | |"),
        "{s}"
    );
    let lines = manifest_lines(r.output("manifest"));
    assert_eq!(lines.len(), 513);
    assert_eq!(lines[512]["files"], 512);
}

// ------------------------------------------------------------------------------------------
// Installing the prebuilt release binary from a release server (loopback only)

/// The asset the action downloads on the harness's runner (Linux, X64).
const TARGET: &str = "x86_64-unknown-linux-musl";

/// The asset a Windows X64 runner downloads.
const WINDOWS_TARGET: &str = "x86_64-pc-windows-msvc";

fn asset_name() -> String {
    asset_for(TARGET)
}

/// The release asset of `target`: a zip on Windows, a gzipped tarball elsewhere.
fn asset_for(target: &str) -> String {
    let ext = if target.contains("-windows-") {
        "zip"
    } else {
        "tar.gz"
    };
    format!("cargo-fastcp-{VERSION}-{target}.{ext}")
}

/// A release directory laid out like GitHub's release downloads, `v<version>/<asset>` and
/// `v<version>/<asset>.sha256`, for the Linux X64 and Windows X64 runners: each made by running
/// .github/workflows/release.yml's own staging step on [`shipped_bin`]. Once per test binary.
fn release_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("action-release");
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        // The release profile strips what ships (`strip = true`); a test build carries full
        // debug info (about 90 MB), and compressing that twice took minutes under load.
        let shipped = base.join("cargo-fastcp");
        let out = Command::new("strip")
            .arg("-o")
            .arg(&shipped)
            .arg(BIN)
            .output()
            .unwrap_or_else(|e| panic!("run strip (binutils, as the linker cargo uses): {e}"));
        assert!(out.status.success(), "strip {BIN}: {out:?}");
        let release = base.join("release");
        let assets = release.join(format!("v{VERSION}"));
        fs::create_dir_all(&assets).unwrap();
        for target in [TARGET, WINDOWS_TARGET] {
            let dist = stage_like_the_release_workflow(&base.join(target), target, &shipped);
            let mut made: Vec<String> = fs::read_dir(&dist)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            made.sort();
            let asset = asset_for(target);
            assert_eq!(made, [asset.clone(), format!("{asset}.sha256")], "{target}");
            for name in made {
                fs::rename(dist.join(&name), assets.join(&name)).unwrap();
            }
        }
        release
    })
}

/// The binary the release assets hold: this build's, stripped as the release profile strips.
fn shipped_bin() -> PathBuf {
    release_dir().parent().unwrap().join("cargo-fastcp")
}

/// Runs the "Stage the release with cargo fastcp" step of .github/workflows/release.yml the way
/// the runner does (`bash -eo pipefail`, its `env:` evaluated for the matrix entry of `target`) in
/// `dir`: a checkout of this package (its Cargo.toml, a git commit for SOURCE_DATE_EPOCH) whose
/// `target/<target>/release/` holds `bin`, as the Build step leaves it. Returns the directory the
/// step put the assets in (`dist`).
fn stage_like_the_release_workflow(dir: &Path, target: &str, bin: &Path) -> PathBuf {
    let text = fs::read_to_string(Path::new(REPO).join(RELEASE_WORKFLOW)).unwrap();
    let wf = &YamlLoader::load_from_str(&text).unwrap()[0];
    let build = &wf["jobs"]["build"];
    let entry = build["strategy"]["matrix"]["include"]
        .as_vec()
        .expect("a matrix include list")
        .iter()
        .find(|e| e["target"].as_str() == Some(target))
        .unwrap_or_else(|| panic!("release.yml builds no {target}"));
    let step = build["steps"]
        .as_vec()
        .expect("build steps")
        .iter()
        .find(|s| s["name"].as_str() == Some("Stage the release with cargo fastcp"))
        .expect("release.yml has the staging step");
    assert_eq!(step["shell"].as_str(), Some("bash"));
    assert_eq!(
        entry["native"].as_bool(),
        Some(true),
        "{target}: staged by its own build"
    );
    let windows = target.contains("-windows-");

    fs::create_dir_all(dir.join("src")).unwrap();
    fs::copy(Path::new(REPO).join("Cargo.toml"), dir.join("Cargo.toml")).unwrap();
    for f in ["src/main.rs", "src/lib.rs"] {
        fs::write(dir.join(f), "").unwrap();
    }
    let exe = if windows { ".exe" } else { "" };
    let built = dir.join(format!("target/{target}/release/cargo-fastcp{exe}"));
    fs::create_dir_all(built.parent().unwrap()).unwrap();
    fs::copy(bin, &built).unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "Cargo.toml"],
        &["commit", "-q", "-m", "release"],
    ] {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=release",
                "-c",
                "user.email=release@localhost",
            ])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
        .arg(step["run"].as_str().expect("a run script"))
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env("RUNNER_OS", if windows { "Windows" } else { "Linux" });
    for (k, v) in step["env"].as_hash().expect("the step's env") {
        let value = expand_expressions(&scalar(v, "env value"), &|expr| match expr
            .trim()
            .split('.')
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["matrix", field] => scalar(&entry[*field], field),
            ["steps", "version", "outputs", "version"] => VERSION.to_owned(),
            _ => panic!("the test does not support `{expr}` in release.yml"),
        });
        cmd.env(key(k), value);
    }
    let out = cmd.output().expect("run bash");
    assert!(
        out.status.success(),
        "release.yml's staging step for {target}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("dist")
}

/// A tiny HTTP/1.1 file server on 127.0.0.1 (a free port) serving `root`; it records every
/// requested path and answers 404 for anything that is not a file under `root`.
struct ReleaseServer {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ReleaseServer {
    fn start(root: &Path) -> ReleaseServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if header == "\r\n" || header == "\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                log.lock().unwrap().push(path.clone());
                let file = root.join(path.trim_start_matches('/'));
                let body = (!path.contains("..") && file.is_file())
                    .then(|| fs::read(&file).ok())
                    .flatten();
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"Not Found".to_vec()),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        ReleaseServer { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A copy of the release directory that a test may tamper with.
fn own_release(sb: &Sandbox) -> PathBuf {
    let dir = sb.root.join("release");
    copy_tree(release_dir(), &dir, &|rel| rel.ends_with("target")).unwrap();
    dir
}

fn assets_dir(release: &Path) -> PathBuf {
    release.join(format!("v{VERSION}"))
}

/// Nothing of a refused download is left: no binary in the tool cache, nothing extracted.
fn assert_nothing_installed(sb: &Sandbox, r: &RunResult) {
    assert!(
        !cached_bin(&sb.tool_cache, VERSION).exists(),
        "a binary was installed\n{}",
        r.log()
    );
    let leftovers = sb.find_named("cargo-fastcp-download");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let extracted: Vec<_> = sb
        .find_named("cargo-fastcp")
        .into_iter()
        .filter(|p| p.file_name().unwrap() == "cargo-fastcp" && !p.starts_with(&sb.fake_bin))
        .collect();
    assert!(extracted.is_empty(), "extracted: {extracted:?}");
    assert!(!sb.cargo_log.exists(), "cargo install ran\n{}", r.log());
    assert_eq!(r.steps.len(), 1, "the staging step ran\n{}", r.log());
}

#[test]
fn installs_the_verified_release_binary_and_stages_with_it() {
    let sb = Sandbox::new(false);
    let server = ReleaseServer::start(release_dir());
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("bins", "single-tool"),
        ("patterns", "README.md\nassets/**"),
        ("exclude-globs", "**/deeper/**"),
        ("release-base-url", &format!("{}/", server.url)),
    ]);
    r.assert_ok();
    // Downloaded and verified, never built: the fake cargo records any `cargo install`.
    assert!(!sb.cargo_log.exists(), "cargo install ran\n{}", r.log());
    let asset = format!("/v{VERSION}/{}", asset_name());
    assert_eq!(
        server.requests(),
        [format!("{asset}.sha256"), asset.clone()]
    );
    assert_eq!(
        r.step_outputs["install"]["source"],
        "release",
        "{}",
        r.log()
    );
    let cached = cached_bin(&sb.tool_cache, VERSION);
    assert_eq!(r.step_outputs["install"]["bin"], cached.to_str().unwrap());
    assert_eq!(r.step_outputs["install"]["version"], VERSION);
    assert_eq!(
        fs::read(&cached).unwrap(),
        fs::read(shipped_bin()).unwrap(),
        "the binary from the asset"
    );
    assert!(
        r.steps[0].stdout.contains("SHA-256 verified: "),
        "{}",
        r.log()
    );
    assert!(sb.find_named("cargo-fastcp-download").is_empty());

    // Every output, from the binary itself.
    let out_dir = sb.workspace.join("dist");
    assert_eq!(r.output("out-dir"), out_dir.to_str().unwrap());
    assert_eq!(r.output("files"), "4");
    let bytes: u64 = [
        "single-tool",
        "README.md",
        "assets/a.txt",
        "assets/sub/b.json",
    ]
    .iter()
    .map(|f| fs::metadata(out_dir.join(f)).unwrap().len())
    .sum();
    assert_eq!(r.output("bytes"), bytes.to_string());
    assert!(["io-uring", "portable"].contains(&r.output("engine")));
    let lines = manifest_lines(r.output("manifest"));
    assert_eq!(lines.len(), 5);
    assert!(r.summary.contains("Staged **4** file(s)"), "{}", r.summary);

    // The next run reuses the tool cache: no request reaches the server.
    let r = sb.run(&[
        ("out-dir", "dist2"),
        ("patterns", "README.md"),
        ("profile", ""),
        ("release-base-url", &server.url),
    ]);
    r.assert_ok();
    assert_eq!(r.step_outputs["install"]["source"], "cached");
    assert_eq!(server.requests().len(), 2);
}

/// Without `release-base-url`, the assets come from the GitHub releases of the action's own
/// repository: named by GITHUB_ACTION_REPOSITORY, or, where composite steps leave that empty, by
/// the path the runner checked the action out to (`…/_actions/OWNER/REPO/REF`).
#[test]
fn without_release_base_url_the_actions_own_github_releases_are_used() {
    // GITHUB_SERVER_URL points at a loopback server laid out like github.com's downloads.
    let site = tempfile::tempdir().unwrap();
    let releases = site.path().join("octo/fastcp/releases");
    fs::create_dir_all(&releases).unwrap();
    std::os::unix::fs::symlink(release_dir(), releases.join("download")).unwrap();
    let server = ReleaseServer::start(site.path());
    let asset = format!("/octo/fastcp/releases/download/v{VERSION}/{}", asset_name());
    let inputs = [
        ("out-dir", "dist"),
        ("patterns", "README.md"),
        ("profile", ""),
    ];

    for by_checkout_path in [false, true] {
        let mut sb = Sandbox::new(false);
        sb.job_env = vec![("GITHUB_SERVER_URL".into(), server.url.clone())];
        if by_checkout_path {
            sb.action_path = sb.root.join("runner/_work/_actions/octo/fastcp/v1");
            fs::create_dir_all(&sb.action_path).unwrap();
            for f in ["action.yml", "Cargo.toml"] {
                fs::copy(Path::new(REPO).join(f), sb.action_path.join(f)).unwrap();
            }
        } else {
            sb.job_env
                .push(("GITHUB_ACTION_REPOSITORY".into(), "octo/fastcp".into()));
        }
        let before = server.requests().len();
        let r = sb.run(&inputs);
        r.assert_ok();
        assert_eq!(
            r.step_outputs["install"]["source"],
            "release",
            "{}",
            r.log()
        );
        assert_eq!(
            server.requests()[before..],
            [format!("{asset}.sha256"), asset.clone()]
        );
        assert!(!sb.cargo_log.exists(), "cargo install ran\n{}", r.log());
        assert!(sb.workspace.join("dist/README.md").exists());
    }
}

/// Each runner (`RUNNER_OS`, `RUNNER_ARCH` as the runner spells them) asks for the asset the
/// release workflow builds for it; a runner it builds none for asks for nothing and says why.
#[test]
fn each_runner_asks_for_the_asset_built_for_it() {
    let mut sb = Sandbox::new(false);
    let empty = sb.root.join("empty-release");
    fs::create_dir_all(&empty).unwrap();
    let server = ReleaseServer::start(&empty);
    let runners = [
        ("Linux", "X64", "x86_64-unknown-linux-musl"),
        ("Linux", "ARM64", "aarch64-unknown-linux-musl"),
        ("macOS", "X64", "x86_64-apple-darwin"),
        ("macOS", "ARM64", "aarch64-apple-darwin"),
        ("Windows", "X64", "x86_64-pc-windows-msvc"),
        ("Windows", "ARM64", "aarch64-pc-windows-msvc"),
    ];
    for (os, arch, target) in runners {
        sb.job_env = vec![
            ("RUNNER_OS".into(), os.into()),
            ("RUNNER_ARCH".into(), arch.into()),
        ];
        // 404: the action's own checkout is built, and the stand-in cargo fails that install.
        let r = sb.run(&[("out-dir", "dist"), ("release-base-url", &server.url)]);
        assert_eq!(r.failed, Some(2), "{os}/{arch}\n{}", r.log());
        assert_eq!(
            server.requests().last().map(String::as_str),
            Some(format!("/v{VERSION}/{}.sha256", asset_for(target)).as_str()),
            "{os}/{arch}"
        );
    }
    let asked = server.requests().len();
    sb.job_env = vec![("RUNNER_ARCH".into(), "ARM".into())];
    let r = sb.run(&[("out-dir", "dist"), ("release-base-url", &server.url)]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    assert_eq!(server.requests().len(), asked, "nothing to download");
    assert!(
        r.steps[0].stdout.contains(&format!(
            "no prebuilt binary (no release asset is built for Linux/arm): building cargo-fastcp {VERSION} with cargo install"
        )),
        "{}",
        r.log()
    );
}

/// On Windows the action installs the `.zip` asset's `cargo-fastcp.exe` and runs it. Git Bash's
/// `cygpath` converts between `C:\…` and `/c/…`; here every path is already POSIX, so a stand-in
/// that returns its path unchanged lets the Windows branch run on this machine, with the real
/// zip the release workflow's staging step makes, the real `unzip` and the real binary.
#[test]
fn on_windows_the_zip_asset_is_installed_and_run() {
    let mut sb = Sandbox::new(false);
    write_executable(
        &sb.fake_bin.join("cygpath"),
        "#!/bin/sh\nfor a in \"$@\"; do last=$a; done\nprintf '%s\\n' \"$last\"\n",
    );
    sb.job_env = vec![("RUNNER_OS".into(), "Windows".into())];
    let server = ReleaseServer::start(release_dir());
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("patterns", "README.md"),
        ("profile", ""),
        ("release-base-url", &server.url),
    ]);
    r.assert_ok();
    let asset = format!("/v{VERSION}/{}", asset_for(WINDOWS_TARGET));
    assert_eq!(server.requests(), [format!("{asset}.sha256"), asset]);
    assert_eq!(
        r.step_outputs["install"]["source"],
        "release",
        "{}",
        r.log()
    );
    let exe = sb
        .tool_cache
        .join(format!("cargo-fastcp/{VERSION}/x64/bin/cargo-fastcp.exe"));
    assert_eq!(r.step_outputs["install"]["bin"], exe.to_str().unwrap());
    assert_eq!(fs::read(&exe).unwrap(), fs::read(shipped_bin()).unwrap());
    assert!(!sb.cargo_log.exists(), "cargo install ran\n{}", r.log());
    assert_eq!(r.output("files"), "1");
    assert!(sb.workspace.join("dist/README.md").exists());
}

#[test]
fn a_tampered_archive_or_checksum_is_refused_before_extracting() {
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper, &str); 4] = [
        (
            "archive",
            |assets| {
                let p = assets.join(asset_name());
                let mut bytes = fs::read(&p).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x01;
                fs::write(&p, bytes).unwrap();
            },
            "cargo-fastcp: checksum mismatch",
        ),
        (
            "digest",
            |assets| {
                let p = assets.join(format!("{}.sha256", asset_name()));
                let text = fs::read_to_string(&p).unwrap();
                let first = if text.starts_with('0') { "1" } else { "0" };
                fs::write(&p, format!("{first}{}", &text[1..])).unwrap();
            },
            "cargo-fastcp: checksum mismatch",
        ),
        (
            "checksum file",
            |assets| {
                let p = assets.join(format!("{}.sha256", asset_name()));
                fs::write(&p, "not a digest\n").unwrap();
            },
            "cargo-fastcp: bad checksum file",
        ),
        (
            // The right digest of the archive, but vouching for another file.
            "file name in the checksum file",
            |assets| {
                let p = assets.join(format!("{}.sha256", asset_name()));
                let text = fs::read_to_string(&p).unwrap();
                let digest = text.split_whitespace().next().unwrap();
                fs::write(&p, format!("{digest}  cargo-fastcp-other.tar.gz\n")).unwrap();
            },
            "cargo-fastcp: bad checksum file",
        ),
    ];
    for (what, tamper, title) in cases {
        let sb = Sandbox::new(false);
        let release = own_release(&sb);
        tamper(&assets_dir(&release));
        let server = ReleaseServer::start(&release);
        let r = sb.run(&[("out-dir", "dist"), ("release-base-url", &server.url)]);
        assert_eq!(r.failed, Some(2), "tampered {what}\n{}", r.log());
        let errors = r.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].props["title"], title, "tampered {what}");
        assert!(
            errors[0].message.contains("nothing was extracted or run"),
            "{errors:?}"
        );
        assert_nothing_installed(&sb, &r);
        assert!(!sb.workspace.join("dist").exists());
    }
}

/// A `cargo` that, for `cargo install`, records its arguments, working directory and
/// environment, then proves the environment with a real build: it builds a tiny crate that
/// refuses to compile under `--cfg broken`, for the `--target` and into the `--target-dir` it
/// was given, with the real cargo and exactly that environment. It "installs" this build's
/// binary when that succeeds and fails like the build otherwise.
fn probing_cargo(sb: &Sandbox) -> PathBuf {
    let probe = sb.root.join("probe");
    fs::create_dir_all(probe.join("src")).unwrap();
    fs::write(
        probe.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    fs::write(
        probe.join("src/main.rs"),
        "#[cfg(broken)]\ncompile_error!(\"RUSTFLAGS reached the build\");\nfn main() {}\n",
    )
    .unwrap();
    let env_log = sb.root.join("install-env");
    write_executable(
        &sb.fake_bin.join("cargo"),
        &format!(
            "#!/bin/bash\nif [ \"$1\" != install ]; then exec {real} \"$@\"; fi\n\
             printf '%s\\n' \"$@\" > {log}\n{{ pwd; env; }} > {env_log}\n\
             root='' target='' tdir=''\n\
             while [ $# -gt 0 ]; do case $1 in --root) root=$2; shift;; --target) target=$2; shift;; --target-dir) tdir=$2; shift;; esac; shift; done\n\
             {real} build --offline --quiet --manifest-path {probe} ${{target:+--target \"$target\"}} ${{tdir:+--target-dir \"$tdir\"}} || exit 101\n\
             mkdir -p \"$root/bin\" && cp {bin} \"$root/bin/cargo-fastcp\"\n",
            real = sh_quote(real_cargo_str()),
            log = sh_quote(sb.cargo_log.to_str().unwrap()),
            env_log = sh_quote(env_log.to_str().unwrap()),
            probe = sh_quote(probe.join("Cargo.toml").to_str().unwrap()),
            bin = sh_quote(BIN),
        ),
    );
    env_log
}

/// What a hostile job sets for its own cross build; none of it may reach the tool's build.
const DIRTY_JOB_ENV: [(&str, &str); 6] = [
    ("CARGO_BUILD_TARGET", "aarch64-unknown-linux-gnu"),
    ("RUSTFLAGS", "--cfg=broken"),
    ("CARGO_ENCODED_RUSTFLAGS", "--cfg=broken"),
    ("CARGO_TARGET_DIR", "/nonexistent/target"),
    ("RUSTC_WRAPPER", "/nonexistent/wrapper"),
    ("CARGO_BUILD_JOBS", "0"),
];

/// `env` (one `NAME=value` a line, as `env` prints it) holds nothing of a job's cross build.
fn assert_clean_build_env(env: &str, what: &str) {
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, _)| n)
        .collect();
    // The job's HOME reached it, so this is the environment the install step saw.
    assert!(names.contains(&"HOME"), "{what}: not an environment: {env}");
    for name in names {
        assert!(
            !(name.starts_with("CARGO_BUILD_")
                || [
                    "CARGO_TARGET_DIR",
                    "RUSTFLAGS",
                    "CARGO_ENCODED_RUSTFLAGS",
                    "RUSTC_WRAPPER"
                ]
                .contains(&name)),
            "{name} reached {what}"
        );
    }
}

#[test]
fn an_unreleased_version_builds_the_actions_checkout_in_a_clean_environment() {
    let mut sb = Sandbox::new(false);
    sb.job_env = DIRTY_JOB_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env_log = probing_cargo(&sb);
    // The control: with the job's environment, the probe build fails.
    let control = Command::new(real_cargo())
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(sb.root.join("probe/Cargo.toml"))
        .arg("--target-dir")
        .arg(sb.root.join("control-target"))
        .env_remove("CARGO_TARGET_DIR")
        .envs(
            DIRTY_JOB_ENV
                .iter()
                .filter(|(k, _)| *k != "CARGO_TARGET_DIR")
                .copied(),
        )
        .output()
        .unwrap();
    assert!(
        !control.status.success(),
        "the probe builds even with the job's environment"
    );

    // A release server that has no asset for this version: 404.
    let empty = sb.root.join("empty-release");
    fs::create_dir_all(&empty).unwrap();
    let server = ReleaseServer::start(&empty);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("patterns", "README.md"),
        ("profile", ""),
        ("release-base-url", &server.url),
    ]);
    r.assert_ok();
    assert_eq!(
        server.requests(),
        [format!("/v{VERSION}/{}.sha256", asset_name())]
    );
    let log = &r.steps[0].stdout;
    assert!(
        log.contains(&format!(
            "no release of cargo-fastcp {VERSION} (HTTP 404 for {}/v{VERSION}/{}.sha256): building the action's own checkout",
            server.url,
            asset_name()
        )),
        "{log}"
    );
    assert_eq!(r.step_outputs["install"]["source"], "checkout");
    assert_eq!(
        sb.cargo_install_log(),
        sb.install_args(VERSION, &["--path", REPO])
    );
    let build_dir = sb.runner_temp.join("cargo-fastcp-build");
    let env = fs::read_to_string(&env_log).unwrap();
    let mut lines = env.lines();
    assert_eq!(
        lines.next(),
        sb.runner_temp.to_str(),
        "cwd outside the workspace"
    );
    assert_clean_build_env(&lines.collect::<Vec<_>>().join("\n"), "cargo install");
    // The probe really built, for the host, in the action's own target dir.
    assert!(build_dir.join(host_triple()).join("debug/probe").exists());
    assert!(sb.workspace.join("dist/README.md").exists());
}

#[test]
fn without_a_release_asset_binstall_then_cargo_install_are_tried() {
    let mut sb = Sandbox::new(false);
    // A job that cross-compiles: cargo binstall picks its target from CARGO_BUILD_TARGET too.
    sb.job_env = DIRTY_JOB_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let empty = sb.root.join("empty-release");
    fs::create_dir_all(&empty).unwrap();
    let server = ReleaseServer::start(&empty);
    // A cargo-binstall that records its arguments and environment and installs this build's
    // binary.
    let binstall_log = sb.root.join("binstall.log");
    let binstall_env = sb.root.join("binstall.env");
    write_executable(
        &sb.fake_bin.join("cargo-binstall"),
        &format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > {log}\nenv > {env}\nroot=''\n\
             while [ $# -gt 0 ]; do case $1 in --root) root=$2; shift;; esac; shift; done\n\
             mkdir -p \"$root/bin\" && cp {bin} \"$root/bin/cargo-fastcp\"\n",
            log = sh_quote(binstall_log.to_str().unwrap()),
            env = sh_quote(binstall_env.to_str().unwrap()),
            bin = sh_quote(BIN),
        ),
    );
    let root = sb.tool_cache.join(format!("cargo-fastcp/{VERSION}/x64"));
    // An explicit version: released on crates.io perhaps, but not here (404).
    let inputs = [
        ("out-dir", "dist"),
        ("patterns", "README.md"),
        ("profile", ""),
        ("version", VERSION),
        ("release-base-url", &server.url),
    ];
    let r = sb.run(&inputs);
    r.assert_ok();
    assert_eq!(r.step_outputs["install"]["source"], "binstall");
    assert!(r.steps[0]
        .stdout
        .contains("no prebuilt binary (HTTP 404 for "));
    assert!(r.steps[0].stdout.contains("): trying cargo binstall"));
    assert_eq!(
        fs::read_to_string(&binstall_log)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        [
            "binstall",
            "--no-confirm",
            "--disable-strategies",
            "compile",
            "--root",
            root.to_str().unwrap(),
            &format!("cargo-fastcp@{VERSION}")
        ]
    );
    assert_clean_build_env(
        &fs::read_to_string(&binstall_env).unwrap(),
        "cargo binstall",
    );
    assert!(!sb.cargo_log.exists());
    assert!(sb.workspace.join("dist/README.md").exists());

    // When binstall fails, cargo install of that version (the fake cargo fails it: exit 2).
    fs::remove_dir_all(&root).unwrap();
    write_executable(&sb.fake_bin.join("cargo-binstall"), "#!/bin/sh\nexit 1\n");
    let r = sb.run(&inputs);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    assert!(r.steps[0]
        .stdout
        .contains(&format!("no prebuilt binary (cargo binstall failed): building cargo-fastcp {VERSION} with cargo install")));
    let args = fs::read_to_string(&sb.cargo_log).unwrap();
    assert!(
        args.ends_with(&format!("cargo-fastcp\n--version\n{VERSION}\n")),
        "{args}"
    );

    // An unreachable server (a closed port) is a download failure like a 404.
    fs::remove_file(sb.fake_bin.join("cargo-binstall")).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("version", VERSION),
        ("release-base-url", &url),
    ]);
    assert_eq!(r.failed, Some(2), "{}", r.log());
    assert!(
        r.steps[0].stdout.contains("no prebuilt binary (curl: "),
        "{}",
        r.log()
    );
}

/// The release workflow, the action's platform table and `cargo binstall`'s metadata name the
/// same six targets and the same asset files.
#[test]
fn release_workflow_action_and_binstall_agree_on_the_assets() {
    let text = fs::read_to_string(Path::new(REPO).join(RELEASE_WORKFLOW)).unwrap();
    let wf = &YamlLoader::load_from_str(&text).unwrap()[0];
    let mut built: Vec<(String, String)> = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_vec()
        .expect("a matrix include list")
        .iter()
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_owned(),
                e["archive"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    built.sort();

    // The install step's `RUNNER_OS/arch) target=… ;;` table.
    let install = &action().steps[0].run;
    let mut mapped: Vec<(String, String)> = install
        .lines()
        .filter_map(|l| {
            let (key, rest) = l.trim().split_once(") target=")?;
            let target = rest.strip_suffix(" ;;").filter(|t| !t.is_empty())?;
            let archive = if key.starts_with("Windows/") {
                "zip"
            } else {
                "tar.gz"
            };
            Some((target.to_owned(), archive.to_owned()))
        })
        .collect();
    mapped.sort();
    assert_eq!(
        built, mapped,
        "release.yml builds what the action downloads"
    );
    assert_eq!(built.len(), 6);
    assert!(built
        .iter()
        .all(|(t, _)| !t.contains("-linux-") || t.ends_with("-musl")));

    let cargo_toml = fs::read_to_string(Path::new(REPO).join("Cargo.toml")).unwrap();
    let meta = |table: &str, key: &str| -> String {
        let start = cargo_toml
            .find(&format!("[{table}]\n"))
            .unwrap_or_else(|| panic!("no [{table}]"));
        let body = &cargo_toml[start..];
        let body = &body[body.find('\n').unwrap() + 1..];
        let body = &body[..body.find("\n[").unwrap_or(body.len())];
        let line = body
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in [{table}]"));
        line.split_once(" = ")
            .unwrap()
            .1
            .trim_matches('"')
            .to_owned()
    };
    for (target, archive) in &built {
        let table = if archive == "zip" {
            format!("package.metadata.binstall.overrides.{target}")
        } else {
            "package.metadata.binstall".to_owned()
        };
        let expand = |t: &str| {
            t.replace("{ repo }", "https://github.com/o/r")
                .replace("{ version }", VERSION)
                .replace("{ name }", "cargo-fastcp")
                .replace("{ target }", target)
        };
        assert_eq!(
            expand(&meta(&table, "pkg-url")),
            format!(
                "https://github.com/o/r/releases/download/v{VERSION}/cargo-fastcp-{VERSION}-{target}.{archive}"
            )
        );
        let fmt = if archive == "zip" { "zip" } else { "tgz" };
        assert_eq!(meta(&table, "pkg-fmt"), fmt, "{target}");
    }
    assert_eq!(
        meta("package.metadata.binstall", "bin-dir"),
        "{ name }-{ version }-{ target }/{ bin }{ binary-ext }"
    );
    // What ships carries no debug info: a download of a few MB, not tens.
    assert_eq!(meta("profile.release", "debug"), "false");
    assert_eq!(meta("profile.release", "strip"), "true");
}

// ------------------------------------------------------------------------------------------
// Measurements (not a pass/fail test: run it by name when the machine is quiet, see README)

fn stats(mut secs: Vec<f64>) -> String {
    secs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "min {:.3} s, median {:.3} s, max {:.3} s ({} runs)",
        secs[0],
        secs[secs.len() / 2],
        secs[secs.len() - 1],
        secs.len()
    )
}

/// `cargo test --release --test action -- --ignored --nocapture measure_the_action`:
/// 1. the whole Action (both steps) with a cold tool cache, installing this build's binary from
///    the loopback release server and staging the demo workspace;
/// 2. staging 10,000 files through the Action (warm tool cache) against the tool alone with the
///    same arguments. Page cache warm; each run into a fresh out-dir.
#[test]
#[ignore = "a measurement: run it by name on a quiet machine"]
fn measure_the_action() {
    let runs: usize = std::env::var("MEASURE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // examples/demo-workspace, built once with `cargo build --release` in the shared template.
    let demo_target = template(Fixture::Demo)
        .join("target")
        .to_str()
        .unwrap()
        .to_owned();
    let server = ReleaseServer::start(release_dir());
    let asset = assets_dir(release_dir()).join(asset_name());
    println!(
        "release asset: {} ({} bytes; binary {} bytes)",
        asset_name(),
        fs::metadata(&asset).unwrap().len(),
        fs::metadata(shipped_bin()).unwrap().len()
    );

    let mut cold = Vec::new();
    for _ in 0..runs {
        let mut sb = Sandbox::new(false);
        fs::remove_dir_all(&sb.workspace).unwrap();
        copy_tree(&Fixture::Demo.source_dir(), &sb.workspace, &|rel| {
            rel.ends_with("target")
        })
        .unwrap();
        sb.job_env = vec![("CARGO_TARGET_DIR".into(), demo_target.clone())];
        let t = std::time::Instant::now();
        let r = sb.run(&[
            ("out-dir", "dist"),
            ("packages", "hello-fastcp, demo-ffi"),
            ("patterns", "README.md\nassets/**"),
            ("release-base-url", &server.url),
        ]);
        let secs = t.elapsed().as_secs_f64();
        r.assert_ok();
        assert_eq!(r.step_outputs["install"]["source"], "release");
        assert!(!sb.cargo_log.exists());
        cold.push(secs);
    }
    println!(
        "cold tool cache, install from the release server + stage the demo workspace: {}",
        stats(cold)
    );

    let sb = Sandbox::new(true);
    let many = sb.workspace.join("many");
    for d in 0..100 {
        let dir = many.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            fs::write(
                dir.join(format!("f{f:02}.txt")),
                vec![b'x'; 1 + (d * 100 + f) % 4096],
            )
            .unwrap();
        }
    }
    let inputs = [
        ("out-dir", "dist"),
        ("profile", ""),
        ("patterns", "many/**"),
    ];
    let (mut action, mut alone, mut reported) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        for out in ["dist", "alone"] {
            let _ = fs::remove_dir_all(sb.workspace.join(out));
        }
        let t = std::time::Instant::now();
        let r = sb.run(&inputs);
        action.push(t.elapsed().as_secs_f64());
        r.assert_ok();
        assert_eq!(r.output("files"), "10000");
        let summary = manifest_lines(r.output("manifest")).pop().unwrap();
        reported.push(summary["elapsed_ms"].as_f64().unwrap() / 1000.0);

        let t = std::time::Instant::now();
        let out = Command::new(BIN)
            .args(["fastcp", "--out-dir", "alone", "--", "many/**"])
            .current_dir(&sb.workspace)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap();
        alone.push(t.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let median = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "10,000 files through the Action (whole step, warm tool cache): {}",
        stats(action.clone())
    );
    println!(
        "10,000 files, the tool alone (whole process): {}",
        stats(alone.clone())
    );
    println!(
        "10,000 files, the copy as the tool reports it (elapsed_ms): {}",
        stats(reported)
    );
    println!(
        "ratio Action / tool alone (medians): {:.2}",
        median(&action) / median(&alone)
    );
}

#[test]
fn a_hostile_release_base_url_is_only_data() {
    let sb = Sandbox::new(false);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("version", VERSION),
        (
            "release-base-url",
            "http://127.0.0.1:9/$(touch pwned)\n::error::injected\n`touch pwned`",
        ),
    ]);
    // The download fails, then the fake cargo's install: one error, the action's own.
    assert_eq!(r.failed, Some(2), "{}", r.log());
    sb.assert_nothing_ran(&r);
    let errors = r.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].props["title"], "cargo-fastcp: install failed");
    assert!(
        r.steps[0].stdout.contains(
            "downloading http://127.0.0.1:9/$(touch pwned)\\n::error::injected\\n`touch pwned`/v"
        ),
        "{}",
        r.log()
    );
}

#[test]
fn archives_and_checksums_become_outputs_and_summary_rows() {
    let sb = Sandbox::new(true);
    let r = sb.run(&[
        ("out-dir", "dist"),
        ("bins", "single-tool"),
        ("patterns", "README.md"),
        ("checksums", "sha256"),
        ("archive", "tar.gz, zip"),
        ("archive-name", "single-{version}"),
    ]);
    r.assert_ok();
    let out_dir = sb.workspace.join("dist");
    let archives: Vec<&str> = r.output("archive").lines().collect();
    assert_eq!(archives.len(), 2, "{}", r.log());
    let mut names = Vec::new();
    for a in &archives {
        let path = Path::new(a);
        assert!(path.is_absolute() && path.is_file(), "{a}");
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        // The digest the summary shows is the one in <archive>.sha256.
        let sha = fs::read_to_string(format!("{a}.sha256")).unwrap();
        let digest = sha.split_whitespace().next().unwrap();
        assert!(
            r.summary
                .contains(&format!("| <code>{name}</code> | <code>{digest}</code> |")),
            "{}",
            r.summary
        );
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["single-0.1.0.tar.gz", "single-0.1.0.zip"]);
    assert_eq!(
        r.output("checksums-file"),
        out_dir.join("SHA256SUMS").to_str().unwrap()
    );
    assert!(
        r.summary.contains("| <code>SHA256SUMS</code> | |"),
        "{}",
        r.summary
    );
    // The manifest gets the digests and the bundle too.
    let lines = manifest_lines(r.output("manifest"));
    let summary = lines.last().unwrap();
    assert_eq!(summary["reason"], "summary");
    assert_eq!(
        summary["archives"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
    assert!(lines[0]["sha256"].is_string(), "{}", lines[0]);

    // Without bundle inputs the outputs are there, and empty.
    let r = sb.run(&[
        ("out-dir", "dist2"),
        ("patterns", "README.md"),
        ("profile", ""),
    ]);
    r.assert_ok();
    assert_eq!(r.output("archive"), "");
    assert_eq!(r.output("checksums-file"), "");
}
