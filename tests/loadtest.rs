//! `ensemble loadtest`: the seed's two load tests, asserting on counts (and one rate that is
//! half of what is offered, so a noisy machine does not make it flaky).

use std::time::Duration;

use ensemble::loadtest::{InstrumentGroup, LoadSink, LoadtestSpec, instrument_name, run_loadtest};
use ensemble::progress::ProgressMode;
use ensemble::run::never;

use crate::util::{assert_contiguous, read_stream, seqs};

fn spec(output: &std::path::Path, count: usize, rate_hz: f64, duration: Duration) -> LoadtestSpec {
    LoadtestSpec {
        groups: vec![InstrumentGroup {
            count,
            channels: 1,
            rate_hz,
        }],
        duration,
        output: output.to_path_buf(),
        ..LoadtestSpec::default()
    }
}

#[test]
fn a_100_khz_producer_sustains_more_than_50k_samples_per_second_without_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec(dir.path(), 1, 100_000.0, Duration::from_secs(2));
    let report = run_loadtest(&spec, never(), ProgressMode::Quiet).expect("load test runs");
    assert_eq!(report.status, "completed", "{}", report.table());
    assert_eq!(report.offered_rows, 200_000);
    assert_eq!(report.written_rows, 200_000, "{}", report.table());
    assert_eq!((report.dropped_rows, report.lost_rows), (0, 0));
    assert!(
        report.achieved_samples_per_s > 50_000.0,
        "{}",
        report.table()
    );
}

#[test]
fn ten_instruments_times_10k_samples_lose_no_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec(dir.path(), 10, 10_000.0, Duration::from_secs(1));
    let report = run_loadtest(&spec, never(), ProgressMode::Quiet).expect("load test runs");
    assert_eq!(report.offered_rows, 100_000);
    assert_eq!(report.written_rows, 100_000, "{}", report.table());
    assert_eq!((report.dropped_rows, report.lost_rows), (0, 0));
    let run_dir = std::path::PathBuf::from(&report.run_dir);
    for i in 0..10 {
        assert_contiguous(&seqs(&read_stream(&run_dir, &instrument_name(i))), 10_000);
    }
}

#[test]
fn instruments_that_panic_are_restarted_and_catch_up_losslessly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = LoadtestSpec {
        faults: 0.5,
        sink: LoadSink::Null,
        seed: 1,
        ..spec(dir.path(), 6, 1000.0, Duration::from_secs(2))
    };
    let report = run_loadtest(&spec, never(), ProgressMode::Quiet).expect("load test runs");
    assert!(report.faults_injected > 0, "seed 1 picks some instruments");
    assert_eq!(report.restarts, report.faults_injected as u64);
    assert_eq!(report.written_rows, 12_000, "{}", report.table());
    assert_eq!(report.lost_rows, 0);
}

#[test]
fn every_loadtest_file_under_configs_parses_and_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/loadtest");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/loadtest exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "toml") {
            let spec = LoadtestSpec::from_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            spec.check()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn the_report_states_how_long_starting_stopping_and_finishing_took() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = spec(dir.path(), 20, 100.0, Duration::from_secs(1));
    let report = run_loadtest(&spec, never(), ProgressMode::Quiet).expect("load test runs");
    let start = report.start_s.expect("every instrument started");
    let stop = report.stop_s.expect("every stream ended");
    // Starting precedes the plan's second of production; the instruments end after the plan's
    // end (they emit its last rows), and the run finishes after they ended.
    assert!(
        start > 0.0 && start < report.elapsed_s - 1.0,
        "{}",
        report.table()
    );
    assert!(stop <= report.finish_s, "{}", report.table());
    assert!(
        1.0 + report.finish_s <= report.elapsed_s + 0.05,
        "{}",
        report.table()
    );
    let json = serde_json::to_value(&report).expect("serializes");
    for key in ["start_s", "stop_s", "finish_s"] {
        assert!(json[key].is_number(), "{key}: {json}");
    }
    assert!(report.table().contains("start "), "{}", report.table());
}
