//! The controller's REST subset: routing, authentication, validation and
//! the shapes of every reply.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::invoker::{Job, Outcome, Pool, Status};
use crate::store::{
    Action, Activation, Exec, KeyValue, Limits, Package, Store, bump_version, is_binary_code,
};
use crate::util::{
    now_ms, parse_bool, parse_query, percent_decode, random_hex, transaction_id, truthy,
    valid_entity_name,
};
use crate::{Fault, Throttle};

/// Largest invoke payload, by `Content-Length` (1 MiB).
const MAX_PAYLOAD: u64 = 1024 * 1024;
/// Largest request the controller accepts at all (50 MiB).
const MAX_REQUEST: u64 = 50 * 1024 * 1024;
/// Largest action code (48 MB).
const MAX_CODE: u64 = 48 * 1024 * 1024;
/// Largest parameters or annotations of one entity (1 MiB).
const MAX_PARAMETERS: u64 = 1024 * 1024;
/// The longest a blocking invoke waits.
const MAX_BLOCKING_WAIT_MS: u64 = 60_000;

const NOT_FOUND: &str = "The requested resource does not exist.";
const FORBIDDEN: &str = "The supplied authentication is not authorized to access this resource.";

type Reply = Response<Full<Bytes>>;

/// An error reply before the transaction id is added.
pub struct ApiError {
    status: StatusCode,
    message: String,
    activation_id: Option<String>,
}

fn err(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        activation_id: None,
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// State shared by every request.
pub struct Shared {
    pub namespace: String,
    pub auth: String,
    pub max_memory_mb: u64,
    pub max_concurrency: u32,
    pub throttle: Option<Throttle>,
    pub store: Mutex<Store>,
    pub pool: Arc<Pool>,
    pub faults: Mutex<VecDeque<Fault>>,
    recent: Mutex<VecDeque<Instant>>,
    in_flight: Arc<AtomicU32>,
}

impl Shared {
    #[allow(clippy::too_many_arguments, reason = "one field each")]
    pub fn new(
        namespace: String,
        auth: String,
        max_memory_mb: u64,
        max_concurrency: u32,
        throttle: Option<Throttle>,
        pool: Arc<Pool>,
    ) -> Self {
        Shared {
            namespace,
            auth,
            max_memory_mb,
            max_concurrency,
            throttle,
            store: Mutex::default(),
            pool,
            faults: Mutex::default(),
            recent: Mutex::default(),
            in_flight: Arc::new(AtomicU32::new(0)),
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("store poisoned")
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).expect("JSON serializes");
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn ok(body: Value) -> Result<Reply> {
    Ok(json_reply(StatusCode::OK, &body))
}

/// Serves one request; every reply carries `X-Request-ID`.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> std::result::Result<Reply, Infallible> {
    let tid = transaction_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut reply = match route(&shared, req, &tid).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = json_reply(e.status, &json!({ "error": e.message, "code": tid }));
            if e.status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static("Basic realm=\"OpenWhisk secure realm\""),
                );
            }
            if let Some(id) = e.activation_id
                && let Ok(v) = HeaderValue::from_str(&id)
            {
                r.headers_mut().insert("x-openwhisk-activation-id", v);
            }
            r
        }
    };
    tracing::debug!(%method, %path, status = reply.status().as_u16(), %tid, "request");
    reply.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&tid).expect("alphanumeric"),
    );
    let cors = reply.headers_mut();
    cors.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    cors.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, DELETE, POST, PUT, HEAD, PATCH"),
    );
    cors.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
        ),
    );
    Ok(reply)
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The query parameter '{key}' was malformed:\n'{v}' is not a valid Boolean value"
                    ),
                )
            }),
        }
    }

    fn number(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The query parameter '{key}' was malformed:\n'{v}' is not a valid 64-bit signed integer value"
                    ),
                )
            }),
        }
    }

    /// `limit` (default 30, 0 = 200, at most 200) and `skip` (≥ 0).
    fn page(&self, collection: &str) -> Result<(usize, usize)> {
        let limit = match self.number("limit")? {
            None => 30,
            Some(0) => 200,
            Some(n) if (1..=200).contains(&n) => n as usize,
            Some(n) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("The value '{n}' is not in the range of 0 to 200 for {collection}."),
                ));
            }
        };
        let skip = match self.number("skip")? {
            None => 0,
            Some(n) if n >= 0 => n as usize,
            Some(n) => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    format!("The value '{n}' is not a valid non-negative skip count."),
                ));
            }
        };
        Ok((limit, skip))
    }
}

