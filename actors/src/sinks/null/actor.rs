//! The thin actix shell around [`NullSink`].

use actix::prelude::*;

use crate::sinks::{SinkExit, SinkInputs};

use super::sink::NullSink;
use crate::batch::{StreamEvent, StreamId};
use crate::control::ComponentExited;

/// The null sink as an actor: counts batches, and reports to the coordinator with
/// [`ComponentExited`] once every input has ended.
pub struct NullSinkActor {
    sink: NullSink,
    /// Which inputs have ended.
    inputs: SinkInputs,
    exit: SinkExit,
}

impl NullSinkActor {
    /// A sink named `name` counting `inputs`.
    pub fn new(
        name: String,
        inputs: Vec<StreamId>,
        coordinator: Recipient<ComponentExited>,
    ) -> Self {
        Self {
            inputs: SinkInputs::new(inputs.clone()),
            sink: NullSink::new(inputs),
            exit: SinkExit::new(name, coordinator),
        }
    }
}

impl Actor for NullSinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.inputs.all_ended() {
            self.exit.finished(Ok(self.sink.report()));
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
                if self.inputs.end(&end.stream) {
                    self.exit.finished(Ok(self.sink.report()));
                    ctx.stop();
                }
            }
        }
    }
}
