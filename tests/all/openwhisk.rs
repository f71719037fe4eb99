//! Jobs on OpenWhisk, end to end, against wisp's **emulator** of the
//! OpenWhisk controller and invoker (OpenWhisk itself cannot run on these
//! machines; `tests/openwhisk-emulator` says how faithful it is). Here the
//! emulator runs the real action server as a process in place of the
//! runtime container; the Docker half, with the real image pulled from a
//! real registry, is in `openwhisk_docker`.

use std::time::Duration;

use serde_json::json;
use wisp::config::{BackendKind, StorageKind};
use wisp::openwhisk::{Runtimes, Selection};
use wisp::{Config, Error, Failure, FunctionExecutor};
use wisp_openwhisk_emulator::{Emulator, EmulatorConfig, GUEST_KEY, Invoker};
use wisp_tests::{action_binary, crate_dir, faults, module};

/// The image name the runtime is deployed with; the process invoker runs
/// the action binary whatever the image.
const IMAGE: &str = "127.0.0.1:5000/wisp-test/runtime:process";

pub(crate) async fn emulator() -> Emulator {
    emulator_with(EmulatorConfig::default()).await
}

/// An emulator that removes a container idle for a second, so that a test
/// can have the next call start a fresh one (see [`no_containers`]).
async fn quickly_idle_emulator() -> Emulator {
    emulator_with(EmulatorConfig {
        idle_timeout: Duration::from_secs(1),
        ..EmulatorConfig::default()
    })
    .await
}

async fn emulator_with(config: EmulatorConfig) -> Emulator {
    Emulator::start(EmulatorConfig {
        invoker: Invoker::Process {
            binary: action_binary(),
        },
        ..config
    })
    .await
    .expect("the emulator starts")
}

