//! The action server: wisp's runtime as an OpenWhisk action container.
//!
//! OpenWhisk starts the runtime image, sends `/init` once and `/run` for
//! every activation, several at once when the action allows concurrency
//! (the action container protocol). The server keeps one engine for the
//! container's life, so a module is compiled once and every `/run` costs
//! one fresh instance.
//!
//! An action is initialized in one of two ways:
//!
//! - **Jobs** (how wisp deploys its runtime): no code, and the job
//!   storage's settings in the init environment. Each `/run` carries a
//!   batch of calls of a job; the server reads the job and its module from
//!   storage, runs the calls, records their outcomes there, and answers
//!   with a count. The client learns the outcomes from storage.
//! - **Module**: the code is a base64 WebAssembly module and `main` names
//!   one of its functions. Each `/run` calls it with the activation's
//!   value and answers with its result, like any OpenWhisk action.
//!
//! After every `/run` the server writes the activation's log, then the
//! sentinel line, to stdout and to stderr. A call is stopped at the
//! activation's deadline by the engine, so a timeout is reported by wisp
//! with its cause rather than found by the platform.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use wisp_engine::{CallEnv, CallError, CallLimits, CodeSeal, Engine, Module};
use wisp_wire::action::{InitRequest, RunRequest};

use crate::protocol::{self, CallStatus, Failure, JobSpec};
use crate::settings::{STORAGE_SETTINGS_VAR, StorageSettings};
use crate::worker::{CallInput, Worker};

/// Where the server listens unless [`ADDR_VAR`] says otherwise: the port
/// OpenWhisk's invoker always talks to.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";
/// The environment variable that moves the server to another address,
/// for tests that run several containers on one host network.
pub const ADDR_VAR: &str = "WISP_ACTION_ADDR";
/// Modules found here (`*.wasm`) are compiled when the server starts, so a
/// custom runtime can ship its modules warm.
pub const DEFAULT_PRELOAD_DIR: &str = "/wisp/preload";
/// The environment variable that names another preload directory.
pub const PRELOAD_VAR: &str = "WISP_PRELOAD_DIR";
/// The line that ends each activation's output on stdout and on stderr.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// The largest request body read: `/init` may carry a 48 MB module as
/// base64.
const BODY_LIMIT: usize = 72 << 20;
/// Time kept back from the activation's deadline for recording outcomes
/// and answering.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);
/// When a `/run` carries no deadline, calls get this long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Outcomes of a batch are recorded every this many calls...
const RECORD_EVERY: usize = 64;
/// ...or this often, whichever comes first.
const RECORD_DELAY: Duration = Duration::from_millis(250);

/// Texts the OpenWhisk runtime tests compare byte for byte.
mod literal {
    pub const INIT_TWICE: &str = "Cannot initialize the action more than once.";
    pub const NO_CODE: &str = "Missing main/no code to execute.";
    pub const NOT_AN_OBJECT: &str = "The action did not return a dictionary or array.";
    pub const BAD_ARGUMENT: &str =
        "The action did not receive a dictionary or array as an argument.";
}

pub use wisp_wire::action::{BatchRequest, JobRequest, MAX_ATTEMPTS};

/// The environment variable of a jobs action that holds the key its
/// containers seal compiled code with (64 hex digits), set when the
/// runtime is deployed: the first container to run a module compiles it
/// and stores the code, the others load it.
pub const CODE_KEY_VAR: &str = "WISP_CODE_KEY";

/// How a batch's container came by its compiled module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleSource {
    /// It had it already, from an earlier batch.
    #[default]
    Warm,
    /// It loaded the code another container had compiled and stored.
    Loaded,
    /// It compiled the module.
    Compiled,
}

/// The answer to a batch: how its calls ended. Their outcomes themselves
/// are in storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReply {
    /// The job.
    pub job: String,
    /// Calls run (or failed before running).
    pub calls: u32,
    /// Calls that returned a result.
    pub succeeded: u32,
    /// Calls that failed.
    pub failed: u32,
    /// How the module was at hand.
    #[serde(default)]
    pub module: ModuleSource,
}

