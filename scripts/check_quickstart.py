"""Checks a quickstart run against the signal formula, read with pyarrow, DuckDB and polars.

    python3 scripts/check_quickstart.py runs/<run_id>

Prints, per stream: rows, DuckDB's (count, min seq, max seq), polars' row count, and the
largest |value - formula| over every row. Exits non-zero if seq is not contiguous, the readers
disagree, or an error exceeds 1e-9.
"""

import glob
import math
import sys

import duckdb
import polars as pl
import pyarrow.parquet as pq

# stream: (rate_hz, shape, frequency_hz, amplitude, offset, phases) as in configs/quickstart.toml
SPEC = {
    "thermometer": (10, "ramp", 0.1, 0.5, 293.15, [0.0]),
    "daq": (1000, "square", 5, 2.5, 0.0, [0.0, math.pi / 2, math.pi, 3 * math.pi / 2]),
    "scope": (100000, "sine", 1000, 1.0, 0.0, [0.0]),
}


def wave(shape, x):
    if shape == "sine":
        return math.sin(x)
    if shape == "square":
        return 1.0 if math.sin(x) >= 0 else -1.0
    return 2 * ((x / (2 * math.pi)) % 1.0) - 1


def main(run):
    ok = True
    for stream, (rate, shape, f, a, off, phases) in SPEC.items():
        files = f"{run}/{stream}/*.parquet"
        t = pq.read_table(sorted(glob.glob(files)))
        n = t.num_rows
        ok &= t.column("seq").to_pylist() == list(range(n))
        channels = [c for c in t.column_names if c not in ("timestamp", "seq")]
        worst = 0.0
        for ci, c in enumerate(channels):
            phase = phases[ci] if len(phases) > 1 else phases[0]
            for i, v in enumerate(t.column(c).to_pylist()):
                expected = off + a * wave(shape, 2 * math.pi * f * (i / rate) + phase)
                worst = max(worst, abs(v - expected))
        d = duckdb.sql(f"select count(*), min(seq), max(seq) from read_parquet('{files}')").fetchall()[0]
        p = pl.read_parquet(files).height
        ok &= d == (n, 0, n - 1) and p == n and worst < 1e-9
        print(stream, n, "duckdb", d, "polars", p, "max |err|", worst)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
