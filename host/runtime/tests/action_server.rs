//! `wisp-action` against OpenWhisk's action container protocol: the
//! conformance checklist of the protocol digest (§D), case by case, plus
//! concurrency and payload sizes.
//!
//! Every test starts the real binary as a child process on a free loopback
//! port, captures its stdout and stderr to count the activation sentinels,
//! and talks HTTP/1.1 to it over a raw TCP stream, so that each reply's
//! framing (status line, `Content-Type`, `Content-Length`, no chunked
//! encoding) is checked exactly. The guest module is the fault fixture
//! crate `tests/guests/faults`, built once per test process.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
const INIT_TWICE: &str = "Cannot initialize the action more than once.";
const NO_CODE: &str = "Missing main/no code to execute.";
const NOT_AN_OBJECT: &str = "The action did not return a dictionary or array.";
const BAD_ARGUMENT: &str = "The action did not receive a dictionary or array as an argument.";
const NOT_INITIALIZED: &str = "the action is not initialized: /init must succeed before /run";

/// The repository's root (this crate is `host/runtime`).
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/runtime lies two levels under the repository root")
}

/// The fault fixture module, built once per test process.
fn faults() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = repo().join("tests/guests/faults/Cargo.toml");
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "--manifest-path",
            ])
            .arg(&manifest)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "the faults fixture does not build");
        // Cargo builds where CARGO_TARGET_DIR says, when it is set.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| repo().join("tests/guests/target"), PathBuf::from);
        let path = target.join("wasm32-wasip1/release/faults.wasm");
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    })
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An `/init` body for the fixture module with `main` as its entry point.
fn init_body(main: &str) -> Value {
    json!({"value": {"name": "a", "main": main, "binary": true, "code": base64(faults())}})
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_millis() as u64
}

/// A reply, its framing already checked.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

/// One captured output stream of the child.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// The whole sentinel lines in the stream; every occurrence of the
    /// sentinel must be such a line.
    fn sentinels(&self) -> usize {
        let text = self.text();
        let lines = text
            .split_inclusive('\n')
            .filter(|l| *l == format!("{SENTINEL}\n"))
            .count();
        assert_eq!(
            text.matches(SENTINEL).count(),
            lines,
            "a sentinel is not a whole line ending in a newline:\n{text}"
        );
        lines
    }

    /// The stream cut at its sentinel lines: the output before the first,
    /// between the first and the second, and so on, and what follows the
    /// last.
    fn segments(&self) -> Vec<String> {
        let text = self.text();
        let mut segments = vec![String::new()];
        for line in text.split_inclusive('\n') {
            if line == format!("{SENTINEL}\n") {
                segments.push(String::new());
            } else {
                segments.last_mut().expect("never empty").push_str(line);
            }
        }
        segments
    }

    fn spawn_reader(&self, mut source: impl std::io::Read + Send + 'static) {
        let sink = self.0.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 64 * 1024];
            loop {
                match source.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&buffer[..n]),
                }
            }
        });
    }
}

/// A `wisp-action` child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: Captured,
    stderr: Captured,
}

impl Server {
    /// Starts the server with no extra environment.
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the server with `env` added to its environment, and waits
    /// until its port accepts TCP connections.
    fn start_with(env: &[(&str, &str)]) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(env!("CARGO_BIN_EXE_wisp-action"));
        command
            .env("WISP_ACTION_ADDR", addr.to_string())
            .env("WISP_PRELOAD_DIR", repo().join("no-such-preload-dir"))
            .env_remove("__OW_API_HOST")
            .env_remove("WISP_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("wisp-action starts");
        let stdout = Captured::default();
        let stderr = Captured::default();
        stdout.spawn_reader(child.stdout.take().expect("piped stdout"));
        stderr.spawn_reader(child.stderr.take().expect("piped stderr"));
        let mut server = Self {
            child,
            addr,
            stdout,
            stderr,
        };
        server.wait_for_port();
        server
    }

