//! `--archive-name`: the template (`{name}`, `{version}`, `{target}`) and the values it names.

/// The default template: the cargo-binstall / upload-rust-binary-action convention.
pub const DEFAULT_TEMPLATE: &str = "{name}-{version}-{target}";

/// What the placeholders stand for; `None` where the run has no such thing (no package).
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub name: Option<String>,
    pub version: Option<String>,
    pub target: Option<String>,
}

/// Placeholders a template uses, in order, each once; `Err` names what is wrong with it.
pub fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        if rest.as_bytes()[i] == b'}' {
            return Err("a `}` without its `{`".into());
        }
        let after = &rest[i + 1..];
        let Some(end) = after.find('}') else {
            return Err("a `{` without its `}`".into());
        };
        let key = &after[..end];
        if !matches!(key, "name" | "version" | "target") {
            return Err(format!(
                "unknown placeholder `{{{key}}}` (known: {{name}}, {{version}}, {{target}})"
            ));
        }
        if !used.contains(&key) {
            used.push(key);
        }
        rest = &after[end + 1..];
    }
    Ok(used)
}

/// The archive's base name (also its leading directory) from `template`. `Err` says why the
/// template cannot be used: an unknown placeholder, a value this run lacks, or a result that
/// is empty or could leave the archive directory (`/`, `\`, `..`).
pub fn render(template: &str, vars: &Vars) -> Result<String, String> {
    placeholders(template)?;
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find('}').unwrap_or(after.len());
        let key = &after[..end];
        let value = match key {
            "name" => vars.name.as_deref(),
            "version" => vars.version.as_deref(),
            _ => vars.target.as_deref(),
        };
        let Some(value) = value else {
            return Err(format!(
                "`{{{key}}}` has no value here: the run stages no cargo package (give --archive-name without it)"
            ));
        };
        out.push_str(value);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    if out.is_empty() || out == "." {
        return Err(format!("it yields the name `{out}`"));
    }
    if out.contains(['/', '\\']) || out.contains("..") {
        return Err(format!(
            "it yields `{out}`, which holds `/`, `\\` or `..` and could leave the archive directory"
        ));
    }
    if out.chars().any(char::is_control) {
        return Err(format!(
            "it yields `{}` with a control character",
            out.escape_debug()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            name: Some("app".into()),
            version: Some("1.2.3".into()),
            target: Some("x86_64-unknown-linux-gnu".into()),
        }
    }

    #[test]
    fn the_default_names_like_binstall() {
        assert_eq!(
            render(DEFAULT_TEMPLATE, &vars()).unwrap(),
            "app-1.2.3-x86_64-unknown-linux-gnu"
        );
        assert_eq!(render("{name}_v{version}", &vars()).unwrap(), "app_v1.2.3");
        assert_eq!(render("fixed", &Vars::default()).unwrap(), "fixed");
    }

    #[test]
    fn bad_templates_say_why() {
        for (t, why) in [
            ("{nme}", "unknown placeholder `{nme}`"),
            ("{name", "without its `}`"),
            ("name}", "without its `{`"),
            ("a/{name}", "holds `/`"),
            ("..", "holds `/`"),
            ("{name}..x", "holds `/`"),
            ("", "yields the name ``"),
        ] {
            let e = render(t, &vars()).expect_err(t);
            assert!(e.contains(why), "{t}: {e}");
        }
        let mut v = vars();
        v.version = Some("../../x".into());
        assert!(render(DEFAULT_TEMPLATE, &v).is_err());
        let e = render("{name}", &Vars::default()).unwrap_err();
        assert!(e.contains("no value"), "{e}");
    }
}
