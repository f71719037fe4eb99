//! The executor: what a user programs against.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::watch;
use wisp_engine::{CallLimits, Digest, Engine, EngineConfig, Manifest, Module};
use wisp_runtime::{CallStatus, JobSpec, Timings, Worker, protocol};
use wisp_storage::Storage;

use crate::config::{BackendKind, Config, StorageKind};
use crate::localhost::{JobRun, LocalhostBackend};
use crate::openwhisk::backend::OpenWhiskBackend;
use crate::tracker::JobTracker;
use crate::{CallFailure, Error, Result};

/// A module ready to be called: built, read and checked.
#[derive(Clone)]
pub struct Function {
    source: String,
    bytes: Bytes,
    module: Arc<Module>,
}

impl Function {
    /// Where the module came from: a crate directory or a file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the module declares: its ABI and its functions.
    pub fn manifest(&self) -> &Manifest {
        self.module.manifest()
    }

    /// The SHA-256 of the module.
    pub fn digest(&self) -> Digest {
        self.module.digest()
    }

    /// The module's size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the module's compiled code came from the disk cache rather
    /// than from compiling it in this process.
    pub fn from_code_cache(&self) -> bool {
        self.module.from_code_cache()
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("source", &self.source)
            .field("digest", &self.digest())
            .field("functions", &self.manifest().function_list())
            .finish()
    }
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Submitted; no worker has it yet.
    Pending,
    /// A worker is running it.
    Running,
    /// It returned a result.
    Success,
    /// It failed.
    Failed,
}

/// One call of a job: its state now, and its outcome once it has one.
#[derive(Clone)]
pub struct CallFuture {
    job: Arc<JobTracker>,
    index: u32,
}

impl CallFuture {
    /// The job the call belongs to.
    pub fn job_id(&self) -> &str {
        &self.job.spec.job_id
    }

    /// The call's id within its job.
    pub fn call_id(&self) -> String {
        protocol::call_id(self.index)
    }

    /// The function it calls.
    pub fn function(&self) -> &str {
        &self.job.spec.function
    }

    /// Where the call is now.
    pub fn state(&self) -> CallState {
        match self.job.status(self.index) {
            Some(status) if status.succeeded() => CallState::Success,
            Some(_) => CallState::Failed,
            None if self.job.is_running(self.index) => CallState::Running,
            None => CallState::Pending,
        }
    }

    /// Whether the call has an outcome.
    pub fn is_done(&self) -> bool {
        self.job.status(self.index).is_some()
    }

    /// When the call was submitted, picked up, started and ended, and when
    /// its outcome was recorded; `None` until it is done.
    pub fn timings(&self) -> Option<Timings> {
        self.job.status(self.index).map(|s| s.timings)
    }

    /// How many times the call has run so far, or ran in all once it is
    /// done: more than 1 when it was retried.
    pub fn attempts(&self) -> u32 {
        self.job
            .status(self.index)
            .map_or_else(|| self.job.attempt(self.index), |s| s.attempt)
    }

    /// The full record of the call, once it is done.
    pub fn status(&self) -> Option<Arc<CallStatus>> {
        self.job.status(self.index).cloned()
    }

    /// What the call printed, once it is done.
    pub fn log(&self) -> Option<String> {
        self.job.status(self.index).map(|s| s.log.clone())
    }

    async fn done(&self) {
        if self.is_done() {
            return;
        }
        let mut completed = self.job.subscribe();
        // The tracker outlives every receiver, so `changed` cannot fail
        // before the call is done; stop waiting if it somehow does.
        while !self.is_done() {
            if completed.changed().await.is_err() {
                return;
            }
        }
    }
}

impl std::fmt::Debug for CallFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFuture")
            .field("job", &self.job_id())
            .field("call", &self.call_id())
            .field("state", &self.state())
            .finish()
    }
}

/// When [`FunctionExecutor::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// When every call is done.
    AllCompleted,
    /// When at least one call is done.
    AnyCompleted,
    /// At once, with whatever is done.
    Always,
}

