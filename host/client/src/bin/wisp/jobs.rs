//! `wisp jobs` and `wisp logs`: the jobs kept in storage, and what their
//! calls printed.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use wisp::Config;
use wisp::config::{BackendKind, StorageKind};
use wisp::jobs::{self, Job};

use crate::Failure;

/// The storage a command reads jobs from.
#[derive(Args)]
pub struct Place {
    /// Which storage: localhost, minio, aws_s3 or ceph (default: the
    /// config's `wisp.storage`).
    #[arg(short, long, value_name = "STORAGE")]
    storage: Option<StorageKind>,
    /// The backend the jobs ran on. Every backend keeps its jobs in the
    /// configured storage, so this only checks the config for it.
    #[arg(short, long, value_name = "BACKEND")]
    backend: Option<BackendKind>,
}

impl Place {
    async fn open(&self) -> anyhow::Result<(std::sync::Arc<dyn wisp_storage::Storage>, String)> {
        let mut config = Config::load()?;
        if let Some(storage) = self.storage {
            config.storage = storage;
        }
        if let Some(backend) = self.backend {
            config.use_backend(backend);
        }
        config.check()?;
        let storage = wisp::storage::connect(&config).await?;
        Ok((storage, config.bucket()))
    }
}

#[derive(Args)]
pub struct JobsCommand {
    #[command(flatten)]
    place: Place,
}

impl JobsCommand {
    pub async fn run(self) -> Result<(), Failure> {
        let (storage, bucket) = self.place.open().await?;
        let jobs = jobs::list(storage.as_ref(), &bucket)
            .await
            .with_context(|| format!("cannot list the jobs of bucket `{bucket}`"))?;
        if jobs.is_empty() {
            eprintln!(
                "no jobs in bucket `{bucket}` of {}: a job stays there after its run only \
                 with `wisp submit --keep` (or `data_cleaner: false`), or when the run was \
                 cut short",
                storage.describe()
            );
            return Ok(());
        }
        let now = wisp_runtime::now_us();
        let rows: Vec<[String; 8]> = jobs.iter().map(|job| row(job, now)).collect();
        let header = [
            "JOB", "FUNCTION", "STATE", "CALLS", "OK", "FAILED", "PENDING", "AGE",
        ]
        .map(str::to_owned);
        let mut widths = header.each_ref().map(String::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = std::io::stdout().lock();
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
                // Names align left, numbers right.
                if i < 3 {
                    line.push_str(&format!("{cell:<width$}  "));
                } else {
                    line.push_str(&format!("{cell:>width$}  "));
                }
            }
            if writeln!(out, "{}", line.trim_end()).is_err() {
                break;
            }
        }
        Ok(())
    }
}

fn row(job: &Job, now: u64) -> [String; 8] {
    let (function, age) = match &job.spec {
        Some(spec) => (spec.function.clone(), jobs::age(spec.submitted_us, now)),
        None => ("?".to_owned(), "?".to_owned()),
    };
    [
        job.job_id.clone(),
        function,
        job.state().to_string(),
        job.total().to_string(),
        job.succeeded().to_string(),
        job.failed().to_string(),
        job.pending().to_string(),
        age,
    ]
}

#[derive(Args)]
pub struct LogsCommand {
    /// The job, as `wisp jobs` lists it.
    job: String,
    /// One call of it, as `7` or `00007` (default: every call).
    call: Option<String>,
    #[command(flatten)]
    place: Place,
}

impl LogsCommand {
    pub async fn run(self) -> Result<(), Failure> {
        let (storage, bucket) = self.place.open().await?;
        let job = jobs::get(storage.as_ref(), &bucket, &self.job).await?;
        let calls = match &self.call {
            Some(call) => vec![job.resolve_call(call)?],
            None => job.call_ids(),
        };
        let mut out = std::io::stdout().lock();
        for call in calls {
            let (state, log) = match job.statuses.get(&call) {
                Some(status) => match &status.error {
                    None if status.succeeded() => ("ok".to_owned(), status.log.as_str()),
                    None => ("failed".to_owned(), status.log.as_str()),
                    Some(error) => (format!("failed: {error}"), status.log.as_str()),
                },
                None => ("no outcome yet".to_owned(), ""),
            };
            let state = match job.statuses.get(&call) {
                Some(status) if status.attempt > 1 => {
                    format!("{state} (attempt {})", status.attempt)
                }
                _ => state,
            };
            let mut text = format!("--- call {call}: {state} ---\n{log}");
            if !log.is_empty() && !log.ends_with('\n') {
                text.push('\n');
            }
            if out.write_all(text.as_bytes()).is_err() {
                break;
            }
        }
        Ok(())
    }
}
