//! Tests of the io-uring backend through `engine::execute` on real files: bytes, mode and mtime
//! of every copy method, a buffer ring far smaller than the files in flight, size changes, and
//! failures that must not stop the others.
use crate::error::CopyError;
use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::engine::{execute, Event, EventSink, Staging};
use crate::plan::{Job, Kind, Op, Plan};

#[derive(Default)]
struct Sink {
    done: Mutex<Vec<usize>>,
    failed: Mutex<Vec<(usize, CopyError)>>,
    progress: AtomicU64,
    /// Set: the run asks the engine for digests (and nothing else takes them).
    digests: Option<crate::bundle::Digests>,
}

impl EventSink for Sink {
    fn event(&self, event: Event) {
        match event {
            Event::Done { index } => self.done.lock().expect("lock").push(index),
            Event::Failed { index, error } => {
                self.failed.lock().expect("lock").push((index, error))
            }
            Event::Progress { bytes } => {
                self.progress.fetch_add(bytes, Ordering::Relaxed);
            }
            Event::Started { .. }
            | Event::Planned { .. }
            | Event::Unwalked { .. }
            | Event::DirSyncFailed { .. } => {}
        }
    }

    fn hash_into(&self) -> Option<&crate::bundle::Digests> {
        self.digests.as_ref()
    }
}

/// Whether io_uring tests must run (`CARGO_FASTCP_REQUIRE_URING` set, and not to `0`; `.ci/run`
/// sets it). Read by tests only: the engine itself reads no environment.
pub(crate) fn uring_required() -> bool {
    std::env::var_os("CARGO_FASTCP_REQUIRE_URING").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Tests need a kernel that allows io_uring. Where the probe fails they print SKIP, unless
/// [`uring_required`] (then they fail).
pub(crate) fn uring_or_skip() -> bool {
    match probe() {
        Ok(()) => true,
        Err(why) if uring_required() => {
            panic!("io_uring required (CARGO_FASTCP_REQUIRE_URING) but unavailable: {why}")
        }
        Err(why) => {
            eprintln!("SKIP: io_uring unavailable here ({why})");
            false
        }
    }
}

/// `method_cases!(name: case_a => Method, …)`: one `#[test]` per copy method calling
/// `fn name(method)`, named `name::case_a`, so a failure names the method.
macro_rules! method_cases {
    ($name:ident: $($case:ident => $method:ident),+ $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $case() {
                    super::$name(super::CopyMethod::$method);
                }
            )+
        }
    };
}

fn tuning(method: CopyMethod, buffers: usize, buffer_len: usize, lanes: usize) -> Tuning {
    Tuning {
        workers: 2,
        lanes,
        pool: PoolShape::new(buffers, buffer_len),
        file_window: 4,
        method,
        threshold: 256 << 10,
        probe_every: 16,
        setup: ring::DEFAULT_SETUP.into(),
    }
}

/// Deterministic, non-repeating bytes, so a misplaced chunk shows.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const MODES: [u32; 4] = [0o644, 0o755, 0o600, 0o444];

/// Writes `sizes` as files under `src`, each with its own mode and an mtime with nanoseconds.
fn make_sources(src: &Path, sizes: &[usize]) -> Vec<PathBuf> {
    fs::create_dir_all(src).expect("mkdir");
    sizes
        .iter()
        .enumerate()
        .map(|(n, &len)| {
            let p = src.join(format!("f{n:05}-{len}"));
            let mut f = File::create(&p).expect("create");
            f.write_all(&content(n as u64 + 1, len)).expect("write");
            let mtime = UNIX_EPOCH + Duration::new(1_700_000_000 + n as u64, 123_456_789);
            f.set_times(FileTimes::new().set_modified(mtime))
                .expect("mtime");
            drop(f);
            fs::set_permissions(&p, fs::Permissions::from_mode(MODES[n % MODES.len()]))
                .expect("chmod");
            p
        })
        .collect()
}

fn plan_for(sources: &[PathBuf], out: &Path) -> Plan {
    let jobs = sources
        .iter()
        .map(|s| {
            let md = fs::symlink_metadata(s).expect("stat");
            let dst = out.join(s.file_name().expect("name"));
            Job::from_metadata(s.clone(), dst, Kind::File, None, &md, Op::Copy)
        })
        .collect();
    Plan::build(out.to_path_buf(), jobs).expect("plan")
}