/// The calls that are done and those that are not, in the order given.
#[derive(Debug, Clone, Default)]
pub struct WaitOutcome {
    /// Calls with an outcome.
    pub done: Vec<CallFuture>,
    /// Calls still pending or running.
    pub pending: Vec<CallFuture>,
}

/// A map followed by a reduce over its results.
#[derive(Debug, Clone)]
pub struct MapReduce {
    /// The map's calls.
    pub map: Vec<CallFuture>,
    /// The reduce call, which received the map's results as one array.
    pub reduce: CallFuture,
}

/// Sets up a [`FunctionExecutor`]: the configuration, with any value
/// overridden here.
#[derive(Debug, Clone)]
pub struct ExecutorBuilder {
    config: Option<Config>,
    runtime_memory: Option<u64>,
    runtime_timeout: Option<Duration>,
    workers: Option<usize>,
    storage_dir: Option<PathBuf>,
    keep_job_data: Option<bool>,
    storage: Option<StorageKind>,
    backend: Option<BackendKind>,
    retries: Option<u32>,
    retry_function_errors: Option<bool>,
}

impl ExecutorBuilder {
    /// Where calls run; overrides `wisp.backend`.
    pub fn backend(&mut self, backend: BackendKind) -> &mut Self {
        self.backend = Some(backend);
        self
    }

    /// Where jobs are kept; overrides `wisp.storage`.
    pub fn storage(&mut self, storage: StorageKind) -> &mut Self {
        self.storage = Some(storage);
        self
    }

    /// Uses this configuration instead of loading it.
    pub fn config(&mut self, config: Config) -> &mut Self {
        self.config = Some(config);
        self
    }

    /// Memory limit of each call, in MB.
    pub fn runtime_memory(&mut self, megabytes: u64) -> &mut Self {
        self.runtime_memory = Some(megabytes);
        self
    }

    /// Time limit of each call.
    pub fn runtime_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.runtime_timeout = Some(timeout);
        self
    }

    /// Calls that the localhost backend runs at once.
    pub fn workers(&mut self, workers: usize) -> &mut Self {
        self.workers = Some(workers);
        self
    }

    /// The directory of local storage.
    pub fn storage_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.storage_dir = Some(dir.into());
        self
    }

    /// Keeps the jobs' data in storage when the executor closes.
    pub fn keep_job_data(&mut self, keep: bool) -> &mut Self {
        self.keep_job_data = Some(keep);
        self
    }

    /// Runs a failed call again, up to `retries` more times (at most
    /// [`MAX_RETRIES`]), when the infrastructure failed it (its activation
    /// was lost, its worker could not load the module or reach storage);
    /// overrides `wisp.retries`, whose default 0 makes every failure
    /// final. A call's [`CallFuture::attempts`] says how many runs it
    /// took.
    pub fn retries(&mut self, retries: u32) -> &mut Self {
        self.retries = Some(retries);
        self
    }

    /// With [`retries`](Self::retries), also runs again a call that failed
    /// by itself: an error it returned, a panic, a time or memory limit.
    pub fn retry_function_errors(&mut self, retry: bool) -> &mut Self {
        self.retry_function_errors = Some(retry);
        self
    }

    /// Starts the executor. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the configuration is invalid, names a backend or storage this
    /// build does not have, or storage cannot be reached.
    pub async fn build(&self) -> Result<FunctionExecutor> {
        let mut config = match &self.config {
            Some(config) => config.clone(),
            None => Config::load()?,
        };
        let program = |config: &mut Config, key: &str| {
            config
                .origins
                .insert(key.to_owned(), crate::config::Origin::Program);
        };
        if let Some(memory) = self.runtime_memory {
            config.runtime_memory = memory;
            program(&mut config, "localhost.runtime_memory");
        }
        if let Some(timeout) = self.runtime_timeout {
            config.runtime_timeout = timeout;
            program(&mut config, "localhost.runtime_timeout");
        }
        if let Some(workers) = self.workers {
            config.workers = workers;
            program(&mut config, "localhost.workers");
        }
        if let Some(dir) = &self.storage_dir {
            config.storage_dir = dir.clone();
        }
        if let Some(keep) = self.keep_job_data {
            config.data_cleaner = !keep;
        }
        if let Some(storage) = self.storage {
            config.storage = storage;
        }
        if let Some(backend) = self.backend {
            config.use_backend(backend);
        }
        if let Some(retries) = self.retries {
            config.retry.retries = retries;
            program(&mut config, "wisp.retries");
        }
        if let Some(retry) = self.retry_function_errors {
            config.retry.function_errors = retry;
            program(&mut config, "wisp.retry_function_errors");
        }
        config.check()?;
        FunctionExecutor::start(config).await
    }
}

