//! `ensemble runs` over a directory of many runs of mixed status.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::synthetic::copy_run;
use super::*;

const STATUSES: [&str; 4] = ["completed", "stopped", "failed", "crashed-unrecovered"];
const RUNS: usize = 52;

/// Sets the modification time of every file in a run to an hour ago: a killed run, long gone.
fn age(run: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    for (path, _) in super::synthetic::snapshot(run) {
        if path.is_file() {
            File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(old))
                .expect("set mtime");
        }
    }
}

/// `RUNS` copies of one real run, run `i` with status `STATUSES[i % 4]`, metadata
/// `sample = "B{i % 5}"` and `index = i`, started `i` minutes after 2026-11-01T00:00Z.
fn catalog(src: &Path, dir: &Path) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("run.json")).expect("manifest"))
            .expect("json");
    for i in 0..RUNS {
        let status = STATUSES[i % 4];
        let id = format!("20261101T{:02}{:02}00.000Z-run{i:03}", i / 60, i % 60);
        let run = dir.join(&id);
        copy_run(src, &run);
        let mut m = manifest.clone();
        let started = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("time")
            + chrono::Duration::minutes(i as i64);
        m["run_id"] = id.clone().into();
        m["started_at"] = started.to_rfc3339().into();
        m["metadata"] = serde_json::json!({ "sample": format!("B{}", i % 5), "index": i });
        if status == "crashed-unrecovered" {
            m["status"] = "running".into();
            m["stopped_at"] = serde_json::Value::Null;
            // What a killed writer leaves: an open part's log beside the finished parts.
            std::fs::write(run.join("probe/part-000001.wal"), b"ENSWAL01").expect("log");
        } else {
            m["status"] = status.into();
            m["stopped_at"] = (started + chrono::Duration::seconds(90))
                .to_rfc3339()
                .into();
        }
        std::fs::write(
            run.join("run.json"),
            serde_json::to_vec_pretty(&m).expect("json"),
        )
        .expect("write manifest");
        if status == "crashed-unrecovered" {
            age(&run);
        }
    }
    // A run whose manifest is missing: listed from its footers.
    let bare = dir.join("20261102T000000.000Z-bare00");
    copy_run(src, &bare);
    std::fs::remove_file(bare.join("run.json")).expect("remove manifest");
    // A damaged manifest: listed as unreadable, naming the file, without hiding the others.
    let broken = dir.join("20261103T000000.000Z-broken");
    copy_run(src, &broken);
    std::fs::write(broken.join("run.json"), b"{ not json").expect("write");
    // Not a run at all: skipped.
    std::fs::create_dir_all(dir.join("notes")).expect("mkdir");
}

fn runs_json(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"runs", &dir, &"--json"];
    for a in args {
        all.push(a);
    }
    serde_json::from_str(&ok_stdout(&ensemble(&all))).expect("runs --json is JSON")
}

#[test]
fn runs_lists_newest_first_and_filters_by_metadata_status_and_time() {
    let work = tempfile::tempdir().expect("tempdir");
    let src = small_run(&work.path().join("src"));
    let dir = work.path().join("catalog");
    catalog(&src, &dir);
    let rows: u64 = ensemble::manifest::Manifest::read(&src)
        .expect("manifest")
        .streams
        .values()
        .map(|s| s.rows)
        .sum();

    let all = runs_json(&dir, &[]);
    assert_eq!(
        all.len(),
        RUNS + 2,
        "every run, the bare and broken ones too, and no `notes`"
    );
    let broken = all
        .iter()
        .find(|r| r["status"] == "unreadable")
        .expect("the broken run is listed");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|e| e.contains("broken/run.json")),
        "{broken}"
    );
    // Newest first: index 51 down to 0 (the bare run starts at its first row, now, so first).
    let indexes: Vec<i64> = all
        .iter()
        .filter_map(|r| r["metadata"]["index"].as_i64())
        .collect();
    assert_eq!(indexes, (0..RUNS as i64).rev().collect::<Vec<_>>());
    let bare = all
        .iter()
        .find(|r| r["id"] == "20261102T000000.000Z-bare00")
        .expect("bare run listed");
    assert_eq!(bare["status"], "unknown");
    assert_eq!(bare["name"], "small", "the name from the files' metadata");
    assert_eq!(bare["rows"], rows, "rows from the footers");
    assert_eq!(
        bare["metadata"]["sample"], "B7",
        "metadata from ensemble.metadata"
    );
    for r in all.iter().filter(|r| r["metadata"]["index"].is_i64()) {
        assert_eq!(r["rows"], rows);
        assert!(r["bytes"].as_u64().unwrap_or(0) > 0);
    }

    let b2 = runs_json(&dir, &["--where", "sample=B2"]);
    let want: Vec<i64> = (0..RUNS as i64).rev().filter(|i| i % 5 == 2).collect();
    let got: Vec<i64> = b2
        .iter()
        .map(|r| r["metadata"]["index"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(got, want);

    let crashed = runs_json(&dir, &["--where", "status=crashed"]);
    assert_eq!(crashed.len(), RUNS / 4);
    assert!(
        crashed.iter().all(|r| r["status"] == "crashed-unrecovered"),
        "{crashed:?}"
    );
    assert!(crashed.iter().all(|r| r["duration_s"].is_null()));

    for status in ["completed", "stopped", "failed"] {
        let only = runs_json(&dir, &["--where", &format!("status={status}")]);
        assert_eq!(only.len(), RUNS / 4, "{status}");
        assert!(
            only.iter()
                .all(|r| r["status"] == status && r["duration_s"] == 90.0)
        );
    }

    let both = runs_json(&dir, &["--where", "status=failed", "--where", "sample=B1"]);
    let want: Vec<i64> = (0..RUNS as i64)
        .rev()
        .filter(|i| i % 4 == 2 && i % 5 == 1)
        .collect();
    let got: Vec<i64> = both
        .iter()
        .map(|r| r["metadata"]["index"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(got, want);
    let by_number = runs_json(&dir, &["--where", "index=7"]);
    assert_eq!(by_number.len(), 1, "numbers match by their text");

    let since = runs_json(
        &dir,
        &["--where", "name=small", "--since", "2026-11-01T00:40:00Z"],
    );
    let indexes: Vec<i64> = since
        .iter()
        .filter_map(|r| r["metadata"]["index"].as_i64())
        .collect();
    assert_eq!(indexes, (40..RUNS as i64).rev().collect::<Vec<_>>());

    let table = ok_stdout(&ensemble(&[&"runs", &dir, &"--where", &"sample=B0"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 11, "header and one line per run:\n{table}");
    assert!(lines[0].starts_with("ID"), "{table}");
    assert!(
        lines[1].contains("sample=B0") && lines[1].contains("small"),
        "{table}"
    );

    let missing = ensemble(&[&"runs", &work.path().join("nope")]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));
}
