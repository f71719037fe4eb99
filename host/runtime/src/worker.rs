//! The worker: runs calls of a job and records each outcome in storage.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::runtime::Handle;
use wisp_engine::{CodeSeal, Digest, Engine, Module};
use wisp_storage::{Storage, StorageError};

use crate::protocol::{self, CallStatus, Failure, JobSpec, Outcome, Timings};
use crate::retry::retrying;
use crate::{now_us, unix_us};

/// One call to run: its index in the job and its arguments as JSON.
#[derive(Debug, Clone)]
pub struct CallInput {
    /// The call's index in the job.
    pub index: u32,
    /// The arguments, JSON.
    pub args: Bytes,
    /// Which attempt at the call this is, from 1.
    pub attempt: u32,
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
pub struct Worker {
    engine: Arc<Engine>,
    storage: Arc<dyn Storage>,
    bucket: String,
    runtime: Handle,
    name: String,
    guest_storage: wisp_engine::SharedStorage,
    /// Vouches for compiled code that workers sharing the seal keep in
    /// storage, so that only the first of them compiles a module.
    code_seal: Option<CodeSeal>,
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
        let bucket = bucket.into();
        let guest_storage = Arc::new(crate::BucketStorage::new(
            storage.clone(),
            bucket.clone(),
            runtime.clone(),
        ));
        Self {
            engine,
            storage,
            bucket,
            runtime,
            name: name.into(),
            guest_storage,
            code_seal: None,
        }
    }

    /// Shares compiled modules through storage with the workers that hold
    /// the same seal: each module is compiled by the first of them, and
    /// loaded by the others from code this seal vouches for.
    #[must_use]
    pub fn with_code_seal(mut self, seal: CodeSeal) -> Self {
        self.code_seal = Some(seal);
        self
    }

