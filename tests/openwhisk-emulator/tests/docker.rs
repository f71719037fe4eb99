//! The emulator in Docker mode: wisp's action server in a `FROM scratch`
//! image, run through the engine on the host network. Set
//! `WISP_TEST_DOCKER=skip` where no engine runs; otherwise a missing engine
//! fails the test.

mod common;

use std::process::Command;

use common::{Api, annotation, faults_base64, parse_log_line, start, wisp_action};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wisp_openwhisk_emulator::{EmulatorConfig, Invoker};

/// A tag other than `latest`, in a loopback registry: the pull is tried
/// (and fails quietly without a registry) and the local image is used.
const IMAGE: &str = "127.0.0.1:5000/wisp-openwhisk-emulator-test:1";

fn skipped() -> bool {
    if std::env::var("WISP_TEST_DOCKER").as_deref() == Ok("skip") {
        eprintln!(
            "\n*** SKIPPED: WISP_TEST_DOCKER=skip, the emulator's Docker mode is NOT tested ***\n"
        );
        return true;
    }
    false
}

fn build_image() {
    let binary = wisp_action(Some("x86_64-unknown-linux-musl"));
    let dir = std::env::temp_dir().join(format!("wisp-emulator-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&binary, dir.join("wisp-action")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY wisp-action /wisp-action\nENTRYPOINT [\"/wisp-action\"]\n",
    )
    .unwrap();
    let status = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&dir)
        .status()
        .expect("the docker CLI runs (set WISP_TEST_DOCKER=skip where there is no engine)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "docker build of {IMAGE} failed");
}

/// The emulator's containers of this test's image: other tests run
/// emulators of their own, with other images, at the same time.
fn labelled_containers() -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=wisp-openwhisk-emulator"])
        .args(["--filter", &format!("ancestor={IMAGE}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn docker_mode_runs_wisp_action_containers() {
    if skipped() {
        return;
    }
    build_image();
    let before = labelled_containers();
    let em = start(EmulatorConfig {
        invoker: Invoker::Docker,
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&em);
    let code = faults_base64();
    for (name, main) in [("echo", "action_echo"), ("shape", "action_shape")] {
        let body =
            json!({"exec": {"kind": "blackbox", "image": IMAGE, "code": code, "main": main}});
        let r = api.put(&format!("actions/{name}"), &body).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    let r = api
        .post("actions/echo?blocking=true", &json!({"a": 1}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["result"], json!({"a": 1}));
    assert!(annotation(&rec, "initTime").is_some());
    // The container is free again once its logs are collected.
    api.activation(&id).await;
    let r = api
        .post("actions/echo?blocking=true", &json!({"b": 2}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = r.headers()["x-openwhisk-activation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(em.containers_started(), 1, "warm reuse");
    let stored = api.activation(&id).await;
    let mut lines: Vec<(String, String)> = stored["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| parse_log_line(l.as_str().unwrap()))
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ("stderr".to_string(), "hello stderr".to_string()),
            ("stdout".to_string(), "hello stdout".to_string())
        ]
    );

    let r = api
        .post("actions/shape?blocking=true", &json!({"shape": "number"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["response"]["status"], "action developer error");
    let r = api
        .post("actions/shape?blocking=true", &json!({"shape": "array"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        em.containers_started(),
        3,
        "the failed container was replaced"
    );
    assert!(labelled_containers() > before);

    // `latest` must be pulled; with no registry that is fatal.
    let missing = "127.0.0.1:5000/wisp-openwhisk-emulator-missing:latest";
    let body = json!({"exec": {"kind": "blackbox", "image": missing}});
    assert_eq!(
        api.put("actions/missing", &body).await.status(),
        StatusCode::OK
    );
    let r = api.post("actions/missing?blocking=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(
        rec["response"]["result"],
        json!({"error": format!("Failed to pull container image '{missing}'.")})
    );

    em.shutdown().await;
    assert_eq!(
        labelled_containers(),
        before,
        "shutdown removed its containers"
    );
}
