//! Jobs on OpenWhisk: calls go out in batches, one activation of the
//! runtime action per batch, and their outcomes come back through storage.
//!
//! The client lists the job's status objects (one per few dozen calls, not
//! one per call) and reads each new one once. An activation that ends
//! without recording some of its calls (the container died, the platform
//! timed it out, it was never run) turns those calls into failures that
//! name the activation, so no wait lasts forever.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::sync::OnceCell;
use wisp_runtime::action::{BatchRequest, JobRequest};
use wisp_runtime::{Failure, protocol};
use wisp_storage::Storage;

use super::api::{ActivationRecord, OpenWhiskClient};
use super::runtime::{PACKAGE, Runtimes, resolve_image};
use crate::config::Config;
use crate::localhost::JobRun;
use crate::{Error, Result};

/// Arguments of a batch up to this size travel in the invoke request;
/// larger ones are read by the runtime from the job's arguments object.
const INLINE_ARGS: usize = 256 * 1024;
/// Invokes in flight at once, per job.
const INVOKES_IN_FLIGHT: usize = 16;
/// The most calls one activation runs, unless configured.
const MAX_BATCH: u32 = 500;
/// Activations a job is spread over, unless configured.
const TARGET_ACTIVATIONS: u32 = 100;
/// How long past its time limit an activation may stay silent before its
/// calls are given up as lost.
const LOST_AFTER: Duration = Duration::from_secs(60);

pub(crate) struct OpenWhiskBackend {
    runtimes: Runtimes,
    client: OpenWhiskClient,
    storage: Arc<dyn Storage>,
    bucket: String,
    image: String,
    memory_mb: u64,
    timeout: Duration,
    calls_per_activation: Option<u32>,
    action: OnceCell<String>,
    drivers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl OpenWhiskBackend {
    pub(crate) fn new(config: &Config, storage: Arc<dyn Storage>) -> Result<Self> {
        if config.s3_section().is_none() {
            tracing::warn!(
                "OpenWhisk with local storage: the runtime containers reach {} only if they \
                 share this machine's file system; use S3 storage (-s minio, aws_s3 or ceph)",
                config.storage_dir.display()
            );
        }
        let runtimes = Runtimes::new(config, storage.clone())?;
        Ok(Self {
            client: runtimes.client().clone(),
            runtimes,
            storage,
            bucket: config.bucket(),
            image: resolve_image(config, None),
            memory_mb: config.runtime_memory,
            timeout: config.runtime_timeout,
            calls_per_activation: config.openwhisk.calls_per_activation.filter(|&n| n > 0),
            action: OnceCell::new(),
            drivers: Mutex::new(Vec::new()),
        })
    }

    /// The runtime action for modules of guest ABI `abi`: checked once per
    /// executor, deployed first if it is not there.
    pub(crate) async fn prepare(&self, abi: u32) -> Result<String> {
        self.action
            .get_or_try_init(|| async {
                self.client.check().await?;
                self.runtimes.ensure(&self.image, self.memory_mb, abi).await
            })
            .await
            .cloned()
    }

    /// Invokes the job's calls and follows them until each has an outcome.
    pub(crate) fn submit(&self, run: Arc<JobRun>, action: String) {
        let calls = run.tracker.spec.calls;
        let per = self
            .calls_per_activation
            .unwrap_or_else(|| calls.div_ceil(TARGET_ACTIVATIONS).clamp(1, MAX_BATCH));
        // Calls the tracker runs again wait here for the driver's next round.
        let retries: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
        let queue = retries.clone();
        run.tracker.on_retry(Box::new(move |index, attempt| {
            queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((index, attempt));
            true
        }));
        let mut offsets = Vec::with_capacity(run.args.len() + 1);
        offsets.push(0u64);
        for arg in &run.args {
            offsets.push(offsets[offsets.len() - 1] + arg.len() as u64 + 1);
        }
        let driver = Driver {
            client: self.client.clone(),
            storage: self.storage.clone(),
            bucket: self.bucket.clone(),
            action,
            run,
            offsets,
            per,
            timeout: self.timeout,
            retries,
        };
        let handle = tokio::spawn(driver.drive());
        self.drivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
    }

    /// Stops following jobs. Activations already invoked run on; their
    /// outcomes stay in storage.
    pub(crate) fn shut_down(&self) {
        for driver in self
            .drivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            driver.abort();
        }
    }
}

struct Batch {
    first: u32,
    count: u32,
    attempt: u32,
    activation: Option<String>,
    invoked: Instant,
    /// The activation's record, once it has ended.
    ended: Option<ActivationRecord>,
}

