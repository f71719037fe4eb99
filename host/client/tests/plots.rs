//! The plots of a finished job: a timeline and a histogram as SVG and PNG,
//! and `calls.csv`, written from a real map and from made-up records of a
//! large job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wisp::plots::{self, PlotOptions};
use wisp::{CallStatus, FunctionExecutor, WaitFor};

/// Where the pictures of a test go: `WISP_PLOTS_OUT/<name>` when that is
/// set (to look at them), a temporary directory otherwise.
fn out_dir(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("WISP_PLOTS_OUT") {
        Some(root) => (None, PathBuf::from(root).join(name)),
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join(name);
            (Some(dir), path)
        }
    }
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("PNG is readable");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR", "{} has no header", path.display());
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    (width, height)
}

fn svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("SVG is readable");
    assert!(text.trim_start().starts_with("<svg"), "{}", path.display());
    assert!(text.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(text.contains("<rect"), "{} has no bars", path.display());
    text
}

/// The CSV's rows as fields, checked to have the header's columns.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("CSV is readable");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(plots::CSV_HEADER));
    let columns = plots::CSV_HEADER.split(',').count();
    lines
        .map(|line| {
            let fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            assert_eq!(fields.len(), columns, "{line}");
            fields
        })
        .collect()
}

fn column(name: &str) -> usize {
    plots::CSV_HEADER
        .split(',')
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_map_writes_its_timeline_histogram_and_csv() {
    let storage = tempfile::tempdir().expect("temp dir");
    let config = wisp::Config {
        storage_dir: storage.path().join("storage"),
        workers: 2,
        runtime_timeout: Duration::from_secs(30),
        ..wisp::Config::default()
    };
    let exec = FunctionExecutor::builder()
        .config(config)
        .build()
        .await
        .expect("executor starts");
    let faults = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guests/faults");
    let f = exec.function(&faults).expect("fixture builds");
    // Ten calls of various lengths, two of them with arguments that fail.
    let args = serde_json::json!([40, 80, "x", 20, 120, 60, 10, "y", 100, 30]);
    let args: Vec<serde_json::Value> = serde_json::from_value(args).expect("array");
    let futures = exec.map(&f, "sleep_ms", args).await.expect("map runs");
    exec.wait(&futures, WaitFor::AllCompleted, None).await;

    let (_keep, dir) = out_dir("small-map");
    let files = plots::write_job_plots(&futures, &dir).expect("plots are written");
    assert_eq!(
        (files.calls, files.pending, files.calls_per_row),
        (10, 0, 1)
    );

    assert_eq!(png_size(&files.timeline_png), plots::TIMELINE_SIZE);
    assert_eq!(png_size(&files.histogram_png), plots::HISTOGRAM_SIZE);
    let timeline = svg(&files.timeline_svg);
    let histogram = svg(&files.histogram_svg);
    if files.text {
        assert!(timeline.contains("seconds since the job was submitted"));
        assert!(timeline.contains(&format!("job {}", futures[0].job_id())));
        assert!(timeline.contains("10 calls, 2 failed"));
        assert!(histogram.contains("function duration (ms)"));
    }

    let rows = csv_rows(&files.csv);
    assert_eq!(rows.len(), 10);
    let (call, outcome, kind) = (column("call"), column("outcome"), column("error_kind"));
    for (row, future) in rows.iter().zip(&futures) {
        assert_eq!(row[column("job")], future.job_id());
        assert_eq!(row[call], future.call_id());
        assert_eq!(row[column("attempts")], "1");
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r[outcome] == "error")
        .map(|r| r[kind].as_str())
        .collect();
    assert_eq!(failed, ["bad_arguments", "bad_arguments"]);
    // The 120 ms call ran its function for at least 120 ms, and every call
    // starts no earlier than the job's clock.
    let function_ms: f64 = rows[4][column("function_ms")].parse().expect("a number");
    assert!(function_ms >= 120.0, "{function_ms}");
    for row in &rows {
        let times: Vec<f64> = (column("submitted_ms")..=column("done_ms"))
            .map(|i| row[i].parse().expect("a number"))
            .collect();
        assert!(
            times[0] >= 0.0 && times.windows(2).all(|w| w[0] <= w[1]),
            "{row:?}"
        );
    }
    exec.close().await.expect("executor closes");
}

/// Records of a job of `n` calls on 8 workers: each call waits for a
/// worker, takes 2 ms to set up, runs 20 to 80 ms, and every 997th fails.
fn made_up_job(n: usize) -> Vec<Arc<CallStatus>> {
    let submitted = 1_700_000_000_000_000u64;
    let mut free_at = [submitted + 5_000; 8];
    (0..n)
        .map(|i| {
            let worker = (0..8).min_by_key(|&w| free_at[w]).expect("8 workers");
            let start = free_at[worker];
            let function_start = start + 2_000;
            let function_end = function_start + 20_000 + (i as u64 * 7_919 % 60_000);
            let done = function_end + 500;
            free_at[worker] = done;
            let failed = i % 997 == 996;
            let mut status = serde_json::json!({
                "job_id": "plots-test",
                "call_id": format!("{i:05}"),
                "outcome": if failed { "error" } else { "success" },
                "output_size": 0,
                "timings": {
                    "submitted_us": submitted,
                    "worker_start_us": start,
                    "function_start_us": function_start,
                    "function_end_us": function_end,
                    "done_us": done,
                },
                "worker": format!("worker-{worker}"),
            });
            if failed {
                status["error"] = serde_json::json!({"kind": "function", "message": "no"});
            }
            Arc::new(serde_json::from_value(status).expect("a call status"))
        })
        .collect()
}

#[test]
fn ten_thousand_calls_are_drawn_in_runs_of_calls() {
    let statuses = made_up_job(10_000);
    let (_keep, dir) = out_dir("ten-thousand");
    let files = plots::write_job_plots(&statuses, &dir).expect("plots are written");
    assert_eq!(files.calls, 10_000);
    assert_eq!(files.calls_per_row, 40);
    assert_eq!(png_size(&files.timeline_png), plots::TIMELINE_SIZE);
    assert_eq!(png_size(&files.histogram_png), plots::HISTOGRAM_SIZE);
    let timeline = svg(&files.timeline_svg);
    // One bar of up to four segments per run, not per call.
    assert!(timeline.matches("<rect").count() < 4 * 300, "too many bars");
    if files.text {
        assert!(timeline.contains("mean times of 40 calls"));
    }
    svg(&files.histogram_svg);
    let rows = csv_rows(&files.csv);
    assert_eq!(rows.len(), 10_000);
    let failed = rows.iter().filter(|r| r[column("outcome")] == "error");
    assert_eq!(failed.count(), 10);
}

#[test]
fn without_text_the_pictures_are_still_drawn() {
    let statuses = made_up_job(10);
    let (_keep, dir) = out_dir("no-text");
    let files = plots::write_job_plots_with(&statuses, &dir, &PlotOptions { text: false })
        .expect("plots are written");
    assert!(!files.text);
    for svg_file in [&files.timeline_svg, &files.histogram_svg] {
        assert!(!svg(svg_file).contains("<text"), "{}", svg_file.display());
    }
    assert_eq!(png_size(&files.timeline_png), plots::TIMELINE_SIZE);
    assert_eq!(csv_rows(&files.csv).len(), 10);
}

#[test]
fn calls_without_an_outcome_are_not_plotted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let none: [Arc<CallStatus>; 0] = [];
    let error = plots::write_job_plots(&none, dir.path()).expect_err("nothing to plot");
    assert!(matches!(error, plots::PlotError::NoCalls { pending: 0 }));
}
