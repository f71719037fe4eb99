//! `wisp submit`: one call, a map, or a map over data, with an optional
//! reduce.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;
use wisp::config::StorageKind;
use wisp::partition::{self, Chunking, StorageUrl, TextChunk};
use wisp::{CallFuture, Error, FunctionExecutor, WaitFor};

use crate::Failure;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["args", "map_json", "map_file", "data"]))]
pub struct Submit {
    /// A guest crate's directory (built for wasm32-wasip1) or a .wasm file.
    target: PathBuf,
    /// The function to call.
    #[arg(short, long)]
    function: String,
    /// Call once with this JSON argument (several arguments: a JSON array
    /// or an object keyed by parameter name).
    #[arg(long, value_name = "JSON")]
    args: Option<String>,
    /// Call once per item of this JSON array.
    #[arg(long, value_name = "JSON")]
    map_json: Option<String>,
    /// Call once per line of this file (`-`: standard input), each line a
    /// JSON argument; blank lines are skipped.
    #[arg(long, value_name = "PATH")]
    map_file: Option<PathBuf>,
    /// Call once per chunk of data: a local file or directory (each call
    /// gets `{"source", "offset", "text"}`), or `s3://BUCKET/PREFIX` in the
    /// configured storage (each call gets `{"key", "start", "end", "etag"}`
    /// and reads its part with `ObjectPart::read`).
    #[arg(long, value_name = "PATH|URL", requires = "chunking")]
    data: Option<String>,
    /// The size of a data chunk, such as 256KiB or 1MiB; each chunk is
    /// extended to the end of its line.
    #[arg(long, value_name = "SIZE", group = "chunking")]
    chunk_size: Option<String>,
    /// Cut each file or object into this many chunks instead.
    #[arg(long, value_name = "N", group = "chunking", value_parser = clap::value_parser!(u64).range(1..))]
    chunk_number: Option<u64>,
    /// Where calls run: localhost or openwhisk (default: the config's
    /// `wisp.backend`).
    #[arg(short, long, value_name = "BACKEND")]
    backend: Option<wisp::config::BackendKind>,
    /// Where jobs are kept: localhost, minio, aws_s3 or ceph (default: the
    /// config's `wisp.storage`).
    #[arg(short, long, value_name = "STORAGE")]
    storage: Option<StorageKind>,
    /// After the map, call this function once with the array of results.
    #[arg(long, value_name = "FUNCTION")]
    reduce: Option<String>,
    /// Memory limit of each call, in MB (1 to 4096; on OpenWhisk, the
    /// platform's range: openwhisk.min_memory to max_memory, 128 to 512
    /// unless set).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    memory: Option<u64>,
    /// Time limit of each call, in seconds (1 to 86400).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: Option<u64>,
    /// Calls to run at once on this machine (1 to 4096).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    workers: Option<u64>,
    /// Run a call again, up to this many more times, when the
    /// infrastructure failed it (a lost activation, storage out of reach)
    /// (default: the config's `wisp.retries`, 0).
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = clap::value_parser!(u32).range(0..=wisp::MAX_RETRIES as i64))]
    retries: Option<u32>,
    /// With retries, also run again calls that failed by themselves
    /// (an error, a panic, a time or memory limit).
    #[arg(long)]
    retry_function_errors: bool,
    /// Keep the job's data in storage afterwards, and print where it is.
    #[arg(long)]
    keep: bool,
    /// Print each call's log to stderr.
    #[arg(long)]
    logs: bool,
    /// After the job, write its timeline and a histogram of function
    /// durations (as SVG and PNG) and calls.csv into this directory.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
}