fn check_auth(shared: &Shared, req: &Request<Incoming>) -> Result<()> {
    let Some(header) = req.headers().get(hyper::header::AUTHORIZATION) else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "The resource requires authentication, which was not supplied with the request",
        ));
    };
    let decoded = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    match decoded {
        Some(key) if key == shared.auth => Ok(()),
        _ => Err(err(
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid",
        )),
    }
}

async fn read_body(req: Request<Incoming>, max: u64) -> Result<Bytes> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > max
    {
        return Err(too_large(n, max));
    }
    match Limited::new(req.into_body(), max as usize).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(too_large(max + 1, max)),
    }
}

fn too_large(n: u64, max: u64) -> ApiError {
    err(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request larger than allowed: {n} > {max} bytes."),
    )
}

fn parse_json<T: for<'a> Deserialize<'a>>(body: &[u8]) -> Result<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("The request content was malformed:\n{e}"),
        )
    })
}

fn method_not_allowed(allowed: &str) -> ApiError {
    err(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("HTTP method not allowed, supported methods: {allowed}"),
    )
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>, tid: &str) -> Result<Reply> {
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return Ok(Response::new(Full::new(Bytes::new())));
    }
    let raw: Vec<String> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode(s).unwrap_or_else(|| s.to_string()))
        .collect();
    let seg: Vec<&str> = raw.iter().map(String::as_str).collect();
    let query = Query(parse_query(req.uri().query()));
    match seg.as_slice() {
        ["ping"] if method == Method::GET => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"pong")));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=UTF-8"),
            );
            return Ok(r);
        }
        ["api", "v1"] | ["api", "v1", ""] if method == Method::GET => {
            return ok(json!({
                "description": "OpenWhisk emulator of wisp",
                "api_version": "1.0.0",
                "api_version_path": "v1",
                "build": "wisp-openwhisk-emulator",
                "buildno": env!("CARGO_PKG_VERSION"),
                "swagger_paths": { "ui": "/docs", "api-docs": "/api/v1/api-docs" },
            }));
        }
        ["api", "v1", "namespaces", ..] => {}
        _ => return Err(err(StatusCode::NOT_FOUND, NOT_FOUND)),
    }
    check_auth(shared, &req)?;
    let rest = &seg[3..];
    if rest.is_empty() || rest == [""] {
        if method != Method::GET {
            return Err(method_not_allowed("GET"));
        }
        return ok(json!([shared.namespace]));
    }
    let ns = rest[0];
    if ns != "_" && ns != shared.namespace {
        return Err(err(StatusCode::FORBIDDEN, FORBIDDEN));
    }
    match &rest[1..] {
        ["limits"] => {
            let t = shared.throttle;
            ok(json!({
                "invocationsPerMinute": t.map(|t| t.invocations_per_minute),
                "concurrentInvocations": t.map(|t| t.concurrent_invocations),
                "minActionMemory": 128u64 * 1024 * 1024,
                "maxActionMemory": shared.max_memory_mb * 1024 * 1024,
                "minActionTimeout": 100,
                "maxActionTimeout": 300_000,
                "minActionLogs": 0,
                "maxActionLogs": 10u64 * 1024 * 1024,
                "maxActionConcurrency": shared.max_concurrency,
            }))
        }
        ["packages"] | ["packages", ""] => match method {
            Method::GET => list_packages(shared, &query),
            _ => Err(method_not_allowed("GET")),
        },
        ["packages", name] => {
            valid_name(name)?;
            match method {
                Method::GET => get_package(shared, name),
                Method::PUT => put_package(shared, name, &query, req).await,
                Method::DELETE => delete_package(shared, name, &query),
                _ => Err(method_not_allowed("GET, PUT, DELETE")),
            }
        }
        ["actions"] | ["actions", ""] => match method {
            Method::GET => list_actions(shared, None, &query),
            _ => Err(method_not_allowed("GET")),
        },
        ["actions", pkg, ""] => {
            valid_name(pkg)?;
            match method {
                Method::GET => list_actions(shared, Some(pkg), &query),
                _ => Err(method_not_allowed("GET")),
            }
        }
        ["actions", name] => action_route(shared, None, name, method, &query, req, tid).await,
        ["actions", pkg, name] => {
            action_route(shared, Some(pkg), name, method, &query, req, tid).await
        }
        ["activations"] | ["activations", ""] => match method {
            Method::GET => list_activations(shared, &query),
            _ => Err(method_not_allowed("GET")),
        },
        ["activations", id, tail @ ..] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            get_activation(shared, id, tail)
        }
        _ => Err(err(StatusCode::NOT_FOUND, NOT_FOUND)),
    }
}

