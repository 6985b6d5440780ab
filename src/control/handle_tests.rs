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
