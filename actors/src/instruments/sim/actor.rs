//! The thin actix shell around [`SimAcquisition`] and [`SimParams`].

use actix::prelude::*;
use tokio::sync::watch;

use super::acquisition::SimAcquisition;
use super::config::SignalConfig;
use super::params::{SimParamError, SimParams, SimReading};
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
    /// The signal as plans set it, and a generator to read it on request.
    params: SimParams,
    /// Hands each new signal to the running loop.
    signal: watch::Sender<SignalConfig>,
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
            params,
            signal,
            running: None,
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
        let reached = self.params.set(&msg.param, msg.value)?;
        self.signal.send_replace(self.params.signal().clone());
        Ok(reached)
    }
}

impl Handler<SimReadNow> for SimInstrumentActor {
    type Result = MessageResult<SimReadNow>;

    fn handle(&mut self, _: SimReadNow, _: &mut Self::Context) -> Self::Result {
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        MessageResult(self.params.read_at(now_ns))
    }
}