    /// The engine the worker runs modules on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The storage the worker reads jobs from and records outcomes in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The bucket of jobs.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The runtime that drives storage's futures.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
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
        let Some(seal) = &self.code_seal else {
            return Ok(self.engine.load(&bytes)?);
        };
        let code_key = protocol::code_key(&digest, self.engine.code_tag());
        match self
            .runtime
            .block_on(self.storage.get(&self.bucket, &code_key))
        {
            Ok(sealed) => {
                if let Some(module) = self.engine.load_sealed(&bytes, &sealed, seal)? {
                    tracing::info!(%digest, "loaded the compiled module from storage");
                    return Ok(module);
                }
            }
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => tracing::debug!(%digest, "cannot read compiled code, compiling: {e}"),
        }
        let module = self.engine.load(&bytes)?;
        if !module.from_code_cache()
            && let Some(sealed) = self.engine.seal_code(&module, seal)
        {
            // Only saves the next containers time: a failure is no error.
            let put = self
                .storage
                .put(&self.bucket, &code_key, Bytes::from(sealed));
            if let Err(e) = self.runtime.block_on(put) {
                tracing::debug!(%digest, "cannot share the compiled module: {e}");
            }
        }
        Ok(module)
    }

    /// Runs one call and records its outcome: the result first when it is
    /// too large to inline, then the status, last and atomically.
    pub fn run_call(&self, job: &JobSpec, module: &Module, call: &CallInput) -> CallStatus {
        let status = self.execute(job, module, call);
        self.record(vec![status]).remove(0)
    }

    /// Runs one call and stores its result if it is too large to inline,
    /// but does not record its status: [`record`](Self::record) does, for
    /// several calls at once.
    pub fn execute(&self, job: &JobSpec, module: &Module, call: &CallInput) -> CallStatus {
        self.execute_within(job, module, call, None)
    }

    /// As [`execute`](Self::execute), with the call's time limit cut to
    /// `left` when that is shorter than the job's: a worker inside an
    /// activation must finish before the activation's deadline.
    pub fn execute_within(
        &self,
        job: &JobSpec,
        module: &Module,
        call: &CallInput,
        left: Option<std::time::Duration>,
    ) -> CallStatus {
        let worker_start_us = now_us();
        let mut limits = job.limits();
        if let Some(left) = left {
            limits.timeout = limits.timeout.min(left);
        }
        let outcome = self.engine.call_with_storage(
            module,
            &job.function,
            &call.args,
            &limits,
            self.guest_storage.clone(),
        );
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
            attempt: call.attempt,
        };
        match outcome.result {
            Ok(output) => self.store_output(status, output),
            Err(error) => status.failed(Failure::Call(error)),
        }
    }

    /// The status of a call that could not run at all, for example because
    /// its module did not load; [`record`](Self::record) it like any other.
    pub fn fail_call(
        &self,
        job: &JobSpec,
        index: u32,
        attempt: u32,
        failure: Failure,
    ) -> CallStatus {
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
            attempt,
        };
        status.failed(failure)
    }

    fn store_output(&self, mut status: CallStatus, output: Vec<u8>) -> CallStatus {
        status.output_size = output.len() as u64;
        if output.len() <= protocol::INLINE_OUTPUT_LIMIT {
            // The engine checked that the output is JSON.
            match String::from_utf8(output).map(RawValue::from_string) {
                Ok(Ok(raw)) => status.output = Some(raw),
                _ => {
                    return status.failed(Failure::Call(wisp_engine::CallError::InvalidOutput {
                        message: "the result is not UTF-8 JSON".to_owned(),
                    }));
                }
            }
        } else {
            let key = protocol::output_key(&status.job_id, &status.call_id, status.attempt);
            let output = Bytes::from(output);
            let put = retrying("storing a result", || {
                self.storage.put(&self.bucket, &key, output.clone())
            });
            if let Err(e) = self.runtime.block_on(put) {
                return status.failed(Failure::Storage {
                    message: e.to_string(),
                });
            }
            status.output_key = Some(key);
        }
        status
    }

    /// Writes the statuses of calls of one job as one object, last and
    /// atomically, and returns them. One write for many calls is what keeps
    /// a map of thousands of tiny calls from being a file system benchmark.
    /// If the write fails the statuses are still returned, each turned into
    /// a storage failure, so that an in-process client learns what happened.
    pub fn record(&self, statuses: Vec<CallStatus>) -> Vec<CallStatus> {
        match self.try_record(statuses) {
            Ok(statuses) => statuses,
            Err((statuses, e)) => statuses
                .into_iter()
                .map(|status| {
                    status.failed(Failure::Storage {
                        message: format!("the outcome could not be recorded: {e}"),
                    })
                })
                .collect(),
        }
    }

    /// As [`record`](Self::record), but a failed write is an error that
    /// hands the statuses back as they were: a worker in an activation
    /// reports it to the platform rather than to a client.
    ///
    /// # Errors
    ///
    /// When storage refuses the write or stays unreachable.
    #[allow(
        clippy::result_large_err,
        reason = "the statuses go back to the caller, who owns them"
    )]
    pub fn try_record(
        &self,
        mut statuses: Vec<CallStatus>,
    ) -> Result<Vec<CallStatus>, (Vec<CallStatus>, wisp_storage::StorageError)> {
        let Some(first) = statuses.first() else {
            return Ok(statuses);
        };
        let key = protocol::status_key(
            &first.job_id,
            &first.call_id,
            &format!("{:08x}", fastrand::u32(..)),
        );
        let done_us = now_us();
        let mut body = Vec::new();
        for status in &mut statuses {
            status.timings.done_us = done_us;
            if let Err(e) = serde_json::to_writer(&mut body, status) {
                tracing::error!(job = %status.job_id, call = %status.call_id, "cannot encode status: {e}");
            }
            body.push(b'\n');
        }
        let body = Bytes::from(body);
        let put = retrying("recording outcomes", || {
            self.storage.put(&self.bucket, &key, body.clone())
        });
        match self.runtime.block_on(put) {
            Ok(()) => Ok(statuses),
            Err(e) => {
                // Not an error of the worker's: the calls are failed as
                // storage failures, which a client with retries reruns.
                tracing::warn!(
                    %key,
                    "cannot write the statuses of {} calls: {e}; the calls are reported as \
                     storage failures",
                    statuses.len()
                );
                Err((statuses, e))
            }
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
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
