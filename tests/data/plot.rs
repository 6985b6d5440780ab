//! `ensemble plot` and thumbnails: a PNG whose pixels show the trace, an SVG with its labels.

use super::*;

/// Decodes a PNG into (width, height, RGBA bytes).
fn pixels(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("png opens"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("a frame");
    let channels = info.color_type.samples();
    // Normalize to RGB triples.
    let rgb: Vec<u8> = buffer[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as usize, info.height as usize, rgb)
}

/// The columns (x) where a pixel within `tolerance` of `color` appears, and their count.
fn columns_with(color: [u8; 3], (w, h, rgb): &(usize, usize, Vec<u8>)) -> (usize, usize) {
    let near = |p: &[u8]| {
        p.iter()
            .zip(color)
            .all(|(a, b)| (i16::from(*a) - i16::from(b)).abs() <= 40)
    };
    let mut count = 0;
    let mut cols = std::collections::BTreeSet::new();
    for y in 0..*h {
        for x in 0..*w {
            let i = (y * w + x) * 3;
            if near(&rgb[i..i + 3]) {
                count += 1;
                cols.insert(x);
            }
        }
    }
    (count, cols.len())
}

const SINE: &str = r#"
[experiment]
name = "plots"
duration = "1s"
thumbnails = true

[experiment.metadata]
sample = "P3"

[instruments.scope]
type = "sim"
rate_hz = 5000
channels = ["signal"]
unit = "V"
signal = { shape = "sine", frequency_hz = 3, amplitude = 2.0 }

[instruments.probe]
type = "sim"
rate_hz = 50
channels = ["temperature"]
unit = "K"
signal = { shape = "ramp", frequency_hz = 0.5, amplitude = 1.0, offset = 290.0 }

[sinks.store]
type = "parquet"
inputs = ["scope", "probe"]
"#;

#[test]
fn png_shows_the_trace_svg_has_labels_with_units_and_thumbnails_are_drawn() {
    let work = tempfile::tempdir().expect("tempdir");
    let run_dir = run(experiment(SINE, work.path())).run_dir;

    // 5,000 samples on a 1,200 px plot: the min/max band.
    let png = work.path().join("scope.png");
    ok_stdout(&ensemble(&[
        &"plot",
        &run_dir,
        &"--stream",
        &"scope",
        &"--out",
        &png,
    ]));
    let image = pixels(&png);
    assert_eq!((image.0, image.1), (1200, 675));
    let (count, cols) = columns_with([0, 114, 178], &image);
    assert!(count > 2000, "the trace's color covers {count} pixels");
    assert!(
        cols > 800,
        "and spans the plot's width: {cols} of 1200 columns"
    );
    // Text (title, ticks, labels) is drawn with the embedded font: dark pixels outside the
    // trace, also above the plot area where only the title is.
    let (dark, _) = columns_with(
        [0, 0, 0],
        &(image.0, 60, image.2[..image.0 * 60 * 3].to_vec()),
    );
    assert!(
        dark > 100,
        "the title is drawn: {dark} dark pixels in the top band"
    );

    // 50 samples: a line. SVG with labels and units as text.
    let svg = work.path().join("probe.svg");
    ok_stdout(&ensemble(&[
        &"plot",
        &run_dir,
        &"--stream",
        &"probe",
        &"--out",
        &svg,
    ]));
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(text.starts_with("<svg"), "{text:.100}");
    assert!(text.contains("temperature (K)"), "y label with unit");
    assert!(
        text.contains("time since run start (s)"),
        "x label with unit"
    );
    assert!(
        text.contains("plots: probe (sample=P3)"),
        "title from name and metadata"
    );
    assert!(
        text.contains("<polyline") || text.contains("<path"),
        "a drawn line"
    );

    // `thumbnails = true`: one PNG per stream, written after the run.
    for stream in ["scope", "probe"] {
        let thumb = run_dir.join("plots").join(format!("{stream}.png"));
        let image = pixels(&thumb);
        assert_eq!((image.0, image.1), (800, 450), "{stream}");
        let (count, _) = columns_with([0, 114, 178], &image);
        assert!(
            count > 200,
            "{stream}: the trace shows in the thumbnail ({count} px)"
        );
    }
    // `inspect` and `runs` are not confused by `plots/`.
    let json: serde_json::Value =
        serde_json::from_str(&ok_stdout(&ensemble(&[&"inspect", &run_dir, &"--json"])))
            .expect("JSON");
    assert_eq!(json["streams"].as_array().map(Vec::len), Some(2));

    let wrong = ensemble(&[&"plot", &run_dir, &"--stream", &"probe", &"--out", &"x.jpg"]);
    assert_eq!(wrong.status.code(), Some(2));
    let no_fft = ensemble(&[
        &"plot",
        &run_dir,
        &"--stream",
        &"probe",
        &"--spectrum",
        &"--out",
        &svg,
    ]);
    assert_eq!(
        no_fft.status.code(),
        Some(2),
        "--spectrum on a stream without spectra"
    );
}

const SCAN_AND_SPECTRUM: &str = r#"
[experiment]
name = "scanfft"

[instruments.meter]
type = "sim"
rate_hz = 2000
channels = ["v", "noise"]
unit = "V"
signal = { shape = "sine", frequency_hz = 250.0, amplitude = 1.0 }

[stages.spectrum]
type = "fft"
inputs = ["meter.v"]
size = 128
window = "hann"
output = "psd"

[plan]
type = "scan"
setpoint = "meter.offset"
start = -1.0
stop = 1.0
steps = 11
settle = "60ms"
detectors = ["meter"]
readings_per_point = 2

[sinks.store]
type = "parquet"
inputs = ["primary", "spectrum"]
"#;

#[test]
fn a_scan_plots_detectors_against_its_setpoint_and_an_fft_stream_its_spectrum() {
    let work = tempfile::tempdir().expect("tempdir");
    let run_dir = run(experiment(SCAN_AND_SPECTRUM, work.path())).run_dir;

    let scan = work.path().join("scan.svg");
    ok_stdout(&ensemble(&[
        &"plot",
        &run_dir,
        &"--stream",
        &"primary",
        &"--out",
        &scan,
    ]));
    let text = std::fs::read_to_string(&scan).expect("svg");
    assert!(
        text.contains("meter.offset (V)"),
        "x: the setpoint with its unit"
    );
    assert!(text.contains("detectors (V)"), "y: the detectors' unit");
    assert!(
        text.matches("<circle").count() >= 2 * 11,
        "a marker per point and detector"
    );

    let spectrum = work.path().join("spectrum.svg");
    ok_stdout(&ensemble(&[
        &"plot",
        &run_dir,
        &"--stream",
        &"spectrum",
        &"--spectrum",
        &"--out",
        &spectrum,
    ]));
    let text = std::fs::read_to_string(&spectrum).expect("svg");
    assert!(text.contains("frequency (Hz)"), "x in Hz");
    assert!(
        text.contains("mean v (V²/Hz)"),
        "y: the PSD's unit from the field metadata"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok_stdout(&ensemble(&[&"inspect", &run_dir, &"--json"])))
            .expect("JSON");
    assert_eq!(json["plan"]["points_done"], 11);
    assert_eq!(json["plan"]["total_points"], 11);
}
