//! The clock of a `duration` (stream) plan: the run ends once `duration` of unpaused time has
//! passed.
//!
//! A pause takes effect at once (a stream plan has no point in progress) and holds the clock
//! until resumed: the remaining duration is kept. Whether the instruments record meanwhile is
//! the plan's `pause_streams` (they follow [`RunControl::pauses`]); either way the run lasts
//! `duration` plus the time paused.

use std::time::Duration;

use tokio::time::Instant;

use crate::control::{Gate, RunControl};

/// How a stream plan's clock ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEnd {
    /// `duration` of unpaused time has passed: the plan is done.
    Elapsed,
    /// A stop was asked for first.
    Stopped,
}

/// Runs a stream plan's clock for `duration` under `control`; marks the plan finished at the
/// end.
pub async fn run_stream_clock(duration: Duration, control: &RunControl) -> ClockEnd {
    control.begin_stream();
    let mut remaining = duration;
    let end = loop {
        let started = Instant::now();
        tokio::select! {
            () = tokio::time::sleep(remaining) => break ClockEnd::Elapsed,
            () = control.attention() => {}
        }
        remaining = remaining.saturating_sub(started.elapsed());
        if control.gate(0).await == Gate::Stop {
            break ClockEnd::Stopped;
        }
    };
    control.finish();
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Phase;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_pause_holds_the_remaining_duration_until_resumed() {
        let control = RunControl::new();
        let mut pauses = control.pauses();
        let started = Instant::now();
        let clock = tokio::spawn({
            let control = control.clone();
            async move { run_stream_clock(600 * MS, &control).await }
        });
        tokio::time::sleep(200 * MS).await;
        control
            .pause(false, "socket")
            .expect("a stream plan can be paused");
        pauses.changed().await.expect("published");
        assert!(
            pauses.borrow_and_update().paused,
            "the pause took effect at once"
        );
        assert_eq!(control.state().phase, Phase::Paused);
        // Paused longer than the plan's whole duration: the clock holds.
        tokio::time::sleep(1000 * MS).await;
        assert!(!clock.is_finished());
        let resumed_at = Instant::now();
        control.resume("http").expect("resume");
        assert_eq!(clock.await.expect("clock task"), ClockEnd::Elapsed);
        let ran = resumed_at.elapsed();
        assert!(
            ran >= 350 * MS && ran < 900 * MS,
            "about the remaining 400 ms ran after the resume: {ran:?}"
        );
        assert!(started.elapsed() >= 1600 * MS);
        let p = *pauses.borrow();
        assert!(!p.paused);
        assert!(
            p.paused_for >= 1000 * MS && p.paused_for < 2000 * MS,
            "{p:?}"
        );
        let log = control.interruptions();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].resumed_by.as_deref(), Some("http"));
        assert_eq!(control.state().phase, Phase::Finished);
    }

    #[tokio::test]
    async fn a_stop_while_paused_ends_the_clock_and_unpaused_it_ends_on_time() {
        let control = RunControl::new();
        let clock = tokio::spawn({
            let control = control.clone();
            async move { run_stream_clock(Duration::from_secs(10), &control).await }
        });
        tokio::time::sleep(100 * MS).await;
        control.pause(true, "socket").expect("pause");
        tokio::time::sleep(100 * MS).await;
        control.stop("socket").expect("stop");
        assert_eq!(clock.await.expect("clock task"), ClockEnd::Stopped);
        assert!(control.interruptions()[0].ended_by_stop);
        assert!(!control.pauses().borrow().paused, "the streams are let go");

        let control = RunControl::new();
        let started = Instant::now();
        let end = run_stream_clock(300 * MS, &control).await;
        assert_eq!(end, ClockEnd::Elapsed);
        assert!((300 * MS..900 * MS).contains(&started.elapsed()));
        assert!(control.pause(false, "t").is_err(), "the plan has ended");
    }
}
