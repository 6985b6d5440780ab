//! The thin actix shell around [`SimAcquisition`] and [`SimProbe`].

use actix::prelude::*;
use tokio::sync::watch;

use super::acquisition::SimAcquisition;
use super::params::{SimParamError, SimReading};
use super::probe::SimProbe;
use crate::control::{ComponentExited, ExitOutcome, Stop, Terminate};

/// Sent by a plan to a simulated instrument: set `param` (`offset`, `amplitude` or
/// `frequency_hz`) of its signal to `value`. Replies with the value reached.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<f64, SimParamError>")]
pub struct SimSet {
    /// The parameter name.
    pub param: String,
    /// The target value.
    pub value: f64,
}

/// Sent by a plan to a simulated instrument: read every channel at the current time. The
/// reading is not added to the instrument's own stream.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "SimReading")]
pub struct SimReadNow;

/// A simulated instrument as an actor: runs its acquisition loop, stops on [`Stop`] (abandons
/// it on [`Terminate`]), serves
/// [`SimSet`] and [`SimReadNow`] from plans, and reports [`ComponentExited`] to the coordinator
/// when its stream has ended.
pub struct SimInstrumentActor {
    name: String,
    acquisition: Option<SimAcquisition>,
    stop: watch::Sender<bool>,
    coordinator: Recipient<ComponentExited>,
    /// The signal as plans set it, shared with plans that drive the instrument directly.
    probe: SimProbe,
    /// The running acquisition, to abandon on [`Terminate`].
    running: Option<SpawnHandle>,
}

impl SimInstrumentActor {
    /// An actor named `name` that will run `acquisition` once started.
    pub fn new(
        name: String,
        mut acquisition: SimAcquisition,
        coordinator: Recipient<ComponentExited>,
    ) -> Self {
        let (params, signal) = acquisition.attach_params();
        Self {
            name,
            acquisition: Some(acquisition),
            stop: watch::channel(false).0,
            coordinator,
            probe: SimProbe::new(params, signal),
            running: None,
        }
    }

    /// A handle that sets and reads this instrument's signal without a message round trip
    /// (what [`SimSet`] and [`SimReadNow`] do, from the caller's own thread).
    pub fn probe(&self) -> SimProbe {
        self.probe.clone()
    }
}

impl Actor for SimInstrumentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(acquisition) = self.acquisition.take() else {
            return;
        };
        let stop = self.stop.subscribe();
        let handle = ctx.spawn(
            acquisition
                .run(stop)
                .into_actor(self)
                .map(|result, act, ctx| {
                    let outcome = match result {
                        Ok(()) => ExitOutcome::InstrumentFinished,
                        Err(fault) => ExitOutcome::Failed(fault.to_string()),
                    };
                    act.coordinator.do_send(ComponentExited {
                        component: act.name.clone(),
                        outcome,
                    });
                    ctx.stop();
                }),
        );
        self.running = Some(handle);
    }
}

impl Handler<Terminate> for SimInstrumentActor {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Self::Context) {
        crate::instruments::abandon(&mut self.running, ctx);
    }
}

impl Handler<Stop> for SimInstrumentActor {
    type Result = ();

    fn handle(&mut self, _: Stop, _: &mut Self::Context) {
        self.stop.send_replace(true);
    }
}

impl Handler<SimSet> for SimInstrumentActor {
    type Result = Result<f64, SimParamError>;

    fn handle(&mut self, msg: SimSet, _: &mut Self::Context) -> Self::Result {
        self.probe.set(&msg.param, msg.value)
    }
}

impl Handler<SimReadNow> for SimInstrumentActor {
    type Result = MessageResult<SimReadNow>;

    fn handle(&mut self, _: SimReadNow, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.probe.read_now())
    }
}
