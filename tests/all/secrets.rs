//! Secrets stay where they were put: a job on OpenWhisk (the emulator,
//! running the real action server as a process) with S3 storage that
//! accepts one secret key, and every place a secret could leak to read
//! back afterwards: each object the job left in storage, each activation
//! record (results and logs) the platform kept, the calls' errors, and the
//! executor's Debug output.

use serde_json::{Value, json};
use wisp::FunctionExecutor;
use wisp::config::StorageKind;
use wisp_openwhisk_emulator::GUEST_KEY;
use wisp_tests::faults;

use crate::faults::PrivateS3;

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_storage_activation_records_errors_or_debug_output() {
    let storage_secret = format!("storage-secret-{:016x}", fastrand::u64(..));
    let Some(server) = PrivateS3::start_with("wisp-test-key", &storage_secret) else {
        return;
    };
    let (_, api_secret) = GUEST_KEY.split_once(':').expect("uuid:secret");
    let emulator = crate::openwhisk::emulator().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = format!("wisp-secrets-{:08x}", fastrand::u32(..));
    let mut config = crate::openwhisk::config(&emulator, dir.path());
    config.storage = StorageKind::Minio;
    config.minio = Some(server.section(&bucket));
    let exec = FunctionExecutor::builder()
        .config(config)
        .keep_job_data(true)
        .build()
        .await
        .expect("executor starts");
    let f = exec.function_from_bytes("faults", faults()).expect("loads");

    // Successes, an error, a panic and a log line: every path a message
    // takes.
    let ok = exec
        .map(&f, "echo", [json!({"x": 1}), json!("two")])
        .await
        .expect("submit");
    let failing = exec
        .call_async(&f, "fail", "no luck")
        .await
        .expect("submit");
    let panicking = exec.call_async(&f, "panic", "oh no").await.expect("submit");
    let logging = exec.call_async(&f, "log", 3).await.expect("submit");
    let _: Vec<Value> = exec.get_results(&ok).await.expect("echoes");
    let mut errors = Vec::new();
    for future in [&failing, &panicking] {
        errors.push(
            exec.get_result::<()>(future)
                .await
                .expect_err("fails")
                .to_string(),
        );
    }
    exec.get_result::<()>(&logging).await.expect("logs");

    let leaks = |place: &str, text: &str| {
        assert!(
            !text.contains(&storage_secret),
            "the storage secret is in {place}"
        );
        assert!(
            !text.contains(api_secret),
            "the API key's secret is in {place}"
        );
    };

    // Every object in the bucket, whole.
    let objects = exec.storage().list(&bucket, "").await.expect("list");
    assert!(objects.len() >= 5, "the job's objects: {}", objects.len());
    for object in &objects {
        let bytes = exec.storage().get(&bucket, &object.key).await.expect("get");
        leaks(&object.key, &String::from_utf8_lossy(&bytes));
    }

    // Every activation record the platform kept, with results and logs.
    let records = crate::openwhisk::activation_records(&emulator).await;
    let records_text = records.to_string();
    assert!(
        records.as_array().is_some_and(|a| a.len() >= 2),
        "{records_text}"
    );
    // The runtime's log lines are there (the calls' own logs are in the
    // statuses, in storage).
    assert!(records_text.contains("succeeded"), "{records_text}");
    leaks("the activation records", &records_text);

    for error in &errors {
        leaks("a call's error", error);
    }
    leaks(
        "the executor's Debug output",
        &format!("{:?}", exec.config()),
    );
    exec.close().await.expect("close");
    emulator.shutdown().await;
}
