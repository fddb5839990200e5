//! Package and target specs as cargo reads them: `*`, `?` or `[` make a spec a glob over names
//! (one that matches nothing is an error), and a plain name that matches nothing gets cargo's
//! "a … with a similar name exists" help, found by edit distance.
use std::collections::BTreeSet;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::PlanError;

/// Cargo's rule: a spec with any of `*?[` is a glob.
pub fn is_glob(spec: &str) -> bool {
    spec.contains(['*', '?', '['])
}

fn glob(spec: &str) -> Result<GlobMatcher, PlanError> {
    GlobBuilder::new(spec)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| PlanError::BadPattern {
            pattern: spec.to_string(),
            reason: e.kind().to_string(),
        })
}

/// Whether `spec` names `name`: as a glob, or equal to it.
pub fn matches(spec: &str, name: &str) -> bool {
    if is_glob(spec) {
        glob(spec).is_ok_and(|g| g.is_match(name))
    } else {
        spec == name
    }
}

/// The name closest to `wanted` that is close enough to be a typo of it (cargo's threshold: an
/// edit distance under 4, and under a third of the name's length).
pub fn similar<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    names
        .into_iter()
        .map(|n| (strsim::levenshtein(wanted, n), n))
        .filter(|&(d, _)| d <= limit)
        .min()
        .map(|(_, n)| n)
}

/// The error for `spec` matching none of `names` (`what`: "package", "bin target", …): for a
/// glob, that nothing matches it (or that it is no valid glob); for a plain name, `plain` with
/// cargo's help naming a similar name, when one exists.
pub fn unmatched<'a>(
    what: &'static str,
    spec: &str,
    names: impl IntoIterator<Item = &'a str>,
    plain: impl FnOnce() -> PlanError,
) -> PlanError {
    let names: BTreeSet<&str> = names.into_iter().collect();
    if is_glob(spec) {
        if let Err(e) = glob(spec) {
            return e;
        }
        let available = if names.is_empty() {
            "none".to_string()
        } else {
            names.into_iter().collect::<Vec<_>>().join(", ")
        };
        return PlanError::NoSpecMatch {
            what,
            pattern: spec.to_string(),
            available,
        };
    }
    let error = plain();
    match similar(spec, names) {
        Some(n) => PlanError::Help {
            error: Box::new(error),
            help: format!("{} {what} with a similar name exists: `{n}`", article(what)),
        },
        None => error,
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_cargos_rule() {
        assert!(is_glob("demo-*") && is_glob("a?c") && is_glob("[ab]x"));
        assert!(!is_glob("hello-fastcp"));
        assert!(matches("demo-*", "demo-cli") && !matches("demo-*", "app"));
        assert!(matches("hello", "hello") && !matches("hello", "hello2"));
    }

    #[test]
    fn a_typo_finds_the_similar_name_and_nothing_else_does() {
        let names = ["hello-fastcp", "demo-cli", "app"];
        assert_eq!(similar("hello-fastcpp", names), Some("hello-fastcp"));
        assert_eq!(similar("demo-clj", names), Some("demo-cli"));
        assert_eq!(similar("zzz", names), None);
        assert_eq!(similar("completely-else", names), None);
    }

    #[test]
    fn an_invalid_glob_is_named_as_such() {
        let e = unmatched("package", "a[", ["a"], || unreachable!());
        assert!(matches!(e, PlanError::BadPattern { .. }), "{e}");
    }
}
