//! Pictures and a table of a finished job: where each call spent its time.
//!
//! [`write_job_plots`] takes the calls of one job (or of a map and its
//! reduce) and writes five files into a directory:
//!
//! - `timeline.svg`, `timeline.png`: one horizontal bar per call against the
//!   job's clock (seconds since the earliest submit among the calls), in
//!   four colored segments: waiting (submit to worker start), setup (worker
//!   start to function start), function (function start to end) and
//!   recording (end to done). A failed call's function segment is red and a
//!   red cross marks where it ended. Past [`TIMELINE_MAX_ROWS`] calls, each
//!   bar stands for a run of consecutive calls and shows their mean times,
//!   and a cross marks a run with a failure in it.
//! - `histogram.svg`, `histogram.png`: how many calls ran their function for
//!   how long; failed calls are stacked in red on the succeeded ones.
//! - `calls.csv`: one row per call (see [`CSV_HEADER`]), times in
//!   milliseconds since the job's clock started.
//!
//! Text in the PNGs needs a font. None is bundled: the first call looks for
//! a common system font (DejaVu Sans, Liberation Sans, Arial), or the file
//! named by `WISP_PLOT_FONT`. Without one the pictures are drawn without
//! text (titles, axis labels, legend) and a warning is logged.
//!
//! ```no_run
//! # async fn run(exec: &wisp::FunctionExecutor, f: &wisp::Function) -> anyhow::Result<()> {
//! let futures = exec.map(f, "my_function", 0..100).await?;
//! exec.wait(&futures, wisp::WaitFor::AllCompleted, None).await;
//! let files = wisp::plots::write_job_plots(&futures, "plots".as_ref())?;
//! println!("{}", files.timeline_png.display());
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{CallFuture, CallStatus};

/// Width and height in pixels of the timeline.
pub const TIMELINE_SIZE: (u32, u32) = (1200, 800);
/// Width and height in pixels of the histogram.
pub const HISTOGRAM_SIZE: (u32, u32) = (900, 600);
/// The most bars the timeline draws; more calls are drawn in runs.
pub const TIMELINE_MAX_ROWS: usize = 250;
/// The first line of `calls.csv`.
pub const CSV_HEADER: &str = "job,call,worker,outcome,error_kind,attempts,\
submitted_ms,worker_start_ms,function_start_ms,function_end_ms,done_ms,\
waiting_ms,setup_ms,function_ms,recording_ms,total_ms";

/// Font files tried, in order, when `WISP_PLOT_FONT` names none.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
];

const WAITING: RGBColor = RGBColor(190, 190, 190);
const SETUP: RGBColor = RGBColor(245, 160, 40);
const FUNCTION: RGBColor = RGBColor(45, 105, 200);
const RECORDING: RGBColor = RGBColor(70, 170, 90);
const FAILED: RGBColor = RGBColor(215, 35, 35);

/// What the plots could not do.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// None of the calls given has finished.
    #[error("no finished calls to plot ({pending} not finished)")]
    NoCalls {
        /// Calls given that had no outcome yet.
        pending: usize,
    },
    /// A file or the directory could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The plotting library failed.
    #[error("cannot draw {path}: {message}")]
    Draw {
        /// The file being drawn.
        path: PathBuf,
        /// The library's message.
        message: String,
    },
}

/// The files written, and what went into them.
#[derive(Debug, Clone)]
pub struct PlotFiles {
    /// The timeline as SVG.
    pub timeline_svg: PathBuf,
    /// The timeline as PNG.
    pub timeline_png: PathBuf,
    /// The histogram of function durations as SVG.
    pub histogram_svg: PathBuf,
    /// The histogram as PNG.
    pub histogram_png: PathBuf,
    /// One row per call.
    pub csv: PathBuf,
    /// Calls plotted.
    pub calls: usize,
    /// Calls given without an outcome yet, left out.
    pub pending: usize,
    /// Calls each timeline bar stands for (1 up to [`TIMELINE_MAX_ROWS`]
    /// calls).
    pub calls_per_row: usize,
    /// Whether the pictures have text: false when no font was found.
    pub text: bool,
}

