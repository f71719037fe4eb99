//! The jobs kept in storage: what `wisp jobs` lists and `wisp logs` reads.
//!
//! A job stays in its bucket after its executor closes when the executor
//! keeps its data (`wisp submit --keep`, `data_cleaner: false`) or when the
//! run was cut short. A client interrupted before its job finished (Ctrl-C)
//! writes `interrupted.json` into the job's prefix (see [`Interruption`]),
//! and the job lists as [`JobState::Interrupted`]. So does a job whose
//! client is gone without a word (killed, crashed) while calls had no
//! outcome: each job records its client in `client.json` ([`ClientInfo`]),
//! and a client process that no longer runs on this machine is seen to be
//! gone. Everything here reads the layout described in
//! [`wisp_runtime::protocol`]: a listing of the `wisp/jobs/` prefix names
//! every job and every status object at once, so listing all jobs costs one
//! listing plus one read per spec and per status object.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use wisp_runtime::protocol::{self, CallStatus, JobSpec};
use wisp_storage::Storage;

/// How many objects are read at once.
const READ_CONCURRENCY: usize = 16;

/// Why jobs cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] wisp_storage::StorageError),
    /// A job's spec is not one.
    #[error("the job spec {key} is unreadable: {message}")]
    BadSpec {
        /// The object.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A status object is not one.
    #[error("the statuses in {key} are unreadable: {message}")]
    BadStatus {
        /// The object.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// There is no such job.
    #[error(
        "there is no job `{job_id}` in bucket `{bucket}`: `wisp jobs` lists the jobs kept there"
    )]
    UnknownJob {
        /// The job asked for.
        job_id: String,
        /// The bucket looked in.
        bucket: String,
    },
    /// The job has no such call.
    #[error(
        "job `{job_id}` has no call `{call}`: its calls are 00000 to {last} \
         (`wisp logs {job_id}` shows them all)"
    )]
    UnknownCall {
        /// The job.
        job_id: String,
        /// The call asked for.
        call: String,
        /// The id of its last call.
        last: String,
    },
}

/// What a client records when it is interrupted before its job finished:
/// the object [`interrupted_key`] of the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    /// The signal, such as `SIGINT`.
    pub signal: String,
    /// When, in microseconds since the Unix epoch.
    pub at_us: u64,
    /// The calls with an outcome at that moment.
    pub completed: u64,
    /// The job's calls.
    pub calls: u64,
}

/// The object that marks a job as interrupted.
pub fn interrupted_key(job_id: &str) -> String {
    format!("{}interrupted.json", protocol::job_prefix(job_id))
}

/// The process that submitted a job: the object [`client_key`] of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The machine's host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks after boot (Linux's
    /// `/proc/PID/stat`), which tells a reused pid from the original.
    pub started: Option<u64>,
}

/// The object that names a job's client.
pub fn client_key(job_id: &str) -> String {
    format!("{}client.json", protocol::job_prefix(job_id))
}

impl ClientInfo {
    /// This process.
    pub fn this_process() -> Self {
        let pid = std::process::id();
        Self {
            host: host_name(),
            pid,
            started: process_start(pid),
        }
    }

    /// Whether the client no longer runs: `Some(true)` when it ran on this
    /// machine and its process is gone (or its pid now belongs to another
    /// process), `None` when this machine cannot tell (another host, or no
    /// `/proc`).
    pub fn is_gone(&self) -> Option<bool> {
        if self.host != host_name() || !std::path::Path::new("/proc/self/stat").exists() {
            return None;
        }
        Some(match process_start(self.pid) {
            None => true,
            Some(started) => self.started.is_some_and(|s| s != started),
        })
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_default()
}

/// The start time of a running process, field 22 of `/proc/PID/stat`.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last `)`, which is followed by field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A job and the outcomes recorded for its calls.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id.
    pub job_id: String,
    /// Its spec; `None` when `job.json` is missing (a job whose data is
    /// half removed, or whose submission was cut short).
    pub spec: Option<JobSpec>,
    /// The recorded outcomes by call id, each call once.
    pub statuses: BTreeMap<String, CallStatus>,
    /// Set when the client was interrupted before the job finished.
    pub interrupted: Option<Interruption>,
    /// The process that submitted the job, if it recorded itself.
    pub client: Option<ClientInfo>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Some calls have no outcome yet.
    Running,
    /// The client was interrupted (Ctrl-C) before every call succeeded, or
    /// is gone while calls had no outcome: those calls will never get one.
    Interrupted,
    /// Every call succeeded.
    Done,
    /// Every call has an outcome and some failed.
    Failed,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Interrupted => "interrupted",
            Self::Done => "done",
            Self::Failed => "failed",
        })
    }
}

