"""Benchmarks of the data tools, side by side in one run (issue 13).

    cargo build --release
    python3 scripts/bench_data.py [--rows 20000000] [--repeat 3] [--runs 1000] [--work DIR]

1. Records one stream of ROWS rows x 4 Float64 channels (`pace = "max"`), then exports it
   with `ensemble export --format csv` and with DuckDB's
   `COPY (SELECT * FROM read_parquet(...)) TO 'x.csv'`, alternating, REPEAT times each, every
   one under `/usr/bin/time -v` (wall time and peak RSS). Prints rows/s and peak RSS, medians.
2. Copies a finished run RUNS times into one directory (mixed status: a quarter each
   completed, stopped, failed and killed-unrecovered) and times `ensemble runs DIR` REPEAT
   times (medians; the first, cold-cache run is reported apart).

Prints the 1-minute load average before each part: the figures are only comparable within
one run of this script.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import binary, load, record_scope


def timed(cmd):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, peak RSS MiB)."""
    out = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    h, m, s = wall.groups()
    seconds = (int(h) if h else 0) * 3600 + int(m) * 60 + float(s)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return seconds, rss / 1024


def record(work, rows):
    return record_scope(work, "export-bench", rows, 100000)


def bench_export(run, work, repeat):
    import duckdb  # noqa: F401  (fails early if missing)

    rows = json.loads(subprocess.check_output([binary(), "inspect", run, "--json"]))["streams"][0]["rows"]
    size = sum(
        os.path.getsize(os.path.join(run, "scope", f)) for f in os.listdir(os.path.join(run, "scope"))
    )
    print(f"run: {rows:,} rows x 4 channels, {size / 1e6:.0f} MB of Parquet; load {load():.2f}")
    ours, theirs = [], []
    glob = os.path.join(run, "scope", "*.parquet")
    duck = (
        "import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_parquet('%s')) TO '%s' (HEADER)\")"
        % (glob, os.path.join(work, "duck.csv"))
    )
    for i in range(repeat):
        ours.append(timed([binary(), "export", run, "--format", "csv", "--out", os.path.join(work, "ours.csv")]))
        theirs.append(timed([sys.executable, "-c", duck]))
        print(f"  round {i + 1}: ensemble {ours[-1][0]:.2f} s, {ours[-1][1]:.0f} MiB; "
              f"duckdb {theirs[-1][0]:.2f} s, {theirs[-1][1]:.0f} MiB; load {load():.2f}")
    o = statistics.median(t for t, _ in ours)
    d = statistics.median(t for t, _ in theirs)
    print(f"export csv: ensemble {rows / o / 1e6:.2f} M rows/s (peak RSS {max(r for _, r in ours):.0f} MiB), "
          f"DuckDB {rows / d / 1e6:.2f} M rows/s (peak RSS {max(r for _, r in theirs):.0f} MiB), "
          f"ratio {d / o:.2f}x  [medians of {repeat}]")
    print(f"  csv sizes: ensemble {os.path.getsize(os.path.join(work, 'ours.csv')) / 1e6:.0f} MB, "
          f"duckdb {os.path.getsize(os.path.join(work, 'duck.csv')) / 1e6:.0f} MB")


def bench_runs(work, n, repeat):
    src = os.path.join(work, "small")
    exp = os.path.join(work, "small.toml")
    with open(exp, "w") as f:
        f.write('[experiment]\nname = "small"\nduration = "200ms"\n[experiment.metadata]\nsample = "B7"\n'
                '[instruments.a]\ntype = "sim"\nrate_hz = 100\n[instruments.b]\ntype = "sim"\nrate_hz = 10\n'
                '[sinks.store]\ntype = "parquet"\ninputs = ["a", "b"]\n')
    done = subprocess.run([binary(), "run", exp, "--quiet", "--output", src], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    one = done.stdout.strip().splitlines()[-1]
    manifest = json.load(open(os.path.join(one, "run.json")))
    catalog = os.path.join(work, "catalog")
    statuses = ["completed", "stopped", "failed", "running"]
    for i in range(n):
        dst = os.path.join(catalog, f"run{i:05d}")
        shutil.copytree(one, dst)
        m = dict(manifest, run_id=f"run{i:05d}", status=statuses[i % 4])
        m["metadata"] = {"sample": f"B{i % 10}", "index": i}
        json.dump(m, open(os.path.join(dst, "run.json"), "w"))
    print(f"{n} runs ({len(json.dumps(manifest)) / 1e3:.1f} kB manifests); load {load():.2f}")
    cold = timed([binary(), "runs", catalog, "--json"])
    times = [timed([binary(), "runs", catalog])[0] for _ in range(repeat)]
    filtered = [timed([binary(), "runs", catalog, "--where", "sample=B3", "--where", "status=failed"])[0]
                for _ in range(repeat)]
    print(f"runs over {n}: first {cold[0]:.3f} s, then median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}); with two --where: {statistics.median(filtered):.3f} s; "
          f"peak RSS {cold[1]:.0f} MiB; load {load():.2f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--work")
    a = p.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="ensemble-bench-data-")
    os.makedirs(work, exist_ok=True)
    t = time.time()
    run = record(work, a.rows)
    print(f"recorded {run} in {time.time() - t:.1f} s")
    bench_export(run, work, a.repeat)
    bench_runs(work, a.runs, a.repeat)
    if not a.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
