//! The plain part of building a run: streams, their counters and the links between them.
//!
//! Everything here exists before any actor starts, so the progress display and the manifest
//! can read the counters from the first moment, and a restarted component finds its stream and
//! links where it left them.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use ensemble_actors::batch::{ChannelSpec, StreamId};
use ensemble_actors::instruments::pacing::rows_in;
use ensemble_actors::instruments::sim::SimGenerator;
use ensemble_actors::link::{LinkReceiver, LinkSender, link};
use ensemble_actors::outputs::Outputs;
use ensemble_actors::stats::{LinkStats, StreamStats};

use crate::config::{Experiment, InstrumentKind, Plan};

/// One stream of the run: who makes it, what it looks like, and where it goes.
pub struct StreamPlan {
    /// The stream's name (the producing component's name).
    pub name: StreamId,
    /// The producing component.
    pub component: String,
    /// The component's `type`, for reports.
    pub component_type: &'static str,
    /// The schema of its batches.
    pub schema: SchemaRef,
    /// Its channels.
    pub channels: Vec<ChannelSpec>,
    /// Nominal rate, if fixed.
    pub rate_hz: Option<f64>,
    /// Rows the plan asks for, if it fixes them.
    pub expected_rows: Option<u64>,
    /// Counters, shared with the producer.
    pub stats: Arc<StreamStats>,
    /// One link per consuming sink.
    pub links: Vec<LinkPlan>,
}

/// One link from a stream to a sink.
pub struct LinkPlan {
    /// The consuming sink.
    pub sink: String,
    /// Counters of the link.
    pub stats: Arc<LinkStats>,
    /// The producer's end.
    pub sender: LinkSender,
    /// The consumer's end, taken when the pump starts.
    pub receiver: Option<LinkReceiver>,
}

impl StreamPlan {
    /// The producer's view: its name, every link, and its counters.
    pub fn outputs(&self) -> Outputs {
        Outputs::new(
            self.name.clone(),
            self.links.iter().map(|l| l.sender.clone()).collect(),
            self.stats.clone(),
        )
    }
}

/// Plans every stream of `experiment` with its links (in instrument file order).
pub fn plan_streams(experiment: &Experiment) -> Vec<StreamPlan> {
    experiment
        .instruments
        .iter()
        .map(|instrument| {
            let (component_type, schema, channels, rate_hz) = match &instrument.kind {
                InstrumentKind::Sim(cfg) => {
                    let schema = SimGenerator::new(cfg, 0, 0).schema().clone();
                    let channels = cfg
                        .channels
                        .iter()
                        .map(|c| ChannelSpec::new(c, &cfg.unit))
                        .collect();
                    ("sim", schema, channels, Some(cfg.rate_hz))
                }
            };
            let expected_rows = match experiment.plan {
                Plan::Stream => rate_hz.map(|r| rows_in(experiment.duration, r)),
            };
            let links = experiment
                .sinks
                .iter()
                .filter(|s| s.inputs.contains(&instrument.name))
                .map(|sink| {
                    let stats = Arc::new(LinkStats::default());
                    let (sender, receiver) = link(sink.queue_batches, sink.delivery, stats.clone());
                    LinkPlan {
                        sink: sink.name.clone(),
                        stats,
                        sender,
                        receiver: Some(receiver),
                    }
                })
                .collect();
            StreamPlan {
                name: instrument.name.as_str().into(),
                component: instrument.name.clone(),
                component_type,
                schema,
                channels,
                rate_hz,
                expected_rows,
                stats: Arc::new(StreamStats::default()),
                links,
            }
        })
        .collect()
}

/// What the progress display and the manifest read of a stream while the run goes on.
#[derive(Clone)]
pub struct StreamView {
    /// The stream's name.
    pub name: StreamId,
    /// The producing component and its type.
    pub component: String,
    /// The producing component's `type`.
    pub component_type: &'static str,
    /// Its channels.
    pub channels: Vec<ChannelSpec>,
    /// Nominal rate, if fixed.
    pub rate_hz: Option<f64>,
    /// Rows the plan asks for, if fixed.
    pub expected_rows: Option<u64>,
    /// The stream's counters.
    pub stats: Arc<StreamStats>,
    /// Per consuming sink: its name and the link's counters.
    pub links: Vec<(String, Arc<LinkStats>)>,
}

impl StreamPlan {
    /// A read-only view for progress and reports.
    pub fn view(&self) -> StreamView {
        StreamView {
            name: self.name.clone(),
            component: self.component.clone(),
            component_type: self.component_type,
            channels: self.channels.clone(),
            rate_hz: self.rate_hz,
            expected_rows: self.expected_rows,
            stats: self.stats.clone(),
            links: self
                .links
                .iter()
                .map(|l| (l.sink.clone(), l.stats.clone()))
                .collect(),
        }
    }
}

impl StreamView {
    /// Rows dropped on all links of this stream.
    pub fn dropped_rows(&self) -> u64 {
        self.links.iter().map(|(_, l)| l.dropped_rows()).sum()
    }

    /// Batches dropped on all links of this stream.
    pub fn dropped_batches(&self) -> u64 {
        self.links.iter().map(|(_, l)| l.dropped_batches()).sum()
    }

    /// Deepest queue among this stream's links now.
    pub fn queue_depth(&self) -> usize {
        self.links.iter().map(|(_, l)| l.depth()).max().unwrap_or(0)
    }

    /// Deepest queue among this stream's links over the run.
    pub fn max_queue_depth(&self) -> usize {
        self.links
            .iter()
            .map(|(_, l)| l.max_depth())
            .max()
            .unwrap_or(0)
    }
}
