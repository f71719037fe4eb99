//! `wisp submit`: one call, a map, or a map over data, with an optional
//! reduce.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::value::RawValue;
use wisp::partition::{self, TextChunk};
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
    /// Call once per line of this file, each line a JSON argument.
    #[arg(long, value_name = "PATH")]
    map_file: Option<PathBuf>,
    /// Call once per chunk of the file or of the files under the
    /// directory; each call gets `{"source", "offset", "text"}`.
    #[arg(long, value_name = "PATH", requires = "chunk_size")]
    data: Option<PathBuf>,
    /// The size of a data chunk, such as 256KiB or 1MiB; each chunk is
    /// extended to the end of its line.
    #[arg(long, value_name = "SIZE")]
    chunk_size: Option<String>,
    /// After the map, call this function once with the array of results.
    #[arg(long, value_name = "FUNCTION")]
    reduce: Option<String>,
    /// Memory limit of each call, in MB.
    #[arg(long, value_name = "MB")]
    memory: Option<u64>,
    /// Time limit of each call, in seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Calls to run at once on this machine.
    #[arg(long)]
    workers: Option<usize>,
    /// Keep the job's data in storage afterwards, and print where it is.
    #[arg(long)]
    keep: bool,
    /// Print each call's log to stderr.
    #[arg(long)]
    logs: bool,
}

impl Submit {
    pub async fn run(self) -> Result<(), Failure> {
        let chunk_size = self
            .chunk_size
            .as_deref()
            .map(partition::parse_size)
            .transpose()?;
        let inputs = self.inputs(chunk_size)?;
        let mut builder = FunctionExecutor::builder();
        if let Some(memory) = self.memory {
            builder.runtime_memory(memory);
        }
        if let Some(timeout) = self.timeout {
            builder.runtime_timeout(Duration::from_secs(timeout));
        }
        if let Some(workers) = self.workers {
            builder.workers(workers);
        }
        if self.keep {
            builder.keep_job_data(true);
        }
        let exec = builder.build().await?;
        let outcome = tokio::select! {
            outcome = self.run_on(&exec, inputs) => outcome,
            _ = tokio::signal::ctrl_c() => {
                eprintln!(
                    "interrupted: cancelling the calls that have not started{}",
                    if exec.config().data_cleaner { " and removing the job's data" } else { "" }
                );
                Err(Failure::Interrupted)
            }
        };
        if self.keep {
            for job in exec.jobs() {
                eprintln!("kept job {job} in {}", exec.storage().describe());
            }
        }
        exec.close().await?;
        outcome
    }

    async fn run_on(&self, exec: &FunctionExecutor, inputs: Inputs) -> Result<(), Failure> {
        let spinner = spinner(&format!("building {}", self.target.display()));
        let built = exec.function(&self.target);
        spinner.finish_and_clear();
        let f = built?;
        let futures = match inputs {
            Inputs::One(args) => exec.map_json(&f, &self.function, vec![args]).await?,
            Inputs::Many(args) => exec.map_json(&f, &self.function, args).await?,
        };
        let bar = progress_bar(futures.len() as u64);
        exec.wait_with_progress(&futures, WaitFor::AllCompleted, None, |done, _| {
            bar.set_position(done as u64);
        })
        .await;
        bar.finish_and_clear();
        self.print_logs(&futures);
        let futures = match &self.reduce {
            Some(reduce) => match exec.reduce(&f, futures, reduce).await {
                Ok(map_reduce) => {
                    exec.wait(
                        std::slice::from_ref(&map_reduce.reduce),
                        WaitFor::AllCompleted,
                        None,
                    )
                    .await;
                    self.print_logs(std::slice::from_ref(&map_reduce.reduce));
                    vec![map_reduce.reduce]
                }
                Err(Error::Calls { failed, total }) => {
                    report_failures(&failed, total);
                    eprintln!("the reduce `{reduce}` was not run");
                    return Err(Failure::Calls);
                }
                Err(e) => return Err(e.into()),
            },
            None => futures,
        };
        match exec.get_results_json(&futures).await {
            Ok(outputs) => print_lines(&outputs).context("cannot write the results")?,
            Err(Error::Calls { failed, total }) => {
                // Print what did succeed, in order, before the summary.
                let mut outputs: Vec<Box<RawValue>> = Vec::new();
                for future in futures
                    .iter()
                    .filter(|f| f.state() == wisp::CallState::Success)
                {
                    if let Ok(raw) = exec.get_result::<Box<RawValue>>(future).await {
                        outputs.push(raw);
                    }
                }
                print_lines(&outputs).context("cannot write the results")?;
                report_failures(&failed, total);
                return Err(Failure::Calls);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn inputs(&self, chunk_size: Option<u64>) -> anyhow::Result<Inputs> {
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
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open --map-file {}", path.display()))?;
            let mut args = Vec::new();
            for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
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
        if let (Some(path), Some(size)) = (&self.data, chunk_size) {
            let files = partition::files_under(path)?;
            let chunks = partition::partition(&files, size)?;
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
fn print_lines(outputs: &[Box<RawValue>]) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = outputs
        .iter()
        .try_for_each(|output| {
            out.write_all(output.get().as_bytes())?;
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
        eprintln!(
            "  call {} of job {}: {}",
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

fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}
