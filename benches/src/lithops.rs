//! wisp against Lithops on this machine, in the same run (`--lithops`).
//!
//! `benches/lithops/setup.sh` installs Lithops into a throwaway virtualenv;
//! `benches/lithops/driver.py` runs, on Lithops' localhost backend with
//! localhost storage, the two workloads that wisp runs here too: a map of
//! no-op calls, and the word count of `examples/wordcount` over the First
//! Folio. Each run of the benchmark runs wisp's word count and then the
//! driver twice: once with Lithops' default localhost handler (version 2,
//! a new process of the host Python per call) and once with version 1 (one
//! process per job, which forks its workers). The ratios are taken within
//! each run, against wisp's figures from the same run.
//!
//! When Python is missing or the set-up or a driver run fails, the table
//! says why in one row instead of the figures, and the rest of the
//! benchmark stands.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;
use tokio::runtime::Runtime;
use wisp::partition::{self, Chunking};

use crate::stats::{Row, Summary, Unit};
use crate::{Args, Run};

/// Bytes per word-count chunk, as in the README's `--chunk-size 256KiB`.
const CHUNK_SIZE: u64 = 256 * 1024;

/// Lithops' no-op calls when `--lithops-calls` is not given: `--calls`, at
/// most this many. Lithops' default localhost handler starts a Python
/// process per call and runs a few calls a second on two cores, so 10,000
/// calls would take most of an hour per run.
pub const DEFAULT_CALLS: usize = 1_000;

/// The localhost handlers measured: Lithops' default first.
const HANDLERS: [u8; 2] = [2, 1];

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// wisp's word count, `map_reduce` on a localhost executor.
    pub wisp_word_count: WordCount,
    /// Lithops with each handler of [`HANDLERS`], in that order.
    pub lithops: Vec<Side>,
}

/// One driver run: Lithops with one localhost handler.
#[derive(Debug, Clone)]
pub struct Side {
    /// `lithops.__version__`.
    pub version: String,
    /// The Python that ran it.
    pub python: String,
    /// The localhost handler's version, as Lithops reports it.
    pub handler: u64,
    /// Worker processes.
    pub workers: u64,
    /// No-op calls asked for, and made (fewer when they would not fit in
    /// the driver's time budget).
    pub calls_requested: u64,
    pub calls: u64,
    /// From `map()` to the end of `get_result()`.
    pub noop_wall: Duration,
    /// Lithops' word count.
    pub word_count: WordCount,
    /// The whole driver process, Python's start to its exit.
    pub driver_wall: Duration,
}

/// A word count's time and result.
#[derive(Debug, Clone, Copy)]
pub struct WordCount {
    /// From listing the files to the reduced result in hand.
    pub wall: Duration,
    pub chunks: u64,
    pub total_words: u64,
    pub distinct_words: u64,
}

/// The comparison across the runs: ready to run, or skipped and why.
pub struct Comparison {
    state: State,
    driver: PathBuf,
    data: PathBuf,
    wordcount: Vec<u8>,
    calls: usize,
    workers: usize,
}

enum State {
    Ready { python: PathBuf },
    Skipped(String),
}

impl Comparison {
    /// Installs Lithops (or finds it installed) and builds wisp's word
    /// count. A failed set-up is no error: the comparison is then skipped,
    /// and says why. A word count that does not build is an error.
    pub fn start(args: &Args, workers: usize) -> Result<Self> {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let data = here.join("../examples/data/first-folio");
        let crate_dir = here.join("../examples/wordcount");
        eprintln!("building {} for wasm32-wasip1…", crate_dir.display());
        let wasm_path = wisp::builder::build_crate(&crate_dir)
            .context("the wordcount example does not build")?;
        let wordcount = std::fs::read(&wasm_path)
            .with_context(|| format!("cannot read {}", wasm_path.display()))?;
        let state = match setup(&here.join("lithops/setup.sh")) {
            Ok(python) => State::Ready { python },
            Err(reason) => {
                eprintln!("Lithops: skipped ({reason})");
                State::Skipped(reason)
            }
        };
        Ok(Self {
            state,
            driver: here.join("lithops/driver.py"),
            data,
            wordcount,
            calls: args
                .lithops_calls
                .unwrap_or_else(|| args.calls.min(DEFAULT_CALLS)),
            workers,
        })
    }