/// How to draw.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// Draw titles, labels and legends (when a font is found).
    pub text: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self { text: true }
    }
}

/// Something that may hold a finished call's record: a [`CallFuture`] or
/// its [`CallStatus`].
pub trait CallRecord {
    /// The record, if the call is done.
    fn call_status(&self) -> Option<Arc<CallStatus>>;
}

impl CallRecord for CallFuture {
    fn call_status(&self) -> Option<Arc<CallStatus>> {
        self.status()
    }
}

impl CallRecord for Arc<CallStatus> {
    fn call_status(&self) -> Option<Arc<CallStatus>> {
        Some(Arc::clone(self))
    }
}

impl<T: CallRecord> CallRecord for &T {
    fn call_status(&self) -> Option<Arc<CallStatus>> {
        (*self).call_status()
    }
}

/// Writes the timeline, the histogram and `calls.csv` of the finished calls
/// among `calls` into `dir` (created if missing); unfinished calls are left
/// out. See the [module](self) for what each file shows.
pub fn write_job_plots<C: CallRecord>(calls: &[C], dir: &Path) -> Result<PlotFiles, PlotError> {
    write_job_plots_with(calls, dir, &PlotOptions::default())
}

/// [`write_job_plots`] with options.
pub fn write_job_plots_with<C: CallRecord>(
    calls: &[C],
    dir: &Path,
    options: &PlotOptions,
) -> Result<PlotFiles, PlotError> {
    let statuses: Vec<Arc<CallStatus>> = calls.iter().filter_map(|c| c.call_status()).collect();
    let pending = calls.len() - statuses.len();
    if statuses.is_empty() {
        return Err(PlotError::NoCalls { pending });
    }
    let job = Job::new(&statuses);
    std::fs::create_dir_all(dir).map_err(|error| PlotError::Write {
        path: dir.to_owned(),
        error,
    })?;
    let text = options.text && font_available();
    let files = PlotFiles {
        timeline_svg: dir.join("timeline.svg"),
        timeline_png: dir.join("timeline.png"),
        histogram_svg: dir.join("histogram.svg"),
        histogram_png: dir.join("histogram.png"),
        csv: dir.join("calls.csv"),
        calls: job.calls.len(),
        pending,
        calls_per_row: job.calls.len().div_ceil(TIMELINE_MAX_ROWS),
        text,
    };
    let timeline = Picture::Timeline;
    write_svg(&files.timeline_svg, timeline, &job, text)?;
    write_png(&files.timeline_png, timeline, &job, text)?;
    let histogram = Picture::Histogram;
    write_svg(&files.histogram_svg, histogram, &job, text)?;
    write_png(&files.histogram_png, histogram, &job, text)?;
    std::fs::write(&files.csv, job.csv()).map_err(|error| PlotError::Write {
        path: files.csv.clone(),
        error,
    })?;
    Ok(files)
}

/// One call, its moments in seconds on the job's clock.
struct Call {
    job: String,
    call: String,
    worker: String,
    failed: bool,
    error_kind: String,
    /// Runs it took: more than 1 when it was retried.
    attempts: u32,
    /// Submitted, worker start, function start, function end, done; each
    /// at least the one before (a missing moment takes the one before).
    at: [f64; 5],
}

impl Call {
    fn function_ms(&self) -> f64 {
        (self.at[3] - self.at[2]) * 1e3
    }
}

struct Job {
    calls: Vec<Call>,
    jobs: usize,
    failed: usize,
}

