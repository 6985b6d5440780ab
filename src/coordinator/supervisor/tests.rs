use super::*;

const MS: Duration = Duration::from_millis(1);

fn policy(on_failure: OnFailure, max_restarts: u32) -> Supervision {
    Supervision {
        on_failure,
        max_restarts,
        restart_window: Duration::from_secs(10),
        restart_backoff: 100 * MS,
    }
}

/// A supervisor whose restart timers are numbered, with the given instruments (all running)
/// and one sink.
fn supervisor(instruments: &[(&str, OnFailure)]) -> (Supervisor<u32>, Instant) {
    let now = Instant::now();
    let mut s = Supervisor::default();
    for (name, on_failure) in instruments {
        s.add_instrument(
            name,
            policy(*on_failure, 2),
            Some(Duration::from_secs(2)),
            now,
        );
        s.running(name, 0, now);
    }
    s.add_sink("store");
    (s, now)
}

fn events(s: &Supervisor<u32>) -> Vec<(String, &'static str)> {
    s.events
        .iter()
        .map(|e| (e.component.clone(), e.event.as_str()))
        .collect()
}

fn report() -> SinkReport {
    SinkReport::default()
}

#[test]
fn a_restart_is_scheduled_with_backoff_until_the_policy_gives_up() {
    let (mut s, now) = supervisor(&[("scope", OnFailure::Restart)]);
    let mut delays = Vec::new();
    let after = s.failed("scope", "boom".into(), now, |d| {
        delays.push(d);
        7
    });
    assert!(!after.end_stream && after.stop.is_none(), "{after:?}");
    assert!(matches!(s.slots["scope"].state, SlotState::Restarting(7)));
    s.running("scope", 0, now);
    let after = s.failed("scope", "boom".into(), now, |d| {
        delays.push(d);
        8
    });
    assert!(after.stop.is_none());
    assert_eq!(delays, [100 * MS, 200 * MS]);
    s.running("scope", 0, now);
    let after = s.failed("scope", "boom".into(), now, |_| {
        unreachable!("no third restart")
    });
    assert!(after.end_stream);
    let Some(StopReason::Failure(reason)) = after.stop else {
        panic!("giving up stops the run: {after:?}");
    };
    assert_eq!(reason, "scope: more than 2 restarts within 10s: boom");
    assert_eq!(
        events(&s),
        [
            ("scope".into(), "failed"),
            ("scope".into(), "restarting"),
            ("scope".into(), "failed"),
            ("scope".into(), "restarting"),
            ("scope".into(), "failed"),
            ("scope".into(), "gave_up"),
        ]
    );
    assert_eq!(s.events[1].detail, "in 100ms");
}

#[test]
fn abort_ends_the_stream_and_stops_the_run_while_continue_only_ends_the_stream() {
    let (mut s, now) = supervisor(&[("a", OnFailure::Abort), ("c", OnFailure::Continue)]);
    let after = s.failed("c", "gone".into(), now, |_| unreachable!());
    assert!(after.end_stream && after.stop.is_none(), "{after:?}");
    assert!(s.slots["c"].state.is_done());
    let after = s.failed("a", "gone".into(), now, |_| unreachable!());
    assert!(after.end_stream);
    assert!(matches!(after.stop, Some(StopReason::Failure(r)) if r == "a: gone"));
    assert!(s.slots["a"].state.is_done());
}

#[test]
fn nothing_is_restarted_once_the_run_is_stopping() {
    let (mut s, now) = supervisor(&[("scope", OnFailure::Restart)]);
    let orders = s.begin_stop(StopReason::Requested("ctrl-c".into()));
    assert_eq!(orders.expect("first stop").stop, ["scope"]);
    let after = s.failed("scope", "boom".into(), now, |_| unreachable!());
    assert!(after.end_stream && after.stop.is_none(), "{after:?}");
    assert!(s.slots["scope"].state.is_done());
}

#[test]
fn a_failure_of_an_unknown_component_is_recorded_and_changes_nothing() {
    let (mut s, now) = supervisor(&[]);
    let after = s.failed("ghost", "?".into(), now, |_| unreachable!());
    assert!(!after.end_stream && after.stop.is_none());
    assert_eq!(events(&s), [("ghost".into(), "failed")]);
}

#[test]
fn a_vanished_actor_fails_at_the_second_tick_and_a_live_one_clears_suspicion() {
    let (mut s, _) = supervisor(&[("scope", OnFailure::Restart)]);
    assert!(s.vanished(Role::Instrument, |_| false).is_empty());
    assert!(s.vanished(Role::Instrument, |_| true).is_empty());
    assert!(s.vanished(Role::Instrument, |_| false).is_empty());
    let gone = s.vanished(Role::Instrument, |_| false);
    assert_eq!(
        gone,
        [(
            "scope".to_string(),
            "the actor stopped without a report (it panicked)".to_string()
        )]
    );
    // Sinks are observed on their own tick, by the same rule.
    assert!(s.vanished(Role::Sink, |_| true).is_empty());
}

