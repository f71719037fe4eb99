//! wisp's scaling benchmark: how a localhost map grows with its number of
//! calls, and how the word count over the corpus in S3 changes with the
//! number of chunks, in one run.
//!
//! ```text
//! scripts/s3-server.sh start && eval "$(scripts/s3-server.sh env)"
//! cargo run -p wisp-bench --bin scale -- [--runs R] [--quick] [--sizes N,…]
//! ```
//!
//! - **Map scaling.** For each size (1,000, 10,000 and 100,000 no-op calls
//!   by default), a fresh process (this program, started again with
//!   `--child-calls N`) starts a `FunctionExecutor` on the localhost
//!   backend with local-directory storage, makes one warm call, then maps
//!   `noop` of `tests/guests/faults` over N inputs and collects the results.
//!   It reports the map's wall time, its resident memory before the map,
//!   the highest `VmRSS` sampled every 5 ms during the map, the process'
//!   `VmHWM`, and the status objects the job left in storage (the job's
//!   data is kept for that). A process per measurement keeps `VmHWM` to
//!   that measurement alone.
//! - **Word count from S3.** When `WISP_TEST_S3_ENDPOINT` is set, the
//!   35 files of `examples/data/first-folio` are uploaded with the storage
//!   API to a fresh bucket, and `count_words` of `examples/wordcount` is
//!   mapped over the parts of the objects under the prefix, as
//!   `wisp submit --data s3://… --chunk-number N` does, then reduced with
//!   `merge_counts`; N is 1, 2, 4 and 8 times the number of cores. The
//!   same count over text cut from the local files with the same N runs on
//!   local storage in the same run, for the ratio.
//!
//! Each figure is the median over the runs, with the smallest and the
//! largest; each ratio is taken within one run, then summarised the same
//! way. Progress goes to stderr, the table to stdout. The bucket and the
//! local job data are removed at the end.

#[path = "../machine.rs"]
#[allow(
    dead_code,
    reason = "shared with the main benchmark, which uses all of it"
)]
mod system;
#[path = "../stats.rs"]
#[allow(
    dead_code,
    reason = "shared by the benchmark binaries; each uses part of it"
)]
mod table;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Parser;
use serde_json::{Value, json};
use wisp::FunctionExecutor;
use wisp::config::{S3Section, StorageKind};
use wisp::partition::{self, Chunking};

use table::{Row, Unit};

/// Words in the corpus, and distinct words: every count is checked.
const TOTAL_WORDS: u64 = 833_138;
const DISTINCT_WORDS: u64 = 28_772;
/// The key prefix the corpus is uploaded under.
const PREFIX: &str = "first-folio/";
/// How often the map's resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Measures how a localhost map scales with its number of calls, and the
/// word count over the corpus in S3 at several chunk counts; prints one
/// Markdown table.
#[derive(Debug, Clone, Parser)]
#[command(name = "scale")]
struct Args {
    /// Runs; each figure is the median over them, with min and max.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Numbers of no-op calls to map, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000, 100_000])]
    sizes: Vec<usize>,
    /// Chunks per core of each object for the S3 word count (each object
    /// is cut into this many times the number of cores).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 4, 8])]
    chunks_per_core: Vec<u64>,
    /// A short run: sizes 1,000 and 10,000, chunks per core 1 and 8.
    #[arg(long)]
    quick: bool,
    /// Leave out the word count from S3 even when a server is configured.
    #[arg(long)]
    no_s3: bool,
    /// Where the local storage of the runs goes (a fresh directory inside
    /// it, removed at the end). Default: the system's temporary directory.
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Internal: measure one map of this many calls in this process and
    /// print the figures as JSON.
    #[arg(long, hide = true)]
    child_calls: Option<usize>,
    /// Internal: the module the child maps over.
    #[arg(long, hide = true)]
    wasm: Option<PathBuf>,
}

