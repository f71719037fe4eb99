//! The OpenWhisk REST client against a scripted HTTP server on 127.0.0.1:
//! each test lists the replies the server gives, in order, and checks both
//! what the client sent (method, path, query, auth, body) and what it made
//! of the replies.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use wisp::openwhisk::api::{
    ActionPut, ClientConfig, ClientOptions, Invocation, OpenWhiskClient, OpenWhiskError, Parameter,
};

const UUID: &str = "5a1d7e2c-93b4-4f08-a6c1-0d2e4b6f8a13";
const SECRET: &str = "Wx9pQ2rT7vK4mN8bL3cF6hJ1dS5gA0zYeUiOoPqRsTuVwXyZaBcDeFgHiJkLmNoP";

fn key() -> String {
    format!("{UUID}:{SECRET}")
}

/// One scripted reply.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
    /// Close the connection after reading the request, without replying.
    hang_up: bool,
}

fn reply(status: u16, body: Value) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.to_string(),
        delay: Duration::ZERO,
        hang_up: false,
    }
}

fn error_reply(status: u16, message: &str) -> Canned {
    reply(status, json!({"error": message, "code": "tx123"}))
}

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query, as sent.
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(script: Vec<Canned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = seen2.clone();
                let script = script.clone();
                std::thread::spawn(move || serve_connection(stream, &seen, &script));
            }
        });
        Self { port, seen }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn client(&self) -> OpenWhiskClient {
        client_for(&self.endpoint(), "_", fast())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn serve_connection(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    script: &Mutex<std::vec::IntoIter<Canned>>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().expect("lock").push(Seen {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let canned = script
            .lock()
            .expect("lock")
            .next()
            .unwrap_or_else(|| error_reply(418, "the test script has no more replies"));
        if canned.hang_up {
            return;
        }
        std::thread::sleep(canned.delay);
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: tx123\r\n",
            canned.status,
            canned.body.len()
        );
        for (k, v) in &canned.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() || out.write_all(canned.body.as_bytes()).is_err()
        {
            return;
        }
    }
}

/// Short pauses so that retry tests take milliseconds.
fn fast() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        throttle_budget: Duration::from_secs(2),
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        server_error_retries: 3,
    }
}

fn config(endpoint: &str, namespace: &str, api_key: &str) -> ClientConfig {
    ClientConfig {
        endpoint: endpoint.to_owned(),
        namespace: namespace.to_owned(),
        api_key: api_key.to_owned(),
        insecure: false,
    }
}

fn client_for(endpoint: &str, namespace: &str, options: ClientOptions) -> OpenWhiskClient {
    OpenWhiskClient::with_options(config(endpoint, namespace, &key()), options).expect("client")
}

/// The secret must not appear in an error's text or its Debug.
fn assert_clean(err: &OpenWhiskError) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains(&SECRET[..16]), "secret leaked: {text}");
}

const ID: &str = "0123456789abcdef0123456789abcdef";

fn record(status: &str, success: bool) -> Value {
    json!({
        "activationId": ID,
        "namespace": "guest",
        "subject": "guest",
        "name": "runtime",
        "version": "0.0.1",
        "publish": false,
        "start": 1_700_000_000_000u64,
        "end": 1_700_000_000_250u64,
        "duration": 250,
        "response": {"status": status, "success": success, "result": {"n": 1}, "size": 7},
        "logs": [],
        "annotations": [
            {"key": "path", "value": "guest/wisp/runtime"},
            {"key": "waitTime", "value": 12},
            {"key": "initTime", "value": 34},
            {"key": "timeout", "value": false},
            {"key": "limits", "value": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}}
        ],
        "unknownField": true
    })
}

