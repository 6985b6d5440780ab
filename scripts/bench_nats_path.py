"""The NATS path against the local Parquet sink, side by side in one run (issue 15).

    cargo build --release
    python3 scripts/bench_nats_path.py [--rows 2000000] [--repeat 3] [--work DIR]
                                       [--compare OTHER_ENSEMBLE_BINARY] [--skip-r3]
                                       [--max-payload 8MB]

One stream of ROWS rows (`timestamp, seq` + 4 x Float64, sim `pace = "max"`, batches of
8,192 rows), zstd-1 Parquet, everything on loopback. Each repetition measures, in this order:

1. `local`: `ensemble run` with the local Parquet sink, until the run ends;
2. `R1 1w`: `ensemble run` with a `nats` sink into one `nats-server -js` (replicas 1) while one
   `ensemble ingest` worker runs, until the worker's `ingest-*.json` holds every row
   (`publish` is when the run itself ended: every row acknowledged by JetStream);
3. `R1 2w`: the same with two ingest workers sharing the durable;
4. `drain 1w` / `drain 2w`: ingest alone: the stream of 3 (already full, the publisher gone)
   read again by one worker, then by two workers sharing a new durable;
5. `R3 1w`: as 2, into a three-node cluster on loopback with `replicas = 3`.

The streams are created before the clock starts (by a short warm-up run), and every worker is
started (and has created its consumer) before the run. A fresh server (or cluster) serves each
repetition. Every process is waited for with `wait4`, so its CPU time (user + sys) is known:
the table gives CPU seconds per million rows per process kind as well as wall time.

Prints the 1-minute load average with each repetition; ratios are computed within a
repetition (same load), then the median over repetitions is reported. With `--compare BIN`,
every measurement is also made with BIN (e.g. a build of an older commit), alternating, in the
same invocation.
"""

import argparse
import atexit
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from bench_common import binary, load, write_stream_experiment

ROWS_PER_BATCH = 8192


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


STARTED = []


def kill_leftovers():
    """Stops (by PID) every child this script started that is still running."""
    for proc in STARTED:
        if proc.rc is None and proc.p.poll() is None:
            proc.p.kill()


atexit.register(kill_leftovers)


class Proc:
    """A child process whose CPU time is collected with wait4 when it ends."""

    def __init__(self, kind, cmd, log, env=None):
        self.kind = kind
        self.log = open(log, "wb")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                  env=None if env is None else {**os.environ, **env})
        self.cpu = None
        self.rc = None
        STARTED.append(self)

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.p.pid, os.WNOHANG if deadline else 0)
            if pid:
                self.p.returncode = os.waitstatus_to_exitcode(status)
                self.rc = self.p.returncode
                self.cpu = usage.ru_utime + usage.ru_stime
                self.log.close()
                return self.rc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.kind} did not end")
            time.sleep(0.01)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.rc is None:
            self.p.send_signal(sig)
            self.wait(timeout)
        return self.cpu


