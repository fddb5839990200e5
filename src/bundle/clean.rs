//! `--clean`: which out-dirs may be emptied before a copy (never one holding what matters), and the emptying.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Directories an out-dir must never be, nor be an ancestor of.
#[derive(Debug, Default)]
pub struct Guarded {
    pub home: Option<PathBuf>,
    pub workspace_root: Option<PathBuf>,
    pub target_dir: Option<PathBuf>,
}

/// `path` with symlinks resolved, or itself where it cannot be (it does not exist).
fn real(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Why emptying `out_dir` would destroy something, or `Ok` when it may be emptied. `sources`
/// are the paths the copy reads. An out-dir that does not exist yet is always fine.
pub fn refusal<'a>(
    out_dir: &Path,
    guarded: &Guarded,
    sources: impl IntoIterator<Item = &'a Path>,
) -> Result<(), String> {
    let Ok(out) = fs::canonicalize(out_dir) else {
        return Ok(());
    };
    if out.parent().is_none() {
        return Err("it is the root directory".into());
    }
    if let Some(home) = &guarded.home {
        if real(home) == out {
            return Err("it is the home directory".into());
        }
    }
    for (what, dir) in [
        ("the workspace root", &guarded.workspace_root),
        ("the target directory", &guarded.target_dir),
    ] {
        if let Some(dir) = dir {
            let dir = real(dir);
            if dir == out {
                return Err(format!("it is {what}"));
            }
            if dir.starts_with(&out) {
                return Err(format!("it holds {what} {}", dir.display()));
            }
        }
    }
    // Resolved whole: with -L a source may be a link whose target lies in the out-dir.
    for src in sources {
        let src_real = real(src);
        if src_real.starts_with(&out) {
            return Err(format!(
                "it holds {}, a source of this copy",
                src_real.display()
            ));
        }
    }
    Ok(())
}

/// Removes everything inside `out_dir` (not the directory itself). Symlinks are removed, never
/// followed. A missing out-dir is already empty.
pub fn empty(out_dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(out_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let res = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        res.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_holds_sources_and_guarded_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        let out = ws.join("dist");
        fs::create_dir_all(&out).unwrap();
        fs::create_dir_all(ws.join("target/release")).unwrap();
        fs::write(ws.join("README.md"), "x").unwrap();
        let g = Guarded {
            home: Some(tmp.path().to_path_buf()),
            workspace_root: Some(ws.clone()),
            target_dir: Some(ws.join("target")),
        };
        let none: [&Path; 0] = [];
        assert!(refusal(&out, &g, none).is_ok());
        assert!(refusal(Path::new("/"), &g, none)
            .unwrap_err()
            .contains("root"));
        assert!(refusal(tmp.path(), &g, none).unwrap_err().contains("home"));
        assert!(refusal(&ws, &g, none)
            .unwrap_err()
            .contains("the workspace root"));
        assert!(refusal(&ws.join("target"), &g, none)
            .unwrap_err()
            .contains("target directory"));
        let src = out.join("in/file");
        assert!(refusal(&out, &g, [src.as_path()])
            .unwrap_err()
            .contains("a source"));
        assert!(refusal(&tmp.path().join("missing"), &g, none).is_ok());
    }

    #[test]
    fn empties_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let keep = tmp.path().join("keep");
        fs::create_dir(&keep).unwrap();
        fs::write(keep.join("precious"), "x").unwrap();
        let out = tmp.path().join("out");
        fs::create_dir_all(out.join("sub/deeper")).unwrap();
        fs::write(out.join("a"), "a").unwrap();
        fs::write(out.join("sub/deeper/b"), "b").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&keep, out.join("link")).unwrap();
        empty(&out).unwrap();
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
        assert!(keep.join("precious").exists());
        empty(&tmp.path().join("missing")).unwrap();
    }
}