fn valid_name(name: &str) -> Result<()> {
    if valid_entity_name(name) {
        Ok(())
    } else {
        Err(err(
            StatusCode::BAD_REQUEST,
            "The name of the entity contains illegal characters.",
        ))
    }
}

async fn action_route(
    shared: &Arc<Shared>,
    pkg: Option<&str>,
    name: &str,
    method: Method,
    query: &Query,
    req: Request<Incoming>,
    tid: &str,
) -> Result<Reply> {
    if let Some(p) = pkg {
        valid_name(p)?;
    }
    valid_name(name)?;
    match method {
        Method::GET => get_action(shared, pkg, name, query),
        Method::PUT => put_action(shared, pkg, name, query, req).await,
        Method::DELETE => delete_action(shared, pkg, name),
        Method::POST => invoke(shared, pkg, name, query, req, tid).await,
        _ => Err(method_not_allowed("GET, PUT, DELETE, POST")),
    }
}

// ---------------------------------------------------------------- packages

#[derive(Deserialize)]
struct PackagePut {
    publish: Option<bool>,
    parameters: Option<Vec<KeyValue>>,
    annotations: Option<Vec<KeyValue>>,
    binding: Option<Value>,
    version: Option<String>,
}

fn list_packages(shared: &Shared, query: &Query) -> Result<Reply> {
    let (limit, skip) = query.page("packages")?;
    let count = query.flag("count", false)?;
    query.flag("public", false)?;
    let store = shared.store();
    let mut all: Vec<&Package> = store.packages.values().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.updated));
    if count {
        return ok(json!({ "packages": all.len() }));
    }
    let page: Vec<Value> = all
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(|p| p.summary(&shared.namespace))
        .collect();
    ok(Value::Array(page))
}

fn get_package(shared: &Shared, name: &str) -> Result<Reply> {
    let store = shared.store();
    let p = store
        .packages
        .get(name)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, NOT_FOUND))?;
    let mut body = p.to_json(&shared.namespace);
    let actions: Vec<Value> = store
        .actions
        .values()
        .filter(|a| a.package.as_deref() == Some(name))
        .map(|a| a.summary(&shared.namespace))
        .collect();
    body["actions"] = Value::Array(actions);
    body["feeds"] = json!([]);
    ok(body)
}

fn check_sizes(
    parameters: &Option<Vec<KeyValue>>,
    annotations: &Option<Vec<KeyValue>>,
) -> Result<()> {
    for (field, list) in [("parameters", parameters), ("annotations", annotations)] {
        if let Some(list) = list {
            let n = serde_json::to_vec(list)
                .map(|v| v.len() as u64)
                .unwrap_or(0);
            if n > MAX_PARAMETERS {
                return Err(err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("{field} larger than allowed: {n} > {MAX_PARAMETERS} bytes."),
                ));
            }
        }
    }
    Ok(())
}

