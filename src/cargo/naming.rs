//! The platform file-name table: which files cargo writes for each crate kind of a target, on
//! each target platform, and which profile directory they land in.
use crate::config::CrateKind;
use crate::plan::Kind;

/// The directory cargo puts a profile's outputs in.
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// File naming conventions of a target platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Unix,
    Apple,
    Msvc,
    WinGnu,
    Wasm,
}

impl Platform {
    /// The conventions of `triple` (`None`: the host). A custom target spec is named by its
    /// file stem, which usually reads like the triple it is derived from.
    pub fn of(triple: Option<&str>) -> Platform {
        match triple {
            None => Platform::host(),
            Some(t) if t.starts_with("wasm32") || t.starts_with("wasm64") => Platform::Wasm,
            Some(t) if t.contains("windows-msvc") => Platform::Msvc,
            Some(t) if t.contains("windows-gnu") => Platform::WinGnu,
            Some(t) if t.contains("-apple-") => Platform::Apple,
            Some(_) => Platform::Unix,
        }
    }

    pub fn host() -> Platform {
        if cfg!(all(windows, target_env = "msvc")) {
            Platform::Msvc
        } else if cfg!(windows) {
            Platform::WinGnu
        } else if cfg!(target_vendor = "apple") {
            Platform::Apple
        } else {
            Platform::Unix
        }
    }

    /// File names cargo writes for one crate kind of one target, with the kind each file counts as.
    pub fn files(self, ck: CrateKind, name: &str, debug_files: bool) -> Vec<(String, Kind)> {
        let lib = name.replace('-', "_");
        let kind = Kind::Artifact(ck);
        let mut v = Vec::new();
        match ck {
            CrateKind::Bin | CrateKind::Example => {
                match self {
                    Platform::Msvc | Platform::WinGnu => v.push((format!("{name}.exe"), kind)),
                    Platform::Wasm => v.push((format!("{name}.wasm"), kind)),
                    _ => v.push((name.to_string(), kind)),
                }
                if debug_files {
                    match self {
                        Platform::Msvc => v.push((format!("{lib}.pdb"), Kind::DebugInfo)),
                        Platform::Apple => v.push((format!("{name}.dSYM"), Kind::DebugInfo)),
                        // split-debuginfo = "packed": the DWARF package beside the binary.
                        Platform::Unix => v.push((format!("{name}.dwp"), Kind::DebugInfo)),
                        _ => {}
                    }
                }
            }
            CrateKind::Cdylib | CrateKind::Dylib => {
                match self {
                    Platform::Unix => v.push((format!("lib{lib}.so"), kind)),
                    Platform::Apple => v.push((format!("lib{lib}.dylib"), kind)),
                    Platform::Msvc => {
                        v.push((format!("{lib}.dll"), kind));
                        v.push((format!("{lib}.dll.lib"), kind));
                    }
                    Platform::WinGnu => {
                        v.push((format!("{lib}.dll"), kind));
                        v.push((format!("lib{lib}.dll.a"), kind));
                    }
                    Platform::Wasm => v.push((format!("{lib}.wasm"), kind)),
                }
                if debug_files {
                    match self {
                        Platform::Msvc => v.push((format!("{lib}.pdb"), Kind::DebugInfo)),
                        Platform::Apple => {
                            v.push((format!("lib{lib}.dylib.dSYM"), Kind::DebugInfo))
                        }
                        Platform::Unix => v.push((format!("lib{lib}.so.dwp"), Kind::DebugInfo)),
                        _ => {}
                    }
                }
            }
            CrateKind::Staticlib => match self {
                Platform::Msvc => v.push((format!("{lib}.lib"), kind)),
                _ => v.push((format!("lib{lib}.a"), kind)),
            },
            CrateKind::Rlib => v.push((format!("lib{lib}.rlib"), kind)),
            CrateKind::ProcMacro => {
                // Proc-macros always build for the host.
                let host = Platform::host();
                let file = match host {
                    Platform::Apple => format!("lib{lib}.dylib"),
                    Platform::Msvc | Platform::WinGnu => format!("{lib}.dll"),
                    _ => format!("lib{lib}.so"),
                };
                v.push((file, kind));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_triple() {
        // One row a case: the table reads best unwrapped.
        #[rustfmt::skip]
        let table: [(&str, CrateKind, &str, &[&str]); 9] = [
            ("x86_64-unknown-linux-gnu", CrateKind::Cdylib, "ffi-core", &["libffi_core.so", "libffi_core.so.dwp"]),
            ("x86_64-unknown-linux-gnu", CrateKind::Bin, "app-cli", &["app-cli", "app-cli.dwp"]),
            ("aarch64-apple-darwin", CrateKind::Cdylib, "a-b", &["liba_b.dylib", "liba_b.dylib.dSYM"]),
            ("x86_64-pc-windows-msvc", CrateKind::Bin, "app-cli", &["app-cli.exe", "app_cli.pdb"]),
            ("x86_64-pc-windows-msvc", CrateKind::Staticlib, "a-b", &["a_b.lib"]),
            ("x86_64-pc-windows-gnu", CrateKind::Cdylib, "a", &["a.dll", "liba.dll.a"]),
            ("x86_64-pc-windows-gnu", CrateKind::Staticlib, "a", &["liba.a"]),
            ("wasm32-unknown-unknown", CrateKind::Cdylib, "a-b", &["a_b.wasm"]),
            ("wasm32-wasip1", CrateKind::Bin, "app", &["app.wasm"]),
        ];
        for (triple, ck, name, expected) in table {
            let files: Vec<String> = Platform::of(Some(triple))
                .files(ck, name, true)
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            assert_eq!(files, expected, "{triple} {ck:?} {name}");
        }
    }

    #[test]
    fn profile_dirs_match_cargo() {
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("test"), "debug");
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("bench"), "release");
        assert_eq!(profile_dir("dist"), "dist");
    }
}
