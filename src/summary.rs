//! The table printed when a run ends.

use std::fmt::Write;

use crate::manifest::Manifest;

/// A table with one row per stream: rows, expected, dropped, restarts, parts; then the status.
pub fn summary_table(manifest: &Manifest) -> String {
    let mut out = String::new();
    let width = manifest
        .streams
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>12}  {:>9}  {:>8}  {:>5}",
        "stream", "rows", "expected", "dropped", "restarts", "parts"
    );
    for (name, s) in &manifest.streams {
        let parts: usize = s.sinks.values().map(|k| k.parts.len()).sum();
        let expected = s
            .expected_rows
            .map_or_else(|| "-".to_string(), |e| e.to_string());
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:>12}  {:>9}  {:>8}  {:>5}",
            name, s.rows, expected, s.dropped_rows, s.restarts, parts
        );
    }
    let _ = write!(out, "status: {}", manifest.status);
    if let Some(reason) = &manifest.stop_reason {
        let _ = write!(out, " ({reason})");
    }
    out.push('\n');
    out
}