/// One map measured in a child process.
#[derive(Debug, Clone, Copy)]
struct MapFigures {
    calls: usize,
    wall: Duration,
    rss_before: f64,
    rss_peak: f64,
    hwm: f64,
    status_objects: u64,
    list_time: Duration,
}

/// One word count over the corpus at one chunk count.
#[derive(Debug, Clone, Copy)]
struct WordCount {
    parts: u64,
    s3: Duration,
    local: Duration,
}

/// Everything one run measured.
struct Run {
    maps: Vec<MapFigures>,
    word_counts: Vec<WordCount>,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if let Some(calls) = args.child_calls {
        let wasm = args.wasm.clone().context("--child-calls needs --wasm")?;
        let dir = args
            .storage_dir
            .clone()
            .context("--child-calls needs --storage-dir")?;
        return child(calls, &wasm, &dir);
    }
    if args.quick {
        args.sizes = vec![1_000, 10_000];
        args.chunks_per_core = vec![1, 8];
    }
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(
        !args.sizes.is_empty() && args.sizes.iter().all(|&n| n > 0),
        "--sizes needs sizes of at least 1"
    );
    ensure!(
        args.chunks_per_core.iter().all(|&k| k > 0),
        "--chunks-per-core must be at least 1"
    );
    let threads = std::thread::available_parallelism()
        .context("cannot tell how many cores this machine has")?
        .get();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let faults = build(&here.join("../tests/guests/faults"))?;
    let s3 = if args.no_s3 {
        None
    } else {
        match Server::from_env() {
            Some(server) => Some(server),
            None => {
                eprintln!(
                    "WISP_TEST_S3_ENDPOINT is not set: the word count from S3 is left out \
                     (scripts/s3-server.sh start, then eval \"$(scripts/s3-server.sh env)\")"
                );
                None
            }
        }
    };
    let wordcount = if s3.is_some() {
        Some(std::fs::read(build(&here.join("../examples/wordcount"))?)?)
    } else {
        None
    };

