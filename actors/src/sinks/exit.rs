//! How a sink tells the coordinator that it ended: a failure at most once, then its report.

use actix::Recipient;

use crate::control::{ComponentExited, ExitOutcome, SinkReport};

/// A sink's line to the coordinator, shared by every sink shell.
pub struct SinkExit {
    component: String,
    coordinator: Recipient<ComponentExited>,
    /// Whether a failure was already reported (one failure report per sink).
    failed: bool,
}

impl SinkExit {
    /// The line of sink `component` to `coordinator`.
    pub fn new(component: String, coordinator: Recipient<ComponentExited>) -> Self {
        Self {
            component,
            coordinator,
            failed: false,
        }
    }

    /// Reports a failure, unless one was reported already.
    pub fn fail_once(&mut self, message: String) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.send(ExitOutcome::Failed(message));
    }

    /// Reports how the sink finished: what it wrote, or why it could not finish.
    pub fn finished(&self, result: Result<SinkReport, String>) {
        self.send(match result {
            Ok(report) => ExitOutcome::SinkFinished(report),
            Err(message) => ExitOutcome::Failed(message),
        });
    }

    fn send(&self, outcome: ExitOutcome) {
        self.coordinator.do_send(ComponentExited {
            component: self.component.clone(),
            outcome,
        });
    }
}
