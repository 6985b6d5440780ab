//! Session, serial and actor tests against the in-process simulator (127.0.0.1 only).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::simulator::{self, FaultSpec, Profile, SimulatorOptions};

/// Every test body runs under this bound.
const TEST_BOUND: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

fn options(profile: Profile, faults: &str) -> SimulatorOptions {
    SimulatorOptions {
        profile,
        faults: FaultSpec::parse(faults).unwrap(),
        seed: 42,
        ..Default::default()
    }
}

/// Starts a simulator on 127.0.0.1:0; returns its address and the server task.
async fn start(options: SimulatorOptions) -> (String, JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (
        format!("tcp://127.0.0.1:{port}"),
        tokio::spawn(simulator::serve_tcp(listener, options)),
    )
}

fn profile_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/instruments")
        .join(format!("{name}.toml"))
}

/// A profile file with an address and overrides merged in (a shallow stand-in for the
/// compiler's deep merge).
fn from_profile(name: &str, address: &str, overrides: &str) -> ScpiInstrumentConfig {
    let text = std::fs::read_to_string(profile_path(name)).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table.insert("address".into(), address.into());
    let extra: toml::Table = toml::from_str(overrides).unwrap();
    for (k, v) in extra {
        table.insert(k, v);
    }
    table.try_into().unwrap()
}

async fn poll_n(session: &mut Session, n: usize, pause: Duration) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = Row::default();
    for _ in 0..n {
        if session.poll(&mut row).await.is_ok() {
            rows.push(row.clone());
        }
        tokio::time::sleep(pause).await;
    }
    rows
}

#[test]
fn every_profile_file_is_a_valid_config() {
    for name in ["dmm", "psu", "tempctl"] {
        let cfg = from_profile(name, "tcp://127.0.0.1:5025", "");
        assert!(cfg.check().is_empty(), "{name}: {:?}", cfg.check());
        assert!(!cfg.read.is_empty(), "{name} reads nothing");
    }
}