impl Job {
    fn new(statuses: &[Arc<CallStatus>]) -> Self {
        let start = statuses
            .iter()
            .map(|s| s.timings.submitted_us)
            .min()
            .unwrap_or(0);
        let calls: Vec<Call> = statuses
            .iter()
            .map(|s| {
                let t = &s.timings;
                let raw = [
                    t.submitted_us,
                    t.worker_start_us,
                    t.function_start_us,
                    t.function_end_us,
                    t.done_us,
                ];
                let mut at = [0.0; 5];
                let mut previous = start;
                for (slot, us) in at.iter_mut().zip(raw) {
                    previous = us.max(previous);
                    *slot = (previous - start) as f64 / 1e6;
                }
                Call {
                    job: s.job_id.clone(),
                    call: s.call_id.clone(),
                    worker: s.worker.clone(),
                    failed: !s.succeeded(),
                    error_kind: s.error.as_ref().map(error_kind).unwrap_or_default(),
                    attempts: s.attempt,
                    at,
                }
            })
            .collect();
        let mut jobs: Vec<&str> = calls.iter().map(|c| c.job.as_str()).collect();
        jobs.sort_unstable();
        jobs.dedup();
        let failed = calls.iter().filter(|c| c.failed).count();
        Self {
            jobs: jobs.len(),
            failed,
            calls,
        }
    }

    fn title(&self) -> String {
        let what = match self.jobs {
            1 => format!("job {}", self.calls[0].job),
            n => format!("{n} jobs"),
        };
        let calls = match self.calls.len() {
            1 => "1 call".to_owned(),
            n => format!("{n} calls"),
        };
        format!("{what}: {calls}, {} failed", self.failed)
    }

    fn csv(&self) -> String {
        let mut out = String::with_capacity(64 * (self.calls.len() + 1));
        out.push_str(CSV_HEADER);
        out.push('\n');
        for c in &self.calls {
            let ms = c.at.map(|s| s * 1e3);
            let _ = write!(
                out,
                "{},{},{},{},{},{}",
                csv_field(&c.job),
                csv_field(&c.call),
                csv_field(&c.worker),
                if c.failed { "error" } else { "success" },
                csv_field(&c.error_kind),
                c.attempts,
            );
            for value in ms {
                let _ = write!(out, ",{value:.3}");
            }
            for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)] {
                let _ = write!(out, ",{:.3}", ms[b] - ms[a]);
            }
            out.push('\n');
        }
        out
    }
}

/// The `kind` a failure carries when serialized, such as `timeout` or
/// `function`.
fn error_kind(failure: &crate::Failure) -> String {
    serde_json::to_value(failure)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Registers a system font with the plotting library, once; false if none
/// was found.
fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let chosen = std::env::var_os("WISP_PLOT_FONT").map(PathBuf::from);
        let candidates = chosen
            .iter()
            .cloned()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // The library keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                tracing::debug!(font = %path.display(), "plots use this font");
                return true;
            }
            tracing::warn!(font = %path.display(), "not a usable font");
        }
        tracing::warn!(
            "no font found (install fonts-dejavu-core, or set WISP_PLOT_FONT to a .ttf file): \
             plots are drawn without text"
        );
        false
    })
}

type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy)]
enum Picture {
    Timeline,
    Histogram,
}

impl Picture {
    fn size(self) -> (u32, u32) {
        match self {
            Self::Timeline => TIMELINE_SIZE,
            Self::Histogram => HISTOGRAM_SIZE,
        }
    }

    fn draw<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        job: &Job,
        text: bool,
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        area.fill(&WHITE)?;
        match self {
            Self::Timeline => draw_timeline(area, job, text)?,
            Self::Histogram => draw_histogram(area, job, text)?,
        }
        area.present()?;
        Ok(())
    }
}

fn draw_error(path: &Path, error: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

fn write_svg(path: &Path, picture: Picture, job: &Job, text: bool) -> Result<(), PlotError> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, picture.size()).into_drawing_area();
        picture
            .draw(&area, job, text)
            .map_err(|e| draw_error(path, e))?;
    }
    std::fs::write(path, svg).map_err(|error| PlotError::Write {
        path: path.to_owned(),
        error,
    })
}

fn write_png(path: &Path, picture: Picture, job: &Job, text: bool) -> Result<(), PlotError> {
    let (width, height) = picture.size();
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        picture
            .draw(&area, job, text)
            .map_err(|e| draw_error(path, e))?;
    }
    let file = std::fs::File::create(path).map_err(|error| PlotError::Write {
        path: path.to_owned(),
        error,
    })?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&pixels)?;
            writer.finish()
        })
        .map_err(|e| draw_error(path, e))
}

