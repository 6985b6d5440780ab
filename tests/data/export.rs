//! `ensemble export`: round trips read back by pyarrow, NaN/inf/null kept, `--from/--to`
//! pruning, and bad input refused with exit 2 and nothing written.

use super::synthetic::{GROUP_ROWS, ROWS, T0, special_values_run};
use super::*;

/// Reads the exports back with pyarrow and compares every value with the Parquet part's.
const ROUND_TRIP: &str = r#"
import sys, math, json
import pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq, pyarrow.ipc as ipc
part, csv_path, arrow_path, parquet_path = sys.argv[1:5]
want = pq.read_table(part)
def same(a, b):
    a, b = a.to_pylist(), b.to_pylist()
    assert len(a) == len(b), (len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        assert x == y, (i, x, y)
# CSV: a unit row after the header; an empty field is null, `NaN`/`inf`/`-inf` are numbers.
got = csv.read_csv(csv_path,
    read_options=csv.ReadOptions(skip_rows_after_names=1),
    convert_options=csv.ConvertOptions(null_values=[""], strings_can_be_null=False,
        column_types={"timestamp": pa.timestamp("ns", tz="UTC"), "seq": pa.uint64(),
                      "v": pa.float64(), "w": pa.float64()}))
for name in want.column_names:
    same(want[name], got[name])
units = open(csv_path).read().splitlines()[1]
assert units == "UTC,,V,A", units
arrow = ipc.open_file(arrow_path).read_all()
assert arrow.schema.field("v").metadata[b"unit"] == b"V"
for name in want.column_names:
    same(want[name], arrow[name])
again = pq.read_table(parquet_path)
for name in want.column_names:
    same(want[name], again[name])
nulls = want["v"].null_count
nans = sum(1 for x in want["v"].to_pylist() if isinstance(x, float) and math.isnan(x))
print(json.dumps({"rows": want.num_rows, "nulls": nulls, "nans": nans}))
"#;

#[test]
fn csv_arrow_and_parquet_exports_read_back_equal_with_nan_inf_and_null() {
    let work = tempfile::tempdir().expect("tempdir");
    let run_dir = special_values_run(work.path());
    let csv = work.path().join("s.csv");
    let arrow = work.path().join("s.arrow");
    let parquet = work.path().join("s.parquet");
    for (format, out) in [("csv", &csv), ("arrow", &arrow), ("parquet", &parquet)] {
        let done = ensemble(&[
            &"export",
            &run_dir,
            &"--stream",
            &"s",
            &"--format",
            &format,
            &"--units",
            &"--out",
            out,
        ]);
        ok_stdout(&done);
        assert!(
            String::from_utf8_lossy(&done.stderr).contains(&format!("{ROWS} rows")),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let text = std::fs::read_to_string(&csv).expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp,seq,v,w");
    assert_eq!(lines.len(), 2 + ROWS);
    assert!(
        lines[2].starts_with("2025-12-01T00:00:00.000000000Z,0,NaN,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains(",1,inf,") && lines[4].contains(",2,-inf,"),
        "{text:.400}"
    );
    assert!(
        lines[5].contains(",3,,"),
        "a null is an empty field: {}",
        lines[5]
    );

    // NDJSON to standard output: JSON per line, NaN and infinities as strings, null as null.
    let ndjson = ok_stdout(&ensemble(&[
        &"export",
        &run_dir,
        &"--format",
        &"ndjson",
        &"--time",
        &"ns",
    ]));
    let rows: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(rows.len(), ROWS);
    assert_eq!(rows[0]["timestamp"], T0);
    assert_eq!(rows[0]["v"], "NaN");
    assert_eq!(rows[1]["v"], "inf");
    assert_eq!(rows[2]["v"], "-inf");
    assert!(rows[3]["v"].is_null());
    assert_eq!(rows[4]["v"], 4.0 * 0.1 - 17.0);

    if external_available("python3 with pyarrow", python_has("pyarrow")) {
        let part = run_dir.join("s/part-000000.parquet");
        let counts: serde_json::Value =
            serde_json::from_str(&python(ROUND_TRIP, &[&part, &csv, &arrow, &parquet]))
                .expect("JSON");
        assert_eq!(counts["rows"], ROWS);
        assert!(counts["nulls"].as_u64() > Some(0) && counts["nans"].as_u64() > Some(0));
    }
}

#[test]
fn from_and_to_skip_row_groups_by_statistics_and_clip_rows() {
    let work = tempfile::tempdir().expect("tempdir");
    let run_dir = special_values_run(work.path());
    // Rows 1500..=2200 (1 ms apart): row group 0 (rows 0..1000) is skipped unread.
    let from = chrono::DateTime::from_timestamp_nanos(T0 + 1_500_000_000).to_rfc3339();
    let to = chrono::DateTime::from_timestamp_nanos(T0 + 2_200_000_000).to_rfc3339();
    let out = work.path().join("window.csv");
    let done = ensemble(&[
        &"export",
        &run_dir,
        &"--format",
        &"csv",
        &"--time",
        &"s-relative",
        &"--from",
        &from,
        &"--to",
        &to,
        &"--out",
        &out,
    ]);
    ok_stdout(&done);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(stderr.contains("701 rows"), "{stderr}");
    assert!(stderr.contains("1 row groups skipped"), "{stderr}");
    let text = std::fs::read_to_string(&out).expect("csv");
    let seqs: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, (1500..=2200).collect::<Vec<u64>>());
    assert!(
        text.lines().nth(1).is_some_and(|l| l.starts_with("1.5,")),
        "{text:.200}"
    );
    assert_eq!(GROUP_ROWS, 1000);
}

/// Asserts a command failed with exit 2, said `names` on stderr, and wrote nothing to `out`.
fn refused(args: &[&dyn AsRef<std::ffi::OsStr>], names: &str, out: &std::path::Path) {
    let done = ensemble(args);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "exit 2: {stderr}");
    assert!(
        stderr.contains(names),
        "the error names `{names}`: {stderr}"
    );
    assert!(!out.exists(), "nothing written at {}", out.display());
    let dir = out.parent().expect("parent");
    let stray: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(stray.is_empty(), "no temporary file left: {stray:?}");
}

#[test]
fn bad_input_is_refused_with_exit_2_naming_the_file_and_nothing_written() {
    let work = tempfile::tempdir().expect("tempdir");
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    let out = out_dir.join("x.csv");

    let missing = work.path().join("no-such-run");
    refused(
        &[&"export", &missing, &"--format", &"csv", &"--out", &out],
        "no-such-run",
        &out,
    );
    refused(&[&"inspect", &missing], "no-such-run", &out);

    let run_dir = special_values_run(&work.path().join("truncated"));
    let part = run_dir.join("s/part-000000.parquet");
    let bytes = std::fs::read(&part).expect("part");
    std::fs::write(&part, &bytes[..bytes.len() / 2]).expect("truncate");
    refused(
        &[&"export", &run_dir, &"--format", &"csv", &"--out", &out],
        "part-000000.parquet",
        &out,
    );
    refused(&[&"inspect", &run_dir], "part-000000.parquet", &out);
    let png = out_dir.join("x.png");
    refused(
        &[&"plot", &run_dir, &"--stream", &"s", &"--out", &png],
        "part-000000.parquet",
        &png,
    );

    let future = special_values_run(&work.path().join("future"));
    std::fs::write(
        future.join("run.json"),
        r#"{"ensemble_version": "99.0.0", "run_id": "x", "format": "from the future"}"#,
    )
    .expect("manifest");
    refused(
        &[&"export", &future, &"--format", &"csv", &"--out", &out],
        "run.json",
        &out,
    );
    refused(&[&"inspect", &future], "99.0.0", &out);

    let fine = special_values_run(&work.path().join("fine"));
    refused(
        &[
            &"export",
            &fine,
            &"--format",
            &"csv",
            &"--from",
            &"2026-12-02",
            &"--to",
            &"2026-12-01",
            &"--out",
            &out,
        ],
        "--from",
        &out,
    );
    refused(
        &[
            &"export",
            &fine,
            &"--stream",
            &"nope",
            &"--format",
            &"csv",
            &"--out",
            &out,
        ],
        "nope",
        &out,
    );
}
