//! The emulator's invoker, driving this crate's test action server as a
//! process: cold and warm starts, reply classification, timeouts, logs,
//! concurrency, the memory pool, faults and throttling.

mod common;

use std::time::{Duration, Instant};

use common::{Api, annotation, parse_log_line, start, start_default, test_action};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_openwhisk_emulator::{EmulatorConfig, Fault, GUEST_KEY, SENTINEL, Throttle};

fn activation_header(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-openwhisk-activation-id")
        .expect("x-openwhisk-activation-id")
        .to_str()
        .unwrap()
        .to_string()
}

fn is_activation_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn blocking_success_cold_then_warm() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("echo", json!({})).await;

    let r = api
        .post("actions/echo?blocking=true", &json!({"a": "❄ ☃ ❄"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = activation_header(&r);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["activationId"], json!(id));
    assert!(is_activation_id(&id));
    assert_eq!(rec["namespace"], "guest");
    assert_eq!(rec["subject"], "guest");
    assert_eq!(rec["name"], "echo");
    assert_eq!(rec["version"], "0.0.1");
    assert_eq!(rec["publish"], false);
    assert_eq!(rec["response"]["result"], json!({"a": "❄ ☃ ❄"}));
    assert_eq!(rec["response"]["status"], "success");
    assert_eq!(rec["response"]["success"], true);
    assert!(rec["response"]["size"].is_u64());
    assert!(rec.get("statusCode").is_none());
    assert_eq!(
        rec["logs"],
        json!([]),
        "a blocking reply comes before the logs"
    );
    assert_eq!(annotation(&rec, "path"), Some(&json!("guest/echo")));
    assert_eq!(annotation(&rec, "kind"), Some(&json!("blackbox")));
    assert_eq!(annotation(&rec, "timeout"), Some(&json!(false)));
    assert!(annotation(&rec, "waitTime").unwrap().is_u64());
    assert!(annotation(&rec, "initTime").unwrap().is_u64(), "cold start");
    assert_eq!(
        rec["duration"].as_u64().unwrap(),
        rec["end"].as_u64().unwrap() - rec["start"].as_u64().unwrap()
    );

    let r = api
        .post("actions/echo?blocking=true&result=true", &json!({"b": 2}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let warm_id = activation_header(&r);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"b": 2}));
    assert_eq!(em.containers_started(), 1, "the second run is warm");
    let warm = api.activation(&warm_id).await;
    assert!(
        annotation(&warm, "initTime").is_none(),
        "no initTime when warm"
    );
    assert!(annotation(&warm, "waitTime").is_some());

    // Logs: the A.4 line format, one line per stream, sentinels removed.
    let logs = warm["logs"].as_array().unwrap();
    let parsed: Vec<(String, String)> = logs
        .iter()
        .map(|l| parse_log_line(l.as_str().unwrap()))
        .collect();
    assert!(
        parsed.contains(&("stdout".into(), "hello stdout".into())),
        "{logs:?}"
    );
    assert!(
        parsed.contains(&("stderr".into(), "hello stderr".into())),
        "{logs:?}"
    );
    assert_eq!(parsed.len(), 2, "{logs:?}");
    assert!(!logs.iter().any(|l| l.as_str().unwrap().contains(SENTINEL)));

    let r = api.get(&format!("activations/{warm_id}/logs")).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"logs": logs}));
    let r = api.get(&format!("activations/{warm_id}/result")).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "success", "success": true, "result": {"b": 2}, "size": 7})
    );
    em.shutdown().await;
}

