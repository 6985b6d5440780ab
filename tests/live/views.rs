//! The page's other views in a real browser: a live scan held by its Pause and Resume
//! buttons, and `ensemble serve` over finished runs (the run list, a spectrum, a scan, one run
//! directory on its own).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::cdp::{self, Browser};
use super::{Served, assert_scan_completed_after_one_web_pause, get_json, repo, scan_config};
use crate::util::{ensemble_bin, external_available};

/// The plot element of `stream` has drawn at least `points` points of `kind` with ink on its
/// canvas (a JavaScript expression for [`Browser::wait_for`]).
fn plotted(stream: &str, kind: &str, points: usize) -> String {
    format!(
        "(() => {{ const e = [...document.querySelectorAll('.plot')]
            .find(e => e.dataset.stream === '{stream}');
          if (!e || e.dataset.kind !== '{kind}' || Number(e.dataset.points) < {points}) return false;
          const c = e.querySelector('canvas'); if (!c) return false;
          const g = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let inked = 0; for (let i = 3; i < g.length; i += 4) if (g[i] > 0) inked++;
          return inked > 500; }})()"
    )
}

/// Runs `config` to its end into `output` (a finished run, no view).
fn record(config: &Path, output: &Path) {
    let status = Command::new(ensemble_bin())
        .args(["run", &config.display().to_string(), "--quiet", "--output"])
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ensemble runs");
    assert!(status.success(), "{} recorded", config.display());
}

#[test]
fn a_live_scan_is_drawn_point_by_point_and_the_pause_and_resume_buttons_hold_it() {
    if !external_available("chromium", Path::new(cdp::CHROMIUM).exists()) {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let config = out.path().join("scan.toml");
    std::fs::write(&config, scan_config("browser-pause", 400, "30ms")).expect("config");
    let output = out.path().join("runs").display().to_string();
    let served = Served::run(&config.display().to_string(), &output, &[]);
    let mut browser = Browser::open(&format!("http://{}/", served.addr));
    assert!(
        browser.wait_for(&plotted("primary", "scan", 5), Duration::from_secs(30)),
        "the scan's points are drawn as they come"
    );
    let info =
        browser.eval("document.querySelector('.plot[data-stream=\"primary\"] .info').textContent");
    assert!(
        info.as_str().is_some_and(|t| t.ends_with("of 400")),
        "points done of total: {info}"
    );
    assert!(
        browser.wait_for(
            "!document.getElementById('pause').disabled",
            Duration::from_secs(10)
        ),
        "Pause is offered for a running scan"
    );
    browser.eval("document.getElementById('pause').click(), true");
    let shown = browser.wait_for(
        "!document.getElementById('resume').disabled \
         && document.getElementById('summary').textContent.includes('paused')",
        Duration::from_secs(10),
    );
    assert!(
        shown,
        "the page shows the pause: {} / {} / {}",
        browser.eval("document.getElementById('summary').textContent"),
        browser.eval("document.getElementById('message').textContent"),
        get_json(&served.addr, "/api/status")["plan"]
    );
    let held = get_json(&served.addr, "/api/status")["plan"]["points_done"].clone();
    assert!(
        held.as_u64().is_some_and(|n| n < 400),
        "paused early: {held}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        get_json(&served.addr, "/api/status")["plan"]["points_done"],
        held,
        "no point taken while paused"
    );
    browser.eval("document.getElementById('resume').click(), true");
    let (code, _) = served.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "the scan completes after the resume");
    let pause = assert_scan_completed_after_one_web_pause(&out.path().join("runs"), 400);
    assert_eq!(
        pause["resumed_by"]
            .as_str()
            .map(|b| b.starts_with("web view")),
        Some(true)
    );
}