#[test]
fn new_rejects_bad_endpoints_and_keys_naming_the_setting() {
    for endpoint in [
        "",
        "127.0.0.1:3233",
        "ftp://host",
        "http://user:pw@host:1",
        "not a url",
    ] {
        let err = OpenWhiskClient::new(config(endpoint, "_", &key())).expect_err(endpoint);
        assert!(
            err.to_string().contains("`openwhisk.endpoint`"),
            "{endpoint}: {err}"
        );
        assert_clean(&err);
    }
    let short = format!("{UUID}:{}", &SECRET[..40]);
    let not_uuid = format!("guest:{SECRET}");
    let no_colon = SECRET.to_owned();
    for api_key in [short.as_str(), not_uuid.as_str(), no_colon.as_str(), ""] {
        let err = OpenWhiskClient::new(config("http://127.0.0.1:1", "_", api_key))
            .expect_err("bad key accepted");
        assert!(err.to_string().contains("`openwhisk.api_key`"), "{err}");
        assert_clean(&err);
    }
    let err = OpenWhiskClient::new(config("http://127.0.0.1:1", "a/b", &key())).expect_err("ns");
    assert!(err.to_string().contains("`openwhisk.namespace`"), "{err}");
    OpenWhiskClient::new(config("https://ow.example:443/", "guest", &key())).expect("https");
}

#[test]
fn debug_output_masks_the_secret() {
    let cfg = config("http://127.0.0.1:3233", "_", &key());
    let text = format!("{cfg:?}");
    assert!(text.contains(UUID) && !text.contains(SECRET), "{text}");
    let client = OpenWhiskClient::new(cfg).expect("client");
    let text = format!("{client:?}");
    assert!(text.contains(UUID) && !text.contains(SECRET), "{text}");
    let odd = config("http://127.0.0.1:3233", "_", "no-colon-secret-value");
    assert!(!format!("{odd:?}").contains("no-colon-secret-value"));
}

#[tokio::test]
async fn check_sends_basic_auth_to_the_namespace_list_over_plain_http() {
    let server = Server::start(vec![reply(200, json!(["guest"]))]);
    server.client().check().await.expect("check");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].target, "/api/v1/namespaces");
    let expected = base64::engine::general_purpose::STANDARD.encode(key());
    assert_eq!(
        seen[0].headers["authorization"],
        format!("Basic {expected}")
    );
}

#[tokio::test]
async fn endpoint_with_api_base_path_is_accepted() {
    let server = Server::start(vec![reply(200, json!(["guest"]))]);
    let client = client_for(&format!("{}/api/v1/", server.endpoint()), "guest", fast());
    client.check().await.expect("check");
    assert_eq!(server.seen()[0].target, "/api/v1/namespaces");
}

