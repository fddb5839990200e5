//! Copy benchmark: cargo-fastcp (every engine and copy method) against cp, rsync and, where
//! installed, xcp, fcp and cpz, on the shared corpora; plus the staging measurement (issue 2).
//!
//! ```sh
//! cargo run --release --example bench -- [--scale F] [--runs N] [--profiles target,bins,small]
//!     [--dir DIR] [--stage] [--stage-runs N] [--markdown FILE]
//! ```
//!
//! See docs/benchmarks.md for how to run it and how to read the tables. In short: each corpus is
//! made once with `../shared/bench/make-corpus.py`, the page cache is warmed, then every tool
//! copies it N times, interleaved (the order rotates each round), each run into a fresh
//! directory, with a `sync` and a re-read of the source (both untimed) before each run. Every copy
//! is checked with `verify-copy.py` (ours with `--mtime --strict`, peers' with `--mtime`, their
//! warnings reported as notes). Copies are deleted at the end, or earlier (followed by a
//! cool-down) when the disk runs short.

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = bench::main() {
        eprintln!("bench: error: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bench: the benchmark runs on Linux only");
}

#[cfg(target_os = "linux")]
mod bench {
    use std::collections::BTreeMap;
    use std::ffi::{OsStr, OsString};
    use std::fmt::Write as _;
    use std::fs::{self, File};
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    type Result<T> = std::result::Result<T, String>;

    const HELP: &str = "\
usage: cargo run --release --example bench -- [OPTIONS]