async fn put_package(
    shared: &Shared,
    name: &str,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Reply> {
    if name == "default" {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "Package name 'default' is reserved.",
        ));
    }
    let overwrite = query.flag("overwrite", false)?;
    let body = read_body(req, MAX_REQUEST).await?;
    let put: PackagePut = parse_json(&body)?;
    check_sizes(&put.parameters, &put.annotations)?;
    if let Some(b) = &put.binding
        && !(b.is_object())
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "The request content was malformed:\nbinding must be an object",
        ));
    }
    let mut store = shared.store();
    let now = now_ms();
    let package = match store.packages.get(name) {
        Some(_) if !overwrite => {
            return Err(err(StatusCode::CONFLICT, "resource already exists"));
        }
        Some(old) => Package {
            name: name.to_string(),
            version: put.version.unwrap_or_else(|| bump_version(&old.version)),
            publish: put.publish.unwrap_or(old.publish),
            binding: put.binding.or_else(|| old.binding.clone()),
            parameters: put.parameters.unwrap_or_else(|| old.parameters.clone()),
            annotations: put.annotations.unwrap_or_else(|| old.annotations.clone()),
            updated: now,
        },
        None => Package {
            name: name.to_string(),
            version: put.version.unwrap_or_else(|| "0.0.1".into()),
            publish: put.publish.unwrap_or(false),
            binding: put
                .binding
                .filter(|b| b.as_object().is_some_and(|o| !o.is_empty())),
            parameters: put.parameters.unwrap_or_default(),
            annotations: put.annotations.unwrap_or_default(),
            updated: now,
        },
    };
    let body = package.to_json(&shared.namespace);
    store.packages.insert(name.to_string(), package);
    ok(body)
}

fn delete_package(shared: &Shared, name: &str, query: &Query) -> Result<Reply> {
    let force = query.flag("force", false)?;
    let mut store = shared.store();
    if !store.packages.contains_key(name) {
        return Err(err(StatusCode::NOT_FOUND, NOT_FOUND));
    }
    let inside: Vec<(String, String)> = store
        .actions
        .keys()
        .filter(|(p, _)| p == name)
        .cloned()
        .collect();
    if !inside.is_empty() && !force {
        return Err(err(
            StatusCode::CONFLICT,
            format!(
                "Package not empty (contains {} entities). Set force param or delete package contents.",
                inside.len()
            ),
        ));
    }
    for k in inside {
        store.actions.remove(&k);
    }
    let p = store.packages.remove(name).expect("checked above");
    ok(p.to_json(&shared.namespace))
}

// ---------------------------------------------------------------- actions

#[derive(Deserialize)]
struct ExecPut {
    kind: String,
    image: Option<String>,
    code: Option<String>,
    main: Option<String>,
}

#[derive(Deserialize, Default)]
struct LimitsPut {
    timeout: Option<i64>,
    memory: Option<i64>,
    logs: Option<i64>,
    concurrency: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionPut {
    exec: Option<ExecPut>,
    limits: Option<LimitsPut>,
    parameters: Option<Vec<KeyValue>>,
    annotations: Option<Vec<KeyValue>>,
    publish: Option<bool>,
    version: Option<String>,
    del_annotations: Option<Vec<String>>,
}

fn action_key(pkg: Option<&str>, name: &str) -> (String, String) {
    (pkg.unwrap_or("").to_string(), name.to_string())
}

fn get_action(shared: &Shared, pkg: Option<&str>, name: &str, query: &Query) -> Result<Reply> {
    let code = query.flag("code", true)?;
    let store = shared.store();
    let a = store
        .actions
        .get(&action_key(pkg, name))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, NOT_FOUND))?;
    ok(a.to_json(&shared.namespace, code))
}

fn delete_action(shared: &Shared, pkg: Option<&str>, name: &str) -> Result<Reply> {
    let mut store = shared.store();
    let a = store
        .actions
        .remove(&action_key(pkg, name))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, NOT_FOUND))?;
    ok(a.to_json(&shared.namespace, true))
}

fn list_actions(shared: &Shared, pkg: Option<&str>, query: &Query) -> Result<Reply> {
    let (limit, skip) = query.page("actions")?;
    let count = query.flag("count", false)?;
    let store = shared.store();
    if let Some(p) = pkg
        && !store.packages.contains_key(p)
    {
        return Err(err(StatusCode::NOT_FOUND, NOT_FOUND));
    }
    let mut all: Vec<&Action> = store
        .actions
        .values()
        .filter(|a| a.package.as_deref() == pkg)
        .collect();
    all.sort_by_key(|a| std::cmp::Reverse(a.updated));
    if count {
        return ok(json!({ "actions": all.len() }));
    }
    ok(Value::Array(
        all.into_iter()
            .skip(skip)
            .take(limit)
            .map(|a| a.summary(&shared.namespace))
            .collect(),
    ))
}