    /// Runs wisp's word count, then Lithops, with their data in `dir`.
    /// `None` once the comparison is skipped, from this run on.
    pub fn run(&mut self, runtime: &Runtime, dir: &Path, run: usize) -> Result<Option<Figures>> {
        let State::Ready { python } = &self.state else {
            return Ok(None);
        };
        let wisp_word_count = runtime.block_on(wisp_word_count(
            &dir.join("wisp"),
            &self.wordcount,
            self.workers,
            &self.data,
        ))?;
        let mut lithops = Vec::with_capacity(HANDLERS.len());
        for handler in HANDLERS {
            let work_dir = dir.join(format!("lithops-v{handler}"));
            match self.driver(python, &work_dir, handler) {
                Ok(side) if side.handler == u64::from(handler) => lithops.push(side),
                Ok(side) => {
                    let reason = format!(
                        "run {run}: asked for localhost handler v{handler}, Lithops ran v{}",
                        side.handler
                    );
                    eprintln!("Lithops: skipped ({reason})");
                    self.state = State::Skipped(reason);
                    return Ok(None);
                }
                Err(e) => {
                    let reason = format!("run {run}, localhost handler v{handler}: {e:#}");
                    eprintln!("Lithops: skipped ({reason})");
                    self.state = State::Skipped(reason);
                    return Ok(None);
                }
            }
        }
        Ok(Some(Figures {
            wisp_word_count,
            lithops,
        }))
    }