#[test]
fn serve_lists_finished_runs_and_draws_a_spectrum_a_scan_and_a_single_run_directory() {
    if !external_available("chromium", Path::new(cdp::CHROMIUM).exists()) {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let runs = out.path().join("runs");
    record(Path::new(&repo("configs/spectrum.toml")), &runs);
    let scan = out.path().join("scan.toml");
    std::fs::write(&scan, scan_config("finished-scan", 21, "0ms")).expect("config");
    record(&scan, &runs);

    let served = Served::files(&runs);
    let listed = get_json(&served.addr, "/api/status");
    assert_eq!(listed["mode"], "runs");
    let id_of = |experiment: &str| -> String {
        listed["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .find(|r| r["experiment"] == experiment)
            .and_then(|r| r["run_id"].as_str())
            .unwrap_or_else(|| panic!("{experiment} listed: {listed}"))
            .to_string()
    };
    let (spectrum_run, scan_run) = (id_of("spectrum"), id_of("finished-scan"));

    // The spectrum's peak is the signal's 250 Hz, within a bin (10 kHz / 1024).
    let d = get_json(
        &served.addr,
        &format!("/api/streams/spectrum?run={spectrum_run}&points=2000"),
    );
    assert_eq!(d["kind"], "spectrum");
    let x: Vec<f64> = d["x"]
        .as_array()
        .expect("x")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let y: Vec<f64> = d["series"][0]["max"]
        .as_array()
        .expect("max")
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    let peak = (0..y.len())
        .filter(|&i| y[i].is_finite())
        .max_by(|&a, &b| y[a].total_cmp(&y[b]))
        .expect("a spectrum");
    assert!((x[peak] - 250.0).abs() <= 10.0, "peak at {} Hz", x[peak]);

    // The list, then a click into the spectrum run.
    let mut browser = Browser::open(&format!("http://{}/", served.addr));
    assert!(
        browser.wait_for(
            "document.querySelectorAll('#runs tbody tr').length === 2",
            Duration::from_secs(20)
        ),
        "both runs listed"
    );
    browser.eval(&format!(
        "document.querySelector('#runs a[href*=\"{spectrum_run}\"]').click(), true"
    ));
    assert!(
        browser.wait_for(
            &plotted("spectrum", "spectrum", 100),
            Duration::from_secs(30)
        ),
        "the spectrum is drawn"
    );
    assert!(
        browser.wait_for(&plotted("sig", "time", 100), Duration::from_secs(30)),
        "the signal is drawn"
    );
    assert_eq!(
        browser.eval("document.querySelector('.plot[data-stream=\"spectrum\"]').dataset.yscale"),
        "linear"
    );
    browser.eval("(() => { const b = document.getElementById('logy'); b.checked = true; b.dispatchEvent(new Event('change')); return true; })()");
    assert!(
        browser.wait_for(
            "document.querySelector('.plot[data-stream=\"spectrum\"]').dataset.yscale === 'log'",
            Duration::from_secs(10)
        ),
        "log y redraws the spectrum"
    );
    assert_eq!(
        browser.eval("document.getElementById('stop').disabled"),
        true,
        "nothing to stop in a finished run"
    );

    // The scan run: every point against its setpoint.
    browser.call(
        "Page.navigate",
        serde_json::json!({"url": format!("http://{}/?run={scan_run}", served.addr)}),
    );
    assert!(
        browser.wait_for(&plotted("primary", "scan", 21), Duration::from_secs(30)),
        "all 21 points drawn"
    );
    let info =
        browser.eval("document.querySelector('.plot[data-stream=\"primary\"] .info').textContent");
    assert_eq!(info, "points 21 of 21");
    drop(browser);
    drop(served);

    // One run directory on its own: its plots at once, no list.
    let dir = runs.join(&spectrum_run);
    let single = Served::files(&dir);
    let s = get_json(&single.addr, "/api/status");
    assert_eq!(s["mode"], "files");
    assert_eq!(s["status"], "completed");
    let mut browser = Browser::open(&format!("http://{}/", single.addr));
    assert!(
        browser.wait_for(
            &plotted("spectrum", "spectrum", 100),
            Duration::from_secs(30)
        ),
        "the single run's spectrum is drawn"
    );
    assert_eq!(browser.eval("document.getElementById('runs').hidden"), true);
    let streams = browser.eval(
        "[...document.querySelectorAll('.plot')].map(e => e.dataset.stream).sort().join(',')",
    );
    assert_eq!(streams, "lowpass,sig,slow,spectrum,summary");
}