fn check_range(what: &str, v: i64, min: i64, max: i64, unit: &str) -> Result<()> {
    let describe = |n: i64| match what {
        "memory" => format!("memory size {n} MB"),
        "timeout" => format!("duration {n} milliseconds"),
        "logs" => format!("log size {n} MB"),
        _ => format!("concurrency {n}"),
    };
    if v > max {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{} exceeds allowed threshold of {max}{unit}", describe(v)),
        ));
    }
    if v < min {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{} below allowed threshold of {min}{unit}", describe(v)),
        ));
    }
    Ok(())
}

fn merge_limits(shared: &Shared, old: Limits, put: &LimitsPut) -> Result<Limits> {
    let mut l = old;
    if let Some(t) = put.timeout {
        check_range("timeout", t, 100, 300_000, " milliseconds")?;
        l.timeout = t as u64;
    }
    if let Some(m) = put.memory {
        check_range("memory", m, 128, shared.max_memory_mb as i64, " MB")?;
        l.memory = m as u64;
    }
    if let Some(g) = put.logs {
        check_range("logs", g, 0, 10, " MB")?;
        l.logs = g as u64;
    }
    if let Some(c) = put.concurrency {
        check_range("concurrency", c, 1, i64::from(shared.max_concurrency), "")?;
        l.concurrency = c as u32;
    }
    Ok(l)
}

fn make_exec(put: ExecPut) -> Result<Exec> {
    if put.kind != "blackbox" {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!(
                "kind '{}' is not one of the supported kinds: blackbox",
                put.kind
            ),
        ));
    }
    let Some(image) = put.image.filter(|i| !i.trim().is_empty()) else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "The request content was malformed:\n'image' must be a string defined in 'exec' for 'blackbox' actions",
        ));
    };
    let code = put.code.filter(|c| !c.trim().is_empty());
    if let Some(c) = &code
        && c.len() as u64 > MAX_CODE
    {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("exec larger than allowed: {} > {MAX_CODE} bytes.", c.len()),
        ));
    }
    Ok(Exec {
        kind: put.kind,
        image: Some(image),
        binary: code.as_deref().is_some_and(is_binary_code),
        code,
        main: put.main,
    })
}

fn set_annotation(list: &mut Vec<KeyValue>, key: &str, value: Value) {
    match list.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => list.push(KeyValue {
            key: key.to_string(),
            value,
            init: false,
        }),
    }
}

