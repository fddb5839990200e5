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
}