/// What a runtime says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeMetadata {
    /// The wisp version the runtime was built from.
    pub wisp_version: String,
    /// The oldest guest ABI it runs.
    pub abi_min: u32,
    /// The newest guest ABI it runs.
    pub abi_max: u32,
    /// The machine it was built for.
    pub target: String,
}

impl RuntimeMetadata {
    /// This build's metadata.
    pub fn current() -> Self {
        Self {
            wisp_version: env!("CARGO_PKG_VERSION").to_owned(),
            abi_min: *wisp_abi::SUPPORTED_ABI_VERSIONS.start(),
            abi_max: *wisp_abi::SUPPORTED_ABI_VERSIONS.end(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        }
    }
}

/// What `/init` made of the action.
enum Action {
    Module {
        module: Arc<Module>,
        function: String,
        env: Vec<(String, String)>,
    },
    Jobs {
        worker: Arc<Worker>,
        specs: Mutex<HashMap<String, Arc<JobSpec>>>,
    },
}

/// The state of one action container.
pub struct ActionServer {
    engine: Arc<Engine>,
    action: OnceLock<Arc<Action>>,
    /// Held while `/init` works, so a second one waits and is refused.
    initializing: tokio::sync::Mutex<()>,
    /// Keeps each activation's log and sentinel together in the streams.
    output: Mutex<()>,
    name: String,
}

impl ActionServer {
    /// A server that runs calls on `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            action: OnceLock::new(),
            initializing: tokio::sync::Mutex::new(()),
            output: Mutex::new(()),
            name: format!("openwhisk:{}", std::process::id()),
        }
    }

    /// Compiles every `*.wasm` in `dir`, so that jobs of those modules
    /// start warm. A directory that is not there is fine; a module that
    /// does not load is logged and skipped.
    pub fn preload(&self, dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut loaded = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "wasm") {
                continue;
            }
            match std::fs::read(&path).map(|bytes| self.engine.load(&bytes)) {
                Ok(Ok(module)) => {
                    tracing::info!(path = %path.display(), digest = %module.digest(), "preloaded");
                    loaded += 1;
                }
                Ok(Err(e)) => tracing::warn!(path = %path.display(), "cannot preload: {e}"),
                Err(e) => tracing::warn!(path = %path.display(), "cannot read: {e}"),
            }
        }
        loaded
    }

    /// Serves the action protocol on `listener` until the process ends.
    ///
    /// # Errors
    ///
    /// Never, in practice: failed accepts are logged and retried.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some
                    // connection to close rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(request).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let route = (request.method().clone(), request.uri().path().to_owned());
        let body = match Limited::new(request.into_body(), BODY_LIMIT)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(e) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("cannot read the request body (at most {BODY_LIMIT} bytes): {e}"),
                );
            }
        };
        match route {
            (Method::POST, path) if path == "/init" => self.init(&body).await,
            (Method::POST, path) if path == "/run" => self.run(&body).await,
            (_, path) => error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no such endpoint {path}: an action container answers POST /init and POST /run"
                ),
            ),
        }
    }

    async fn init(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let _one_at_a_time = self.initializing.lock().await;
        if self.action.get().is_some() {
            self.log_line(literal::INIT_TWICE);
            return error(StatusCode::FORBIDDEN, literal::INIT_TWICE);
        }
        let request = match wisp_wire::action::parse_init(body) {
            Ok(request) => request,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.0),
        };
        let action = match &request.code {
            Some(_) => self.init_module(&request).await,
            None => match request.var(STORAGE_SETTINGS_VAR) {
                Some(settings) => self.init_jobs(settings, request.var(CODE_KEY_VAR)).await,
                None => {
                    self.log_line(&format!(
                        "wisp: this action has neither code (a base64 WebAssembly module) nor \
                         storage settings ({STORAGE_SETTINGS_VAR}); deploy it with `wisp runtime deploy`"
                    ));
                    Err((StatusCode::FORBIDDEN, literal::NO_CODE.to_owned()))
                }
            },
        };
        match action {
            Ok(action) => {
                let _ = self.action.set(Arc::new(action));
                json(StatusCode::OK, Bytes::from_static(b"{\"ok\":true}"))
            }
            Err((status, message)) => {
                self.log_line(&message);
                self.sentinels();
                error(status, &message)
            }
        }
    }

    async fn init_module(&self, request: &InitRequest) -> Result<Action, (StatusCode, String)> {
        let unusable = |why: String| (StatusCode::BAD_GATEWAY, why);
        let bytes = request.module_bytes().map_err(|e| unusable(e.0))?;
        let function = request.main.clone();
        let engine = self.engine.clone();
        let module = tokio::task::spawn_blocking(move || engine.load(&bytes))
            .await
            .map_err(|e| unusable(format!("compiling the module failed: {e}")))?
            .map_err(|e| unusable(e.to_string()))?;
        let functions = &module.manifest().functions;
        // `main` is OpenWhisk's default entry point: a module with a single
        // function needs no name.
        let function = if functions.contains_key(&function) {
            function
        } else if function == "main" && functions.len() == 1 {
            functions.keys().next().cloned().unwrap_or(function)
        } else {
            return Err(unusable(format!(
                "the module has no function `{function}`; it has: {}",
                module.manifest().function_list()
            )));
        };
        tracing::info!(digest = %module.digest(), %function, "initialized with a module");
        Ok(Action::Module {
            module,
            function,
            env: request.env.clone(),
        })
    }

    async fn init_jobs(
        &self,
        settings: &str,
        code_key: Option<&str>,
    ) -> Result<Action, (StatusCode, String)> {
        let settings: StorageSettings = serde_json::from_str(settings).map_err(|e| {
            (
                StatusCode::BAD_GATEWAY,
                format!("{STORAGE_SETTINGS_VAR} is not valid storage settings: {e}"),
            )
        })?;
        let storage = settings.open().await.map_err(|e| {
            (
                StatusCode::BAD_GATEWAY,
                format!("cannot reach the job storage: {e}"),
            )
        })?;
        tracing::info!(storage = %storage.describe(), bucket = settings.bucket(), "initialized for jobs");
        let mut worker = Worker::new(
            self.engine.clone(),
            storage,
            settings.bucket(),
            tokio::runtime::Handle::current(),
            self.name.clone(),
        );
        match code_key.map(CodeSeal::from_hex) {
            Some(Some(seal)) => worker = worker.with_code_seal(seal),
            Some(None) => tracing::warn!(
                "{CODE_KEY_VAR} is not 64 hex digits; every container compiles its modules \
                 (`wisp runtime update` deploys a new key)"
            ),
            None => {}
        }
        Ok(Action::Jobs {
            worker: Arc::new(worker),
            specs: Mutex::new(HashMap::new()),
        })
    }

    async fn run(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let mut log = RunLog::default();
        let response = self.run_inner(body, &mut log).await;
        self.finish_run(&log);
        response
    }

    async fn run_inner(&self, body: &[u8], log: &mut RunLog) -> Response<Full<Bytes>> {
        let Some(action) = self.action.get().cloned() else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the action is not initialized: /init must succeed before /run",
            );
        };
        let request = match wisp_wire::action::parse_run(body) {
            Ok(request) => request,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.0),
        };
        let RunRequest {
            value,
            deadline_ms,
            context: activation,
        } = request;
        let left = deadline_ms.map(time_left);
        match &*action {
            Action::Module {
                module,
                function,
                env,
            } => {
                // The activation's context, for this call alone.
                let mut context = Vec::new();
                if let Ok(host) = std::env::var("__OW_API_HOST") {
                    context.push(("__OW_API_HOST".to_owned(), host));
                }
                context.extend(activation);
                // The init environment holds the first activation's context:
                // this activation's replaces it, variable by variable.
                let mut vars: Vec<(String, String)> = env
                    .iter()
                    .filter(|(k, _)| !context.iter().any(|(c, _)| c == k))
                    .cloned()
                    .collect();
                vars.extend(context);
                // Stop the call a little before the deadline, as batches do,
                // so that its error reaches the invoker before the invoker's
                // own timeout does. A deadline already past (a skewed clock,
                // or the `123` of OpenWhisk's runtime tests) cannot be kept:
                // the platform enforces its own time limit, so the call runs
                // under the default one.
                let limit = left.filter(|l| !l.is_zero()).map(|l| {
                    l.checked_sub(DEADLINE_MARGIN)
                        .filter(|t| !t.is_zero())
                        .unwrap_or(l)
                });
                self.run_module(module.clone(), function.clone(), value, vars, limit, log)
                    .await
            }
            Action::Jobs { worker, specs } => {
                let request = match wisp_wire::action::parse_job_request(value) {
                    Ok(request) => request,
                    Err(e) => return error(StatusCode::BAD_REQUEST, &e.0),
                };
                match request {
                    JobRequest::Metadata => match serde_json::to_vec(&RuntimeMetadata::current()) {
                        Ok(body) => json(StatusCode::OK, Bytes::from(body)),
                        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                    },
                    JobRequest::Batch(batch) => {
                        let worker = worker.clone();
                        let spec = match self.job_spec(&worker, specs, &batch.job).await {
                            Ok(spec) => spec,
                            Err(message) => return error(StatusCode::BAD_GATEWAY, &message),
                        };
                        let deadline = left.map(|l| std::time::Instant::now() + l);
                        let outcome = tokio::task::spawn_blocking(move || {
                            run_batch(&worker, &spec, &batch, deadline)
                        })
                        .await;
                        match outcome {
                            Ok(Ok(reply)) => {
                                log.line(&format!(
                                    "wisp: job {} calls {}: {} succeeded, {} failed",
                                    reply.job, reply.calls, reply.succeeded, reply.failed
                                ));
                                match serde_json::to_vec(&reply) {
                                    Ok(body) => json(StatusCode::OK, Bytes::from(body)),
                                    Err(e) => {
                                        error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
                                    }
                                }
                            }
                            Ok(Err(message)) => {
                                log.line(&message);
                                error(StatusCode::BAD_GATEWAY, &message)
                            }
                            Err(e) => error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &format!("the batch's worker thread failed: {e}"),
                            ),
                        }
                    }
                }
            }
        }
    }

    async fn run_module(
        &self,
        module: Arc<Module>,
        function: String,
        value: Value,
        vars: Vec<(String, String)>,
        left: Option<Duration>,
        log: &mut RunLog,
    ) -> Response<Full<Bytes>> {
        if !value.is_object() && !value.is_array() {
            return error(StatusCode::NOT_FOUND, literal::BAD_ARGUMENT);
        }
        let args = match serde_json::to_vec(&value) {
            Ok(args) => args,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let limits = CallLimits {
            timeout: left.unwrap_or(DEFAULT_TIMEOUT),
            ..CallLimits::default()
        };
        let engine = self.engine.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            engine.call_in(
                &module,
                &function,
                &args,
                &limits,
                CallEnv {
                    storage: None,
                    vars,
                    split_streams: true,
                },
            )
        })
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("the call's thread failed: {e}"),
                );
            }
        };
        log.stdout = outcome.log.to_text();
        if let Some(stderr) = &outcome.stderr {
            log.stderr = stderr.to_text();
        }
        match outcome.result {
            Ok(output) => match serde_json::from_slice::<Value>(&output) {
                Ok(Value::Object(_) | Value::Array(_)) => json(StatusCode::OK, Bytes::from(output)),
                _ => error(StatusCode::BAD_GATEWAY, literal::NOT_AN_OBJECT),
            },
            // The function itself said no: an application error upstream,
            // which keeps the container warm.
            Err(CallError::Function { message }) => {
                let body = serde_json::json!({ "error": message });
                json(StatusCode::OK, Bytes::from(body.to_string()))
            }
            Err(other) => error(StatusCode::BAD_GATEWAY, &other.to_string()),
        }
    }

    async fn job_spec(
        &self,
        worker: &Worker,
        specs: &Mutex<HashMap<String, Arc<JobSpec>>>,
        job: &str,
    ) -> Result<Arc<JobSpec>, String> {
        if let Some(spec) = specs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(job)
        {
            return Ok(spec.clone());
        }
        let key = protocol::job_spec_key(job);
        let bytes = worker
            .storage()
            .get(worker.bucket(), &key)
            .await
            .map_err(|e| format!("cannot read job {job}: {e}"))?;
        let spec: JobSpec = serde_json::from_slice(&bytes)
            .map_err(|e| format!("job {job} has an unreadable spec at {key}: {e}"))?;
        if !wisp_abi::SUPPORTED_ABI_VERSIONS.contains(&spec.abi) {
            return Err(format!(
                "job {job} needs guest ABI {}, and this runtime (wisp {}) runs ABI {:?}: \
                 update the runtime with `wisp runtime update`",
                spec.abi,
                env!("CARGO_PKG_VERSION"),
                wisp_abi::SUPPORTED_ABI_VERSIONS
            ));
        }
        let spec = Arc::new(spec);
        let mut specs = specs.lock().unwrap_or_else(PoisonError::into_inner);
        // Jobs come and go; a container lives through many of them.
        if specs.len() >= 256 {
            specs.clear();
        }
        specs.insert(job.to_owned(), spec.clone());
        Ok(spec)
    }

    fn log_line(&self, line: &str) {
        let _together = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// Writes a run's log and then the sentinel, on stdout and on stderr,
    /// all under one lock: with concurrent runs, each run's lines stay
    /// together and end with its own sentinels.
    fn finish_run(&self, log: &RunLog) {
        let _together = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        for (mut stream, text) in [
            (
                Box::new(std::io::stdout().lock()) as Box<dyn std::io::Write>,
                &log.stdout,
            ),
            (Box::new(std::io::stderr().lock()), &log.stderr),
        ] {
            write_text(&mut *stream, text);
            let _ = writeln!(stream, "{SENTINEL}");
            let _ = stream.flush();
        }
    }

    fn sentinels(&self) {
        let _together = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        for mut stream in [
            Box::new(std::io::stdout().lock()) as Box<dyn std::io::Write>,
            Box::new(std::io::stderr().lock()),
        ] {
            let _ = writeln!(stream, "{SENTINEL}");
            let _ = stream.flush();
        }
    }
}

