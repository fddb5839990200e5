//! Replays corpus inputs through the fuzz check on any toolchain (no libFuzzer runtime needed):
//! `cargo run --manifest-path fuzz/Cargo.toml --bin replay -- [-v] fuzz/corpus/select_patterns`
//! (`-v`: print what selection made of each input).
use std::path::{Path, PathBuf};

fn inputs(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| e.expect("read_dir entry").path())
            .collect();
        entries.sort();
        for e in entries {
            inputs(&e, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn main() {
    let mut files = Vec::new();
    let mut verbose = false;
    for arg in std::env::args_os().skip(1) {
        if arg == "-v" {
            verbose = true;
            continue;
        }
        inputs(Path::new(&arg), &mut files);
    }
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let outcome = fastcp_fuzz::outcome(&data);
        if verbose {
            println!("{}\t{outcome}", f.display());
        }
    }
    fastcp_fuzz::cleanup();
    println!("replayed {} inputs: all passed", files.len());
}
