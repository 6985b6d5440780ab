//! The plain part of building a run: streams, their counters and the links between them.
//!
//! Everything here exists before any actor starts, so the progress display and the manifest
//! can read the counters from the first moment, and a restarted component finds its stream and
//! links where it left them.

use std::sync::{Arc, Mutex};

use arrow_schema::SchemaRef;
use ensemble_actors::batch::{
    ChannelSpec, SEQ_COLUMN, StreamId, TIMESTAMP_COLUMN, field_unit, schema_rate_hz,
};
use ensemble_actors::budget::MemoryBudget;
use ensemble_actors::instruments::pacing::rows_in;
use ensemble_actors::instruments::scpi::ScpiReport;
use ensemble_actors::link::{Delivery, LinkReceiver, LinkSender, link};
use ensemble_actors::outputs::{BudgetRole, Outputs};
use ensemble_actors::stages::StageError;
use ensemble_actors::stats::{LinkStats, StreamStats};
use ensemble_actors::tap::Tap;

use crate::config::{Experiment, Plan, StageSpec};
use crate::plan::{PRIMARY_STREAM, PrimaryLayout, SUSPEND_CONSUMER};

/// One stream of the run: who makes it, what it looks like, and where it goes.
pub struct StreamPlan {
    /// The stream's name (the producing component's name).
    pub name: StreamId,
    /// The producing component.
    pub component: String,
    /// The component's `type`, for reports.
    pub component_type: &'static str,
    /// How the stream draws on the memory budget: instruments and the plan acquire
    /// (sources); stages derive from what others acquired.
    pub budget_role: BudgetRole,
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
    /// One link per consumer: sinks, then the stages that read the stream.
    pub links: Vec<LinkPlan>,
    /// The producer's own report for the manifest (SCPI session, plan), once it has one.
    pub report: ReportSlot,
    /// The run's memory budget (set by [`plan_streams`]); how the stream draws on it follows
    /// from its producer (see `budget_role`).
    pub memory: Option<Arc<MemoryBudget>>,
    /// A viewer's ring of the newest batches (set by [`attach_taps`] when the run is served).
    pub tap: Option<Arc<Tap>>,
}

/// Gives every stream a [`Tap`] with an equal share of `total_bytes`, for the live view.
pub fn attach_taps(streams: &mut [StreamPlan], total_bytes: u64) {
    let share = total_bytes / streams.len().max(1) as u64;
    for stream in streams {
        stream.tap = Some(Arc::new(Tap::new(share, TAP_BATCHES)));
    }
}

/// Most batches a stream's tap holds (its ring is allocated once at this size).
const TAP_BATCHES: usize = 4096;

/// Where a producer's own report lands, for the manifest's `instrument_report`: an SCPI
/// instrument's live session report, or a plan's final report.
#[derive(Clone, Default)]
pub struct ReportSlot(Arc<Mutex<Option<ReportSource>>>);

#[derive(Clone)]
enum ReportSource {
    Scpi(ScpiReport),
    Value(serde_json::Value),
}

impl ReportSlot {
    /// Follows an SCPI instrument's session report (replacing any earlier one: a restarted
    /// instrument reports its latest session).
    pub fn set_scpi(&self, report: ScpiReport) {
        *self.lock() = Some(ReportSource::Scpi(report));
    }

    /// Sets a fixed report.
    pub fn set_value(&self, value: serde_json::Value) {
        *self.lock() = Some(ReportSource::Value(value));
    }