/// The most retries a call may be given: each is a full run of the call.
pub const MAX_RETRIES: u32 = wisp_runtime::action::MAX_ATTEMPTS - 1;

/// Runs functions: once with [`call_async`](Self::call_async), over many
/// inputs with [`map`](Self::map), and folds results with
/// [`map_reduce`](Self::map_reduce).
///
/// ```no_run
/// # async fn run() -> wisp::Result<()> {
/// let exec = wisp::FunctionExecutor::new().await?;
/// let f = exec.function("examples/hello")?;
/// let fut = exec.call_async(&f, "my_function", 3).await?;
/// let y: i64 = exec.get_result(&fut).await?;
/// assert_eq!(y, 10);
/// let futs = exec.map(&f, "my_function", 0..10_000).await?;
/// let ys: Vec<i64> = exec.get_results(&futs).await?;
/// exec.close().await?;
/// # Ok(()) }
/// ```
pub struct FunctionExecutor {
    config: Config,
    bucket: String,
    storage: Arc<dyn Storage>,
    engine: Arc<Engine>,
    backend: Backend,
    executor_id: String,
    next_job: AtomicU32,
    jobs: Mutex<Vec<String>>,
    runs: Mutex<Vec<Arc<JobRun>>>,
    uploaded: Mutex<HashSet<Digest>>,
    progress: Arc<watch::Sender<u64>>,
    closed: bool,
}

impl FunctionExecutor {
    /// An executor set up from the configuration file and environment, or
    /// the embedded default (localhost compute, local storage) when there is
    /// no file.
    ///
    /// # Errors
    ///
    /// See [`ExecutorBuilder::build`].
    pub async fn new() -> Result<Self> {
        Self::builder().build().await
    }