/// What one `/run` prints, held until it ends.
#[derive(Default)]
struct RunLog {
    stdout: String,
    stderr: String,
}

impl RunLog {
    fn line(&mut self, line: &str) {
        self.stderr.push_str(line);
        self.stderr.push('\n');
    }
}

fn write_text(stream: &mut dyn std::io::Write, text: &str) {
    if text.is_empty() {
        return;
    }
    let _ = stream.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = stream.write_all(b"\n");
    }
}

/// Runs the calls of a batch in order, recording outcomes as it goes.
/// Calls the deadline leaves no time for are recorded as lost, so that
/// the client never waits for them.
fn run_batch(
    worker: &Worker,
    spec: &JobSpec,
    batch: &BatchRequest,
    deadline: Option<std::time::Instant>,
) -> Result<BatchReply, String> {
    let end = batch
        .first
        .checked_add(batch.count)
        .filter(|&end| end <= spec.calls)
        .ok_or_else(|| {
            format!(
                "calls {}..{}+{} are not all in job {}, which has {} calls",
                batch.first, batch.first, batch.count, spec.job_id, spec.calls
            )
        })?;
    let args = batch_args(worker, spec, batch)?;
    let warm = spec
        .module
        .parse()
        .ok()
        .and_then(|digest| worker.engine().cached(&digest))
        .is_some();
    let module = worker.module(spec);
    let mut reply = BatchReply {
        job: spec.job_id.clone(),
        calls: batch.count,
        succeeded: 0,
        failed: 0,
        module: match &module {
            _ if warm => ModuleSource::Warm,
            Ok(module) if module.from_code_cache() => ModuleSource::Loaded,
            _ => ModuleSource::Compiled,
        },
    };
    let mut pending: Vec<CallStatus> = Vec::new();
    let mut since = std::time::Instant::now();
    for (index, args) in (batch.first..end).zip(args) {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let status = match (&module, left) {
            (_, Some(left)) if left <= DEADLINE_MARGIN => worker.fail_call(
                spec,
                index,
                batch.attempt,
                Failure::Lost {
                    message: "the activation reached its deadline before this call started; \
                              raise the runtime timeout or use smaller batches"
                        .to_owned(),
                },
            ),
            (Ok(module), left) => worker.execute_within(
                spec,
                module,
                &CallInput {
                    index,
                    args,
                    attempt: batch.attempt,
                },
                left.map(|l| l - DEADLINE_MARGIN),
            ),
            (Err(e), _) => worker.fail_call(
                spec,
                index,
                batch.attempt,
                Failure::Module {
                    message: e.to_string(),
                },
            ),
        };
        if status.succeeded() {
            reply.succeeded += 1;
        } else {
            reply.failed += 1;
        }
        pending.push(status);
        if pending.len() >= RECORD_EVERY || since.elapsed() >= RECORD_DELAY {
            record(worker, &mut pending)?;
            since = std::time::Instant::now();
        }
    }
    record(worker, &mut pending)?;
    Ok(reply)
}