    /// The report as it stands, as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        match self.lock().clone()? {
            ReportSource::Scpi(r) => serde_json::to_value(r.snapshot()).ok(),
            ReportSource::Value(v) => Some(v),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ReportSource>> {
        // Replaced whole; a panic elsewhere cannot leave it half written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One link from a stream to a consumer (a sink or a stage).
pub struct LinkPlan {
    /// The consumer's name (a sink's, or a stage's when `to_stage`).
    pub sink: String,
    /// Whether the consumer is a stage (or the plan's suspender watcher): a stage's link is
    /// pumped to a replaceable consumer, which survives a restart of the stage, and it is not
    /// a sink in the manifest.
    pub to_stage: bool,
    /// Counters of the link.
    pub stats: Arc<LinkStats>,
    /// The producer's end.
    pub sender: LinkSender,
    /// The consumer's end, taken when the pump starts.
    pub receiver: Option<LinkReceiver>,
}

impl LinkPlan {
    /// A new link of `capacity` batches to `consumer` (a stage when `to_stage`).
    fn new(consumer: &str, to_stage: bool, capacity: usize, delivery: Delivery) -> Self {
        let stats = Arc::new(LinkStats::default());
        let (sender, receiver) = link(capacity, delivery, stats.clone());
        Self {
            sink: consumer.to_string(),
            to_stage,
            stats,
            sender,
            receiver: Some(receiver),
        }
    }
}

impl StreamPlan {
    /// The producer's view: its name, every link, and its counters.
    pub fn outputs(&self) -> Outputs {
        let outputs = Outputs::new(
            self.name.clone(),
            self.links.iter().map(|l| l.sender.clone()).collect(),
            self.stats.clone(),
        );
        let outputs = match &self.tap {
            Some(tap) => outputs.with_tap(tap.clone()),
            None => outputs,
        };
        match &self.memory {
            Some(budget) => outputs.with_budget(budget.clone(), self.budget_role),
            None => outputs,
        }
    }
}

/// A stage's stream could not be planned: the stream it reads is not planned (not expected
/// after compiling, which checks every input).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("stage `{stage}`: {source}")]
pub struct WiringError {
    /// The stage.
    pub stage: String,
    /// What did not fit.
    pub source: StageError,
}

/// Plans every stream of `experiment` with its links (in instrument file order), then the
/// `primary` stream of a count, scan or grid plan, then the stages' streams in topological
/// order (each with the output schema the compiler resolved: no stage is built here).
///
/// Every stream draws on `budget`: instruments and the plan as sources, stages as derived data.
pub fn plan_streams(
    experiment: &Experiment,
    budget: &Arc<MemoryBudget>,
) -> Result<Vec<StreamPlan>, WiringError> {
    let mut streams = instrument_streams(experiment);
    if let Plan::Points(plan) = &experiment.plan {
        let layout = PrimaryLayout::new(plan, &experiment.instruments);
        streams.push(StreamPlan {
            name: PRIMARY_STREAM.into(),
            component: PRIMARY_STREAM.to_string(),
            component_type: "plan",
            budget_role: BudgetRole::Source,
            schema: layout.schema,
            channels: layout.channels,
            rate_hz: None,
            expected_rows: plan.total_points(),
            stats: Arc::new(StreamStats::default()),
            links: sink_links(experiment, PRIMARY_STREAM),
            report: ReportSlot::default(),
            memory: None,
            tap: None,
        });
    }
    if let Plan::Points(plan) = &experiment.plan {
        // Suspenders read the streams they name through a link of their own.
        let watched: std::collections::BTreeSet<String> = plan
            .suspenders
            .iter()
            .flat_map(|s| s.channels())
            .map(|c| c.stream)
            .collect();
        for stream in streams.iter_mut().filter(|s| watched.contains(&*s.name)) {
            stream.links.push(LinkPlan::new(
                SUSPEND_CONSUMER,
                true,
                crate::config::DEFAULT_QUEUE_BATCHES,
                Delivery::Lossless,
            ));
        }
    }
    for stage in &experiment.stages {
        let plan = plan_stage(stage, &mut streams, sink_links(experiment, &stage.name))?;
        streams.push(plan);
    }
    for stream in &mut streams {
        stream.memory = Some(budget.clone());
    }
    Ok(streams)
}

/// Plans a stage's stream and adds the link into the stage to its upstream stream. Stage input
/// links are lossless with the default capacity: a stage that falls behind slows its producer,
/// never drops.
fn plan_stage(
    stage: &StageSpec,
    streams: &mut [StreamPlan],
    links: Vec<LinkPlan>,
) -> Result<StreamPlan, WiringError> {
    let Some(upstream) = streams
        .iter_mut()
        .find(|s| *s.name == *stage.selection.stream)
    else {
        return Err(WiringError {
            stage: stage.name.clone(),
            source: StageError::NoInputs,
        });
    };
    let schema = stage.schema.clone();
    upstream.links.push(LinkPlan::new(
        &stage.name,
        true,
        crate::config::DEFAULT_QUEUE_BATCHES,
        Delivery::Lossless,
    ));
    let expected_rows = upstream
        .expected_rows
        .and_then(|n| stage.kind.expected_rows(&stage.input, n));
    let channels = schema
        .fields()
        .iter()
        .filter(|f| f.name() != TIMESTAMP_COLUMN && f.name() != SEQ_COLUMN)
        .map(|f| ChannelSpec::new(f.name(), field_unit(f).unwrap_or_default()))
        .collect();
    Ok(StreamPlan {
        name: stage.name.as_str().into(),
        component: stage.name.clone(),
        component_type: stage.kind.type_name(),
        budget_role: BudgetRole::Derived,
        rate_hz: schema_rate_hz(&schema),
        schema,
        channels,
        expected_rows,
        stats: Arc::new(StreamStats::default()),
        links,
        report: ReportSlot::default(),
        memory: None,
        tap: None,
    })
}

/// One link per sink that reads stream `name`, with that sink's capacity and delivery.
fn sink_links(experiment: &Experiment, name: &str) -> Vec<LinkPlan> {
    experiment
        .sinks
        .iter()
        .filter(|s| s.inputs.iter().any(|i| i == name))
        .map(|sink| LinkPlan::new(&sink.name, false, sink.queue_batches, sink.delivery))
        .collect()
}

fn instrument_streams(experiment: &Experiment) -> Vec<StreamPlan> {
    experiment
        .instruments
        .iter()
        .map(|instrument| {
            let rate_hz = instrument.kind.rate_hz();
            let expected_rows = match experiment.plan {
                Plan::Stream => rate_hz.map(|r| rows_in(experiment.duration, r)),
                // Free-running until the plan ends.
                Plan::Points(_) => None,
            };
            let links = sink_links(experiment, &instrument.name);
            StreamPlan {
                name: instrument.name.as_str().into(),
                component: instrument.name.clone(),
                component_type: instrument.kind.type_name(),
                budget_role: BudgetRole::Source,
                schema: instrument.kind.schema(),
                channels: instrument.kind.channels(),
                rate_hz,
                expected_rows,
                stats: Arc::new(StreamStats::default()),
                links,
                report: ReportSlot::default(),
                memory: None,
                tap: None,
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
    /// Per stage reading the stream: its name and the link's counters.
    pub stage_links: Vec<(String, Arc<LinkStats>)>,
    /// The producer's own report (SCPI session, plan), for the manifest.
    pub report: ReportSlot,
    /// The stream's tap, when the run is served live.
    pub tap: Option<Arc<Tap>>,
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
                .filter(|l| !l.to_stage)
                .map(|l| (l.sink.clone(), l.stats.clone()))
                .collect(),
            stage_links: self
                .links
                .iter()
                .filter(|l| l.to_stage)
                .map(|l| (l.sink.clone(), l.stats.clone()))
                .collect(),
            report: self.report.clone(),
            tap: self.tap.clone(),
        }
    }
}

impl StreamView {
    /// Every link of this stream: to sinks, then to stages.
    fn all_links(&self) -> impl Iterator<Item = &Arc<LinkStats>> {
        self.links.iter().chain(&self.stage_links).map(|(_, l)| l)
    }

    /// Rows dropped on all links of this stream.
    pub fn dropped_rows(&self) -> u64 {
        self.all_links().map(|l| l.dropped_rows()).sum()
    }

    /// Batches dropped on all links of this stream.
    pub fn dropped_batches(&self) -> u64 {
        self.all_links().map(|l| l.dropped_batches()).sum()
    }

    /// Deepest queue among this stream's links now.
    pub fn queue_depth(&self) -> usize {
        self.all_links().map(|l| l.depth()).max().unwrap_or(0)
    }

    /// Deepest queue among this stream's links over the run.
    pub fn max_queue_depth(&self) -> usize {
        self.all_links().map(|l| l.max_depth()).max().unwrap_or(0)
    }
}