impl Submit {
    pub async fn run(self) -> Result<(), Failure> {
        let chunking = match (&self.chunk_size, self.chunk_number) {
            (Some(size), _) => Some(Chunking::Size(partition::parse_size(size)?)),
            (None, Some(count)) => Some(Chunking::Count(count)),
            (None, None) => None,
        };
        if let Some(memory) = self.memory {
            // OpenWhisk refuses a memory outside its range; say so before
            // anything is built, stored or sent.
            let mut config = wisp::Config::load()?;
            if let Some(backend) = self.backend {
                config.use_backend(backend);
            }
            if config.backend == wisp::config::BackendKind::Openwhisk {
                config.check_openwhisk_memory(memory, "--memory")?;
            }
        }
        let mut builder = FunctionExecutor::builder();
        if let Some(backend) = self.backend {
            builder.backend(backend);
        }
        if let Some(storage) = self.storage {
            builder.storage(storage);
        }
        if let Some(memory) = self.memory {
            builder.runtime_memory(memory);
        }
        if let Some(timeout) = self.timeout {
            builder.runtime_timeout(Duration::from_secs(timeout));
        }
        if let Some(workers) = self.workers {
            builder.workers(workers as usize);
        }
        if self.keep {
            builder.keep_job_data(true);
        }
        if let Some(retries) = self.retries {
            builder.retries(retries);
        }
        if self.retry_function_errors {
            builder.retry_function_errors(true);
        }
        if let Some(dir) = &self.plots
            && dir.exists()
            && !dir.is_dir()
        {
            return Err(anyhow::anyhow!(
                "--plots {} is a file: give a directory (it is created if missing)",
                dir.display()
            )
            .into());
        }
        // Signals are watched on a task of their own: before a job is
        // submitted (while the crate builds or the inputs are read, which
        // block this task) there is nothing to keep, and wisp exits at once.
        let submitted = Arc::new(AtomicBool::new(false));
        let (signalled, mut signal_rx) = tokio::sync::oneshot::channel();
        let watcher = {
            let submitted = submitted.clone();
            tokio::spawn(async move {
                let signal = interrupted().await;
                if !submitted.load(Ordering::SeqCst) {
                    eprintln!(
                        "interrupted ({}) before any job was submitted: nothing to keep",
                        signal.name
                    );
                    std::process::exit(signal.exit_code.into());
                }
                let _ = signalled.send(signal);
            })
        };
        let exec = builder.build().await?;
        if self.retry_function_errors && exec.config().retry.retries == 0 {
            return Err(anyhow::anyhow!(
                "--retry-function-errors reruns calls only within retries: add --retries N \
                 (or set wisp.retries in the config)"
            )
            .into());
        }
        let mut calls = Vec::new();
        let mut signal = None;
        let mut outcome = tokio::select! {
            outcome = self.run_on(&exec, chunking, &mut calls, &submitted) => outcome,
            Ok(caught) = &mut signal_rx => {
                signal = Some(caught);
                Err(Failure::Interrupted(caught.exit_code))
            }
        };
        if signal.is_none() {
            // A signal caught as the job ended is still an interruption.
            signal = signal_rx.try_recv().ok();
        }
        if let Some(signal) = signal {
            return self.keep_interrupted(exec, signal).await;
        }
        watcher.abort();
        if let Some(dir) = &self.plots {
            match wisp::plots::write_job_plots(&calls, dir) {
                Ok(files) => eprintln!(
                    "wrote the timeline, histogram and calls.csv of {} calls to {}",
                    files.calls,
                    dir.display()
                ),
                Err(wisp::plots::PlotError::NoCalls { .. }) => {
                    eprintln!("no finished calls: no plots written");
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if outcome.is_ok() {
                        outcome = Err(Failure::Setup(e.into()));
                    }
                }
            }
        }
        if self.keep {
            for job in exec.jobs() {
                eprintln!(
                    "kept job {job} in bucket `{}` of {}, under {}",
                    exec.bucket(),
                    exec.storage().describe(),
                    wisp_runtime::protocol::job_prefix(&job)
                );
            }
        }
        exec.close().await?;
        outcome
    }

    /// After Ctrl-C: marks the unfinished jobs as interrupted, keeps every
    /// job's data, and says how to look at it and remove it.
    async fn keep_interrupted(
        &self,
        exec: FunctionExecutor,
        signal: Signal,
    ) -> Result<(), Failure> {
        eprintln!("interrupted ({}): cancelling the job's calls", signal.name);
        let jobs = exec.jobs();
        let bucket = exec.bucket().to_owned();
        let place = exec.storage().describe();
        let finished: Vec<String> = exec.finished_jobs();
        let (marked, unmarked) = match exec.interrupt(signal.name).await {
            Ok(marked) => (marked, false),
            Err(e) => {
                eprintln!("error: cannot record the interruption in storage: {e}");
                (Vec::new(), true)
            }
        };
        if jobs.is_empty() {
            eprintln!("no job was submitted yet: nothing is kept");
        }
        let flags = self
            .storage
            .map(|storage| format!(" -s {storage}"))
            .unwrap_or_default();
        for job in &jobs {
            let state = if marked.contains(job) {
                "interrupted"
            } else if finished.contains(job) {
                "finished"
            } else if unmarked {
                "interrupted; not marked so in storage, which is out of reach"
            } else {
                "interrupted"
            };
            eprintln!(
                "job {job} ({state}) is kept in bucket `{bucket}` of {place}: \
                 `wisp logs {job}{flags}` shows its calls, `wisp clean{flags}` removes it \
                 (with every other job's data)"
            );
        }
        Err(Failure::Interrupted(signal.exit_code))
    }

