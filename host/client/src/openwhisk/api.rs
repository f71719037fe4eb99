//! A client of the OpenWhisk REST API: packages, actions, invocations and
//! activation records.
//!
//! [`OpenWhiskClient`] speaks the subset of `/api/v1` that wisp needs: it
//! keeps wisp's runtime actions inside one package of ours, invokes them
//! (non-blocking for batches of calls, blocking for probes) and reads the
//! activation records back. Every request carries HTTP Basic auth made of the
//! key's UUID and secret; the secret never appears in an error, a log line or
//! a `Debug` output.
//!
//! Retries, by kind of failure:
//!
//! - **429 and 503** (throttled, load balancer unavailable) are retried after
//!   a growing, jittered pause (0.5 s to 5 s by default) until the pauses
//!   add up to [`ClientOptions::throttle_budget`] (3 minutes by default).
//! - **Other 5xx** replies are retried [`ClientOptions::server_error_retries`]
//!   times. A blocking invoke's 500/502 that carries an activation record is
//!   an answer (the action failed), never retried.
//! - **Connection errors.** Reads, deletes and overwriting puts are retried
//!   like other 5xx. An invoke is retried once, and only when the connection
//!   could not be opened: once the request may have reached the controller
//!   it may also have been turned into an activation even though the reply
//!   was lost, and sending it again would run the batch twice. A broken
//!   connection or a timeout after the request went out is reported as
//!   [`OpenWhiskError::Interrupted`] / [`OpenWhiskError::Timeout`] instead.
//!
//! Redirects are not followed, and the endpoint is used exactly as configured:
//! `http://` stays `http://`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a request to OpenWhisk failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenWhiskError {
    /// A configuration value is unusable.
    #[error("invalid `{key}`: {message}")]
    InvalidConfig {
        /// The configuration key, such as `openwhisk.endpoint`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An entity name that OpenWhisk would refuse.
    #[error("invalid OpenWhisk {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `package`, `action`, `namespace` or `activation id`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The controller is not reachable.
    #[error(
        "cannot reach OpenWhisk at {endpoint}: {message}; check `openwhisk.endpoint` \
         and that the controller is running"
    )]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The connection broke after the request was sent.
    #[error(
        "the connection to OpenWhisk broke during {request}: {message} \
         (the request may have been processed)"
    )]
    Interrupted {
        /// Method and path of the request.
        request: String,
        /// Why.
        message: String,
    },
    /// No reply within the request timeout.
    #[error("OpenWhisk did not answer {request} within {:.1} s", after.as_secs_f64())]
    Timeout {
        /// Method and path of the request.
        request: String,
        /// The timeout.
        after: Duration,
    },
    /// 401: the controller does not know the API key.
    #[error(
        "OpenWhisk at {endpoint} rejected the API key (401: {message}); check \
         `openwhisk.api_key` (the `uuid:secret` of a key this controller knows)"
    )]
    Unauthorized {
        /// The endpoint.
        endpoint: String,
        /// The server's error text.
        message: String,
    },
    /// 403: the key may not use the namespace.
    #[error(
        "the API key may not use OpenWhisk namespace `{namespace}` (403: {message}); \
         check `openwhisk.namespace` (`_` means the key's own) and `openwhisk.api_key`"
    )]
    Forbidden {
        /// The namespace.
        namespace: String,
        /// The server's error text.
        message: String,
    },
    /// 404 where the entity is required.
    #[error("{what} does not exist (404: {message})")]
    NotFound {
        /// The missing thing, such as `action wisp/runtime`.
        what: String,
        /// The server's error text.
        message: String,
    },
    /// 409: the entity exists, is not empty, or changed concurrently.
    #[error("conflict on {what} (409: {message})")]
    Conflict {
        /// The entity.
        what: String,
        /// The server's error text.
        message: String,
    },
    /// 429 until the retry budget ran out.
    #[error(
        "OpenWhisk kept throttling requests (429) after {attempts} attempts over \
         {:.1} s: {message}; invoke fewer calls at once or raise the namespace's limits",
        waited.as_secs_f64()
    )]
    Throttled {
        /// Requests sent.
        attempts: u32,
        /// Time spent pausing between them.
        waited: Duration,
        /// The server's last error text.
        message: String,
    },
    /// 5xx until the retries ran out.
    #[error("OpenWhisk failed with {status} after {attempts} attempts: {message}")]
    ServerError {
        /// The last status.
        status: u16,
        /// Requests sent.
        attempts: u32,
        /// The server's last error text.
        message: String,
    },
    /// Any other refusal (400, 413, …).
    #[error("OpenWhisk refused {what} ({status}: {message})")]
    Rejected {
        /// What was asked.
        what: String,
        /// The status.
        status: u16,
        /// The server's error text (its `error` field).
        message: String,
    },
    /// A reply this client cannot understand.
    #[error("unexpected reply to {request} (status {status}): {message}")]
    BadResponse {
        /// Method and path of the request.
        request: String,
        /// The status.
        status: u16,
        /// What is wrong with it.
        message: String,
    },
}

