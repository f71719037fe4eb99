//! The invoker: a pool of warm containers per action version, `/init` once
//! per container, `/run` with the activation context, replies classified the
//! way the platform classifies them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot, watch};

use crate::container::{Container, StartError, StartSpec};
use crate::store::Limits;
use crate::util::now_ms;

/// The most of a `/run` reply the invoker reads (1 MiB).
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;

/// How activations ended, with the numbers the record shows as `statusCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Success = 0,
    ApplicationError = 1,
    DeveloperError = 2,
    InternalError = 3,
}

impl Status {
    pub fn text(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ApplicationError => "application error",
            Status::DeveloperError => "action developer error",
            Status::InternalError => "whisk internal error",
        }
    }
}

/// What one activation needs to run.
pub struct Job {
    pub activation_id: String,
    pub transaction_id: String,
    pub namespace: String,
    /// `guest/pkg/name` or `guest/name`.
    pub path: String,
    pub name: String,
    pub version: String,
    pub image: String,
    pub code: Option<String>,
    pub binary: bool,
    pub main: Option<String>,
    pub limits: Limits,
    pub value: Value,
    pub init_env: serde_json::Map<String, Value>,
    pub api_key: Option<String>,
    /// When the controller received the request.
    pub received: Instant,
    /// A key that changes with every update of the action.
    pub pool_key: String,
}

/// The outcome of one activation.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    pub result: Value,
    pub size: Option<usize>,
    pub start: u64,
    pub end: u64,
    pub wait_ms: u64,
    pub init_ms: Option<u64>,
    pub timeout: bool,
    pub logs: Vec<String>,
}

/// Where containers come from.
pub enum Engine {
    Docker(bollard::Docker),
    Process(PathBuf),
}

struct Slot {
    id: u64,
    key: String,
    memory_mb: u64,
    concurrency: u32,
    active: u32,
    last_used: Instant,
    ready: watch::Receiver<Option<Option<Arc<Container>>>>,
}

#[derive(Default)]
struct PoolState {
    used_mb: u64,
    slots: Vec<Slot>,
    next_id: u64,
}

/// The container pool of one emulator.
pub struct Pool {
    pub engine: Engine,
    pub instance: String,
    pub api_host: String,
    pub user_memory_mb: u64,
    pub idle_timeout: Duration,
    state: Mutex<PoolState>,
    freed: Notify,
    started: AtomicUsize,
    names: AtomicU64,
}

enum Acquired {
    Cold {
        id: u64,
        tx: watch::Sender<Option<Option<Arc<Container>>>>,
    },
    Warm {
        id: u64,
        rx: watch::Receiver<Option<Option<Arc<Container>>>>,
    },
}

impl Pool {
    pub fn new(
        engine: Engine,
        instance: String,
        api_host: String,
        user_memory_mb: u64,
        idle_timeout: Duration,
    ) -> Self {
        Pool {
            engine,
            instance,
            api_host,
            user_memory_mb,
            idle_timeout,
            state: Mutex::default(),
            freed: Notify::new(),
            started: AtomicUsize::new(0),
            names: AtomicU64::new(0),
        }
    }