struct Driver {
    client: OpenWhiskClient,
    storage: Arc<dyn Storage>,
    bucket: String,
    action: String,
    run: Arc<JobRun>,
    /// Where each call's line starts in the job's arguments object, and
    /// where the last ends.
    offsets: Vec<u64>,
    per: u32,
    timeout: Duration,
    /// Calls to run again, with their attempt.
    retries: Arc<Mutex<Vec<(u32, u32)>>>,
}

impl Driver {
    async fn drive(self) {
        let batches = self.invoke_all().await;
        self.follow(batches).await;
    }

    fn job(&self) -> &str {
        &self.run.tracker.spec.job_id
    }

    async fn invoke_all(&self) -> Vec<Batch> {
        let calls = self.run.tracker.spec.calls;
        let requests: Vec<BatchRequest> = (0..calls)
            .step_by(self.per as usize)
            .map(|first| self.request(first, self.per.min(calls - first), 1))
            .collect();
        tracing::debug!(job = %self.job(), activations = requests.len(), per = self.per, "invoking");
        self.invoke(requests).await
    }

    /// The request for calls `first .. first + count`: their arguments
    /// inline when small, else their byte range of the arguments object.
    fn request(&self, first: u32, count: u32, attempt: u32) -> BatchRequest {
        let (start, end) = (first as usize, (first + count) as usize);
        let range = [self.offsets[start], self.offsets[end]];
        let args = &self.run.args[start..end];
        let inline = (range[1] - range[0] <= INLINE_ARGS as u64).then(|| {
            args.iter()
                .filter_map(|a| std::str::from_utf8(a).ok().map(str::to_owned))
                .collect::<Vec<_>>()
        });
        match inline.filter(|a| a.len() == count as usize) {
            Some(args) => BatchRequest {
                job: self.job().to_owned(),
                first,
                count,
                args: Some(args),
                args_range: None,
                attempt,
            },
            None => BatchRequest {
                job: self.job().to_owned(),
                first,
                count,
                args: None,
                args_range: Some(range),
                attempt,
            },
        }
    }

    /// Invokes one activation per request, a few at a time.
    async fn invoke(&self, requests: Vec<BatchRequest>) -> Vec<Batch> {
        futures::stream::iter(requests)
            .map(|request| async move {
                let invoked = Instant::now();
                if self.run.cancelled.load(Ordering::Relaxed) {
                    return None;
                }
                let (first, count, attempt) = (request.first, request.count, request.attempt);
                let request = JobRequest::Batch(request);
                let activation = match self.client.invoke(PACKAGE, &self.action, &request).await {
                    Ok(id) => {
                        for index in first..first + count {
                            self.run.tracker.mark_running(index);
                        }
                        Some(id)
                    }
                    Err(e) => {
                        self.fail(
                            first..first + count,
                            attempt,
                            &format!("the activation for this call could not be invoked: {e}"),
                        );
                        None
                    }
                };
                Some(Batch {
                    first,
                    count,
                    attempt,
                    activation,
                    invoked,
                    ended: None,
                })
            })
            .buffer_unordered(INVOKES_IN_FLIGHT)
            .filter_map(|b| async move { b })
            .collect()
            .await
    }

    /// Invokes the calls the tracker gave back to run again: consecutive
    /// calls of one attempt share an activation.
    async fn invoke_retries(&self) -> Vec<Batch> {
        let mut calls =
            std::mem::take(&mut *self.retries.lock().unwrap_or_else(PoisonError::into_inner));
        if calls.is_empty() {
            return Vec::new();
        }
        calls.sort_unstable_by_key(|&(index, attempt)| (attempt, index));
        let mut requests: Vec<BatchRequest> = Vec::new();
        let mut run: Option<(u32, u32, u32)> = None;
        for (index, attempt) in calls {
            run = match run {
                Some((first, count, a))
                    if a == attempt && first + count == index && count < self.per =>
                {
                    Some((first, count + 1, a))
                }
                Some((first, count, a)) => {
                    requests.push(self.request(first, count, a));
                    Some((index, 1, attempt))
                }
                None => Some((index, 1, attempt)),
            };
        }
        if let Some((first, count, attempt)) = run {
            requests.push(self.request(first, count, attempt));
        }
        tracing::debug!(job = %self.job(), activations = requests.len(), "invoking retries");
        self.invoke(requests).await
    }

