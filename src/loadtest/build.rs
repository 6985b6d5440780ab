//! A load test spec → a compiled [`Experiment`]: instruments `inst-00000`, `inst-00001`, ... and
//! one sink (`sink`) that takes them all.

use std::path::PathBuf;
use std::time::Duration;

use ensemble_actors::instruments::sim::{
    Phase, Shape, SignalConfig, SimFault, SimFaultKind, SimInstrumentConfig,
};
use ensemble_actors::sinks::null::NullSinkConfig;
use ensemble_actors::sinks::parquet::ParquetSinkConfig;

use super::spec::{LoadSink, LoadtestSpec};
use crate::config::{
    DEFAULT_MAX_MEMORY_MB, DEFAULT_SIM_STALL_TIMEOUT, Experiment, InstrumentKind, InstrumentSpec,
    OnFailure, Plan, SinkKind, SinkSpec, Supervision,
};

/// Name of the one sink of a load test.
pub const SINK_NAME: &str = "sink";

/// Name of instrument `index` (five digits, so names sort in order).
pub fn instrument_name(index: usize) -> String {
    format!("inst-{index:05}")
}

/// The experiment a load test runs. `spec` must have passed [`LoadtestSpec::check`].
pub fn experiment(spec: &LoadtestSpec) -> Experiment {
    let mut instruments = Vec::with_capacity(spec.instruments());
    let mut faults = 0usize;
    for group in &spec.groups {
        let channels: Vec<String> = (0..group.channels).map(|c| format!("ch{c}")).collect();
        for _ in 0..group.count {
            let index = instruments.len();
            let fail_after = fault_time(spec, index);
            faults += usize::from(fail_after.is_some());
            instruments.push(InstrumentSpec {
                name: instrument_name(index),
                kind: InstrumentKind::Sim(SimInstrumentConfig {
                    rate_hz: group.rate_hz,
                    channels: channels.clone(),
                    unit: "V".to_string(),
                    seed: spec.seed.wrapping_add(index as u64),
                    pace: spec.pace,
                    signal: SignalConfig {
                        shape: Shape::Sine,
                        frequency_hz: 1.0 + (index % 50) as f64,
                        amplitude: 1.0,
                        offset: 0.0,
                        noise: 0.01,
                        phase: Phase::All(0.0),
                    },
                    batch_interval: spec.batch_interval,
                    max_batch_rows: 8192,
                    device_buffer: Duration::from_secs(10),
                    // Panics once, that long after the start; the restart catches up.
                    fault: fail_after.map(|after| SimFault {
                        kind: SimFaultKind::Panic,
                        after_rows: (after.as_secs_f64() * group.rate_hz) as u64,
                        times: Some(1),
                    }),
                }),
                supervision: Supervision {
                    on_failure: OnFailure::Restart,
                    max_restarts: 5,
                    restart_window: Duration::from_secs(60),
                    restart_backoff: Duration::from_millis(100),
                },
                stall_timeout: Some(DEFAULT_SIM_STALL_TIMEOUT.max(spec.batch_interval * 4)),
            });
        }
    }
    let kind = match spec.sink {
        LoadSink::Parquet => SinkKind::Parquet(ParquetSinkConfig {
            compression: spec.compression,
            zstd_level: spec.zstd_level,
            row_group_rows: spec.row_group_rows,
            flush_interval: Some(spec.flush_interval),
            writer_threads: spec.writer_threads,
            ..ParquetSinkConfig::default()
        }),
        LoadSink::Null => SinkKind::Null(NullSinkConfig::default()),
    };
    let sink = SinkSpec {
        name: SINK_NAME.to_string(),
        inputs: instruments.iter().map(|i| i.name.clone()).collect(),
        delivery: spec.delivery,
        queue_batches: spec.queue_batches,
        kind,
        supervision: Supervision {
            on_failure: OnFailure::Abort,
            ..Supervision::default()
        },
    };
    let source_text = toml::to_string(&LoadtestTable { loadtest: spec })
        .unwrap_or_else(|e| format!("# the spec could not be rendered: {e}\n"));
    Experiment {
        thumbnails: false,
        pause_streams: false,
        name: "loadtest".to_string(),
        description: Some(format!(
            "ensemble loadtest: {} simulated instruments ({faults} with a fault) into one {} sink",
            spec.instruments(),
            match spec.sink {
                LoadSink::Parquet => "parquet",
                LoadSink::Null => "null",
            }
        )),
        output: spec.output.clone(),
        metadata: Default::default(),
        duration: spec.duration,
        grace_period: Duration::from_secs(30),
        max_memory_mb: DEFAULT_MAX_MEMORY_MB,
        plan: Plan::Stream,
        instruments,
        stages: Vec::new(),
        sinks: vec![sink],
        source_path: PathBuf::from("<ensemble loadtest>"),
        source_text,
    }
}

#[derive(serde::Serialize)]
struct LoadtestTable<'a> {
    loadtest: &'a LoadtestSpec,
}

/// When instrument `index` fails, if it is one of the `faults` fraction: a time drawn from
/// the seed and the index, between 10% and 90% of the duration.
pub fn fault_time(spec: &LoadtestSpec, index: usize) -> Option<Duration> {
    if spec.faults <= 0.0 {
        return None;
    }
    let a = splitmix64(spec.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let b = splitmix64(a);
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    (unit(a) < spec.faults).then(|| spec.duration.mul_f64(0.1 + 0.8 * unit(b)))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::spec::InstrumentGroup;

    #[test]
    fn groups_become_numbered_instruments_feeding_one_sink() {
        let spec = LoadtestSpec {
            groups: vec![
                InstrumentGroup {
                    count: 2,
                    channels: 1,
                    rate_hz: 10.0,
                },
                InstrumentGroup {
                    count: 1,
                    channels: 3,
                    rate_hz: 1000.0,
                },
            ],
            ..LoadtestSpec::default()
        };
        let e = experiment(&spec);
        let names: Vec<&str> = e.instruments.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["inst-00000", "inst-00001", "inst-00002"]);
        assert_eq!(e.sinks.len(), 1);
        assert_eq!(e.sinks[0].inputs.len(), 3);
        let InstrumentKind::Sim(cfg) = &e.instruments[2].kind else {
            panic!("load tests build simulated instruments");
        };
        assert_eq!(cfg.channels, ["ch0", "ch1", "ch2"]);
        assert!(e.source_text.contains("[loadtest]"), "{}", e.source_text);
    }

    #[test]
    fn about_the_configured_fraction_fails_inside_the_run() {
        let spec = LoadtestSpec {
            faults: 0.1,
            ..LoadtestSpec::default()
        };
        let times: Vec<Duration> = (0..10_000).filter_map(|i| fault_time(&spec, i)).collect();
        assert!((800..1200).contains(&times.len()), "{}", times.len());
        assert!(
            times
                .iter()
                .all(|t| *t >= spec.duration / 10 && *t < spec.duration)
        );
        let none = LoadtestSpec::default();
        assert_eq!(fault_time(&none, 3), None);
    }
}
