"""What the bench scripts share: where the binary is, the load average, and recording one
simulated 4-channel stream into Parquet."""

import os
import subprocess
import sys

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "ensemble")


def binary():
    """The release binary: `$CARGO_TARGET_DIR/release/ensemble`, else `target/release/ensemble`."""
    target = os.environ.get("CARGO_TARGET_DIR")
    return os.path.join(target, "release", "ensemble") if target else BIN


def load():
    """The 1-minute load average."""
    return os.getloadavg()[0]


def write_stream_experiment(path, name, stream, rate, rows, sink, extra=""):
    """Writes an experiment of one `pace = "max"` simulated stream STREAM (4 Float64 channels
    a-d, `rows` rows at `rate`, plus EXTRA instrument keys) and the sink table SINK to PATH;
    returns PATH."""
    with open(path, "w") as f:
        f.write(
            f"""[experiment]
name = "{name}"
duration = "{rows / rate:.6f}s"

[instruments.{stream}]
type = "sim"
rate_hz = {rate}
channels = ["a", "b", "c", "d"]
pace = "max"
{extra}
{sink}"""
        )
    return path


def record_scope(work, name, rows, rate, noise=0.0, sink_extra=""):
    """Records `rows` rows of one `pace = "max"` stream `scope` (4 Float64 channels in V, a
    50 Hz sine plus `noise`) into a Parquet sink under WORK/runs; returns the run directory."""
    noise_key = f", noise = {noise}" if noise else ""
    exp = write_stream_experiment(
        os.path.join(work, "big.toml"),
        name,
        "scope",
        rate,
        rows,
        f"""[sinks.store]
type = "parquet"
inputs = ["scope"]
{sink_extra}""",
        extra=f"""unit = "V"
signal = {{ shape = "sine", frequency_hz = 50, amplitude = 1.0{noise_key} }}
""",
    )
    done = subprocess.run(
        [binary(), "run", exp, "--quiet", "--output", os.path.join(work, "runs")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(done.stderr)
    return done.stdout.strip().splitlines()[-1]