impl Job {
    /// How many calls the job has (the recorded ones if its spec is
    /// missing).
    pub fn total(&self) -> usize {
        self.spec
            .as_ref()
            .map_or(self.statuses.len(), |s| s.calls as usize)
            .max(self.statuses.len())
    }

    /// Calls that succeeded.
    pub fn succeeded(&self) -> usize {
        self.statuses.values().filter(|s| s.succeeded()).count()
    }

    /// Calls that failed.
    pub fn failed(&self) -> usize {
        self.statuses.len() - self.succeeded()
    }

    /// Calls without an outcome.
    pub fn pending(&self) -> usize {
        self.total() - self.statuses.len()
    }

    /// Where the job stands.
    pub fn state(&self) -> JobState {
        let client_gone = || {
            self.client
                .as_ref()
                .is_some_and(|c| c.is_gone() == Some(true))
        };
        if self.succeeded() < self.total()
            && (self.interrupted.is_some() || (self.pending() > 0 && client_gone()))
        {
            JobState::Interrupted
        } else if self.pending() > 0 {
            JobState::Running
        } else if self.failed() > 0 {
            JobState::Failed
        } else {
            JobState::Done
        }
    }

    /// The call ids of the job, in call order: every call of the spec,
    /// and any recorded call beyond it.
    pub fn call_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = (0..self.total() as u32).map(protocol::call_id).collect();
        for id in self.statuses.keys() {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// The id of a call given as `7` or `00007`.
    ///
    /// # Errors
    ///
    /// When the job has no such call.
    pub fn resolve_call(&self, call: &str) -> Result<String, JobsError> {
        let id = call
            .trim()
            .parse::<u32>()
            .map_or_else(|_| call.trim().to_owned(), protocol::call_id);
        let ids = self.call_ids();
        if ids.contains(&id) {
            Ok(id)
        } else {
            Err(JobsError::UnknownCall {
                job_id: self.job_id.clone(),
                call: call.to_owned(),
                last: ids.last().cloned().unwrap_or_else(|| "(none)".to_owned()),
            })
        }
    }
}

/// The objects of one job, from a listing.
#[derive(Default)]
struct JobObjects {
    spec: Option<String>,
    interrupted: Option<String>,
    client: Option<String>,
    statuses: Vec<String>,
}

/// Groups the keys under `wisp/jobs/` by job.
fn group(keys: impl IntoIterator<Item = String>) -> BTreeMap<String, JobObjects> {
    let root = protocol::jobs_prefix();
    let mut jobs: BTreeMap<String, JobObjects> = BTreeMap::new();
    for key in keys {
        let Some(rest) = key.strip_prefix(&root) else {
            continue;
        };
        let Some((job_id, inside)) = rest.split_once('/') else {
            continue;
        };
        if job_id.is_empty() {
            continue;
        }
        let objects = jobs.entry(job_id.to_owned()).or_default();
        if inside == "job.json" {
            objects.spec = Some(key);
        } else if inside == "interrupted.json" {
            objects.interrupted = Some(key);
        } else if inside == "client.json" {
            objects.client = Some(key);
        } else if inside.starts_with("status/") && inside.ends_with(".jsonl") {
            objects.statuses.push(key);
        }
    }
    jobs
}

/// Reads the objects of one job.
async fn read(
    storage: &dyn Storage,
    bucket: &str,
    job_id: String,
    objects: JobObjects,
) -> Result<Job, JobsError> {
    let spec = match &objects.spec {
        Some(key) => {
            let bytes = storage.get(bucket, key).await?;
            Some(
                serde_json::from_slice::<JobSpec>(&bytes).map_err(|e| JobsError::BadSpec {
                    key: key.clone(),
                    message: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let interrupted = match &objects.interrupted {
        // The marker's presence is what counts; its details are a bonus.
        Some(key) => {
            Some(serde_json::from_slice(&storage.get(bucket, key).await?).unwrap_or_default())
        }
        None => None,
    };
    let client = match &objects.client {
        // Without a readable record, nothing can be told of the client.
        Some(key) => serde_json::from_slice(&storage.get(bucket, key).await?).ok(),
        None => None,
    };
    let objects: Vec<Vec<CallStatus>> = futures::stream::iter(objects.statuses)
        .map(|key| async move {
            let bytes = storage.get(bucket, &key).await?;
            protocol::parse_statuses(&bytes).map_err(|e| JobsError::BadStatus {
                key,
                message: e.to_string(),
            })
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let mut statuses: BTreeMap<String, CallStatus> = BTreeMap::new();
    for status in objects.into_iter().flatten() {
        // A call reported twice counts once: a success wins over a
        // failure, and a later attempt's failure over an earlier one's.
        match statuses.get(&status.call_id) {
            Some(seen)
                if seen.succeeded() || (!status.succeeded() && seen.attempt >= status.attempt) => {}
            _ => {
                statuses.insert(status.call_id.clone(), status);
            }
        }
    }
    Ok(Job {
        job_id,
        spec,
        statuses,
        interrupted,
        client,
    })
}

/// Every job kept in `bucket`, oldest first (jobs without a spec last);
/// none when the bucket does not exist.
///
/// # Errors
///
/// When storage fails or an object is unreadable.
pub async fn list(storage: &dyn Storage, bucket: &str) -> Result<Vec<Job>, JobsError> {
    // A bucket that does not exist yet holds no jobs.
    let listing = match storage.list(bucket, &protocol::jobs_prefix()).await {
        Err(wisp_storage::StorageError::NoSuchBucket { .. }) => Vec::new(),
        listing => listing?,
    };
    let grouped = group(listing.into_iter().map(|o| o.key));
    let mut jobs: Vec<Job> = futures::stream::iter(grouped)
        .map(|(job_id, objects)| read(storage, bucket, job_id, objects))
        .buffer_unordered(4)
        .try_collect()
        .await?;
    jobs.sort_by_key(|job| {
        (
            job.spec.as_ref().map_or(u64::MAX, |s| s.submitted_us),
            job.job_id.clone(),
        )
    });
    Ok(jobs)
}

/// One job kept in `bucket`.
///
/// # Errors
///
/// [`JobsError::UnknownJob`] when the bucket holds nothing of it; else as
/// [`list`].
pub async fn get(storage: &dyn Storage, bucket: &str, job_id: &str) -> Result<Job, JobsError> {
    let unknown = || JobsError::UnknownJob {
        job_id: job_id.to_owned(),
        bucket: bucket.to_owned(),
    };
    if job_id.is_empty() || job_id.contains('/') {
        return Err(unknown());
    }
    let listing = match storage.list(bucket, &protocol::job_prefix(job_id)).await {
        Err(wisp_storage::StorageError::NoSuchBucket { .. }) => return Err(unknown()),
        listing => listing?,
    };
    let mut grouped = group(listing.into_iter().map(|o| o.key));
    let objects = grouped.remove(job_id).ok_or_else(unknown)?;
    read(storage, bucket, job_id.to_owned(), objects).await
}

/// How long ago `submitted_us` was, in the largest whole unit: `42s`,
/// `5m`, `3h`, `2d`.
pub fn age(submitted_us: u64, now_us: u64) -> String {
    let seconds = now_us.saturating_sub(submitted_us) / 1_000_000;
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_by_job() {
        let keys = [
            "wisp/jobs/a-1/job.json",
            "wisp/jobs/a-1/args.jsonl",
            "wisp/jobs/a-1/status/00000-x.jsonl",
            "wisp/jobs/a-1/status/00004-y.jsonl",
            "wisp/jobs/a-1/output/00001.json",
            "wisp/jobs/b-2/status/00000-z.jsonl",
            "wisp/jobs/b-2/interrupted.json",
            "wisp/jobs/stray",
        ];
        let jobs = group(keys.iter().map(|k| (*k).to_owned()));
        assert_eq!(jobs.keys().collect::<Vec<_>>(), ["a-1", "b-2"]);
        assert_eq!(jobs["a-1"].spec.as_deref(), Some("wisp/jobs/a-1/job.json"));
        assert_eq!(jobs["a-1"].statuses.len(), 2);
        assert!(jobs["b-2"].spec.is_none());
        assert!(jobs["a-1"].interrupted.is_none());
        assert_eq!(
            jobs["b-2"].interrupted.as_deref(),
            Some("wisp/jobs/b-2/interrupted.json")
        );
    }

    #[test]
    fn a_client_is_gone_when_its_process_is() {
        let me = ClientInfo::this_process();
        assert!(me.started.is_some(), "{me:?}");
        assert_eq!(me.is_gone(), Some(false));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("`true` runs");
        let pid = child.id();
        child.wait().expect("reaped");
        let dead = ClientInfo { pid, ..me.clone() };
        assert_eq!(dead.is_gone(), Some(true));
        // The same pid started at another time is another process.
        let reused = ClientInfo {
            started: me.started.map(|s| s + 1),
            ..me.clone()
        };
        assert_eq!(reused.is_gone(), Some(true));
        let elsewhere = ClientInfo {
            host: format!("{}-elsewhere", me.host),
            pid,
            ..me
        };
        assert_eq!(elsewhere.is_gone(), None);
    }

    #[test]
    fn ages_use_the_largest_unit() {
        let s = 1_000_000;
        assert_eq!(age(0, 42 * s), "42s");
        assert_eq!(age(0, 300 * s), "5m");
        assert_eq!(age(0, 3 * 3600 * s), "3h");
        assert_eq!(age(0, 2 * 86_400 * s), "2d");
        assert_eq!(age(10 * s, 0), "0s");
    }
}
