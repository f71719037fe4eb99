//! The job protocol: what lives where in storage.
//!
//! Everything of wisp's sits under [`ROOT`] in the configured bucket:
//!
//! ```text
//! wisp/modules/<sha256>.wasm            a module, content-addressed, stored once
//! wisp/code/<sha256>-<tag>.cwasm        its compiled code, sealed, for runtime containers
//! wisp/jobs/<job>/job.json              the job spec (JobSpec)
//! wisp/jobs/<job>/args.jsonl            the calls' arguments, one JSON per line
//! wisp/jobs/<job>/output/<call>.json    a call's result, when too large to inline
//! wisp/jobs/<job>/status/<call>-<tag>.jsonl  statuses (CallStatus), one per line
//! ```
//!
//! A status is the last thing written for a call, atomically: a status that
//! exists means everything it points to is complete. A worker records the
//! calls it has just finished together, so one status object holds the
//! statuses of one or more calls of a job, and is named after the first of
//! them plus a random tag. Readers take every line of every object under
//! `status/`; a call reported twice (a retried batch) counts once. Small
//! results and the call's log travel inside the status, so most calls cost
//! a fraction of one write.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use wisp_engine::{CallError, CallLimits, Digest};

/// The prefix under which wisp keeps everything in a bucket.
pub const ROOT: &str = "wisp";

/// Results up to this size travel inside the status.
pub const INLINE_OUTPUT_LIMIT: usize = 256 * 1024;

/// The key of a module.
pub fn module_key(digest: &Digest) -> String {
    format!("{ROOT}/modules/{digest}.wasm")
}

/// The key of a module's compiled code for engines of `tag`, sealed (see
/// `wisp_engine::CodeSeal`): shared by the runtime containers of one
/// deployment.
pub fn code_key(digest: &Digest, tag: &str) -> String {
    format!("{ROOT}/code/{digest}-{tag}.cwasm")
}

/// The prefix of all compiled code.
pub fn code_prefix() -> String {
    format!("{ROOT}/code/")
}

/// The prefix of all modules.
pub fn modules_prefix() -> String {
    format!("{ROOT}/modules/")
}

/// The prefix of all of a job's objects.
pub fn job_prefix(job_id: &str) -> String {
    format!("{ROOT}/jobs/{job_id}/")
}

/// The prefix of all jobs.
pub fn jobs_prefix() -> String {
    format!("{ROOT}/jobs/")
}

/// The key of a job's spec.
pub fn job_spec_key(job_id: &str) -> String {
    format!("{ROOT}/jobs/{job_id}/job.json")
}

/// The key of a job's arguments.
pub fn args_key(job_id: &str) -> String {
    format!("{ROOT}/jobs/{job_id}/args.jsonl")
}

/// The key of a status object whose first call is `call_id`.
pub fn status_key(job_id: &str, call_id: &str, tag: &str) -> String {
    format!("{ROOT}/jobs/{job_id}/status/{call_id}-{tag}.jsonl")
}

/// The prefix of a job's status objects.
pub fn status_prefix(job_id: &str) -> String {
    format!("{ROOT}/jobs/{job_id}/status/")
}

/// Reads the statuses in a status object.
///
/// # Errors
///
/// When a line is not a status.
pub fn parse_statuses(object: &[u8]) -> Result<Vec<CallStatus>, serde_json::Error> {
    object
        .split(|&b| b == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
        .map(serde_json::from_slice)
        .collect()
}

/// The key of a call's result, when it is not inline.
pub fn output_key(job_id: &str, call_id: &str, attempt: u32) -> String {
    if attempt <= 1 {
        format!("{ROOT}/jobs/{job_id}/output/{call_id}.json")
    } else {
        format!("{ROOT}/jobs/{job_id}/output/{call_id}-attempt{attempt}.json")
    }
}

/// The id of the call at `index`: zero-padded so that ids sort as numbers.
pub fn call_id(index: u32) -> String {
    format!("{index:05}")
}

/// What a job is: one function of one module, called once per argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's id, unique in the bucket.
    pub job_id: String,
    /// The executor that submitted it.
    pub executor_id: String,
    /// The SHA-256 of the module, which is stored at [`module_key`].
    pub module: String,
    /// The function to call.
    pub function: String,
    /// How many calls the job has.
    pub calls: u32,
    /// Memory limit of each call, in bytes.
    pub memory_bytes: u64,
    /// Time limit of each call, in milliseconds.
    pub timeout_ms: u64,
    /// How much of each call's log is kept, in bytes.
    pub log_bytes: u64,
    /// The largest result a call may return, in bytes.
    pub output_bytes: u64,
    /// When the job was submitted, in microseconds since the epoch.
    pub submitted_us: u64,
    /// The wisp version of the client.
    pub wisp_version: String,
    /// The guest ABI version of the module.
    pub abi: u32,
}

