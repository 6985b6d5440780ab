#!/usr/bin/env python3
"""Times Bluesky's RunEngine on `scan([det], motor, 0, 10, N)` with ophyd.sim devices.

    python3 scripts/bluesky_baseline.py [--points 1000] [--repeat 3] [--venv DIR]

Installs bluesky 1.15 and ophyd 1.11 into a virtual environment (default: a cache directory,
reused on later runs) the first time, then runs the scan there with no callbacks subscribed
(no table, no plots: the RunEngine's own cost). Prints one line per repetition and a last
line of JSON: {"points": N, "median_points_per_s": ..., "runs": [...], "bluesky": "...",
"ophyd": "..."}. `cargo bench --bench plan_points -- --bluesky` runs it beside ensemble's
equivalent scan.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv

PACKAGES = ["bluesky==1.15.*", "ophyd==1.11.*"]

RUNNER = r"""
import json, statistics, sys, time
import bluesky, ophyd
from bluesky import RunEngine
from bluesky.plans import scan
from ophyd.sim import det, motor

points, repeat = int(sys.argv[1]), int(sys.argv[2])
RE = RunEngine({})
rates = []
for _ in range(repeat):
    start = time.perf_counter()
    RE(scan([det], motor, 0, 10, points))
    rates.append(points / (time.perf_counter() - start))
    print(f"bluesky scan([det], motor, 0, 10, {points}): {rates[-1]:.0f} points/s", flush=True)
print(json.dumps({"points": points, "median_points_per_s": statistics.median(rates),
                  "runs": rates, "bluesky": bluesky.__version__, "ophyd": ophyd.__version__}))
"""


def default_venv() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.access(os.path.dirname(cache) or "/", os.W_OK):
        cache = tempfile.gettempdir()
    return os.path.join(cache, "ensemble-bluesky-baseline")


def ensure_venv(path: str) -> str:
    python = os.path.join(path, "bin", "python")
    marker = os.path.join(path, ".installed-" + "-".join(PACKAGES).replace("*", "x"))
    if os.path.exists(marker):
        return python
    print(f"installing {' '.join(PACKAGES)} into {path} (once)", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    subprocess.run([python, "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    open(marker, "w").close()
    return python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--venv", default=default_venv())
    args = parser.parse_args()
    python = ensure_venv(args.venv)
    subprocess.run([python, "-c", RUNNER, str(args.points), str(args.repeat)], check=True)


if __name__ == "__main__":
    main()
