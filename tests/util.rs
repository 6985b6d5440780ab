//! Helpers shared by the integration tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType, UInt64Type};
use ensemble::config::{Experiment, compile};
use ensemble::progress::ProgressMode;
use ensemble::run::{RunReport, after, never, run_blocking};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Compiles an experiment from text, writing its runs under `output`.
pub fn experiment(text: &str, output: &Path) -> Experiment {
    let mut e = match compile(Path::new("test.toml"), text) {
        Ok(e) => e,
        Err(errors) => panic!("test experiment does not compile:\n{errors}"),
    };
    e.output = output.to_path_buf();
    e
}

/// Runs an experiment to the end of its plan.
pub fn run(e: Experiment) -> RunReport {
    run_blocking(e, never(), ProgressMode::Quiet).expect("run carried out")
}

/// Runs an experiment and stops it after `delay`, as an operator would.
pub fn run_and_stop(e: Experiment, delay: Duration) -> RunReport {
    run_blocking(e, after(delay), ProgressMode::Quiet).expect("run carried out")
}

/// The finished part files of a stream in a run directory, in order.
pub fn parts(run_dir: &Path, stream: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run_dir.join(stream))
        .expect("stream directory exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    files
}

/// Every row of a stream, read back with the parquet crate, as one batch per file batch.
pub fn read_stream(run_dir: &Path, stream: &str) -> Vec<RecordBatch> {
    parts(run_dir, stream)
        .iter()
        .flat_map(|path| {
            let file = File::open(path).expect("part opens");
            ParquetRecordBatchReaderBuilder::try_new(file)
                .expect("valid parquet")
                .build()
                .expect("reader")
                .map(|b| b.expect("readable batch"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `seq` column of all batches, concatenated.
pub fn seqs(batches: &[RecordBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("seq")
                .expect("seq column")
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// The `timestamp` column of all batches, concatenated (ns).
pub fn timestamps(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("timestamp")
                .expect("timestamp column")
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .to_vec()
        })
        .collect()
}

/// A Float64 column of all batches, concatenated.
pub fn values(batches: &[RecordBatch], column: &str) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(column)
                .unwrap_or_else(|| panic!("column {column}"))
                .as_primitive::<Float64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

/// Whether `seq` is exactly `0..n`.
pub fn assert_contiguous(seq: &[u64], n: u64) {
    assert_eq!(seq.len() as u64, n, "row count");
    for (i, s) in seq.iter().enumerate() {
        assert_eq!(*s, i as u64, "seq is contiguous from 0");
    }
}

/// Whether an outside program is there; if not, skip (print why) or fail under
/// `ENSEMBLE_REQUIRE_EXTERNAL=1`.
pub fn external_available(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("ENSEMBLE_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
        panic!("{what} is required (ENSEMBLE_REQUIRE_EXTERNAL=1) but missing");
    }
    eprintln!("skipped: {what} is missing");
    false
}

/// The path of the `ensemble` binary built for these tests.
pub fn ensemble_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ensemble")
}

/// Compiles an experiment that may name profiles (from `configs/instruments/`), writing its
/// runs under `output`.
pub fn experiment_with_profiles(text: &str, output: &Path) -> Experiment {
    let profiles = ensemble::config::DirProfiles {
        dirs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/instruments")],
    };
    let mut e = match ensemble::config::compile_with(Path::new("test.toml"), text, &profiles) {
        Ok(e) => e,
        Err(errors) => panic!("test experiment does not compile:\n{errors}"),
    };
    e.output = output.to_path_buf();
    e
}

/// Starts the SCPI simulator in-process on `127.0.0.1:0`, on its own thread and runtime, and
/// returns its port. It serves until the test process ends.
pub fn spawn_simulator(options: ensemble_actors::simulator::SimulatorOptions) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = ensemble_actors::simulator::serve_tcp(listener, options).await;
        });
    });
    port
}

/// Simulator options for a profile with faults.
pub fn sim_options(profile: &str, faults: &str) -> ensemble_actors::simulator::SimulatorOptions {
    ensemble_actors::simulator::SimulatorOptions {
        profile: profile.parse().expect("known profile"),
        faults: ensemble_actors::simulator::FaultSpec::parse(faults).expect("valid faults"),
        seed: 7,
        ..Default::default()
    }
}

/// A Float64 column of all batches, concatenated, nulls kept.
pub fn nullable_values(batches: &[RecordBatch], column: &str) -> Vec<Option<f64>> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(column)
                .unwrap_or_else(|| panic!("column {column}"))
                .as_primitive::<Float64Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The one run directory under `out`, if the run has made it yet.
pub fn only_run_dir(out: &Path) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert!(dirs.len() <= 1, "one run per output directory");
    dirs.into_iter().next()
}

/// Runs `ensemble recover RUN_DIR` and returns what it printed on stderr if it failed.
pub fn recover(run_dir: &Path) -> Result<(), String> {
    let recovered = std::process::Command::new(ensemble_bin())
        .arg("recover")
        .arg(run_dir)
        .output()
        .expect("recover runs");
    if recovered.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&recovered.stderr).into_owned())
    }
}

/// A key-value entry of a Parquet file's metadata (`ensemble.run_id`, `ensemble.metadata`, ...).
pub fn file_metadata_value(part: &Path, key: &str) -> Option<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(File::open(part).expect("part opens")).expect("parquet");
    let kv = reader.metadata().file_metadata().key_value_metadata()?;
    kv.iter()
        .find(|e| e.key == key)
        .and_then(|e| e.value.clone())
}