    let storage_parent = args.storage_dir.clone().unwrap_or_else(std::env::temp_dir);
    let storage = tempfile::Builder::new()
        .prefix("wisp-bench-scale-")
        .tempdir_in(&storage_parent)
        .with_context(|| format!("cannot create a directory in {}", storage_parent.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let load_before = system::load_average();

    let mut corpus = None;
    if let (Some(server), Some(wasm)) = (&s3, &wordcount) {
        corpus = Some(runtime.block_on(Corpus::upload(
            server,
            wasm,
            &storage.path().join("local"),
            threads,
        ))?);
    }
    let mut runs = Vec::with_capacity(args.runs);
    let mut failure = None;
    for run in 1..=args.runs {
        eprintln!("run {run} of {}…", args.runs);
        let mut maps = Vec::with_capacity(args.sizes.len());
        for &calls in &args.sizes {
            let dir = storage.path().join(format!("run-{run}-{calls}"));
            match map_in_child(calls, &faults, &dir) {
                Ok(figures) => maps.push(figures),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut word_counts = Vec::new();
        if let Some(corpus) = &corpus {
            for &k in &args.chunks_per_core {
                match runtime.block_on(corpus.count(k * threads as u64)) {
                    Ok(figures) => word_counts.push(figures),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if failure.is_some() {
            break;
        }
        runs.push(Run { maps, word_counts });
    }
    let load_after = system::load_average();
    let mut corpus_note = None;
    if let Some(corpus) = corpus {
        corpus_note = Some(corpus.note());
        runtime.block_on(corpus.remove())?;
    }
    eprintln!("removing {}…", storage.path().display());
    let storage_path = storage.path().to_owned();
    storage
        .close()
        .with_context(|| format!("cannot remove {}", storage_path.display()))?;
    if let Some(e) = failure {
        return Err(e);
    }

    println!("## wisp scaling benchmark\n");
    println!("- wisp {}", env!("CARGO_PKG_VERSION"));
    println!(
        "- machine: {threads} cores (nproc), {}",
        system::cpu_model()
    );
    println!(
        "- local storage in {} ({})",
        storage_parent.display(),
        system::file_system(&storage_parent)
    );
    println!("- load average (1, 5, 15 min) before: {load_before}; after: {load_after}");
    println!(
        "- map: `noop` of tests/guests/faults, {threads} workers, each size in a fresh \
         process; memory is that process' (client and workers share it)"
    );
    if let Some(note) = corpus_note {
        println!("{note}");
    }
    println!(
        "- {} runs: each figure is the median over the runs, with min and max; ratios \
         are taken within each run",
        runs.len()
    );
    println!();
    print!("{}", table::markdown(&rows(&args, threads), &runs));
    Ok(())
}

/// Builds a guest crate for wasm32-wasip1 and returns its module's path.
fn build(dir: &Path) -> Result<PathBuf> {
    eprintln!("building {} for wasm32-wasip1…", dir.display());
    wisp::builder::build_crate(dir).with_context(|| format!("{} does not build", dir.display()))
}

/// Runs this program again to measure one map of `calls` calls, and reads
/// its figures.
fn map_in_child(calls: usize, wasm: &Path, dir: &Path) -> Result<MapFigures> {
    eprintln!("  map of {calls} no-op calls…");
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    let output = Command::new(exe)
        .arg("--child-calls")
        .arg(calls.to_string())
        .arg("--wasm")
        .arg(wasm)
        .arg("--storage-dir")
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start the measuring process")?;
    if !output.status.success() {
        bail!("the map of {calls} calls failed ({})", output.status);
    }
    let json: Value = serde_json::from_slice(&output.stdout)
        .context("the measuring process did not print its figures")?;
    let number = |key: &str| {
        json[key]
            .as_f64()
            .with_context(|| format!("the figures lack `{key}`: {json}"))
    };
    Ok(MapFigures {
        calls,
        wall: Duration::from_secs_f64(number("wall_s")?),
        rss_before: number("rss_before_mb")?,
        rss_peak: number("rss_peak_mb")?,
        hwm: number("hwm_mb")?,
        status_objects: number("status_objects")? as u64,
        list_time: Duration::from_secs_f64(number("list_s")?),
    })
}

/// The child's side: one executor, one warm call, one map, measured.
fn child(calls: usize, wasm: &Path, dir: &Path) -> Result<()> {
    let wasm = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let figures = runtime.block_on(async {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let exec = FunctionExecutor::builder()
            .config(wisp::Config {
                storage_dir: dir.to_owned(),
                workers,
                ..wisp::Config::default()
            })
            .keep_job_data(true)
            .build()
            .await
            .context("cannot start the executor")?;
        let f = exec
            .function_from_bytes("faults", wasm)
            .context("the executor cannot load the faults module")?;
        let warm = exec.call_async(&f, "noop", ()).await?;
        exec.get_result::<()>(&warm)
            .await
            .context("the warm-up call failed")?;
        let rss_before = proc_status_kb("VmRSS")?;

        let peak = Arc::new(AtomicU64::new(rss_before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(rss) = proc_status_kb("VmRSS") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        let started = Instant::now();
        let futures = exec.map(&f, "noop", std::iter::repeat_n((), calls)).await?;
        let results: Vec<()> = exec
            .get_results(&futures)
            .await
            .context("the map of noop failed")?;
        let wall = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the memory sampler panicked"))?;
        let rss_after = proc_status_kb("VmRSS")?;
        peak.fetch_max(rss_after, Ordering::Relaxed);
        let hwm = proc_status_kb("VmHWM")?;
        ensure!(
            results.len() == calls,
            "the map of {calls} calls gave {} results",
            results.len()
        );

        let mut jobs: Vec<&str> = futures.iter().map(wisp::CallFuture::job_id).collect();
        jobs.sort_unstable();
        jobs.dedup();
        let listed = Instant::now();
        let mut status_objects = 0;
        for job in &jobs {
            let prefix = wisp_runtime::protocol::status_prefix(job);
            status_objects += exec.storage().list(exec.bucket(), &prefix).await?.len();
        }
        let list_time = listed.elapsed();
        drop(futures);
        exec.close()
            .await
            .context("the executor did not close cleanly")?;
        anyhow::Ok(json!({
            "wall_s": wall.as_secs_f64(),
            "rss_before_mb": kb_to_mb(rss_before),
            "rss_peak_mb": kb_to_mb(peak.load(Ordering::Relaxed)),
            "hwm_mb": kb_to_mb(hwm),
            "status_objects": status_objects,
            "list_s": list_time.as_secs_f64(),
        }))
    })?;
    println!("{figures}");
    Ok(())
}

/// A field of `/proc/self/status` given in kB, such as `VmRSS`.
fn proc_status_kb(field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
        .with_context(|| format!("/proc/self/status has no `{field}` in kB"))
}

fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// Where the S3 server is, as `scripts/s3-server.sh env` says.
#[derive(Debug, Clone)]
struct Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
}

impl Server {
    fn from_env() -> Option<Self> {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Some(Self {
            endpoint: std::env::var("WISP_TEST_S3_ENDPOINT").ok()?,
            access_key: var("WISP_TEST_S3_ACCESS_KEY", "minioadmin"),
            secret_key: var("WISP_TEST_S3_SECRET_KEY", "minioadmin"),
        })
    }
}

/// The corpus, uploaded to a fresh bucket, and the two executors that
/// count its words: one on that bucket, one on local storage.
struct Corpus {
    s3: FunctionExecutor,
    s3_function: wisp::Function,
    local: FunctionExecutor,
    local_function: wisp::Function,
    files: Vec<PathBuf>,
    bytes: u64,
    upload: Duration,
    endpoint: String,
}

impl Corpus {
    /// Starts both executors, creates the bucket, uploads the corpus and
    /// runs one untimed count on each, so that the module is compiled and
    /// the connections are open before anything is timed.
    async fn upload(
        server: &Server,
        wasm: &[u8],
        local_dir: &Path,
        workers: usize,
    ) -> Result<Self> {
        let bucket = fresh_bucket();
        let s3 = FunctionExecutor::builder()
            .config(wisp::Config {
                storage: StorageKind::Minio,
                minio: Some(S3Section {
                    endpoint: Some(server.endpoint.clone()),
                    access_key_id: Some(server.access_key.clone()),
                    secret_access_key: Some(server.secret_key.clone()),
                    storage_bucket: Some(bucket.clone()),
                    create_bucket: true,
                    ..S3Section::default()
                }),
                workers,
                ..wisp::Config::default()
            })
            .build()
            .await
            .with_context(|| format!("cannot start an executor on {}", server.endpoint))?;
        eprintln!("bucket {bucket} at {}", server.endpoint);
        let local = FunctionExecutor::builder()
            .config(wisp::Config {
                storage_dir: local_dir.to_owned(),
                workers,
                ..wisp::Config::default()
            })
            .build()
            .await
            .context("cannot start the executor on local storage")?;
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = partition::files_under(&here.join("../examples/data/first-folio"))?;
        let started = Instant::now();
        let mut bytes = 0;
        for file in &files {
            let name = file
                .file_name()
                .context("a corpus file has no name")?
                .to_string_lossy();
            bytes += s3
                .storage()
                .put_file(&bucket, &format!("{PREFIX}{name}"), file, None)
                .await
                .with_context(|| format!("cannot upload {}", file.display()))?;
        }
        let upload = started.elapsed();
        let s3_function = s3
            .function_from_bytes("wordcount", wasm.to_vec())
            .context("the executor cannot load the wordcount module")?;
        let local_function = local
            .function_from_bytes("wordcount", wasm.to_vec())
            .context("the executor cannot load the wordcount module")?;
        let corpus = Self {
            s3,
            s3_function,
            local,
            local_function,
            files,
            bytes,
            upload,
            endpoint: server.endpoint.clone(),
        };
        eprintln!("  warm-up word count…");
        corpus.count(1).await?;
        Ok(corpus)
    }

    /// Counts the words with each object and each file cut into `chunks`.
    async fn count(&self, chunks: u64) -> Result<WordCount> {
        eprintln!("  word count, {chunks} chunks per object…");
        let chunking = Chunking::Count(chunks);
        let bucket = self.s3.bucket().to_owned();
        let started = Instant::now();
        let parts = partition::partition_objects(
            self.s3.storage().as_ref(),
            &bucket,
            PREFIX,
            chunking,
            true,
        )
        .await?;
        let job = self
            .s3
            .map_reduce(&self.s3_function, "count_words", &parts, "merge_counts")
            .await
            .context("the word count from S3 failed")?;
        let result: Value = self
            .s3
            .get_result(&job.reduce)
            .await
            .context("the reduce of the word count from S3 failed")?;
        let s3 = started.elapsed();
        check(&result, "S3")?;

        let started = Instant::now();
        let texts = partition::partition(&self.files, chunking)?
            .iter()
            .map(partition::Chunk::read_text)
            .collect::<Result<Vec<_>, _>>()?;
        let job = self
            .local
            .map_reduce(&self.local_function, "count_words", texts, "merge_counts")
            .await
            .context("the word count from local text failed")?;
        let local_result: Value = self
            .local
            .get_result(&job.reduce)
            .await
            .context("the reduce of the word count from local text failed")?;
        let local = started.elapsed();
        check(&local_result, "local text")?;
        ensure!(
            result == local_result,
            "the counts from S3 and from local text differ"
        );
        Ok(WordCount {
            parts: parts.len() as u64,
            s3,
            local,
        })
    }

    fn note(&self) -> String {
        format!(
            "- word count: examples/data/first-folio ({} files, {:.1} MB) uploaded with \
             `put_file` to a fresh bucket on {} ({}; `s3s-fs`) in {:.2} s; `count_words` \
             of examples/wordcount over `partition_objects(…, Chunking::Count(N), true)` of \
             the prefix, then `merge_counts`; the local side cuts the same files into N \
             chunks of text; the time runs from partitioning to the reduce's result",
            self.files.len(),
            self.bytes as f64 / 1e6,
            self.endpoint,
            self.s3.bucket(),
            self.upload.as_secs_f64(),
        )
    }

    /// Closes both executors and removes the bucket with all that is in it.
    async fn remove(self) -> Result<()> {
        let storage = self.s3.storage().clone();
        let bucket = self.s3.bucket().to_owned();
        self.s3
            .close()
            .await
            .context("the S3 executor did not close")?;
        self.local
            .close()
            .await
            .context("the local executor did not close")?;
        eprintln!("removing bucket {bucket} and its objects…");
        storage.delete_prefix(&bucket, "").await?;
        storage.delete_bucket(&bucket).await?;
        Ok(())
    }
}

/// Checks a word count against the corpus' known totals.
fn check(result: &Value, side: &str) -> Result<()> {
    let (total, distinct) = (
        result["total_words"].as_u64(),
        result["distinct_words"].as_u64(),
    );
    ensure!(
        total == Some(TOTAL_WORDS) && distinct == Some(DISTINCT_WORDS),
        "the word count from {side} gives {total:?} words, {distinct:?} distinct; \
         expected {TOTAL_WORDS} and {DISTINCT_WORDS}"
    );
    Ok(())
}

/// A bucket name that no earlier run left behind.
fn fresh_bucket() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "wisp-bench-scale-{:08x}",
        nanos ^ std::process::id().rotate_left(16)
    )
}

/// The table's rows for these arguments.
fn rows<'a>(args: &Args, threads: usize) -> Vec<Row<'a, Run>> {
    let mut rows = Vec::new();
    let first = args.sizes[0];
    rows.push(Row::section(format!(
        "Map of no-op calls on localhost, {threads} workers, by number of calls"
    )));
    for (i, &n) in args.sizes.iter().enumerate() {
        let at = move |r: &Run| r.maps.get(i).copied();
        let label = |what: &str| format!("{} calls: {what}", table::thousands(n as u64));
        rows.push(Row::maybe(label("wall time"), Unit::Seconds, move |r| {
            at(r).map(|m| m.wall.as_secs_f64())
        }));
        rows.push(Row::maybe(
            label("wall time per call"),
            Unit::Micros,
            move |r| at(r).map(|m| m.wall.as_secs_f64() / m.calls as f64 * 1e6),
        ));
        if i > 0 {
            rows.push(Row::maybe(
                label(&format!(
                    "time per call ÷ that at {} calls (linear: 1)",
                    table::thousands(first as u64)
                )),
                Unit::Ratio,
                move |r| {
                    let (m, base) = (at(r)?, r.maps.first()?);
                    let per = |m: &MapFigures| m.wall.as_secs_f64() / m.calls as f64;
                    Some(per(&m) / per(base).max(f64::MIN_POSITIVE))
                },
            ));
        }
        rows.push(Row::maybe(
            label("resident memory before the map (VmRSS)"),
            Unit::Megabytes,
            move |r| at(r).map(|m| m.rss_before),
        ));
        rows.push(Row::maybe(
            label("peak resident memory during the map (VmRSS every 5 ms)"),
            Unit::Megabytes,
            move |r| at(r).map(|m| m.rss_peak),
        ));
        rows.push(Row::maybe(
            label("… growth over before the map"),
            Unit::Megabytes,
            move |r| at(r).map(|m| m.rss_peak - m.rss_before),
        ));
        rows.push(Row::maybe(
            label("process peak (VmHWM, goal < 200 MB)"),
            Unit::Megabytes,
            move |r| at(r).map(|m| m.hwm),
        ));
        rows.push(Row::maybe(
            label("status objects of the job"),
            Unit::Count,
            move |r| at(r).map(|m| m.status_objects as f64),
        ));
        rows.push(Row::maybe(
            label("calls per status object"),
            Unit::Ratio,
            move |r| at(r).map(|m| m.calls as f64 / m.status_objects.max(1) as f64),
        ));
        rows.push(Row::maybe(
            label("listing the status objects once"),
            Unit::Millis,
            move |r| at(r).map(|m| m.list_time.as_secs_f64() * 1e3),
        ));
    }
    if args.no_s3 {
        return rows;
    }
    rows.push(Row::section(format!(
        "Word count over the First Folio in S3, {threads} workers, by chunks per core \
         (each object cut into chunks per core × {threads})"
    )));
    for (i, &k) in args.chunks_per_core.iter().enumerate() {
        let at = move |r: &Run| r.word_counts.get(i).copied();
        let n = k * threads as u64;
        let label = |what: &str| format!("{k} per core (N = {n}): {what}");
        rows.push(Row::maybe(label("calls (parts)"), Unit::Count, move |r| {
            at(r).map(|w| w.parts as f64)
        }));
        rows.push(Row::maybe(
            label("from S3, partition + map + reduce"),
            Unit::Seconds,
            move |r| at(r).map(|w| w.s3.as_secs_f64()),
        ));
        rows.push(Row::maybe(
            label("from local text, cut + map + reduce"),
            Unit::Seconds,
            move |r| at(r).map(|w| w.local.as_secs_f64()),
        ));
        rows.push(Row::maybe(
            label("S3 ÷ local text"),
            Unit::Ratio,
            move |r| {
                at(r).map(|w| w.s3.as_secs_f64() / w.local.as_secs_f64().max(f64::MIN_POSITIVE))
            },
        ));
        rows.push(Row::maybe(
            label("from S3, time per call"),
            Unit::Millis,
            move |r| at(r).map(|w| w.s3.as_secs_f64() / w.parts.max(1) as f64 * 1e3),
        ));
    }
    rows
}