    fn wait_for_port(&mut self) {
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "wisp-action exited ({status}) before listening:\n{}",
                    self.stderr.text()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "wisp-action did not listen on {} within 60 s",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `body` to `path` over a fresh connection, as the invoker does,
    /// and checks the reply's framing.
    async fn post_raw(&self, path: &str, body: &[u8]) -> Reply {
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr).await.expect("connects");
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                self.addr,
                body.len()
            );
            stream.write_all(head.as_bytes()).await.expect("sends");
            stream.write_all(body).await.expect("sends");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("reads");
            raw
        };
        let raw = tokio::time::timeout(Duration::from_secs(120), exchange)
            .await
            .unwrap_or_else(|_| panic!("no reply to {path} within 120 s"));
        parse_reply(&raw)
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, body.to_string().as_bytes()).await
    }

    async fn init(&self, main: &str) -> Reply {
        self.post("/init", &init_body(main)).await
    }

    /// `/init` that must succeed.
    async fn init_ok(&self, main: &str) {
        let reply = self.init(main).await;
        assert_eq!((reply.status, &reply.body), (200, &json!({"ok": true})));
    }

    async fn run(&self, value: Value) -> Reply {
        self.post("/run", &json!({ "value": value })).await
    }

    /// Waits until each stream holds `expected` sentinels, then checks that
    /// neither holds more.
    async fn expect_sentinels(&self, expected: usize) {
        let start = Instant::now();
        while (self.stdout.sentinels() < expected || self.stderr.sentinels() < expected)
            && start.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Give a stray extra sentinel the time to show up.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            (self.stdout.sentinels(), self.stderr.sentinels()),
            (expected, expected),
            "sentinels in (stdout, stderr)\nstdout:\n{}\nstderr:\n{}",
            self.stdout.text(),
            self.stderr.text()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses an HTTP/1.1 reply and checks what the invoker needs of it:
/// `Content-Type: application/json`, an explicit `Content-Length` equal to
/// the body's length, no chunked encoding, never 204 nor 503, and a JSON
/// body.
fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("headers are UTF-8");
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_ne!(status, 204, "a 204 reads as no response");
    assert_ne!(status, 503, "503 means the container is shutting down");
    assert_eq!(values("content-type"), ["application/json"], "{head}");
    assert!(values("transfer-encoding").is_empty(), "{head}");
    assert_eq!(
        values("content-length"),
        [body.len().to_string().as_str()],
        "Content-Length must be explicit and exact: {head}"
    );
    let body: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "the body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    Reply { status, body }
}

/// Checks that a reply is an error object with exactly one key, `error`,
/// whose text it returns.
fn error_text(reply: &Reply) -> String {
    let object = reply.body.as_object().expect("an error is an object");
    assert_eq!(object.len(), 1, "{}", reply.body);
    object["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error is not a string: {}", reply.body))
        .to_owned()
}

// 1: cold init.
#[tokio::test]
async fn c01_cold_init() {
    let server = Server::start();
    let reply = server.init("action_echo").await;
    assert_eq!((reply.status, reply.body), (200, json!({"ok": true})));
    server.expect_sentinels(0).await;
}

// 2: a second init is refused, said in the log, and writes no sentinel.
#[tokio::test]
async fn c02_init_twice() {
    let server = Server::start();
    server.init_ok("action_echo").await;
    let reply = server.init("action_echo").await;
    assert_eq!(
        (reply.status, reply.body),
        (403, json!({"error": INIT_TWICE}))
    );
    server.expect_sentinels(0).await;
    let logged = format!("{}{}", server.stdout.text(), server.stderr.text());
    assert!(logged.contains(INIT_TWICE), "not in the log:\n{logged}");
    // The action that was initialized first is still the one that runs.
    let reply = server.run(json!({"still": "here"})).await;
    assert_eq!((reply.status, reply.body), (200, json!({"still": "here"})));
}