fn run(plan: &Plan, tuning: Tuning) -> (crate::engine::Summary, Sink) {
    let sink = Sink::default();
    let cancel = AtomicBool::new(false);
    let backend = IoUring::with_tuning(tuning);
    let summary = execute(plan, &backend, Staging::default(), &sink, &cancel);
    (summary, sink)
}

fn temps_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".fastcp-"))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_faithful(plan: &Plan) {
    for job in &plan.jobs {
        let (a, b) = (
            fs::read(&job.src).expect("src"),
            fs::read(&job.dst).expect("dst"),
        );
        assert!(a == b, "bytes differ: {}", job.dst.display());
        let (ma, mb) = (
            fs::metadata(&job.src).expect("md"),
            fs::metadata(&job.dst).expect("md"),
        );
        assert_eq!(
            ma.permissions().mode() & 0o7777,
            mb.permissions().mode() & 0o7777,
            "mode of {}",
            job.dst.display()
        );
        assert_eq!(
            ma.modified().expect("mtime"),
            mb.modified().expect("mtime"),
            "mtime of {}",
            job.dst.display()
        );
    }
    assert!(temps_in(&plan.out_dir).is_empty(), "temp files left");
}

/// Sizes around the pool buffer length `len`, a few MiB, and zero.
fn edge_sizes(len: usize) -> Vec<usize> {
    vec![
        0,
        1,
        len - 1,
        len,
        len + 1,
        2 * len,
        7 * len + 3,
        40 * len,
        (3 << 20) + 17,
        5 << 20,
        4096,
        100,
    ]
}

fn copy_all_sizes(method: CopyMethod) {
    let len = 64 << 10;
    copy_sizes(tuning(method, 16, len, 8), &edge_sizes(len));
}

/// Copies files of `sizes` with `t`: every one copied, every byte reported, all faithful.
fn copy_sizes(t: Tuning, sizes: &[usize]) {
    if !uring_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let sources = make_sources(&tmp.path().join("src"), sizes);
    let plan = plan_for(&sources, &tmp.path().join("out"));
    let (summary, sink) = run(&plan, t);
    let failed = sink.failed.lock().expect("lock");
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(summary.files, sources.len());
    assert_eq!(summary.engine, "io-uring");
    assert_eq!(sink.progress.load(Ordering::Relaxed), plan.total_bytes());
    assert_faithful(&plan);
}

/// `--checksums` on every route: the engine itself leaves the digest of each copy (hashed on
/// the way through the buffer ring, read back after an in-kernel copy or a splice) before the
/// file is reported done.
fn digests_come_from_the_engine(method: CopyMethod) {
    use crate::bundle::{checksums, Digests, HashAlgo};
    if !uring_or_skip() {
        return;
    }
    let len = 64 << 10;
    let tmp = tempfile::tempdir().expect("tmp");
    let sources = make_sources(&tmp.path().join("src"), &edge_sizes(len));
    let plan = plan_for(&sources, &tmp.path().join("out"));
    let sink = Sink {
        digests: Some(Digests::new(HashAlgo::Sha256)),
        ..Sink::default()
    };
    let backend = IoUring::with_tuning(tuning(method, 16, len, 8));
    execute(
        &plan,
        &backend,
        Staging::default(),
        &sink,
        &AtomicBool::new(false),
    );
    assert!(sink.failed.lock().expect("lock").is_empty());
    let digests = sink.digests.as_ref().expect("digests");
    for job in plan.jobs.iter() {
        let want = checksums::hash_file(HashAlgo::Sha256, &job.src).expect("hash");
        assert_eq!(digests.get(&job.dst), Some(want), "{}", job.dst.display());
    }
}

method_cases!(digests_come_from_the_engine:
    case_buffer_ring => BufferRing,
    case_copy_file_range => CopyFileRange,
    case_splice => Splice,
);

method_cases!(copy_all_sizes:
    case_buffer_ring => BufferRing,
    case_copy_file_range => CopyFileRange,
    case_auto => Auto,
    case_splice => Splice,
);

