//! The fan-out of one stream to every link that consumes it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

use crate::batch::{DataBatch, EndOfStream, StreamEvent, StreamId, TIMESTAMP_COLUMN};
use crate::link::LinkSender;
use crate::stats::StreamStats;

/// A producer's view of its stream: where batches go, and the counters they update.
///
/// Cloned into a restarted producer, it continues the same stream on the same links.
#[derive(Clone)]
pub struct Outputs {
    stream: StreamId,
    links: Vec<LinkSender>,
    stats: Arc<StreamStats>,
}

impl Outputs {
    /// The outputs of `stream`: one link per consumer.
    pub fn new(stream: StreamId, links: Vec<LinkSender>, stats: Arc<StreamStats>) -> Self {
        Self {
            stream,
            links,
            stats,
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The stream's counters.
    pub fn stats(&self) -> &Arc<StreamStats> {
        &self.stats
    }

    /// Sends a batch whose first row is `first_seq` to every link, sharing one copy.
    ///
    /// Waits while a lossless link is full; best-effort links never make it wait. A link whose
    /// consumer is gone counts the batch as dropped and does not hold up the others.
    pub async fn emit(&self, first_seq: u64, batch: RecordBatch) {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return;
        }
        let (first_ts, last_ts) = timestamp_range(&batch);
        self.stats.record_batch(rows, first_ts, last_ts);
        let event = StreamEvent::Data(DataBatch::new(self.stream.clone(), first_seq, batch));
        for link in &self.links {
            // A closed link has already counted the loss; the other consumers still get the data.
            let _ = link.push(event.clone()).await;
        }
    }

    /// Ends the stream on every link, after everything emitted before.
    pub async fn end(&self) {
        let event = StreamEvent::End(EndOfStream {
            stream: self.stream.clone(),
            rows: self.stats.rows(),
        });
        for link in &self.links {
            let _ = link.push(event.clone()).await;
        }
    }

    /// Deepest queue among the links right now.
    pub fn max_queue_depth(&self) -> usize {
        self.links.iter().map(LinkSender::depth).max().unwrap_or(0)
    }
}

/// First and last timestamp of a batch (0, 0 if it has no timestamp column).
fn timestamp_range(batch: &RecordBatch) -> (i64, i64) {
    let Some(col) = batch.column_by_name(TIMESTAMP_COLUMN) else {
        return (0, 0);
    };
    let Some(ts) = col.as_primitive_opt::<TimestampNanosecondType>() else {
        return (0, 0);
    };
    let n = ts.len();
    if n == 0 {
        return (0, 0);
    }
    (ts.value(0), ts.value(n - 1))
}
