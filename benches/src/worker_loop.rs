//! The layers between wisp's engine and its executor, each alone:
//!
//! - the runtime's worker, `wisp_runtime::Worker::run_call`: the engine
//!   call plus the job protocol, that is the outcome turned into a status
//!   and the status written to local storage;
//! - local storage alone: the status write, `LocalStorage::put` of a
//!   status of the same size under a key of the same shape.
//!
//! Each call gets its own call id, as in a map, so every write creates a
//! new object.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result, anyhow, ensure};
use bytes::Bytes;
use tokio::runtime::Handle;
use wisp_runtime::{CallInput, CallStatus, JobSpec, Outcome, Worker, protocol};
use wisp_storage::{LocalStorage, Storage};

use crate::engine_loop::EngineNoop;

const BUCKET: &str = "wisp-bench";

/// A worker on its own local storage, running `noop` calls of one job.
pub struct WorkerNoop {
    worker: Worker,
    spec: JobSpec,
    engine: Arc<EngineNoop>,
    next: AtomicU32,
}

impl WorkerNoop {
    /// A worker on `engine`'s engine that keeps its records in a bucket
    /// under `dir`, driving storage on `runtime`; `calls` is the size of
    /// the job, which no call may exceed.
    pub fn new(
        engine: Arc<EngineNoop>,
        dir: &std::path::Path,
        runtime: &Handle,
        calls: usize,
    ) -> Result<Self> {
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir));
        runtime
            .block_on(storage.create_bucket(BUCKET))
            .context("cannot create the worker's bucket")?;
        let limits = &engine.limits;
        let spec = JobSpec {
            job_id: "bench-worker".to_owned(),
            executor_id: "bench".to_owned(),
            module: engine.module.digest().to_string(),
            function: "noop".to_owned(),
            calls: u32::try_from(calls).context("too many calls for one job")?,
            memory_bytes: limits.memory,
            timeout_ms: limits.timeout.as_millis() as u64,
            log_bytes: limits.log_bytes as u64,
            output_bytes: limits.output_bytes as u64,
            submitted_us: wisp_runtime::now_us(),
            wisp_version: env!("CARGO_PKG_VERSION").to_owned(),
            abi: engine.module.manifest().abi,
        };
        let worker = Worker::new(
            engine.engine.clone(),
            storage,
            BUCKET,
            runtime.clone(),
            "bench-worker",
        );
        Ok(Self {
            worker,
            spec,
            engine,
            next: AtomicU32::new(0),
        })
    }

    /// Runs the next call of the job.
    pub fn call(&self) -> Result<()> {
        self.call_with_status().map(drop)
    }

    /// Runs the next call of the job, and returns its status as the worker
    /// stored it.
    pub fn call_with_status(&self) -> Result<CallStatus> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        ensure!(
            index < self.spec.calls,
            "the job has only {} calls",
            self.spec.calls
        );
        let input = CallInput {
            index,
            args: Bytes::from_static(b"null"),
            attempt: 1,
        };
        let status = self
            .worker
            .run_call(&self.spec, &self.engine.module, &input);
        ensure!(
            status.outcome == Outcome::Success,
            "worker call of noop failed: {:?}",
            status.error
        );
        Ok(status)
    }
}

/// Local storage alone, writing statuses as the worker writes them.
pub struct StoragePut {
    storage: LocalStorage,
    runtime: Handle,
    status: Bytes,
    next: AtomicU32,
}

impl StoragePut {
    /// Storage under `dir` that writes `status`, one new key per call.
    pub fn new(dir: &std::path::Path, runtime: &Handle, status: Bytes) -> Result<Self> {
        let storage = LocalStorage::new(dir);
        runtime
            .block_on(storage.create_bucket(BUCKET))
            .context("cannot create the storage bucket")?;
        Ok(Self {
            storage,
            runtime: runtime.clone(),
            status,
            next: AtomicU32::new(0),
        })
    }

    /// Writes one status object.
    pub fn call(&self) -> Result<()> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let key = protocol::status_key("bench-storage", &protocol::call_id(index), "bench");
        self.runtime
            .block_on(self.storage.put(BUCKET, &key, self.status.clone()))
            .map_err(|e| anyhow!("cannot write a status to local storage: {e}"))
    }
}