#[tokio::test]
async fn psu_profile_records_and_sets_over_tcp() {
    bounded(async {
        let (address, server) = start(options(Profile::Psu, "")).await;
        let mut s = Session::new("psu", from_profile("psu", &address, "")).unwrap();
        s.connect().await.unwrap();
        assert!(s.report().identity.as_deref().unwrap().contains("SIM-PSU"));
        let reached = s.set("voltage", 5.0).await.unwrap();
        assert_eq!(reached, 5.0);
        let rows = poll_n(&mut s, 3, Duration::ZERO).await;
        assert_eq!(rows.len(), 3);
        for row in &rows {
            let v = row.values[0].unwrap();
            let i = row.values[1].unwrap();
            assert!((v - 5.0).abs() < 0.01, "{v}");
            assert!((i - 0.5).abs() < 0.001, "{i}");
            assert!(row.timestamp_ns > 1_600_000_000_000_000_000);
        }
        assert_eq!(s.report().channels[0].values, 3);
        assert_eq!(s.report().sets_ok, 1);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn terminations_cr_and_crlf_work() {
    bounded(async {
        for term in ["\r", "\r\n"] {
            let (address, server) = start(SimulatorOptions {
                write_termination: term.into(),
                ..options(Profile::Dmm, "")
            })
            .await;
            let mut cfg = from_profile("dmm", &address, "");
            cfg.read_termination = term.into();
            cfg.write_termination = term.into();
            let mut s = Session::new("dmm", cfg).unwrap();
            s.connect().await.unwrap();
            let rows = poll_n(&mut s, 3, Duration::ZERO).await;
            assert_eq!(rows.len(), 3, "{term:?}");
            assert!(
                rows.iter().all(|r| r.values.iter().all(Option::is_some)),
                "{term:?}: {rows:?}"
            );
            assert!(s.report().identity.is_some());
            server.abort();
        }
    })
    .await;
}

#[tokio::test]
async fn disconnect_reconnects_and_records_the_gap() {
    bounded(async {
        let (address, server) = start(options(Profile::Dmm, "disconnect-after=4")).await;
        let cfg = from_profile(
            "dmm",
            &address,
            "reconnect_min = \"20ms\"\nreconnect_max = \"40ms\"\ntimeout = \"200ms\"",
        );
        let mut s = Session::new("dmm", cfg).unwrap();
        s.connect().await.unwrap();
        // Identification used one answer; then two reads per row.
        let rows = poll_n(&mut s, 12, Duration::from_millis(15)).await;
        let report = s.report();
        assert!(report.reconnects >= 1, "{report:?}");
        assert!(!report.gaps.is_empty());
        let gap = &report.gaps[0];
        assert!(gap.rows_missed >= 1, "{gap:?}");
        assert!(gap.end_ns.unwrap() >= gap.start_ns, "{gap:?}");
        assert!(rows.len() >= 4 && rows.len() < 12, "{} rows", rows.len());
        assert!(rows.iter().all(|r| r.values.iter().all(Option::is_some)));
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn garbage_gives_nulls_and_parse_error_counts() {
    bounded(async {
        let (address, server) = start(options(Profile::Dmm, "garbage=0.5")).await;
        let cfg = from_profile("dmm", &address, "identify = false");
        let mut s = Session::new("dmm", cfg).unwrap();
        s.connect().await.unwrap();
        let rows = poll_n(&mut s, 30, Duration::ZERO).await;
        assert_eq!(rows.len(), 30);
        let nulls = rows
            .iter()
            .flat_map(|r| &r.values)
            .filter(|v| v.is_none())
            .count() as u64;
        let ch = &s.report().channels;
        let errors: u64 = ch.iter().map(|c| c.parse_errors).sum();
        let values: u64 = ch.iter().map(|c| c.values).sum();
        assert!(errors > 5 && values > 5, "{ch:?}");
        assert_eq!(nulls, errors);
        assert_eq!(errors + values, 60);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn overload_is_counted_as_out_of_range() {
    bounded(async {
        let (address, server) = start(options(Profile::Dmm, "")).await;
        let cfg = from_profile("dmm", &address, "init = [\"SIM:OPEN ON\"]");
        let mut s = Session::new("dmm", cfg).unwrap();
        s.connect().await.unwrap();
        let rows = poll_n(&mut s, 3, Duration::ZERO).await;
        assert!(
            rows.iter()
                .all(|r| r.values[0].is_some() && r.values[1].is_none())
        );
        assert_eq!(s.report().channels[1].out_of_range, 3);
        assert_eq!(s.report().channels[1].parse_errors, 0);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn stall_counts_timeouts_and_keeps_the_connection() {
    bounded(async {
        let (address, server) = start(options(Profile::Dmm, "stall-after=2")).await;
        let cfg = from_profile("dmm", &address, "identify = false\ntimeout = \"50ms\"");
        let mut s = Session::new("dmm", cfg).unwrap();
        s.connect().await.unwrap();
        let rows = poll_n(&mut s, 4, Duration::ZERO).await;
        assert_eq!(rows.len(), 4);
        assert!(rows[0].values.iter().all(Option::is_some));
        assert!(
            rows[1..]
                .iter()
                .all(|r| r.values.iter().all(Option::is_none))
        );
        let timeouts: u64 = s.report().channels.iter().map(|c| c.timeouts).sum();
        assert_eq!(timeouts, 6);
        assert!(s.is_connected());
        assert!(s.report().gaps.is_empty());
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn delay_longer_than_timeout_counts_timeouts() {
    bounded(async {
        let (address, server) = start(options(Profile::Dmm, "delay=150ms")).await;
        let cfg = from_profile("dmm", &address, "identify = false\ntimeout = \"40ms\"");
        let mut s = Session::new("dmm", cfg).unwrap();
        s.connect().await.unwrap();
        let rows = poll_n(&mut s, 3, Duration::ZERO).await;
        assert_eq!(rows.len(), 3);
        let timeouts: u64 = s.report().channels.iter().map(|c| c.timeouts).sum();
        assert!(timeouts >= 4, "{:?}", s.report().channels);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn unanswered_identify_is_a_warning() {
    bounded(async {
        let (address, server) = start(options(Profile::Dmm, "")).await;
        let cfg = from_profile("dmm", &address, "identify = \"NOPE?\"\ntimeout = \"50ms\"");
        let mut s = Session::new("dmm", cfg).unwrap();
        s.connect().await.unwrap();
        assert_eq!(s.report().identity, None);
        assert_eq!(s.report().warnings.len(), 1, "{:?}", s.report().warnings);
        assert_eq!(poll_n(&mut s, 1, Duration::ZERO).await.len(), 1);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn set_outside_limits_is_refused_before_sending() {
    bounded(async {
        // Nothing listens on this address: the refusal comes before any connection attempt.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
        drop(listener);
        let mut s = Session::new("psu", from_profile("psu", &dead, "")).unwrap();
        assert!(matches!(
            s.set("voltage", 31.0).await,
            Err(ScpiError::OutOfLimits { .. })
        ));
        assert!(matches!(
            s.set("voltage", f64::NAN).await,
            Err(ScpiError::OutOfLimits { .. })
        ));
        assert!(matches!(
            s.set("power", 1.0).await,
            Err(ScpiError::UnknownParam { .. })
        ));
        assert!(matches!(
            s.set("voltage", 1.0).await,
            Err(ScpiError::Transport(TransportError::Connect { .. }))
        ));
        assert_eq!(s.report().sets_failed, 4);

        // Connected: the device state is untouched by a refused set.
        let (address, server) = start(options(Profile::Psu, "")).await;
        let mut s = Session::new("psu", from_profile("psu", &address, "")).unwrap();
        s.connect().await.unwrap();
        s.set("voltage", 2.0).await.unwrap();
        let e = s.set("voltage", -1.0).await.unwrap_err();
        assert!(
            e.to_string().contains("-1") && e.to_string().contains("voltage"),
            "{e}"
        );
        assert_eq!(s.set("voltage", 2.0).await.unwrap(), 2.0);
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn readback_waits_for_tolerance_or_fails() {
    bounded(async {
        let (address, server) = start(SimulatorOptions {
            tempctl_tau: Duration::from_millis(150),
            ..options(Profile::Tempctl, "")
        })
        .await;
        let cfg = from_profile("tempctl", &address, "");
        let mut s = Session::new("cryo", cfg).unwrap();
        s.connect().await.unwrap();
        let started = tokio::time::Instant::now();
        let reached = s.set("temperature", 300.0).await.unwrap();
        assert!((reached - 300.0).abs() <= 0.1, "{reached}");
        // From 295 K to within 0.1 K of 300 K takes about tau * ln(50) = 590 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );

        let mut cfg = from_profile("tempctl", &address, "");
        cfg.set.get_mut("temperature").unwrap().settle_timeout = Duration::from_millis(60);
        let mut s = Session::new("cryo", cfg).unwrap();
        s.connect().await.unwrap();
        match s.set("temperature", 200.0).await {
            Err(ScpiError::NotSettled { target, last, .. }) => {
                assert_eq!(target, 200.0);
                assert!(last.unwrap() > 200.5, "{last:?}");
            }
            other => panic!("expected NotSettled, got {other:?}"),
        }
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn expect_reply_fails_on_error_pattern() {
    bounded(async {
        let (address, server) = start(options(Profile::Tempctl, "")).await;
        let mut cfg = from_profile("tempctl", &address, "");
        // Remove the limits, so the device itself refuses.
        let sp = cfg.set.get_mut("setpoint").unwrap();
        sp.min = None;
        sp.max = None;
        let mut s = Session::new("cryo", cfg).unwrap();
        s.connect().await.unwrap();
        assert_eq!(s.set("setpoint", 250.0).await.unwrap(), 250.0);
        match s.set("setpoint", 5000.0).await {
            Err(ScpiError::Rejected { param, reply }) => {
                assert_eq!(param, "setpoint");
                assert!(reply.starts_with("-222"), "{reply}");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        let rows = poll_n(&mut s, 1, Duration::ZERO).await;
        assert_eq!(rows[0].values[1], Some(250.0));
        server.abort();
    })
    .await;
}

/// Whether socat is there; missing is a skip, or a failure when `ENSEMBLE_REQUIRE_EXTERNAL=1`.
fn socat_available() -> bool {
    let found = std::process::Command::new("socat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("ENSEMBLE_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
            "socat is required (ENSEMBLE_REQUIRE_EXTERNAL=1) but not installed"
        );
        eprintln!("SKIPPED: socat is not installed (apt-get install -y socat)");
    }
    found
}

#[tokio::test]
async fn serial_over_socat_pty_pair() {
    if !socat_available() {
        return;
    }
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
        let mut socat = tokio::process::Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if a.exists() && b.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let opts = SimulatorOptions {
            write_termination: "\r\n".into(),
            ..options(Profile::Psu, "")
        };
        let device_port =
            tokio_serial::SerialStream::open(&tokio_serial::new(b.to_string_lossy(), 115_200))
                .unwrap();
        let device = simulator::SharedDevice::new(&opts);
        let server = tokio::spawn(async move {
            simulator::serve_connection(device_port, &device, &opts, 0).await
        });
        let overrides =
            "baud_rate = 115200\nread_termination = \"\\r\\n\"\nwrite_termination = \"\\r\"";
        let cfg = from_profile("psu", &format!("ASRL{}::INSTR", a.display()), overrides);
        let mut s = Session::new("psu", cfg).unwrap();
        s.connect().await.unwrap();
        assert!(s.report().identity.as_deref().unwrap().contains("SIM-PSU"));
        assert_eq!(s.set("voltage", 3.0).await.unwrap(), 3.0);
        let rows = poll_n(&mut s, 3, Duration::ZERO).await;
        assert_eq!(rows.len(), 3);
        assert!((rows[2].values[0].unwrap() - 3.0).abs() < 0.01);
        server.abort();
        let _ = socat.kill().await;
    })
    .await;
}

#[tokio::test]
async fn serial_over_simulator_pty_survives_reopen() {
    bounded(async {
        let (path, serve) = simulator::serve_pty(SimulatorOptions {
            tempctl_tau: Duration::from_millis(100),
            ..options(Profile::Tempctl, "")
        })
        .unwrap();
        let server = tokio::spawn(serve);
        let address = format!("serial://{}", path.display());
        for round in 0..2 {
            let mut s = Session::new("cryo", from_profile("tempctl", &address, "")).unwrap();
            s.connect().await.unwrap();
            assert!(
                s.report()
                    .identity
                    .as_deref()
                    .unwrap()
                    .contains("SIM-TEMPCTL"),
                "round {round}"
            );
            let rows = poll_n(&mut s, 2, Duration::ZERO).await;
            assert_eq!(rows.len(), 2);
            assert!(
                rows.iter().all(|r| r.values.iter().all(Option::is_some)),
                "{rows:?}"
            );
            s.disconnect();
        }
        server.abort();
    })
    .await;
}

mod actor {
    use std::sync::Arc;

    use actix::prelude::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};
    use tokio::sync::mpsc;

    use super::*;
    use crate::batch::{StreamEvent, field_unit};
    use crate::control::{ComponentExited, ExitOutcome, Stop};
    use crate::link::{Delivery, LinkReceiver, link};
    use crate::outputs::Outputs;
    use crate::stats::{LinkStats, StreamStats};

    struct Exits(mpsc::UnboundedSender<ComponentExited>);

    impl Actor for Exits {
        type Context = Context<Self>;
    }

    impl Handler<ComponentExited> for Exits {
        type Result = ();

        fn handle(&mut self, msg: ComponentExited, _: &mut Self::Context) {
            let _ = self.0.send(msg);
        }
    }

    fn outputs() -> (Outputs, LinkReceiver) {
        let (tx, rx) = link(64, Delivery::Lossless, Arc::new(LinkStats::default()));
        (
            Outputs::new("psu".into(), vec![tx], Arc::new(StreamStats::default())),
            rx,
        )
    }

    #[actix::test]
    async fn actor_polls_sets_reads_and_stops_without_losing_rows() {
        bounded(async {
            let (address, server) = start(options(Profile::Psu, "")).await;
            let overrides =
                "poll_interval = \"20ms\"\nbatch_interval = \"50ms\"\nmax_batch_rows = 4";
            let cfg = from_profile("psu", &address, overrides);
            let (out, rx) = outputs();
            let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
            let exits = Exits(exit_tx).start();
            let actor = ScpiActor::new("psu".into(), cfg, out, exits.recipient()).unwrap();
            let report = actor.report();
            let probe = actor.probe();
            let addr = actor.start();
            assert_eq!(probe.set("voltage", 4.0).await.unwrap(), 4.0);
            let reading = probe.read().await.unwrap();
            assert_eq!(
                &reading.channels[..],
                ["voltage".to_string(), "current".to_string()]
            );
            assert!((reading.values[0].unwrap() - 4.0).abs() < 0.01);
            assert!(matches!(
                probe.set("voltage", 99.0).await,
                Err(ScpiError::OutOfLimits { .. })
            ));
            tokio::time::sleep(Duration::from_millis(250)).await;
            addr.send(Stop).await.unwrap();

            let mut next_seq = 0u64;
            let end = loop {
                match rx.pop().await {
                    StreamEvent::Data(b) => {
                        assert_eq!(b.first_seq, next_seq);
                        let schema = b.batch.schema();
                        assert_eq!(field_unit(schema.field(2)), Some("V"));
                        assert_eq!(field_unit(schema.field(3)), Some("A"));
                        assert!(b.rows() <= 4);
                        let seq = b.batch.column(1).as_primitive::<UInt64Type>();
                        assert_eq!(seq.value(0), next_seq);
                        let v = b.batch.column(2).as_primitive::<Float64Type>();
                        assert!(v.iter().flatten().all(|v| (v - 4.0).abs() < 0.01));
                        next_seq += b.rows() as u64;
                    }
                    StreamEvent::End(end) => break end,
                }
            };
            assert_eq!(end.rows, next_seq);
            assert!(next_seq >= 5, "only {next_seq} rows");
            let exit = exit_rx.recv().await.unwrap();
            assert!(
                matches!(exit.outcome, ExitOutcome::InstrumentFinished),
                "{exit:?}"
            );
            let r = report.snapshot();
            assert!(r.identity.unwrap().contains("SIM-PSU"));
            assert_eq!((r.sets_ok, r.sets_failed), (1, 1));
            assert_eq!(r.rows, next_seq);
            server.abort();
        })
        .await;
    }

    #[actix::test]
    async fn actor_fails_when_the_first_connection_fails() {
        bounded(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead = format!("tcp://127.0.0.1:{}", listener.local_addr().unwrap().port());
            drop(listener);
            let (out, rx) = outputs();
            let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
            let exits = Exits(exit_tx).start();
            let actor = ScpiActor::new(
                "psu".into(),
                from_profile("psu", &dead, ""),
                out,
                exits.recipient(),
            )
            .unwrap();
            actor.start();
            assert!(matches!(rx.pop().await, StreamEvent::End(e) if e.rows == 0));
            match exit_rx.recv().await.unwrap().outcome {
                ExitOutcome::Failed(msg) => assert!(msg.contains(&dead), "{msg}"),
                other => panic!("expected Failed, got {other:?}"),
            }
        })
        .await;
    }
}
