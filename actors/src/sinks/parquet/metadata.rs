//! The key-value metadata every part file (and its write-ahead log) carries.

/// Metadata key of the run's metadata (`[experiment.metadata]` and `--meta`), as one JSON
/// object of scalars, in every file the sink writes.
pub const RUN_METADATA_KEY: &str = "ensemble.metadata";

/// Metadata keys the sink stores with each log (and writes into each file).
pub const FILE_METADATA_KEYS: [&str; 5] = [
    "ensemble.run_id",
    "ensemble.experiment",
    "ensemble.stream",
    "ensemble.instrument",
    RUN_METADATA_KEY,
];

/// The file metadata of a part: run id, experiment, stream and producing component, under the
/// first four [`FILE_METADATA_KEYS`] (the caller adds [`RUN_METADATA_KEY`] where it knows the
/// run's metadata).
pub fn file_metadata(
    run_id: &str,
    experiment: &str,
    stream: &str,
    instrument: &str,
) -> Vec<(String, String)> {
    FILE_METADATA_KEYS
        .iter()
        .zip([run_id, experiment, stream, instrument])
        .map(|(k, v)| ((*k).to_string(), v.to_string()))
        .collect()
}