/// A bar of the timeline: one call, or the means of a run of calls.
struct Row {
    /// Lowest call index it stands for.
    first: usize,
    /// Calls it stands for.
    calls: usize,
    at: [f64; 5],
    failed: bool,
}

fn rows(job: &Job) -> Vec<Row> {
    let per_row = job.calls.len().div_ceil(TIMELINE_MAX_ROWS);
    job.calls
        .chunks(per_row)
        .enumerate()
        .map(|(i, run)| {
            let mut at = [0.0; 5];
            for call in run {
                for (sum, t) in at.iter_mut().zip(call.at) {
                    *sum += t;
                }
            }
            Row {
                first: i * per_row,
                calls: run.len(),
                at: at.map(|sum| sum / run.len() as f64),
                failed: run.iter().any(|c| c.failed),
            }
        })
        .collect()
}

fn draw_timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    job: &Job,
    text: bool,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let rows = rows(job);
    let per_row = job.calls.len().div_ceil(TIMELINE_MAX_ROWS);
    let end = job.calls.iter().map(|c| c.at[4]).fold(0.0, f64::max);
    let x_max = if end > 0.0 { end * 1.03 } else { 1.0 };
    // With one call per bar, bar i is centred on i so its label sits by it;
    // a bar for a run of calls spans the run's indices.
    let (y_min, y_max) = if per_row == 1 {
        (-0.5, job.calls.len() as f64 - 0.5)
    } else {
        (0.0, job.calls.len() as f64)
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(20);
    if text {
        let mut title = job.title();
        if per_row > 1 {
            let _ = write!(title, " (each bar: mean times of {per_row} calls)");
        }
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(50)
            .y_label_area_size(70);
    } else {
        builder.x_label_area_size(5).y_label_area_size(5);
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, y_min..y_max)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_y_mesh()
        .light_line_style(RGBColor(235, 235, 235));
    if text {
        mesh.x_desc("seconds since the job was submitted")
            .y_desc("call")
            .y_label_formatter(&|y| format!("{y:.0}"))
            // Whole numbers only: no more labels than calls.
            .y_labels(job.calls.len().clamp(1, 10))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16));
    } else {
        // Axes carry labels, which need a font: grid lines and a frame
        // stand in for them.
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    if !text {
        frame(&chart.plotting_area().strip_coord_spec())?;
    }

    // Bars fill most of their band, but keep a pixel of gap when they can.
    let band = per_row as f64;
    let offset = if per_row == 1 { -0.5 } else { 0.0 };
    let (gap_low, gap_high) = if rows.len() <= 100 {
        (0.15, 0.85)
    } else {
        (0.0, 1.0)
    };
    let segments = [
        (0, 1, WAITING),
        (1, 2, SETUP),
        (2, 3, FUNCTION),
        (3, 4, RECORDING),
    ];
    chart.draw_series(rows.iter().flat_map(|row| {
        let base = row.first as f64 + offset;
        let low = base + band * gap_low;
        let high = base + band.min(row.calls as f64) * gap_high;
        segments.iter().filter_map(move |&(a, b, color)| {
            let color = if b == 3 && row.failed && per_row == 1 {
                FAILED
            } else {
                color
            };
            (row.at[b] > row.at[a])
                .then(|| Rectangle::new([(row.at[a], low), (row.at[b], high)], color.filled()))
        })
    }))?;
    let cross = if rows.len() <= 60 { 6 } else { 4 };
    chart.draw_series(rows.iter().filter(|r| r.failed).map(|row| {
        let middle = row.first as f64 + offset + band.min(row.calls as f64) / 2.0;
        Cross::new((row.at[4], middle), cross, FAILED.stroke_width(2))
    }))?;

    if text {
        let entries = [
            ("waiting for a worker", WAITING),
            ("setup", SETUP),
            ("function", FUNCTION),
            ("recording the outcome", RECORDING),
        ];
        for (label, color) in entries {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                });
        }
        if job.failed > 0 {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
                .label("failed call")
                .legend(|(x, y)| Cross::new((x + 7, y), 5, FAILED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
    }
    Ok(())
}

fn draw_histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    job: &Job,
    text: bool,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let durations: Vec<(f64, bool)> = job
        .calls
        .iter()
        .map(|c| (c.function_ms(), c.failed))
        .collect();
    let longest = durations.iter().map(|d| d.0).fold(0.0, f64::max);
    let (scale, unit) = if longest >= 10_000.0 {
        (1e-3, "s")
    } else {
        (1.0, "ms")
    };
    let values: Vec<(f64, bool)> = durations.iter().map(|&(d, f)| (d * scale, f)).collect();
    let low = values.iter().map(|v| v.0).fold(f64::INFINITY, f64::min);
    let high = values.iter().map(|v| v.0).fold(0.0, f64::max);
    let bins = ((values.len() as f64).sqrt().ceil() as usize).clamp(5, 60);
    let (low, high) = if high - low < 1e-9 {
        ((low - 0.5).max(0.0), low + 0.5)
    } else {
        let pad = (high - low) * 1e-6;
        (low, high + pad)
    };
    let width = (high - low) / bins as f64;
    let mut succeeded = vec![0u32; bins];
    let mut failed = vec![0u32; bins];
    for &(v, f) in &values {
        let bin = (((v - low) / width) as usize).min(bins - 1);
        if f {
            failed[bin] += 1;
        } else {
            succeeded[bin] += 1;
        }
    }
    let tallest = succeeded
        .iter()
        .zip(&failed)
        .map(|(s, f)| s + f)
        .max()
        .unwrap_or(0);
    // Headroom above the tallest bar keeps the legend off the bars.
    let y_max = (f64::from(tallest.max(1)) * 1.3).ceil() as u32;

    let mut builder = ChartBuilder::on(area);
    builder.margin(20);
    if text {
        builder
            .caption(
                format!("function durations, {}", job.title()),
                ("sans-serif", 20),
            )
            .x_label_area_size(50)
            .y_label_area_size(60);
    } else {
        builder.x_label_area_size(5).y_label_area_size(5);
    }
    let mut chart = builder.build_cartesian_2d(low..high, 0..y_max)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235));
    let x_desc = format!("function duration ({unit})");
    let decimals = match high - low {
        span if span >= 20.0 => 0,
        span if span >= 2.0 => 1,
        _ => 2,
    };
    let x_label = move |x: &f64| format!("{x:.decimals$}");
    if text {
        mesh.x_desc(x_desc)
            .y_desc("calls")
            .x_label_formatter(&x_label)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16));
    } else {
        // Axes carry labels, which need a font: grid lines and a frame
        // stand in for them.
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw()?;
    if !text {
        frame(&chart.plotting_area().strip_coord_spec())?;
    }
    let left = |i: usize| low + width * i as f64;
    chart.draw_series((0..bins).filter(|&i| succeeded[i] > 0).map(|i| {
        Rectangle::new(
            [(left(i), 0), (left(i + 1), succeeded[i])],
            FUNCTION.filled(),
        )
    }))?;
    chart.draw_series((0..bins).filter(|&i| failed[i] > 0).map(|i| {
        let base = succeeded[i];
        Rectangle::new(
            [(left(i), base), (left(i + 1), base + failed[i])],
            FAILED.filled(),
        )
    }))?;
    // Outlines, so neighbouring bars stay apart.
    chart.draw_series(
        (0..bins)
            .filter(|&i| succeeded[i] + failed[i] > 0)
            .map(|i| {
                Rectangle::new(
                    [(left(i), 0), (left(i + 1), succeeded[i] + failed[i])],
                    WHITE.stroke_width(1),
                )
            }),
    )?;
    if text {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, u32)>>())?
            .label("succeeded")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], FUNCTION.filled()));
        if job.failed > 0 {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, u32)>>())?
                .label("failed")
                .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], FAILED.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
    }
    Ok(())
}

/// Lines along the bottom and left of a plotting area.
fn frame<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (width, height) = area.dim_in_pixel();
    let (right, bottom) = (width as i32 - 1, height as i32 - 1);
    area.draw(&PathElement::new(
        [(0, 0), (0, bottom), (right, bottom)],
        BLACK.stroke_width(1),
    ))?;
    Ok(())
}