// 3: an init with no code is refused; a run after it too.
#[tokio::test]
async fn c03_init_empty_body() {
    let server = Server::start();
    let reply = server.post("/init", &json!({})).await;
    assert_eq!((reply.status, reply.body), (403, json!({"error": NO_CODE})));
    let reply = server.run(json!({})).await;
    assert_eq!(
        (reply.status, reply.body),
        (500, json!({"error": NOT_INITIALIZED}))
    );
    // Nulls count as absent.
    let reply = server
        .post("/init", &json!({"value": {"code": null, "env": null}}))
        .await;
    assert_eq!((reply.status, reply.body), (403, json!({"error": NO_CODE})));
}

// 4: a run before any init fabricates nothing.
#[tokio::test]
async fn c04_run_before_init() {
    let server = Server::start();
    let reply = server.run(json!({})).await;
    assert_eq!(
        (reply.status, reply.body),
        (500, json!({"error": NOT_INITIALIZED}))
    );
    server.expect_sentinels(1).await;
}

// 5: echo, with the logs before each run's sentinels.
#[tokio::test]
async fn c05_echo() {
    let server = Server::start();
    server.init_ok("action_echo").await;
    let inputs = [
        json!({"string": "hello"}),
        json!({"string": "❄ ☃ ❄"}),
        json!({"numbers": [42, 1]}),
        json!({"object": {"a": "A"}}),
    ];
    for (n, input) in inputs.into_iter().enumerate() {
        let reply = server.run(input.clone()).await;
        assert_eq!((reply.status, reply.body), (200, input));
        server.expect_sentinels(n + 1).await;
    }
    for (stream, line) in [
        (&server.stdout, "hello stdout\n"),
        (&server.stderr, "hello stderr\n"),
    ] {
        let segments = stream.segments();
        assert_eq!(segments.len(), 5, "{segments:?}");
        for segment in &segments[..4] {
            assert!(
                segment.ends_with(line) && segment.matches(line).count() == 1,
                "each run's {line:?} comes right before its sentinel: {segments:?}"
            );
        }
        assert_eq!(segments[4], "", "nothing after the last sentinel");
    }
}

// 6: an entry point other than `main`; an entry point the module lacks.
#[tokio::test]
async fn c06_other_entry_point() {
    let server = Server::start();
    server.init_ok("echo").await;
    let reply = server.run(json!({"string": "hello"})).await;
    assert_eq!(
        (reply.status, reply.body),
        (200, json!({"string": "hello"}))
    );

    let server = Server::start();
    let reply = server.init("no_such_function").await;
    assert_eq!(reply.status, 502);
    let text = error_text(&reply);
    assert!(
        text.starts_with("the module has no function `no_such_function`; it has: ")
            && text.contains("action_echo"),
        "{text}"
    );
    let reply = server.run(json!({})).await;
    assert_eq!(reply.status, 500);
}

/// A server initialized with `action_shape`, the reply to `shape`, and the
/// sentinels it left.
async fn shape(shape: &str) -> Reply {
    let server = Server::start();
    server.init_ok("action_shape").await;
    let reply = server.run(json!({ "shape": shape })).await;
    server.expect_sentinels(1).await;
    reply
}

// 7: a result that is not an object: here a text.
#[tokio::test]
async fn c07_result_not_json() {
    let reply = shape("text").await;
    assert_eq!(
        (reply.status, reply.body),
        (502, json!({"error": NOT_AN_OBJECT}))
    );
}

// 8: scalar results.
#[tokio::test]
async fn c08_scalar_result() {
    for kind in ["number", "string"] {
        let reply = shape(kind).await;
        assert_eq!(
            (reply.status, reply.body),
            (502, json!({"error": NOT_AN_OBJECT})),
            "{kind}"
        );
    }
}

// 9: an array result.
#[tokio::test]
async fn c09_array_result() {
    let reply = shape("array").await;
    assert_eq!((reply.status, reply.body), (200, json!(["a", "b"])));
}

// 10: an array input.
#[tokio::test]
async fn c10_array_input() {
    let server = Server::start();
    server.init_ok("action_echo").await;
    let reply = server.run(json!(["a", "b"])).await;
    assert_eq!((reply.status, reply.body), (200, json!(["a", "b"])));
    server.expect_sentinels(1).await;
}