#[tokio::test]
async fn check_explains_a_wrong_key() {
    let server = Server::start(vec![error_reply(
        401,
        "The supplied authentication is invalid",
    )]);
    let err = server.client().check().await.expect_err("401");
    assert!(
        matches!(err, OpenWhiskError::Unauthorized { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("`openwhisk.api_key`"), "{text}");
    assert!(
        text.contains("The supplied authentication is invalid"),
        "{text}"
    );
    assert_clean(&err);
}

#[tokio::test]
async fn check_explains_an_unknown_namespace_and_a_missing_api() {
    let server = Server::start(vec![reply(200, json!(["guest"]))]);
    let client = client_for(&server.endpoint(), "someone", fast());
    let err = client.check().await.expect_err("namespace");
    assert!(matches!(err, OpenWhiskError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("`openwhisk.namespace`"), "{err}");
    assert!(err.to_string().contains("guest"), "{err}");

    let server = Server::start(vec![error_reply(404, "no route")]);
    let err = server.client().check().await.expect_err("404");
    assert!(err.to_string().contains("`openwhisk.endpoint`"), "{err}");
}

#[tokio::test]
async fn check_explains_an_unreachable_controller() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let client = client_for(&format!("http://127.0.0.1:{port}"), "_", fast());
    let started = Instant::now();
    let err = client.check().await.expect_err("unreachable");
    assert!(matches!(err, OpenWhiskError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("`openwhisk.endpoint`"), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_clean(&err);
}

#[tokio::test]
async fn put_package_overwrites_and_parses_the_package() {
    let server = Server::start(vec![reply(
        200,
        json!({"namespace": "guest", "name": "wisp", "version": "0.0.2", "publish": false,
               "binding": {}, "parameters": [], "annotations": [], "updated": 1_700_000_000_000u64}),
    )]);
    let pkg = server
        .client()
        .put_package("wisp", true)
        .await
        .expect("put");
    assert_eq!((pkg.name.as_str(), pkg.version.as_str()), ("wisp", "0.0.2"));
    assert_eq!(pkg.updated, Some(1_700_000_000_000));
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        seen[0].target,
        "/api/v1/namespaces/_/packages/wisp?overwrite=true"
    );
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].json(), json!({}));
}

#[tokio::test]
async fn put_package_that_exists_returns_the_existing_one() {
    let server = Server::start(vec![
        error_reply(409, "resource already exists"),
        reply(
            200,
            json!({"namespace": "guest", "name": "wisp", "version": "0.0.1",
                   "actions": [{"name": "runtime", "version": "0.0.3", "annotations": []}]}),
        ),
    ]);
    let pkg = server
        .client()
        .put_package("wisp", false)
        .await
        .expect("put");
    assert_eq!(pkg.actions.len(), 1);
    assert_eq!(pkg.actions[0].name, "runtime");
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].target,
        "/api/v1/namespaces/_/packages/wisp?overwrite=false"
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("GET", "/api/v1/namespaces/_/packages/wisp")
    );
}

#[tokio::test]
async fn delete_package_forces_reports_missing_and_conflicts() {
    let server = Server::start(vec![
        reply(200, json!({"name": "wisp"})),
        error_reply(404, "The requested resource does not exist."),
        error_reply(
            409,
            "Package not empty (contains 2 entities). Set force param or delete package contents.",
        ),
    ]);
    let client = server.client();
    assert!(client.delete_package("wisp", true).await.expect("delete"));
    assert!(!client.delete_package("wisp", true).await.expect("missing"));
    let err = client.delete_package("wisp", false).await.expect_err("409");
    assert!(matches!(err, OpenWhiskError::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("Package not empty"), "{err}");
    let seen = server.seen();
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(
        seen[0].target,
        "/api/v1/namespaces/_/packages/wisp?force=true"
    );
    assert_eq!(seen[2].target, "/api/v1/namespaces/_/packages/wisp");
}

#[tokio::test]
async fn list_actions_pages_through_the_package_with_a_trailing_slash() {
    let page = |n: usize, from: usize| {
        let items: Vec<Value> = (from..from + n)
            .map(|i| json!({"namespace": "guest/wisp", "name": format!("a{i}"), "version": "0.0.1",
                            "publish": false, "annotations": [], "exec": {"binary": false},
                            "limits": {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1},
                            "updated": 1}))
            .collect();
        reply(200, Value::Array(items))
    };
    let server = Server::start(vec![page(200, 0), page(5, 200)]);
    let actions = server.client().list_actions("wisp").await.expect("list");
    assert_eq!(actions.len(), 205);
    assert_eq!(actions[204].name, "a204");
    assert_eq!(actions[0].namespace, "guest/wisp");
    assert_eq!(actions[0].limits.memory, Some(256));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].target,
        "/api/v1/namespaces/_/actions/wisp/?limit=200&skip=0"
    );
    assert_eq!(
        seen[1].target,
        "/api/v1/namespaces/_/actions/wisp/?limit=200&skip=200"
    );
}

#[tokio::test]
async fn list_packages_reads_summaries() {
    let server = Server::start(vec![reply(
        200,
        json!([{"namespace": "guest", "name": "wisp", "version": "0.0.1", "publish": false,
                "binding": false, "annotations": [], "updated": 5}]),
    )]);
    let packages = server.client().list_packages().await.expect("list");
    assert_eq!(packages.len(), 1);
    assert_eq!(packages[0].name, "wisp");
    assert_eq!(
        server.seen()[0].target,
        "/api/v1/namespaces/_/packages?limit=200&skip=0"
    );
}