  --scale F          corpus scale for make-corpus.py (default 1.0)
  --runs N           timed runs per tool and corpus (default 5; medians reported)
  --profiles LIST    comma-separated corpora: target,bins,small (default all; `none` for none)
  --dir DIR          work directory for corpora and copies (default <repo>/../bench-tmp);
                     must be on the filesystem you want to measure
  --shared DIR       the shared bench scripts (default <repo>/../shared/bench)
  --bin PATH         cargo-fastcp binary (default: build it with this example's profile)
  --tools LIST       only these tools (names as in the table, comma-separated)
  --stage            also measure staging examples/demo-workspace's release artifacts:
                     cargo fastcp (cargo metadata included) against plain cp of the same files
  --stage-runs N     timed runs for --stage (default 20)
  --keep-free GIB    free space to keep on --dir's filesystem (default 8); when a run would
                     go below it, earlier copies are deleted and the bench cools down first
  --cooldown SECS    pause after deleting copies (default 65: this ext4 skips freed inodes
                     for 60 s, which slows the next copy)
  --markdown FILE    also write the report (markdown) to FILE
  --keep-page-reporting
                     leave the free page reporting setting as it is (see below)
  --cold             time the corpora with a cold page cache: `sync` and
                     `echo 3 > /proc/sys/vm/drop_caches` before each run instead of reading the
                     source (needs root; --stage is unaffected)
  --ring-vs-vec      also measure the claim \"compio's managed buffers are 2-5x faster than a
                     Vec read/write loop\" on bins: one thread copies the files one after
                     another in 128 KiB chunks through the buffer ring, through compio with one
                     owned Vec, through std read/write with one reused Vec, and with a fresh Vec
                     per chunk; warm, and cold too when root (--runs runs each, interleaved)
  --bundle           also measure release bundles: a re-stage series on `target` (a full
                     copy; then --runs rounds of rewriting 5% of the files and re-staging
                     with --update, against rsync -a's own second run), and --checksums
                     sha256 against the same copy without it on `bins` (with the in-process
                     sha256 of the bytes, the floor)

In a VM with virtio-balloon free page reporting (dmesg: \"Free page reporting enabled\"), the
guest hands every freed page back to the host, and the next write to it takes a host fault:
copies then run up to about 10x slower after any deletion, drop_caches or fadvise. Where
/sys/module/page_reporting/parameters/page_reporting_order is writable (root), the bench raises
it above the largest page order for the run, so nothing is reported; touches the free memory
once, so pages reported earlier are backed again; and puts the old value back at the end.
";

    struct Args {
        scale: f64,
        runs: usize,
        profiles: Vec<String>,
        dir: PathBuf,
        shared: PathBuf,
        bin: Option<PathBuf>,
        tools: Option<Vec<String>>,
        stage: bool,
        stage_runs: usize,
        keep_free: u64,
        cooldown: Duration,
        markdown: Option<PathBuf>,
        keep_page_reporting: bool,
        cold: bool,
        ring_vs_vec: bool,
        bundle: bool,
    }

    fn parse_args() -> Result<Args> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut a = Args {
            scale: 1.0,
            runs: 5,
            profiles: vec!["target".into(), "bins".into(), "small".into()],
            dir: repo.join("../bench-tmp"),
            shared: repo.join("../shared/bench"),
            bin: None,
            tools: None,
            stage: false,
            stage_runs: 20,
            keep_free: 8 << 30,
            cooldown: Duration::from_secs(65),
            markdown: None,
            keep_page_reporting: false,
            cold: false,
            ring_vs_vec: false,
            bundle: false,
        };
        let mut it = std::env::args_os().skip(1);
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty() && x != "none")
                .collect()
        };
        while let Some(arg) = it.next() {
            let arg = arg.to_string_lossy().into_owned();
            let mut val = |name: &str| -> Result<String> {
                it.next()
                    .map(|v| v.to_string_lossy().into_owned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let num = |name: &str, v: String| -> Result<f64> {
                v.parse::<f64>()
                    .map_err(|_| format!("{name}: `{v}` is not a number"))
            };
            match arg.as_str() {
                "--scale" => a.scale = num("--scale", val("--scale")?)?,
                "--runs" => a.runs = num("--runs", val("--runs")?)? as usize,
                "--profiles" => a.profiles = list(val("--profiles")?),
                "--dir" => a.dir = PathBuf::from(val("--dir")?),
                "--shared" => a.shared = PathBuf::from(val("--shared")?),
                "--bin" => a.bin = Some(PathBuf::from(val("--bin")?)),
                "--tools" => a.tools = Some(list(val("--tools")?)),
                "--stage" => a.stage = true,
                "--stage-runs" => {
                    a.stage_runs = num("--stage-runs", val("--stage-runs")?)? as usize
                }
                "--keep-free" => {
                    a.keep_free =
                        (num("--keep-free", val("--keep-free")?)? * (1u64 << 30) as f64) as u64
                }
                "--cooldown" => {
                    a.cooldown = Duration::from_secs_f64(num("--cooldown", val("--cooldown")?)?)
                }
                "--markdown" => a.markdown = Some(PathBuf::from(val("--markdown")?)),
                "--keep-page-reporting" => a.keep_page_reporting = true,
                "--cold" => a.cold = true,
                "--ring-vs-vec" => a.ring_vs_vec = true,
                "--bundle" => a.bundle = true,
                "-h" | "--help" => {
                    print!("{HELP}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument `{other}`\n{HELP}")),
            }
        }
        if a.runs == 0 || a.stage_runs == 0 {
            return Err("--runs and --stage-runs must be at least 1".into());
        }
        if a.scale.is_nan() || a.scale <= 0.0 {
            return Err("--scale must be positive".into());
        }
        for p in &a.profiles {
            if !["target", "bins", "small"].contains(&p.as_str()) {
                return Err(format!("unknown profile `{p}` (target, bins, small)"));
            }
        }
        Ok(a)
    }

    // -----------------------------------------------------------------------------------------
    // Small helpers

    fn sh(program: &str, args: &[&OsStr]) -> Result<String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {:?} failed ({}):\n{}",
                args,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn which(program: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    }

    fn first_line(s: &str) -> String {
        s.lines().next().unwrap_or("").trim().to_string()
    }

    fn version(program: &str) -> String {
        Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .map(|o| {
                first_line(&format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ))
            })
            .unwrap_or_default()
    }

    fn median(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }

    /// A report section: its heading and its table's header. The first and the last column
    /// (a name, the verification) are left-aligned, the numbers between them right-aligned.
    fn table_head(report: &mut String, heading: &str, columns: &[&str]) {
        let align: Vec<&str> = (0..columns.len())
            .map(|i| {
                if i == 0 || i + 1 == columns.len() {
                    "---"
                } else {
                    "---:"
                }
            })
            .collect();
        let _ = writeln!(report, "\n### {heading}\n");
        let _ = writeln!(report, "| {} |", columns.join(" | "));
        let _ = writeln!(report, "|{}|", align.join("|"));
    }

    fn min(v: &[f64]) -> f64 {
        v.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Runs `argv` (stdout discarded, stderr kept), returning its wall time and its output.
    fn run_timed(argv: &[OsString]) -> Result<(f64, std::process::Output)> {
        let t = Instant::now();
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {:?}: {e}", argv[0]))?;
        Ok((t.elapsed().as_secs_f64(), out))
    }

    fn sync() {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
    }

    /// Bytes and inodes free for unprivileged users on `dir`'s filesystem.
    fn free_space(dir: &Path) -> (u64, u64) {
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: statvfs into a zeroed struct we own.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return (u64::MAX, u64::MAX);
        }
        (st.f_bavail * st.f_frsize, st.f_favail)
    }

    /// Every regular file below `root` (not following symlinks).
    fn files_below(root: &Path) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let Ok(md) = e.path().symlink_metadata() else {
                    continue;
                };
                if md.is_dir() {
                    stack.push(e.path());
                } else if md.is_file() {
                    out.push((e.path(), md.len()));
                }
            }
        }
        out
    }

    /// Puts the source in the state a timed run starts from: read once, so it is in the page
    /// cache, or with `--cold` the page cache, dentries and inodes dropped.
    fn prime(cold: bool, files: &[(PathBuf, u64)]) -> Result<()> {
        if cold {
            fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| {
                format!("--cold: cannot write /proc/sys/vm/drop_caches (root only): {e}")
            })
        } else {
            warm(files);
            Ok(())
        }
    }

    /// Reads every file once so the timed runs start with the source in the page cache.
    fn warm(files: &[(PathBuf, u64)]) {
        let mut buf = vec![0u8; 1 << 20];
        for (p, _) in files {
            if let Ok(mut f) = File::open(p) {
                while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
            }
        }
    }

    /// Drops a finished (synced) copy's pages, so copies do not push the source out of the cache.
    fn drop_cache(root: &Path) {
        use std::os::fd::AsRawFd;
        for (p, _) in files_below(root) {
            if let Ok(f) = File::open(&p) {
                // SAFETY: advisory call on an fd we own.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }

    /// Removes a tree, opening read-only directories first.
    fn remove_tree(root: &Path) {
        if fs::remove_dir_all(root).is_ok() || !root.exists() {
            return;
        }
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwx")
            .arg(root)
            .status();
        let _ = fs::remove_dir_all(root);
    }

    // -----------------------------------------------------------------------------------------
    // Tools

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Family {
        /// cargo-fastcp: checked strictly (hard links and mtimes are errors).
        Ours,
        /// Another copy tool: its verification warnings are notes.
        Peer,
        /// A reference that copies no data (`cp -al`): not a peer.
        Reference,
    }

    /// The command line copying SRC to DST.
    type CopyArgv = Box<dyn Fn(&Path, &Path) -> Vec<OsString>>;

    struct Tool {
        name: String,
        family: Family,
        /// Builds the command for SRC → DST (DST does not exist yet).
        argv: CopyArgv,
        /// Why the tool is left out here, if it is.
        unavailable: Option<String>,
    }

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    fn tools(bin: &Path, io_uring: &Option<String>, only: &Option<Vec<String>>) -> Vec<Tool> {
        let mut v = Vec::new();
        // `per_file`: `--tree-staging off`, each file placed on its own although the out-dir
        // is new (rows named `… per-file`, run only when `--tools` names them).
        let ours = |engine: &'static str, method: &'static str, per_file: bool| {
            let bin = bin.to_path_buf();
            move |src: &Path, dst: &Path| {
                let mut a = vec![
                    bin.clone().into_os_string(),
                    os("-o"),
                    dst.into(),
                    os("--from"),
                    src.into(),
                    os("**"),
                    os("-q"),
                    os("--engine"),
                    os(engine),
                ];
                if !method.is_empty() {
                    a.extend([os("--copy-method"), os(method)]);
                }
                if per_file {
                    a.extend([os("--tree-staging"), os("off")]);
                }
                a
            }
        };
        for method in ["auto", "buffer-ring", "copy-file-range", "splice"] {
            v.push(Tool {
                name: format!("cargo-fastcp io-uring {method}"),
                family: Family::Ours,
                argv: Box::new(ours("io-uring", method, false)),
                unavailable: io_uring.clone(),
            });
        }
        v.push(Tool {
            name: "cargo-fastcp portable".into(),
            family: Family::Ours,
            argv: Box::new(ours("portable", "", false)),
            unavailable: None,
        });
        v.push(Tool {
            name: "cargo-fastcp io-uring auto per-file".into(),
            family: Family::Ours,
            argv: Box::new(ours("io-uring", "auto", true)),
            unavailable: io_uring.clone(),
        });
        v.push(Tool {
            name: "cargo-fastcp portable per-file".into(),
            family: Family::Ours,
            argv: Box::new(ours("portable", "", true)),
            unavailable: None,
        });
        let peer = |name: &str, argv: CopyArgv| {
            let program = name.split(' ').next().unwrap_or(name);
            Tool {
                name: name.to_string(),
                family: Family::Peer,
                argv,
                unavailable: which(program)
                    .is_none()
                    .then(|| format!("`{program}` is not installed")),
            }
        };
        v.push(peer(
            "cp -a",
            Box::new(|s, d| vec![os("cp"), os("-a"), s.into(), d.into()]),
        ));
        v.push(peer(
            "rsync -a",
            Box::new(|s, d| {
                let mut s = s.as_os_str().to_owned();
                s.push("/");
                let mut d = d.as_os_str().to_owned();
                d.push("/");
                vec![os("rsync"), os("-a"), s, d]
            }),
        ));
        v.push(peer(
            "xcp -r",
            Box::new(|s, d| vec![os("xcp"), os("-r"), s.into(), d.into()]),
        ));
        v.push(peer(
            "fcp",
            Box::new(|s, d| vec![os("fcp"), s.into(), d.into()]),
        ));
        v.push(peer(
            "cpz",
            Box::new(|s, d| vec![os("cpz"), s.into(), d.into()]),
        ));
        let mut floor = peer(
            "cp -al",
            Box::new(|s, d| vec![os("cp"), os("-al"), s.into(), d.into()]),
        );
        floor.family = Family::Reference;
        v.push(floor);
        match only {
            Some(only) => v.retain(|t| only.iter().any(|o| o == &t.name)),
            None => v.retain(|t| !t.name.ends_with(" per-file")),
        }
        v
    }

    /// Why the binary cannot use io_uring here (it exits 2 and says so), if it cannot.
    fn io_uring_unavailable(bin: &Path, any_dir: &Path, any_file: &str) -> Result<Option<String>> {
        let out = Command::new(bin)
            .args(["--dry-run", "-q", "--engine", "io-uring", "--from"])
            .arg(any_dir)
            .arg(any_file)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if out.status.success() {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.code() == Some(2) && err.contains("not available") {
            return Ok(Some(err.trim_start_matches("error: ").to_string()));
        }
        Err(format!(
            "io-uring availability check failed: {}\n{err}",
            out.status
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Verification

    #[derive(Default)]
    struct Check {
        runs: usize,
        ok: usize,
        failed_exit: Vec<String>,
        /// category → worst count seen across runs
        issues: BTreeMap<String, u64>,
    }

    impl Check {
        fn cell(&self, family: Family) -> String {
            let mut s = if self.ok == self.runs {
                format!("OK {}/{}", self.ok, self.runs)
            } else {
                format!("**FAIL** {}/{} ok", self.ok, self.runs)
            };
            if !self.failed_exit.is_empty() {
                let _ = write!(s, "; exit: {}", self.failed_exit.join(", "));
            }
            if !self.issues.is_empty() {
                let what: Vec<String> = self
                    .issues
                    .iter()
                    .map(|(k, n)| match k.as_str() {
                        "hardlink" => format!("{n} hard-link groups split"),
                        "mtime" => format!("{n} mtimes differ"),
                        other => format!("{n} {other}"),
                    })
                    .collect();
                let tag = if family == Family::Ours { "" } else { "note: " };
                let _ = write!(s, "; {tag}{}", what.join(", "));
            }
            s
        }
    }

    /// Runs verify-copy.py on one copy; records the result in `check`.
    fn verify(
        shared: &Path,
        src: &Path,
        dst: &Path,
        family: Family,
        cache: &Path,
        check: &mut Check,
    ) -> Result<()> {
        let mut cmd = Command::new("python3");
        cmd.arg(shared.join("verify-copy.py"))
            .arg(src)
            .arg(dst)
            .args(["--json", "--mtime", "--src-cache"])
            .arg(cache);
        if family == Family::Ours {
            cmd.arg("--strict");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run verify-copy.py: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "verify-copy.py printed no JSON ({e}):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let ok = v["ok"].as_bool().unwrap_or(false);
        if ok {
            check.ok += 1;
        }
        if let Some(counts) = v["counts"].as_object() {
            for (k, n) in counts {
                let n = n.as_u64().unwrap_or(0);
                if n > 0 {
                    let e = check.issues.entry(k.clone()).or_insert(0);
                    *e = (*e).max(n);
                }
            }
        }
        if !ok && family == Family::Ours {
            eprintln!(
                "    VERIFY FAILED for {}:\n{}",
                dst.display(),
                serde_json::to_string_pretty(&v["examples"]).unwrap_or_default()
            );
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // One corpus

    struct Copies {
        dir: PathBuf,
        made: Vec<PathBuf>,
    }

    impl Copies {
        fn purge(&mut self) {
            for p in self.made.drain(..) {
                remove_tree(&p);
            }
        }

        /// The disk is short (`free` bytes left): the copies made so far go, then a cool-down
        /// (ext4 without a journal skips freed inodes for about 60 s).
        fn purge_and_cool_down(&mut self, args: &Args, free: u64) {
            eprintln!(
                "  disk short ({} GiB free): deleting {} earlier copies, cooling down {} s",
                free >> 30,
                self.made.len(),
                args.cooldown.as_secs()
            );
            self.purge();
            sync();
            std::thread::sleep(args.cooldown);
        }
    }

    fn corpus(args: &Args, profile: &str) -> Result<(PathBuf, Vec<(PathBuf, u64)>)> {
        let dir = args
            .dir
            .join(format!("corpus-{profile}-scale{}", args.scale));
        let done = args
            .dir
            .join(format!("corpus-{profile}-scale{}.done", args.scale));
        if !done.exists() {
            if dir.exists() {
                remove_tree(&dir);
            }
            eprintln!("making corpus {profile} at scale {} ...", args.scale);
            let t = Instant::now();
            let status = Command::new("python3")
                .arg(args.shared.join("make-corpus.py"))
                .arg(profile)
                .arg(&dir)
                .arg("--scale")
                .arg(args.scale.to_string())
                .status()
                .map_err(|e| format!("cannot run make-corpus.py: {e}"))?;
            if !status.success() {
                return Err(format!("make-corpus.py {profile} failed: {status}"));
            }
            fs::write(&done, b"").map_err(|e| e.to_string())?;
            eprintln!("  made in {:.1} s", t.elapsed().as_secs_f64());
        }
        let files = files_below(&dir);
        Ok((dir, files))
    }

    struct Row {
        name: String,
        family: Family,
        times: Vec<f64>,
        check: Check,
        unavailable: Option<String>,
    }

    fn run_corpus(
        args: &Args,
        bin: &Path,
        io_uring: &Option<String>,
        profile: &str,
        copies: &mut Copies,
        report: &mut String,
    ) -> Result<()> {
        let (src, files) = corpus(args, profile)?;
        let total: u64 = files.iter().map(|f| f.1).sum();
        let cache = args
            .dir
            .join(format!("corpus-{profile}-scale{}.hashes.json", args.scale));
        let tools = tools(bin, io_uring, &args.tools);
        let mut rows: Vec<Row> = tools
            .iter()
            .map(|t| Row {
                name: t.name.clone(),
                family: t.family,
                times: Vec::new(),
                check: Check::default(),
                unavailable: t.unavailable.clone(),
            })
            .collect();
        eprintln!(
            "corpus {profile}: {} files, {:.1} MiB; {}",
            files.len(),
            total as f64 / (1 << 20) as f64,
            if args.cold {
                "page cache dropped before each run"
            } else {
                "warming the page cache"
            }
        );
        prime(args.cold, &files)?;
        let base = copies.dir.join(profile);
        fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        let active: Vec<usize> = (0..tools.len())
            .filter(|&i| tools[i].unavailable.is_none())
            .collect();
        for run in 0..args.runs {
            // Interleaved: every tool once per round; the order rotates each round.
            for k in 0..active.len() {
                let i = active[(k + run) % active.len()];
                let tool = &tools[i];
                let (bytes_free, inodes_free) = free_space(&args.dir);
                if bytes_free < total + total / 10 + args.keep_free
                    || inodes_free < files.len() as u64 * 2 + 10_000
                {
                    copies.purge_and_cool_down(args, bytes_free);
                }
                let dst = base.join(format!("{}-run{run}", tool.name.replace(' ', "_")));
                sync();
                prime(args.cold, &files)?;
                let argv = (tool.argv)(&src, &dst);
                let (secs, out) = run_timed(&argv)?;
                copies.made.push(dst.clone());
                let row = &mut rows[i];
                row.check.runs += 1;
                if out.status.success() {
                    row.times.push(secs);
                    eprintln!("  run {run} {:<34} {secs:>8.3} s", tool.name);
                } else {
                    let err = String::from_utf8_lossy(&out.stderr);
                    eprintln!(
                        "  run {run} {:<34} FAILED ({})\n{}",
                        tool.name,
                        out.status,
                        err.lines().take(10).collect::<Vec<_>>().join("\n")
                    );
                    row.check
                        .failed_exit
                        .push(out.status.code().map_or("signal".into(), |c| c.to_string()));
                    continue;
                }
                sync();
                verify(
                    &args.shared,
                    &src,
                    &dst,
                    tool.family,
                    &cache,
                    &mut row.check,
                )?;
                drop_cache(&dst);
            }
        }
        let title = if args.cold {
            format!("{profile} (cold page cache)")
        } else {
            profile.to_string()
        };
        write_table(report, &title, &files, total, &rows);
        Ok(())
    }

    fn write_table(
        report: &mut String,
        profile: &str,
        files: &[(PathBuf, u64)],
        total: u64,
        rows: &[Row],
    ) {
        let med = |name: &str| {
            rows.iter()
                .find(|r| r.name == name && !r.times.is_empty())
                .map(|r| median(&r.times))
        };
        let cp = med("cp -a");
        let rsync = med("rsync -a");
        let fastest_peer = rows
            .iter()
            .filter(|r| r.family == Family::Peer && !r.times.is_empty())
            .map(|r| (median(&r.times), r.name.as_str()))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let ratio =
            |x: f64, base: Option<f64>| base.map_or("—".to_string(), |b| format!("{:.2}", x / b));
        let peer = format!(
            "÷ fastest peer{}",
            fastest_peer.map_or(String::new(), |p| format!(" ({})", p.1))
        );
        table_head(
            report,
            &format!(
                "{profile}: {} files, {:.1} MiB",
                files.len(),
                total as f64 / (1 << 20) as f64
            ),
            &[
                "tool",
                "median s",
                "min s",
                "÷ cp -a",
                "÷ rsync -a",
                &peer,
                "verify",
            ],
        );
        for r in rows {
            if let Some(why) = &r.unavailable {
                let why = if why.contains("io-uring") {
                    "io-uring unavailable (see the machine section)"
                } else {
                    why
                };
                let _ = writeln!(
                    report,
                    "| {} | — | — | — | — | — | skipped: {why} |",
                    r.name
                );
                continue;
            }
            if r.times.is_empty() {
                let _ = writeln!(
                    report,
                    "| {} | — | — | — | — | — | {} |",
                    r.name,
                    r.check.cell(r.family)
                );
                continue;
            }
            let m = median(&r.times);
            let name = if r.family == Family::Reference {
                format!("{} (reference: hard links, no data)", r.name)
            } else {
                r.name.clone()
            };
            let _ = writeln!(
                report,
                "| {name} | {m:.3} | {:.3} | {} | {} | {} | {} |",
                min(&r.times),
                ratio(m, cp),
                ratio(m, rsync),
                ratio(m, fastest_peer.map(|p| p.0)),
                r.check.cell(r.family)
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Staging (issue 2): cargo fastcp end to end vs plain cp of the same files

    fn stage(args: &Args, bin: &Path, copies: &mut Copies, report: &mut String) -> Result<()> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ws = args.dir.join("stage-demo-workspace");
        // A private copy of the demo workspace, built there: the repository is left alone.
        if !ws.join("Cargo.toml").exists() {
            let src = repo.join("examples/demo-workspace");
            fs::create_dir_all(&ws).map_err(|e| e.to_string())?;
            for entry in [
                "Cargo.toml",
                "Cargo.lock",
                "README.md",
                "assets",
                "demo-ffi",
                "hello-fastcp",
            ] {
                sh(
                    "cp",
                    &[
                        OsStr::new("-a"),
                        src.join(entry).as_os_str(),
                        ws.as_os_str(),
                    ],
                )?;
            }
        }
        let manifest = ws.join("Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("stage: building {} (release)", ws.display());
        let st = Command::new(&cargo)
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("building the demo workspace failed: {st}"));
        }
        // The plan, from the binary itself: the files a plain cp has to copy.
        let plan = Command::new(bin)
            .args([
                "--release",
                "--dry-run",
                "--message-format",
                "json",
                "--manifest-path",
            ])
            .arg(&manifest)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| e.to_string())?;
        if !plan.status.success() {
            return Err(format!(
                "dry run failed: {}",
                String::from_utf8_lossy(&plan.stderr)
            ));
        }
        let mut srcs: Vec<PathBuf> = Vec::new();
        for line in String::from_utf8_lossy(&plan.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            if v["reason"] == "planned" {
                let dst = v["dst"].as_str().unwrap_or_default();
                if Path::new(dst).components().count() != 1 {
                    return Err(format!("stage: expected a flat plan, got {dst}"));
                }
                srcs.push(PathBuf::from(v["src"].as_str().unwrap_or_default()));
            }
        }
        let bytes: u64 = srcs
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let base = copies.dir.join("stage");
        fs::create_dir_all(&base).map_err(|e| e.to_string())?;

        type Argv = Box<dyn Fn(&Path) -> Vec<OsString>>;
        let m = manifest.clone();
        let b = bin.to_path_buf();
        let fastcp = move |engine: &'static str| -> Argv {
            let (m, b) = (m.clone(), b.clone());
            Box::new(move |dst: &Path| {
                vec![
                    b.clone().into_os_string(),
                    os("--release"),
                    os("-q"),
                    os("--engine"),
                    os(engine),
                    os("--manifest-path"),
                    m.clone().into_os_string(),
                    os("-o"),
                    dst.into(),
                ]
            })
        };
        let s2 = srcs.clone();
        let m2 = manifest.clone();
        let b2 = bin.to_path_buf();
        let cases: Vec<(&str, bool, Argv)> = vec![
            (
                "cargo fastcp --release -o DST (auto engine)",
                false,
                fastcp("auto"),
            ),
            (
                "cargo fastcp --release -o DST --engine portable",
                false,
                fastcp("portable"),
            ),
            (
                "cp -p <the same files> DST/ (DST made beforehand, untimed)",
                true,
                Box::new(move |dst: &Path| {
                    let mut a = vec![os("cp"), os("-p")];
                    a.extend(s2.iter().map(|p| p.clone().into_os_string()));
                    a.push(dst.into());
                    a
                }),
            ),
            (
                "cargo metadata --no-deps (alone, for reference)",
                false,
                Box::new(move |_| {
                    vec![
                        cargo.clone(),
                        os("metadata"),
                        os("--no-deps"),
                        os("--format-version"),
                        os("1"),
                        os("--manifest-path"),
                        m2.clone().into_os_string(),
                    ]
                }),
            ),
            (
                "cargo fastcp --release --dry-run (plan only, for reference)",
                false,
                Box::new(move |_| {
                    vec![
                        b2.clone().into_os_string(),
                        os("--release"),
                        os("--dry-run"),
                        os("-q"),
                        os("--manifest-path"),
                        manifest.clone().into_os_string(),
                    ]
                }),
            ),
        ];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        let mut checked: Vec<String> = vec![String::new(); cases.len()];
        eprintln!(
            "stage: {} files, {} bytes, {} runs each",
            srcs.len(),
            bytes,
            args.stage_runs
        );
        for run in 0..args.stage_runs {
            for k in 0..cases.len() {
                let i = (k + run) % cases.len();
                let (name, premake, argv) = &cases[i];
                let dst = base.join(format!("case{i}-run{run}"));
                if *premake {
                    fs::create_dir_all(&dst).map_err(|e| e.to_string())?;
                }
                let argv = argv(&dst);
                sync();
                let t = Instant::now();
                let out = Command::new(&argv[0])
                    .args(&argv[1..])
                    .env_remove("CARGO_TARGET_DIR")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .output()
                    .map_err(|e| format!("{name}: {e}"))?;
                let secs = t.elapsed().as_secs_f64();
                if !out.status.success() {
                    return Err(format!(
                        "stage: `{name}` failed: {}\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                times[i].push(secs);
                if dst.exists() {
                    copies.made.push(dst.clone());
                    // Same bytes as the sources, file by file.
                    let mut bad = Vec::new();
                    for s in &srcs {
                        let d = dst.join(s.file_name().unwrap_or_default());
                        if fs::read(s).ok() != fs::read(&d).ok() {
                            bad.push(d.display().to_string());
                        }
                    }
                    if !bad.is_empty() {
                        checked[i] = format!("**FAIL**: {}", bad.join(", "));
                    } else if checked[i].is_empty() {
                        checked[i] = "OK".into();
                    }
                }
            }
        }
        let cp = median(&times[2]);
        table_head(
            report,
            &format!(
                "staging: examples/demo-workspace release artifacts ({} files, {:.1} KiB)",
                srcs.len(),
                bytes as f64 / 1024.0
            ),
            &["command", "median ms", "min ms", "÷ cp -p", "bytes check"],
        );
        for (i, (name, _, _)) in cases.iter().enumerate() {
            let m = median(&times[i]);
            let _ = writeln!(
                report,
                "| {name} | {:.1} | {:.1} | {:.1} | {} |",
                m * 1e3,
                min(&times[i]) * 1e3,
                m / cp,
                if checked[i].is_empty() {
                    "—"
                } else {
                    &checked[i]
                }
            );
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // The "2-5x for compio's managed buffers against a Vec read/write loop" claim (issue 14)

    mod ring_vs_vec {
        use super::*;
        use compio::buf::{BufResult, IoBuf};
        use compio::io::{AsyncReadAt, AsyncReadManagedAt, AsyncWriteAtExt};
        use std::io::Write as _;

        const CHUNK: usize = 128 << 10;

        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        enum Variant {
            /// compio, `read_managed_at` into the worker's provided-buffer ring, `write_at` out.
            Ring,
            /// compio, `read_at` into one owned `Vec` reused for every chunk, `write_at` out.
            CompioVec,
            /// std `read`/`write_all` through one `Vec` reused for every chunk.
            VecReused,
            /// std `read`/`write_all` through a fresh `vec![0; 128 KiB]` per chunk.
            VecFresh,
        }

        const VARIANTS: [(Variant, &str); 4] = [
            (
                Variant::Ring,
                "compio buffer ring (read_managed_at + write_at)",
            ),
            (
                Variant::CompioVec,
                "compio, one owned Vec (read_at + write_at)",
            ),
            (Variant::VecReused, "std read/write, one reused Vec"),
            (Variant::VecFresh, "std read/write, a fresh Vec per chunk"),
        ];

        /// Copies `files` (relative to `src`) into `dst` one after another, in 128 KiB chunks,
        /// on this thread. Every destination is created new (`create_new`) and gets its
        /// source's permissions, so verify-copy.py can check the copy.
        fn copy_all(v: Variant, src: &Path, dst: &Path, files: &[(PathBuf, u64)]) -> Result<u64> {
            let mut total = 0;
            let rt = match v {
                Variant::Ring | Variant::CompioVec => Some(
                    cargo_fastcp::engine::uring::worker_runtime(
                        cargo_fastcp::engine::uring::PoolShape::new(16, CHUNK),
                    )
                    .map_err(|e| format!("io_uring runtime: {e}"))?,
                ),
                _ => None,
            };
            let mut reused = vec![0u8; CHUNK];
            for (path, _) in files {
                let rel = path.strip_prefix(src).map_err(|e| e.to_string())?;
                let out = dst.join(rel);
                if let Some(p) = out.parent() {
                    fs::create_dir_all(p).map_err(|e| e.to_string())?;
                }
                let perm = fs::metadata(path).map_err(|e| e.to_string())?.permissions();
                let n = match (&rt, v) {
                    (Some(rt), Variant::Ring) => rt.block_on(ring_copy(path, &out)),
                    (Some(rt), _) => rt.block_on(compio_vec_copy(path, &out)),
                    (None, Variant::VecReused) => std_copy(path, &out, Some(&mut reused)),
                    (None, _) => std_copy(path, &out, None),
                }
                .map_err(|e| format!("{}: {e}", path.display()))?;
                fs::set_permissions(&out, perm).map_err(|e| e.to_string())?;
                total += n;
            }
            Ok(total)
        }

        fn std_copy(
            src: &Path,
            dst: &Path,
            mut reused: Option<&mut Vec<u8>>,
        ) -> std::io::Result<u64> {
            let mut s = File::open(src)?;
            let mut d = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dst)?;
            let mut total = 0u64;
            let mut own;
            loop {
                let buf: &mut Vec<u8> = match reused.as_deref_mut() {
                    Some(b) => b,
                    None => {
                        // Fresh each chunk: 128 KiB is at glibc's mmap threshold, so this is
                        // the page-faulting allocation the claim is about.
                        own = vec![0u8; CHUNK];
                        &mut own
                    }
                };
                let n = s.read(buf)?;
                if n == 0 {
                    return Ok(total);
                }
                d.write_all(&buf[..n])?;
                total += n as u64;
            }
        }

        async fn open_pair(
            src: &Path,
            dst: &Path,
        ) -> std::io::Result<(compio::fs::File, compio::fs::File)> {
            let s = compio::fs::File::open(src).await?;
            let d = compio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dst)
                .await?;
            Ok((s, d))
        }

        /// compio's `write_all_at`, the buffer handed back (to be dropped or reused).
        async fn write_all_at<B: IoBuf>(
            d: &compio::fs::File,
            buf: B,
            pos: u64,
        ) -> std::io::Result<B> {
            let mut w = d;
            let BufResult(res, buf) = w.write_all_at(buf, pos).await;
            res.map(|()| buf)
        }

        async fn ring_copy(src: &Path, dst: &Path) -> std::io::Result<u64> {
            let (s, d) = open_pair(src, dst).await?;
            let mut pos = 0u64;
            while let Some(buf) = s.read_managed_at(CHUNK, pos).await? {
                let n = buf.buf_len() as u64;
                if n == 0 {
                    break;
                }
                // Dropping the buffer hands it back to the ring.
                drop(write_all_at(&d, buf, pos).await?);
                pos += n;
            }
            let _ = s.close().await;
            d.close().await?;
            Ok(pos)
        }

        async fn compio_vec_copy(src: &Path, dst: &Path) -> std::io::Result<u64> {
            let (s, d) = open_pair(src, dst).await?;
            let mut pos = 0u64;
            let mut buf = Vec::with_capacity(CHUNK);
            loop {
                buf.clear();
                let BufResult(res, b) = s.read_at(buf, pos).await;
                buf = b;
                let n = res?;
                if n == 0 {
                    break;
                }
                buf = write_all_at(&d, buf, pos).await?;
                pos += n as u64;
            }
            let _ = s.close().await;
            d.close().await?;
            Ok(pos)
        }

        pub fn run(args: &Args, copies: &mut Copies, report: &mut String) -> Result<()> {
            let (src, files) = corpus(args, "bins")?;
            let total: u64 = files.iter().map(|f| f.1).sum();
            let cache = args
                .dir
                .join(format!("corpus-bins-scale{}.hashes.json", args.scale));
            let base = copies.dir.join("ring-vs-vec");
            fs::create_dir_all(&base).map_err(|e| e.to_string())?;
            let cold_ok = fs::OpenOptions::new()
                .write(true)
                .open("/proc/sys/vm/drop_caches")
                .is_ok();
            super::table_head(
                report,
                &format!(
                    "ring vs Vec on bins: {} files, {:.1} MiB, one thread, 128 KiB chunks, one chunk in flight",
                    files.len(),
                    total as f64 / (1 << 20) as f64
                ),
                &[
                    "variant",
                    "warm median s",
                    "warm min s",
                    "warm ÷ ring",
                    "cold median s",
                    "cold min s",
                    "cold ÷ ring",
                    "verify",
                ],
            );
            let mut times = vec![[Vec::new(), Vec::new()]; VARIANTS.len()];
            let mut checks: Vec<Check> = VARIANTS.iter().map(|_| Check::default()).collect();
            for (c, cold) in [false, true].into_iter().enumerate() {
                if cold && !cold_ok {
                    eprintln!("ring-vs-vec: cold runs skipped (drop_caches needs root)");
                    continue;
                }
                for run in 0..args.runs {
                    for k in 0..VARIANTS.len() {
                        let i = (k + run) % VARIANTS.len();
                        let (v, name) = VARIANTS[i];
                        let dst = base.join(format!(
                            "{v:?}-{}-run{run}",
                            if cold { "cold" } else { "warm" }
                        ));
                        sync();
                        prime(cold, &files)?;
                        let t = Instant::now();
                        let n = copy_all(v, &src, &dst, &files)?;
                        let secs = t.elapsed().as_secs_f64();
                        copies.made.push(dst.clone());
                        if n != total {
                            return Err(format!("{name}: copied {n} of {total} bytes"));
                        }
                        times[i][c].push(secs);
                        eprintln!(
                            "  ring-vs-vec {} run {run} {name:<50} {secs:>8.3} s",
                            if cold { "cold" } else { "warm" }
                        );
                        sync();
                        checks[i].runs += 1;
                        verify(
                            &args.shared,
                            &src,
                            &dst,
                            Family::Peer,
                            &cache,
                            &mut checks[i],
                        )?;
                        drop_cache(&dst);
                        // Every copy is 1.2 GiB at scale 1: keep only the latest.
                        copies.purge();
                    }
                }
            }
            let ring = [0, 1].map(|c| (!times[0][c].is_empty()).then(|| median(&times[0][c])));
            for (i, (_, name)) in VARIANTS.iter().enumerate() {
                let cell = |c: usize| -> String {
                    let t = &times[i][c];
                    if t.is_empty() {
                        return "— | — | —".into();
                    }
                    let m = median(t);
                    format!(
                        "{m:.3} | {:.3} | {}",
                        min(t),
                        ring[c].map_or("—".into(), |r| format!("{:.2}", m / r))
                    )
                };
                // Mtimes are not copied by these loops: only bytes, paths and modes count.
                let mut check = std::mem::take(&mut checks[i]);
                check.issues.remove("mtime");
                let _ = writeln!(
                    report,
                    "| {name} | {} | {} | {} |",
                    cell(0),
                    cell(1),
                    check.cell(Family::Ours)
                );
            }
            Ok(())
        }
    }

    // -----------------------------------------------------------------------------------------

    fn machine(args: &Args, bin: &Path, io_uring: &Option<String>) -> String {
        let mut s = String::new();
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem = meminfo_kib("MemTotal:").map_or("?".into(), |kb| {
            format!("{:.1} GiB", kb as f64 / (1 << 20) as f64)
        });
        // findmnt names ext4 correctly (`stat -f` says ext2/ext3) and shows the mount options.
        let mount = sh(
            "findmnt",
            &[
                OsStr::new("-n"),
                OsStr::new("-o"),
                OsStr::new("FSTYPE,SOURCE,OPTIONS"),
                OsStr::new("-T"),
                args.dir.as_os_str(),
            ],
        )
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into());
        let kernel = sh("uname", &[OsStr::new("-r")])
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let disabled = fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "absent".into());
        let _ = writeln!(s, "- nproc: {nproc}; memory: {mem}");
        let _ = writeln!(
            s,
            "- work dir: {} (filesystem: {mount})",
            args.dir.display()
        );
        let _ = writeln!(
            s,
            "- kernel: {kernel}; kernel.io_uring_disabled = {disabled}"
        );
        let _ = writeln!(
            s,
            "- cargo-fastcp: {} ({}); io-uring engine: {}",
            bin.display(),
            version(&bin.to_string_lossy()),
            io_uring
                .as_deref()
                .map_or("available".to_string(), |w| format!("unavailable ({w})"))
        );
        let peers: Vec<String> = ["cp", "rsync", "xcp", "fcp", "cpz"]
            .iter()
            .map(|p| match which(p) {
                Some(_) => format!("{p}: {}", version(p)),
                None => format!("{p}: not installed"),
            })
            .collect();
        let _ = writeln!(s, "- peers: {}", peers.join("; "));
        let cmdline: Vec<String> = std::env::args().skip(1).collect();
        let _ = writeln!(
            s,
            "- command: `cargo run --release --example bench -- {}`",
            cmdline.join(" ")
        );
        let _ = writeln!(
            s,
            "- scale {}, {} runs per tool (medians), page cache {}, fresh directory per run",
            args.scale,
            args.runs,
            if args.cold {
                "cold (dropped before each run)"
            } else {
                "warm"
            }
        );
        s
    }

    const PAGE_REPORTING_ORDER: &str = "/sys/module/page_reporting/parameters/page_reporting_order";

    /// Free page reporting switched off for the run, and how it was; the old order goes back
    /// on drop. See the help text for why.
    struct PageReporting {
        was: Option<String>,
        note: String,
    }

    impl PageReporting {
        fn hold(keep: bool) -> PageReporting {
            let Ok(was) = fs::read_to_string(PAGE_REPORTING_ORDER) else {
                return PageReporting {
                    was: None,
                    note: "no free page reporting here".into(),
                };
            };
            let was = was.trim().to_string();
            if keep {
                return PageReporting {
                    was: None,
                    note: format!("free page reporting setting left as it is (order {was})"),
                };
            }
            // Above MAX_PAGE_ORDER (10 on x86-64 and arm64): no free block is ever that large.
            if let Err(e) = fs::write(PAGE_REPORTING_ORDER, "11") {
                return PageReporting {
                    was: None,
                    note: format!(
                        "free page reporting on (order {was}; cannot switch it off: {e}): expect noise"
                    ),
                };
            }
            let touched = touch_free_memory();
            PageReporting {
                note: format!(
                    "free page reporting switched off for the run (order {was} -> 11, restored \
                     after), then {:.1} GiB of free memory touched once",
                    touched as f64 / (1u64 << 30) as f64
                ),
                was: Some(was),
            }
        }
    }

    impl Drop for PageReporting {
        fn drop(&mut self) {
            if let Some(was) = &self.was {
                if let Err(e) = fs::write(PAGE_REPORTING_ORDER, was) {
                    eprintln!("could not restore {PAGE_REPORTING_ORDER} to {was}: {e}");
                }
            }
        }
    }

    /// A `/proc/meminfo` field (`key` with its colon), in KiB.
    fn meminfo_kib(key: &str) -> Option<u64> {
        let m = fs::read_to_string("/proc/meminfo").ok()?;
        let line = m.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Writes to all but 1 GiB of the free memory once, then frees it, so pages the host took
    /// back are faulted in now rather than inside a timed copy. Returns the bytes touched.
    fn touch_free_memory() -> u64 {
        let free_kib = meminfo_kib("MemFree:").unwrap_or(0);
        let bytes = (free_kib << 10).saturating_sub(1 << 30);
        eprintln!(
            "touching {:.1} GiB of free memory once ...",
            bytes as f64 / (1u64 << 30) as f64
        );
        // In steps, so a failed allocation costs one step, not the whole touch.
        let step = 256usize << 20;
        let mut held: Vec<Vec<u8>> = Vec::new();
        let mut done = 0u64;
        while done + step as u64 <= bytes {
            let mut v: Vec<u8> = Vec::new();
            if v.try_reserve_exact(step).is_err() {
                break;
            }
            v.resize(step, 1);
            held.push(v);
            done += step as u64;
        }
        drop(held);
        done
    }

    fn build_bin(args: &Args) -> Result<PathBuf> {
        if let Some(b) = &args.bin {
            return Ok(b.clone());
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // This example runs from <target>/<profile>/examples/; the binary is built with the same
        // profile into <target>/<profile>/: release (stripped, as shipped) or bench-symbols
        // (release code with line tables, for perf).
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("cannot locate the target directory")?;
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => "release",
        };
        eprintln!("building cargo-fastcp (profile {profile}) ...");
        let st = Command::new(cargo)
            .args([
                "build",
                "--profile",
                profile,
                "--quiet",
                "--bin",
                "cargo-fastcp",
                "--manifest-path",
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("cargo build --profile {profile} failed: {st}"));
        }
        let bin = profile_dir.join("cargo-fastcp");
        if !bin.is_file() {
            return Err(format!("{} is missing after the build", bin.display()));
        }
        Ok(bin)
    }

    pub fn main() -> Result<()> {
        let args = parse_args()?;
        fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
        let args = Args {
            dir: fs::canonicalize(&args.dir).map_err(|e| e.to_string())?,
            ..args
        };
        for script in ["make-corpus.py", "verify-copy.py"] {
            if !args.shared.join(script).is_file() {
                return Err(format!(
                    "{} not found (pass --shared DIR)",
                    args.shared.join(script).display()
                ));
            }
        }
        let bin = build_bin(&args)?;
        let probe_dir = args.dir.join("probe");
        fs::create_dir_all(&probe_dir).map_err(|e| e.to_string())?;
        fs::write(probe_dir.join("f"), b"x").map_err(|e| e.to_string())?;
        let io_uring = io_uring_unavailable(&bin, &probe_dir, "f")?;
        let reporting = PageReporting::hold(args.keep_page_reporting);

        let mut report = String::new();
        let _ = writeln!(report, "## Machine and command\n");
        report.push_str(&machine(&args, &bin, &io_uring));
        let _ = writeln!(report, "- memory: {}", reporting.note);
        eprint!("{report}");

        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut copies = Copies {
            dir: args
                .dir
                .join(format!("copies-{}-{stamp}", std::process::id())),
            made: Vec::new(),
        };
        let result = (|| {
            for profile in &args.profiles {
                run_corpus(&args, &bin, &io_uring, profile, &mut copies, &mut report)?;
            }
            if args.stage {
                stage(&args, &bin, &mut copies, &mut report)?;
            }
            if args.ring_vs_vec {
                ring_vs_vec::run(&args, &mut copies, &mut report)?;
            }
            if args.bundle {
                bundle::run(&args, &bin, &mut copies, &mut report)?;
            }
            Ok::<(), String>(())
        })();
        // The report goes out before the copies are deleted: deleting 100+ copies of the
        // corpora takes minutes on this ext4, and an interrupted clean-up must not lose it.
        println!("{report}");
        if let Some(md) = &args.markdown {
            fs::write(md, &report).map_err(|e| format!("{}: {e}", md.display()))?;
        }
        eprintln!("deleting {} copies ...", copies.made.len());
        copies.purge();
        remove_tree(&copies.dir);
        result
    }

    /// `--bundle`: what --update and --checksums cost (issue 12's goals).
    mod bundle {
        use super::*;

        /// Runs `argv`, returning its wall time; its stderr on failure.
        fn timed(argv: &[OsString]) -> Result<f64> {
            let (secs, out) = run_timed(argv)?;
            if !out.status.success() {
                return Err(format!(
                    "{argv:?} failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(secs)
        }

        fn fastcp(bin: &Path, src: &Path, dst: &Path, extra: &[&str]) -> Vec<OsString> {
            let mut a = vec![
                bin.as_os_str().to_owned(),
                os("-q"),
                os("-o"),
                dst.into(),
                os("--from"),
                src.into(),
                os("**"),
            ];
            a.extend(extra.iter().map(|e| os(e)));
            a
        }

        fn rsync(src: &Path, dst: &Path) -> Vec<OsString> {
            let mut s = src.as_os_str().to_owned();
            s.push("/");
            let mut d = dst.as_os_str().to_owned();
            d.push("/");
            // Nanosecond mtimes, as `--update` compares them: by default rsync matches whole
            // seconds and misses a same-size rewrite made within the second of its last run.
            vec![os("rsync"), os("-a"), os("--modify-window=-1"), s, d]
        }

        /// Rewrites every 20th regular file (offset `round`): one byte changed in the middle, in
        /// place, so size stays and mtime moves, as a rebuild leaves an artifact. Returns them.
        fn rewrite(files: &[(PathBuf, u64)], round: usize) -> Result<Vec<PathBuf>> {
            use std::io::{Seek, SeekFrom, Write};
            let mut done = Vec::new();
            for (p, size) in files.iter().skip(round % 20).step_by(20) {
                if *size == 0 {
                    continue;
                }
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(p)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                let at = size / 2;
                let mut b = [0u8; 1];
                f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
                f.read_exact(&mut b).map_err(|e| e.to_string())?;
                b[0] ^= 0xa5;
                f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
                f.write_all(&b).map_err(|e| e.to_string())?;
                done.push(p.clone());
            }
            Ok(done)
        }

        /// The rewritten files must have reached `dst` (a cheap check: the full verification
        /// of every copy is the main tables' job).
        fn check(src: &Path, dst: &Path, changed: &[PathBuf], who: &str) -> Result<()> {
            for p in changed {
                let rel = p.strip_prefix(src).map_err(|e| e.to_string())?;
                let (a, b) = (fs::read(p), fs::read(dst.join(rel)));
                if a.map_err(|e| e.to_string())? != b.map_err(|e| e.to_string())? {
                    return Err(format!("{who}: {} was not re-staged", rel.display()));
                }
            }
            Ok(())
        }

        fn room(args: &Args, copies: &mut Copies, need: u64) {
            let (free, _) = free_space(&args.dir);
            if free < need + need / 10 + args.keep_free {
                copies.purge_and_cool_down(args, free);
            }
        }

        /// One markdown table row.
        fn row(report: &mut String, cells: &[&str]) {
            let _ = writeln!(report, "| {} |", cells.join(" | "));
        }

        fn cell(v: &[f64]) -> String {
            if v.is_empty() {
                "—".into()
            } else {
                format!("{:.3}", median(v))
            }
        }

        fn ratio(a: &[f64], b: &[f64]) -> String {
            if a.is_empty() || b.is_empty() {
                "—".into()
            } else {
                format!("{:.2}×", median(a) / median(b))
            }
        }

        pub fn run(
            args: &Args,
            bin: &Path,
            copies: &mut Copies,
            report: &mut String,
        ) -> Result<()> {
            let has_rsync = which("rsync").is_some();
            let base = copies.dir.join("bundle");
            fs::create_dir_all(&base).map_err(|e| e.to_string())?;

            // Re-stage: a private copy of `target` is the source, so the corpus stays as made.
            let (corpus_dir, corpus_files) = corpus(args, "target")?;
            let total: u64 = corpus_files.iter().map(|f| f.1).sum();
            room(args, copies, total * (args.runs as u64 + 3));
            let src = base.join("restage-src");
            sh(
                "cp",
                &[OsStr::new("-a"), corpus_dir.as_os_str(), src.as_os_str()],
            )?;
            copies.made.push(src.clone());
            let files = files_below(&src);
            let (mut full, mut update, mut rsync_first, mut rsync_second) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            eprintln!(
                "bundle: re-stage on target ({} files, {:.1} MiB), 5% rewritten per round",
                files.len(),
                total as f64 / (1 << 20) as f64
            );
            for run in 0..args.runs {
                let dst = base.join(format!("full-{run}"));
                sync();
                prime(args.cold, &files)?;
                full.push(timed(&fastcp(bin, &src, &dst, &[]))?);
                copies.made.push(dst);
                eprintln!("  full copy {run}: {:.3} s", full[run]);
            }
            let staged = base.join("full-0");
            let mirror = base.join("rsync");
            if has_rsync {
                sync();
                prime(args.cold, &files)?;
                rsync_first.push(timed(&rsync(&src, &mirror))?);
                copies.made.push(mirror.clone());
            }
            for run in 0..args.runs {
                let changed = rewrite(&files, run)?;
                sync();
                prime(args.cold, &files)?;
                // Alternate which goes first: the second finds the rewritten files cached.
                let mut order = vec!["ours", "rsync"];
                if run % 2 == 1 {
                    order.reverse();
                }
                for who in order {
                    if who == "ours" {
                        let t = timed(&fastcp(bin, &src, &staged, &["--update"]))?;
                        check(&src, &staged, &changed, "cargo fastcp --update")?;
                        update.push(t);
                        eprintln!(
                            "  re-stage {run} ({} rewritten): --update {t:.3} s",
                            changed.len()
                        );
                    } else if has_rsync {
                        let t = timed(&rsync(&src, &mirror))?;
                        check(&src, &mirror, &changed, "rsync -a")?;
                        rsync_second.push(t);
                        eprintln!("  re-stage {run}: rsync -a {t:.3} s");
                    }
                }
            }
            let _ = writeln!(report, "\n## Release bundles (`--bundle`)\n");
            let _ = writeln!(
                report,
                "Re-stage of `target` ({} files, {:.1} MiB): 5% of the files rewritten in place \
                 (one byte, new mtime) before each round; medians of {} rounds, seconds.\n",
                files.len(),
                total as f64 / (1 << 20) as f64,
                args.runs
            );
            row(
                report,
                &["run", "median s", "÷ full copy", "÷ rsync -a 2nd run"],
            );
            row(report, &["---", "---:", "---:", "---:"]);
            let full_row = [
                "cargo fastcp, full copy into a new dir",
                &cell(&full),
                "1.00×",
                "",
            ];
            row(report, &full_row);
            row(
                report,
                &[
                    "cargo fastcp --update (goal ≤ 0.10× full, ≤ 0.50× rsync)",
                    &cell(&update),
                    &ratio(&update, &full),
                    &ratio(&update, &rsync_second),
                ],
            );
            if has_rsync {
                for (what, times, vs_rsync) in [
                    ("rsync -a, first run", &rsync_first, ""),
                    ("rsync -a, second run", &rsync_second, "1.00×"),
                ] {
                    row(
                        report,
                        &[what, &cell(times), &ratio(times, &full), vs_rsync],
                    );
                }
            } else {
                let _ = writeln!(report, "\nrsync is not installed: no rsync rows.");
            }

            // Checksums on bins: the same copy with and without --checksums sha256.
            let (bins, bin_files) = corpus(args, "bins")?;
            let bin_total: u64 = bin_files.iter().map(|f| f.1).sum();
            let (mut plain, mut hashed) = (Vec::new(), Vec::new());
            eprintln!(
                "bundle: --checksums sha256 on bins ({:.1} MiB)",
                bin_total as f64 / (1 << 20) as f64
            );
            for run in 0..args.runs {
                let mut order = [false, true];
                if run % 2 == 1 {
                    order.reverse();
                }
                for with in order {
                    room(args, copies, bin_total);
                    let dst = base.join(format!(
                        "bins-{}-{run}",
                        if with { "sha256" } else { "plain" }
                    ));
                    sync();
                    prime(args.cold, &bin_files)?;
                    let extra: &[&str] = if with {
                        &["--checksums", "sha256"]
                    } else {
                        &[]
                    };
                    let t = timed(&fastcp(bin, &bins, &dst, extra))?;
                    if with {
                        let ok = Command::new("sha256sum")
                            .args(["-c", "--quiet", "SHA256SUMS"])
                            .current_dir(&dst)
                            .status()
                            .map_err(|e| e.to_string())?;
                        if !ok.success() {
                            return Err(format!("sha256sum -c failed in {}", dst.display()));
                        }
                        hashed.push(t);
                    } else {
                        plain.push(t);
                    }
                    copies.made.push(dst);
                    eprintln!(
                        "  run {run} {}: {t:.3} s",
                        if with { "--checksums sha256" } else { "plain" }
                    );
                }
            }
            // The floor: sha256 of the same bytes, warm, one thread, in this process.
            prime(false, &bin_files)?;
            let t = Instant::now();
            for (p, _) in &bin_files {
                cargo_fastcp::bundle::checksums::hash_file(
                    cargo_fastcp::bundle::HashAlgo::Sha256,
                    p,
                )
                .map_err(|e| format!("{}: {e}", p.display()))?;
            }
            let floor = t.elapsed().as_secs_f64();
            let _ = writeln!(
                report,
                "\n`--checksums sha256` on `bins` ({} files, {:.1} MiB), medians of {} interleaved runs, seconds:\n",
                bin_files.len(),
                bin_total as f64 / (1 << 20) as f64,
                args.runs
            );
            row(report, &["run", "median s", "÷ plain"]);
            row(report, &["---", "---:", "---:"]);
            row(report, &["cargo fastcp", &cell(&plain), "1.00×"]);
            row(
                report,
                &[
                    "cargo fastcp --checksums sha256 (goal ≤ 1.30×)",
                    &cell(&hashed),
                    &ratio(&hashed, &plain),
                ],
            );
            row(
                report,
                &[
                    "sha256 of the same bytes, warm, one thread (the floor)",
                    &format!("{floor:.3}"),
                    &ratio(&[floor], &plain),
                ],
            );
            Ok(())
        }
    }
}