#[tokio::test]
async fn run_context_and_parameters() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.put(
        "packages/pkg",
        &json!({"parameters": [{"key": "p", "value": "pkg"}, {"key": "q", "value": "pkg"}]}),
    )
    .await;
    api.action(
        "pkg/who",
        json!({"parameters": [{"key": "q", "value": "action"}, {"key": "secret", "value": "s", "init": true}]}),
    )
    .await;
    let before = wisp_now_ms();
    let r = api
        .post(
            "actions/pkg/who?blocking=true&result=true",
            &json!({"whoami": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = activation_header(&r);
    let out: Value = r.json().await.unwrap();
    let ctx = &out["context"];
    assert_eq!(ctx["namespace"], "guest");
    assert_eq!(ctx["action_name"], "/guest/pkg/who");
    assert_eq!(ctx["action_version"], "0.0.1");
    assert_eq!(ctx["activation_id"], json!(id));
    assert!(
        ctx["transaction_id"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let deadline: u64 = ctx["deadline"]
        .as_str()
        .expect("deadline is a string")
        .parse()
        .unwrap();
    assert!(deadline >= before + 60_000 && deadline < before + 120_000);
    assert!(ctx.get("api_key").is_none(), "provide-api-key is false");
    assert_eq!(out["api_host"], json!(em.url()));
    assert_eq!(out["inits"], 1);

    // The value the action saw: package < action < payload, no init params.
    let r = api
        .post(
            "actions/pkg/who?blocking=true&result=true",
            &json!({"whoami": 1, "p": "payload"}),
        )
        .await;
    let out: Value = r.json().await.unwrap();
    assert_eq!(
        out["value"],
        json!({"whoami": 1, "p": "payload", "q": "action"})
    );
    assert_eq!(out["inits"], 1, "never a second /init on a warm container");
    let env = &out["init_env"];
    assert_eq!(env["secret"], "s", "init parameters go to /init's env");
    assert_eq!(env["__OW_NAMESPACE"], "guest");
    assert_eq!(env["__OW_ACTION_NAME"], "/guest/pkg/who");
    assert!(env["__OW_DEADLINE"].is_string());
    assert!(env.get("__OW_API_KEY").is_none());

    api.action(
        "keyed",
        json!({"annotations": [{"key": "provide-api-key", "value": true}]}),
    )
    .await;
    let r = api
        .post(
            "actions/keyed?blocking=true&result=true",
            &json!({"whoami": true}),
        )
        .await;
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["context"]["api_key"], GUEST_KEY);
    em.shutdown().await;
}

fn wisp_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn application_error_keeps_the_container() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("app", json!({})).await;
    let body = json!({"reply": {"status": 200, "body": "{\"error\":{\"code\":7}}"}});
    let r = api.post("actions/app?blocking=true", &body).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "application error");
    assert_eq!(rec["response"]["success"], false);
    assert_eq!(rec["response"]["result"], json!({"error": {"code": 7}}));
    let r = api
        .post("actions/app?blocking=true&result=true", &body)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"code": 7}})
    );
    assert_eq!(em.containers_started(), 1);
    em.shutdown().await;
}