    pub fn containers_started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// A place to run: a warm (or warming) container of this action with
    /// room for one more activation, else memory for a new container,
    /// evicting idle containers of other actions, else wait.
    async fn acquire(&self, key: &str, memory_mb: u64, concurrency: u32) -> Acquired {
        loop {
            let mut freed = pin!(self.freed.notified());
            freed.as_mut().enable();
            {
                let mut st = self.state.lock().expect("pool poisoned");
                let candidate = st
                    .slots
                    .iter_mut()
                    .filter(|s| s.key == key && s.active < s.concurrency)
                    .filter(|s| !matches!(*s.ready.borrow(), Some(None)))
                    .max_by_key(|s| (s.ready.borrow().is_some(), s.active));
                if let Some(slot) = candidate {
                    slot.active += 1;
                    return Acquired::Warm {
                        id: slot.id,
                        rx: slot.ready.clone(),
                    };
                }
                loop {
                    let fits = st.used_mb + memory_mb <= self.user_memory_mb || st.used_mb == 0;
                    if fits {
                        st.next_id += 1;
                        let id = st.next_id;
                        let (tx, rx) = watch::channel(None);
                        st.used_mb += memory_mb;
                        st.slots.push(Slot {
                            id,
                            key: key.to_string(),
                            memory_mb,
                            concurrency,
                            active: 1,
                            last_used: Instant::now(),
                            ready: rx,
                        });
                        return Acquired::Cold { id, tx };
                    }
                    let idle = st
                        .slots
                        .iter()
                        .filter(|s| s.active == 0)
                        .min_by_key(|s| s.last_used)
                        .map(|s| s.id);
                    match idle {
                        Some(id) => self.evict(&mut st, id),
                        None => break,
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), freed).await;
        }
    }

    fn evict(&self, st: &mut PoolState, id: u64) {
        if let Some(i) = st.slots.iter().position(|s| s.id == id) {
            let slot = st.slots.remove(i);
            st.used_mb -= slot.memory_mb;
            let container = slot.ready.borrow().clone().flatten();
            if let Some(c) = container {
                tokio::spawn(async move { c.destroy().await });
            }
        }
    }

    fn release(&self, id: u64, destroy: bool) {
        let mut st = self.state.lock().expect("pool poisoned");
        if destroy {
            self.evict(&mut st, id);
        } else if let Some(slot) = st.slots.iter_mut().find(|s| s.id == id) {
            slot.active = slot.active.saturating_sub(1);
            slot.last_used = Instant::now();
        }
        drop(st);
        self.freed.notify_waiters();
    }

    /// Removes containers idle for longer than the idle timeout.
    pub fn reap_idle(&self) {
        let mut st = self.state.lock().expect("pool poisoned");
        let stale: Vec<u64> = st
            .slots
            .iter()
            .filter(|s| s.active == 0 && s.last_used.elapsed() >= self.idle_timeout)
            .map(|s| s.id)
            .collect();
        for id in &stale {
            tracing::debug!(slot = id, "removing idle container");
            self.evict(&mut st, *id);
        }
        drop(st);
        if !stale.is_empty() {
            self.freed.notify_waiters();
        }
    }

    /// Every container still in the pool, for shutdown.
    pub fn drain(&self) -> Vec<Arc<Container>> {
        let mut st = self.state.lock().expect("pool poisoned");
        st.used_mb = 0;
        st.slots
            .drain(..)
            .filter_map(|s| s.ready.borrow().clone().flatten())
            .collect()
    }

    /// Kills process containers synchronously (best effort, for `Drop`).
    pub fn kill_all_now(&self) {
        let st = self.state.lock();
        if let Ok(st) = st {
            for s in &st.slots {
                if let Some(c) = s.ready.borrow().clone().flatten() {
                    c.kill_now();
                }
            }
        }
    }

    async fn start_container(&self, job: &Job) -> Result<Container, StartError> {
        let n = self.names.fetch_add(1, Ordering::SeqCst);
        let spec = StartSpec {
            name: format!("wisp_ow_{}_{n}", self.instance),
            image: &job.image,
            memory_mb: job.limits.memory,
            env: vec![("__OW_API_HOST".into(), self.api_host.clone())],
            instance: &self.instance,
        };
        let c = match &self.engine {
            Engine::Docker(docker) => Container::start_docker(docker, spec).await?,
            Engine::Process(binary) => Container::start_process(binary, spec).await?,
        };
        self.started.fetch_add(1, Ordering::SeqCst);
        Ok(c)
    }

    /// Runs one activation to its end. `early` gets the outcome as soon as
    /// the result is known (logs not yet collected), for blocking invokes.
    pub async fn execute(&self, job: Job, early: oneshot::Sender<Outcome>) -> Outcome {
        let timeout = Duration::from_millis(job.limits.timeout);
        let (slot, container, init_ms, start) = loop {
            match self
                .acquire(&job.pool_key, job.limits.memory, job.limits.concurrency)
                .await
            {
                Acquired::Warm { id, mut rx } => {
                    let ready = rx
                        .wait_for(|v| v.is_some())
                        .await
                        .ok()
                        .and_then(|v| v.clone());
                    match ready.flatten() {
                        Some(c) => break (id, c, None, now_ms()),
                        None => {
                            // The container failed to start or initialize:
                            // schedule this activation again.
                            self.release(id, false);
                            continue;
                        }
                    }
                }
                Acquired::Cold { id, tx } => {
                    let container = match self.start_container(&job).await {
                        Ok(c) => Arc::new(c),
                        Err(e) => {
                            let _ = tx.send(Some(None));
                            self.release(id, true);
                            let status = match e {
                                StartError::Pull(_) => Status::DeveloperError,
                                StartError::Other(_) => Status::InternalError,
                            };
                            let now = now_ms();
                            let out = Outcome {
                                status,
                                result: json!({ "error": e.to_string() }),
                                size: None,
                                start: now,
                                end: now,
                                wait_ms: job.received.elapsed().as_millis() as u64,
                                init_ms: None,
                                timeout: false,
                                logs: Vec::new(),
                            };
                            let _ = early.send(out.clone());
                            return out;
                        }
                    };
                    let init_start = now_ms();
                    let wait_ms = job.received.elapsed().as_millis() as u64;
                    let begun = Instant::now();
                    match self.initialize(&job, &container, timeout).await {
                        Ok(()) => {
                            let _ = tx.send(Some(Some(container.clone())));
                            let init_ms = begun.elapsed().as_millis() as u64;
                            break (id, container, Some((init_ms, wait_ms)), init_start);
                        }
                        Err((result, timed_out)) => {
                            let _ = tx.send(Some(None));
                            let end = now_ms();
                            let mut out = Outcome {
                                status: Status::DeveloperError,
                                result,
                                size: None,
                                start: init_start,
                                end,
                                wait_ms,
                                init_ms: Some(end - init_start),
                                timeout: timed_out,
                                logs: Vec::new(),
                            };
                            let _ = early.send(out.clone());
                            if job.limits.logs > 0 {
                                out.logs = container.collect_logs(job.limits.logs, false).await;
                            }
                            {
                                // The slot still holds no container: destroy it here.
                                self.release(id, true);
                                container.destroy().await;
                            }
                            return out;
                        }
                    }
                }
            }
        };

        let run_start = now_ms();
        let (init_ms, wait_ms) = match init_ms {
            Some((i, w)) => (Some(i), w),
            None => (None, job.received.elapsed().as_millis() as u64),
        };
        let deadline = now_ms() + job.limits.timeout;
        let mut body = json!({
            "value": job.value,
            "namespace": job.namespace,
            "action_name": format!("/{}", job.path),
            "action_version": job.version,
            "activation_id": job.activation_id,
            "transaction_id": job.transaction_id,
            "deadline": deadline.to_string(),
        });
        if let Some(key) = &job.api_key {
            body["api_key"] = json!(key);
        }
        let reply = post(container.addr, "/run", &body, timeout, false).await;
        let (status, result, size, timed_out) = match reply {
            Ok(reply) => {
                let (s, r) = classify_run(&reply);
                (s, r, Some(reply.body.len()), false)
            }
            Err(PostError::Timeout) => (
                Status::DeveloperError,
                json!({ "error": format!(
                    "The action exceeded its time limits of {} milliseconds.",
                    job.limits.timeout
                ) }),
                None,
                true,
            ),
            Err(_) => {
                let message = if container.oom_killed().await {
                    "The action exhausted its memory and was aborted."
                } else {
                    "The action did not produce a valid response and exited unexpectedly."
                };
                (
                    Status::DeveloperError,
                    json!({ "error": message }),
                    None,
                    false,
                )
            }
        };
        let end = now_ms();
        let _ = run_start;
        let mut out = Outcome {
            status,
            result,
            size,
            start,
            end,
            wait_ms,
            init_ms,
            timeout: timed_out,
            logs: Vec::new(),
        };
        let _ = early.send(out.clone());
        let failed = matches!(status, Status::DeveloperError | Status::InternalError);
        if job.limits.logs > 0 {
            out.logs = container.collect_logs(job.limits.logs, !failed).await;
        }
        self.release(slot, failed);
        out
    }

    /// Sends `/init`, retrying every 50 ms while the port refuses, within
    /// the action's time limit. The error is the activation's result.
    async fn initialize(
        &self,
        job: &Job,
        container: &Container,
        timeout: Duration,
    ) -> Result<(), (Value, bool)> {
        let mut value = serde_json::Map::new();
        value.insert("name".into(), json!(job.name));
        value.insert(
            "main".into(),
            json!(job.main.clone().unwrap_or_else(|| "main".into())),
        );
        value.insert("binary".into(), json!(job.binary));
        if let Some(code) = &job.code {
            value.insert("code".into(), json!(code));
        }
        let mut env = serde_json::Map::new();
        let deadline = now_ms() + job.limits.timeout;
        let mut context = vec![
            ("__OW_NAMESPACE", json!(job.namespace)),
            ("__OW_ACTION_NAME", json!(format!("/{}", job.path))),
            ("__OW_ACTION_VERSION", json!(job.version)),
            ("__OW_ACTIVATION_ID", json!(job.activation_id)),
            ("__OW_TRANSACTION_ID", json!(job.transaction_id)),
            ("__OW_DEADLINE", json!(deadline.to_string())),
        ];
        if let Some(key) = &job.api_key {
            context.push(("__OW_API_KEY", json!(key)));
        }
        for (k, v) in context {
            env.insert(k.into(), v);
        }
        for (k, v) in &job.init_env {
            let text = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.insert(k.clone(), json!(text));
        }
        value.insert("env".into(), Value::Object(env));
        let body = json!({ "value": value });
        match post(container.addr, "/init", &body, timeout, true).await {
            Ok(reply) if reply.status == 200 => Ok(()),
            Ok(reply) if reply.content_length.is_none() || reply.status == 204 => Err((
                json!({ "error": "The action did not initialize and exited unexpectedly." }),
                false,
            )),
            Ok(reply) => {
                let text = String::from_utf8_lossy(&reply.body).into_owned();
                match serde_json::from_slice::<Value>(&reply.body) {
                    Ok(Value::Object(o)) if o.contains_key("error") => {
                        Err((json!({ "error": o["error"] }), false))
                    }
                    _ => {
                        let message = if text.is_empty() {
                            "The action failed during initialization.".to_string()
                        } else {
                            format!("The action failed during initialization: {text}")
                        };
                        Err((json!({ "error": message }), false))
                    }
                }
            }
            Err(PostError::Timeout) => Err((
                json!({ "error": format!(
                    "The action exceeded its time limits of {} milliseconds during initialization.",
                    job.limits.timeout
                ) }),
                true,
            )),
            Err(PostError::Io(_)) => {
                let message = if container.oom_killed().await {
                    "The action exhausted its memory and was aborted."
                } else {
                    "The action did not initialize and exited unexpectedly."
                };
                Err((json!({ "error": message }), false))
            }
        }
    }
}

/// A container's reply as the invoker reads it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_length: Option<u64>,
    /// At most [`MAX_RESULT_BYTES`].
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("no reply within the time limit")]
    Timeout,
    #[error("{0}")]
    Io(String),
}

