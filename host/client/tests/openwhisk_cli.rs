//! The OpenWhisk flow as a user runs it from the command line: build the
//! runtime image and push it to a real registry, deploy it, submit the
//! word count over S3, list, delete, clean. OpenWhisk itself cannot run on
//! these machines: the controller is wisp's **emulator**
//! (`tests/openwhisk-emulator`), which runs the image through the real
//! Docker engine the way OpenWhisk's invoker does. `scripts/test` starts
//! the engine, the registry and the S3 server; without them this test
//! fails and says so, unless `WISP_TEST_DOCKER=skip`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wisp_openwhisk_emulator::{Emulator, EmulatorConfig, GUEST_KEY, Invoker};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wisp(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .current_dir(repo())
        .env("WISP_CONFIG", config)
        .output()
        .expect("wisp runs")
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = wisp(config, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "wisp {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn services() -> Option<(String, String)> {
    if std::env::var("WISP_TEST_DOCKER").as_deref() == Ok("skip") {
        eprintln!("***** SKIPPED: the OpenWhisk flow through Docker (WISP_TEST_DOCKER=skip) *****");
        return None;
    }
    let s3 = std::env::var("WISP_TEST_S3_ENDPOINT").expect(
        "WISP_TEST_S3_ENDPOINT is not set: run the tests with scripts/test, which starts the \
         S3 server, the Docker engine and the registry",
    );
    let registry = std::env::var("WISP_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    Some((s3, registry))
}

#[tokio::test(flavor = "multi_thread")]
async fn build_deploy_submit_list_delete_and_clean_through_docker() {
    let Some((s3, registry)) = services() else {
        return;
    };
    // The default runtime, in the local registry: what a new user builds.
    let image = format!(
        "{registry}/wisp/runtime-openwhisk:{}",
        env!("CARGO_PKG_VERSION")
    );
    let emulator = Emulator::start(EmulatorConfig {
        invoker: Invoker::Docker,
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts (is the Docker engine running? scripts/docker.sh start)");
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = format!("wisp-cli-{:08x}", fastrand_u32());
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "wisp:\n  backend: openwhisk\n  storage: minio\n\
             minio:\n  endpoint: {s3}\n  access_key_id: minioadmin\n  secret_access_key: minioadmin\n  \
             storage_bucket: {bucket}\n  create_bucket: true\n\
             openwhisk:\n  endpoint: {}\n  api_key: {GUEST_KEY}\n  runtime: default\n  \
             docker_server: {registry}\n  \
             runtime_memory: 256\n  runtime_timeout: 120\n  runtime_concurrency: 4\n",
            emulator.url()
        ),
    )
    .expect("write config");

    let built = ok(&config, &["runtime", "build"]);
    assert_eq!(built.trim(), image);
    let deployed = ok(
        &config,
        &["runtime", "deploy", "default", "--memory", "512"],
    );
    assert!(deployed.contains("512 MB"), "{deployed}");
    let listed = ok(&config, &["runtime", "list"]);
    assert!(
        listed.contains(&image) && listed.contains("512 MB"),
        "{listed}"
    );

    // The job needs the 256 MB runtime of the config, which is deployed by
    // itself the first time.
    let out = ok(
        &config,
        &[
            "submit",
            "examples/wordcount",
            "--function",
            "count_words",
            "--data",
            "examples/data/first-folio",
            "--chunk-size",
            "256KiB",
            "--reduce",
            "merge_counts",
        ],
    );
    let counts: serde_json::Value =
        serde_json::from_str(out.trim()).expect("the reduce prints one JSON result");
    assert_eq!(
        counts["total_words"],
        833_138,
        "{}",
        &out[..out.len().min(300)]
    );
    assert_eq!(counts["distinct_words"], 28_772);
    assert!(emulator.containers_started() >= 1);

    let listed = ok(&config, &["runtime", "list"]);
    assert!(
        listed.contains("256 MB") && listed.contains("512 MB"),
        "{listed}"
    );
    let deleted = ok(&config, &["runtime", "delete", "all"]);
    assert_eq!(deleted.lines().count(), 2, "{deleted}");
    let listed = ok(&config, &["runtime", "list"]);
    assert_eq!(
        listed.lines().count(),
        1,
        "only the header is left: {listed}"
    );
    let cleaned = ok(&config, &["clean"]);
    assert!(cleaned.contains("removed"), "{cleaned}");

    // A runtime that is not in the registry fails the deploy and says how
    // to build it.
    let missing = format!("{registry}/wisp-cli/missing:1");
    let out = wisp(&config, &["runtime", "deploy", &missing]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("wisp runtime build"), "{stderr}");
    ok(&config, &["runtime", "delete", "all"]);
    emulator.shutdown().await;
}

fn fastrand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
}