impl OpenWhiskError {
    /// The HTTP status behind this error, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Conflict { .. } => Some(409),
            Self::Throttled { .. } => Some(429),
            Self::ServerError { status, .. }
            | Self::Rejected { status, .. }
            | Self::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T, E = OpenWhiskError> = std::result::Result<T, E>;

/// Where and as whom to talk to OpenWhisk.
#[derive(Clone)]
pub struct ClientConfig {
    /// The API host, such as `http://127.0.0.1:3233` (without `/api/v1`).
    pub endpoint: String,
    /// The namespace; `_` means the key's own.
    pub namespace: String,
    /// The key, `uuid:secret`.
    pub api_key: String,
    /// Accept invalid TLS certificates (self-signed test deployments).
    pub insecure: bool,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("api_key", &MaskedKey(&self.api_key))
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Shows the UUID of a key and hides its secret.
struct MaskedKey<'a>(&'a str);

impl fmt::Debug for MaskedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once(':') {
            Some((uuid, _)) if is_uuid(uuid) => write!(f, "\"{uuid}:***\""),
            _ => f.write_str("\"***\""),
        }
    }
}

/// Timeouts and retry limits of an [`OpenWhiskClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to open a connection (10 s).
    pub connect_timeout: Duration,
    /// Time for a whole request (70 s, above the controller's own 65 s so
    /// that a blocking invoke gets its answer). A blocking invoke that waits
    /// longer is given its wait plus 10 s.
    pub request_timeout: Duration,
    /// Total pause allowed across retries of 429 and 503 replies (180 s).
    pub throttle_budget: Duration,
    /// Shortest pause between retries (500 ms).
    pub backoff_min: Duration,
    /// Longest pause between retries (5 s).
    pub backoff_max: Duration,
    /// Retries after other 5xx replies and, except for invokes, connection
    /// errors (3).
    pub server_error_retries: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(70),
            throttle_budget: Duration::from_secs(180),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            server_error_retries: 3,
        }
    }
}

/// A client of one namespace of one OpenWhisk deployment; cheap to clone.
#[derive(Clone)]
pub struct OpenWhiskClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The endpoint as parsed, without a trailing `/api/v1`.
    base: Url,
    namespace: String,
    uuid: String,
    secret: String,
    options: ClientOptions,
}

impl fmt::Debug for OpenWhiskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenWhiskClient")
            .field("endpoint", &self.inner.base.as_str())
            .field("namespace", &self.inner.namespace)
            .field("api_key", &format_args!("\"{}:***\"", self.inner.uuid))
            .field("options", &self.inner.options)
            .finish()
    }
}

/// A package as OpenWhisk returns it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Package {
    /// The namespace, such as `guest`.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The version, such as `0.0.1`.
    pub version: String,
    /// Whether other namespaces may use it.
    pub publish: bool,
    /// The bound package (`{}` when it is not a binding).
    pub binding: Value,
    /// Its parameters.
    pub parameters: Vec<Parameter>,
    /// Its annotations.
    pub annotations: Vec<KeyValue>,
    /// Its actions (on `GET` only).
    pub actions: Vec<ActionSummary>,
    /// Last change, epoch ms.
    pub updated: Option<u64>,
}

/// A package in a list: the same fields, those a list leaves out empty.
pub type PackageSummary = Package;

/// An action as OpenWhisk returns it (without its code).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Action {
    /// The namespace and package, such as `guest/wisp`.
    pub namespace: String,
    /// The action's own name.
    pub name: String,
    /// The version, bumped by each update.
    pub version: String,
    /// Whether other namespaces may use it.
    pub publish: bool,
    /// What runs it.
    pub exec: ActionExec,
    /// Its limits.
    pub limits: ActionLimits,
    /// Its parameters.
    pub parameters: Vec<Parameter>,
    /// Its annotations.
    pub annotations: Vec<KeyValue>,
    /// Last change, epoch ms.
    pub updated: Option<u64>,
}

/// An action in a list: the same fields, those a list leaves out empty
/// (`parameters`; `exec` carries `binary` only).
pub type ActionSummary = Action;

/// The `exec` of an action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActionExec {
    /// `blackbox` for wisp's runtime image.
    pub kind: Option<String>,
    /// The Docker image of a blackbox action.
    pub image: Option<String>,
    /// Whether the code is base64 binary.
    pub binary: bool,
    /// The entry point, when set.
    pub main: Option<String>,
}

/// The `limits` of an action.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActionLimits {
    /// Time limit of one activation, ms.
    pub timeout: Option<u64>,
    /// Memory of a container, MB.
    pub memory: Option<u64>,
    /// Log size kept, MB.
    pub logs: Option<u64>,
    /// Activations one container runs at once.
    pub concurrency: Option<u32>,
    /// Containers of this action at once, when set.
    pub instances: Option<u32>,
}

/// An annotation: `{"key": …, "value": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: Value,
}