// 11: an application error is a 200; so is a function's own error.
#[tokio::test]
async fn c11_application_error() {
    let reply = shape("error").await;
    assert_eq!(
        (reply.status, reply.body),
        (200, json!({"error": {"code": 7}}))
    );
    let reply = shape("no such").await;
    assert_eq!(
        (reply.status, reply.body),
        (200, json!({"error": "no such shape: \"no such\""}))
    );
}

// 12: the activation context, with `deadline` as a string and as a number.
#[tokio::test]
async fn c12_activation_context() {
    let server = Server::start_with(&[("__OW_API_HOST", "xyz")]);
    server.init_ok("action_context").await;
    let context = |deadline: Value| {
        json!({
            "value": {},
            "api_key": "abc",
            "namespace": "zzz",
            "action_name": "xxx",
            "action_version": "0.0.1",
            "activation_id": "iii",
            "deadline": deadline,
        })
    };
    let expected = |deadline: &str| {
        json!({
            "api_host": "xyz",
            "api_key": "abc",
            "namespace": "zzz",
            "action_name": "xxx",
            "action_version": "0.0.1",
            "activation_id": "iii",
            "deadline": deadline,
        })
    };
    let future = (now_ms() + 60_000).to_string();
    for (sent, seen) in [
        (json!("123"), "123"),
        (json!(123), "123"),
        (json!(future), future.as_str()),
        (
            json!(future.parse::<u64>().expect("a number")),
            future.as_str(),
        ),
    ] {
        let reply = server.post("/run", &context(sent.clone())).await;
        assert_eq!(
            (reply.status, reply.body),
            (200, expected(seen)),
            "deadline {sent}"
        );
    }
    // Context is per activation: a run without it sees none of the last.
    let reply = server.run(json!({})).await;
    assert_eq!(
        (reply.status, reply.body),
        (
            200,
            json!({
                "api_host": "xyz",
                "api_key": null,
                "namespace": null,
                "action_name": null,
                "action_version": null,
                "activation_id": null,
                "deadline": null,
            })
        )
    );
    server.expect_sentinels(5).await;
}

// 13: the init environment reaches every run.
#[tokio::test]
async fn c13_init_env() {
    let server = Server::start();
    let mut body = init_body("action_env");
    body["value"]["env"] = json!({"SOME_VAR": "xyz", "ANOTHER_VAR": ""});
    let reply = server.post("/init", &body).await;
    assert_eq!((reply.status, reply.body), (200, json!({"ok": true})));
    for _ in 0..2 {
        let reply = server.run(json!(["SOME_VAR", "ANOTHER_VAR"])).await;
        assert_eq!(
            (reply.status, reply.body),
            (200, json!({"SOME_VAR": "xyz", "ANOTHER_VAR": ""}))
        );
    }
}

// 14: a panic and a trap fail their run alone.
#[tokio::test]
async fn c14_trap_and_panic() {
    let server = Server::start();
    server.init_ok("action_fault").await;

    let reply = server
        .run(json!({"fault": "panic", "message": "boom"}))
        .await;
    assert_eq!(reply.status, 502);
    let text = error_text(&reply);
    assert!(
        text.starts_with("the function panicked at ") && text.ends_with(": boom"),
        "{text}"
    );
    server.expect_sentinels(1).await;

    let reply = server.run(json!({"fault": "unreachable"})).await;
    assert_eq!(reply.status, 502);
    let text = error_text(&reply);
    assert!(
        text.starts_with("the function trapped: ") && text.contains("unreachable"),
        "{text}"
    );
    server.expect_sentinels(2).await;

    let reply = server.run(json!({"fault": "none"})).await;
    assert_eq!((reply.status, reply.body), (200, json!({"fault": "none"})));
    server.expect_sentinels(3).await;
}