async fn put_action(
    shared: &Shared,
    pkg: Option<&str>,
    name: &str,
    query: &Query,
    req: Request<Incoming>,
) -> Result<Reply> {
    let overwrite = query.flag("overwrite", false)?;
    let body = read_body(req, MAX_REQUEST).await?;
    let put: ActionPut = parse_json(&body)?;
    check_sizes(&put.parameters, &put.annotations)?;
    let exec = put.exec.map(make_exec).transpose()?;
    let mut store = shared.store();
    if let Some(p) = pkg {
        match store.packages.get(p) {
            None => return Err(err(StatusCode::NOT_FOUND, NOT_FOUND)),
            Some(p) if p.binding.is_some() => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "Cannot create or update an action in a package binding.",
                ));
            }
            Some(_) => {}
        }
    }
    let key = action_key(pkg, name);
    let now = now_ms();
    store.revisions += 1;
    let revision = store.revisions;
    let action = match store.actions.get(&key) {
        Some(_) if !overwrite => return Err(err(StatusCode::CONFLICT, "resource already exists")),
        Some(old) => {
            let limits = merge_limits(shared, old.limits, &put.limits.unwrap_or_default())?;
            let exec = exec.unwrap_or_else(|| old.exec.clone());
            let mut annotations = old.annotations.clone();
            if let Some(del) = &put.del_annotations {
                annotations.retain(|kv| !del.contains(&kv.key));
            }
            for kv in put.annotations.unwrap_or_default() {
                set_annotation(&mut annotations, &kv.key, kv.value);
            }
            set_annotation(&mut annotations, "exec", json!(exec.kind));
            Action {
                package: pkg.map(str::to_string),
                name: name.to_string(),
                version: put.version.unwrap_or_else(|| bump_version(&old.version)),
                publish: put.publish.unwrap_or(old.publish),
                exec,
                parameters: put.parameters.unwrap_or_else(|| old.parameters.clone()),
                limits,
                annotations,
                updated: now,
                revision,
            }
        }
        None => {
            let Some(exec) = exec else {
                return Err(err(StatusCode::BAD_REQUEST, "exec undefined"));
            };
            let limits = merge_limits(shared, Limits::default(), &put.limits.unwrap_or_default())?;
            let mut annotations = Vec::new();
            for kv in put.annotations.unwrap_or_default() {
                set_annotation(&mut annotations, &kv.key, kv.value);
            }
            set_annotation(&mut annotations, "exec", json!(exec.kind));
            if !annotations.iter().any(|kv| kv.key == "provide-api-key") {
                set_annotation(&mut annotations, "provide-api-key", json!(false));
            }
            Action {
                package: pkg.map(str::to_string),
                name: name.to_string(),
                version: put.version.unwrap_or_else(|| "0.0.1".into()),
                publish: put.publish.unwrap_or(false),
                exec,
                parameters: put.parameters.unwrap_or_default(),
                limits,
                annotations,
                updated: now,
                revision,
            }
        }
    };
    let body = action.to_json(&shared.namespace, true);
    store.actions.insert(key, action);
    ok(body)
}

// ---------------------------------------------------------------- invoke

fn invoke_error(status: StatusCode, message: String, id: Option<&str>) -> ApiError {
    ApiError {
        status,
        message,
        activation_id: id.map(str::to_string),
    }
}

fn take_fault(shared: &Shared) -> Option<ApiError> {
    let mut faults = shared.faults.lock().expect("faults poisoned");
    let front = faults.front_mut()?;
    let (remaining, error) = match front {
        Fault::Throttled { count } => {
            let allowed = shared.throttle.map_or(60, |t| t.invocations_per_minute);
            (
                count,
                err(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many requests in the last minute (count: {}, allowed: {allowed}).",
                        allowed + 1
                    ),
                ),
            )
        }
        Fault::Unavailable { count } => (
            count,
            err(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        ),
    };
    if *remaining == 0 {
        faults.pop_front();
        return None;
    }
    *remaining -= 1;
    if *remaining == 0 {
        faults.pop_front();
    }
    Some(error)
}

fn check_throttle(shared: &Shared) -> Result<()> {
    let Some(t) = shared.throttle else {
        return Ok(());
    };
    let mut recent = shared.recent.lock().expect("throttle poisoned");
    while recent
        .front()
        .is_some_and(|at| at.elapsed() >= Duration::from_secs(60))
    {
        recent.pop_front();
    }
    let count = recent.len() as u32 + 1;
    if count > t.invocations_per_minute {
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many requests in the last minute (count: {count}, allowed: {}).",
                t.invocations_per_minute
            ),
        ));
    }
    let running = shared.in_flight.load(Ordering::SeqCst);
    if running >= t.concurrent_invocations {
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many concurrent requests in flight (count: {}, allowed: {}).",
                running + 1,
                t.concurrent_invocations
            ),
        ));
    }
    recent.push_back(Instant::now());
    Ok(())
}