    /// Reads outcomes until every call has one, looking after activations
    /// that end without recording theirs.
    async fn follow(&self, mut batches: Vec<Batch>) {
        let tracker = &self.run.tracker;
        let mut seen: HashSet<String> = HashSet::new();
        let mut pause = Duration::from_millis(50);
        let mut round = 0u64;
        loop {
            if self.run.cancelled.load(Ordering::Relaxed) {
                return;
            }
            // Batches whose activation had ended before this listing: what
            // they recorded is in it, so what is missing now is lost.
            let settled: Vec<usize> = batches
                .iter()
                .enumerate()
                .filter(|(_, b)| b.ended.is_some())
                .map(|(i, _)| i)
                .collect();
            if let Err(e) = self.read_statuses(&mut seen).await {
                tracing::warn!(job = %self.job(), "cannot read outcomes yet: {e}");
            }
            for i in settled.into_iter().rev() {
                let batch = batches.swap_remove(i);
                self.settle(&batch);
            }
            let pending = (0..tracker.spec.calls).any(|i| tracker.status(i).is_none());
            if !pending {
                return;
            }
            batches.retain(|b| (b.first..b.first + b.count).any(|i| tracker.status(i).is_none()));
            batches.extend(self.invoke_retries().await);
            round += 1;
            if round.is_multiple_of(4) {
                self.look_at_activations(&mut batches).await;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn read_statuses(&self, seen: &mut HashSet<String>) -> Result<()> {
        let prefix = protocol::status_prefix(self.job());
        let objects = self.storage.list(&self.bucket, &prefix).await?;
        let new: Vec<String> = objects
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !seen.contains(k))
            .collect();
        let reads = futures::stream::iter(new)
            .map(|key| async move {
                let bytes = self.storage.get(&self.bucket, &key).await;
                (key, bytes)
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        for (key, bytes) in reads {
            let bytes = bytes?;
            match protocol::parse_statuses(&bytes) {
                Ok(statuses) => {
                    for status in statuses {
                        match status.call_id.parse::<u32>() {
                            Ok(index) => {
                                self.run.tracker.complete(index, status);
                            }
                            Err(_) => {
                                tracing::warn!(%key, call = %status.call_id, "status of an unknown call")
                            }
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Unsupported(format!(
                        "the outcomes in {key} are unreadable: {e}"
                    )));
                }
            }
            seen.insert(key);
        }
        Ok(())
    }

    /// Asks OpenWhisk about a few activations that still owe outcomes.
    async fn look_at_activations(&self, batches: &mut [Batch]) {
        let limit = self.timeout + LOST_AFTER;
        for batch in batches
            .iter_mut()
            .filter(|b| b.ended.is_none() && b.activation.is_some())
            .take(16)
        {
            let Some(id) = batch.activation.clone() else {
                continue;
            };
            match self.client.activation(&id).await {
                Ok(Some(record)) => batch.ended = Some(record),
                Ok(None) if batch.invoked.elapsed() > limit => {
                    batch.ended = Some(ActivationRecord {
                        activation_id: id.clone(),
                        ..ActivationRecord::default()
                    });
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(activation = %id, "cannot read the activation: {e}"),
            }
        }
        // Rotate, so that every activation is looked at in turn.
        let len = batches.len();
        if len > 16 {
            batches.rotate_left(16);
        }
    }

    /// Fails the calls of an ended activation that recorded no outcome.
    fn settle(&self, batch: &Batch) {
        let Some(record) = &batch.ended else { return };
        let id = &record.activation_id;
        let why = if record.response.status.is_empty() {
            format!(
                "activation {id} left no record within {:?} of being invoked",
                self.timeout + LOST_AFTER
            )
        } else if record.response.success {
            format!("activation {id} ended without recording this call's outcome")
        } else {
            let error = record
                .response
                .result
                .as_ref()
                .and_then(|r| r.get("error"))
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                .unwrap_or_default();
            format!(
                "activation {id} ended as {}{}{}",
                record.response.status,
                if error.is_empty() { "" } else { ": " },
                error
            )
        };
        self.fail(batch.first..batch.first + batch.count, batch.attempt, &why);
    }

    /// Fails the calls of an attempt that have no outcome yet; calls that
    /// moved on to a later attempt are left to it.
    fn fail(&self, calls: std::ops::Range<u32>, attempt: u32, message: &str) {
        let tracker = &self.run.tracker;
        let spec = &tracker.spec;
        for index in calls {
            if tracker.status(index).is_some() || tracker.attempt(index) != attempt {
                continue;
            }
            let now = wisp_runtime::now_us();
            let status = wisp_runtime::CallStatus {
                job_id: spec.job_id.clone(),
                call_id: protocol::call_id(index),
                outcome: wisp_runtime::Outcome::Error,
                error: Some(Failure::Lost {
                    message: message.to_owned(),
                }),
                output: None,
                output_key: None,
                output_size: 0,
                log: String::new(),
                timings: wisp_runtime::Timings {
                    submitted_us: spec.submitted_us,
                    worker_start_us: now,
                    function_start_us: now,
                    function_end_us: now,
                    done_us: now,
                },
                worker: "openwhisk".to_owned(),
                attempt,
            };
            tracker.complete(index, status);
        }
    }
}
