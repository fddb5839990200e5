//! Which features of a package a build enables (`--features`, `--all-features`,
//! `--no-default-features`, and what those features enable in turn), and which of a target's
//! `required-features` that leaves out.
use std::collections::BTreeSet;

use cargo_metadata::{Package, Target};

/// The feature flags of a run, as cargo takes them.
#[derive(Debug, Clone, Copy)]
pub struct FeatureFlags<'a> {
    /// `feat` (every selected package that has it) or `package/feat`.
    pub features: &'a [String],
    pub all: bool,
    pub no_default: bool,
}

/// The features of `pkg` a build with `flags` enables.
pub fn enabled(pkg: &Package, flags: FeatureFlags<'_>) -> BTreeSet<String> {
    if flags.all {
        return pkg.features.keys().cloned().collect();
    }
    let mut todo: Vec<String> = Vec::new();
    if !flags.no_default && pkg.features.contains_key("default") {
        todo.push("default".into());
    }
    for f in flags.features {
        match f.split_once('/') {
            Some((p, feat)) if p == pkg.name.as_str() => todo.push(feat.to_string()),
            // `dep/feat` enables the optional dependency `dep` (its implicit feature) too;
            // `dep?/feat` does not, on the command line as in a manifest.
            Some((dep, _)) if !dep.ends_with('?') => todo.push(dep.to_string()),
            Some(_) => {}
            None => todo.push(f.clone()),
        }
    }
    let mut on = BTreeSet::new();
    while let Some(f) = todo.pop() {
        let Some(enables) = pkg.features.get(&f) else {
            continue;
        };
        if !on.insert(f) {
            continue;
        }
        for v in enables {
            if v.starts_with("dep:") {
                continue;
            }
            match v.split_once('/') {
                // `dep?/feat` does not enable `dep`; `dep/feat` does.
                Some((dep, _)) if !dep.ends_with('?') => todo.push(dep.to_string()),
                Some(_) => {}
                None => todo.push(v.clone()),
            }
        }
    }
    on
}

/// The `required-features` of `target` that `enabled` leaves out, in the manifest's order.
pub fn missing(target: &Target, enabled: &BTreeSet<String>) -> Vec<String> {
    target
        .required_features
        .iter()
        .filter(|r| {
            // `dep/feat` needs the dependency on; its own features are the dependency's business.
            let own = r.split_once('/').map_or(r.as_str(), |(dep, _)| dep);
            !enabled.contains(own)
        })
        .cloned()
        .collect()
}

/// The requested `features` that no selected package knows, as cargo refuses them: a plain
/// feature no package defines, `pkg/feat` where the selected `pkg` lacks `feat`, `dep/feat` where
/// `dep` is neither a selected package nor a dependency of one. `None` when all are known.
pub fn unknown(packages: &[&Package], features: &[String]) -> Option<String> {
    let known = |f: &str| match f.split_once('/') {
        Some((owner, feat)) => {
            let owner = owner.trim_end_matches('?');
            match packages.iter().find(|p| p.name.as_str() == owner) {
                Some(p) => p.features.contains_key(feat),
                None => packages.iter().any(|p| {
                    p.dependencies
                        .iter()
                        .any(|d| d.rename.as_deref().unwrap_or(&d.name) == owner)
                }),
            }
        }
        None => packages.iter().any(|p| p.features.contains_key(f)),
    };
    let unknown: Vec<&str> = features
        .iter()
        .map(|f| f.as_str())
        .filter(|f| !f.is_empty() && !known(f))
        .collect();
    if unknown.is_empty() {
        return None;
    }
    let these = if unknown.len() == 1 {
        "this feature"
    } else {
        "these features"
    };
    Some(match packages {
        [one] => format!(
            "the package '{}' does not contain {these}: {}",
            one.name,
            unknown.join(", ")
        ),
        _ => format!(
            "none of the selected packages contains {these}: {}\nselected packages: {}",
            unknown.join(", "),
            packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(features: serde_json::Value) -> Package {
        serde_json::from_value(serde_json::json!({
            "name": "app", "version": "0.1.0", "id": "path+file:///ws/app#0.1.0",
            "dependencies": [], "targets": [], "features": features,
            "manifest_path": "/ws/app/Cargo.toml", "edition": "2021",
        }))
        .unwrap()
    }

    fn on(p: &Package, features: &[&str], all: bool, no_default: bool) -> Vec<String> {
        let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        let flags = FeatureFlags {
            features: &features,
            all,
            no_default,
        };
        enabled(p, flags).into_iter().collect()
    }

    #[test]
    fn defaults_flags_and_what_features_enable() {
        let p = pkg(serde_json::json!({
            "default": ["fast"], "fast": [], "extra": ["fast", "dep:zstd", "serde?/std"],
            "full": ["extra"], "serde": ["dep:serde"], "zstd": ["dep:zstd"],
        }));
        assert_eq!(on(&p, &[], false, false), ["default", "fast"]);
        assert_eq!(on(&p, &[], false, true), Vec::<String>::new());
        assert_eq!(
            on(&p, &["full"], false, true),
            ["extra", "fast", "full"],
            "dep: and dep?/ enable no feature of the package"
        );
        assert_eq!(on(&p, &["app/extra"], false, true), ["extra", "fast"]);
        assert_eq!(on(&p, &["other/extra"], false, true), Vec::<String>::new());
        assert_eq!(on(&p, &["serde/std"], false, true), ["serde"]);
        assert_eq!(
            on(&p, &["serde?/std"], false, true),
            Vec::<String>::new(),
            "a weak dependency feature does not enable the dependency"
        );
        assert_eq!(on(&p, &[], true, true).len(), 6);
    }

    #[test]
    fn unknown_features_are_named_as_cargo_names_them() {
        let mut app = pkg(serde_json::json!({ "fast": [] }));
        app.dependencies = serde_json::from_value(serde_json::json!([{
            "name": "serde", "req": "^1", "kind": null, "optional": true,
            "uses_default_features": true, "features": [], "target": null, "rename": null,
            "registry": null, "source": null
        }]))
        .unwrap();
        let owned = |fs: &[&str]| fs.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        assert_eq!(
            unknown(&[&app], &owned(&["fast", "app/fast", "serde/std"])),
            None
        );
        assert_eq!(
            unknown(&[&app], &owned(&["nope"])).as_deref(),
            Some("the package 'app' does not contain this feature: nope")
        );
        assert_eq!(
            unknown(&[&app], &owned(&["app/nope", "other/x"])).as_deref(),
            Some("the package 'app' does not contain these features: app/nope, other/x")
        );
        let mut lib = pkg(serde_json::json!({ "extra": [] }));
        lib.name = "lib".into();
        assert_eq!(unknown(&[&app, &lib], &owned(&["extra", "fast"])), None);
        assert_eq!(
            unknown(&[&app, &lib], &owned(&["nope"])).as_deref(),
            Some("none of the selected packages contains this feature: nope\nselected packages: app, lib")
        );
    }
}