#[tokio::test]
async fn developer_errors_replace_the_container() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("dev", json!({})).await;
    let cases = [
        (
            json!({"reply": {"status": 200, "body": "not a json object"}}),
            json!({"error": "The action did not produce a valid JSON or JSON Array response: not a json object"}),
        ),
        (
            json!({"reply": {"status": 502, "body": "{\"error\":\"The action did not return a dictionary or array.\"}"}}),
            json!({"error": "The action did not return a dictionary or array."}),
        ),
        (
            json!({"reply": {"status": 200, "body": "42"}}),
            json!({"error": "The action did not produce a valid JSON or JSON Array response: 42"}),
        ),
        (
            json!({"reply": {"status": 500, "body": "{\"x\":1}"}}),
            json!({"error": "The action did not produce a valid JSON or JSON Array response: {\"x\":1}"}),
        ),
        (
            json!({"chunked": true}),
            json!({"error": "The action did not produce a valid response and exited unexpectedly."}),
        ),
        (
            json!({"exit": true}),
            json!({"error": "The action did not produce a valid response and exited unexpectedly."}),
        ),
    ];
    for (i, (input, expected)) in cases.into_iter().enumerate() {
        let r = api.post("actions/dev?blocking=true", &input).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{input}");
        let id = activation_header(&r);
        let rec: Value = r.json().await.unwrap();
        assert_eq!(
            rec["response"]["status"], "action developer error",
            "{input}"
        );
        assert_eq!(rec["response"]["result"], expected, "{input}");
        assert_eq!(
            em.containers_started(),
            i + 1,
            "a new container per failure"
        );
        let stored = api.activation(&id).await;
        let last = stored["logs"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            last.ends_with("stderr: The action did not initialize or run as expected. Log data might be missing."),
            "{last}"
        );
    }
    // The replacement works.
    let r = api
        .post("actions/dev?blocking=true&result=true", &json!({"ok": 1}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(em.containers_started(), 7);
    em.shutdown().await;
}

#[tokio::test]
async fn activation_timeout_is_a_developer_error() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("slow", json!({"limits": {"timeout": 300}}))
        .await;
    let r = api
        .post("actions/slow?blocking=true", &json!({"sleep_ms": 3000}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "action developer error");
    assert_eq!(
        rec["response"]["result"],
        json!({"error": "The action exceeded its time limits of 300 milliseconds."})
    );
    assert_eq!(annotation(&rec, "timeout"), Some(&json!(true)));
    let r = api.post("actions/slow?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        em.containers_started(),
        2,
        "the timed-out container was destroyed"
    );
    em.shutdown().await;
}

#[tokio::test]
async fn non_blocking_and_blocking_past_the_wait() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("nap", json!({})).await;

    let r = api.post("actions/nap", &json!({"sleep_ms": 400})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = activation_header(&r);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"activationId": id})
    );
    assert_eq!(
        api.get(&format!("activations/{id}")).await.status(),
        StatusCode::NOT_FOUND,
        "not stored before it ends"
    );
    let rec = api.activation(&id).await;
    assert_eq!(rec["response"]["result"], json!({"sleep_ms": 400}));

    let started = Instant::now();
    let r = api
        .post(
            "actions/nap?blocking=true&timeout=100",
            &json!({"sleep_ms": 1500}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(started.elapsed() < Duration::from_millis(1400));
    let id = activation_header(&r);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"activationId": id})
    );
    let rec = api.activation(&id).await;
    assert_eq!(rec["response"]["status"], "success");
    em.shutdown().await;
}

#[tokio::test]
async fn oversized_result_is_an_application_error() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("big", json!({})).await;
    let r = api
        .post(
            "actions/big?blocking=true",
            &json!({"big": 1024 * 1024 + 100}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "application error");
    let error = rec["response"]["result"]["error"].as_str().unwrap();
    let total = 1024 * 1024 + 100 + r#"{"big":""}"#.len();
    let prefix = format!(
        "The action produced a response that exceeded the allowed length: {total} > 1048576 bytes. The truncated response was: {{\"big\":\"xxx"
    );
    assert!(error.starts_with(&prefix), "{}", &error[..200]);
    assert_eq!(
        error.len(),
        prefix.len() - r#"{"big":"xxx"#.len() + 1024 * 1024
    );
    assert_eq!(em.containers_started(), 1);
    let r = api.post("actions/big?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        em.containers_started(),
        1,
        "an application error keeps the container"
    );
    em.shutdown().await;
}

#[tokio::test]
async fn concurrency_shares_one_container() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("many", json!({"limits": {"concurrency": 3}}))
        .await;
    let started = Instant::now();
    let input = json!({"whoami": true, "sleep_ms": 700});
    let calls = (0..3).map(|_| api.post("actions/many?blocking=true&result=true", &input));
    let replies = futures::future::join_all(calls).await;
    let mut pids = Vec::new();
    for r in replies {
        assert_eq!(r.status(), StatusCode::OK);
        pids.push(r.json::<Value>().await.unwrap()["pid"].clone());
    }
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    assert_eq!(em.containers_started(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "runs overlapped"
    );

    api.action("single", json!({})).await;
    let input = json!({"whoami": true, "sleep_ms": 500});
    let calls = (0..2).map(|_| api.post("actions/single?blocking=true&result=true", &input));
    let replies = futures::future::join_all(calls).await;
    let mut pids = Vec::new();
    for r in replies {
        pids.push(r.json::<Value>().await.unwrap()["pid"].clone());
    }
    assert_ne!(pids[0], pids[1], "concurrency 1: one run per container");
    assert_eq!(em.containers_started(), 3);
    em.shutdown().await;
}

