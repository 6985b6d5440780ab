//! Thumbnails: `plots/STREAM.png` for every stream of a finished run, so a run list or a
//! logbook shows the run at a glance without opening it. Drawn after the data is safe (the
//! final manifest is written), never while acquiring.

use std::path::{Path, PathBuf};

use super::error::DataError;
use super::plot::{PlotOptions, figure_of, render_atomically};
use super::rundir::{PLOTS_DIR, check_run_dir};

/// Size of a thumbnail in pixels.
pub const THUMBNAIL_SIZE: (u32, u32) = (800, 450);

/// What drawing the thumbnails did.
#[derive(Debug, Default)]
pub struct Thumbnails {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Streams that could not be drawn, with why (a stream without finished parts, say).
    pub skipped: Vec<(String, String)>,
}

/// Draws `plots/STREAM.png` for every stream of `run_dir` (at `size`). A stream that cannot be
/// drawn is skipped and reported; an unreadable run directory is an error.
pub fn draw_thumbnails(run_dir: &Path, size: (u32, u32)) -> Result<Thumbnails, DataError> {
    let (manifest, streams) = check_run_dir(run_dir)?;
    let dir = run_dir.join(PLOTS_DIR);
    std::fs::create_dir_all(&dir).map_err(DataError::write(&dir))?;
    let mut done = Thumbnails::default();
    for stream in &streams {
        let out = dir.join(format!("{}.png", stream.stream));
        let options = PlotOptions {
            stream: stream.stream.clone(),
            channels: Vec::new(),
            from: None,
            to: None,
            spectrum: false,
            out: out.clone(),
            size,
        };
        let drawn = figure_of(stream, manifest.as_ref(), &options)
            .and_then(|figure| render_atomically(&figure, &out, size));
        match drawn {
            Ok(()) => done.written.push(out),
            Err(e) => done.skipped.push((stream.stream.clone(), e.to_string())),
        }
    }
    Ok(done)
}
