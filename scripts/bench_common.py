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


def record_scope(work, name, rows, rate, noise=0.0, sink_extra=""):
    """Records `rows` rows of one `pace = "max"` stream `scope` (4 Float64 channels in V, a
    50 Hz sine plus `noise`) into a Parquet sink under WORK/runs; returns the run directory."""
    exp = os.path.join(work, "big.toml")
    noise_key = f", noise = {noise}" if noise else ""
    with open(exp, "w") as f:
        f.write(
            f"""[experiment]
name = "{name}"
duration = "{rows / rate:.6f}s"

[instruments.scope]
type = "sim"
rate_hz = {rate}
channels = ["a", "b", "c", "d"]
unit = "V"
pace = "max"
signal = {{ shape = "sine", frequency_hz = 50, amplitude = 1.0{noise_key} }}

[sinks.store]
type = "parquet"
inputs = ["scope"]
{sink_extra}"""
        )
    done = subprocess.run(
        [binary(), "run", exp, "--quiet", "--output", os.path.join(work, "runs")],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(done.stderr)
    return done.stdout.strip().splitlines()[-1]
