//! Control-plane messages. Each is a small struct that declares its reply type.
//!
//! Data never travels here: batches and end markers go over links as
//! [`StreamEvent`](crate::batch::StreamEvent)s, so a stop can never overtake the data before it.

use std::path::PathBuf;

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::batch::StreamId;

/// Sent by the coordinator to an instrument: stop acquiring, emit every row already due, then
/// end the stream on every output link. The instrument reports with [`ComponentExited`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Sent by the coordinator to an instrument that stalled: abandon the acquisition at once
/// (without ending the stream, which the coordinator continues with a restart or ends itself)
/// and stop the actor. Rows not yet emitted are abandoned with it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Terminate;

/// Sent by a component to the coordinator when it has exited, for whatever reason.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ComponentExited {
    /// The component's name in the experiment file.
    pub component: String,
    /// How it ended.
    pub outcome: ExitOutcome,
}

/// How a component ended.
#[derive(Debug, Clone)]
pub enum ExitOutcome {
    /// An instrument produced its last row and ended its streams.
    InstrumentFinished,
    /// A stage flushed after its input ended and ended its output stream.
    StageFinished {
        /// Rows the stage emitted in total.
        rows: u64,
    },
    /// A sink finished every file of every input; here is what it wrote.
    SinkFinished(SinkReport),
    /// The component failed; the text says why (it names the path, value or device involved).
    Failed(String),
}

/// What a sink wrote, per input stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkReport {
    /// One entry per input stream, in the order the inputs are declared.
    pub streams: Vec<StreamWriteReport>,
    /// Per batch: its newest sample's age when it became durable (or reached the sink, for
    /// sinks that store nothing).
    #[serde(skip)]
    pub latency: Option<crate::latency::LatencyHistogram>,
}

/// What a sink wrote for one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamWriteReport {
    /// The stream.
    pub stream: StreamId,
    /// Rows written to finished files.
    pub rows: u64,
    /// Finished part files, in order.
    pub parts: Vec<PartFile>,
    /// Rows that reached the sink but could not be written (after a write error).
    pub rows_lost: u64,
    /// The first write error, if any; it names the file involved.
    pub error: Option<String>,
}

/// One finished part file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartFile {
    /// Path relative to the run directory, e.g. `scope/part-000000.parquet`.
    pub path: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// `seq` of the first row in the file.
    pub first_seq: u64,
}
