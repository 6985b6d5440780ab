//! The thin actix shell around [`SimAcquisition`].

use actix::prelude::*;
use tokio::sync::watch;

use super::acquisition::SimAcquisition;
use crate::control::{ComponentExited, ExitOutcome, Stop};

/// A simulated instrument as an actor: runs its acquisition loop, stops on [`Stop`], and reports
/// [`ComponentExited`] to the coordinator when its stream has ended.
pub struct SimInstrumentActor {
    name: String,
    acquisition: Option<SimAcquisition>,
    stop: watch::Sender<bool>,
    coordinator: Recipient<ComponentExited>,
}

impl SimInstrumentActor {
    /// An actor named `name` that will run `acquisition` once started.
    pub fn new(
        name: String,
        acquisition: SimAcquisition,
        coordinator: Recipient<ComponentExited>,
    ) -> Self {
        Self {
            name,
            acquisition: Some(acquisition),
            stop: watch::channel(false).0,
            coordinator,
        }
    }
}

impl Actor for SimInstrumentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(acquisition) = self.acquisition.take() else {
            return;
        };
        let stop = self.stop.subscribe();
        ctx.spawn(acquisition.run(stop).into_actor(self).map(|(), act, ctx| {
            act.coordinator.do_send(ComponentExited {
                component: act.name.clone(),
                outcome: ExitOutcome::InstrumentFinished,
            });
            ctx.stop();
        }));
    }
}

impl Handler<Stop> for SimInstrumentActor {
    type Result = ();

    fn handle(&mut self, _: Stop, _: &mut Self::Context) {
        self.stop.send_replace(true);
    }
}
