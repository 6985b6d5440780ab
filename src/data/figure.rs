//! Drawing a [`Figure`] with plotters, as PNG (bitmap backend, text drawn with the DejaVu Sans
//! font compiled into the binary, so no system font is needed) or SVG (text as `<text>`).

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// DejaVu Sans (Bitstream Vera license, `fonts/LICENSE-DejaVu.txt`), the plots' only font.
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";

/// Colors of the series, in order (colorblind-safe, after Okabe and Ito).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// What a plot shows, independent of the backend.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// The title: experiment, stream and metadata.
    pub title: String,
    /// The x axis label, with its unit.
    pub x_label: String,
    /// The y axis label, with its unit.
    pub y_label: String,
    /// The series, drawn in order.
    pub series: Vec<Series>,
}

/// One series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Its values.
    pub data: SeriesData,
}

/// A series' values.
#[derive(Debug, Clone)]
pub enum SeriesData {
    /// Points joined by a line (non-finite values left out).
    Line(Vec<(f64, f64)>),
    /// Points marked and joined (a scan's detector vs setpoint).
    Markers(Vec<(f64, f64)>),
    /// `(x, min, max)` per pixel column: more samples than pixels, drawn as a band.
    Envelope(Vec<(f64, f64, f64)>),
}

impl Series {
    fn bounds(&self) -> Option<(f64, f64, f64, f64)> {
        let points: Vec<(f64, f64)> = match &self.data {
            SeriesData::Line(p) | SeriesData::Markers(p) => p.clone(),
            SeriesData::Envelope(e) => e
                .iter()
                .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)])
                .collect(),
        };
        points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .fold(None, |acc, &(x, y)| {
                Some(match acc {
                    None => (x, x, y, y),
                    Some((a, b, c, d)) => (a.min(x), b.max(x), c.min(y), d.max(y)),
                })
            })
    }
}

/// Registers the embedded font once.
fn register_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the embedded font could not be loaded".to_string())
    })
    .clone()
}

/// Draws `figure` into `path` (`.png` or `.svg`, by extension) at `size` pixels.
pub fn render(figure: &Figure, path: &Path, size: (u32, u32)) -> Result<(), String> {
    register_font()?;
    let svg = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("svg"));
    if svg {
        let root = SVGBackend::new(path, size).into_drawing_area();
        draw(&root, figure)?;
        root.present().map_err(|e| e.to_string())
    } else {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        draw(&root, figure)?;
        root.present().map_err(|e| e.to_string())
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figure: &Figure) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (x0, x1, y0, y1) = figure
        .series
        .iter()
        .filter_map(Series::bounds)
        .reduce(|(a, b, c, d), (p, q, r, s)| (a.min(p), b.max(q), c.min(r), d.max(s)))
        .unwrap_or((0.0, 1.0, 0.0, 1.0));
    let (x0, x1) = padded(x0, x1, 0.0);
    let (y0, y1) = padded(y0, y1, 0.05);
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, (FAMILY, 20))
        .margin(16)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(&figure.x_label)
        .y_desc(&figure.y_label)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(e)?;
    for (i, series) in figure.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let drawn = match &series.data {
            SeriesData::Line(points) => chart
                .draw_series(LineSeries::new(
                    points.iter().filter(finite).copied(),
                    color.stroke_width(2),
                ))
                .map_err(e)?,
            SeriesData::Markers(points) => {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().filter(finite).copied(),
                        color.stroke_width(1),
                    ))
                    .map_err(e)?;
                chart
                    .draw_series(
                        points
                            .iter()
                            .filter(finite)
                            .map(|&p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(e)?
            }
            SeriesData::Envelope(band) => {
                let band: Vec<_> = band
                    .iter()
                    .filter(|b| b.1.is_finite() && b.2.is_finite())
                    .collect();
                let outline: Vec<(f64, f64)> = band
                    .iter()
                    .map(|b| (b.0, b.2))
                    .chain(band.iter().rev().map(|b| (b.0, b.1)))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, color.mix(0.35))))
                    .map_err(e)?;
                chart
                    .draw_series(band.iter().map(|b| {
                        PathElement::new(vec![(b.0, b.1), (b.0, b.2)], color.stroke_width(1))
                    }))
                    .map_err(e)?
            }
        };
        drawn.label(&series.name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
        });
    }
    if figure.series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FAMILY, 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

/// `lo..hi` widened by `fraction` of its span on each side (or by 1 when it is empty).
fn padded(lo: f64, hi: f64, fraction: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * fraction;
        (lo - pad, hi + pad)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}
