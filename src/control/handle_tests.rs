//! Unit tests of [`RunControl`](super::RunControl).

use super::*;

#[test]
fn requests_are_refused_with_a_reason_when_they_cannot_apply() {
    let c = RunControl::new();
    assert_eq!(c.pause(false, "t"), Err(ControlError::NoPlan));
    c.begin_plan(Some(3));
    assert_eq!(c.resume("t"), Err(ControlError::NotPaused));
    c.suspend(0, "suspender 0", "cryo.temp > 310 (311)");
    assert!(matches!(c.resume("t"), Err(ControlError::Suspended(_))));
    assert_eq!(c.state().phase, Phase::Suspended);
    c.stop("t").expect("stop");
    assert!(matches!(c.pause(true, "t"), Err(ControlError::Stopping(_))));
    c.finish();
    assert_eq!(c.stop("t"), Err(ControlError::Finished));
    assert!(c.state().interruptions[0].ended_by_stop);
}

#[tokio::test]
async fn a_pause_takes_effect_at_the_gate_and_holds_until_resumed() {
    let c = RunControl::new();
    c.begin_plan(Some(10));
    assert!(!c.needs_attention());
    assert_eq!(c.gate(0).await, Gate::Go { resumed: false });
    c.pause(false, "socket").expect("pause");
    assert!(c.needs_attention());
    let gate = tokio::spawn({
        let c = c.clone();
        async move { c.gate(4).await }
    });
    while c.state().phase != Phase::Paused {
        tokio::task::yield_now().await;
    }
    assert!(!gate.is_finished());
    let state = c.resume("http").expect("resume");
    assert_eq!(state.phase, Phase::Running);
    assert_eq!(gate.await.expect("gate task"), Gate::Go { resumed: true });
    let log = c.interruptions();
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].point, log[0].by.as_str()), (4, "socket"));
    assert_eq!(log[0].resumed_by.as_deref(), Some("http"));
    assert!(log[0].seconds.is_some_and(|s| s >= 0.0));
    assert!(!c.needs_attention());
}

#[tokio::test]
async fn a_stop_while_paused_ends_the_plan_at_once() {
    let c = RunControl::new();
    c.begin_plan(None);
    c.pause(true, "socket").expect("pause");
    let gate = tokio::spawn({
        let c = c.clone();
        async move { c.gate(0).await }
    });
    while c.state().phase != Phase::Paused {
        tokio::task::yield_now().await;
    }
    c.stop("socket").expect("stop");
    assert_eq!(gate.await.expect("gate task"), Gate::Stop);
    assert_eq!(c.stop_requested().await, "socket");
}

#[tokio::test]
async fn a_pause_now_or_a_suspension_interrupts_the_point_in_progress() {
    let c = RunControl::new();
    c.begin_plan(Some(5));
    c.pause(false, "t").expect("pause");
    let deferred = tokio::time::timeout(std::time::Duration::from_millis(20), c.interrupted());
    assert!(
        deferred.await.is_err(),
        "a deferred pause lets the point finish"
    );
    c.pause(true, "t").expect("upgrade to now");
    c.interrupted().await;
    c.resume("t").expect("resume");
    c.suspend(1, "suspender 1", "why");
    c.interrupted().await;
    c.abandoned(2);
    c.clear_suspension(1, "cleared");
    let log = c.interruptions();
    assert_eq!(log.last().and_then(|e| e.abandoned_point), Some(2));
    assert_eq!(
        log.last().and_then(|e| e.resumed_by.clone()).as_deref(),
        Some("cleared")
    );
}

#[test]
fn an_unreachable_instrument_holds_the_plan_as_a_reconnect_until_released() {
    let c = RunControl::new();
    c.begin_plan(Some(4));
    c.hold_for_instrument("psu", "connection refused");
    c.hold_for_instrument("psu", "still refused");
    c.suspend(0, "plan.suspend[0]", "cryo.temp > 310 (311)");
    // A suspender's cause is shown first; resume cannot lift either hold.
    let state = c.state();
    assert_eq!(state.phase, Phase::Suspended);
    assert_eq!(state.cause.as_deref(), Some("cryo.temp > 310 (311)"));
    assert!(matches!(c.resume("t"), Err(ControlError::Suspended(_))));
    c.clear_suspension(0, "cleared");
    assert_eq!(c.state().cause.as_deref(), Some("psu: connection refused"));
    // Releasing another instrument, or a suspender that never tripped, changes nothing.
    c.release_instrument("dmm", "reconnected");
    c.clear_suspension(1, "cleared");
    assert!(c.needs_attention());
    c.release_instrument("psu", "reconnected; restored voltage = 1.5");
    assert!(!c.needs_attention());
    assert_eq!(c.state().phase, Phase::Running);
    let log = c.interruptions();
    let kinds: Vec<_> = log.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [InterruptionKind::Reconnect, InterruptionKind::Suspend],
        "one entry per hold, not per report"
    );
    assert_eq!(log[0].by, "psu");
    assert_eq!(
        log[0].resumed_by.as_deref(),
        Some("reconnected; restored voltage = 1.5")
    );
}

#[tokio::test]
async fn the_time_paused_adds_up_over_pauses_in_what_the_streams_follow() {
    let c = RunControl::new();
    let pauses = c.pauses();
    c.begin_stream();
    for round in 0..2 {
        c.pause(false, "t").expect("pause");
        let gate = tokio::spawn({
            let c = c.clone();
            async move { c.gate(round).await }
        });
        while c.state().phase != Phase::Paused {
            tokio::task::yield_now().await;
        }
        assert!(pauses.borrow().paused, "round {round}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c.resume("t").expect("resume");
        assert_eq!(gate.await.expect("gate task"), Gate::Go { resumed: true });
        assert!(!pauses.borrow().paused, "round {round}");
    }
    let paused_for = pauses.borrow().paused_for;
    assert!(
        paused_for >= std::time::Duration::from_millis(40),
        "{paused_for:?}"
    );
    // A pause that never took effect adds nothing.
    c.pause(false, "t").expect("pause");
    c.resume("t").expect("cancel");
    assert_eq!(pauses.borrow().paused_for, paused_for);
}
