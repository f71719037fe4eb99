//! The worker: runs calls of a job and records each outcome in storage.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::runtime::Handle;
use wisp_engine::{Digest, Engine, Module};
use wisp_storage::Storage;

use crate::protocol::{self, CallStatus, Failure, JobSpec, Outcome, Timings};
use crate::{now_us, unix_us};

/// One call to run: its index in the job and its arguments as JSON.
#[derive(Debug, Clone)]
pub struct CallInput {
    /// The call's index in the job.
    pub index: u32,
    /// The arguments, JSON.
    pub args: Bytes,
}

/// Why a worker could not run a job at all.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The module could not be fetched.
    #[error("could not fetch module {digest}: {source}")]
    Fetch {
        /// The module's digest.
        digest: String,
        /// The cause.
        #[source]
        source: wisp_storage::StorageError,
    },
    /// The stored module's bytes do not hash to its name.
    #[error(
        "module {expected} in storage has been altered (its bytes hash to {actual}); \
         refusing to run it: delete the object and submit the job again"
    )]
    Tampered {
        /// The digest in its key.
        expected: String,
        /// The digest of its bytes.
        actual: String,
    },
    /// The module does not load.
    #[error(transparent)]
    Module(#[from] wisp_engine::ModuleError),
}

/// Runs calls and records their outcomes. Its methods block: use it from
/// plain threads, never from a thread that drives an async runtime.
#[derive(Debug)]
pub struct Worker {
    engine: Arc<Engine>,
    storage: Arc<dyn Storage>,
    bucket: String,
    runtime: Handle,
    name: String,
}

impl Worker {
    /// A worker that runs modules on `engine` and keeps records in `bucket`
    /// of `storage`, driving storage's futures on `runtime`.
    pub fn new(
        engine: Arc<Engine>,
        storage: Arc<dyn Storage>,
        bucket: impl Into<String>,
        runtime: Handle,
        name: impl Into<String>,
    ) -> Self {
        Self {
            engine,
            storage,
            bucket: bucket.into(),
            runtime,
            name: name.into(),
        }
    }

    /// The engine the worker runs modules on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The job's module: compiled already, or fetched from storage, checked
    /// against its digest, and compiled.
    ///
    /// # Errors
    ///
    /// When the module cannot be fetched, has been altered, or does not load.
    pub fn module(&self, job: &JobSpec) -> Result<Arc<Module>, WorkerError> {
        let digest: Digest = job.module.parse()?;
        if let Some(module) = self.engine.cached(&digest) {
            return Ok(module);
        }
        let key = protocol::module_key(&digest);
        let bytes = self
            .runtime
            .block_on(self.storage.get(&self.bucket, &key))
            .map_err(|source| WorkerError::Fetch {
                digest: job.module.clone(),
                source,
            })?;
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(WorkerError::Tampered {
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(self.engine.load(&bytes)?)
    }

    /// Runs one call and records its outcome: the result first when it is
    /// too large to inline, then the status, last and atomically.
    pub fn run_call(&self, job: &JobSpec, module: &Module, call: &CallInput) -> CallStatus {
        let worker_start_us = now_us();
        let outcome = self
            .engine
            .call(module, &job.function, &call.args, &job.limits());
        let timings = Timings {
            submitted_us: job.submitted_us,
            worker_start_us,
            function_start_us: unix_us(outcome.started),
            function_end_us: unix_us(outcome.finished),
            done_us: 0,
        };
        let status = CallStatus {
            job_id: job.job_id.clone(),
            call_id: protocol::call_id(call.index),
            outcome: Outcome::Success,
            error: None,
            output: None,
            output_key: None,
            output_size: 0,
            log: outcome.log.to_text(),
            timings,
            worker: self.name.clone(),
        };
        match outcome.result {
            Ok(output) => self.record_success(status, output),
            Err(error) => self.record(status.failed(Failure::Call(error))),
        }
    }

    /// Records that a call could not run at all, for example because its
    /// module did not load.
    pub fn fail_call(&self, job: &JobSpec, index: u32, failure: Failure) -> CallStatus {
        let now = now_us();
        let status = CallStatus {
            job_id: job.job_id.clone(),
            call_id: protocol::call_id(index),
            outcome: Outcome::Error,
            error: None,
            output: None,
            output_key: None,
            output_size: 0,
            log: String::new(),
            timings: Timings {
                submitted_us: job.submitted_us,
                worker_start_us: now,
                function_start_us: now,
                function_end_us: now,
                done_us: 0,
            },
            worker: self.name.clone(),
        };
        self.record(status.failed(failure))
    }

    fn record_success(&self, mut status: CallStatus, output: Vec<u8>) -> CallStatus {
        status.output_size = output.len() as u64;
        if output.len() <= protocol::INLINE_OUTPUT_LIMIT {
            // The engine checked that the output is JSON.
            match String::from_utf8(output).map(RawValue::from_string) {
                Ok(Ok(raw)) => status.output = Some(raw),
                _ => {
                    return self.record(status.failed(Failure::Call(
                        wisp_engine::CallError::InvalidOutput {
                            message: "the result is not UTF-8 JSON".to_owned(),
                        },
                    )));
                }
            }
        } else {
            let key = protocol::output_key(&status.job_id, &status.call_id);
            let put = self.storage.put(&self.bucket, &key, Bytes::from(output));
            if let Err(e) = self.runtime.block_on(put) {
                return self.record(status.failed(Failure::Storage {
                    message: e.to_string(),
                }));
            }
            status.output_key = Some(key);
        }
        self.record(status)
    }

    /// Writes the status. If even that fails the status is still returned,
    /// so that an in-process client learns the outcome; the failure is
    /// logged.
    fn record(&self, mut status: CallStatus) -> CallStatus {
        status.timings.done_us = now_us();
        let key = protocol::status_key(&status.job_id, &status.call_id);
        let body = match serde_json::to_vec(&status) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(job = %status.job_id, call = %status.call_id, "cannot encode status: {e}");
                return status;
            }
        };
        if let Err(e) =
            self.runtime
                .block_on(self.storage.put(&self.bucket, &key, Bytes::from(body)))
        {
            tracing::error!(job = %status.job_id, call = %status.call_id, "cannot write status: {e}");
            return status.failed(Failure::Storage {
                message: format!("the outcome could not be recorded: {e}"),
            });
        }
        status
    }
}

impl CallStatus {
    fn failed(mut self, failure: Failure) -> Self {
        self.outcome = Outcome::Error;
        self.output = None;
        self.output_key = None;
        self.error = Some(failure);
        self
    }
}
