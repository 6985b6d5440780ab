//! The key-value metadata every part file (and its write-ahead log) carries.

/// Metadata keys the sink stores with each log (and writes into each file).
pub const FILE_METADATA_KEYS: [&str; 4] = [
    "ensemble.run_id",
    "ensemble.experiment",
    "ensemble.stream",
    "ensemble.instrument",
];

/// The file metadata of a part: run id, experiment, stream and producing component, under
/// [`FILE_METADATA_KEYS`].
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