class Servers:
    """One JetStream server, or a cluster of three routed on loopback."""

    def __init__(self, work, nodes, max_payload=None):
        self.procs = []
        self.ports = []
        ports = free_ports(3 * nodes)
        client, monitor, route = ports[:nodes], ports[nodes : 2 * nodes], ports[2 * nodes :]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in route)
        for i in range(nodes):
            cmd = [
                "nats-server", "-js", "-a", "127.0.0.1", "-p", str(client[i]),
                "-m", str(monitor[i]), "-sd", os.path.join(work, f"n{i}"), "-n", f"n{i}",
            ]
            if max_payload:
                conf = os.path.join(work, "payload.conf")
                with open(conf, "w") as f:
                    f.write(f"max_payload: {max_payload}\n")
                cmd += ["-c", conf]
            if nodes > 1:
                cmd += ["--cluster_name", "bench", "--cluster",
                        f"nats://127.0.0.1:{route[i]}", "--routes", routes]
            self.procs.append(Proc("nats-server", cmd, os.path.join(work, f"n{i}.log")))
        self.monitor = monitor
        self.url = ",".join(f"nats://127.0.0.1:{p}" for p in client)
        deadline = time.monotonic() + 30
        for m in monitor:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{m}/healthz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("nats-server did not become healthy; see its log in " + work)
                time.sleep(0.1)

    def cpu(self):
        """CPU seconds (user + sys) the running servers used so far, from /proc."""
        total = 0
        for p in self.procs:
            with open(f"/proc/{p.p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self):
        return sum(p.stop() for p in self.procs)


def experiment(path, rows, sink):
    """One stream `sig` of ROWS rows (1 kHz of plan time, written as fast as it goes) into SINK."""
    return write_stream_experiment(path, "nats-path-bench", "sig", 1000, rows, sink)


def nats_sink(url, replicas):
    return f"""[sinks.bus]
type = "nats"
inputs = ["sig"]
url = "{url}"
stream = "BENCH"
replicas = {replicas}
"""


def run_to_end(exe, exp, out, log):
    p = Proc("run", [exe, "run", exp, "--output", out, "--quiet"], log)
    start = time.monotonic()
    if p.wait() != 0:
        sys.exit(f"ensemble run failed; see {log}")
    wall = time.monotonic() - start
    runs = sorted(os.listdir(out))
    return wall, p.cpu, os.path.join(out, runs[-1])


def start_workers(exe, url, out, durable, n, work, tag):
    workers = []
    for i in range(n):
        log = os.path.join(work, f"ingest-{tag}-{durable}-{i}.log")
        cmd = [
            exe, "ingest", "--url", url, "--stream", "BENCH", "--output", out,
            "--durable", durable, "--worker", f"w{i}", "--commit-interval", "1s",
        ]
        workers.append(Proc("ingest", cmd, log, {"RUST_LOG": "info"}))
    # Ready once each has created its consumer ("Ingesting." in its log).
    deadline = time.monotonic() + 60
    for w in workers:
        while b"Ingesting." not in open(w.log.name, "rb").read():
            if w.p.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"ingest did not start; see {w.log.name}")
            time.sleep(0.02)
    return workers


def ingested_rows(run_dir):
    total = 0
    for path in glob.glob(os.path.join(run_dir, "ingest-*.json")):
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError):
            continue
        total += report.get("streams", {}).get("sig", {}).get("rows", 0)
    return total


def wait_ingested(run_dir, rows, start, timeout=600):
    while ingested_rows(run_dir) < rows:
        if time.monotonic() - start > timeout:
            sys.exit(f"ingest did not finish {run_dir}")
        time.sleep(0.01)
    return time.monotonic() - start


def end_to_end(exe, work, tag, nodes, workers, rows, max_payload):
    """Returns (wall to ingested, wall of the run, cpu per kind) for one configuration."""
    d = tempfile.mkdtemp(prefix=f"{tag}-r{nodes}w{workers}-", dir=work)
    servers = Servers(d, nodes, max_payload)
    url = servers.url
    replicas = 3 if nodes == 3 else 1
    # Warm-up: the sink creates the streams; ingest then finds them at once.
    run_to_end(exe, experiment(os.path.join(d, "warm.toml"), 1000, nats_sink(url, replicas)),
               os.path.join(d, "warm"), os.path.join(d, "warm.log"))
    out = os.path.join(d, "ingested")
    ws = start_workers(exe, url, out, "e2e", workers, d, tag)
    exp = experiment(os.path.join(d, "exp.toml"), rows, nats_sink(url, replicas))
    server_before = servers.cpu()
    start = time.monotonic()
    publish, run_cpu, run_dir = run_to_end(exe, exp, os.path.join(d, "runs"),
                                           os.path.join(d, "run.log"))
    done = wait_ingested(os.path.join(out, os.path.basename(run_dir)), rows, start)
    server_cpu = servers.cpu() - server_before
    ingest_cpu = sum(w.stop() for w in ws)
    result = {"wall": done, "publish": publish,
              "cpu": {"run": run_cpu, "ingest": ingest_cpu, "nats-server": server_cpu}}
    drains = {}
    if nodes == 1 and workers == 1:
        for n in (1, 2):
            dout = os.path.join(d, f"drain{n}")
            ws = start_workers(exe, url, dout, f"drain{n}", n, d, tag)
            server_before = servers.cpu()
            start = time.monotonic()
            wall = wait_ingested(os.path.join(dout, os.path.basename(run_dir)), rows, start)
            server_cpu = servers.cpu() - server_before
            drains[n] = {"wall": wall, "publish": wall,
                         "cpu": {"ingest": sum(w.stop() for w in ws), "nats-server": server_cpu}}
    servers.stop()
    shutil.rmtree(d, ignore_errors=True)
    return result, drains


