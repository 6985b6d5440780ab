//! Where stages run: each on an [`Arbiter`] of its own (a thread with its own event loop, so an
//! FFT never holds up the threads that acquire data), fed by its input link's pump, which
//! delivers to whichever actor runs the stage now.
//!
//! A restarted stage gets a new arbiter and takes over the same input link: the pump's
//! [`Consumer::Replaceable`] is pointed at the new actor, and the batch the old one never
//! answered is delivered again. Once no stage will read the link again (the stage ended for
//! good), the pump closes the link and what its producer still sends is counted as dropped.
//! The arbiters live until the run's outcome is sent.

use std::collections::BTreeMap;

use actix::prelude::*;
use ensemble_actors::batch::StreamEvent;
use ensemble_actors::link::{Consumer, run_pump};
use tokio::sync::watch;

use super::wiring::StreamPlan;
use crate::config::Experiment;

/// One stage's place to run.
struct StageHost {
    /// Tells the input link's pump which actor to deliver to (`None`: no stage will come).
    consumer: watch::Sender<Option<Recipient<StreamEvent>>>,
    /// The thread the stage runs on; replaced on a restart.
    arbiter: Option<Arbiter>,
}

/// Every stage's place to run, and the arbiters they ran on before a restart.
#[derive(Default)]
pub(super) struct StageHosts {
    /// By stage name.
    hosts: BTreeMap<String, StageHost>,
    /// Arbiters of failed stages, stopped with the others at the end of the run.
    retired: Vec<Arbiter>,
}

impl StageHosts {
    /// A host for every stage of `experiment`.
    pub(super) fn new(experiment: &Experiment) -> Self {
        let hosts = experiment
            .stages
            .iter()
            .map(|spec| {
                let host = StageHost {
                    consumer: watch::channel(None).0,
                    arbiter: None,
                };
                (spec.name.clone(), host)
            })
            .collect();
        Self {
            hosts,
            retired: Vec::new(),
        }
    }

    /// Starts the pump of every stage's input link (before any stage runs: the pump waits for
    /// the first actor).
    pub(super) fn start_pumps(&self, streams: &mut [StreamPlan]) {
        for link in streams.iter_mut().flat_map(|s| s.links.iter_mut()) {
            let Some(host) = self.hosts.get(&link.sink).filter(|_| link.to_stage) else {
                continue;
            };
            if let Some(rx) = link.receiver.take() {
                let consumer = Consumer::Replaceable(host.consumer.subscribe());
                tokio::spawn(run_pump(rx, consumer));
            }
        }
    }

    /// A new thread for stage `name`'s next actor; the one it ran on before is retired.
    pub(super) fn new_arbiter(&mut self, name: &str) -> ArbiterHandle {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        match self.hosts.get_mut(name) {
            Some(host) => {
                if let Some(old) = host.arbiter.replace(arbiter) {
                    self.retired.push(old);
                }
            }
            None => self.retired.push(arbiter),
        }
        handle
    }

    /// Stage `name` now runs at `actor`: its input link delivers there.
    pub(super) fn serve(&self, name: &str, actor: Recipient<StreamEvent>) {
        if let Some(host) = self.hosts.get(name) {
            host.consumer.send_replace(Some(actor));
        }
    }

    /// No stage will read `name`'s input link again: its pump closes it. Nothing happens if
    /// `name` is not a stage.
    pub(super) fn close_input(&self, name: &str) {
        if let Some(host) = self.hosts.get(name) {
            host.consumer.send_replace(None);
        }
    }

    /// Stops every stage's thread (at the end of the run; the stages have ended by then, or are
    /// abandoned with the run).
    pub(super) fn stop_arbiters(&mut self) {
        for arbiter in self
            .hosts
            .values_mut()
            .filter_map(|s| s.arbiter.take())
            .chain(self.retired.drain(..))
        {
            arbiter.stop();
        }
    }
}
