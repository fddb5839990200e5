//! Dep-info: the `<artifact>.d` file cargo writes next to each artifact, listing the sources it
//! was built from; an artifact older than one of them is stale.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The dep-info file cargo writes for `artifact` (`target/release/app` → `app.d`,
/// `libffi.so` → `libffi.d`, `ffi.dll.lib` → `ffi.dll.d`): cargo's own rule, the uplifted
/// file's last extension replaced (`link_dst.with_extension("d")` in its `output_depinfo`), so
/// a file named `my.tool` has `my.d`, as cargo writes it.
pub fn path_for(artifact: &Path) -> Option<PathBuf> {
    artifact.file_name()?;
    Some(artifact.with_extension("d"))
}

/// The prerequisites of the first rule of a Makefile-style dep-info file (`target: a b\ c`),
/// relative ones joined to `base`.
pub fn sources(text: &str, base: &Path) -> Vec<PathBuf> {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Vec::new();
    };
    // The target is a path too and may hold `: ` only escaped, so the first unescaped `: `
    // ends it.
    let Some(deps) = split_unescaped(line, ": ").nth(1) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            ' ' => {
                if !cur.is_empty() {
                    out.push(base.join(std::mem::take(&mut cur)));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(base.join(cur));
    }
    out
}

fn split_unescaped<'a>(line: &'a str, sep: &'a str) -> impl Iterator<Item = &'a str> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut from = 0;
        loop {
            match s[from..].find(sep) {
                Some(i) if s[..from + i].ends_with('\\') => from += i + sep.len(),
                Some(i) => {
                    rest = Some(&s[from + i + sep.len()..]);
                    return Some(&s[..from + i]);
                }
                None => {
                    rest = None;
                    return Some(s);
                }
            }
        }
    })
}

/// A source listed in `artifact`'s dep-info file, of those `counts`, that was modified after
/// `built` (the artifact's mtime); `None` when all are older or there is no dep-info to read.
pub fn newer_source(
    artifact: &Path,
    built: SystemTime,
    base: &Path,
    counts: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path_for(artifact)?).ok()?;
    sources(&text, base).into_iter().find(|src| {
        counts(src)
            && std::fs::metadata(src)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > built)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_names_follow_the_artifact() {
        let p = |s: &str| path_for(Path::new(s)).unwrap();
        assert_eq!(p("/t/release/app-cli"), Path::new("/t/release/app-cli.d"));
        assert_eq!(
            p("/t/release/libffi_core.so"),
            Path::new("/t/release/libffi_core.d")
        );
        assert_eq!(p("/t/release/app.exe"), Path::new("/t/release/app.d"));
        assert_eq!(
            p("/t/release/examples/demo"),
            Path::new("/t/release/examples/demo.d")
        );
        // What cargo wrote for `[[bin]] filename = "my.tool"` (different-binary-name): `my.d`.
        assert_eq!(p("/t/debug/my.tool"), Path::new("/t/debug/my.d"));
        assert_eq!(p("/t/debug/ffi.dll.lib"), Path::new("/t/debug/ffi.dll.d"));
        assert_eq!(
            p("/t/debug/libffi.dll.a"),
            Path::new("/t/debug/libffi.dll.d")
        );
        assert_eq!(p("/t/debug/app.js"), Path::new("/t/debug/app.d"));
    }

    #[test]
    fn sources_are_the_first_rules_prerequisites() {
        let text = "/w/target/release/app: /w/src/main.rs /w/src/my\\ mod.rs src/rel.rs\n\n/w/src/main.rs:\n";
        assert_eq!(
            sources(text, Path::new("/w")),
            [
                PathBuf::from("/w/src/main.rs"),
                PathBuf::from("/w/src/my mod.rs"),
                PathBuf::from("/w/src/rel.rs")
            ]
        );
        assert!(sources("", Path::new("/w")).is_empty());
    }
}
