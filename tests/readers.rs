//! Runs read by the tools labs use: pyarrow and DuckDB (through Python), when present.

use std::process::Command;

use crate::util::*;

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn pyarrow_and_duckdb_read_every_stream_with_exact_rows() {
    if !external_available(
        "python3 with pyarrow and duckdb",
        python_has("pyarrow, duckdb"),
    ) {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let text = r#"
[experiment]
name = "readers"
duration = "1s"

[instruments.slow]
type = "sim"
rate_hz = 10
unit = "K"

[instruments.fast]
type = "sim"
rate_hz = 20000
channels = ["x", "y"]
pace = "max"

[sinks.store]
type = "parquet"
inputs = ["slow", "fast"]
rotate_rows = 6000
"#;
    let report = run(experiment(text, out.path()));
    let script = r#"
import sys, glob, duckdb, pyarrow.parquet as pq
run = sys.argv[1]
for stream, rows in (("slow", 10), ("fast", 20000)):
    files = sorted(glob.glob(f"{run}/{stream}/*.parquet"))
    t = pq.read_table(files[0])
    assert str(t.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]", t.schema
    total = sum(pq.read_table(f).num_rows for f in files)
    assert total == rows, (stream, total)
    n, lo, hi, distinct = duckdb.sql(
        f"select count(*), min(seq), max(seq), count(distinct seq) from read_parquet('{run}/{stream}/*.parquet')"
    ).fetchall()[0]
    assert (n, lo, hi, distinct) == (rows, 0, rows - 1, rows), (stream, n, lo, hi, distinct)
unit = pq.read_schema(glob.glob(f"{run}/slow/*.parquet")[0]).field("ch0").metadata[b"unit"]
assert unit == b"K", unit
print("ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&report.run_dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
