//! Cargo's configuration, resolved as cargo resolves it: the platforms a build is for
//! (`--target`, then `--config`, then `CARGO_BUILD_TARGET` and `build.target` from every config
//! file cargo reads).
use std::path::{Path, PathBuf};

use cargo_config2::de::StringOrArray;
use cargo_config2::TargetTripleRef;
use serde::Deserialize;

use crate::error::PlanError;

/// One platform a build is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTarget {
    /// The directory cargo gives it under the target dir: the triple, or a target spec file's
    /// stem (`--target specs/x.json` builds into `target/x/`).
    pub name: String,
    /// How `cargo build --target` names it: the triple or the spec file's path.
    pub arg: String,
}

impl BuildTarget {
    fn new(triple_or_spec: &str, spec_path: Option<&Path>) -> BuildTarget {
        let name = TargetTripleRef::from(triple_or_spec).triple().to_string();
        let arg = match spec_path {
            Some(p) => p.display().to_string(),
            None => triple_or_spec.to_string(),
        };
        BuildTarget { name, arg }
    }
}

/// The platforms cargo would build for in `cwd`; empty means the host. `cli` are the `--target`
/// values, `config_args` the `--config` values, both as given. A platform named twice counts
/// once.
///
/// Config files are found the way cargo finds them: from the working directory upward, then
/// `$CARGO_HOME` (cargo does not look next to a `--manifest-path` elsewhere, so neither do we:
/// the `cargo build` a user runs reads the same files).
pub fn build_targets(
    cli: &[String],
    config_args: &[String],
    cwd: &Path,
) -> Result<Vec<BuildTarget>, PlanError> {
    let targets = if !cli.is_empty() {
        cli.iter().map(|t| BuildTarget::new(t, None)).collect()
    } else if let Some(t) = targets_from_config_args(config_args, cwd)? {
        t
    } else {
        let config = cargo_config2::Config::load_with_cwd(cwd)
            .map_err(|e| PlanError::CargoConfig(format!("{e:#}")))?;
        config
            .build
            .target
            .unwrap_or_default()
            .iter()
            .map(|t| BuildTarget::new(t.triple(), t.spec_path()))
            .collect()
    };
    let mut out: Vec<BuildTarget> = Vec::new();
    for t in targets {
        if !out.iter().any(|o| o.name == t.name) {
            out.push(t);
        }
    }
    Ok(out)
}

/// `build.target` as the `--config` values set it (the last one that sets it wins), or `None`.
fn targets_from_config_args(
    config_args: &[String],
    cwd: &Path,
) -> Result<Option<Vec<BuildTarget>>, PlanError> {
    let mut found = None;
    for arg in config_args {
        let (text, base) = if is_config_file(arg) {
            let path = cwd.join(arg);
            let text = std::fs::read_to_string(&path).map_err(|e| PlanError::io(&path, e))?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (text, base)
        } else {
            (arg.clone(), cwd.to_path_buf())
        };
        let fragment: Fragment = toml::from_str(&text)
            .map_err(|e| PlanError::CargoConfig(format!("--config {arg}: {e}")))?;
        if let Some(target) = fragment.build.and_then(|b| b.target) {
            found = Some(fragment_targets(&target, &base));
        }
    }
    Ok(found)
}

/// Cargo takes a `--config` value that names a `.toml` file as that file, anything else as
/// `KEY=VALUE` in TOML.
fn is_config_file(arg: &str) -> bool {
    arg.ends_with(".toml") && !arg.contains('=')
}

fn fragment_targets(target: &StringOrArray, base: &Path) -> Vec<BuildTarget> {
    let values: Vec<&str> = match target {
        StringOrArray::String(s) => vec![s.val.as_str()],
        StringOrArray::Array(a) => a.iter().map(|v| v.val.as_str()).collect(),
    };
    values
        .into_iter()
        .map(|v| {
            let spec: Option<PathBuf> = v.ends_with(".json").then(|| base.join(v));
            BuildTarget::new(v, spec.as_deref())
        })
        .collect()
}

/// The part of a `--config` value this module reads.
#[derive(Deserialize)]
struct Fragment {
    build: Option<FragmentBuild>,
}

#[derive(Deserialize)]
struct FragmentBuild {
    target: Option<StringOrArray>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &[BuildTarget]) -> Vec<&str> {
        t.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn spec_files_are_named_by_their_stem_and_duplicates_count_once() {
        let cli = [
            "specs/my-os.json".to_string(),
            "x86_64-unknown-linux-gnu".to_string(),
            "x86_64-unknown-linux-gnu".to_string(),
        ];
        let t = build_targets(&cli, &[], Path::new("/nonexistent")).unwrap();
        assert_eq!(names(&t), ["my-os", "x86_64-unknown-linux-gnu"]);
        assert_eq!(t[0].arg, "specs/my-os.json");
    }

    #[test]
    fn config_values_set_build_target_as_a_string_or_a_list() {
        let args = [
            "build.target = \"aarch64-unknown-linux-gnu\"".to_string(),
            "build.jobs = 2".to_string(),
        ];
        let t = targets_from_config_args(&args, Path::new("/w")).unwrap();
        assert_eq!(names(&t.unwrap()), ["aarch64-unknown-linux-gnu"]);
        let args = ["build.target = [\"a-b-c\", \"x.json\"]".to_string()];
        let t = targets_from_config_args(&args, Path::new("/w"))
            .unwrap()
            .unwrap();
        assert_eq!(names(&t), ["a-b-c", "x"]);
        assert_eq!(t[1].arg, "/w/x.json");
        assert!(
            targets_from_config_args(&["profile.dev.debug = 0".into()], Path::new("/w"))
                .unwrap()
                .is_none()
        );
    }
}