#[test]
fn a_vanished_sink_is_done_and_its_failure_stops_the_run_as_failed() {
    let (mut s, now) = supervisor(&[("scope", OnFailure::Restart)]);
    assert!(s.vanished(Role::Sink, |_| false).is_empty());
    let gone = s.vanished(Role::Sink, |_| false);
    assert_eq!(gone.len(), 1);
    assert!(s.slots["store"].state.is_done());
    let (name, reason) = gone.into_iter().next().expect("one sink");
    let after = s.failed(&name, reason, now, |_| {
        unreachable!("sinks are not restarted")
    });
    assert!(!after.end_stream);
    let stop = after.stop.expect("a sink failure stops the run");
    assert!(s.begin_stop(stop).is_some());
    s.ended("scope");
    let outcome = s.try_finish().expect("every slot is done");
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(
        outcome.stop_reason.as_deref(),
        Some("sink store: the sink stopped without a report (it panicked)")
    );
    assert!(outcome.sinks["store"].error.is_some());
    assert!(outcome.sinks["store"].report.is_none());
}

#[test]
fn a_failure_during_a_requested_stop_makes_the_run_failed_but_not_the_reverse() {
    let (mut s, _) = supervisor(&[]);
    assert!(
        s.begin_stop(StopReason::Requested("ctrl-c".into()))
            .is_some()
    );
    assert!(s.begin_stop(StopReason::Failure("disk".into())).is_none());
    assert!(
        s.begin_stop(StopReason::Requested("again".into()))
            .is_none()
    );
    assert!(s.begin_stop(StopReason::PlanEnded).is_none());
    s.sink_finished("store", report());
    let outcome = s.try_finish().expect("done");
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(outcome.stop_reason.as_deref(), Some("disk"));
}

#[test]
fn stopping_cancels_pending_restarts_and_leaves_running_stages_to_end_by_themselves() {
    let (mut s, now) = supervisor(&[("a", OnFailure::Restart), ("b", OnFailure::Restart)]);
    s.add_stage("fft", policy(OnFailure::Restart, 2));
    s.add_stage("stats", policy(OnFailure::Restart, 2));
    s.running("fft", 0, now);
    s.running("stats", 0, now);
    let _ = s.failed("b", "x".into(), now, |_| 1);
    let _ = s.failed("stats", "x".into(), now, |_| 2);
    let orders = s.begin_stop(StopReason::PlanEnded).expect("first stop");
    assert_eq!(orders.stop, ["a"]);
    assert_eq!(orders.cancel, [1, 2]);
    assert_eq!(orders.end, ["b", "stats"]);
    assert!(matches!(s.slots["fft"].state, SlotState::Running));
    assert!(s.try_finish().is_none(), "a, fft and the sink still run");
    s.ended("a");
    s.ended("fft");
    s.sink_finished("store", report());
    let outcome = s.try_finish().expect("done");
    assert_eq!(outcome.status, RunStatus::Completed);
    assert_eq!(outcome.stop_reason, None);
    assert!(outcome.sinks["store"].report.is_some());
    assert!(s.try_finish().is_none(), "the outcome is handed out once");
}

#[test]
fn a_running_instrument_that_stops_beating_stalls_after_its_timeout() {
    let (mut s, now) = supervisor(&[("scope", OnFailure::Restart)]);
    assert!(s.stalled(now + 1000 * MS, |_| (0, false)).is_empty());
    assert!(
        s.stalled(now + 1500 * MS, |_| (0, true)).is_empty(),
        "waiting"
    );
    assert!(s.stalled(now + 3000 * MS, |_| (0, false)).is_empty());
    let stalled = s.stalled(now + 3500 * MS, |_| (0, false));
    assert_eq!(stalled.len(), 1);
    assert!(stalled[0].1.starts_with("stalled: no data"), "{stalled:?}");
    // One that is restarting is not watched.
    let _ = s.failed("scope", stalled[0].1.clone(), now, |_| 3);
    assert!(s.stalled(now + 9000 * MS, |_| (0, false)).is_empty());
}

#[test]
fn stragglers_are_named_in_role_order_unless_the_run_finished() {
    let (mut s, now) = supervisor(&[("scope", OnFailure::Restart)]);
    s.add_stage("fft", policy(OnFailure::Restart, 2));
    s.running("fft", 0, now);
    s.name_stragglers(Duration::from_secs(5));
    assert_eq!(
        events(&s),
        [
            ("scope".into(), "still_running"),
            ("fft".into(), "still_running"),
            ("store".into(), "still_running"),
        ]
    );
    s.ended("scope");
    s.ended("fft");
    s.sink_finished("store", report());
    assert!(s.try_finish().is_some());
    s.name_stragglers(Duration::from_secs(5));
    assert!(s.events.is_empty(), "the events went with the outcome");
}

#[test]
fn a_run_that_cannot_start_finishes_failed_at_once() {
    let mut s: Supervisor<u32> = Supervisor::default();
    s.add_instrument("scope", Supervision::default(), None, Instant::now());
    s.add_sink("store");
    s.failed_to_start("sink `store`: no space".into());
    let outcome = s.try_finish().expect("nothing runs");
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(outcome.events[0].component, "coordinator");
}

#[test]
fn roles_are_known_by_name() {
    let (mut s, _) = supervisor(&[("scope", OnFailure::Restart)]);
    s.add_stage("fft", Supervision::default());
    assert_eq!(s.role("scope"), Some(Role::Instrument));
    assert_eq!(s.role("fft"), Some(Role::Stage));
    assert_eq!(s.role("store"), Some(Role::Sink));
    assert_eq!(s.role("ghost"), None);
}
