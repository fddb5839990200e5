//! Tests of `execute` on a plan that is still growing: the engine copies what is published
//! while the rest is not yet known, on every backend.
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::*;
use crate::plan::{Job, Kind, Op, Plan};

struct Quiet;

impl EventSink for Quiet {
    fn event(&self, _: Event) {}
}

fn job(src: &Path, dst: &Path, op: Op) -> Job {
    let md = fs::symlink_metadata(src).expect("stat");
    let kind = if op == Op::Dir { Kind::Dir } else { Kind::File };
    Job::from_metadata(src.to_path_buf(), dst.to_path_buf(), kind, None, &md, op)
}

/// The io-uring backend, where the kernel allows it; else SKIP (a failure under
/// `CARGO_FASTCP_REQUIRE_URING`).
#[cfg(target_os = "linux")]
fn io_uring_backend() -> Option<uring::IoUring> {
    uring::tests::uring_or_skip().then(|| uring::IoUring::new(&crate::Config::default()))
}

/// `backend_cases!(name)`: `fn name(backend: &dyn Backend)` as one `#[test]` per backend,
/// `name::case_portable` and `name::case_io_uring`, so a failure names the engine.
macro_rules! backend_cases {
    ($name:ident) => {
        mod $name {
            #[test]
            fn case_portable() {
                super::$name(&super::portable::Portable::new(2));
            }

            #[cfg(target_os = "linux")]
            #[test]
            fn case_io_uring() {
                if let Some(backend) = super::io_uring_backend() {
                    super::$name(&backend);
                }
            }
        }
    };
}

/// The producer (standing in for the walk) publishes one chunk and then waits until that chunk
/// is on disk before it publishes the rest: the run only finishes if the engine copies while the
/// plan is open. A run that waited for the whole plan would never see the first file, and the
/// producer gives up after 20 s and the test fails.
fn files_are_copied_while_the_plan_is_still_open(backend: &dyn Backend) {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    let out = tmp.path().join("out");
    fs::create_dir_all(src.join("d")).expect("mkdir");
    for n in 0..20 {
        fs::write(src.join(format!("d/f{n}")), format!("file {n}")).expect("write");
    }
    let plan = Plan::open(out.clone());
    let cancel = AtomicBool::new(false);
    let first = out.join("d/f0");
    let seen_early = std::thread::scope(|s| {
        let producer = s.spawn(|| {
            let mut chunk = vec![job(&src.join("d"), &out.join("d"), Op::Dir)];
            for n in 0..10 {
                let name = format!("d/f{n}");
                chunk.push(job(&src.join(&name), &out.join(&name), Op::Copy));
            }
            plan.jobs.publish(chunk);
            let t0 = Instant::now();
            let mut seen = false;
            while t0.elapsed() < Duration::from_secs(20) {
                if fs::read(&first).is_ok_and(|b| b == b"file 0") {
                    seen = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let rest = (10..20)
                .map(|n| {
                    let name = format!("d/f{n}");
                    job(&src.join(&name), &out.join(&name), Op::Copy)
                })
                .collect();
            plan.jobs.publish(rest);
            plan.jobs.close();
            seen
        });
        let summary = execute(&plan, backend, Staging::default(), &Quiet, &cancel);
        assert_eq!(summary.errors, 0, "{}", backend.name());
        assert_eq!(summary.files, 20, "{}", backend.name());
        producer.join().expect("producer")
    });
    assert!(
        seen_early,
        "{}: the first file was not copied while the plan was open",
        backend.name()
    );
    for n in 0..20 {
        assert_eq!(
            fs::read_to_string(out.join(format!("d/f{n}"))).expect("copied"),
            format!("file {n}")
        );
    }
}
backend_cases!(files_are_copied_while_the_plan_is_still_open);

/// A plan that closes with nothing in it writes nothing, not even the out-dir: a walk that
/// matched nothing leaves the disk as it was.
fn an_empty_plan_writes_nothing(backend: &dyn Backend) {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("out");
    let plan = Plan::open(out.clone());
    plan.jobs.close();
    let summary = execute(
        &plan,
        backend,
        Staging::default(),
        &Quiet,
        &AtomicBool::new(false),
    );
    assert_eq!((summary.files, summary.errors), (0, 0));
    assert!(!out.exists(), "{}: made the out-dir", backend.name());
}
backend_cases!(an_empty_plan_writes_nothing);

/// `--checksums` with the portable backend: each copy's digest comes from the engine (small
/// files hashed from the one buffer, larger ones read back after the in-kernel copy), before
/// the file is reported done.
fn digests_come_from_the_engine(backend: &dyn Backend) {
    use crate::bundle::{checksums, Digests, HashAlgo};
    struct Hashing(Digests);
    impl EventSink for Hashing {
        fn event(&self, _: Event) {}
        fn hash_into(&self) -> Option<&Digests> {
            Some(&self.0)
        }
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, out) = (tmp.path().join("src"), tmp.path().join("out"));
    fs::create_dir_all(&src).expect("mkdir");
    let mut jobs = Vec::new();
    for (n, len) in [0usize, 1, 4096, 64 << 10, (1 << 20) + 7]
        .into_iter()
        .enumerate()
    {
        let p = src.join(format!("f{n}"));
        fs::write(&p, (0..len).map(|i| (i * 7 + n) as u8).collect::<Vec<u8>>()).expect("write");
        jobs.push(job(&p, &out.join(format!("f{n}")), Op::Copy));
    }
    let plan = Plan::build(out.clone(), jobs).expect("plan");
    let sink = Hashing(Digests::new(HashAlgo::Sha512));
    let summary = execute(
        &plan,
        backend,
        Staging::default(),
        &sink,
        &AtomicBool::new(false),
    );
    assert_eq!(summary.errors, 0);
    for job in plan.jobs.iter() {
        let want = checksums::hash_file(HashAlgo::Sha512, &job.src).expect("hash");
        assert_eq!(sink.0.get(&job.dst), Some(want), "{}", job.dst.display());
    }
}

backend_cases!(digests_come_from_the_engine);
