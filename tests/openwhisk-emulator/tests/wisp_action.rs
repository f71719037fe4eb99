//! The emulator driving wisp's real action server, `wisp-action`, as a
//! process (the stand-in for a container), with the `faults` fixture
//! module: cold and warm starts, logs, errors of both kinds, concurrency,
//! the activation context and the deadline.

mod common;

use std::time::{Duration, Instant};

use common::{Api, annotation, faults_base64, parse_log_line, start, wisp_action};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_openwhisk_emulator::{Emulator, EmulatorConfig, GUEST_KEY, Invoker, SENTINEL};

async fn emulator() -> Emulator {
    start(EmulatorConfig {
        invoker: Invoker::Process {
            binary: wisp_action(None),
        },
        ..EmulatorConfig::default()
    })
    .await
}

/// Creates action `name` running function `main` of the fixture module.
async fn module_action(api: &Api, name: &str, main: &str, extra: Value) {
    let mut body = json!({
        "exec": {"kind": "blackbox", "image": "wisp/runtime:test", "code": faults_base64(), "main": main},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = api
        .put(&format!("actions/{name}?overwrite=true"), &body)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let a: Value = r.json().await.unwrap();
    assert_eq!(a["exec"]["binary"], true, "a module is binary code");
}

fn activation_id(r: &reqwest::Response) -> String {
    r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn wisp_action_cold_warm_and_logs() {
    let em = emulator().await;
    let api = Api::new(&em);
    module_action(&api, "echo", "action_echo", json!({})).await;

    let r = api
        .post("actions/echo?blocking=true", &json!({"string": "❄ ☃ ❄"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["result"], json!({"string": "❄ ☃ ❄"}));
    assert_eq!(rec["response"]["status"], "success");
    assert!(annotation(&rec, "initTime").is_some(), "cold start");

    for input in [json!({"numbers": [42, 1]}), json!({"object": {"a": "A"}})] {
        let r = api.post("actions/echo?blocking=true", &input).await;
        assert_eq!(r.status(), StatusCode::OK);
        let id = activation_id(&r);
        let rec: Value = r.json().await.unwrap();
        assert_eq!(rec["response"]["result"], input);
        assert!(annotation(&rec, "initTime").is_none(), "warm");
        assert!(annotation(&rec, "waitTime").is_some());
        let stored = api.activation(&id).await;
        let lines: Vec<(String, String)> = stored["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| parse_log_line(l.as_str().unwrap()))
            .collect();
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![
                ("stderr".to_string(), "hello stderr".to_string()),
                ("stdout".to_string(), "hello stdout".to_string())
            ],
            "{lines:?}"
        );
        assert!(!stored.to_string().contains(SENTINEL));
    }
    assert_eq!(em.containers_started(), 1);

    // An array argument passes through untouched; an array result is bare.
    let r = api
        .post("actions/echo?blocking=true", &json!(["a", "b"]))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!(["a", "b"]));
    em.shutdown().await;
}

#[tokio::test]
async fn wisp_action_application_and_developer_errors() {
    let em = emulator().await;
    let api = Api::new(&em);
    module_action(&api, "shape", "action_shape", json!({})).await;

    let r = api
        .post("actions/shape?blocking=true", &json!({"shape": "error"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "application error");
    assert_eq!(rec["response"]["result"], json!({"error": {"code": 7}}));
    assert_eq!(em.containers_started(), 1);

    let r = api
        .post("actions/shape?blocking=true", &json!({"shape": "array"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        em.containers_started(),
        1,
        "an application error keeps the container"
    );

    let r = api
        .post("actions/shape?blocking=true", &json!({"shape": "text"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "action developer error");
    assert_eq!(
        rec["response"]["result"],
        json!({"error": "The action did not return a dictionary or array."})
    );
    let r = api
        .post("actions/shape?blocking=true", &json!({"shape": "array"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        em.containers_started(),
        2,
        "the developer error replaced the container"
    );

    module_action(&api, "fault", "action_fault", json!({})).await;
    let r = api
        .post(
            "actions/fault?blocking=true",
            &json!({"fault": "panic", "message": "boom"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "action developer error");
    let error = rec["response"]["result"]["error"].as_str().unwrap();
    assert!(error.contains("boom"), "{error}");
    let r = api
        .post("actions/fault?blocking=true", &json!({"fault": "none"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(em.containers_started(), 4);
    em.shutdown().await;
}

#[tokio::test]
async fn wisp_action_concurrent_runs_share_a_container() {
    let em = emulator().await;
    let api = Api::new(&em);
    module_action(
        &api,
        "sleep",
        "action_sleep",
        json!({"limits": {"concurrency": 4}}),
    )
    .await;
    let r = api
        .post(
            "actions/sleep?blocking=true",
            &json!({"ms": 1, "tag": "warm"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let started = Instant::now();
    let inputs: Vec<Value> = (0..4)
        .map(|i| json!({"ms": 500, "tag": format!("t{i}")}))
        .collect();
    let calls = inputs
        .iter()
        .map(|input| api.post("actions/sleep?blocking=true", input));
    let replies = futures::future::join_all(calls).await;
    let elapsed = started.elapsed();
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.status(), StatusCode::OK);
        let id = activation_id(&r);
        let rec: Value = r.json().await.unwrap();
        assert_eq!(
            rec["response"]["result"],
            json!({"tag": format!("t{i}"), "before": id, "after": id})
        );
    }
    assert_eq!(em.containers_started(), 1);
    assert!(
        elapsed < Duration::from_millis(1500),
        "4 runs of 500 ms overlapped in one container: {elapsed:?}"
    );
    em.shutdown().await;
}

#[tokio::test]
async fn wisp_action_sees_the_activation_context() {
    let em = emulator().await;
    let api = Api::new(&em);
    module_action(
        &api,
        "ctx",
        "action_context",
        json!({"annotations": [{"key": "provide-api-key", "value": true}]}),
    )
    .await;
    let r = api.post("actions/ctx?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = activation_id(&r);
    let rec: Value = r.json().await.unwrap();
    let ctx = &rec["response"]["result"];
    assert_eq!(ctx["api_host"], json!(em.url()));
    assert_eq!(ctx["api_key"], GUEST_KEY);
    assert_eq!(ctx["namespace"], "guest");
    assert_eq!(ctx["action_name"], "/guest/ctx");
    assert_eq!(ctx["action_version"], "0.0.1");
    assert_eq!(ctx["activation_id"], json!(id));
    assert!(ctx["deadline"].as_str().unwrap().parse::<u64>().is_ok());

    module_action(&api, "noctx", "action_context", json!({})).await;
    let r = api
        .post("actions/noctx?blocking=true&result=true", &json!({}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["api_key"], Value::Null);
    em.shutdown().await;
}

#[tokio::test]
async fn wisp_action_stops_a_runaway_call_at_the_deadline() {
    let em = emulator().await;
    let api = Api::new(&em);
    module_action(&api, "spin", "spin", json!({"limits": {"timeout": 2000}})).await;
    let started = Instant::now();
    let r = api.post("actions/spin?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(started.elapsed() < Duration::from_secs(10));
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "action developer error");
    assert!(
        rec["response"]["result"]["error"].is_string(),
        "{}",
        rec["response"]
    );
    em.shutdown().await;
}