def local(exe, work, tag, rows):
    d = tempfile.mkdtemp(prefix=f"{tag}-local-", dir=work)
    exp = experiment(os.path.join(d, "exp.toml"), rows,
                     '[sinks.local]\ntype = "parquet"\ninputs = ["sig"]\n')
    wall, cpu, _ = run_to_end(exe, exp, os.path.join(d, "runs"), os.path.join(d, "run.log"))
    shutil.rmtree(d, ignore_errors=True)
    return {"wall": wall, "publish": wall, "cpu": {"run": cpu}}


def one_repetition(exe, work, tag, rows, skip_r3, max_payload):
    figures = {"local": local(exe, work, tag, rows)}
    figures["R1 1w"], drains = end_to_end(exe, work, tag, 1, 1, rows, max_payload)
    figures["drain 1w"], figures["drain 2w"] = drains[1], drains[2]
    figures["R1 2w"], _ = end_to_end(exe, work, tag, 1, 2, rows, max_payload)
    if not skip_r3:
        figures["R3 1w"], _ = end_to_end(exe, work, tag, 3, 1, rows, max_payload)
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--compare", default=None, help="a second ensemble binary to measure too")
    ap.add_argument("--skip-r3", action="store_true")
    ap.add_argument("--max-payload", default=None,
                    help="servers' max_payload (e.g. 8MB; default: nats-server's, 1 MB)")
    args = ap.parse_args()
    if shutil.which("nats-server") is None:
        sys.exit("nats-server is not in PATH")
    exes = {"this": binary()}
    if args.compare:
        exes["compare"] = args.compare
    work = args.work or tempfile.mkdtemp(prefix="bench-nats-path-")
    os.makedirs(work, exist_ok=True)
    rows = args.rows
    print(f"rows: {rows} (timestamp, seq, 4 x f64; batches of {ROWS_PER_BATCH}); "
          f"max_payload: {args.max_payload or 'default'}; binaries: {exes}", flush=True)
    results = {tag: [] for tag in exes}
    for rep in range(args.repeat):
        for tag, exe in exes.items():
            before = load()
            figures = one_repetition(exe, work, tag, rows, args.skip_r3, args.max_payload)
            results[tag].append(figures)
            print(f"repetition {rep + 1} [{tag}] load {before:.2f} -> {load():.2f}", flush=True)
            for name, f in figures.items():
                cpu = "  ".join(f"{k} {v / rows * 1e6:.2f}" for k, v in f["cpu"].items())
                print(f"  {name:9} {f['wall']:6.2f} s  {rows / f['wall'] / 1e6:5.2f} M rows/s"
                      f"  (publish {f['publish']:.2f} s)  CPU s per M rows: {cpu}", flush=True)
    for tag, reps in results.items():
        print(f"\nmedians over {len(reps)} repetitions [{tag}: {exes[tag]}]")
        names = list(reps[0].keys())
        for name in names:
            wall = statistics.median(r[name]["wall"] for r in reps)
            kinds = reps[0][name]["cpu"].keys()
            cpu = "  ".join(
                f"{k} {statistics.median(r[name]['cpu'][k] for r in reps) / rows * 1e6:.2f}"
                for k in kinds)
            print(f"  {name:9} {wall:6.2f} s  {rows / wall / 1e6:5.2f} M rows/s  "
                  f"CPU s per M rows: {cpu}")
        ratio = lambda a, b: statistics.median(r[b]["wall"] / r[a]["wall"] for r in reps)
        print(f"  R1 end to end vs local:           {ratio('R1 1w', 'local'):.2f}x  (target >= 0.9)")
        if "R3 1w" in names:
            print(f"  R3 end to end vs local:           {ratio('R3 1w', 'local'):.2f}x")
        print(f"  two workers vs one, end to end:   {ratio('R1 2w', 'R1 1w'):.2f}x")
        print(f"  two workers vs one, ingest alone: {ratio('drain 2w', 'drain 1w'):.2f}x  "
              "(target >= 1.6)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
