//! The plain part of the null sink: counts per stream and a latency histogram, no actors.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

use crate::batch::{DataBatch, StreamId, TIMESTAMP_COLUMN};
use crate::control::{SinkReport, StreamWriteReport};
use crate::latency::{LatencyHistogram, now_ns};

/// Counts the rows of each input stream and discards them.
///
/// For every batch it records the age of the batch's newest sample on arrival, so a load test
/// with this sink measures the pipeline up to the sink (generation, links, mailboxes).
#[derive(Debug)]
pub struct NullSink {
    /// Inputs in declaration order, for the report.
    order: Vec<StreamId>,
    /// Rows received per input.
    rows: HashMap<StreamId, u64>,
    latency: LatencyHistogram,
}

impl NullSink {
    /// A sink that takes `inputs`.
    pub fn new(inputs: Vec<StreamId>) -> Self {
        Self {
            rows: inputs.iter().map(|s| (s.clone(), 0)).collect(),
            order: inputs,
            latency: LatencyHistogram::default(),
        }
    }

    /// Counts a batch (batches of streams it does not take are ignored).
    pub fn write(&mut self, batch: &DataBatch) {
        let Some(rows) = self.rows.get_mut(&batch.stream) else {
            return;
        };
        *rows += batch.rows() as u64;
        let newest = batch
            .batch
            .column_by_name(TIMESTAMP_COLUMN)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .filter(|ts| !ts.is_empty())
            .map(|ts| ts.value(ts.len() - 1));
        if let Some(ts) = newest {
            self.latency.record_since(ts, now_ns());
        }
    }

    /// What it counted, per input in declaration order.
    pub fn report(&self) -> SinkReport {
        SinkReport {
            streams: self
                .order
                .iter()
                .map(|s| StreamWriteReport {
                    stream: s.clone(),
                    rows: self.rows.get(s).copied().unwrap_or(0),
                    parts: Vec::new(),
                    rows_lost: 0,
                    error: None,
                })
                .collect(),
            latency: Some(self.latency.clone()),
        }
    }
}
