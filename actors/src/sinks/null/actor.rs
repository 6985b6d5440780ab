//! The thin actix shell around [`NullSink`].

use std::collections::HashSet;

use actix::prelude::*;

use super::sink::NullSink;
use crate::batch::{StreamEvent, StreamId};
use crate::control::{ComponentExited, ExitOutcome, Flush};

/// The null sink as an actor: counts batches, and reports to the coordinator with
/// [`ComponentExited`] once every input has ended.
pub struct NullSinkActor {
    name: String,
    sink: NullSink,
    /// Inputs whose end marker has not arrived yet.
    open_inputs: HashSet<StreamId>,
    coordinator: Recipient<ComponentExited>,
}

impl NullSinkActor {
    /// A sink named `name` counting `inputs`.
    pub fn new(
        name: String,
        inputs: Vec<StreamId>,
        coordinator: Recipient<ComponentExited>,
    ) -> Self {
        Self {
            name,
            open_inputs: inputs.iter().cloned().collect(),
            sink: NullSink::new(inputs),
            coordinator,
        }
    }
}

impl Actor for NullSinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.open_inputs.is_empty() {
            self.coordinator.do_send(ComponentExited {
                component: self.name.clone(),
                outcome: ExitOutcome::SinkFinished(self.sink.report()),
            });
            ctx.stop();
        }
    }
}

impl Handler<StreamEvent> for NullSinkActor {
    type Result = ();

    fn handle(&mut self, event: StreamEvent, ctx: &mut Self::Context) {
        match event {
            StreamEvent::Data(batch) => self.sink.write(&batch),
            StreamEvent::End(end) => {
                if self.open_inputs.remove(&end.stream) && self.open_inputs.is_empty() {
                    self.coordinator.do_send(ComponentExited {
                        component: self.name.clone(),
                        outcome: ExitOutcome::SinkFinished(self.sink.report()),
                    });
                    ctx.stop();
                }
            }
        }
    }
}

impl Handler<Flush> for NullSinkActor {
    type Result = Result<(), String>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        Ok(())
    }
}
