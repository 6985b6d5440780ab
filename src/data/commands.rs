//! The data commands as the binary runs them: arguments in, text or files out. Each returns a
//! [`DataError`] whose [`exit_code`](DataError::exit_code) the binary uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::args::{ExportArgs, InspectArgs, PlotArgs, RunsArgs};
use super::catalog::{RunFilter, list_runs, runs_table};
use super::error::DataError;
use super::export::{ExportOptions, export as export_run, parse_bound};
use super::inspect::{inspect as inspect_run, inspection_text};
use super::plot::{PlotOptions, plot as plot_run};
use super::rundir::read_manifest;
use super::thumbnails::draw_thumbnails;

fn print(text: &str) -> Result<(), DataError> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(DataError::write(Path::new("-")))
}

fn json(value: &impl serde::Serialize) -> Result<String, DataError> {
    serde_json::to_string_pretty(value)
        .map(|t| t + "\n")
        .map_err(|e| DataError::Usage(format!("cannot render JSON: {e}")))
}

/// `ensemble runs`.
pub fn runs(args: &RunsArgs) -> Result<(), DataError> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("runs"));
    let filter = RunFilter::parse(&args.conditions, args.since.as_deref())?;
    let runs = list_runs(&dir, &filter)?;
    for run in &runs {
        if let Some(e) = &run.error {
            eprintln!("warning: {e}");
        }
    }
    if args.json {
        print(&json(&runs)?)
    } else {
        print(&runs_table(&runs))
    }
}

/// `ensemble inspect`.
pub fn inspect(args: &InspectArgs) -> Result<(), DataError> {
    let inspection = inspect_run(&args.run_dir)?;
    if args.json {
        print(&json(&inspection)?)
    } else {
        print(&inspection_text(&inspection))
    }
}

/// `--from`/`--to` in ns, counted from the run's start for `+SECONDS`.
fn bounds(
    run_dir: &Path,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<i64>, Option<i64>), DataError> {
    if from.is_none() && to.is_none() {
        return Ok((None, None));
    }
    let start = read_manifest(run_dir)
        .ok()
        .flatten()
        .and_then(|m| m.started_at.timestamp_nanos_opt());
    let from = from.map(|f| parse_bound(f, start)).transpose()?;
    let to = to.map(|t| parse_bound(t, start)).transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(DataError::Usage(format!(
                "--from {} is after --to {}",
                from_text(from),
                from_text(Some(t))
            )));
        }
    }
    Ok((from, to))
}

fn from_text(ns: Option<i64>) -> String {
    ns.map(|n| chrono::DateTime::from_timestamp_nanos(n).to_rfc3339())
        .unwrap_or_default()
}

/// `ensemble export`; prints a one-line summary to standard error.
pub fn export(args: &ExportArgs) -> Result<(), DataError> {
    let (from, to) = bounds(&args.run_dir, args.from.as_deref(), args.to.as_deref())?;
    let options = ExportOptions {
        streams: args.streams.clone(),
        channels: args.channels.clone(),
        from,
        to,
        format: args.format,
        time: args.time,
        unit_row: args.units,
        out: args.out.clone().filter(|o| o.as_os_str() != "-"),
    };
    let summary = export_run(&args.run_dir, &options)?;
    eprintln!(
        "export: {} rows{}{}",
        summary.rows,
        if summary.row_groups_skipped > 0 {
            format!(
                ", {} row groups skipped by statistics",
                summary.row_groups_skipped
            )
        } else {
            String::new()
        },
        if summary.files.is_empty() {
            String::new()
        } else {
            let files: Vec<String> = summary
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            format!(" -> {}", files.join(", "))
        }
    );
    Ok(())
}

/// `ensemble plot`.
pub fn plot(args: &PlotArgs) -> Result<(), DataError> {
    if args.all {
        let done = draw_thumbnails(&args.run_dir, (args.width, args.height))?;
        for path in &done.written {
            println!("{}", path.display());
        }
        for (stream, why) in &done.skipped {
            eprintln!("skipped {stream}: {why}");
        }
        return Ok(());
    }
    let (from, to) = bounds(&args.run_dir, args.from.as_deref(), args.to.as_deref())?;
    let (Some(stream), Some(out)) = (&args.stream, &args.out) else {
        return Err(DataError::Usage(
            "--stream and --out are required without --all".into(),
        ));
    };
    let options = PlotOptions {
        stream: stream.clone(),
        channels: args.channels.clone(),
        from,
        to,
        spectrum: args.spectrum,
        out: out.clone(),
        size: (args.width, args.height),
    };
    plot_run(&args.run_dir, &options)?;
    println!("{}", out.display());
    Ok(())
}
