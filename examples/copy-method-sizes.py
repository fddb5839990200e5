#!/usr/bin/env python3
"""Times each io-uring --copy-method on sets of equal-sized files, warm or cold.

The measurement behind the `auto` threshold (docs/copy-method.md). Each set holds 64 MiB (the
last one 256 MiB) of random bytes; every run copies one set into a fresh directory with
`--engine io-uring --copy-method M`; methods are interleaved and rotated from run to run.

  python3 examples/copy-method-sizes.py --bin target/release/cargo-fastcp --dir ../bench-tmp/sizes
  python3 examples/copy-method-sizes.py ... --cold --runs 4     # drop_caches before each run (root)

Prints, per size: best and median wall ms / CPU ms (user + system of the child).
Run it on a quiet machine; see docs/benchmarks.md on free page reporting.
"""
import argparse, os, resource, shutil, statistics, subprocess, time

SETS = [(32 << 10, 2048), (64 << 10, 1024), (128 << 10, 512), (256 << 10, 256),
        (512 << 10, 128), (1 << 20, 64), (4 << 20, 16), (64 << 20, 4)]
METHODS = ["buffer-ring", "copy-file-range", "splice"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", required=True, help="work directory on the filesystem to measure")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    a = ap.parse_args()
    for size, n in SETS:
        d = os.path.join(a.dir, f"src-{size}")
        if not os.path.exists(d):
            os.makedirs(d)
            for i in range(n):
                with open(os.path.join(d, f"f{i}"), "wb") as f:
                    f.write(os.urandom(size))
    out = os.path.join(a.dir, f"out-{os.getpid()}-{int(time.time())}")
    os.makedirs(out)
    try:
        for size, n in SETS:
            src = os.path.join(a.dir, f"src-{size}")
            res = {m: [] for m in METHODS}
            for r in range(a.runs):
                for k in range(len(METHODS)):
                    m = METHODS[(k + r) % len(METHODS)]
                    subprocess.run(["sync"], check=True)
                    if a.cold:
                        with open("/proc/sys/vm/drop_caches", "w") as f:
                            f.write("3")
                    else:
                        for name in os.listdir(src):
                            with open(os.path.join(src, name), "rb") as f:
                                while f.read(1 << 20):
                                    pass
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t = time.perf_counter()
                    subprocess.run([a.bin, "fastcp", "-o", os.path.join(out, f"{size}-{m}-{r}"),
                                    "--from", src, "**", "-q", "--engine", "io-uring",
                                    "--copy-method", m], check=True)
                    wall = time.perf_counter() - t
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    res[m].append((wall * 1000, cpu * 1000))
            line = f"{size >> 10:>6} KiB x{n:<5}"
            for m in METHODS:
                w = [x for x, _ in res[m]]
                c = [y for _, y in res[m]]
                line += (f" | {m}: best {min(w):.0f}/{min(c):.0f}"
                         f" median {statistics.median(w):.0f}/{statistics.median(c):.0f}")
            print(line, flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