    /// A builder to override configuration values.
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder {
            config: None,
            runtime_memory: None,
            runtime_timeout: None,
            workers: None,
            storage_dir: None,
            keep_job_data: None,
            storage: None,
            backend: None,
            retries: None,
            retry_function_errors: None,
        }
    }

    async fn start(config: Config) -> Result<Self> {
        let storage = crate::storage::open(&config).await?;
        let bucket = config.bucket();
        let engine = Arc::new(Engine::new(EngineConfig {
            instance_slots: (config.workers as u32).saturating_mul(2).max(8),
            code_cache: config.code_cache.clone(),
            ..EngineConfig::default()
        })?);
        let executor_id = format!(
            "{:x}-{:04x}",
            wisp_runtime::now_us() / 1_000_000,
            fastrand::u16(..)
        );
        let worker = Arc::new(Worker::new(
            engine.clone(),
            storage.clone(),
            bucket.clone(),
            tokio::runtime::Handle::current(),
            format!("localhost:{}", std::process::id()),
        ));
        let backend = match config.backend {
            BackendKind::Localhost => Backend::Localhost(
                LocalhostBackend::start(worker, config.workers)
                    .map_err(|e| Error::Unsupported(format!("cannot start worker threads: {e}")))?,
            ),
            BackendKind::Openwhisk => {
                Backend::OpenWhisk(Arc::new(OpenWhiskBackend::new(&config, storage.clone())?))
            }
        };
        tracing::debug!(%executor_id, storage = %storage.describe(), workers = config.workers, "executor started");
        Ok(Self {
            config,
            bucket,
            storage,
            engine,
            backend,
            executor_id,
            next_job: AtomicU32::new(0),
            jobs: Mutex::new(Vec::new()),
            runs: Mutex::new(Vec::new()),
            uploaded: Mutex::new(HashSet::new()),
            progress: Arc::new(watch::Sender::new(0)),
            closed: false,
        })
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This executor's id, the prefix of its jobs' ids.
    pub fn id(&self) -> &str {
        &self.executor_id
    }

    /// The bucket the executor keeps jobs in, and that functions may reach.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The storage the executor keeps jobs in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The limits each call runs with.
    pub fn limits(&self) -> CallLimits {
        CallLimits {
            memory: self.config.runtime_memory << 20,
            timeout: self.config.runtime_timeout,
            ..CallLimits::default()
        }
    }

    /// Resolves a function: a crate directory is built for `wasm32-wasip1`
    /// with cargo; a `.wasm` file is taken as it is. The module is compiled
    /// and checked here, so that a bad module fails before any job.
    ///
    /// # Errors
    ///
    /// When the crate does not build, or the file is not a module wisp can
    /// run.
    pub fn function(&self, path: impl AsRef<Path>) -> Result<Function> {
        let path = path.as_ref();
        let wasm = if path.is_file() {
            path.to_owned()
        } else {
            blocking(|| crate::builder::build_crate(path))?
        };
        let bytes = std::fs::read(&wasm).map_err(|error| Error::Read {
            path: wasm.clone(),
            error,
        })?;
        self.function_from_bytes(path.display().to_string(), bytes)
    }

    /// Resolves a function from a module's bytes; `source` names it in
    /// messages.
    ///
    /// # Errors
    ///
    /// When the bytes are not a module wisp can run.
    pub fn function_from_bytes(
        &self,
        source: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Result<Function> {
        let source = source.into();
        let bytes = bytes.into();
        let module = blocking(|| self.engine.load(&bytes)).map_err(|error| Error::Module {
            source_name: source.clone(),
            error,
        })?;
        Ok(Function {
            source,
            bytes,
            module,
        })
    }

    /// Calls `function` once with `args`: one argument as it is, several as
    /// a tuple (a JSON array) or a struct (an object keyed by parameter).
    ///
    /// # Errors
    ///
    /// When the module has no such function, the arguments cannot be
    /// encoded, or the job cannot be stored.
    pub async fn call_async(
        &self,
        f: &Function,
        function: &str,
        args: impl Serialize,
    ) -> Result<CallFuture> {
        let args = encode(0, &args)?;
        let mut futures = self.submit(f, function, vec![args]).await?;
        Ok(futures.remove(0))
    }

    /// Calls `function` once per input, as one job.
    ///
    /// # Errors
    ///
    /// As [`call_async`](Self::call_async).
    pub async fn map<I>(&self, f: &Function, function: &str, inputs: I) -> Result<Vec<CallFuture>>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let args = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| encode(i, &input))
            .collect::<Result<Vec<_>>>()?;
        self.submit(f, function, args).await
    }

    /// Calls `function` once per already encoded JSON argument.
    ///
    /// # Errors
    ///
    /// As [`call_async`](Self::call_async).
    pub async fn map_json(
        &self,
        f: &Function,
        function: &str,
        args: Vec<Bytes>,
    ) -> Result<Vec<CallFuture>> {
        self.submit(f, function, args).await
    }

    /// Maps `map_function` over the inputs, waits for every call, then calls
    /// `reduce_function` once with the array of their results, in input
    /// order.
    ///
    /// # Errors
    ///
    /// When either function is missing, or when any map call fails: the
    /// reduce is then not run, and the error lists the failed calls.
    pub async fn map_reduce<I>(
        &self,
        f: &Function,
        map_function: &str,
        inputs: I,
        reduce_function: &str,
    ) -> Result<MapReduce>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        check_reducer(f, reduce_function)?;
        let map = self.map(f, map_function, inputs).await?;
        self.reduce(f, map, reduce_function).await
    }

    /// Calls `reduce_function` with the results of finished `map` calls.
    ///
    /// # Errors
    ///
    /// As [`map_reduce`](Self::map_reduce).
    pub async fn reduce(
        &self,
        f: &Function,
        map: Vec<CallFuture>,
        reduce_function: &str,
    ) -> Result<MapReduce> {
        check_reducer(f, reduce_function)?;
        let outputs = self.get_results_json(&map).await?;
        let mut array =
            Vec::with_capacity(outputs.iter().map(|o| o.get().len() + 1).sum::<usize>() + 2);
        array.push(b'[');
        for (i, output) in outputs.iter().enumerate() {
            if i > 0 {
                array.push(b',');
            }
            array.extend_from_slice(output.get().as_bytes());
        }
        array.push(b']');
        let mut reduce = self
            .submit(f, reduce_function, vec![Bytes::from(array)])
            .await?;
        Ok(MapReduce {
            map,
            reduce: reduce.remove(0),
        })
    }

    async fn submit(
        &self,
        f: &Function,
        function: &str,
        args: Vec<Bytes>,
    ) -> Result<Vec<CallFuture>> {
        let manifest = f.manifest();
        if !manifest.functions.contains_key(function) {
            return Err(Error::UnknownFunction {
                function: function.to_owned(),
                available: manifest.function_list(),
            });
        }
        if args.is_empty() {
            return Ok(Vec::new());
        }
        let calls = u32::try_from(args.len()).map_err(|_| {
            Error::Unsupported(format!("a job of {} calls is too large", args.len()))
        })?;
        let action = match &self.backend {
            Backend::OpenWhisk(backend) => Some(backend.prepare(manifest.abi).await?),
            Backend::Localhost(_) => None,
        };
        self.upload_module(f).await?;
        let number = self.next_job.fetch_add(1, Ordering::Relaxed);
        let limits = self.limits();
        let spec = Arc::new(JobSpec {
            job_id: format!("{}-{number:03}", self.executor_id),
            executor_id: self.executor_id.clone(),
            module: f.digest().to_string(),
            function: function.to_owned(),
            calls,
            memory_bytes: limits.memory,
            timeout_ms: limits.timeout.as_millis() as u64,
            log_bytes: limits.log_bytes as u64,
            output_bytes: limits.output_bytes as u64,
            submitted_us: wisp_runtime::now_us(),
            wisp_version: env!("CARGO_PKG_VERSION").to_owned(),
            abi: manifest.abi,
        });
        let bucket = &self.bucket;
        let spec_json =
            serde_json::to_vec_pretty(&*spec).map_err(|e| Error::Unsupported(e.to_string()))?;
        self.storage
            .put(
                bucket,
                &protocol::job_spec_key(&spec.job_id),
                Bytes::from(spec_json),
            )
            .await?;
        // Who submitted the job, so that `wisp jobs` can tell a job whose
        // client is gone from one that is still running.
        let client = serde_json::to_vec(&crate::jobs::ClientInfo::this_process())
            .map_err(|e| Error::Unsupported(e.to_string()))?;
        self.storage
            .put(
                bucket,
                &crate::jobs::client_key(&spec.job_id),
                Bytes::from(client),
            )
            .await?;
        let mut lines = Vec::with_capacity(args.iter().map(|a| a.len() + 1).sum());
        for arg in &args {
            lines.extend_from_slice(arg);
            lines.push(b'\n');
        }
        self.storage
            .put(
                bucket,
                &protocol::args_key(&spec.job_id),
                Bytes::from(lines),
            )
            .await?;
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(spec.job_id.clone());
        tracing::debug!(job = %spec.job_id, function, calls, "submitting job");
        let tracker = Arc::new(JobTracker::new(
            spec,
            self.config.retry,
            self.progress.clone(),
        ));
        let run = Arc::new(JobRun {
            tracker: tracker.clone(),
            args,
            cancelled: AtomicBool::new(false),
        });
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(run.clone());
        match &self.backend {
            Backend::Localhost(backend) => backend.submit(run),
            Backend::OpenWhisk(backend) => {
                backend.submit(run, action.unwrap_or_default());
            }
        }
        Ok((0..calls)
            .map(|index| CallFuture {
                job: tracker.clone(),
                index,
            })
            .collect())
    }

    async fn upload_module(&self, f: &Function) -> Result<()> {
        let digest = f.digest();
        if self
            .uploaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&digest)
        {
            return Ok(());
        }
        let bucket = &self.bucket;
        let key = protocol::module_key(&digest);
        // A module already stored is checked once per executor: an object
        // that no longer matches its name is replaced, not trusted.
        let intact = match self.storage.head(bucket, &key).await? {
            Some(meta) if meta.size == f.bytes.len() as u64 => {
                Digest::of(&self.storage.get(bucket, &key).await?) == digest
            }
            Some(_) | None => false,
        };
        if !intact {
            self.storage.put(bucket, &key, f.bytes.clone()).await?;
            tracing::debug!(%digest, "stored module");
        }
        self.uploaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(digest);
        Ok(())
    }

    /// Waits for calls, up to `timeout` if one is given, and returns when
    /// `until` says.
    pub async fn wait(
        &self,
        futures: &[CallFuture],
        until: WaitFor,
        timeout: Option<Duration>,
    ) -> WaitOutcome {
        self.wait_with_progress(futures, until, timeout, |_, _| {})
            .await
    }

    /// As [`wait`](Self::wait), calling `progress(done, total)` whenever more
    /// calls are done.
    pub async fn wait_with_progress(
        &self,
        futures: &[CallFuture],
        until: WaitFor,
        timeout: Option<Duration>,
        mut progress: impl FnMut(usize, usize),
    ) -> WaitOutcome {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut changes = self.progress.subscribe();
        let total = futures.len();
        let mut pending: Vec<usize> = (0..total).collect();
        let mut reported = usize::MAX;
        loop {
            changes.mark_unchanged();
            pending.retain(|&i| !futures[i].is_done());
            let done = total - pending.len();
            if done != reported {
                progress(done, total);
                reported = done;
            }
            let finished = match until {
                WaitFor::AllCompleted => pending.is_empty(),
                WaitFor::AnyCompleted => done > 0 || total == 0,
                WaitFor::Always => true,
            };
            if finished {
                break;
            }
            let changed = changes.changed();
            let still_open = match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), changed).await {
                    Ok(result) => result.is_ok(),
                    Err(_) => break,
                },
                None => changed.await.is_ok(),
            };
            if !still_open {
                break;
            }
        }
        let (done, pending): (Vec<_>, Vec<_>) =
            futures.iter().cloned().partition(CallFuture::is_done);
        WaitOutcome { done, pending }
    }

    /// Waits for a call and returns its result as `T`.
    ///
    /// # Errors
    ///
    /// When the call failed (the error names the call and the cause), or its
    /// result is not a `T`.
    pub async fn get_result<T: DeserializeOwned>(&self, future: &CallFuture) -> Result<T> {
        future.done().await;
        let raw = self.result_json(future).await?;
        decode(future, &raw)
    }

    /// As [`get_result`](Self::get_result), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`get_result`](Self::get_result), and [`Error::Timeout`].
    pub async fn get_result_timeout<T: DeserializeOwned>(
        &self,
        future: &CallFuture,
        timeout: Duration,
    ) -> Result<T> {
        if tokio::time::timeout(timeout, future.done()).await.is_err() {
            return Err(Error::Timeout {
                waited: timeout,
                pending: 1,
                total: 1,
            });
        }
        self.get_result(future).await
    }

    /// Waits for every call and returns their results in order.
    ///
    /// # Errors
    ///
    /// When any call failed: the error lists every failed call with its
    /// cause. When a result is not a `T`.
    pub async fn get_results<T: DeserializeOwned>(&self, futures: &[CallFuture]) -> Result<Vec<T>> {
        let outputs = self.get_results_json(futures).await?;
        futures
            .iter()
            .zip(&outputs)
            .map(|(future, raw)| decode(future, raw))
            .collect()
    }

    /// Waits for every call and returns their results as raw JSON.
    ///
    /// # Errors
    ///
    /// As [`get_results`](Self::get_results).
    pub async fn get_results_json(&self, futures: &[CallFuture]) -> Result<Vec<Box<RawValue>>> {
        self.wait(futures, WaitFor::AllCompleted, None).await;
        let failed: Vec<CallFailure> = futures.iter().filter_map(CallFailure::of).collect();
        if !failed.is_empty() {
            return Err(Error::Calls {
                failed,
                total: futures.len(),
            });
        }
        let mut outputs = Vec::with_capacity(futures.len());
        for future in futures {
            outputs.push(self.result_json(future).await?);
        }
        Ok(outputs)
    }

    /// The result of a finished call as raw JSON.
    async fn result_json(&self, future: &CallFuture) -> Result<Box<RawValue>> {
        let Some(status) = future.status() else {
            return Err(Error::Timeout {
                waited: Duration::ZERO,
                pending: 1,
                total: 1,
            });
        };
        if let Some(failure) = CallFailure::of(future) {
            return Err(Error::Call(Box::new(failure)));
        }
        if let Some(output) = &status.output {
            return Ok(output.clone());
        }
        let key = status.output_key.as_deref().unwrap_or_default();
        let bytes = self.storage.get(&self.bucket, key).await?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| Error::Decode {
            job_id: status.job_id.clone(),
            call_id: status.call_id.clone(),
            message: "the stored result is not UTF-8".to_owned(),
        })?;
        RawValue::from_string(text).map_err(|e| Error::Decode {
            job_id: status.job_id.clone(),
            call_id: status.call_id.clone(),
            message: format!("the stored result is not JSON: {e}"),
        })
    }

    /// How many calls of this executor's jobs have finished so far.
    pub fn completed_calls(&self) -> u64 {
        *self.progress.borrow()
    }

    /// The ids of this executor's jobs whose every call has an outcome.
    pub fn finished_jobs(&self) -> Vec<String> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|run| run.tracker.completed() >= run.tracker.spec.calls as usize)
            .map(|run| run.tracker.spec.job_id.clone())
            .collect()
    }

    /// The ids of the jobs this executor submitted.
    pub fn jobs(&self) -> Vec<String> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the workers and, unless the configuration keeps it, removes
    /// the jobs' data from storage. Calls still pending or running are
    /// cancelled: collect results before closing. Modules stay: they are
    /// content-addressed and shared by later jobs.
    ///
    /// # Errors
    ///
    /// When the data cannot be removed.
    pub async fn close(mut self) -> Result<()> {
        self.stop().await?;
        if self.config.data_cleaner {
            for job in self.jobs() {
                let removed = self
                    .storage
                    .delete_prefix(&self.bucket, &protocol::job_prefix(&job))
                    .await?;
                tracing::debug!(%job, removed, "removed job data");
            }
        }
        Ok(())
    }
}