#[tokio::test]
async fn put_action_sends_a_blackbox_action_with_limits() {
    let server = Server::start(vec![reply(
        200,
        json!({"namespace": "guest/wisp", "name": "runtime", "version": "0.0.1", "publish": false,
               "exec": {"kind": "blackbox", "image": "127.0.0.1:5000/wisp-runtime:1", "binary": false},
               "limits": {"timeout": 300000, "memory": 512, "logs": 5, "concurrency": 4},
               "parameters": [{"key": "k", "value": 1}],
               "annotations": [{"key": "exec", "value": "blackbox"}], "updated": 9}),
    )]);
    let put = ActionPut {
        image: "127.0.0.1:5000/wisp-runtime:1".to_owned(),
        memory_mb: 512,
        timeout_ms: 300_000,
        concurrency: 4,
        logs_mb: Some(5),
        annotations: vec![("wisp-abi".to_owned(), json!(1))],
        parameters: vec![
            Parameter {
                key: "k".to_owned(),
                value: json!(1),
                init: false,
            },
            Parameter {
                key: "storage".to_owned(),
                value: json!("s3"),
                init: true,
            },
        ],
    };
    let action = server
        .client()
        .put_action("wisp", "runtime", &put, true)
        .await
        .expect("put");
    assert_eq!(action.namespace, "guest/wisp");
    assert_eq!(
        action.exec.image.as_deref(),
        Some("127.0.0.1:5000/wisp-runtime:1")
    );
    assert_eq!(action.limits.concurrency, Some(4));
    let seen = &server.seen()[0];
    assert_eq!(seen.method, "PUT");
    assert_eq!(
        seen.target,
        "/api/v1/namespaces/_/actions/wisp/runtime?overwrite=true"
    );
    let body = seen.json();
    assert_eq!(
        body["exec"],
        json!({"kind": "blackbox", "image": "127.0.0.1:5000/wisp-runtime:1"})
    );
    assert_eq!(
        body["limits"],
        json!({"timeout": 300000, "memory": 512, "logs": 5, "concurrency": 4})
    );
    assert_eq!(
        body["parameters"],
        json!([{"key": "k", "value": 1}, {"key": "storage", "value": "s3", "init": true}])
    );
    assert_eq!(
        body["annotations"],
        json!([{"key": "wisp-abi", "value": 1}])
    );
}