    fn driver(&self, python: &Path, work_dir: &Path, handler: u8) -> Result<Side> {
        eprintln!("Lithops, localhost handler v{handler}…");
        let started = Instant::now();
        let mut child = Command::new(python)
            .arg(&self.driver)
            .arg("--calls")
            .arg(self.calls.to_string())
            .arg("--workers")
            .arg(self.workers.to_string())
            .arg("--localhost-version")
            .arg(handler.to_string())
            .arg("--data")
            .arg(&self.data)
            .arg("--chunk-size")
            .arg(CHUNK_SIZE.to_string())
            .arg("--work-dir")
            .arg(work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        // The driver's progress is passed on as it comes; its last line
        // says why, when it fails.
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let relay = std::thread::spawn(move || {
            let mut last = String::new();
            for line in BufReader::new(stderr)
                .lines()
                .map_while(std::io::Result::ok)
            {
                if !line.trim().is_empty() {
                    eprintln!("  {line}");
                    last = line;
                }
            }
            last
        });
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .context("no stdout pipe")?
            .read_to_string(&mut stdout)
            .context("cannot read the driver's output")?;
        let status = child.wait().context("cannot wait for the driver")?;
        let driver_wall = started.elapsed();
        let last = relay.join().unwrap_or_default();
        if !status.success() {
            bail!("driver.py failed ({status}): {last}");
        }
        let line = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .context("driver.py printed no figures")?;
        let json: Value = serde_json::from_str(line)
            .with_context(|| format!("driver.py printed no JSON: {line}"))?;
        parse_side(&json, driver_wall).context("driver.py's figures are incomplete")
    }

    /// Lines for the table's header: what ran, how long Lithops took, and
    /// whether the word counts agree.
    pub fn notes(&self, runs: &[Run]) -> Vec<String> {
        if let State::Skipped(reason) = &self.state {
            return vec![format!("- Lithops: skipped ({reason})")];
        }
        let figures: Vec<&Figures> = runs.iter().filter_map(|r| r.lithops.as_ref()).collect();
        let Some(first) = figures.first() else {
            return Vec::new();
        };
        let default = &first.lithops[0];
        let mut notes = vec![format!(
            "- Lithops {} on Python {}, localhost backend with localhost storage (both in the \
             run's directory), {} worker processes, runtime: the virtualenv's own python (no \
             container). Handler v2 is Lithops' default (a new Python process per call); \
             v1 runs each job in one process that forks the workers",
            default.version, default.python, default.workers
        )];
        let mut time = Vec::new();
        for (i, handler) in HANDLERS.iter().enumerate() {
            let sides = figures.iter().map(|f| &f.lithops[i]);
            let calls: Vec<u64> = sides.clone().map(|s| s.calls).collect();
            let requested = sides.clone().map(|s| s.calls_requested).max().unwrap_or(0);
            let fewer = if calls.iter().any(|&c| c < requested) {
                format!(" (of {requested} asked for: the driver cut them to fit its 600 s budget)")
            } else {
                String::new()
            };
            time.push(format!(
                "v{handler}: {} s per run (median; {} no-op calls{fewer})",
                seconds(sides.map(|s| s.driver_wall)),
                span(&calls)
            ));
        }
        notes.push(format!(
            "- Lithops' driver, Python's start to its exit: {}",
            time.join("; ")
        ));
        let chunks = first.wisp_word_count.chunks;
        let mut counts = vec![format!(
            "wisp {} words, {} distinct",
            first.wisp_word_count.total_words, first.wisp_word_count.distinct_words
        )];
        let mut equal = true;
        for f in &figures {
            for (side, handler) in f.lithops.iter().zip(HANDLERS) {
                let (w, l) = (&f.wisp_word_count, &side.word_count);
                let same = (w.total_words, w.distinct_words, w.chunks)
                    == (l.total_words, l.distinct_words, l.chunks);
                if !same {
                    equal = false;
                    counts.push(format!(
                        "Lithops v{handler} {} words, {} distinct in {} chunks",
                        l.total_words, l.distinct_words, l.chunks
                    ));
                }
            }
        }
        notes.push(format!(
            "- word count: examples/data/first-folio cut into {chunks} newline-aligned chunks \
             of at most about {} KiB, each chunk's text passed to one map call, one reduce \
             call; timed from listing the files to the reduced result; {}",
            CHUNK_SIZE / 1024,
            if equal {
                format!("{}, the same in Lithops", counts[0])
            } else {
                format!("results DIFFER: {}", counts.join("; "))
            }
        ));
        notes
    }

    /// The rows of the comparison, or one that says why it was skipped.
    pub fn rows<'a>(&self, args: &Args, runs: &[Run]) -> Vec<Row<'a, Run>> {
        if let State::Skipped(reason) = &self.state {
            return vec![Row::section(format!("Lithops: skipped ({reason})"))];
        }
        if runs.iter().any(|r| r.lithops.is_none()) {
            return vec![Row::section("Lithops: skipped (a run has no figures)")];
        }
        let wisp_calls = args.calls as f64;
        let wisp_rate = move |r: &Run| wisp_calls / r.client.map.wall.as_secs_f64();
        let side = |r: &Run, i: usize| -> Side { lithops(r).lithops[i].clone() };
        let lithops_rate = move |r: &Run, i: usize| {
            let s = side(r, i);
            s.calls as f64 / s.noop_wall.as_secs_f64()
        };
        let workers = self.workers;
        let calls: Vec<u64> = runs.iter().map(|r| lithops(r).lithops[0].calls).collect();
        let calls_v1: Vec<u64> = runs.iter().map(|r| lithops(r).lithops[1].calls).collect();
        vec![
            Row::section(format!(
                "wisp against Lithops: localhost backend and storage, {workers} workers \
                 each, ratios within each run"
            )),
            Row::figure(
                format!(
                    "Lithops `map` + `get_result`, {} no-op calls, handler v2 (default)",
                    span(&calls)
                ),
                Unit::CallsPerSecond,
                move |r| lithops_rate(r, 0),
            ),
            Row::figure(
                format!(
                    "Lithops `map` + `get_result`, {} no-op calls, handler v1",
                    span(&calls_v1)
                ),
                Unit::CallsPerSecond,
                move |r| lithops_rate(r, 1),
            ),
            Row::figure(
                "… the same as wall time per call, handler v2",
                Unit::Millis,
                move |r| 1e3 / lithops_rate(r, 0),
            ),
            Row::figure(
                "… the same as wall time per call, handler v1",
                Unit::Millis,
                move |r| 1e3 / lithops_rate(r, 1),
            ),
            Row::figure(
                format!(
                    "wisp `map` + `get_results`, {} no-op calls (as above)",
                    args.calls
                ),
                Unit::CallsPerSecond,
                wisp_rate,
            ),
            Row::figure(
                "no-op calls/s: wisp ÷ Lithops v2 (goal ≥ 100)",
                Unit::Ratio,
                move |r| wisp_rate(r) / lithops_rate(r, 0),
            ),
            Row::figure("no-op calls/s: wisp ÷ Lithops v1", Unit::Ratio, move |r| {
                wisp_rate(r) / lithops_rate(r, 1)
            }),
            Row::figure(
                "word count, First Folio: wisp `map_reduce` + `get_result`",
                Unit::Seconds,
                |r| lithops(r).wisp_word_count.wall.as_secs_f64(),
            ),
            Row::figure(
                "word count: Lithops `map_reduce` + `get_result`, handler v2 (default)",
                Unit::Seconds,
                move |r| side(r, 0).word_count.wall.as_secs_f64(),
            ),
            Row::figure("word count: Lithops, handler v1", Unit::Seconds, move |r| {
                side(r, 1).word_count.wall.as_secs_f64()
            }),
            Row::figure(
                "word count time: Lithops v2 ÷ wisp",
                Unit::Ratio,
                move |r| ratio(side(r, 0).word_count.wall, lithops(r).wisp_word_count.wall),
            ),
            Row::figure(
                "word count time: Lithops v1 ÷ wisp",
                Unit::Ratio,
                move |r| ratio(side(r, 1).word_count.wall, lithops(r).wisp_word_count.wall),
            ),
        ]
    }
}

fn lithops(run: &Run) -> &Figures {
    run.lithops
        .as_ref()
        .expect("rows are made only when every run has Lithops' figures")
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// The median of some durations, in seconds, as the table writes them.
fn seconds(values: impl Iterator<Item = Duration>) -> String {
    Summary::of(values.map(|d| d.as_secs_f64()))
        .map_or_else(|| "?".to_owned(), |s| format!("{:.0}", s.median))
}

/// `n`, or `min–max` when the runs differ.
fn span(values: &[u64]) -> String {
    let min = values.iter().min().copied().unwrap_or(0);
    let max = values.iter().max().copied().unwrap_or(0);
    if min == max {
        min.to_string()
    } else {
        format!("{min}–{max}")
    }
}

/// Runs `setup.sh`; the virtualenv's python, or why Lithops cannot run.
fn setup(script: &Path) -> Result<PathBuf, String> {
    eprintln!("setting up Lithops ({})…", script.display());
    let output = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} with bash: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stderr.lines() {
        eprintln!("  {line}");
    }
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim_start_matches("setup.sh: ")
        .to_owned();
    match output.status.code() {
        Some(0) => {}
        Some(3) => return Err(last),
        _ => return Err(format!("setup.sh failed ({}): {last}", output.status)),
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| "setup.sh did not say where its python is".to_owned())?;
    if !python.is_file() {
        return Err(format!(
            "setup.sh named {}, which is not a file",
            python.display()
        ));
    }
    Ok(python)
}

/// wisp's word count: the same chunks and the same timing as the driver's.
async fn wisp_word_count(
    dir: &Path,
    wasm: &[u8],
    workers: usize,
    data: &Path,
) -> Result<WordCount> {
    eprintln!("wisp word count over {}…", data.display());
    let exec = crate::client::executor(dir, workers).await?;
    let f = exec
        .function_from_bytes("wordcount", wasm.to_vec())
        .context("the executor cannot load the wordcount module")?;
    let started = Instant::now();
    let files = partition::files_under(data)?;
    let chunks = partition::partition(&files, Chunking::Size(CHUNK_SIZE))?;
    let inputs = chunks
        .iter()
        .map(partition::Chunk::read_text)
        .collect::<Result<Vec<_>, _>>()?;
    let job = exec
        .map_reduce(&f, "count_words", inputs, "merge_counts")
        .await
        .context("the word count's map failed")?;
    let result: Value = exec
        .get_result(&job.reduce)
        .await
        .context("the word count's reduce failed")?;
    let wall = started.elapsed();
    exec.close()
        .await
        .context("the executor did not close cleanly")?;
    Ok(WordCount {
        wall,
        chunks: chunks.len() as u64,
        total_words: number(&result, &["total_words"])?,
        distinct_words: number(&result, &["distinct_words"])?,
    })
}

fn parse_side(json: &Value, driver_wall: Duration) -> Result<Side> {
    let noop_seconds = float(json, &["noop", "seconds"])?;
    let wc_seconds = float(json, &["word_count", "seconds"])?;
    ensure!(
        noop_seconds > 0.0 && wc_seconds > 0.0,
        "times must be positive"
    );
    Ok(Side {
        version: text(json, &["lithops_version"])?,
        python: text(json, &["python"])?,
        handler: number(json, &["localhost_version"])?,
        workers: number(json, &["workers"])?,
        calls_requested: number(json, &["noop", "calls_requested"])?,
        calls: number(json, &["noop", "calls"])?,
        noop_wall: Duration::from_secs_f64(noop_seconds),
        word_count: WordCount {
            wall: Duration::from_secs_f64(wc_seconds),
            chunks: number(json, &["word_count", "chunks"])?,
            total_words: number(json, &["word_count", "total_words"])?,
            distinct_words: number(json, &["word_count", "distinct_words"])?,
        },
        driver_wall,
    })
}

fn at<'v>(json: &'v Value, path: &[&str]) -> Result<&'v Value> {
    path.iter().try_fold(json, |v, key| {
        v.get(key)
            .with_context(|| format!("no `{}`", path.join(".")))
    })
}