/// A parameter of a package or action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(default)]
    pub value: Value,
    /// An init-time parameter: passed to `/init` only, not to each `/run`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub init: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What to deploy as an action: a blackbox (Docker) action running `image`.
#[derive(Debug, Clone)]
pub struct ActionPut {
    /// The Docker image.
    pub image: String,
    /// Memory of a container, MB.
    pub memory_mb: u64,
    /// Time limit of one activation, ms.
    pub timeout_ms: u64,
    /// Activations one container runs at once.
    pub concurrency: u32,
    /// Log size kept, MB (the deployment's default when `None`).
    pub logs_mb: Option<u64>,
    /// Annotations to set.
    pub annotations: Vec<(String, Value)>,
    /// Parameters to set.
    pub parameters: Vec<Parameter>,
}

impl ActionPut {
    /// `image` with OpenWhisk's default limits (256 MB, 60 s, concurrency 1).
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            memory_mb: 256,
            timeout_ms: 60_000,
            concurrency: 1,
            logs_mb: None,
            annotations: Vec::new(),
            parameters: Vec::new(),
        }
    }

    fn body(&self) -> Value {
        let mut limits = serde_json::json!({
            "timeout": self.timeout_ms,
            "memory": self.memory_mb,
            "concurrency": self.concurrency,
        });
        if let Some(logs) = self.logs_mb {
            limits["logs"] = logs.into();
        }
        let annotations: Vec<KeyValue> = self
            .annotations
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        serde_json::json!({
            "exec": {"kind": "blackbox", "image": self.image},
            "limits": limits,
            "parameters": self.parameters,
            "annotations": annotations,
            "publish": false,
        })
    }
}

/// An activation record (`GET /activations/{id}` or a blocking invoke).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActivationRecord {
    /// 32 hex characters.
    #[serde(rename = "activationId")]
    pub activation_id: String,
    /// The invoking namespace.
    pub namespace: String,
    /// The invoking subject.
    pub subject: Option<String>,
    /// The action's own name.
    pub name: String,
    /// The action's version.
    pub version: String,
    /// Start, epoch ms.
    pub start: Option<u64>,
    /// End, epoch ms (absent while unknown).
    pub end: Option<u64>,
    /// Duration, ms.
    pub duration: Option<u64>,
    /// The outcome.
    pub response: ActivationResponse,
    /// Log lines (empty in a blocking reply; fetch the record again).
    pub logs: Vec<String>,
    /// `path`, `kind`, `limits`, `timeout`, `waitTime`, `initTime`, …
    pub annotations: Vec<KeyValue>,
    /// The parent activation (sequences only).
    pub cause: Option<String>,
}

/// The `response` of an activation record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActivationResponse {
    /// `success`, `application error`, `action developer error` or
    /// `whisk internal error`.
    pub status: String,
    /// True only for `success`.
    pub success: bool,
    /// The result object (an `{"error": …}` on failures).
    pub result: Option<Value>,
    /// Size of the container's reply, when known.
    pub size: Option<u64>,
}

impl ActivationRecord {
    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    /// Time the activation waited before it ran, ms.
    pub fn wait_time_ms(&self) -> Option<u64> {
        self.annotation("waitTime").and_then(Value::as_u64)
    }

    /// Time spent in `/init`, ms; present on cold starts only.
    pub fn init_time_ms(&self) -> Option<u64> {
        self.annotation("initTime").and_then(Value::as_u64)
    }

    /// Whether the action ran out of its time limit.
    pub fn timed_out(&self) -> bool {
        self.annotation("timeout")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The answer to a blocking invoke.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// The activation finished within the wait (successfully or not).
    Finished(Box<ActivationRecord>),
    /// The activation finished but OpenWhisk sent its result alone (it does
    /// so when the result is an array).
    BareResult {
        /// From the `x-openwhisk-activation-id` header.
        activation_id: String,
        /// Whether the status was 200.
        success: bool,
        /// The result.
        result: Value,
    },
    /// The wait ended first; the activation keeps running. Poll
    /// [`OpenWhiskClient::activation`] with this id.
    StillRunning(String),
}

/// How hard a request may be retried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, deletes, puts: connection errors and 5xx retried.
    Safe,
    /// Invokes: a connect error retried once; nothing after the request
    /// may have been sent.
    Invoke,
    /// No retries at all (the connection check).
    Never,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    request: String,
}

impl Reply {
    fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| OpenWhiskError::BadResponse {
            request: self.request.clone(),
            status: self.status.as_u16(),
            message: format!("{e}; body: {}", snippet(&self.body)),
        })
    }

    fn message(&self) -> String {
        error_text(self.status, &self.body)
    }
}

/// The `error` of an OpenWhisk error body, or a short piece of the body.
fn error_text(status: StatusCode, body: &[u8]) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        match map.get("error") {
            Some(Value::String(s)) => return s.clone(),
            Some(other) if !other.is_null() => return other.to_string(),
            _ => {}
        }
    }
    let text = snippet(body);
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no error text")
            .to_owned()
    } else {
        text
    }
}

fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX {
        text.to_owned()
    } else {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Checks an entity name against OpenWhisk's rule: 1 to 256 characters, the
/// first a word character (`[A-Za-z0-9_]`), the others word characters,
/// `@`, `.`, `&`, `-` or spaces, the last not a space.
pub fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(OpenWhiskError::InvalidName {
            kind,
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let count = name.chars().count();
    if count == 0 {
        return invalid("it is empty");
    }
    if count > 256 {
        return invalid("it is longer than 256 characters");
    }
    if !name.starts_with(is_word) {
        return invalid("it must start with a letter, a digit or `_`");
    }
    if name.ends_with(' ') {
        return invalid("it must not end with a space");
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(is_word(c) || matches!(c, '@' | '.' | '&' | '-' | ' ')))
    {
        return invalid(&format!(
            "{c:?} is not allowed (only letters, digits, `_`, `@`, `.`, `&`, `-` and spaces)"
        ));
    }
    Ok(())
}

fn validate_activation_id(id: &str) -> Result<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(OpenWhiskError::InvalidName {
            kind: "activation id",
            name: id.to_owned(),
            reason: "an activation id is 32 hexadecimal characters".to_owned(),
        })
    }
}

fn config_error(key: &'static str, message: impl Into<String>) -> OpenWhiskError {
    OpenWhiskError::InvalidConfig {
        key,
        message: message.into(),
    }
}