#[tokio::test]
async fn put_action_reports_the_server_error_text() {
    let server = Server::start(vec![error_reply(
        400,
        "memory size 1024 MB exceeds allowed threshold of 512 MB",
    )]);
    let mut put = ActionPut::new("img:1");
    put.memory_mb = 1024;
    let err = server
        .client()
        .put_action("wisp", "runtime", &put, false)
        .await
        .expect_err("400");
    assert!(
        matches!(err, OpenWhiskError::Rejected { status: 400, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("exceeds allowed threshold of 512 MB"),
        "{err}"
    );
    assert!(
        !server.seen()[0].json()["limits"]
            .as_object()
            .expect("limits")
            .contains_key("logs")
    );
    assert_clean(&err);
}

#[tokio::test]
async fn get_and_delete_action_treat_404_as_absent() {
    let server = Server::start(vec![
        reply(
            200,
            json!({"namespace": "guest/wisp", "name": "my action", "version": "0.0.1",
                          "exec": {"kind": "blackbox", "image": "i", "binary": false}}),
        ),
        error_reply(404, "The requested resource does not exist."),
        error_reply(404, "The requested resource does not exist."),
        reply(200, json!({"name": "runtime"})),
    ]);
    let client = server.client();
    let action = client.get_action("wisp", "my action").await.expect("get");
    assert_eq!(action.expect("some").exec.kind.as_deref(), Some("blackbox"));
    assert!(
        client
            .get_action("wisp", "gone")
            .await
            .expect("get")
            .is_none()
    );
    assert!(!client.delete_action("wisp", "gone").await.expect("delete"));
    assert!(
        client
            .delete_action("wisp", "runtime")
            .await
            .expect("delete")
    );
    let seen = server.seen();
    assert_eq!(
        seen[0].target,
        "/api/v1/namespaces/_/actions/wisp/my%20action?code=false"
    );
    assert_eq!(
        (seen[3].method.as_str(), seen[3].target.as_str()),
        ("DELETE", "/api/v1/namespaces/_/actions/wisp/runtime")
    );
}

#[tokio::test]
async fn invoke_posts_the_body_and_returns_the_activation_id() {
    let server = Server::start(vec![reply(202, json!({"activationId": ID}))]);
    let body = json!({"job": "j1", "calls": [0, 1, 2]});
    let id = server
        .client()
        .invoke("wisp", "runtime", &body)
        .await
        .expect("invoke");
    assert_eq!(id, ID);
    let seen = &server.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.target,
        "/api/v1/namespaces/_/actions/wisp/runtime?blocking=false"
    );
    assert_eq!(seen.json(), body);
}

#[tokio::test]
async fn invoke_takes_the_id_from_the_header_when_the_body_lacks_it() {
    let mut canned = reply(202, json!({}));
    canned
        .headers
        .push(("x-openwhisk-activation-id", ID.to_owned()));
    let server = Server::start(vec![canned]);
    let id = server
        .client()
        .invoke("wisp", "runtime", &json!({}))
        .await
        .expect("invoke");
    assert_eq!(id, ID);
}

#[tokio::test]
async fn invoke_backs_off_on_429_and_503_then_succeeds() {
    let server = Server::start(vec![
        error_reply(
            429,
            "Too many requests in the last minute (count: 61, allowed: 60).",
        ),
        error_reply(
            429,
            "Too many concurrent requests in flight (count: 31, allowed: 30).",
        ),
        error_reply(503, "Service Unavailable"),
        reply(202, json!({"activationId": ID})),
    ]);
    let id = server
        .client()
        .invoke("wisp", "runtime", &json!({"a": 1}))
        .await
        .expect("invoke");
    assert_eq!(id, ID);
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.json() == json!({"a": 1})));
}