// 15: a run that would never end is stopped at its deadline, with a 502
// that names the time limit.
#[tokio::test]
async fn c15_deadline() {
    let server = Server::start();
    server.init_ok("spin").await;
    for round in 1..=2 {
        let start = Instant::now();
        let deadline = now_ms() + 500;
        let reply = server
            .post(
                "/run",
                &json!({"value": {}, "deadline": deadline.to_string()}),
            )
            .await;
        let finished = now_ms();
        assert_eq!(reply.status, 502, "{}", reply.body);
        let text = error_text(&reply);
        assert!(
            text.starts_with("the call ran past its time limit of "),
            "{text}"
        );
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "stopped after {:?}, long before its deadline",
            start.elapsed()
        );
        // The invoker's own timeout ends at the deadline: the cause must
        // reach it before then.
        assert!(
            finished < deadline,
            "answered {} ms after the deadline",
            finished - deadline
        );
        server.expect_sentinels(round).await;
    }
}

// 16: framing (checked on every reply by `parse_reply`), the port before
// init, replies to what is not the protocol.
#[tokio::test]
async fn c16_framing_and_port() {
    let server = Server::start();
    // `start` waited for the port to take a TCP connection; it still does,
    // bare, before any `/init`, as a health ping expects.
    for _ in 0..3 {
        let probe = TcpStream::connect(server.addr).await.expect("accepts TCP");
        drop(probe);
    }
    let reply = server.post("/nothing", &json!({})).await;
    assert_eq!(reply.status, 404);
    error_text(&reply);
    let reply = server.post_raw("/init", b"{not json").await;
    assert_eq!(reply.status, 400);
    assert!(
        error_text(&reply).starts_with("Error unmarshaling request: "),
        "{}",
        reply.body
    );
    server.init_ok("action_echo").await;
    let reply = server.post_raw("/run", b"{not json").await;
    assert_eq!(reply.status, 400);
    assert!(
        error_text(&reply).starts_with("Error unmarshaling request: "),
        "{}",
        reply.body
    );
    let reply = server.run(json!("a string")).await;
    assert_eq!(
        (reply.status, reply.body),
        (404, json!({"error": BAD_ARGUMENT}))
    );
    let reply = server.post("/run", &json!({})).await;
    assert_eq!((reply.status, reply.body), (200, json!({})));
    server.expect_sentinels(3).await;
}

// Overlapping runs: in parallel, each with its own context, one sentinel
// pair each, and each run's log in one piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs() {
    let server = Arc::new(Server::start());
    server.init_ok("action_sleep").await;
    // A first run warms the module up, so that the timing below measures
    // overlap rather than a cold start.
    let reply = server.run(json!({"ms": 1, "tag": "warm"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.expect_sentinels(1).await;

    let start = Instant::now();
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let body = json!({
                    "value": {"ms": 200, "tag": format!("t{i}")},
                    "activation_id": format!("{i:032x}"),
                    "deadline": (now_ms() + 60_000).to_string(),
                });
                server.post("/run", &body).await
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let reply = run.await.expect("the run's task");
        let id = format!("{i:032x}");
        assert_eq!(
            (reply.status, reply.body),
            (
                200,
                json!({"tag": format!("t{i}"), "before": id, "after": id})
            )
        );
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_millis(1000),
        "8 overlapping runs of 200 ms took {elapsed:?}"
    );
    server.expect_sentinels(9).await;
    for stream in [&server.stdout, &server.stderr] {
        let segments = stream.segments();
        for i in 0..8 {
            let begin = format!("begin t{i}\n");
            let end = format!("begin t{i}\nend t{i}\n");
            let holding: Vec<_> = segments.iter().filter(|s| s.contains(&begin)).collect();
            assert_eq!(holding.len(), 1, "t{i} logged once: {segments:?}");
            assert!(
                holding[0].contains(&end),
                "t{i}'s log is in one piece: {segments:?}"
            );
        }
        assert_eq!(segments.last().map(String::as_str), Some(""));
        // Each run's own sentinel ends its log: no segment holds two runs.
        for segment in &segments {
            assert!(
                segment.matches("begin ").count() <= 1,
                "two runs' logs before one sentinel: {segments:?}"
            );
        }
    }
}

// The harness's large input: a 1,048,561-character string echoes back.
#[tokio::test]
async fn large_input() {
    let server = Server::start();
    server.init_ok("action_echo").await;
    let large: String = (0..1_048_561)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let input = json!({ "arg": large });
    let reply = server.run(input.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body == input,
        "the large input did not come back intact"
    );
    server.expect_sentinels(1).await;
}

/// `module` with a custom section named `name` holding `size` bytes.
fn with_custom_section(module: &[u8], name: &str, size: usize) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.resize(payload.len() + size, 0x5a);
    let mut out = module.to_vec();
    out.push(0);
    leb128(payload.len(), &mut out);
    out.extend_from_slice(&payload);
    out
}

