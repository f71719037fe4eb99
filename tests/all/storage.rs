//! The same jobs on both storages: local and S3 (the server that
//! `scripts/s3-server.sh` starts; `scripts/test` starts it for the run).
//! Without `WISP_TEST_S3_ENDPOINT` the S3 half fails and says how to start
//! the server, unless `WISP_TEST_S3=skip` asks to skip it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use wisp::config::{S3Section, StorageKind};
use wisp::{CallError, Config, Error, Failure, FunctionExecutor};
use wisp_tests::{crate_dir, faults, module};

/// Where the S3 server is, or `None` when the S3 half is skipped.
fn s3_endpoint() -> Option<String> {
    match std::env::var("WISP_TEST_S3_ENDPOINT") {
        Ok(endpoint) => Some(endpoint),
        Err(_) if std::env::var("WISP_TEST_S3").as_deref() == Ok("skip") => {
            eprintln!("SKIPPED: S3 half (WISP_TEST_S3=skip)");
            None
        }
        Err(_) => panic!(
            "WISP_TEST_S3_ENDPOINT is not set: run the tests with scripts/test, or start \
             the server with scripts/s3-server.sh start and eval \"$(scripts/s3-server.sh env)\""
        ),
    }
}

fn s3_section(endpoint: &str, bucket: &str) -> S3Section {
    S3Section {
        endpoint: Some(endpoint.to_owned()),
        access_key_id: Some(
            std::env::var("WISP_TEST_S3_ACCESS_KEY").unwrap_or("minioadmin".into()),
        ),
        secret_access_key: Some(
            std::env::var("WISP_TEST_S3_SECRET_KEY").unwrap_or("minioadmin".into()),
        ),
        storage_bucket: Some(bucket.to_owned()),
        create_bucket: true,
        ..S3Section::default()
    }
}

/// Configs for both storages, each with a fresh bucket.
fn configs(dir: &std::path::Path) -> Vec<(&'static str, Config)> {
    let bucket = format!("wisp-test-{:08x}", fastrand::u32(..));
    let mut configs = vec![(
        "local",
        Config {
            storage_dir: dir.join("storage"),
            storage_bucket: bucket.clone(),
            workers: 2,
            ..Config::default()
        },
    )];
    if let Some(endpoint) = s3_endpoint() {
        configs.push((
            "s3",
            Config {
                storage: StorageKind::Minio,
                minio: Some(s3_section(&endpoint, &bucket)),
                workers: 2,
                ..Config::default()
            },
        ));
    }
    configs
}