pub(crate) fn config(emulator: &Emulator, dir: &std::path::Path) -> Config {
    let mut config = Config {
        backend: BackendKind::Openwhisk,
        storage_dir: dir.join("storage"),
        storage_bucket: format!("wisp-ow-{:08x}", fastrand::u32(..)),
        runtime_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    config.openwhisk.endpoint = Some(emulator.url());
    config.openwhisk.api_key = Some(GUEST_KEY.to_owned());
    config.openwhisk.runtime = Some(IMAGE.to_owned());
    config.openwhisk.runtime_concurrency = Some(4);
    config
}

async fn executor(config: Config) -> FunctionExecutor {
    FunctionExecutor::builder()
        .config(config)
        .build()
        .await
        .expect("executor starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_map_runs_as_batches_of_activations_and_every_result_comes_back() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.openwhisk.calls_per_activation = Some(25);
    let exec = executor(config).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futures = exec
        .map(&f, "add", (0..300i64).map(|i| (i, 1000)))
        .await
        .expect("submitted");
    let sums: Vec<i64> = exec.get_results(&futures).await.expect("results");
    assert_eq!(sums, (0..300).map(|i| i + 1000).collect::<Vec<_>>());
    // 300 calls in batches of 25: twelve activations, on few containers.
    assert!(
        (1..=4).contains(&emulator.containers_started()),
        "{} containers",
        emulator.containers_started()
    );
    for future in &futures[..3] {
        let status = future.status().expect("finished");
        assert!(status.worker.starts_with("openwhisk:"), "{}", status.worker);
    }
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn function_errors_panics_and_limits_fail_their_own_calls_only() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = executor(config(&emulator, dir.path())).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let ok = exec
        .call_async(&f, "echo", json!({"a": 1}))
        .await
        .expect("submit");
    let failed = exec
        .call_async(&f, "fail", "no luck")
        .await
        .expect("submit");
    let panicked = exec.call_async(&f, "panic", "boom").await.expect("submit");
    let echoed: serde_json::Value = exec.get_result(&ok).await.expect("echo");
    assert_eq!(echoed, json!({"a": 1}));
    let err = exec.get_result::<()>(&failed).await.expect_err("fails");
    assert!(err.to_string().contains("no luck"), "{err}");
    let err = exec.get_result::<()>(&panicked).await.expect_err("panics");
    assert!(err.to_string().contains("boom"), "{err}");
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_the_activation_deadline_leaves_no_time_for_fail_as_lost() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.runtime_timeout = Duration::from_secs(3);
    config.openwhisk.calls_per_activation = Some(6);
    let exec = executor(config).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    // Six calls of 1 s in one activation of 3 s: the first ones run, the
    // rest are recorded as lost before the platform would kill it.
    let futures = exec
        .map(&f, "sleep_ms", [1000u64; 6])
        .await
        .expect("submitted");
    let outcome = exec
        .wait(
            &futures,
            wisp::WaitFor::AllCompleted,
            Some(Duration::from_secs(60)),
        )
        .await;
    assert!(outcome.pending.is_empty(), "every call ends");
    let mut succeeded = 0;
    let mut lost = 0;
    for future in &futures {
        let status = future.status().expect("ended");
        match &status.error {
            None => succeeded += 1,
            Some(Failure::Lost { message }) => {
                assert!(message.contains("deadline"), "{message}");
                lost += 1;
            }
            // A call that started with less time left than it needed is
            // stopped at the deadline like any call at its time limit.
            Some(Failure::Call(wisp::CallError::Timeout { .. })) => {}
            Some(other) => panic!("unexpected failure: {other}"),
        }
    }
    assert!(succeeded >= 1 && lost >= 1, "{succeeded} ran, {lost} lost");
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runtimes_deploy_list_update_delete_and_clean() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(&emulator, dir.path());
    let storage = wisp::storage::open(&config).await.expect("storage");
    let runtimes = Runtimes::new(&config, storage.clone()).expect("runtimes");
    assert!(runtimes.list().await.expect("list").is_empty());
    let small = runtimes.deploy(IMAGE, 256).await.expect("deploy 256");
    let large = runtimes.deploy(IMAGE, 512).await.expect("deploy 512");
    let other = "127.0.0.1:5000/wisp-test/other:2";
    runtimes
        .deploy(other, 256)
        .await
        .expect("deploy another image");
    let listed = runtimes.list().await.expect("list");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.contains(&small), "{listed:?}");
    assert!(listed.contains(&large), "{listed:?}");
    assert!(listed.iter().any(|r| r.image == other), "{listed:?}");
    assert_eq!(large.memory_mb, 512);
    assert_eq!(large.wisp_version, env!("CARGO_PKG_VERSION"));
    let updated = runtimes
        .update(&Selection::Image(IMAGE.to_owned()))
        .await
        .expect("update");
    assert_eq!(updated.len(), 2);
    let removed = runtimes
        .delete(&Selection::Image(other.to_owned()))
        .await
        .expect("delete one");
    assert_eq!(removed.len(), 1);
    assert_eq!(runtimes.list().await.expect("list").len(), 2);
    let report = runtimes.clean().await.expect("clean");
    assert_eq!(report.actions, 2);
    assert!(report.package);
    assert_eq!(report.metadata_objects, 2);
    assert!(runtimes.list().await.expect("list").is_empty());
    let left = storage
        .list(&config.bucket(), "wisp/")
        .await
        .expect("listing");
    assert!(left.is_empty(), "{left:?}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_that_is_not_wisps_is_refused_with_the_command_that_fixes_it() {
    let emulator = Emulator::start(EmulatorConfig {
        // `true` exits at once: the image never serves the action protocol.
        invoker: Invoker::Process {
            binary: "/bin/true".into(),
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("the emulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.runtime_timeout = Duration::from_secs(3);
    let exec = executor(config).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let err = exec
        .call_async(&f, "noop", ())
        .await
        .expect_err("no runtime answers");
    let message = err.to_string();
    assert!(message.contains("wisp runtime build"), "{message}");
    assert!(message.contains(IMAGE), "{message}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_api_key_says_which_setting_to_fix() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    let (uuid, _) = GUEST_KEY.split_once(':').expect("uuid:secret");
    config.openwhisk.api_key = Some(format!("{uuid}:{}", "0".repeat(64)));
    let exec = executor(config).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let err = exec.call_async(&f, "noop", ()).await.expect_err("refused");
    assert!(matches!(err, Error::OpenWhisk(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("api_key"), "{message}");
    assert!(
        !message.contains(&"0".repeat(64)),
        "the secret leaks: {message}"
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn word_count_on_openwhisk_over_s3_matches_localhost() {
    let Some(endpoint) = std::env::var("WISP_TEST_S3_ENDPOINT").ok() else {
        if std::env::var("WISP_TEST_S3").as_deref() == Ok("skip") {
            eprintln!("SKIPPED: S3 half (WISP_TEST_S3=skip)");
            return;
        }
        panic!("WISP_TEST_S3_ENDPOINT is not set: run the tests with scripts/test");
    };
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.storage = StorageKind::Minio;
    config.minio = Some(wisp::config::S3Section {
        endpoint: Some(endpoint),
        access_key_id: Some(
            std::env::var("WISP_TEST_S3_ACCESS_KEY").unwrap_or("minioadmin".into()),
        ),
        secret_access_key: Some(
            std::env::var("WISP_TEST_S3_SECRET_KEY").unwrap_or("minioadmin".into()),
        ),
        storage_bucket: Some(config.storage_bucket.clone()),
        create_bucket: true,
        ..wisp::config::S3Section::default()
    });
    let files =
        wisp::partition::files_under(&crate_dir("examples/data/first-folio")).expect("corpus");
    let chunks = wisp::partition::partition(&files, wisp::partition::Chunking::Size(256 * 1024))
        .expect("partition");
    let inputs: Vec<_> = chunks
        .iter()
        .map(|c| c.read_text().expect("text"))
        .collect();
    let wordcount = module("examples/wordcount");

    let (_local_dir, local) = wisp_tests::executor(2, Duration::from_secs(60)).await;
    let f = local
        .function_from_bytes("wordcount", wordcount.clone())
        .expect("loads");
    let job = local
        .map_reduce(&f, "count_words", inputs.clone(), "merge_counts")
        .await
        .expect("localhost");
    let expected: serde_json::Value = local.get_result(&job.reduce).await.expect("reduce");
    local.close().await.expect("close");

    let exec = executor(config).await;
    let f = exec
        .function_from_bytes("wordcount", wordcount)
        .expect("loads");
    let job = exec
        .map_reduce(&f, "count_words", inputs, "merge_counts")
        .await
        .expect("openwhisk");
    let counted: serde_json::Value = exec.get_result(&job.reduce).await.expect("reduce");
    assert_eq!(counted["total_words"], json!(833_138));
    assert_eq!(counted, expected);
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

/// The action process of this emulator (the stand-in for its container),
/// found by the API host it was started with.
fn action_pids(emulator: &Emulator) -> Vec<i32> {
    let marker = format!("__OW_API_HOST={}", emulator.url());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == marker.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

/// Waits until a call has an outcome, then kills the emulator's action
/// processes (the stand-ins for its containers) at once, as a crash
/// would; returns when.
async fn kill_actions_after_first_outcome(
    emulator: &Emulator,
    futures: &[wisp::CallFuture],
) -> std::time::Instant {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let pids = loop {
        let pids = action_pids(emulator);
        if !pids.is_empty() && futures.iter().any(|f| f.status().is_some()) {
            break pids;
        }
        assert!(std::time::Instant::now() < deadline, "no call finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for pid in pids {
        // The process is this test's own: its emulator started it.
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    std::time::Instant::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_killed_mid_batch_loses_no_call_and_counts_none_twice() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.openwhisk.calls_per_activation = Some(10);
    let exec = executor(config).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    // Ten calls of 300 ms in one activation: kill its process after the
    // first few have been recorded.
    let futures = exec
        .map(&f, "sleep_ms", [300u64; 10])
        .await
        .expect("submitted");
    let killed = kill_actions_after_first_outcome(&emulator, &futures).await;
    let outcome = exec
        .wait(
            &futures,
            wisp::WaitFor::AllCompleted,
            Some(Duration::from_secs(90)),
        )
        .await;
    assert!(outcome.pending.is_empty(), "every call ends");
    eprintln!(
        "killed container: every call ended {:?} after the kill",
        killed.elapsed()
    );
    let mut done = 0;
    let mut lost = 0;
    for future in &futures {
        match &future.status().expect("ended").error {
            None => done += 1,
            Some(Failure::Lost { message }) => {
                assert!(message.contains("activation"), "{message}");
                lost += 1;
            }
            Some(other) => panic!("unexpected failure: {other}"),
        }
    }
    assert_eq!(done + lost, 10);
    assert!(done >= 1 && lost >= 1, "{done} recorded, {lost} lost");
    assert_eq!(exec.completed_calls(), 10, "no call counted twice");
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_retries_a_container_killed_mid_batch_costs_no_call() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.openwhisk.calls_per_activation = Some(10);
    let exec = FunctionExecutor::builder()
        .config(config)
        .retries(2)
        .build()
        .await
        .expect("executor starts");
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futures = exec
        .map(&f, "sleep_ms", [300u64; 10])
        .await
        .expect("submitted");
    let killed = kill_actions_after_first_outcome(&emulator, &futures).await;
    let results: Vec<u64> =
        tokio::time::timeout(Duration::from_secs(90), exec.get_results(&futures))
            .await
            .expect("every call ends")
            .expect("every call succeeds, the killed ones on their second run");
    let recovered = killed.elapsed();
    assert_eq!(results.len(), 10);
    let attempts: Vec<u32> = futures.iter().map(|f| f.attempts()).collect();
    assert!(attempts.iter().all(|&a| a == 1 || a == 2), "{attempts:?}");
    assert!(
        attempts.contains(&2),
        "no call needed a second run: {attempts:?}"
    );
    assert!(
        attempts.contains(&1),
        "no call finished before the kill: {attempts:?}"
    );
    assert_eq!(exec.completed_calls(), 10, "no call counted twice");
    eprintln!(
        "killed container: all 10 calls done {recovered:?} after the kill, attempts {attempts:?}"
    );
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bursts_of_429_and_503_slow_a_job_down_and_lose_nothing() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(&emulator, dir.path());
    config.openwhisk.calls_per_activation = Some(5);
    let exec = executor(config).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    // Deploy the runtime first, so that the bursts land on the invokes.
    let warm = exec.call_async(&f, "add", [1, 2]).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&warm).await.expect("warm"), 3);
    emulator.inject(wisp_openwhisk_emulator::Fault::Throttled { count: 4 });
    emulator.inject(wisp_openwhisk_emulator::Fault::Unavailable { count: 3 });
    let futures = exec
        .map(&f, "add", (0..40).map(|i| [i, 1]))
        .await
        .expect("submitted");
    let results: Vec<i64> =
        tokio::time::timeout(Duration::from_secs(120), exec.get_results(&futures))
            .await
            .expect("every call ends")
            .expect("every call succeeds");
    assert_eq!(results, (1..=40).collect::<Vec<i64>>());
    assert!(futures.iter().all(|f| f.attempts() == 1));
    assert_eq!(exec.completed_calls(), 41, "no call counted twice");
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

/// The action server reads a job's module from storage and checks it
/// against its digest: a module altered there after the executor stored
/// it fails the calls of a fresh container, saying so, and once the object
/// is whole again the next call runs.
#[tokio::test(flavor = "multi_thread")]
async fn an_action_refuses_a_module_altered_in_storage() {
    let emulator = quickly_idle_emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = executor(config(&emulator, dir.path())).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec.call_async(&f, "add", (1, 2)).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&fut).await.expect("runs"), 3);

    let storage = exec.storage().clone();
    let bucket = exec.bucket().to_owned();
    let key = wisp_runtime::protocol::module_key(&f.digest());
    let original = storage.get(&bucket, &key).await.expect("stored");
    let mut altered = original.to_vec();
    let middle = altered.len() / 2;
    altered[middle] ^= 0xff;
    storage
        .put(&bucket, &key, altered.into())
        .await
        .expect("alter");
    // The warm container compiled the module before; wait until it has
    // gone idle and been removed, so the next one reads storage.
    no_containers(&emulator).await;

    let fut = exec.call_async(&f, "add", (2, 3)).await.expect("submit");
    let err = exec.get_result::<i64>(&fut).await.expect_err("altered");
    let Some(Failure::Module { message }) = &fut.status().expect("ended").error else {
        panic!("not a module failure: {err:?}")
    };
    let digest = f.digest().to_string();
    assert!(
        message.contains(&format!("module {digest} in storage has been altered")),
        "{message}"
    );
    assert!(err.to_string().contains("has been altered"), "{err}");

    storage.put(&bucket, &key, original).await.expect("restore");
    let fut = exec.call_async(&f, "add", (3, 4)).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&fut).await.expect("runs"), 7);
    exec.close().await.expect("close");
    emulator.shutdown().await;
}

/// Every activation record the emulator keeps, newest first, with results
/// and logs, as its REST API lists them.
pub(crate) async fn activation_records(emulator: &Emulator) -> serde_json::Value {
    let (user, secret) = GUEST_KEY.split_once(':').expect("uuid:secret");
    reqwest::Client::new()
        .get(format!(
            "{}/api/v1/namespaces/_/activations?docs=true&limit=200",
            emulator.url()
        ))
        .basic_auth(user, Some(secret))
        .send()
        .await
        .expect("the emulator answers")
        .json()
        .await
        .expect("JSON")
}

/// The batch replies of the emulator's activations, newest first: how each
/// container came by its module, and how long the activation took.
async fn batch_replies(emulator: &Emulator) -> Vec<(String, u64)> {
    activation_records(emulator)
        .await
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| {
            let module = r["response"]["result"]["module"].as_str()?;
            Some((module.to_owned(), r["duration"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// Waits until the emulator has removed its idle containers.
async fn no_containers(emulator: &Emulator) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !action_pids(emulator).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the container stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_container_loads_the_module_another_compiled_and_refuses_altered_code() {
    let emulator = quickly_idle_emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = executor(config(&emulator, dir.path())).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let add = |x: i64| {
        let exec = &exec;
        let f = &f;
        async move {
            let fut = exec.call_async(f, "add", (x, 1)).await.expect("submit");
            exec.get_result::<i64>(&fut).await.expect("runs")
        }
    };

    // The first container compiles the module and stores its code.
    assert_eq!(add(1).await, 2);
    let replies = batch_replies(&emulator).await;
    assert_eq!(replies[0].0, "compiled", "{replies:?}");
    let compiled_ms = replies[0].1;
    let storage = exec.storage().clone();
    let bucket = exec.bucket().to_owned();
    let stored = storage
        .list(&bucket, &wisp_runtime::protocol::code_prefix())
        .await
        .expect("list");
    assert_eq!(stored.len(), 1, "one compiled module stored");
    let code_key = stored[0].key.clone();
    assert!(code_key.contains(&f.digest().to_string()), "{code_key}");

    // A fresh container loads it.
    no_containers(&emulator).await;
    assert_eq!(add(2).await, 3);
    let replies = batch_replies(&emulator).await;
    assert_eq!(replies[0].0, "loaded", "{replies:?}");
    let loaded_ms = replies[0].1;

    // Code altered in storage is not loaded: the next fresh container
    // compiles again, runs the call right, and stores sound code.
    let sealed = storage.get(&bucket, &code_key).await.expect("get");
    let mut altered = sealed.to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    storage
        .put(&bucket, &code_key, altered.into())
        .await
        .expect("alter");
    no_containers(&emulator).await;
    assert_eq!(add(3).await, 4);
    let replies = batch_replies(&emulator).await;
    assert_eq!(replies[0].0, "compiled", "{replies:?}");
    let restored = storage.get(&bucket, &code_key).await.expect("get");
    assert_eq!(restored.len(), sealed.len());

    no_containers(&emulator).await;
    assert_eq!(add(4).await, 5);
    assert_eq!(batch_replies(&emulator).await[0].0, "loaded");
    eprintln!(
        "cold container, first batch: {compiled_ms} ms compiling the module, \
         {loaded_ms} ms loading its stored code"
    );
    exec.close().await.expect("close");
    emulator.shutdown().await;
}
