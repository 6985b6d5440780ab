//! Hostile clients: a flood of idle and half-sent connections cannot take the run's file
//! descriptors or stop it, and the view comes back once the flood is cut.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ensemble::web::connections::{HEADER_TIMEOUT, MAX_CONNECTIONS};

use super::{Served, assert_every_row_saved, get_json, repo, run_dir};

/// Open sockets of process `pid` (its files come and go with the parts it writes).
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    })
}

/// Whether the server closed `s` (a read ends or fails) within `within`.
pub(super) fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 answer before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return true, // reset
        }
    }
    false
}

#[test]
fn a_flood_of_idle_and_half_sent_connections_cannot_take_the_runs_descriptors() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().display().to_string();
    let served = Served::run(
        &repo("configs/quickstart.toml"),
        &output,
        &["--duration", "25s"],
    );
    let pid = served.child.id();
    let addr: SocketAddr = served.addr.parse().expect("address");
    assert_eq!(get_json(&served.addr, "/api/status")["mode"], "live");
    let before = open_sockets(pid);
    // 1,000 connections: every other one sends half a request and then nothing.
    let mut flood: Vec<TcpStream> = (0..1000)
        .filter_map(|i| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            }
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = open_sockets(pid);
    eprintln!(
        "{} connections opened; sockets of the run {before} before, {during} during",
        flood.len()
    );
    assert!(flood.len() >= 500, "the flood got through the backlog");
    assert!(
        during <= before + MAX_CONNECTIONS + 2,
        "the view holds at most {MAX_CONNECTIONS} connections: {before} -> {during} sockets"
    );
    // The server cuts every one of them within the header timeout (those it accepted) or at once.
    let wait = HEADER_TIMEOUT + Duration::from_secs(5);
    let started = Instant::now();
    let mut still_open = 0;
    for s in &mut flood {
        if !closed_by_server(s, wait.saturating_sub(started.elapsed())) {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "connections the server never closed");
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        open_sockets(pid) <= before + 2,
        "sockets back after the flood: {before} -> {}",
        open_sockets(pid)
    );
    // The view answers again, and the run ends as planned with every row.
    assert_eq!(get_json(&served.addr, "/api/status")["mode"], "live");
    let (code, _) = served.wait(Duration::from_secs(90));
    assert_eq!(code, 0);
    let manifest = assert_every_row_saved(&run_dir(out.path()));
    assert_eq!(manifest["status"], "completed");
    for (name, s) in manifest["streams"].as_object().expect("streams") {
        assert_eq!(s["rows"], s["expected_rows"], "{name}: every planned row");
    }
}

#[test]
fn clients_asking_for_ever_new_windows_get_at_most_the_views_work_budget() {
    use ensemble::web::server::FRESH_ANSWERS_PER_SECOND;
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().display().to_string();
    let served = Served::run(
        &repo("configs/quickstart.toml"),
        &output,
        &["--duration", "20s"],
    );
    assert_eq!(get_json(&served.addr, "/api/status")["mode"], "live");
    // Eight clients, each asking as fast as it can for a window no one asked for before, so
    // that no answer can come from the cache: each one costs the server a decimation.
    let flood_for = Duration::from_secs(4);
    let started = Instant::now();
    let clients: Vec<_> = (0..8u32)
        .map(|client| {
            let addr = served.addr.clone();
            std::thread::spawn(move || {
                let (mut fresh, mut busy, mut other) = (0u32, 0u32, 0u32);
                let mut k = 0u32;
                while started.elapsed() < flood_for {
                    let seconds = 10 + client;
                    let points = 100 + k % 9_000;
                    let path = format!("/api/streams/scope?seconds={seconds}.{k}&points={points}");
                    match super::http(&addr, "GET", &path, None).0 {
                        200 => fresh += 1,
                        503 => busy += 1,
                        _ => other += 1,
                    }
                    k += 1;
                }
                (fresh, busy, other)
            })
        })
        .collect();
    let (mut fresh, mut busy, mut other) = (0, 0, 0);
    for c in clients {
        let (f, b, o) = c.join().expect("client");
        (fresh, busy, other) = (fresh + f, busy + b, other + o);
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("{fresh} fresh answers, {busy} busy, {other} other in {elapsed:.1} s");
    assert_eq!(other, 0, "every answer is a window or 'busy, retry'");
    // A second's worth may go at once, then the budget's pace (the last clients' answers,
    // which waited for their turn, are inside `elapsed`).
    let most = FRESH_ANSWERS_PER_SECOND as f64 * (elapsed + 1.0) + 1.0;
    assert!(
        f64::from(fresh) <= most,
        "{fresh} decimations in {elapsed:.1} s: more than the budget's {most}"
    );
    assert!(
        f64::from(fresh) >= FRESH_ANSWERS_PER_SECOND as f64 * 2.0,
        "the flood still gets answers at the budget's pace: {fresh}"
    );
    let (code, _) = served.wait(Duration::from_secs(90));
    assert_eq!(code, 0);
    let manifest = assert_every_row_saved(&run_dir(out.path()));
    assert_eq!(manifest["status"], "completed");
}
