//! Configuration of the statistics stage (`type = "stats"`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Mean, standard deviation, minimum, maximum and RMS per channel over consecutive,
/// non-overlapping windows.
///
/// ```toml
/// [stages.summary]
/// type = "stats"
/// inputs = ["dmm"]
/// window = "1s"      # or a number of samples: window = 1000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// The window: a number of samples, or a duration (converted with the input's rate and
    /// rounded to whole samples).
    pub window: StatsWindow,
}

/// A statistics window, in samples or as a duration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatsWindow {
    /// A number of samples (at least 1).
    Samples(usize),
    /// A duration, e.g. `"500ms"`.
    Duration(#[serde(with = "humantime_serde")] Duration),
}

impl StatsConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        match self.window {
            StatsWindow::Samples(0) => vec![("window", "must be at least 1 sample".to_string())],
            StatsWindow::Duration(d) if d.is_zero() => {
                vec![("window", "must be longer than zero".to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The window in samples at `rate_hz`; `Err` if it rounds to no sample at all.
    pub fn window_samples(&self, rate_hz: f64) -> Result<usize, (&'static str, String)> {
        match self.window {
            StatsWindow::Samples(n) => Ok(n),
            StatsWindow::Duration(d) => {
                let n = (d.as_secs_f64() * rate_hz).round();
                if n >= 1.0 {
                    Ok(n as usize)
                } else {
                    Err((
                        "window",
                        format!(
                            "{} is shorter than one sample at {rate_hz} Hz",
                            humantime::format_duration(d)
                        ),
                    ))
                }
            }
        }
    }
}
