//! Restoring the commanded setpoints after a reconnection, and the probe a plan drives the
//! session through (127.0.0.1 only).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::simulator::{self, FaultSpec, Profile, SimulatorOptions};

const TEST_BOUND: Duration = Duration::from_secs(20);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

/// The psu profile's reads and voltage parameter at `address`, reconnecting quickly.
fn psu(address: &str) -> ScpiInstrumentConfig {
    toml::from_str(&format!(
        r#"
address = "{address}"
timeout = "300ms"
reconnect_min = "20ms"
reconnect_max = "40ms"
init = ["OUTP ON"]
identify = false
[[read]]
channel = "voltage"
query = "MEAS:VOLT?"
[set.voltage]
command = "VOLT {{value}}"
readback = "VOLT?"
min = 0.0
max = 30.0
tolerance = 0.001
settle_timeout = "200ms"
"#
    ))
    .expect("valid config")
}

/// A power supply simulator that loses power after `answers` answers on each connection.
async fn psu_dropping_after(
    answers: u64,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let options = SimulatorOptions {
        profile: Profile::Psu,
        faults: FaultSpec::parse(&format!("disconnect-after={answers}")).expect("valid"),
        ..Default::default()
    };
    (
        format!("tcp://127.0.0.1:{port}"),
        tokio::spawn(simulator::serve_tcp(listener, options)),
    )
}

/// Polls until the session has reconnected once (at most 50 polls).
async fn poll_until_reconnected(s: &mut Session) -> Vec<Row> {
    let mut rows = Vec::new();
    for _ in 0..50 {
        let mut row = Row::default();
        if s.poll(&mut row).await.is_ok() {
            rows.push(row);
        }
        if s.report().reconnects > 0 && s.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rows
}

#[tokio::test]
async fn after_a_power_cycle_the_commanded_setpoint_is_sent_again_and_read_back() {
    bounded(async {
        // The set's readback is answer 1, the first poll answer 2; the device then loses power.
        let (address, server) = psu_dropping_after(2).await;
        let mut s = Session::new("psu", psu(&address)).expect("valid");
        s.connect().await.expect("connects");
        assert_eq!(s.set("voltage", 2.5).await.expect("set"), 2.5);
        let rows = poll_until_reconnected(&mut s).await;
        let report = s.report();
        assert_eq!(report.reconnects, 1, "{report:?}");
        assert_eq!(report.restores.len(), 1, "{report:?}");
        let restore = &report.restores[0];
        assert!(restore.ok, "{restore:?}");
        assert_eq!(restore.setpoints[0].param, "voltage");
        assert_eq!(restore.setpoints[0].value, 2.5);
        assert_eq!(restore.setpoints[0].reached, Some(2.5));
        assert_eq!(restore.describe(), "voltage = 2.5");
        // The row read after the reconnection sees the restored output, not the power-on 0 V.
        let last = rows.last().expect("a row after the reconnection");
        let v = last.values[0].expect("a value");
        assert!((v - 2.5).abs() < 0.01, "{v}");
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn a_setpoint_that_cannot_be_restored_keeps_the_gap_open_and_says_why() {
    bounded(async {
        // A device that takes `VOLT v` on its first connection only; after that its readback
        // stays at 0 (stuck), and it drops the first connection after its second answer.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            for connection in 0u32.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let (mut volt, mut answers) = (0.0f64, 0);
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(v) = line.strip_prefix("VOLT ") {
                        if connection == 0 {
                            volt = v.parse().unwrap_or(0.0);
                        }
                        continue;
                    }
                    if !line.ends_with('?') {
                        continue;
                    }
                    let _ = write.write_all(format!("{volt}\n").as_bytes()).await;
                    answers += 1;
                    if connection == 0 && answers == 2 {
                        break;
                    }
                }
            }
        });
        let mut s = Session::new("psu", psu(&format!("tcp://127.0.0.1:{port}"))).expect("valid");
        s.connect().await.expect("connects");
        assert_eq!(s.set("voltage", 1.5).await.expect("set"), 1.5);
        let mut row = Row::default();
        s.poll(&mut row).await.expect("one row");
        let mut restore_error = None;
        for _ in 0..30 {
            match s.poll(&mut row).await {
                Err(e @ ScpiError::RestoreFailed { .. }) => {
                    restore_error = Some(e);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        let e = restore_error.expect("the restore failed");
        assert!(
            e.is_connection_lost(),
            "a failed restore is retried like a lost connection"
        );
        assert!(
            e.to_string()
                .contains("`voltage` could not be restored to 1.5"),
            "{e}"
        );
        let report = s.report();
        assert!(!s.is_connected());
        assert_eq!(report.reconnects, 0, "{report:?}");
        assert!(report.gaps[0].end_ns.is_none(), "the gap stays open");
        assert!(!report.restores[0].ok);
        assert!(report.restores[0].setpoints[0].error.is_some());
        server.abort();
    })
    .await;
}

#[tokio::test]
async fn a_plan_drives_the_session_through_the_probe_and_recovers_it() {
    bounded(async {
        let (address, server) = psu_dropping_after(4).await;
        let mut s = Session::new("psu", psu(&address)).expect("valid");
        s.connect().await.expect("connects");
        let probe = ScpiProbe::new("psu".into(), s, ScpiReport::default());
        assert_eq!(probe.set("voltage", 4.0).await.expect("set"), 4.0);
        let mut out = [None; 2];
        assert_eq!(probe.read_into(&mut out).await.expect("read"), 1);
        assert!((out[0].expect("value") - 4.0).abs() < 0.01, "{out:?}");
        // Answers 3 and 4, then the device loses power.
        probe.read().await.expect("read");
        probe.read().await.expect("read");
        let lost = probe.read().await.expect_err("the connection is gone");
        assert!(lost.is_connection_lost(), "{lost}");
        let what = probe.recover().await.expect("recovers");
        assert_eq!(what, "reconnected; restored voltage = 4");
        assert_eq!(probe.recover().await.expect("connected"), "connected");
        let reading = probe.read().await.expect("read after the restore");
        assert!((reading.values[0].expect("value") - 4.0).abs() < 0.01);
        // Every row read through the probe is buffered for the instrument's stream.
        assert_eq!(probe.rows().timestamps.len(), 4);
        let report = probe.stop().await;
        assert_eq!(report.restores.len(), 1);
        assert!(matches!(probe.read().await, Err(ScpiError::Stopped(_))));
        server.abort();
    })
    .await;
}