fn record(worker: &Worker, pending: &mut Vec<CallStatus>) -> Result<(), String> {
    if pending.is_empty() {
        return Ok(());
    }
    worker
        .try_record(std::mem::take(pending))
        .map(|_| ())
        .map_err(|(statuses, e)| {
            format!(
                "cannot record the outcomes of {} calls: {e}",
                statuses.len()
            )
        })
}

/// The arguments of a batch's calls, from the request or from the job's
/// arguments object.
fn batch_args(worker: &Worker, spec: &JobSpec, batch: &BatchRequest) -> Result<Vec<Bytes>, String> {
    let args: Vec<Bytes> = match (&batch.args, batch.args_range) {
        (Some(args), _) => args.iter().map(|a| Bytes::from(a.clone())).collect(),
        (None, Some([start, end])) => {
            let key = protocol::args_key(&spec.job_id);
            let bytes = worker
                .runtime()
                .block_on(
                    worker
                        .storage()
                        .get_range(worker.bucket(), &key, start..end),
                )
                .map_err(|e| format!("cannot read the arguments of job {}: {e}", spec.job_id))?;
            bytes
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .map(|line| bytes.slice_ref(line))
                .collect()
        }
        (None, None) => {
            return Err("the batch carries neither arguments nor their range".to_owned());
        }
    };
    if args.len() != batch.count as usize {
        return Err(format!(
            "the batch of job {} has {} arguments for {} calls",
            spec.job_id,
            args.len(),
            batch.count
        ));
    }
    Ok(args)
}

fn time_left(deadline_ms: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(deadline_ms.saturating_sub(now))
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message });
    json(status, Bytes::from(body.to_string()))
}

/// The address to listen on: [`ADDR_VAR`] or [`DEFAULT_ADDR`].
///
/// # Errors
///
/// When the variable is not a socket address.
pub fn listen_addr() -> Result<SocketAddr, String> {
    let text = std::env::var(ADDR_VAR)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    text.parse().map_err(|e| {
        format!("{ADDR_VAR}={text} is not an address to listen on (like 127.0.0.1:8080): {e}")
    })
}
