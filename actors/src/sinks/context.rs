//! What every sink is given and reports, whatever it writes to: the run it writes for, its
//! input streams, and write failures as they happen.

use std::path::PathBuf;

use arrow_schema::SchemaRef;

use crate::batch::StreamId;

/// Where and for what run a sink writes.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The run directory; streams go into subdirectories of it.
    pub run_dir: PathBuf,
    /// The run id, written into every file's metadata.
    pub run_id: String,
    /// The experiment name, written into every file's metadata.
    pub experiment: String,
    /// The run's metadata as one JSON object, written into every file's metadata under
    /// [`RUN_METADATA_KEY`](crate::sinks::parquet::RUN_METADATA_KEY), so a file shared alone
    /// still says what sample and conditions it belongs to.
    pub metadata: String,
}

/// One input stream of a sink.
#[derive(Debug, Clone)]
pub struct SinkInput {
    /// The stream's name (its directory name).
    pub stream: StreamId,
    /// The schema of its batches.
    pub schema: SchemaRef,
    /// The component that produces it, written into the files' metadata.
    pub component: String,
}

/// A write error on one stream, reported as soon as it happens.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    /// The stream whose file failed.
    pub stream: StreamId,
    /// What went wrong; names the path.
    pub message: String,
}

/// Where a sink reports write failures as they happen.
pub type FailureFeed = flume::Receiver<WriteFailure>;