// An `/init` body over 50 MB (a module padded with a custom section) is
// accepted, and the module runs.
#[tokio::test]
async fn large_init_body() {
    let module = with_custom_section(faults(), "wisp-test-padding", 38 << 20);
    let body = json!({"value": {"name": "a", "main": "action_echo", "binary": true, "code": base64(&module)}})
        .to_string();
    assert!(body.len() > 50_000_000, "{} bytes", body.len());
    let server = Server::start();
    let reply = server.post_raw("/init", body.as_bytes()).await;
    assert_eq!((reply.status, reply.body), (200, json!({"ok": true})));
    let reply = server.run(json!({"big": "init"})).await;
    assert_eq!((reply.status, reply.body), (200, json!({"big": "init"})));
}

/// The stream readers hold no lock across a read, so this only checks that
/// the capture works at all, before any case relies on it.
#[test]
fn capture_sees_the_child_output() {
    let mut child = Command::new("sh")
        .args(["-c", &format!("echo one; echo {SENTINEL}; echo two >&2")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let out = Captured::default();
    out.spawn_reader(child.stdout.take().expect("piped"));
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)
        .expect("reads");
    child.wait().expect("sh ends");
    let start = Instant::now();
    while out.sentinels() < 1 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(out.sentinels(), 1);
    assert_eq!(out.segments(), ["one\n", ""]);
    assert_eq!(err, "two\n");
}

// The init environment carries the first activation's context (`__OW_*`
// variables); every run must see its own context instead.
#[tokio::test]
async fn run_context_overrides_init_env() {
    let server = Server::start_with(&[("__OW_API_HOST", "xyz")]);
    let mut body = init_body("action_context");
    body["value"]["env"] = json!({
        "__OW_NAMESPACE": "first-ns",
        "__OW_ACTION_NAME": "/first-ns/a",
        "__OW_ACTION_VERSION": "0.0.1",
        "__OW_ACTIVATION_ID": "11111111111111111111111111111111",
        "__OW_DEADLINE": "1",
    });
    let reply = server.post("/init", &body).await;
    assert_eq!((reply.status, reply.body), (200, json!({"ok": true})));
    let deadline = (now_ms() + 60_000).to_string();
    let reply = server
        .post(
            "/run",
            &json!({
                "value": {},
                "namespace": "guest",
                "action_name": "/guest/a",
                "action_version": "0.0.2",
                "activation_id": "22222222222222222222222222222222",
                "deadline": deadline,
            }),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body),
        (
            200,
            json!({
                "api_host": "xyz",
                "api_key": null,
                "namespace": "guest",
                "action_name": "/guest/a",
                "action_version": "0.0.2",
                "activation_id": "22222222222222222222222222222222",
                "deadline": deadline,
            })
        )
    );
}

// A deadline that has already passed (the harness sends `123`) does not
// stop a call that takes a little while.
#[tokio::test]
async fn past_deadline_runs_under_the_default_limit() {
    let server = Server::start();
    server.init_ok("action_sleep").await;
    let reply = server
        .post(
            "/run",
            &json!({"value": {"ms": 100, "tag": "late"}, "activation_id": "iii", "deadline": "123"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.body),
        (200, json!({"tag": "late", "before": "iii", "after": "iii"}))
    );
}