/// The splice route moves at most one pipe's worth per step: sizes around that, with pipes
/// reused from file to file (one lane per worker, so each worker's files take its one pipe in
/// turn).
#[test]
fn splice_copies_around_the_pipe_size() {
    let cap = super::copy::PIPE_BYTES as usize;
    let sizes = [cap - 1, cap, cap + 1, 3 * cap, 0, 65_536, 65_537, 1];
    copy_sizes(tuning(CopyMethod::Splice, 16, 4096, 1), &sizes);
}

/// Far more files in flight (2 workers x 64 lanes) than buffers (4 per ring): reads must wait
/// for permits, never fail with an empty ring.
fn many_small_files_through_a_tiny_pool(method: CopyMethod) {
    if !uring_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let sizes: Vec<usize> = (0..3000).map(|n| (n * 37) % 20000).collect();
    let sources = make_sources(&tmp.path().join("src"), &sizes);
    let out = tmp.path().join(format!("out-{method:?}"));
    let plan = plan_for(&sources, &out);
    let (summary, sink) = run(&plan, tuning(method, 4, 4096, 64));
    let failed = sink.failed.lock().expect("lock");
    assert!(
        failed.is_empty(),
        "{method:?}: {:?}",
        &failed[..failed.len().min(3)]
    );
    assert_eq!(summary.files, sizes.len());
    assert_faithful(&plan);
}
method_cases!(many_small_files_through_a_tiny_pool:
    case_buffer_ring => BufferRing,
    case_auto => Auto,
    case_copy_file_range => CopyFileRange,
    case_splice => Splice,
);

/// The defaults `IoUring::new` derives from a Config, on a mixed tree.
#[test]
fn defaults_from_config() {
    if !uring_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sizes = edge_sizes(DEFAULT_BUFFER_LEN);
    sizes.extend((0..200).map(|n| n * 97));
    let sources = make_sources(&tmp.path().join("src"), &sizes);
    let plan = plan_for(&sources, &tmp.path().join("out"));
    let cfg = Config::new();
    let backend = IoUring::new(&cfg);
    let sink = Sink::default();
    let staging = Staging {
        fsync: true,
        ..Staging::default()
    };
    let summary = execute(&plan, &backend, staging, &sink, &AtomicBool::new(false));
    assert!(sink.failed.lock().expect("lock").is_empty());
    assert_eq!(summary.files, sizes.len());
    assert_faithful(&plan);
}

/// A source that grew or shrank since it was planned is `Changed`, under every route, and
/// leaves neither a temporary file nor a file under the final name; the others are copied.
fn size_change_is_reported_and_leaves_no_temp(method: CopyMethod) {
    if !uring_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let len = 16 << 10;
    // grow a small one, shrink a large one, grow one of exactly one buffer, shrink to 0
    let sizes = [100, 600 << 10, len, 5000, 3000];
    let sources = make_sources(&tmp.path().join("src"), &sizes);
    let plan = plan_for(&sources, &tmp.path().join("out"));
    let changed = [
        (0usize, 150u64),
        (1, (300 << 10) + 5),
        (2, len as u64 + 1),
        (3, 0),
    ];
    for &(n, new_len) in &changed {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&sources[n])
            .expect("open");
        f.set_len(new_len).expect("resize");
    }
    let (summary, sink) = run(&plan, tuning(method, 8, len, 4));
    let failed = sink.failed.lock().expect("lock");
    assert_eq!(failed.len(), changed.len(), "{method:?}: {failed:?}");
    for (index, err) in failed.iter() {
        let (_, new_len) = changed
            .iter()
            .find(|(n, _)| n == index)
            .expect("an unchanged file failed");
        match err {
            CopyError::Changed {
                expected, actual, ..
            } => {
                assert_eq!(*expected, sizes[*index] as u64);
                // A grown file is read at least past its planned size, a shrunk one to
                // its new end.
                if *new_len > *expected {
                    assert!(actual > expected, "{method:?}: {err}");
                } else {
                    assert_eq!(actual, new_len, "{method:?}: {err}");
                }
            }
            other => panic!("{method:?}: expected Changed, got {other}"),
        }
        assert!(!plan.jobs[*index].dst.exists(), "{method:?}: placed anyway");
    }
    assert_eq!(summary.files, 1);
    assert_eq!(fs::read(&plan.jobs[4].dst).expect("dst"), content(5, 3000));
    assert!(temps_in(&plan.out_dir).is_empty(), "{method:?}: temp left");
}
method_cases!(size_change_is_reported_and_leaves_no_temp:
    case_buffer_ring => BufferRing,
    case_copy_file_range => CopyFileRange,
    case_auto => Auto,
    case_splice => Splice,
);

