//! What `ensemble validate` prints: the compiled graph, one line per component.

use std::fmt::Write as _;

use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::parquet::Codec;

use super::experiment::{Experiment, InstrumentKind, Plan, SinkKind};

impl Experiment {
    /// A human-readable overview of the compiled experiment, as `ensemble validate` prints it.
    ///
    /// One header line (name, plan, duration), then one aligned line per instrument (type, rate,
    /// channels, unit, and the stages and sinks it feeds after `→`), per stage (type, inputs
    /// after `←`, its settings, consumers after `→`) and per sink (type, inputs after `←`,
    /// delivery, compression):
    ///
    /// ```text
    /// experiment  bench: stream for 2s, output to runs/
    ///
    /// instruments
    ///   scope  sim  1 kHz  2 ch  V  → psd, store
    ///
    /// stages
    ///   psd  fft  ← scope.a  size 256, hop 128, hann, psd  → store
    ///
    /// sinks
    ///   store  parquet  ← scope, psd  lossless  zstd level 1
    /// ```
    pub fn graph_summary(&self) -> String {
        let mut out = String::new();
        let plan = match &self.plan {
            Plan::Stream => format!("stream for {}", humantime::format_duration(self.duration)),
            Plan::Points(p) => {
                let axes: Vec<String> = p
                    .axes
                    .iter()
                    .map(|a| format!("{} ({} values)", a.column(), a.points.len()))
                    .collect();
                let over = if axes.is_empty() {
                    String::new()
                } else {
                    format!(" over {}", axes.join(" × "))
                };
                let points = match p.total_points() {
                    Some(n) => n.to_string(),
                    None => "open-ended".to_string(),
                };
                format!(
                    "{} of {points} points{over}, reading {} → primary",
                    p.kind.name(),
                    p.detectors.join(", ")
                )
            }
        };
        let _ = writeln!(
            out,
            "experiment  {}: {plan}, output to {}/",
            self.name,
            self.output.display()
        );
        if let Some(description) = &self.description {
            let _ = writeln!(out, "            {description}");
        }

        let mut rows = Vec::new();
        for instrument in &self.instruments {
            let feeds = self.consumers_of(&instrument.name);
            let feeds = if feeds.is_empty() {
                "→ (nothing: not recorded)".to_string()
            } else {
                format!("→ {}", feeds.join(", "))
            };
            let row = match &instrument.kind {
                InstrumentKind::Sim(c) => vec![
                    instrument.name.clone(),
                    "sim".to_string(),
                    format_rate(c.rate_hz),
                    format!("{} ch", c.channels.len()),
                    c.unit.clone(),
                    feeds,
                ],
                InstrumentKind::Scpi(c) => vec![
                    instrument.name.clone(),
                    "scpi".to_string(),
                    format!("every {}", humantime::format_duration(c.poll_interval)),
                    format!("{} ch", c.read.len()),
                    c.address.clone(),
                    feeds,
                ],
            };
            rows.push(row);
        }
        if !rows.is_empty() {
            out.push_str("\ninstruments\n");
            out.push_str(&aligned(&rows));
        }

        let mut rows = Vec::new();
        for stage in &self.stages {
            let feeds = self.consumers_of(&stage.name);
            let feeds = if feeds.is_empty() {
                "→ (nothing: not recorded)".to_string()
            } else {
                format!("→ {}", feeds.join(", "))
            };
            rows.push(vec![
                stage.name.clone(),
                stage.kind.type_name().to_string(),
                format!("← {}", stage.inputs.join(", ")),
                stage.kind.describe(),
                feeds,
            ]);
        }
        if !rows.is_empty() {
            out.push_str("\nstages\n");
            out.push_str(&aligned(&rows));
        }

        let mut rows = Vec::new();
        for sink in &self.sinks {
            let delivery = match sink.delivery {
                Delivery::Lossless => "lossless",
                Delivery::BestEffort => "best effort",
            };
            let row = match &sink.kind {
                SinkKind::Parquet(c) => vec![
                    sink.name.clone(),
                    "parquet".to_string(),
                    format!("← {}", sink.inputs.join(", ")),
                    delivery.to_string(),
                    match c.compression {
                        Codec::Zstd => format!("zstd level {}", c.zstd_level),
                        Codec::Snappy => "snappy".to_string(),
                        Codec::None => "uncompressed".to_string(),
                    },
                ],
                SinkKind::Null(_) => vec![
                    sink.name.clone(),
                    "null".to_string(),
                    format!("← {}", sink.inputs.join(", ")),
                    delivery.to_string(),
                    "counts and discards".to_string(),
                ],
                SinkKind::Nats(c) => vec![
                    sink.name.clone(),
                    "nats".to_string(),
                    format!("← {}", sink.inputs.join(", ")),
                    delivery.to_string(),
                    format!("{} → {} ({}.RUN.STREAM)", c.url, c.stream, c.subject_prefix),
                ],
            };
            rows.push(row);
        }
        if !rows.is_empty() {
            out.push_str("\nsinks\n");
            out.push_str(&aligned(&rows));
        }
        out
    }
}

/// `1 kHz`, `2.5 MHz`, `10 Hz`.
fn format_rate(hz: f64) -> String {
    let (value, unit) = if hz >= 1e6 {
        (hz / 1e6, "MHz")
    } else if hz >= 1e3 {
        (hz / 1e3, "kHz")
    } else {
        (hz, "Hz")
    };
    format!("{value} {unit}")
}

/// Rows as lines indented by two spaces, columns padded to their widest cell.
fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, " {cell}{}", " ".repeat(width - cell.chars().count()));
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