impl FunctionExecutor {
    /// Cancels every call and stops the workers, waiting for the calls
    /// running now.
    async fn stop(&mut self) -> Result<()> {
        self.closed = true;
        for run in self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            run.cancelled.store(true, Ordering::Relaxed);
        }
        self.engine.cancel_running();
        let backend = std::mem::replace(
            &mut self.backend,
            Backend::Localhost(LocalhostBackend::stopped()),
        );
        match backend {
            Backend::Localhost(mut backend) => {
                tokio::task::spawn_blocking(move || backend.shut_down())
                    .await
                    .map_err(|e| {
                        Error::Unsupported(format!("worker pool did not stop cleanly: {e}"))
                    })?
            }
            Backend::OpenWhisk(backend) => backend.shut_down(),
        }
        Ok(())
    }

    /// Closes the executor after an interruption such as Ctrl-C (`signal`
    /// names it): each job with calls still without an outcome is marked
    /// interrupted in storage first ([`crate::jobs::interrupted_key`]),
    /// then the calls are cancelled and the workers stopped. Every job's
    /// data is kept, whatever `data_cleaner` says, so that `wisp jobs`
    /// lists the jobs, `wisp logs` shows what their calls did and `wisp
    /// clean` removes them. Returns the ids of the jobs marked.
    ///
    /// # Errors
    ///
    /// When a mark cannot be written (the workers are stopped all the
    /// same), or the workers do not stop.
    pub async fn interrupt(mut self, signal: &str) -> Result<Vec<String>> {
        let runs: Vec<Arc<JobRun>> = self
            .runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Stop handing out calls before anything else.
        for run in &runs {
            run.cancelled.store(true, Ordering::Relaxed);
        }
        let mut marked = Vec::new();
        let mut unmarked = None;
        for run in &runs {
            let tracker = &run.tracker;
            let calls = tracker.spec.calls;
            let completed = tracker.completed() as u64;
            if completed >= u64::from(calls) {
                continue;
            }
            let mark = crate::jobs::Interruption {
                signal: signal.to_owned(),
                at_us: wisp_runtime::now_us(),
                completed,
                calls: u64::from(calls),
            };
            let body =
                serde_json::to_vec_pretty(&mark).map_err(|e| Error::Unsupported(e.to_string()))?;
            let job = &tracker.spec.job_id;
            let put = self
                .storage
                .put(
                    &self.bucket,
                    &crate::jobs::interrupted_key(job),
                    Bytes::from(body),
                )
                .await;
            match put {
                Ok(()) => {
                    tracing::debug!(%job, completed, calls, "marked interrupted");
                    marked.push(job.clone());
                }
                // The workers stop all the same, below.
                Err(e) => {
                    unmarked.get_or_insert(e);
                }
            }
        }
        self.stop().await?;
        match unmarked {
            Some(e) => Err(e.into()),
            None => Ok(marked),
        }
    }
}

