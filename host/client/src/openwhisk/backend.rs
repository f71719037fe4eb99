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
        let driver = Driver {
            client: self.client.clone(),
            storage: self.storage.clone(),
            bucket: self.bucket.clone(),
            action,
            run,
            per,
            timeout: self.timeout,
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
    per: u32,
    timeout: Duration,
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
        let spec = &self.run.tracker.spec;
        let mut requests = Vec::new();
        let mut offset = 0u64;
        for first in (0..spec.calls).step_by(self.per as usize) {
            let count = self.per.min(spec.calls - first);
            let args = &self.run.args[first as usize..(first + count) as usize];
            let size: usize = args.iter().map(|a| a.len() + 1).sum();
            let inline = (size <= INLINE_ARGS).then(|| {
                args.iter()
                    .filter_map(|a| std::str::from_utf8(a).ok().map(str::to_owned))
                    .collect::<Vec<_>>()
            });
            requests.push(BatchRequest {
                job: spec.job_id.clone(),
                first,
                count,
                args: inline.filter(|a| a.len() == count as usize),
                args_range: Some([offset, offset + size as u64]),
            });
            offset += size as u64;
        }
        tracing::debug!(job = %self.job(), activations = requests.len(), per = self.per, "invoking");
        futures::stream::iter(requests)
            .map(|request| async move {
                let invoked = Instant::now();
                if self.run.cancelled.load(Ordering::Relaxed) {
                    return None;
                }
                let (first, count) = (request.first, request.count);
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
                            &format!("the activation for this call could not be invoked: {e}"),
                        );
                        None
                    }
                };
                Some(Batch {
                    first,
                    count,
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
        self.fail(batch.first..batch.first + batch.count, &why);
    }

    fn fail(&self, calls: std::ops::Range<u32>, message: &str) {
        let tracker = &self.run.tracker;
        let spec = &tracker.spec;
        for index in calls {
            if tracker.status(index).is_some() {
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
            };
            tracker.complete(index, status);
        }
    }
}