async fn invoke(
    shared: &Arc<Shared>,
    pkg: Option<&str>,
    name: &str,
    query: &Query,
    req: Request<Incoming>,
    tid: &str,
) -> Result<Reply> {
    let blocking = query.flag("blocking", false)?;
    let result_only = query.flag("result", false)?;
    let wait_ms = match query.get("timeout") {
        None => MAX_BLOCKING_WAIT_MS,
        Some(t) => match t.parse::<u64>() {
            Ok(n) if (1..=MAX_BLOCKING_WAIT_MS).contains(&n) => n,
            _ => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "Timeout must be number of milliseconds up to 60000.",
                ));
            }
        },
    };
    let received = Instant::now();
    let (action, package) = {
        let store = shared.store();
        let action = store
            .actions
            .get(&action_key(pkg, name))
            .cloned()
            .ok_or_else(|| err(StatusCode::NOT_FOUND, NOT_FOUND))?;
        let package = pkg.and_then(|p| store.packages.get(p).cloned());
        (action, package)
    };
    let body = read_body(req, MAX_PAYLOAD).await?;
    let payload: Value = parse_json(&body)?;
    if !payload.is_object() && !payload.is_array() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "The request content was malformed:\nexpected a JSON object or array",
        ));
    }
    let mut parameters: Vec<KeyValue> = package.map(|p| p.parameters).unwrap_or_default();
    for kv in &action.parameters {
        parameters.retain(|p| p.key != kv.key);
        parameters.push(kv.clone());
    }
    let is_final = action
        .annotations
        .iter()
        .any(|kv| kv.key == "final" && truthy(&kv.value));
    if is_final
        && let Some(obj) = payload.as_object()
        && parameters.iter().any(|p| obj.contains_key(&p.key))
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "Request defines parameters that are not allowed (e.g., reserved properties).",
        ));
    }
    if let Some(fault) = take_fault(shared) {
        return Err(fault);
    }
    check_throttle(shared)?;

    let mut init_env = serde_json::Map::new();
    let value = match payload {
        Value::Object(args) => {
            let mut value = serde_json::Map::new();
            for p in &parameters {
                if p.init {
                    init_env.insert(p.key.clone(), p.value.clone());
                } else {
                    value.insert(p.key.clone(), p.value.clone());
                }
            }
            for (k, v) in args {
                init_env.remove(&k);
                value.insert(k, v);
            }
            Value::Object(value)
        }
        other => {
            for p in parameters.iter().filter(|p| p.init) {
                init_env.insert(p.key.clone(), p.value.clone());
            }
            other
        }
    };
    let provide_key = action
        .annotations
        .iter()
        .find(|kv| kv.key == "provide-api-key")
        .is_none_or(|kv| truthy(&kv.value));
    let ns = shared.namespace.clone();
    let path = match &action.package {
        Some(p) => format!("{ns}/{p}/{}", action.name),
        None => format!("{ns}/{}", action.name),
    };
    let activation_id = random_hex(32);
    let job = Job {
        activation_id: activation_id.clone(),
        transaction_id: tid.to_string(),
        namespace: ns.clone(),
        path: path.clone(),
        name: action.name.clone(),
        version: action.version.clone(),
        image: action.exec.image.clone().unwrap_or_default(),
        code: action.exec.code.clone(),
        binary: action.exec.binary,
        main: action.exec.main.clone(),
        limits: action.limits,
        value,
        init_env,
        api_key: provide_key.then(|| shared.auth.clone()),
        received,
        pool_key: format!("{path}@{}#{}", action.version, action.revision),
    };
    let meta = Arc::new(RecordMeta {
        activation_id: activation_id.clone(),
        namespace: ns,
        name: action.name.clone(),
        version: action.version.clone(),
        path,
        kind: action.exec.kind.clone(),
        limits: action.limits,
    });
    let (early_tx, early_rx) = oneshot::channel();
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    {
        let shared = shared.clone();
        let meta = meta.clone();
        tokio::spawn(async move {
            let outcome = shared.pool.execute(job, early_tx).await;
            let record = build_record(&meta, &outcome);
            let activation = Activation {
                record,
                status_code: outcome.status as u8,
                path: meta.path.clone(),
                start: outcome.start,
            };
            {
                let mut store = shared.store();
                store
                    .activations
                    .insert(meta.activation_id.clone(), activation);
                store.order.push(meta.activation_id.clone());
            }
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(activation = %meta.activation_id, status = outcome.status.text(), "activation stored");
        });
    }
    let accepted = || {
        let mut r = json_reply(
            StatusCode::ACCEPTED,
            &json!({ "activationId": activation_id }),
        );
        r.headers_mut().insert(
            "x-openwhisk-activation-id",
            HeaderValue::from_str(&activation_id).expect("hex"),
        );
        r
    };
    if !blocking {
        return Ok(accepted());
    }
    let outcome = match tokio::time::timeout(Duration::from_millis(wait_ms), early_rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => {
            return Err(invoke_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error".into(),
                Some(&activation_id),
            ));
        }
        Err(_) => return Ok(accepted()),
    };
    let status = match outcome.status {
        Status::Success => StatusCode::OK,
        Status::ApplicationError | Status::DeveloperError => StatusCode::BAD_GATEWAY,
        Status::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = if result_only || outcome.result.is_array() {
        outcome.result.clone()
    } else {
        build_record(&meta, &outcome)
    };
    let mut r = json_reply(status, &body);
    r.headers_mut().insert(
        "x-openwhisk-activation-id",
        HeaderValue::from_str(&activation_id).expect("hex"),
    );
    Ok(r)
}