impl JobSpec {
    /// The limits that each call of the job runs with.
    pub fn limits(&self) -> CallLimits {
        CallLimits {
            memory: self.memory_bytes,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            log_bytes: self.log_bytes as usize,
            output_bytes: self.output_bytes as usize,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It returned a result.
    Success,
    /// It failed; the status says why.
    Error,
}

/// Why a call failed: in the function, or around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The worker could not get or load the module.
    #[error("the worker could not load the module: {message}")]
    Module {
        /// Why.
        message: String,
    },
    /// The worker could not read or write storage.
    #[error("the worker could not use storage: {message}")]
    Storage {
        /// Why.
        message: String,
    },
    /// The compute backend lost the call: its activation failed, ran out
    /// of time before the call started, or ended without recording it.
    #[error("{message}")]
    Lost {
        /// What happened, naming the activation where there is one.
        message: String,
    },
    /// The call itself failed.
    #[error(transparent)]
    #[serde(untagged)]
    Call(CallError),
}

/// The moments of a call's life, in microseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// The client submitted the job.
    pub submitted_us: u64,
    /// A worker picked the call up.
    pub worker_start_us: u64,
    /// The instance was about to be created.
    pub function_start_us: u64,
    /// The function returned or failed.
    pub function_end_us: u64,
    /// The worker recorded the outcome.
    pub done_us: u64,
}

/// The record of one finished call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallStatus {
    /// The job.
    pub job_id: String,
    /// The call.
    pub call_id: String,
    /// Success or error.
    pub outcome: Outcome,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// The result, when small enough to travel here. (A result of `null`
    /// is `Some` of it: absent and `null` differ here.)
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_raw"
    )]
    pub output: Option<Box<RawValue>>,
    /// Where the result is, when it does not travel here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_key: Option<String>,
    /// The size of the result in bytes.
    pub output_size: u64,
    /// What the call printed to stdout and stderr.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
    /// When things happened.
    pub timings: Timings,
    /// Which worker ran it.
    pub worker: String,
    /// Which attempt at the call this was: 1 for the first run, more when
    /// the client retried it.
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// A raw value that is there, `null` included: serde's own `Option` would
/// read a `null` as absent.
fn present_raw<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

fn is_first_attempt(attempt: &u32) -> bool {
    *attempt == 1
}

impl CallStatus {
    /// Whether the call succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_result_survives_the_trip_through_storage() {
        let line = r#"{"job_id":"j","call_id":"00000","outcome":"success","output":null,"output_size":4,"timings":{"submitted_us":0,"worker_start_us":0,"function_start_us":0,"function_end_us":0,"done_us":0},"worker":"w"}"#;
        let status: CallStatus = serde_json::from_str(line).expect("parses");
        assert_eq!(status.output.as_deref().map(RawValue::get), Some("null"));
        assert_eq!(serde_json::to_string(&status).expect("writes"), line);
        let absent = line.replace(r#""output":null,"#, "");
        let status: CallStatus = serde_json::from_str(&absent).expect("parses");
        assert!(status.output.is_none());
    }

    #[test]
    fn keys_are_laid_out_under_the_job() {
        assert_eq!(call_id(7), "00007");
        assert_eq!(call_id(123_456), "123456");
        assert_eq!(
            status_key("j1", "00007", "ab"),
            "wisp/jobs/j1/status/00007-ab.jsonl"
        );
        assert!(status_key("j1", "00007", "ab").starts_with(&status_prefix("j1")));
        assert!(output_key("j1", "00007", 1).starts_with(&job_prefix("j1")));
        assert_ne!(output_key("j1", "00007", 1), output_key("j1", "00007", 2));
        assert!(args_key("j1").starts_with(&job_prefix("j1")));
        assert!(job_prefix("j1").starts_with(&jobs_prefix()));
    }

    #[test]
    fn failures_are_tagged_and_round_trip() {
        let call = Failure::Call(CallError::Timeout { limit_ms: 10 });
        let json = serde_json::to_string(&call).expect("serializable");
        assert_eq!(json, r#"{"kind":"timeout","limit_ms":10}"#);
        assert_eq!(
            serde_json::from_str::<Failure>(&json).expect("readable"),
            call
        );
        let storage = Failure::Storage {
            message: "disk full".to_owned(),
        };
        let json = serde_json::to_string(&storage).expect("serializable");
        assert_eq!(
            serde_json::from_str::<Failure>(&json).expect("readable"),
            storage
        );
    }
}
