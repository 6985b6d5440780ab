//! Live progress while a run goes on: one indicatif line per stream on a terminal, one plain
//! status line per second otherwise, nothing in quiet mode.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ensemble_actors::budget::MemoryBudget;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::coordinator::StreamView;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars on stderr (for a terminal).
    Bars,
    /// One plain status line per second on stderr (for logs and pipes).
    Lines,
    /// One status line per second on stderr with totals over every stream (load tests with
    /// thousands of streams, where a line per stream would be unreadable).
    Totals,
    /// Nothing (tests, embedding).
    Quiet,
}

impl ProgressMode {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            ProgressMode::Bars
        } else {
            ProgressMode::Lines
        }
    }
}

/// A running progress display; [`finish`](Progress::finish) stops it.
pub struct Progress {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing the given streams and the run's memory in flight.
    pub fn start(views: Vec<StreamView>, memory: Arc<MemoryBudget>, mode: ProgressMode) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let task = match mode {
            ProgressMode::Quiet => None,
            ProgressMode::Lines => Some(tokio::spawn(lines(views, memory, stop_rx))),
            ProgressMode::Bars => Some(tokio::spawn(bars(views, memory, stop_rx))),
            ProgressMode::Totals => Some(tokio::spawn(totals(views, memory, stop_rx))),
        };
        Self { stop, task }
    }

    /// Stops the display after one last update.
    pub async fn finish(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Rates per stream, from the change in rows between two looks.
struct RateMeter {
    last: Vec<u64>,
    at: Instant,
}

impl RateMeter {
    fn new(n: usize) -> Self {
        Self {
            last: vec![0; n],
            at: Instant::now(),
        }
    }

    fn rates(&mut self, views: &[StreamView]) -> Vec<f64> {
        let dt = self.at.elapsed().as_secs_f64().max(1e-3);
        self.at = Instant::now();
        views
            .iter()
            .zip(self.last.iter_mut())
            .map(|(v, last)| {
                let rows = v.stats.rows();
                let rate = rows.saturating_sub(*last) as f64 / dt;
                *last = rows;
                rate
            })
            .collect()
    }
}

/// The status of one stream in a few words.
pub fn status_words(view: &StreamView, rate: f64) -> String {
    format!(
        "{:>10.0} rows/s  queue {:>3}  dropped {}",
        rate,
        view.queue_depth(),
        view.dropped_rows()
    )
}

/// The run's memory in flight in a few words.
pub fn memory_words(memory: &MemoryBudget) -> String {
    const MIB: u64 = 1024 * 1024;
    format!(
        "in flight {}/{} MiB, waited for memory {}x",
        memory.used().div_ceil(MIB),
        memory.limit() / MIB,
        memory.waits()
    )
}

async fn lines(views: Vec<StreamView>, memory: Arc<MemoryBudget>, mut stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let mut meter = RateMeter::new(views.len());
    loop {
        let done = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = stop.changed() => true,
        };
        let rates = meter.rates(&views);
        let parts: Vec<String> = views
            .iter()
            .zip(rates)
            .map(|(v, rate)| {
                format!(
                    "{} rows={} rate={:.0}/s queue={} dropped={}",
                    v.name,
                    v.stats.rows(),
                    rate,
                    v.queue_depth(),
                    v.dropped_rows()
                )
            })
            .collect();
        eprintln!(
            "[{:>6.1}s] {} | {}",
            started.elapsed().as_secs_f64(),
            parts.join(" | "),
            memory_words(&memory)
        );
        if done {
            return;
        }
    }
}

async fn totals(
    views: Vec<StreamView>,
    memory: Arc<MemoryBudget>,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let expected: Option<u64> = views.iter().map(|v| v.expected_rows).sum();
    let (mut last_rows, mut last_at) = (0u64, Instant::now());
    loop {
        let done = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = stop.changed() => true,
        };
        let rows: u64 = views.iter().map(|v| v.stats.rows()).sum();
        let dropped: u64 = views.iter().map(StreamView::dropped_rows).sum();
        let restarts: u64 = views.iter().map(|v| v.stats.restarts()).sum();
        let queue = views.iter().map(StreamView::queue_depth).max().unwrap_or(0);
        let dt = last_at.elapsed().as_secs_f64().max(1e-3);
        let rate = rows.saturating_sub(last_rows) as f64 / dt;
        (last_rows, last_at) = (rows, Instant::now());
        let of = expected.map_or_else(String::new, |e| format!("/{e}"));
        eprintln!(
            "[{:>6.1}s] {} streams  rows={rows}{of}  rate={rate:.0}/s  deepest queue={queue}  \
             dropped={dropped}  restarts={restarts}  {}",
            started.elapsed().as_secs_f64(),
            views.len(),
            memory_words(&memory),
        );
        if done {
            return;
        }
    }
}

async fn bars(views: Vec<StreamView>, memory: Arc<MemoryBudget>, mut stop: watch::Receiver<bool>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    let style = ProgressStyle::with_template("{prefix:>14} {bar:28} {pos:>10}/{len:<10} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let width = views.iter().map(|v| v.name.len()).max().unwrap_or(8);
    let bars: Vec<ProgressBar> = views
        .iter()
        .map(|v| {
            let bar = multi.add(ProgressBar::new(v.expected_rows.unwrap_or(0)));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{:>width$}", v.name));
            bar
        })
        .collect();
    let memory_line = multi.add(ProgressBar::new(0));
    memory_line.set_style(
        ProgressStyle::with_template("{prefix:>14} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    memory_line.set_prefix(format!("{:>width$}", "memory"));
    let mut meter = RateMeter::new(views.len());
    loop {
        let done = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => false,
            _ = stop.changed() => true,
        };
        let rates = meter.rates(&views);
        for ((bar, view), rate) in bars.iter().zip(&views).zip(rates) {
            let rows = view.stats.rows();
            if view.expected_rows.is_none() {
                bar.set_length(rows);
            }
            bar.set_position(rows);
            bar.set_message(status_words(view, rate));
        }
        memory_line.set_message(memory_words(&memory));
        if done {
            for bar in &bars {
                bar.finish();
            }
            memory_line.finish();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_words_show_use_limit_and_waits() {
        let budget = MemoryBudget::new(64 * 1024 * 1024);
        let held = budget.try_reserve(3 * 1024 * 1024 + 1).expect("fits");
        assert_eq!(
            memory_words(&budget),
            "in flight 4/64 MiB, waited for memory 0x"
        );
        drop(held);
        assert_eq!(
            memory_words(&budget),
            "in flight 0/64 MiB, waited for memory 0x"
        );
    }
}
