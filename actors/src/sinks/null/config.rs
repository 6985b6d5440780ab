//! Configuration of the null sink (`type = "null"`).

use serde::{Deserialize, Serialize};

/// Counts every row and discards it: for measuring the pipeline without encoding or disk.
///
/// It has no keys of its own; the common sink keys (`inputs`, `delivery`, `queue_batches`,
/// supervision) apply as for any sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullSinkConfig {}

impl NullSinkConfig {
    /// Checks values serde cannot: there are none, so never a problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}