async fn executor(config: Config) -> FunctionExecutor {
    FunctionExecutor::builder()
        .config(config)
        .build()
        .await
        .expect("executor starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn word_count_over_stored_objects_matches_the_local_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus = crate_dir("examples/data/first-folio");
    let files = wisp::partition::files_under(&corpus).expect("corpus");
    for (name, config) in configs(dir.path()) {
        let exec = executor(config).await;
        let f = exec
            .function_from_bytes("wordcount", module("examples/wordcount"))
            .expect("loads");
        // The local run: text travels with the calls.
        let chunks = wisp::partition::partition(&files, wisp::partition::Chunking::Size(256 << 10))
            .expect("partition");
        let texts: Vec<_> = chunks
            .iter()
            .map(|c| c.read_text().expect("text"))
            .collect();
        let local = exec
            .map_reduce(&f, "count_words", texts, "merge_counts")
            .await
            .expect("local map-reduce");
        let local: serde_json::Value = exec.get_result(&local.reduce).await.expect("local result");

        // The stored run: the corpus uploaded, each call reads its part.
        let storage = exec.storage().clone();
        let bucket = exec.bucket().to_owned();
        for file in &files {
            let name = file.file_name().expect("file name").to_string_lossy();
            storage
                .put_file(&bucket, &format!("books/{name}"), file, None)
                .await
                .expect("upload");
        }
        let parts = wisp::partition::partition_objects(
            storage.as_ref(),
            &bucket,
            "books/",
            wisp::partition::Chunking::Size(100 << 10),
            true,
        )
        .await
        .expect("partition objects");
        assert!(parts.len() > files.len(), "{name}: objects are split");
        let stored = exec
            .map_reduce(&f, "count_words", parts, "merge_counts")
            .await
            .expect("stored map-reduce");
        let stored: serde_json::Value = exec
            .get_result(&stored.reduce)
            .await
            .expect("stored result");
        assert_eq!(stored["total_words"], 833_138, "{name}");
        assert_eq!(stored, local, "{name}: the same counts");
        storage
            .delete_prefix(&bucket, "books/")
            .await
            .expect("clean up");
        exec.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn functions_reach_their_bucket_and_not_wisps_own_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, config) in configs(dir.path()) {
        let exec = executor(config).await;
        let f = exec.function_from_bytes("faults", faults()).expect("loads");
        // `//` is left out: MinIO refuses it and s3s-fs folds it; the
        // storage conformance tests cover it where the backend keeps it.
        let key = "data/a b+c%d é.txt";
        let fut = exec
            .call_async(&f, "storage_round_trip", (key, "hello"))
            .await
            .expect("submit");
        let seen: serde_json::Value = exec.get_result(&fut).await.expect("round trip");
        assert_eq!(seen["read"], "hello", "{name}");
        assert!(
            seen["listed"]
                .as_array()
                .is_some_and(|l| l.contains(&json!(key))),
            "{name}: {seen}"
        );
        assert!(
            !seen["after_delete"]
                .as_array()
                .is_some_and(|l| l.contains(&json!(key))),
            "{name}"
        );

        let forged = exec
            .call_async(&f, "storage_put", "wisp/jobs/x/status/00000-a.jsonl")
            .await
            .expect("submit");
        let err = exec.get_result::<()>(&forged).await.expect_err("refused");
        assert!(err.to_string().contains("wisp's job data"), "{name}: {err}");
        exec.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_that_changes_under_a_job_fails_the_read_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, config) in configs(dir.path()) {
        let exec = executor(config).await;
        let f = exec.function_from_bytes("faults", faults()).expect("loads");
        let storage = exec.storage().clone();
        let bucket = exec.bucket().to_owned();
        storage
            .put(
                &bucket,
                "data/log.txt",
                Bytes::from_static(b"one\ntwo\nthree\n"),
            )
            .await
            .expect("put");
        let parts = wisp::partition::partition_objects(
            storage.as_ref(),
            &bucket,
            "data/",
            wisp::partition::Chunking::Count(2),
            true,
        )
        .await
        .expect("partition");
        assert_eq!(parts.len(), 2, "{name}: {parts:?}");
        let first = exec
            .call_async(&f, "read_part", &parts[0])
            .await
            .expect("submit");
        assert_eq!(
            exec.get_result::<String>(&first).await.expect("read"),
            "one\ntwo\n",
            "{name}"
        );
        // Replace the object (a different size, so every backend's ETag changes).
        tokio::time::sleep(Duration::from_millis(20)).await;
        storage
            .put(
                &bucket,
                "data/log.txt",
                Bytes::from_static(b"uno\ndos\ntres\ncuatro\n"),
            )
            .await
            .expect("put");
        let second = exec
            .call_async(&f, "read_part", &parts[1])
            .await
            .expect("submit");
        let err = exec
            .get_result::<String>(&second)
            .await
            .expect_err("changed");
        let Error::Call(failure) = &err else {
            panic!("{name}: {err:?}")
        };
        assert!(
            matches!(&failure.failure, Failure::Call(CallError::Function { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("changed"), "{name}: {err}");
        exec.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_prefix_is_an_empty_map() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, config) in configs(dir.path()) {
        let exec = executor(config).await;
        let parts = wisp::partition::partition_objects(
            exec.storage().as_ref(),
            exec.bucket(),
            "nothing-here/",
            wisp::partition::Chunking::Size(1 << 20),
            true,
        )
        .await
        .expect("partition");
        assert!(parts.is_empty(), "{name}");
        exec.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_misconfigurations_fail_fast_with_the_fix() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let config = |section: S3Section| Config {
        storage: StorageKind::Minio,
        minio: Some(section),
        ..Config::default()
    };
    // Nothing listens on port 1: the executor fails at once, not at the
    // first result.
    let started = Instant::now();
    let unreachable = FunctionExecutor::builder()
        .config(config(s3_section("http://127.0.0.1:1", "wisp-data")))
        .build()
        .await
        .err()
        .expect("unreachable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        unreachable.to_string().contains("127.0.0.1:1"),
        "{unreachable}"
    );

    let mut wrong = s3_section(&endpoint, "wisp-data");
    wrong.secret_access_key = Some("not-the-secret".into());
    let denied = FunctionExecutor::builder()
        .config(config(wrong))
        .build()
        .await
        .err()
        .expect("wrong secret");
    let message = denied.to_string();
    assert!(
        !message.contains("not-the-secret"),
        "the secret never shows: {message}"
    );

    let mut missing = s3_section(
        &endpoint,
        &format!("wisp-missing-{:08x}", fastrand::u32(..)),
    );
    missing.create_bucket = false;
    let err = FunctionExecutor::builder()
        .config(config(missing))
        .build()
        .await
        .err()
        .expect("missing bucket");
    let message = err.to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("wisp storage create-bucket"), "{message}");
    assert!(message.contains("create_bucket: true"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_line_parts_cover_every_line_once_wherever_the_cuts_fall() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = "a\n\nbb\nccc\na line longer than some of the chunks\nlast line without newline";
    for (name, config) in configs(dir.path()) {
        let exec = executor(config).await;
        let f = exec.function_from_bytes("faults", faults()).expect("loads");
        let storage = exec.storage().clone();
        let bucket = exec.bucket().to_owned();
        storage
            .put(&bucket, "lines/t.txt", Bytes::from(text))
            .await
            .expect("put");
        // Every cut position on the local backend; a few on S3, where each
        // request costs more.
        let sizes: Vec<u64> = if name == "local" {
            (1..=text.len() as u64).collect()
        } else {
            vec![1, 7, 40]
        };
        for size in sizes {
            let parts = wisp::partition::partition_objects(
                storage.as_ref(),
                &bucket,
                "lines/",
                wisp::partition::Chunking::Size(size),
                true,
            )
            .await
            .expect("partition");
            let futs = exec.map(&f, "read_part", &parts).await.expect("submit");
            let pieces: Vec<String> = exec.get_results(&futs).await.expect("read");
            assert_eq!(pieces.concat(), text, "{name}, chunk size {size}");
            // Every line is whole: only the object's last line lacks a newline.
            let lines: Vec<&String> = pieces.iter().filter(|p| !p.is_empty()).collect();
            for piece in &lines[..lines.len() - 1] {
                assert!(piece.ends_with('\n'), "{name}, {size}: {piece:?}");
            }
        }
        exec.close().await.expect("close");
    }
}

/// A map over `s3://bucket/données/` whose keys have spaces, `+`, `%`
/// and non-ASCII letters: every object is found, and each call reads its
/// own object's bytes, on both storages.
#[tokio::test(flavor = "multi_thread")]
async fn a_map_over_keys_with_awkward_names_reads_each_object() {
    let dir = tempfile::tempdir().expect("temp dir");
    let names = [
        "données/été ☃.txt",
        "données/a b+c%20d.txt",
        "données/sous dossier/x%2Fy+z.txt",
    ];
    for (name, config) in configs(dir.path()) {
        let exec = executor(config).await;
        let f = exec.function_from_bytes("faults", faults()).expect("loads");
        let storage = exec.storage().clone();
        let url = wisp::partition::StorageUrl::parse(&format!("s3://{}/données/", exec.bucket()))
            .expect("a storage URL");
        assert_eq!(url.prefix, "données/");
        for key in names {
            storage
                .put(
                    &url.bucket,
                    key,
                    Bytes::from(format!("contents of {key}\n")),
                )
                .await
                .expect("put");
        }
        let parts = wisp::partition::partition_objects(
            storage.as_ref(),
            &url.bucket,
            &url.prefix,
            wisp::partition::Chunking::Size(1 << 20),
            false,
        )
        .await
        .expect("partition");
        let mut keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        let mut expected = names.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{name}");
        let futs = exec.map(&f, "read_part", &parts).await.expect("submit");
        let texts: Vec<String> = exec.get_results(&futs).await.expect("reads");
        for (part, text) in parts.iter().zip(&texts) {
            assert_eq!(text, &format!("contents of {}\n", part.key), "{name}");
        }
        storage
            .delete_prefix(&url.bucket, &url.prefix)
            .await
            .expect("clean up");
        exec.close().await.expect("close");
    }
}
