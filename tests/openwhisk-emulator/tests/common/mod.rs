//! Helpers for the emulator's tests: a client with the guest key, paths,
//! polling for activations.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use wisp_openwhisk_emulator::{Emulator, EmulatorConfig, GUEST_KEY, Invoker};

/// The test action server of this crate.
pub fn test_action() -> Invoker {
    Invoker::Process {
        binary: env!("CARGO_BIN_EXE_wisp-openwhisk-test-action").into(),
    }
}

pub async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

pub async fn start_default() -> Emulator {
    start(EmulatorConfig {
        invoker: test_action(),
        ..EmulatorConfig::default()
    })
    .await
}

pub struct Api {
    pub client: Client,
    pub base: String,
}

impl Api {
    pub fn new(emulator: &Emulator) -> Self {
        Api {
            client: Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .expect("client"),
            base: emulator.url(),
        }
    }

    /// `…/api/v1/namespaces/_/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1/namespaces/_/{path}", self.base)
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let (user, pass) = GUEST_KEY.split_once(':').expect("uuid:secret");
        r.basic_auth(user, Some(pass))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.auth(self.client.get(self.url(path)))
            .send()
            .await
            .expect("GET")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.auth(self.client.delete(self.url(path)))
            .send()
            .await
            .expect("DELETE")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.auth(self.client.put(self.url(path)).json(body))
            .send()
            .await
            .expect("PUT")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.auth(self.client.post(self.url(path)).json(body))
            .send()
            .await
            .expect("POST")
    }

    /// Creates (or overwrites) a blackbox action.
    pub async fn action(&self, name: &str, extra: Value) -> Value {
        let mut body = json!({ "exec": { "kind": "blackbox", "image": "wisp/test-action:1" } });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .put(&format!("actions/{name}?overwrite=true"), &body)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "creating {name}");
        r.json().await.expect("action JSON")
    }

    /// Polls `GET activations/{id}` until it answers 200.
    pub async fn activation(&self, id: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.get(&format!("activations/{id}")).await;
            match r.status() {
                StatusCode::OK => return r.json().await.expect("record"),
                StatusCode::NOT_FOUND if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                s => panic!("activation {id}: {s}"),
            }
        }
    }
}

/// The value of annotation `key` in a record.
pub fn annotation<'a>(record: &'a Value, key: &str) -> Option<&'a Value> {
    record["annotations"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

/// Checks one stored log line: a timestamp padded to 30 columns, the
/// stream, the text; returns (stream, text).
pub fn parse_log_line(line: &str) -> (String, String) {
    assert!(line.len() > 31, "short log line {line:?}");
    let (time, rest) = line.split_at(30);
    assert!(
        time.trim_end().ends_with('Z') && time.contains('T'),
        "timestamp of {line:?}"
    );
    let rest = rest.strip_prefix(' ').expect("a space after the time");
    let (stream, text) = rest.split_once(": ").expect("stream: text");
    assert!(
        stream == "stdout" || stream == "stderr",
        "stream of {line:?}"
    );
    (stream.to_string(), text.to_string())
}

/// The repository's root.
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

fn cargo() -> std::process::Command {
    let mut c =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(repo());
    c
}

fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|| repo().join("target"))
}

/// wisp's action server, built for the host (`None`) or for a target
/// triple, once per test process per target.
pub fn wisp_action(target: Option<&str>) -> std::path::PathBuf {
    static BUILT: std::sync::Mutex<Vec<(Option<String>, std::path::PathBuf)>> =
        std::sync::Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, p)) = built.iter().find(|(t, _)| t.as_deref() == target) {
        return p.clone();
    }
    let mut cmd = cargo();
    cmd.args(["build", "-p", "wisp-runtime", "--bin", "wisp-action"]);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "wisp-action does not build");
    let path = match target {
        Some(t) => target_dir().join(t).join("debug/wisp-action"),
        None => target_dir().join("debug/wisp-action"),
    };
    assert!(path.is_file(), "{} is missing", path.display());
    built.push((target.map(str::to_string), path.clone()));
    path
}

/// The fault fixture module as base64, built once per test process.
pub fn faults_base64() -> String {
    use base64::Engine as _;
    static MODULE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MODULE
        .get_or_init(|| {
            let manifest = repo().join("tests/guests/faults/Cargo.toml");
            let status = cargo()
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
            let path = repo().join("tests/guests/target/wasm32-wasip1/release/faults.wasm");
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            base64::engine::general_purpose::STANDARD.encode(bytes)
        })
        .clone()
}