/// One `POST` on a fresh connection, JSON in, at most 1 MiB of the reply
/// read. With `retry_connect` a refused connection is retried every 50 ms.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    timeout: Duration,
    retry_connect: bool,
) -> Result<Reply, PostError> {
    let payload = Bytes::from(serde_json::to_vec(body).expect("JSON serializes"));
    let exchange = async {
        let stream = loop {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => break s,
                Err(e) if retry_connect => {
                    tracing::trace!(%addr, "connect: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(PostError::Io(e.to_string())),
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PostError::Io(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(payload))
            .expect("valid request");
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| PostError::Io(e.to_string()))?;
        let status = response.status().as_u16();
        let content_length = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut incoming = response.into_body();
        let mut body = Vec::new();
        while body.len() < MAX_RESULT_BYTES {
            match incoming.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = MAX_RESULT_BYTES - body.len();
                        body.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => return Err(PostError::Io(e.to_string())),
            }
        }
        driver.abort();
        Ok(Reply {
            status,
            content_length,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(PostError::Timeout),
    }
}

/// Classifies a `/run` reply the way the platform does.
pub fn classify_run(reply: &Reply) -> (Status, Value) {
    let invalid = || json!({ "error": "The action did not produce a valid response and exited unexpectedly." });
    let Some(length) = reply.content_length else {
        return (Status::DeveloperError, invalid());
    };
    if reply.status == 204 {
        return (Status::DeveloperError, invalid());
    }
    if length > MAX_RESULT_BYTES as u64 {
        let text = String::from_utf8_lossy(&reply.body);
        return (
            Status::ApplicationError,
            json!({ "error": format!(
                "The action produced a response that exceeded the allowed length: {length} > {MAX_RESULT_BYTES} bytes. The truncated response was: {text}"
            ) }),
        );
    }
    let not_json = || {
        json!({ "error": format!(
            "The action did not produce a valid JSON or JSON Array response: {}",
            String::from_utf8_lossy(&reply.body)
        ) })
    };
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Object(o)) if reply.status == 200 => match o.get("error") {
            Some(e) => (Status::ApplicationError, json!({ "error": e })),
            None => (Status::Success, Value::Object(o)),
        },
        Ok(Value::Array(a)) if reply.status == 200 => (Status::Success, Value::Array(a)),
        Ok(Value::Object(o)) if o.contains_key("error") => {
            (Status::DeveloperError, json!({ "error": o["error"] }))
        }
        _ => (Status::DeveloperError, not_json()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_length: Some(body.len() as u64),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_a3_table() {
        assert_eq!(
            classify_run(&reply(200, r#"{"a":1}"#)),
            (Status::Success, json!({"a":1}))
        );
        assert_eq!(
            classify_run(&reply(200, r#"{"error":{"code":7}}"#)),
            (Status::ApplicationError, json!({"error":{"code":7}}))
        );
        assert_eq!(
            classify_run(&reply(200, r#"["a"]"#)),
            (Status::Success, json!(["a"]))
        );
        assert_eq!(
            classify_run(&reply(502, r#"{"error":"bad"}"#)),
            (Status::DeveloperError, json!({"error":"bad"}))
        );
        assert_eq!(
            classify_run(&reply(502, r#"{"x":1}"#)),
            (
                Status::DeveloperError,
                json!({"error":"The action did not produce a valid JSON or JSON Array response: {\"x\":1}"})
            )
        );
        assert_eq!(classify_run(&reply(200, "42")).0, Status::DeveloperError);
        assert_eq!(classify_run(&reply(200, "nope")).0, Status::DeveloperError);
        assert_eq!(classify_run(&reply(204, "")).0, Status::DeveloperError);
        let mut chunked = reply(200, "{}");
        chunked.content_length = None;
        assert_eq!(
            classify_run(&chunked),
            (
                Status::DeveloperError,
                json!({"error":"The action did not produce a valid response and exited unexpectedly."})
            )
        );
        let big = Reply {
            status: 200,
            content_length: Some(2 * MAX_RESULT_BYTES as u64),
            body: vec![b'x'; MAX_RESULT_BYTES],
        };
        let (s, r) = classify_run(&big);
        assert_eq!(s, Status::ApplicationError);
        assert!(r["error"].as_str().unwrap().starts_with(
            "The action produced a response that exceeded the allowed length: 2097152 > 1048576 bytes. The truncated response was: xxx"
        ));
    }
}