#[tokio::test]
async fn memory_pool_queues_and_evicts() {
    let em = start(EmulatorConfig {
        invoker: test_action(),
        user_memory_mb: 256,
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&em);
    api.action("one", json!({})).await;
    api.action("two", json!({})).await;
    let started = Instant::now();
    let input = json!({"sleep_ms": 500});
    let (a, b) = tokio::join!(
        api.post("actions/one?blocking=true&result=true", &input),
        api.post("actions/one?blocking=true&result=true", &input),
    );
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the second run waited for room in the pool"
    );
    assert_eq!(em.containers_started(), 1, "and then ran warm");
    // Another action needs the room: the idle container of `one` goes.
    let r = api.post("actions/two?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(em.containers_started(), 2);
    let r = api.post("actions/one?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(em.containers_started(), 3);
    em.shutdown().await;
}

#[tokio::test]
async fn idle_containers_are_removed_and_updates_start_fresh() {
    let em = start(EmulatorConfig {
        invoker: test_action(),
        idle_timeout: Duration::from_millis(200),
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&em);
    api.action("idle", json!({})).await;
    api.post("actions/idle?blocking=true", &json!({})).await;
    api.post("actions/idle?blocking=true", &json!({})).await;
    assert_eq!(em.containers_started(), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = api.post("actions/idle?blocking=true", &json!({})).await;
    let rec: Value = r.json().await.unwrap();
    assert!(annotation(&rec, "initTime").is_some());
    assert_eq!(em.containers_started(), 2);
    // A new version of the action never reuses the old container.
    api.action("idle", json!({"limits": {"timeout": 1000}}))
        .await;
    let r = api.post("actions/idle?blocking=true", &json!({})).await;
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["version"], "0.0.2");
    assert_eq!(em.containers_started(), 3);
    em.shutdown().await;
}

#[tokio::test]
async fn activation_lists_newest_first() {
    let em = start_default().await;
    let api = Api::new(&em);
    api.action("x", json!({})).await;
    api.put("packages/p", &json!({})).await;
    api.action("p/y", json!({})).await;
    let mut ids = Vec::new();
    for path in ["actions/x", "actions/p/y", "actions/x"] {
        let r = api.post(&format!("{path}?blocking=true"), &json!({})).await;
        let id = activation_header(&r);
        api.activation(&id).await;
        ids.push(id);
    }
    let list: Value = api.get("activations").await.json().await.unwrap();
    let got: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["activationId"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![&ids[2], &ids[1], &ids[0]]);
    assert_eq!(list[0]["statusCode"], 0);
    assert!(list[0].get("response").is_none(), "summaries");
    let r = api.get("activations?name=x&count=true").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"activations": 2}));
    let list: Value = api
        .get("activations?name=p/y&docs=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["response"]["status"], "success");
    let list: Value = api
        .get("activations?limit=1&skip=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["activationId"], json!(ids[1]));
    assert_eq!(
        api.get("activations?name=a/b/c").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.get("activations?count=true&docs=true").await.status(),
        StatusCode::BAD_REQUEST
    );
    em.shutdown().await;
}

#[tokio::test]
async fn injected_faults_and_throttling() {
    let em = start(EmulatorConfig {
        invoker: test_action(),
        throttle: Some(Throttle {
            invocations_per_minute: 4,
            concurrent_invocations: 1,
        }),
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&em);
    api.action("f", json!({})).await;

    em.inject(Fault::Throttled { count: 2 });
    for _ in 0..2 {
        let r = api.post("actions/f", &json!({})).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"],
            "Too many requests in the last minute (count: 5, allowed: 4)."
        );
        assert!(body["code"].is_string());
    }
    em.inject(Fault::Unavailable { count: 1 });
    let r = api.post("actions/f", &json!({})).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    // One in flight at a time.
    let r = api.post("actions/f", &json!({"sleep_ms": 600})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = api.post("actions/f", &json!({})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Too many concurrent requests in flight (count: 2, allowed: 1)."
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Four per minute: two more pass, the fifth is refused.
    for _ in 0..3 {
        let r = api.post("actions/f?blocking=true", &json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = api.post("actions/f", &json!({})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Too many requests in the last minute (count: 5, allowed: 4)."
    );
    em.shutdown().await;
}
