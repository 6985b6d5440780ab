//! The mailbox hop and batch building, with criterion.
//!
//! `cargo bench --bench pipeline`:
//! - `mailbox_hop/send_same_arbiter`, `mailbox_hop/send_other_arbiter`: one batch handed to a
//!   (null) sink actor with `send().await`, reply included, from the same or another thread;
//! - `mailbox_hop/link_pump_actor`: one batch from a producer's `Outputs::emit` through its
//!   link and pump into the sink actor (per batch, over runs of 1,000 batches);
//! - `batch_building/...`: the simulator's generator making one 8,192-row batch (the
//!   instrument's side of the hot path), in rows per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_actors::batch::{DataBatch, StreamEvent};
use ensemble_actors::control::{ComponentExited, ExitOutcome};
use ensemble_actors::instruments::sim::{SimGenerator, SimInstrumentConfig};
use ensemble_actors::link::{Delivery, link, run_pump};
use ensemble_actors::outputs::Outputs;
use ensemble_actors::sinks::null::NullSinkActor;
use ensemble_actors::stats::{LinkStats, StreamStats};
use tokio::sync::oneshot;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn generator(channels: usize, noise: f64) -> SimGenerator {
    let names: Vec<String> = (0..channels).map(|c| format!("\"ch{c}\"")).collect();
    let config: SimInstrumentConfig = toml::from_str(&format!(
        "rate_hz = 100000\nchannels = [{}]\nsignal = {{ shape = \"sine\", frequency_hz = 50, noise = {noise} }}",
        names.join(", ")
    ))
    .expect("valid sim config");
    SimGenerator::new(&config, 0, 0)
}

/// Forwards the first `ComponentExited` to a oneshot.
struct Exited(Option<oneshot::Sender<ExitOutcome>>);

impl Actor for Exited {
    type Context = Context<Self>;
}

impl Handler<ComponentExited> for Exited {
    type Result = ();
    fn handle(&mut self, msg: ComponentExited, _: &mut Self::Context) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(msg.outcome);
        }
    }
}

fn system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn mailbox_hop(c: &mut Criterion) {
    let batch = generator(4, 0.0).generate(1000);
    let mut group = c.benchmark_group("mailbox_hop");
    group.throughput(Throughput::Elements(1));
    for other in [false, true] {
        let name = if other {
            "send_other_arbiter"
        } else {
            "send_same_arbiter"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let batch = batch.clone();
                system().block_on(async move {
                    let (tx, _rx) = oneshot::channel();
                    let exited = Exited(Some(tx)).start().recipient();
                    let make = move || NullSinkActor::new("sink".into(), vec!["s".into()], exited);
                    let sink = if other {
                        let arbiter = Arbiter::new();
                        NullSinkActor::start_in_arbiter(&arbiter.handle(), move |_| make())
                    } else {
                        make().start()
                    };
                    let event = StreamEvent::Data(DataBatch::new("s".into(), 0, batch));
                    let started = Instant::now();
                    for _ in 0..iters {
                        sink.send(event.clone()).await.expect("sink alive");
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.bench_function("link_pump_actor", |b| {
        b.iter_custom(|iters| {
            let batch = batch.clone();
            system().block_on(async move {
                let (tx, rx) = oneshot::channel();
                let exited = Exited(Some(tx)).start().recipient();
                let sink = NullSinkActor::new("sink".into(), vec!["s".into()], exited).start();
                let (sender, receiver) =
                    link(16, Delivery::Lossless, Arc::new(LinkStats::default()));
                tokio::spawn(run_pump(receiver, sink.recipient()));
                let outputs =
                    Outputs::new("s".into(), vec![sender], Arc::new(StreamStats::default()));
                let started = Instant::now();
                for i in 0..iters {
                    outputs.emit(i * 1000, batch.clone()).await;
                }
                outputs.end().await;
                let outcome = rx.await.expect("sink reports");
                let elapsed = started.elapsed();
                match outcome {
                    ExitOutcome::SinkFinished(report) => {
                        assert_eq!(report.streams[0].rows, iters * 1000);
                    }
                    other => panic!("sink failed: {other:?}"),
                }
                elapsed
            })
        });
    });
    group.finish();
}

fn batch_building(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_building");
    group.throughput(Throughput::Elements(8192));
    group.measurement_time(Duration::from_secs(5));
    for (channels, noise) in [(1, 0.0), (4, 0.0), (4, 0.01)] {
        let name = format!("generate_8192_rows/{channels}ch/noise={noise}");
        group.bench_function(name, |b| {
            b.iter_batched(
                || generator(channels, noise),
                |mut g| g.generate(8192),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotter needs system fonts, which a minimal machine lacks.
    config = Criterion::default().without_plots();
    targets = mailbox_hop, batch_building
}
criterion_main!(benches);
