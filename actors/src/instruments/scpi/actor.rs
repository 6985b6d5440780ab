//! The thin actix shell around the SCPI acquisition loop.

use actix::prelude::*;
use tokio::sync::watch;

use super::acquisition::ScpiAcquisition;
use super::config::ScpiInstrumentConfig;
use super::error::ScpiError;
use super::probe::ScpiProbe;
use super::report::ScpiReport;
use super::session::Session;
use crate::control::{ComponentExited, ExitOutcome, Stop, Terminate};
use crate::instruments::pauses::Pauses;
use crate::outputs::Outputs;

/// An SCPI instrument as an actor: polls its device every `poll_interval` and emits batches
/// (a plan sets and reads through its [`probe`](Self::probe), between polls, from its own
/// task), stops on [`Stop`] (emitting the
/// buffered rows and ending the stream), and reports [`ComponentExited`] to the coordinator.
///
/// A first connection that fails ends the actor with [`ExitOutcome::Failed`]; a connection
/// lost later is reopened with exponential backoff and the gap is recorded in the
/// [`report`](Self::report).
pub struct ScpiActor {
    name: String,
    acquisition: Option<ScpiAcquisition>,
    probe: ScpiProbe,
    stop: watch::Sender<bool>,
    coordinator: Recipient<ComponentExited>,
    report: ScpiReport,
    /// The running acquisition, to abandon on [`Terminate`].
    running: Option<SpawnHandle>,
}

impl ScpiActor {
    /// An actor named `name` for the device in `config`, emitting to `outputs` (continuing its
    /// stream from the next `seq`). Fails when the config does not pass its checks.
    pub fn new(
        name: String,
        config: ScpiInstrumentConfig,
        outputs: Outputs,
        coordinator: Recipient<ComponentExited>,
    ) -> Result<Self, ScpiError> {
        let session = Session::new(name.clone(), config)?;
        let report = ScpiReport::default();
        let acquisition = ScpiAcquisition::new(name.clone(), session, outputs, report.clone());
        Ok(Self {
            probe: acquisition.probe(),
            acquisition: Some(acquisition),
            name,
            stop: watch::channel(false).0,
            coordinator,
            report,
            running: None,
        })
    }

    /// The session report (identity, warnings, per-channel counters, gaps), for the manifest.
    pub fn report(&self) -> ScpiReport {
        self.report.clone()
    }

    /// A handle that sets and reads this instrument from the caller's own task, between the
    /// actor's polls.
    pub fn probe(&self) -> ScpiProbe {
        self.probe.clone()
    }

    /// Holds the instrument's polls while the plan is paused (its `pause_streams`); a plan's
    /// own requests are still served. Call before the actor starts; later calls do nothing.
    pub fn pause_on(&mut self, paused: watch::Receiver<Pauses>) {
        if let Some(acquisition) = &mut self.acquisition {
            acquisition.pause_on(paused);
        }
    }
}

impl Actor for ScpiActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(acquisition) = self.acquisition.take() else {
            return;
        };
        let stop = self.stop.subscribe();
        let handle = ctx.spawn(acquisition.run(stop).into_actor(self).map(|result, act, ctx| {
            let outcome = match result {
                Ok(_) => ExitOutcome::InstrumentFinished,
                Err(e) => {
                    tracing::error!(component_id = %act.name, error = %e, "The instrument could not start.");
                    ExitOutcome::Failed(e.to_string())
                }
            };
            act.coordinator.do_send(ComponentExited {
                component: act.name.clone(),
                outcome,
            });
            ctx.stop();
        }));
        self.running = Some(handle);
    }
}

impl Handler<Terminate> for ScpiActor {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Self::Context) {
        crate::instruments::abandon(&mut self.running, ctx);
    }
}

impl Handler<Stop> for ScpiActor {
    type Result = ();

    fn handle(&mut self, _: Stop, _: &mut Self::Context) {
        self.stop.send_replace(true);
    }
}