fn parse_endpoint(endpoint: &str) -> Result<Url> {
    const KEY: &str = "openwhisk.endpoint";
    let trimmed = endpoint.trim();
    if trimmed.is_empty() {
        return Err(config_error(
            KEY,
            "it is empty; set it to the API host, such as http://127.0.0.1:3233",
        ));
    }
    let mut url = Url::parse(trimmed).map_err(|e| {
        config_error(
            KEY,
            format!("{trimmed:?} is not a URL ({e}); write it as http://host:port or https://host"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config_error(
            KEY,
            format!("{trimmed:?} must start with http:// or https://"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config_error(KEY, format!("{trimmed:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_error(
            KEY,
            "it must not contain credentials; put the key in `openwhisk.api_key`",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(
            KEY,
            format!("{trimmed:?} must not have a query or a fragment"),
        ));
    }
    // Accept an endpoint written with the API's base path.
    let path = url.path().trim_end_matches('/').to_owned();
    let path = path.strip_suffix("/api/v1").unwrap_or(&path).to_owned();
    url.set_path(&path);
    Ok(url)
}

fn parse_key(api_key: &str) -> Result<(String, String)> {
    const KEY: &str = "openwhisk.api_key";
    let shape = "it must be `uuid:secret`, the UUID and the 64-character secret of a key";
    let key = api_key.trim();
    if key.is_empty() {
        return Err(config_error(KEY, format!("it is empty; {shape}")));
    }
    let Some((uuid, secret)) = key.split_once(':') else {
        return Err(config_error(KEY, format!("it has no `:`; {shape}")));
    };
    if !is_uuid(uuid) {
        return Err(config_error(
            KEY,
            format!("the part before `:` is not a UUID; {shape}"),
        ));
    }
    if secret.chars().count() != 64 {
        return Err(config_error(
            KEY,
            format!(
                "the secret after `:` has {} characters, not 64; {shape}",
                secret.chars().count()
            ),
        ));
    }
    if secret
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(config_error(
            KEY,
            format!("the secret contains `:` or a space; {shape}"),
        ));
    }
    Ok((uuid.to_owned(), secret.to_owned()))
}

impl OpenWhiskClient {
    /// A client with the default [`ClientOptions`].
    ///
    /// Checks the endpoint (an `http` or `https` URL), the namespace and the
    /// key's shape; it sends nothing (see [`check`](Self::check)).
    pub fn new(config: ClientConfig) -> Result<Self> {
        Self::with_options(config, ClientOptions::default())
    }

    /// A client with the given timeouts and retry limits.
    pub fn with_options(config: ClientConfig, options: ClientOptions) -> Result<Self> {
        let base = parse_endpoint(&config.endpoint)?;
        let namespace = config.namespace.trim();
        if namespace.is_empty() {
            return Err(config_error(
                "openwhisk.namespace",
                "it is empty; use `_` for the key's own namespace",
            ));
        }
        if namespace != "_" {
            validate_name("namespace", namespace)
                .map_err(|e| config_error("openwhisk.namespace", format!("{e}; or use `_`")))?;
        }
        let (uuid, secret) = parse_key(&config.api_key)?;
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(config.insecure)
            .user_agent(concat!("wisp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error("openwhisk.endpoint", format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                namespace: namespace.to_owned(),
                uuid,
                secret,
                options,
            }),
        })
    }

    /// The endpoint, as used.
    pub fn endpoint(&self) -> &str {
        self.inner.base.as_str()
    }

    /// The namespace, as configured (`_` stays `_`).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The namespaces of the key (`GET /api/v1/namespaces`).
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        let url = self.api_url(&["namespaces"], &[]);
        let reply = self
            .send(Method::GET, url, None, Retry::Safe, false)
            .await?;
        self.expect(&reply, StatusCode::OK, "the namespace list")?;
        reply.json()
    }

    /// Checks that the controller answers, knows the key, and that the key
    /// may use the namespace. Each failure says which setting to fix.
    pub async fn check(&self) -> Result<()> {
        let url = self.api_url(&["namespaces"], &[]);
        let reply = self
            .send(Method::GET, url, None, Retry::Never, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(OpenWhiskError::NotFound {
                what: format!(
                    "the OpenWhisk API under {} (check `openwhisk.endpoint`: the API \
                     host, without /api/v1)",
                    self.endpoint()
                ),
                message: reply.message(),
            });
        }
        self.expect(&reply, StatusCode::OK, "the namespace list")?;
        let namespaces: Vec<String> = reply.json()?;
        let ns = &self.inner.namespace;
        if ns != "_" && !namespaces.iter().any(|n| n == ns) {
            return Err(OpenWhiskError::NotFound {
                what: format!(
                    "namespace `{ns}` for this key (its namespaces: {}; set \
                     `openwhisk.namespace` to one of them or to `_`)",
                    namespaces.join(", ")
                ),
                message: "not among the key's namespaces".to_owned(),
            });
        }
        tracing::debug!(endpoint = %self.endpoint(), namespace = %ns, "OpenWhisk answers");
        Ok(())
    }

    /// Creates package `name`, or updates it when `overwrite`.
    ///
    /// When it exists and `overwrite` is false, OpenWhisk answers 409; this
    /// returns the existing package then, so that "make sure it exists" is
    /// one call.
    pub async fn put_package(&self, name: &str, overwrite: bool) -> Result<Package> {
        validate_name("package", name)?;
        if name == "default" {
            return Err(OpenWhiskError::InvalidName {
                kind: "package",
                name: name.to_owned(),
                reason: "`default` is reserved by OpenWhisk".to_owned(),
            });
        }
        let url = self.api_url(&["packages", name], &[("overwrite", bool_str(overwrite))]);
        let body = Bytes::from_static(b"{}");
        let retry = Retry::Safe;
        let reply = self
            .send(Method::PUT, url, Some(body), retry, false)
            .await?;
        if reply.status == StatusCode::CONFLICT && !overwrite {
            tracing::debug!(package = name, "package exists already");
            return self
                .get_package(name)
                .await?
                .ok_or_else(|| OpenWhiskError::Conflict {
                    what: format!("package {name}"),
                    message: reply.message(),
                });
        }
        self.expect(&reply, StatusCode::OK, &format!("package {name}"))?;
        reply.json()
    }

    /// Package `name`, or `None` when it does not exist.
    pub async fn get_package(&self, name: &str) -> Result<Option<Package>> {
        validate_name("package", name)?;
        let url = self.api_url(&["packages", name], &[]);
        let reply = self
            .send(Method::GET, url, None, Retry::Safe, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.expect(&reply, StatusCode::OK, &format!("package {name}"))?;
        reply.json().map(Some)
    }

    /// Deletes package `name`; with `force`, its actions too (without it, a
    /// package that is not empty is a [`OpenWhiskError::Conflict`]).
    /// Returns whether it existed.
    pub async fn delete_package(&self, name: &str, force: bool) -> Result<bool> {
        validate_name("package", name)?;
        let query: &[(&str, &str)] = if force { &[("force", "true")] } else { &[] };
        let url = self.api_url(&["packages", name], query);
        let reply = self
            .send(Method::DELETE, url, None, Retry::Safe, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.expect(&reply, StatusCode::OK, &format!("package {name}"))?;
        Ok(true)
    }

    /// All packages of the namespace, fetched 200 at a time.
    pub async fn list_packages(&self) -> Result<Vec<PackageSummary>> {
        self.list(&["packages"], "the package list").await
    }

    /// Creates action `package/name`, or updates it when `overwrite`
    /// (OpenWhisk merges an update into the existing action). The package
    /// must exist. An existing action without `overwrite` is a
    /// [`OpenWhiskError::Conflict`].
    pub async fn put_action(
        &self,
        package: &str,
        name: &str,
        action: &ActionPut,
        overwrite: bool,
    ) -> Result<Action> {
        validate_name("package", package)?;
        validate_name("action", name)?;
        if action.image.trim().is_empty() {
            return Err(config_error(
                "openwhisk.runtime",
                "the runtime image is empty",
            ));
        }
        let url = self.api_url(
            &["actions", package, name],
            &[("overwrite", bool_str(overwrite))],
        );
        let body = Bytes::from(action.body().to_string());
        let retry = Retry::Safe;
        let reply = self
            .send(Method::PUT, url, Some(body), retry, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(OpenWhiskError::NotFound {
                what: format!("package {package} (create it before its actions)"),
                message: reply.message(),
            });
        }
        self.expect(&reply, StatusCode::OK, &format!("action {package}/{name}"))?;
        reply.json()
    }

    /// Action `package/name` without its code, or `None`.
    pub async fn get_action(&self, package: &str, name: &str) -> Result<Option<Action>> {
        validate_name("package", package)?;
        validate_name("action", name)?;
        let url = self.api_url(&["actions", package, name], &[("code", "false")]);
        let reply = self
            .send(Method::GET, url, None, Retry::Safe, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.expect(&reply, StatusCode::OK, &format!("action {package}/{name}"))?;
        reply.json().map(Some)
    }

    /// Deletes action `package/name`; returns whether it existed.
    pub async fn delete_action(&self, package: &str, name: &str) -> Result<bool> {
        validate_name("package", package)?;
        validate_name("action", name)?;
        let url = self.api_url(&["actions", package, name], &[]);
        let reply = self
            .send(Method::DELETE, url, None, Retry::Safe, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        self.expect(&reply, StatusCode::OK, &format!("action {package}/{name}"))?;
        Ok(true)
    }

    /// All actions of `package`, fetched 200 at a time.
    pub async fn list_actions(&self, package: &str) -> Result<Vec<ActionSummary>> {
        validate_name("package", package)?;
        // The trailing slash lists the package; without it OpenWhisk would
        // read `package` as an action of the default package.
        self.list(
            &["actions", package, ""],
            &format!("the actions of package {package}"),
        )
        .await
    }

    /// Starts an activation of `package/name` with `body` (a JSON object)
    /// without waiting for it; returns its id.
    ///
    /// Throttling (429, 503) and other 5xx replies are retried as the module
    /// documentation says. A connection error is retried once and only when
    /// the connection could not be opened: a request that went out may have
    /// become an activation even if the reply was lost.
    pub async fn invoke<B: Serialize + ?Sized>(
        &self,
        package: &str,
        name: &str,
        body: &B,
    ) -> Result<String> {
        validate_name("package", package)?;
        validate_name("action", name)?;
        let body = to_body(body)?;
        let url = self.api_url(&["actions", package, name], &[("blocking", "false")]);
        let reply = self
            .send(Method::POST, url, Some(body), Retry::Invoke, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(OpenWhiskError::NotFound {
                what: format!("action {package}/{name}"),
                message: reply.message(),
            });
        }
        if reply.status != StatusCode::ACCEPTED && reply.status != StatusCode::OK {
            return Err(self.status_error(&reply, &format!("invoke of {package}/{name}")));
        }
        activation_id_of(&reply).ok_or_else(|| OpenWhiskError::BadResponse {
            request: reply.request.clone(),
            status: reply.status.as_u16(),
            message: format!("no activation id in {}", snippet(&reply.body)),
        })
    }

    /// Invokes `package/name` and waits up to `wait` (at most 60 s, the
    /// controller's limit; longer waits are cut to 60 s) for the activation
    /// record. A finished activation is returned whether it succeeded or
    /// not; look at its `response`.
    pub async fn invoke_blocking<B: Serialize + ?Sized>(
        &self,
        package: &str,
        name: &str,
        body: &B,
        wait: Duration,
    ) -> Result<Invocation> {
        validate_name("package", package)?;
        validate_name("action", name)?;
        let body = to_body(body)?;
        let wait_ms = wait.as_millis().clamp(1, 60_000);
        if wait.as_millis() > 60_000 {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "blocking invoke wait cut to the controller's 60 s"
            );
        }
        let timeout = wait_ms.to_string();
        let url = self.api_url(
            &["actions", package, name],
            &[
                ("blocking", "true"),
                ("result", "false"),
                ("timeout", &timeout),
            ],
        );
        let reply = self
            .send(Method::POST, url, Some(body), Retry::Invoke, true)
            .await?;
        let what = format!("invoke of {package}/{name}");
        match reply.status.as_u16() {
            202 => activation_id_of(&reply)
                .map(Invocation::StillRunning)
                .ok_or_else(|| OpenWhiskError::BadResponse {
                    request: reply.request.clone(),
                    status: 202,
                    message: format!("no activation id in {}", snippet(&reply.body)),
                }),
            200 | 500 | 502 => {
                let value: Value = reply.json()?;
                if value.get("activationId").is_some() && value.get("response").is_some() {
                    let record: ActivationRecord =
                        serde_json::from_value(value).map_err(|e| OpenWhiskError::BadResponse {
                            request: reply.request.clone(),
                            status: reply.status.as_u16(),
                            message: format!("activation record: {e}"),
                        })?;
                    Ok(Invocation::Finished(Box::new(record)))
                } else if let Some(id) = header_activation_id(&reply.headers) {
                    Ok(Invocation::BareResult {
                        activation_id: id,
                        success: reply.status == StatusCode::OK,
                        result: value,
                    })
                } else {
                    Err(OpenWhiskError::BadResponse {
                        request: reply.request.clone(),
                        status: reply.status.as_u16(),
                        message: format!(
                            "neither an activation record nor an activation id: {}",
                            snippet(&reply.body)
                        ),
                    })
                }
            }
            404 => Err(OpenWhiskError::NotFound {
                what: format!("action {package}/{name}"),
                message: reply.message(),
            }),
            _ => Err(self.status_error(&reply, &what)),
        }
    }

    /// The record of activation `id`, or `None` while it is not stored yet
    /// (OpenWhisk answers 404 until then; poll).
    pub async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>> {
        validate_activation_id(id)?;
        let url = self.api_url(&["activations", id], &[]);
        let reply = self
            .send(Method::GET, url, None, Retry::Safe, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.expect(&reply, StatusCode::OK, &format!("activation {id}"))?;
        reply.json().map(Some)
    }

    /// The log lines of activation `id`.
    pub async fn activation_logs(&self, id: &str) -> Result<Vec<String>> {
        validate_activation_id(id)?;
        let url = self.api_url(&["activations", id, "logs"], &[]);
        let reply = self
            .send(Method::GET, url, None, Retry::Safe, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(OpenWhiskError::NotFound {
                what: format!("activation {id}"),
                message: reply.message(),
            });
        }
        self.expect(&reply, StatusCode::OK, &format!("logs of activation {id}"))?;
        #[derive(Deserialize)]
        struct Logs {
            #[serde(default)]
            logs: Vec<String>,
        }
        Ok(reply.json::<Logs>()?.logs)
    }

    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        what: &str,
    ) -> Result<Vec<T>> {
        const PAGE: usize = 200;
        const MAX_PAGES: usize = 10_000;
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let skip = (page * PAGE).to_string();
            let limit = PAGE.to_string();
            let url = self.api_url(segments, &[("limit", &limit), ("skip", &skip)]);
            let reply = self
                .send(Method::GET, url, None, Retry::Safe, false)
                .await?;
            self.expect(&reply, StatusCode::OK, what)?;
            let items: Vec<T> = reply.json()?;
            let n = items.len();
            all.extend(items);
            if n < PAGE {
                break;
            }
        }
        Ok(all)
    }

    /// `{endpoint}/api/v1/namespaces/{ns}/{segments…}?{query}`, each segment
    /// percent-encoded.
    fn api_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut path = url.path_segments_mut().expect("an http(s) URL has a path");
            path.pop_if_empty().extend(["api", "v1", "namespaces"]);
            if segments.first() != Some(&"namespaces") {
                path.push(&self.inner.namespace);
                path.extend(segments);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn expect(&self, reply: &Reply, ok: StatusCode, what: &str) -> Result<()> {
        if reply.status == ok {
            Ok(())
        } else {
            Err(self.status_error(reply, what))
        }
    }

    fn status_error(&self, reply: &Reply, what: &str) -> OpenWhiskError {
        let message = reply.message();
        match reply.status.as_u16() {
            401 => OpenWhiskError::Unauthorized {
                endpoint: self.endpoint().to_owned(),
                message,
            },
            403 => OpenWhiskError::Forbidden {
                namespace: self.inner.namespace.clone(),
                message,
            },
            404 => OpenWhiskError::NotFound {
                what: what.to_owned(),
                message,
            },
            409 => OpenWhiskError::Conflict {
                what: what.to_owned(),
                message,
            },
            429 => OpenWhiskError::Throttled {
                attempts: 1,
                waited: Duration::ZERO,
                message,
            },
            s @ 500..=599 => OpenWhiskError::ServerError {
                status: s,
                attempts: 1,
                message,
            },
            s @ 300..=399 => OpenWhiskError::BadResponse {
                request: reply.request.clone(),
                status: s,
                message: format!(
                    "redirected to {:?}, which is not followed; point `openwhisk.endpoint` \
                     at the API host itself",
                    reply
                        .headers
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                ),
            },
            s @ 400..=499 => OpenWhiskError::Rejected {
                what: what.to_owned(),
                status: s,
                message,
            },
            s => OpenWhiskError::BadResponse {
                request: reply.request.clone(),
                status: s,
                message,
            },
        }
    }

    /// Sends one request with retries as `retry` allows and returns the
    /// final reply. With `records`, a 5xx whose body is an activation record
    /// is a final reply (a blocking invoke's failed activation).
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        retry: Retry,
        records: bool,
    ) -> Result<Reply> {
        let options = &self.inner.options;
        let request = format!("{method} {}", url.path());
        let timeout = request_timeout(options, &url);
        let mut attempts: u32 = 0;
        let mut connect_failures: u32 = 0;
        let mut broken: u32 = 0;
        let mut server_errors: u32 = 0;
        let mut throttled_wait = Duration::ZERO;
        let mut pauses: u32 = 0;
        loop {
            attempts += 1;
            let mut builder = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .basic_auth(&self.inner.uuid, Some(&self.inner.secret))
                .header(ACCEPT, "application/json")
                .timeout(timeout);
            if let Some(body) = &body {
                builder = builder
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let started = Instant::now();
            let sent = builder.send().await;
            let response = match sent {
                Ok(response) => response,
                Err(e) if e.is_connect() => {
                    connect_failures += 1;
                    let allowed = match retry {
                        Retry::Safe => options.server_error_retries,
                        Retry::Invoke => 1,
                        Retry::Never => 0,
                    };
                    if connect_failures <= allowed {
                        let pause = self.backoff(pauses, None);
                        pauses += 1;
                        tracing::debug!(%request, error = %error_chain(&e), ?pause, "cannot connect to OpenWhisk; retrying");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    return Err(OpenWhiskError::Unreachable {
                        endpoint: self.endpoint().to_owned(),
                        message: error_chain(&e),
                    });
                }
                Err(e) if e.is_timeout() => {
                    return Err(OpenWhiskError::Timeout {
                        request,
                        after: timeout,
                    });
                }
                Err(e) => {
                    broken += 1;
                    if retry == Retry::Safe && broken <= options.server_error_retries {
                        let pause = self.backoff(pauses, None);
                        pauses += 1;
                        tracing::debug!(%request, error = %error_chain(&e), ?pause, "connection to OpenWhisk broke; retrying");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    return Err(OpenWhiskError::Interrupted {
                        request,
                        message: error_chain(&e),
                    });
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let body_bytes = match response.bytes().await {
                Ok(b) => b,
                Err(e) if e.is_timeout() => {
                    return Err(OpenWhiskError::Timeout {
                        request,
                        after: timeout,
                    });
                }
                Err(e) => {
                    return Err(OpenWhiskError::Interrupted {
                        request,
                        message: error_chain(&e),
                    });
                }
            };
            tracing::debug!(
                %request,
                status = status.as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "OpenWhisk replied"
            );
            let reply = Reply {
                status,
                headers,
                body: body_bytes,
                request: request.clone(),
            };
            if retry == Retry::Never {
                return Ok(reply);
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                if throttled_wait >= options.throttle_budget {
                    let message = reply.message();
                    tracing::debug!(%request, attempts, "OpenWhisk still refuses; giving up");
                    return Err(if status == StatusCode::TOO_MANY_REQUESTS {
                        OpenWhiskError::Throttled {
                            attempts,
                            waited: throttled_wait,
                            message,
                        }
                    } else {
                        OpenWhiskError::ServerError {
                            status: 503,
                            attempts,
                            message,
                        }
                    });
                }
                let pause = self
                    .backoff(pauses, retry_after(&reply.headers))
                    .min(options.throttle_budget - throttled_wait);
                pauses += 1;
                throttled_wait += pause;
                tracing::debug!(
                    %request,
                    status = status.as_u16(),
                    message = %reply.message(),
                    ?pause,
                    "OpenWhisk throttles; backing off"
                );
                tokio::time::sleep(pause).await;
                continue;
            }
            if status.is_server_error() {
                if records && is_record(&reply.body) {
                    return Ok(reply);
                }
                server_errors += 1;
                if server_errors > options.server_error_retries {
                    return Err(OpenWhiskError::ServerError {
                        status: status.as_u16(),
                        attempts,
                        message: reply.message(),
                    });
                }
                let pause = self.backoff(pauses, None);
                pauses += 1;
                tracing::debug!(
                    %request,
                    status = status.as_u16(),
                    message = %reply.message(),
                    ?pause,
                    "OpenWhisk failed; retrying"
                );
                tokio::time::sleep(pause).await;
                continue;
            }
            return Ok(reply);
        }
    }

    /// Pause number `n`: doubling from the minimum up to the maximum, with
    /// jitter in its upper half; a `Retry-After` is honoured up to the
    /// maximum.
    fn backoff(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let options = &self.inner.options;
        let min = options.backoff_min;
        let max = options.backoff_max.max(min);
        let base = min.saturating_mul(1u32 << n.min(16)).min(max);
        let jittered = base.mul_f64(0.5 + 0.5 * fastrand::f64()).max(min);
        match retry_after {
            Some(after) => jittered.max(after.min(max)),
            None => jittered,
        }
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn to_body<B: Serialize + ?Sized>(body: &B) -> Result<Bytes> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| OpenWhiskError::Rejected {
            what: "the invoke payload".to_owned(),
            status: 0,
            message: format!("cannot serialize it as JSON: {e}"),
        })
}

/// The request timeout: the configured one, or a blocking invoke's wait
/// plus 10 s when that is longer.
fn request_timeout(options: &ClientOptions, url: &Url) -> Duration {
    let wait = url
        .query_pairs()
        .find(|(k, _)| k == "timeout")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms) + Duration::from_secs(10));
    match wait {
        Some(w) => options.request_timeout.max(w),
        None => options.request_timeout,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn is_record(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v.get("activationId").is_some() && v.get("response").is_some())
}

fn header_activation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-openwhisk-activation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
}

fn activation_id_of(reply: &Reply) -> Option<String> {
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("activationId")?.as_str().map(str::to_owned))
        .or_else(|| header_activation_id(&reply.headers))
}

/// An error and its sources on one line (reqwest's own text stops at the
/// outermost layer).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