fn number(json: &Value, path: &[&str]) -> Result<u64> {
    at(json, path)?
        .as_u64()
        .with_context(|| format!("`{}` is not a whole number", path.join(".")))
}

fn float(json: &Value, path: &[&str]) -> Result<f64> {
    at(json, path)?
        .as_f64()
        .with_context(|| format!("`{}` is not a number", path.join(".")))
}

fn text(json: &Value, path: &[&str]) -> Result<String> {
    Ok(at(json, path)?
        .as_str()
        .with_context(|| format!("`{}` is not a string", path.join(".")))?
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_output_is_read() {
        let json: Value = serde_json::from_str(
            r#"{"lithops_version": "3.8.0", "python": "3.11.7", "localhost_version": 2,
                "workers": 2,
                "noop": {"calls_requested": 1000, "calls": 900, "seconds": 300.5},
                "word_count": {"seconds": 12.25, "chunks": 35, "total_words": 833138,
                               "distinct_words": 28772}}"#,
        )
        .expect("JSON");
        let side = parse_side(&json, Duration::from_secs(400)).expect("complete");
        assert_eq!((side.version.as_str(), side.handler), ("3.8.0", 2));
        assert_eq!((side.calls_requested, side.calls), (1000, 900));
        assert_eq!(side.noop_wall, Duration::from_secs_f64(300.5));
        assert_eq!(side.word_count.total_words, 833_138);
        let missing: Value = serde_json::from_str(r#"{"noop": {"seconds": 1}}"#).expect("JSON");
        let err = parse_side(&missing, Duration::ZERO).expect_err("incomplete");
        assert!(err.to_string().contains("word_count.seconds"), "{err}");
    }

    #[test]
    fn spans_name_one_count_or_the_range() {
        assert_eq!(span(&[1000, 1000]), "1000");
        assert_eq!(span(&[900, 1000, 950]), "900–1000");
    }
}