/// A source that vanished and one that is a directory fail alone; the rest is copied.
fn errors_do_not_stop_the_others(method: CopyMethod) {
    if !uring_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let sources = make_sources(&tmp.path().join("src"), &[10, 20, 300 << 10, 40]);
    let mut plan = plan_for(&sources, &tmp.path().join("out"));
    fs::remove_file(&sources[0]).expect("rm");
    // A directory where a regular file was planned: open works, the read fails (EISDIR).
    fs::remove_file(&sources[2]).expect("rm");
    fs::create_dir(&sources[2]).expect("mkdir");
    plan.jobs[2].size = 300 << 10;
    let (summary, sink) = run(&plan, tuning(method, 8, 4096, 4));
    let mut failed: Vec<usize> = sink
        .failed
        .lock()
        .expect("lock")
        .iter()
        .map(|(i, _)| *i)
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, vec![0, 2], "{method:?}");
    assert_eq!(summary.files, 2);
    assert!(temps_in(&plan.out_dir).is_empty());
    for &i in &[1, 3] {
        assert_eq!(
            fs::read(&plan.jobs[i].dst).expect("dst"),
            fs::read(&plan.jobs[i].src).expect("src")
        );
    }
}
method_cases!(errors_do_not_stop_the_others:
    case_buffer_ring => BufferRing,
    case_copy_file_range => CopyFileRange,
    case_splice => Splice,
);

/// A run cancelled before it starts copies nothing and leaves nothing behind.
#[test]
fn cancelled_run_leaves_nothing() {
    if !uring_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let sources = make_sources(&tmp.path().join("src"), &[10, 1 << 20, 5]);
    let plan = plan_for(&sources, &tmp.path().join("out"));
    let sink = Sink::default();
    let cancel = AtomicBool::new(true);
    let backend = IoUring::with_tuning(tuning(CopyMethod::Auto, 8, 4096, 4));
    let summary = execute(&plan, &backend, Staging::default(), &sink, &cancel);
    assert!(summary.interrupted);
    assert_eq!(summary.files, 0);
    assert!(plan.jobs.iter().all(|j| !j.dst.exists()));
    assert!(temps_in(&plan.out_dir).is_empty());
}

#[test]
fn routes_follow_method_and_threshold() {
    let mut t = tuning(CopyMethod::Auto, 8, 4096, 4);
    assert_eq!(t.route(t.threshold - 1), Route::Ring);
    assert_eq!(t.route(t.threshold), Route::CloneOrRing);
    assert_eq!(t.route(super::COLD_RING_MAX), Route::CloneOrRing);
    assert_eq!(t.route(super::COLD_RING_MAX + 1), Route::Kernel);
    t.method = CopyMethod::BufferRing;
    assert_eq!(t.route(u64::MAX), Route::Ring);
    t.method = CopyMethod::CopyFileRange;
    assert_eq!(t.route(0), Route::Kernel);
    t.method = CopyMethod::Splice;
    assert_eq!(t.route(0), Route::Splice);
    assert_eq!(t.route(u64::MAX), Route::Splice);
}

#[test]
fn probe_reports_io_uring_here() {
    // Where io_uring is required (CI, where it works) the probe must find it usable; elsewhere,
    // where it is not, the reason must say which step.
    match probe() {
        Ok(()) => {}
        Err(why) => {
            assert!(
                !uring_required(),
                "CARGO_FASTCP_REQUIRE_URING is set, but the probe finds io_uring unusable: {why}"
            );
            assert!(
                why.contains("io_uring") || why.contains("compio"),
                "unhelpful reason: {why}"
            );
        }
    }
    let _ = SystemTime::now();
}