    /// Runs the job; `calls` collects its calls (the map's, then the
    /// reduce's) for the plots.
    async fn run_on(
        &self,
        exec: &FunctionExecutor,
        chunking: Option<Chunking>,
        calls: &mut Vec<CallFuture>,
        submitted: &AtomicBool,
    ) -> Result<(), Failure> {
        let inputs = self.inputs(exec, chunking).await?;
        let spinner = spinner(&format!("building {}", self.target.display()));
        let built = exec.function(&self.target);
        spinner.finish_and_clear();
        let f = built?;
        if let Some(reduce) = &self.reduce {
            check_reduce(&f, reduce)?;
        }
        submitted.store(true, Ordering::SeqCst);
        let futures = match inputs {
            Inputs::One(args) => exec.map_json(&f, &self.function, vec![args]).await?,
            Inputs::Many(args) => exec.map_json(&f, &self.function, args).await?,
        };
        calls.extend(futures.iter().cloned());
        let Some(reduce) = &self.reduce else {
            return self.stream(exec, &futures).await;
        };
        let bar = progress_bar(futures.len() as u64);
        exec.wait_with_progress(&futures, WaitFor::AllCompleted, None, |done, _| {
            bar.set_position(done as u64);
        })
        .await;
        bar.finish_and_clear();
        self.print_logs(&futures);
        let map_reduce = match exec.reduce(&f, futures, reduce).await {
            Ok(map_reduce) => map_reduce,
            Err(Error::Calls { failed, total }) => {
                report_failures(&failed, total);
                eprintln!("the reduce `{reduce}` was not run");
                return Err(Failure::Calls);
            }
            Err(e) => return Err(e.into()),
        };
        calls.push(map_reduce.reduce.clone());
        let reduce_call = std::slice::from_ref(&map_reduce.reduce);
        exec.wait(reduce_call, WaitFor::AllCompleted, None).await;
        self.print_logs(reduce_call);
        match exec.get_results_json(reduce_call).await {
            Ok(outputs) => {
                print_lines(outputs.iter().map(|o| o.get())).context("cannot write the result")?
            }
            Err(Error::Calls { failed, .. }) => {
                for failure in &failed {
                    eprintln!(
                        "error: the reduce `{reduce}` ({}) failed: {}",
                        failure.call_id, failure.failure
                    );
                }
                return Err(Failure::Calls);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Prints each call's result as soon as it and every call before it are
    /// done, so output starts early and stays in input order. A failed call
    /// prints `{"error": …, "call": …}` in its place, so lines match inputs.
    async fn stream(&self, exec: &FunctionExecutor, futures: &[CallFuture]) -> Result<(), Failure> {
        let bar = progress_bar(futures.len() as u64);
        let baseline = exec.completed_calls();
        let mut failed = Vec::new();
        for future in futures {
            while !future.is_done() {
                exec.wait(
                    std::slice::from_ref(future),
                    WaitFor::AllCompleted,
                    Some(Duration::from_millis(100)),
                )
                .await;
                bar.set_position(exec.completed_calls() - baseline);
            }
            bar.set_position(exec.completed_calls() - baseline);
            self.print_logs(std::slice::from_ref(future));
            let line = match exec.get_result::<Box<RawValue>>(future).await {
                Ok(raw) => raw.get().to_owned(),
                Err(Error::Call(failure)) => {
                    let mut line = serde_json::json!({
                        "error": failure.failure.to_string(),
                        "call": failure.call_id,
                    });
                    if failure.attempts > 1 {
                        line["attempts"] = failure.attempts.into();
                    }
                    let line = line.to_string();
                    failed.push(*failure);
                    line
                }
                Err(e) => return Err(e.into()),
            };
            bar.suspend(|| print_lines(std::iter::once(line.as_str())))
                .context("cannot write the results")?;
        }
        bar.finish_and_clear();
        if failed.is_empty() {
            Ok(())
        } else {
            report_failures(&failed, futures.len());
            Err(Failure::Calls)
        }
    }

    async fn inputs(
        &self,
        exec: &FunctionExecutor,
        chunking: Option<Chunking>,
    ) -> anyhow::Result<Inputs> {
        if let Some(args) = &self.args {
            return Ok(Inputs::One(json_bytes(args).with_context(|| {
                format!("--args must be JSON (quote a string as '\"{args}\"')")
            })?));
        }
        if let Some(json) = &self.map_json {
            let items: Vec<Box<RawValue>> = serde_json::from_str(json)
                .context("--map-json must be a JSON array, such as '[1, 2, 3]'")?;
            return Ok(Inputs::Many(
                items
                    .into_iter()
                    .map(|i| Bytes::from(i.get().to_owned()))
                    .collect(),
            ));
        }
        if let Some(path) = &self.map_file {
            let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open --map-file {}", path.display()))?;
                Box::new(std::io::BufReader::new(file))
            };
            let mut args = Vec::new();
            for (number, line) in reader.lines().enumerate() {
                let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                args.push(json_bytes(&line).with_context(|| {
                    format!("line {} of {} is not JSON", number + 1, path.display())
                })?);
            }
            return Ok(Inputs::Many(args));
        }
        if let (Some(data), Some(chunking)) = (&self.data, chunking) {
            if data.to_ascii_lowercase().starts_with("s3://") && !data.starts_with("s3://") {
                bail!("write the scheme in lower case: s3://{}", &data[5..]);
            }
            if let Some(url) = StorageUrl::parse(data) {
                if url.bucket.is_empty() {
                    bail!("`{data}` names no bucket: write s3://BUCKET/PREFIX");
                }
                if url.bucket != exec.bucket() {
                    bail!(
                        "functions may read only bucket `{}`, the configured storage_bucket, \
                         not `{}`: copy the data there (wisp storage put) or set storage_bucket",
                        exec.bucket(),
                        url.bucket
                    );
                }
                let parts = partition::partition_objects(
                    exec.storage().as_ref(),
                    &url.bucket,
                    &url.prefix,
                    chunking,
                    true,
                )
                .await?;
                tracing::info!(parts = parts.len(), "partitioned objects");
                if parts.is_empty() {
                    eprintln!("warning: no objects under {data}: nothing to run");
                }
                let args = parts
                    .iter()
                    .map(|part| Ok(Bytes::from(serde_json::to_vec(part)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                return Ok(Inputs::Many(args));
            }
            let files = partition::files_under(std::path::Path::new(data))?;
            let chunks = partition::partition(&files, chunking)?;
            let args = chunks
                .iter()
                .map(|chunk| {
                    let text: TextChunk = chunk.read_text()?;
                    Ok(Bytes::from(serde_json::to_vec(&text)?))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            tracing::info!(files = files.len(), chunks = args.len(), "partitioned data");
            return Ok(Inputs::Many(args));
        }
        bail!("give one of --args, --map-json, --map-file or --data")
    }

    fn print_logs(&self, futures: &[CallFuture]) {
        if !self.logs {
            return;
        }
        for future in futures {
            if let Some(log) = future.log().filter(|l| !l.is_empty()) {
                eprintln!("--- log of call {} ---", future.call_id());
                eprint!("{log}");
                if !log.ends_with('\n') {
                    eprintln!();
                }
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM, with the signal's name; a second Ctrl-C
/// exits at once.
/// A signal that stops `wisp submit`, and the exit status it ends with.
#[derive(Debug, Clone, Copy)]
struct Signal {
    name: &'static str,
    exit_code: u8,
}

async fn interrupted() -> Signal {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    // 128 + the signal's number, as shells report a process it ended.
    let signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => Signal { name: "SIGINT", exit_code: 130 },
        () = term => Signal { name: "SIGTERM", exit_code: 143 },
    };
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted again: exiting now");
            std::process::exit(130);
        }
    });
    signal
}

/// Checks before the map runs that the reduce can take its results.
fn check_reduce(f: &wisp::Function, reduce: &str) -> anyhow::Result<()> {
    let manifest = f.manifest();
    let Some(info) = manifest.functions.get(reduce) else {
        anyhow::bail!(
            "the reduce function `{reduce}` is not in the module; it has: {}",
            manifest.function_list()
        );
    };
    if info.params.len() != 1 && !manifest.command {
        anyhow::bail!(
            "the reduce function `{reduce}` takes {} parameters ({}); a reduce takes one, \
             the array of the map's results",
            info.params.len(),
            info.params.join(", ")
        );
    }
    Ok(())
}

enum Inputs {
    One(Bytes),
    Many(Vec<Bytes>),
}

fn json_bytes(text: &str) -> anyhow::Result<Bytes> {
    let value: Box<RawValue> = serde_json::from_str(text)?;
    Ok(Bytes::from(value.get().to_owned()))
}

/// Writes results as JSON lines. A reader that stops early (`| head`) is
/// not an error: it has what it wanted.
fn print_lines<'a>(lines: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut lines = lines;
    let written = lines
        .try_for_each(|line| {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        })
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn report_failures(failed: &[wisp::CallFailure], total: usize) {
    eprintln!("error: {} of {total} calls failed:", failed.len());
    for failure in failed.iter().take(20) {
        let runs = if failure.attempts > 1 {
            format!(" (ran {} times)", failure.attempts)
        } else {
            String::new()
        };
        eprintln!(
            "  call {} of job {}{runs}: {}",
            failure.call_id, failure.job_id, failure.failure
        );
    }
    if failed.len() > 20 {
        eprintln!("  … and {} more", failed.len() - 20);
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    if total < 2 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} calls [{bar:30}] {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

pub fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