struct RecordMeta {
    activation_id: String,
    namespace: String,
    name: String,
    version: String,
    path: String,
    kind: String,
    limits: Limits,
}

fn response_json(outcome: &Outcome) -> Value {
    let mut response = json!({
        "status": outcome.status.text(),
        "success": outcome.status == Status::Success,
        "result": outcome.result,
    });
    if let Some(size) = outcome.size {
        response["size"] = json!(size);
    }
    response
}

fn build_record(meta: &RecordMeta, outcome: &Outcome) -> Value {
    let mut annotations = vec![
        json!({ "key": "path", "value": meta.path }),
        json!({ "key": "waitTime", "value": outcome.wait_ms }),
        json!({ "key": "kind", "value": meta.kind }),
        json!({ "key": "timeout", "value": outcome.timeout }),
        json!({ "key": "limits", "value": meta.limits }),
    ];
    if let Some(init) = outcome.init_ms {
        annotations.push(json!({ "key": "initTime", "value": init }));
    }
    json!({
        "activationId": meta.activation_id,
        "namespace": meta.namespace,
        "subject": meta.namespace,
        "name": meta.name,
        "version": meta.version,
        "publish": false,
        "start": outcome.start,
        "end": outcome.end,
        "duration": outcome.end.saturating_sub(outcome.start),
        "response": response_json(outcome),
        "logs": outcome.logs,
        "annotations": annotations,
    })
}

// ---------------------------------------------------------------- activations

fn list_activations(shared: &Shared, query: &Query) -> Result<Reply> {
    let (limit, skip) = query.page("activations")?;
    let count = query.flag("count", false)?;
    let docs = query.flag("docs", false)?;
    if count && docs {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "The parameters 'count' and 'docs' cannot be combined.",
        ));
    }
    let since = query.number("since")?;
    let upto = query.number("upto")?;
    let wanted = match query.get("name") {
        None => None,
        Some(n) => {
            let parts: Vec<&str> = n.split('/').collect();
            if parts.len() > 2 || parts.iter().any(|p| !valid_entity_name(p)) {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "The name must be an action or a package and an action (pkg/action).",
                ));
            }
            Some(format!("{}/{n}", shared.namespace))
        }
    };
    let store = shared.store();
    let matching: Vec<&Activation> = store
        .order
        .iter()
        .rev()
        .filter_map(|id| store.activations.get(id))
        .filter(|a| wanted.as_ref().is_none_or(|w| &a.path == w))
        .filter(|a| since.is_none_or(|s| a.start as i64 >= s))
        .filter(|a| upto.is_none_or(|u| a.start as i64 <= u))
        .collect();
    if count {
        return ok(json!({ "activations": matching.len() }));
    }
    ok(Value::Array(
        matching
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|a| if docs { a.record.clone() } else { a.summary() })
            .collect(),
    ))
}

fn get_activation(shared: &Shared, id: &str, tail: &[&str]) -> Result<Reply> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "The activation id is not valid.",
        ));
    }
    let store = shared.store();
    let a = store
        .activations
        .get(&id.to_ascii_lowercase())
        .ok_or_else(|| err(StatusCode::NOT_FOUND, NOT_FOUND))?;
    match tail {
        [] | [""] => ok(a.record.clone()),
        ["result"] => ok(a.record["response"].clone()),
        ["logs"] => ok(json!({ "logs": a.record["logs"] })),
        _ => Err(err(StatusCode::NOT_FOUND, NOT_FOUND)),
    }
}