#[tokio::test]
async fn invoke_gives_up_on_throttling_after_the_budget() {
    let script = (0..200)
        .map(|_| {
            error_reply(
                429,
                "Too many concurrent requests in flight (count: 31, allowed: 30).",
            )
        })
        .collect();
    let server = Server::start(script);
    let mut options = fast();
    options.throttle_budget = Duration::from_millis(200);
    let client = client_for(&server.endpoint(), "_", options);
    let started = Instant::now();
    let err = client
        .invoke("wisp", "runtime", &json!({}))
        .await
        .expect_err("throttled");
    let elapsed = started.elapsed();
    let OpenWhiskError::Throttled {
        attempts,
        waited,
        ref message,
    } = err
    else {
        panic!("{err:?}");
    };
    assert!(attempts >= 3, "{attempts}");
    assert_eq!(attempts as usize, server.seen().len());
    assert!(waited <= Duration::from_millis(200), "{waited:?}");
    assert!(
        message.contains("Too many concurrent requests"),
        "{message}"
    );
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn invoke_retries_other_5xx_a_bounded_number_of_times() {
    let server = Server::start(vec![
        error_reply(502, "Bad Gateway"),
        reply(202, json!({"activationId": ID})),
    ]);
    assert_eq!(
        server
            .client()
            .invoke("wisp", "runtime", &json!({}))
            .await
            .expect("invoke"),
        ID
    );
    assert_eq!(server.seen().len(), 2);

    let server = Server::start(
        (0..10)
            .map(|_| error_reply(500, "Internal Server Error"))
            .collect(),
    );
    let err = server
        .client()
        .invoke("wisp", "runtime", &json!({}))
        .await
        .expect_err("500");
    assert!(
        matches!(
            err,
            OpenWhiskError::ServerError {
                status: 500,
                attempts: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn invoke_is_not_resent_when_the_connection_breaks_after_sending() {
    let mut hang_up = reply(202, json!({"activationId": ID}));
    hang_up.hang_up = true;
    let server = Server::start(vec![hang_up, reply(202, json!({"activationId": ID}))]);
    let err = server
        .client()
        .invoke("wisp", "runtime", &json!({}))
        .await
        .expect_err("broken");
    assert!(matches!(err, OpenWhiskError::Interrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("may have been processed"), "{err}");
    assert_eq!(server.seen().len(), 1, "the invoke was sent twice");
    // A read is retried after the same failure.
    let mut hang_up = reply(200, json!({}));
    hang_up.hang_up = true;
    let server = Server::start(vec![hang_up, error_reply(404, "missing")]);
    assert!(
        server
            .client()
            .get_package("wisp")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn invoke_reports_a_missing_action() {
    let server = Server::start(vec![error_reply(
        404,
        "The requested resource does not exist.",
    )]);
    let err = server
        .client()
        .invoke("wisp", "nope", &json!({}))
        .await
        .expect_err("404");
    assert!(matches!(err, OpenWhiskError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("wisp/nope"), "{err}");
}

#[tokio::test]
async fn blocking_invoke_returns_records_for_success_and_failure() {
    let server = Server::start(vec![
        reply(200, record("success", true)),
        reply(502, record("application error", false)),
        reply(202, json!({"activationId": ID})),
    ]);
    let client = server.client();
    let wait = Duration::from_secs(5);
    let Invocation::Finished(rec) = client
        .invoke_blocking("wisp", "runtime", &json!({"probe": true}), wait)
        .await
        .expect("200")
    else {
        panic!("not finished");
    };
    assert_eq!(rec.activation_id, ID);
    assert!(rec.response.success);
    assert_eq!(rec.response.result, Some(json!({"n": 1})));
    assert_eq!(
        (rec.wait_time_ms(), rec.init_time_ms(), rec.timed_out()),
        (Some(12), Some(34), false)
    );
    assert_eq!(rec.duration, Some(250));

    let Invocation::Finished(rec) = client
        .invoke_blocking("wisp", "runtime", &json!({}), wait)
        .await
        .expect("502 with a record is an answer")
    else {
        panic!("not finished");
    };
    assert_eq!(rec.response.status, "application error");
    assert!(!rec.response.success);

    let running = client
        .invoke_blocking("wisp", "runtime", &json!({}), Duration::from_secs(120))
        .await
        .expect("202");
    assert!(
        matches!(running, Invocation::StillRunning(ref id) if id == ID),
        "{running:?}"
    );

    let seen = server.seen();
    assert_eq!(
        seen.len(),
        3,
        "a failed activation must not be invoked again"
    );
    assert_eq!(
        seen[0].target,
        "/api/v1/namespaces/_/actions/wisp/runtime?blocking=true&result=false&timeout=5000"
    );
    assert_eq!(seen[0].json(), json!({"probe": true}));
    assert!(
        seen[2].target.ends_with("timeout=60000"),
        "{}",
        seen[2].target
    );
}

#[tokio::test]
async fn blocking_invoke_passes_a_bare_array_result_on() {
    let mut canned = reply(200, json!([1, 2, 3]));
    canned
        .headers
        .push(("x-openwhisk-activation-id", ID.to_owned()));
    let server = Server::start(vec![canned]);
    let got = server
        .client()
        .invoke_blocking("wisp", "runtime", &json!({}), Duration::from_secs(1))
        .await
        .expect("invoke");
    let Invocation::BareResult {
        activation_id,
        success,
        result,
    } = got
    else {
        panic!("{got:?}");
    };
    assert_eq!(
        (activation_id.as_str(), success, result),
        (ID, true, json!([1, 2, 3]))
    );
}

#[tokio::test]
async fn activation_reads_records_logs_and_absence() {
    let server = Server::start(vec![
        error_reply(404, "The requested resource does not exist."),
        reply(200, record("success", true)),
        reply(
            200,
            json!({"logs": ["2024-01-01T00:00:00.000Z stdout: hello"]}),
        ),
    ]);
    let client = server.client();
    assert!(client.activation(ID).await.expect("404").is_none());
    let rec = client.activation(ID).await.expect("200").expect("some");
    assert_eq!(rec.annotation("path"), Some(&json!("guest/wisp/runtime")));
    let logs = client.activation_logs(ID).await.expect("logs");
    assert_eq!(logs, ["2024-01-01T00:00:00.000Z stdout: hello"]);
    let seen = server.seen();
    assert_eq!(
        seen[0].target,
        format!("/api/v1/namespaces/_/activations/{ID}")
    );
    assert_eq!(
        seen[2].target,
        format!("/api/v1/namespaces/_/activations/{ID}/logs")
    );
}

#[tokio::test]
async fn reads_retry_a_server_error() {
    let server = Server::start(vec![
        error_reply(500, "Internal Server Error"),
        reply(200, json!({"name": "wisp"})),
    ]);
    let pkg = server
        .client()
        .get_package("wisp")
        .await
        .expect("get")
        .expect("some");
    assert_eq!(pkg.name, "wisp");
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn slow_replies_time_out() {
    let mut slow = reply(200, json!({"name": "wisp"}));
    slow.delay = Duration::from_secs(3);
    let server = Server::start(vec![slow]);
    let mut options = fast();
    options.request_timeout = Duration::from_millis(300);
    let client = client_for(&server.endpoint(), "_", options);
    let started = Instant::now();
    let err = client.get_package("wisp").await.expect_err("timeout");
    assert!(matches!(err, OpenWhiskError::Timeout { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("/packages/wisp"), "{err}");
}

#[tokio::test]
async fn unauthorized_and_forbidden_replies_are_typed_and_clean() {
    let server = Server::start(vec![
        error_reply(401, "The supplied authentication is invalid"),
        error_reply(
            403,
            "The supplied authentication is not authorized to access this resource.",
        ),
    ]);
    let client = server.client();
    let err = client.list_packages().await.expect_err("401");
    assert!(
        matches!(err, OpenWhiskError::Unauthorized { .. }),
        "{err:?}"
    );
    assert_clean(&err);
    let err = client
        .invoke("wisp", "runtime", &json!({}))
        .await
        .expect_err("403");
    assert!(matches!(err, OpenWhiskError::Forbidden { .. }), "{err:?}");
    assert!(err.to_string().contains("`openwhisk.namespace`"), "{err}");
    assert_clean(&err);
    assert_eq!(server.seen().len(), 2, "401/403 must not be retried");
}

#[tokio::test]
async fn invalid_names_are_refused_before_any_request() {
    let server = Server::start(vec![]);
    let client = server.client();
    let long = "a".repeat(257);
    for name in ["", " lead", "trail ", "a/b", "-dash", "é", long.as_str()] {
        let err = client.get_action("wisp", name).await.expect_err(name);
        assert!(
            matches!(err, OpenWhiskError::InvalidName { .. }),
            "{name}: {err:?}"
        );
    }
    let err = client
        .put_package("default", false)
        .await
        .expect_err("reserved");
    assert!(err.to_string().contains("reserved"), "{err}");
    let err = client.activation("../../namespaces").await.expect_err("id");
    assert!(matches!(err, OpenWhiskError::InvalidName { .. }), "{err:?}");
    client
        .get_action("wisp", &"a".repeat(256))
        .await
        .expect_err("server has no replies");
    client
        .get_action("wisp", "ok name@x.y&z-1")
        .await
        .expect_err("server has no replies");
    assert_eq!(server.seen().len(), 2, "invalid names reached the server");
}