impl Drop for FunctionExecutor {
    fn drop(&mut self) {
        if !self.closed && self.config.data_cleaner && !self.jobs().is_empty() {
            tracing::warn!(
                executor = %self.executor_id,
                "executor dropped without close(): its jobs' data stays in {}",
                self.storage.describe()
            );
        }
    }
}

/// Where calls run.
enum Backend {
    /// On threads of this process.
    Localhost(LocalhostBackend),
    /// As activations of a runtime action on OpenWhisk.
    OpenWhisk(Arc<OpenWhiskBackend>),
}

impl CallFailure {
    fn of(future: &CallFuture) -> Option<Self> {
        let status = future.status()?;
        let failure = status.error.clone()?;
        Some(Self {
            job_id: status.job_id.clone(),
            call_id: status.call_id.clone(),
            function: future.function().to_owned(),
            failure,
            log: status.log.clone(),
            attempts: status.attempt,
        })
    }
}

/// Runs slow synchronous work (a cargo build, a compile) without stalling
/// the async runtime the caller is on: on a multi-threaded runtime's worker
/// the other tasks move to other threads meanwhile.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn check_reducer(f: &Function, reduce_function: &str) -> Result<()> {
    let manifest = f.manifest();
    match manifest.functions.get(reduce_function) {
        None => Err(Error::UnknownFunction {
            function: reduce_function.to_owned(),
            available: manifest.function_list(),
        }),
        Some(info) if !manifest.command && info.params.len() != 1 => {
            Err(Error::Unsupported(format!(
                "reduce function `{reduce_function}` takes {} parameters; a reduce function takes \
             exactly one, the list of the map's results",
                info.params.len()
            )))
        }
        Some(_) => Ok(()),
    }
}

fn encode(index: usize, value: &impl Serialize) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::Arguments {
            index,
            message: e.to_string(),
        })
}

/// `alloc::vec::Vec<alloc::string::String>` as `Vec<String>`.
fn short_type_name<T>() -> String {
    let full = std::any::type_name::<T>();
    let mut short = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            short.push_str(segment.rsplit("::").next().unwrap_or_default());
            segment.clear();
            short.push(c);
        }
    }
    short.push_str(segment.rsplit("::").next().unwrap_or_default());
    format!("a `{short}`")
}

fn decode<T: DeserializeOwned>(future: &CallFuture, raw: &RawValue) -> Result<T> {
    serde_json::from_str(raw.get()).map_err(|e| Error::Decode {
        job_id: future.job_id().to_owned(),
        call_id: future.call_id(),
        message: format!("the result is not {}: {e}", short_type_name::<T>()),
    })
}
