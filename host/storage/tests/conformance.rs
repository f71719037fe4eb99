//! Storage conformance: every check is written once, over `&dyn Storage`,
//! and run against each backend, so that code written against the local
//! backend behaves the same on an S3 service.
//!
//! The local backend runs always. The S3 backend runs against the service
//! that `WISP_TEST_S3_ENDPOINT` names, with `WISP_TEST_S3_ACCESS_KEY` and
//! `WISP_TEST_S3_SECRET_KEY` (and `WISP_TEST_S3_REGION`, default
//! us-east-1); `scripts/s3-server.sh start` starts one and
//! `eval "$(scripts/s3-server.sh env)"` sets them. Without an endpoint the
//! S3 tests fail, unless `WISP_TEST_S3=skip` says to skip them.
//!
//! Each test works in a bucket of its own with a random name, so the tests
//! run in parallel, and removes it when it passes. Nothing here relies on
//! what one S3 server does and another does not: the same tests pass
//! against MinIO and AWS S3.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wisp_storage::{LocalStorage, S3Config, S3Storage, Storage, StorageError};

/// A backend with a fresh, empty bucket.
struct Fixture {
    storage: Box<dyn Storage>,
    bucket: String,
    _dir: Option<tempfile::TempDir>,
}

fn fresh_bucket() -> String {
    format!("wisp-test-{:016x}", fastrand::u64(..))
}

impl Fixture {
    async fn local() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = LocalStorage::new(dir.path());
        Self::with(Box::new(storage), Some(dir)).await
    }

    /// The S3 backend, or `None` when the S3 tests are to be skipped.
    async fn s3() -> Option<Self> {
        let config = s3_config()?;
        let storage = S3Storage::connect(config)
            .await
            .unwrap_or_else(|e| panic!("cannot use the test S3 service: {e}"));
        Some(Self::with(Box::new(storage), None).await)
    }

    async fn with(storage: Box<dyn Storage>, dir: Option<tempfile::TempDir>) -> Self {
        let bucket = fresh_bucket();
        storage
            .create_bucket(&bucket)
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        Self {
            storage,
            bucket,
            _dir: dir,
        }
    }

    /// Removes the bucket and what is left in it.
    async fn cleanup(self) {
        let s = &*self.storage;
        match s.delete_prefix(&self.bucket, "").await {
            Ok(_) => {}
            Err(StorageError::NoSuchBucket { .. }) => return,
            Err(e) => panic!("cleaning bucket {}: {e}", self.bucket),
        }
        s.delete_bucket(&self.bucket)
            .await
            .unwrap_or_else(|e| panic!("deleting bucket {}: {e}", self.bucket));
    }
}

/// The test service's settings from the environment; `None` to skip.
fn s3_config() -> Option<S3Config> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("WISP_TEST_S3").as_deref() == Some("skip") {
        println!("SKIPPED: S3 storage test, as WISP_TEST_S3=skip asks");
        return None;
    }
    let Some(endpoint) = var("WISP_TEST_S3_ENDPOINT") else {
        panic!(
            "WISP_TEST_S3_ENDPOINT is not set, so the S3 storage tests have no service to \
             run against: start one with `scripts/s3-server.sh start`, then run \
             `eval \"$(scripts/s3-server.sh env)\"` (or point WISP_TEST_S3_ENDPOINT, \
             WISP_TEST_S3_ACCESS_KEY and WISP_TEST_S3_SECRET_KEY at another S3 service); \
             set WISP_TEST_S3=skip to skip these tests"
        )
    };
    let required = |name: &str| {
        var(name).unwrap_or_else(|| {
            panic!(
                "WISP_TEST_S3_ENDPOINT is set but {name} is not; \
                 `eval \"$(scripts/s3-server.sh env)\"` sets both"
            )
        })
    };
    Some(S3Config {
        endpoint: Some(endpoint),
        region: var("WISP_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        access_key_id: required("WISP_TEST_S3_ACCESS_KEY"),
        secret_access_key: required("WISP_TEST_S3_SECRET_KEY"),
        path_style: true,
        ..S3Config::default()
    })
}

/// One test per backend for each check in `checks`. `if GATE` after a
/// name runs that check on S3 only when `GATE()` says the service can do it.
macro_rules! conformance {
    ($($name:ident $(if $gate:path)?),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = crate::Fixture::local().await;
                    crate::checks::$name(&*fixture.storage, &fixture.bucket).await;
                    fixture.cleanup().await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fixture) = crate::Fixture::s3().await else { return };
                    $(
                        if !$gate() {
                            fixture.cleanup().await;
                            return;
                        }
                    )?
                    crate::checks::$name(&*fixture.storage, &fixture.bucket).await;
                    fixture.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    put_get_head_delete,
    ranges,
    ranges_of_an_empty_object,
    listing_is_in_key_order_and_filtered_by_prefix,
    listing_pages_through_thousands_of_keys,
    delete_many_and_delete_prefix,
    awkward_keys_round_trip,
    keys_with_empty_segments_round_trip if crate::s3_stores_empty_segments,
    missing_buckets_and_keys,
    etag_precondition,
    put_file_uploads_large_files_in_parts,
    put_file_fails_when_the_file_changes,
    buckets_are_created_and_deleted,
    invalid_names_are_refused,
);

/// Whether the S3 service stores keys with empty segments (`a//b`, `/a`)
/// as they are. AWS S3 and Ceph do; MinIO refuses such keys, and s3s-fs
/// keeps objects as files, so that it lists `a//b` as `a/b` and fails a
/// leading `/` with HTTP 500. The S3 test of
/// them runs when `WISP_TEST_S3_DOUBLE_SLASH_KEYS=1`; that the client
/// sends them unchanged is checked against every service by
/// `s3_only::keys_reach_the_service_exactly`.
fn s3_stores_empty_segments() -> bool {
    if std::env::var("WISP_TEST_S3_DOUBLE_SLASH_KEYS").as_deref() == Ok("1") {
        return true;
    }
    println!(
        "SKIPPED: keys with `//` on S3; set WISP_TEST_S3_DOUBLE_SLASH_KEYS=1 for a \
         service that stores them as they are (AWS S3, Ceph; not MinIO or s3s-fs)"
    );
    false
}

/// The keys of a listing.
async fn keys(s: &dyn Storage, bucket: &str, prefix: &str) -> Vec<String> {
    s.list(bucket, prefix)
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?}: {e}"))
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// Writes small objects, several at a time.
async fn put_all(s: &dyn Storage, bucket: &str, keys: &[String]) {
    const LANES: usize = 8;
    let lane = |first: usize| async move {
        for key in keys.iter().skip(first).step_by(LANES) {
            s.put(bucket, key, Bytes::from(key.clone()))
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e}"));
        }
    };
    tokio::join!(
        lane(0),
        lane(1),
        lane(2),
        lane(3),
        lane(4),
        lane(5),
        lane(6),
        lane(7)
    );
}

/// Deterministic bytes that no two offsets share by accident.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut data = vec![0; len];
    rng.fill(&mut data);
    data
}

mod checks {
    use super::*;

    pub async fn put_get_head_delete(s: &dyn Storage, b: &str) {
        s.put(b, "dir/a.txt", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        assert_eq!(&s.get(b, "dir/a.txt").await.expect("get")[..], b"hello");
        let head = s.head(b, "dir/a.txt").await.expect("head").expect("exists");
        assert_eq!(head.key, "dir/a.txt");
        assert_eq!(head.size, 5);
        assert!(!head.etag.is_empty());
        let listed = s.list(b, "dir/").await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, 5);
        // A listing may leave the ETag out (s3s-fs does); if it has one, it
        // is the object's.
        assert!(
            listed[0].etag.is_empty() || listed[0].etag == head.etag,
            "list and head agree on the ETag: {listed:?} {head:?}"
        );

        // Replacing the object replaces it whole.
        s.put(b, "dir/a.txt", Bytes::from_static(b"hello, again"))
            .await
            .expect("overwrite");
        assert_eq!(
            &s.get(b, "dir/a.txt").await.expect("get")[..],
            b"hello, again"
        );
        let new_head = s.head(b, "dir/a.txt").await.expect("head").expect("exists");
        assert_eq!(new_head.size, 12);
        assert_ne!(new_head.etag, head.etag, "a new object has a new ETag");

        assert!(s.head(b, "dir/other").await.expect("head").is_none());
        s.delete(b, "dir/a.txt").await.expect("delete");
        assert!(s.head(b, "dir/a.txt").await.expect("head").is_none());
        assert!(matches!(
            s.get(b, "dir/a.txt").await,
            Err(StorageError::NotFound { .. })
        ));
        s.delete(b, "dir/a.txt")
            .await
            .expect("deleting a missing object succeeds");
        assert!(keys(s, b, "").await.is_empty());
    }

    pub async fn ranges(s: &dyn Storage, b: &str) {
        s.put(b, "digits", Bytes::from_static(b"0123456789"))
            .await
            .expect("put");
        let range = |r: std::ops::Range<u64>| s.get_range(b, "digits", r);
        assert_eq!(&range(2..5).await.expect("2..5")[..], b"234");
        assert_eq!(&range(0..10).await.expect("0..10")[..], b"0123456789");
        assert_eq!(&range(9..10).await.expect("9..10")[..], b"9");
        assert_eq!(
            &range(8..100).await.expect("past the end is cut")[..],
            b"89"
        );
        assert_eq!(&range(4..4).await.expect("empty range")[..], b"");
        assert_eq!(
            &range(3..u64::MAX).await.expect("to the end")[..],
            b"3456789"
        );
        for past in [10..12, 100..200, 10..10] {
            match range(past.clone()).await {
                Err(StorageError::InvalidRange {
                    key,
                    start,
                    end,
                    size,
                }) => {
                    assert_eq!(
                        (key.as_str(), start, end, size),
                        ("digits", past.start, past.end, 10)
                    );
                }
                other => panic!("{past:?}: expected InvalidRange, got {other:?}"),
            }
        }
        let message = range(10..12).await.expect_err("past the end").to_string();
        assert!(message.contains("10 bytes long"), "{message}");
        assert!(matches!(
            s.get_range(b, "no-such-key", 0..1).await,
            Err(StorageError::NotFound { .. })
        ));
    }

    pub async fn ranges_of_an_empty_object(s: &dyn Storage, b: &str) {
        s.put(b, "empty", Bytes::new()).await.expect("put");
        assert!(s.get(b, "empty").await.expect("get").is_empty());
        assert_eq!(
            s.head(b, "empty")
                .await
                .expect("head")
                .expect("exists")
                .size,
            0
        );
        assert!(
            s.get_range(b, "empty", 0..0)
                .await
                .expect("0..0")
                .is_empty()
        );
        assert!(
            s.get_range(b, "empty", 0..10)
                .await
                .expect("0..10 is cut to nothing")
                .is_empty()
        );
        assert!(matches!(
            s.get_range(b, "empty", 1..2).await,
            Err(StorageError::InvalidRange { size: 0, .. })
        ));
    }

    pub async fn listing_is_in_key_order_and_filtered_by_prefix(s: &dyn Storage, b: &str) {
        let written = [
            "jobs/2/status/1.json",
            "jobs/10/job.json",
            "jobs/1/status/0.json",
            "jobs/1/job.json",
            "modules/ab.wasm",
            "Zebra",
            "a",
            "jobs/1/status/10.json",
            "jobs/1/status/2.json",
        ];
        for key in written {
            s.put(b, key, Bytes::from(key)).await.expect(key);
        }
        let mut sorted: Vec<String> = written.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        assert_eq!(keys(s, b, "").await, sorted, "byte order, uppercase first");
        assert_eq!(
            keys(s, b, "jobs/1/").await,
            [
                "jobs/1/job.json",
                "jobs/1/status/0.json",
                "jobs/1/status/10.json",
                "jobs/1/status/2.json",
            ]
        );
        assert_eq!(
            keys(s, b, "jobs/1").await,
            [
                "jobs/1/job.json",
                "jobs/1/status/0.json",
                "jobs/1/status/10.json",
                "jobs/1/status/2.json",
                "jobs/10/job.json",
            ],
            "a prefix need not end at a `/`"
        );
        assert_eq!(
            keys(s, b, "jobs/1/status/1").await,
            ["jobs/1/status/10.json"]
        );
        assert_eq!(keys(s, b, "modules/ab.wasm").await, ["modules/ab.wasm"]);
        assert!(keys(s, b, "nothing/").await.is_empty());
        assert!(keys(s, b, "jobs/3").await.is_empty());
        let listed = s.list(b, "modules/").await.expect("list");
        assert_eq!(listed[0].size, "modules/ab.wasm".len() as u64);
    }

    pub async fn listing_pages_through_thousands_of_keys(s: &dyn Storage, b: &str) {
        let many: Vec<String> = (0..2_500).map(|i| format!("many/{i:05}")).collect();
        let others = ["man", "many-more", "manz/0", "other/1"].map(String::from);
        put_all(s, b, &many).await;
        put_all(s, b, &others).await;
        assert_eq!(keys(s, b, "many/").await, many, "all 2,500, in order");
        let under_1: Vec<String> = many
            .iter()
            .filter(|k| k.starts_with("many/01"))
            .cloned()
            .collect();
        assert_eq!(under_1.len(), 1_000);
        assert_eq!(keys(s, b, "many/01").await, under_1);
        let everything = keys(s, b, "").await;
        assert_eq!(everything.len(), 2_504);
        assert!(everything.is_sorted(), "the whole listing is in key order");
    }

    pub async fn delete_many_and_delete_prefix(s: &dyn Storage, b: &str) {
        // More than one DeleteObjects batch (1,000 keys) takes.
        let batch: Vec<String> = (0..1_100).map(|i| format!("batch/{i:04}")).collect();
        let kept = ["jobs/1/a", "jobs/1/b", "jobs/10/a", "jobs/1x", "other"].map(String::from);
        put_all(s, b, &batch).await;
        put_all(s, b, &kept).await;
        let mut doomed = batch.clone();
        doomed.push("batch/never-written".to_owned());
        s.delete_many(b, &doomed).await.expect("delete_many");
        assert!(keys(s, b, "batch/").await.is_empty());
        s.delete_many(b, &[]).await.expect("deleting nothing");

        assert_eq!(s.delete_prefix(b, "jobs/1/").await.expect("prefix"), 2);
        assert_eq!(keys(s, b, "").await, ["jobs/10/a", "jobs/1x", "other"]);
        assert_eq!(s.delete_prefix(b, "nothing/").await.expect("prefix"), 0);
        assert_eq!(s.delete_prefix(b, "").await.expect("everything"), 3);
        assert!(keys(s, b, "").await.is_empty());
    }

    pub async fn awkward_keys_round_trip(s: &dyn Storage, b: &str) {
        let awkward = [
            "with space/and more spaces.txt",
            "plus+sign",
            "percent%20not-a-space",
            "percent%",
            "unicode/café ☕/日本語",
            "données/été ☃.txt",
            "slash%2Fencoded",
            "query?x=1&y=2#frag",
            "tilde~star*(parens)!'quote'",
            "semi;colon:equals=comma,at@dollar$",
        ];
        for key in awkward {
            s.put(b, key, Bytes::from(key)).await.expect(key);
        }
        for key in awkward {
            assert_eq!(
                &s.get(b, key).await.unwrap_or_else(|e| panic!("{key}: {e}"))[..],
                key.as_bytes(),
                "{key}"
            );
            let head = s.head(b, key).await.expect(key).expect(key);
            assert_eq!(head.key, key);
            assert_eq!(head.size, key.len() as u64, "{key}");
            assert_eq!(
                &s.get_range(b, key, 1..4).await.expect(key)[..],
                &key.as_bytes()[1..4]
            );
        }
        let mut sorted: Vec<String> = awkward.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        assert_eq!(keys(s, b, "").await, sorted, "listed exactly as written");
        assert_eq!(
            keys(s, b, "unicode/café ☕/").await,
            ["unicode/café ☕/日本語"]
        );
        assert_eq!(keys(s, b, "données/").await, ["données/été ☃.txt"]);
        assert_eq!(keys(s, b, "données/été ").await, ["données/été ☃.txt"]);
        // An encoded slash is three characters, not a separator.
        assert!(keys(s, b, "slash/").await.is_empty());
        assert_eq!(keys(s, b, "slash%2F").await, ["slash%2Fencoded"]);
        assert_eq!(
            keys(s, b, "percent%").await,
            ["percent%", "percent%20not-a-space"]
        );
        // `a+b` and `a b` are different keys, and `%20` is not a space.
        assert!(s.head(b, "plus sign").await.expect("head").is_none());
        assert!(
            s.head(b, "percent not-a-space")
                .await
                .expect("head")
                .is_none()
        );
        s.delete(b, "plus+sign").await.expect("delete");
        assert!(s.head(b, "plus+sign").await.expect("head").is_none());
        let rest: Vec<String> = awkward
            .iter()
            .filter(|k| **k != "plus+sign")
            .map(|k| k.to_string())
            .collect();
        s.delete_many(b, &rest).await.expect("delete_many");
        assert!(keys(s, b, "").await.is_empty());
    }

    pub async fn keys_with_empty_segments_round_trip(s: &dyn Storage, b: &str) {
        let keys_written = [
            "double//slash",
            "//leading",
            "/single-leading",
            "a/b//c///d",
            "a//b",
        ];
        for key in keys_written {
            s.put(b, key, Bytes::from(key)).await.expect(key);
        }
        for key in keys_written {
            assert_eq!(&s.get(b, key).await.expect(key)[..], key.as_bytes());
        }
        assert!(s.head(b, "double/slash").await.expect("head").is_none());
        assert!(s.head(b, "single-leading").await.expect("head").is_none());
        assert!(s.head(b, "a/b").await.expect("head").is_none());
        assert_eq!(keys(s, b, "/s").await, ["/single-leading"]);
        assert_eq!(keys(s, b, "a/").await, ["a//b", "a/b//c///d"]);
        assert_eq!(keys(s, b, "double//").await, ["double//slash"]);
        assert!(keys(s, b, "double/s").await.is_empty());
        let mut sorted: Vec<String> = keys_written.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        assert_eq!(keys(s, b, "").await, sorted);
        s.delete(b, "double//slash").await.expect("delete");
        s.delete(b, "/single-leading").await.expect("delete");
        assert!(s.head(b, "/single-leading").await.expect("head").is_none());
        assert_eq!(s.delete_prefix(b, "").await.expect("delete"), 3);
    }

    pub async fn missing_buckets_and_keys(s: &dyn Storage, b: &str) {
        let missing = format!("{b}-missing");
        assert!(!s.bucket_exists(&missing).await.expect("exists"));
        assert!(s.bucket_exists(b).await.expect("exists"));
        let no_bucket = |result: Result<(), StorageError>, op: &str| match result {
            Err(StorageError::NoSuchBucket { bucket }) => assert_eq!(bucket, missing, "{op}"),
            other => panic!("{op}: expected NoSuchBucket, got {other:?}"),
        };
        no_bucket(s.get(&missing, "k").await.map(drop), "get");
        no_bucket(
            s.get_range(&missing, "k", 0..1).await.map(drop),
            "get_range",
        );
        no_bucket(s.head(&missing, "k").await.map(drop), "head");
        no_bucket(s.list(&missing, "").await.map(drop), "list");
        no_bucket(s.put(&missing, "k", Bytes::from_static(b"x")).await, "put");
        no_bucket(s.delete(&missing, "k").await, "delete");
        let message = s
            .get(&missing, "k")
            .await
            .expect_err("missing bucket")
            .to_string();
        assert!(message.contains(&missing), "{message}");
        assert!(message.contains("create it"), "{message}");

        match s.get(b, "no/such/key").await {
            Err(StorageError::NotFound { bucket, key }) => {
                assert_eq!((bucket.as_str(), key.as_str()), (b, "no/such/key"));
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(s.head(b, "no/such/key").await.expect("head").is_none());
    }

    pub async fn etag_precondition(s: &dyn Storage, b: &str) {
        s.put(b, "input", Bytes::from_static(b"first version"))
            .await
            .expect("put");
        let first = s.head(b, "input").await.expect("head").expect("exists");
        assert_eq!(
            &s.get_range_if(b, "input", 0..5, Some(&first.etag))
                .await
                .expect("same object")[..],
            b"first"
        );
        s.put(b, "input", Bytes::from_static(b"the second version"))
            .await
            .expect("replace");
        let second = s.head(b, "input").await.expect("head").expect("exists");
        for range in [0..5, 3..3] {
            match s
                .get_range_if(b, "input", range.clone(), Some(&first.etag))
                .await
            {
                Err(StorageError::Changed {
                    key,
                    expected,
                    actual,
                }) => {
                    assert_eq!(key, "input");
                    assert_eq!(expected, first.etag);
                    assert_eq!(actual, second.etag);
                }
                other => panic!("{range:?}: expected Changed, got {other:?}"),
            }
        }
        let message = s
            .get_range_if(b, "input", 0..5, Some(&first.etag))
            .await
            .expect_err("changed")
            .to_string();
        assert!(
            message.contains("changed while the job read it"),
            "{message}"
        );
        assert!(message.contains(&second.etag), "{message}");
        assert_eq!(
            &s.get_range_if(b, "input", 4..10, Some(&second.etag))
                .await
                .expect("current ETag")[..],
            b"second"
        );
        assert_eq!(
            &s.get_range_if(b, "input", 4..10, None)
                .await
                .expect("no ETag")[..],
            b"second"
        );
    }

    pub async fn put_file_uploads_large_files_in_parts(s: &dyn Storage, b: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.bin");
        let data = pattern(40 << 20, 1);
        std::fs::write(&path, &data).expect("write the file");
        let calls = Mutex::new(Vec::new());
        let progress = |sent: u64, total: u64| calls.lock().expect("lock").push((sent, total));
        let size = s
            .put_file(b, "big/file.bin", &path, Some(&progress))
            .await
            .expect("put_file");
        assert_eq!(size, data.len() as u64);
        let calls = calls.into_inner().expect("lock");
        assert_eq!(calls.last(), Some(&(size, size)), "{calls:?}");
        assert!(calls.is_sorted(), "progress only grows: {calls:?}");

        let head = s
            .head(b, "big/file.bin")
            .await
            .expect("head")
            .expect("exists");
        assert_eq!(head.size, size);
        let back = s.get(b, "big/file.bin").await.expect("get");
        assert!(back[..] == data[..], "the 40 MiB came back as written");
        // Across the boundary of the first two parts (8 MiB each).
        let edge = 8u64 << 20;
        assert_eq!(
            &s.get_range(b, "big/file.bin", edge - 3..edge + 3)
                .await
                .expect("range")[..],
            &data[edge as usize - 3..edge as usize + 3]
        );
        assert_eq!(
            &s.get_range_if(b, "big/file.bin", size - 2..size + 5, Some(&head.etag))
                .await
                .expect("range at the end")[..],
            &data[data.len() - 2..]
        );

        // A body in memory above the threshold goes up in parts too.
        let memory = Bytes::from(pattern(20 << 20, 2));
        s.put(b, "big/memory.bin", memory.clone())
            .await
            .expect("put");
        assert!(s.get(b, "big/memory.bin").await.expect("get") == memory);

        // Small and empty files go up whole.
        let small = dir.path().join("small.txt");
        std::fs::write(&small, b"small file").expect("write");
        assert_eq!(
            s.put_file(b, "small", &small, None)
                .await
                .expect("put_file"),
            10
        );
        assert_eq!(&s.get(b, "small").await.expect("get")[..], b"small file");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert_eq!(
            s.put_file(b, "empty", &empty, None)
                .await
                .expect("put_file"),
            0
        );
        assert!(s.get(b, "empty").await.expect("get").is_empty());

        match s
            .put_file(b, "never", Path::new("/nonexistent/wisp/file"), None)
            .await
        {
            Err(StorageError::Io { target, .. }) => assert!(target.contains("/nonexistent")),
            other => panic!("expected an Io error naming the file, got {other:?}"),
        }
        assert!(s.head(b, "never").await.expect("head").is_none());
    }

    pub async fn put_file_fails_when_the_file_changes(s: &dyn Storage, b: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("shrinking.bin");
        std::fs::write(&path, pattern(40 << 20, 3)).expect("write the file");
        // Cut the file short as soon as the upload has begun.
        let cut = std::sync::atomic::AtomicBool::new(false);
        let progress = |_: u64, _: u64| {
            if !cut.swap(true, std::sync::atomic::Ordering::SeqCst) {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(3 << 20))
                    .expect("truncate");
            }
        };
        match s.put_file(b, "shrinking", &path, Some(&progress)).await {
            Err(e @ StorageError::Io { .. }) => {
                let message = e.to_string();
                assert!(message.contains("shrinking.bin"), "{message}");
                assert!(message.contains("changed size"), "{message}");
            }
            other => panic!("expected an Io error, got {other:?}"),
        }
        assert!(
            s.head(b, "shrinking").await.expect("head").is_none(),
            "a failed upload leaves no object"
        );
    }

    pub async fn buckets_are_created_and_deleted(s: &dyn Storage, b: &str) {
        s.create_bucket(b)
            .await
            .expect("creating it again succeeds");
        let other = format!("{b}-second");
        assert!(!s.bucket_exists(&other).await.expect("exists"));
        s.create_bucket(&other).await.expect("create");
        assert!(s.bucket_exists(&other).await.expect("exists"));
        s.put(&other, "x/y", Bytes::from_static(b"data"))
            .await
            .expect("put");
        assert!(matches!(
            s.delete_bucket(&other).await,
            Err(StorageError::BucketNotEmpty { .. })
        ));
        s.delete(&other, "x/y").await.expect("delete");
        s.delete_bucket(&other)
            .await
            .expect("delete the empty bucket");
        assert!(!s.bucket_exists(&other).await.expect("exists"));
        assert!(matches!(
            s.delete_bucket(&other).await,
            Err(StorageError::NoSuchBucket { .. })
        ));
    }

    pub async fn invalid_names_are_refused(s: &dyn Storage, b: &str) {
        assert!(matches!(
            s.put("Bad_Bucket", "k", Bytes::new()).await,
            Err(StorageError::InvalidBucket { .. })
        ));
        assert!(matches!(
            s.create_bucket("ab").await,
            Err(StorageError::InvalidBucket { .. })
        ));
        assert!(matches!(
            s.put(b, "", Bytes::new()).await,
            Err(StorageError::InvalidKey { .. })
        ));
        assert!(matches!(
            s.get(b, &"k".repeat(1025)).await,
            Err(StorageError::InvalidKey { .. })
        ));
    }
}

/// Checks that only the S3 backend has: its configuration and its
/// failures.
mod s3_only {
    use super::*;

    fn config_or_skip() -> Option<S3Config> {
        s3_config()
    }

    /// A key with an empty segment either round-trips, or the service's
    /// refusal says that this is what it refused (s3s-fs answers a bare
    /// HTTP 500 for a leading `/`).
    #[tokio::test]
    async fn a_refused_key_with_an_empty_segment_is_named_as_such() {
        let Some(fixture) = Fixture::s3().await else {
            return;
        };
        let (s, b) = (&*fixture.storage, fixture.bucket.as_str());
        for key in ["/single-leading", "//leading"] {
            match s.put(b, key, Bytes::from(key)).await {
                Ok(()) => assert_eq!(&s.get(b, key).await.expect(key)[..], key.as_bytes()),
                Err(e) => {
                    let message = e.to_string();
                    assert!(message.contains(&format!("`{key}`")), "{message}");
                    assert!(message.contains("empty segment"), "{message}");
                    assert!(message.contains("use a key without one"), "{message}");
                }
            }
        }
        s.put(b, "a/b", Bytes::from_static(b"x"))
            .await
            .expect("an ordinary key");
        fixture.cleanup().await;
    }

    #[tokio::test]
    async fn wrong_credentials_are_denied_naming_the_key_id() {
        let Some(config) = config_or_skip() else {
            return;
        };
        let wrong_secret = S3Config {
            secret_access_key: "not-the-secret-at-all".to_owned(),
            ..config.clone()
        };
        let wrong_key = S3Config {
            access_key_id: "wisp-unknown-key-id".to_owned(),
            ..config.clone()
        };
        for wrong in [wrong_secret, wrong_key] {
            let id = wrong.access_key_id.clone();
            let secret = wrong.secret_access_key.clone();
            match S3Storage::connect(wrong).await {
                Err(StorageError::Denied { message }) => {
                    assert!(message.contains(&format!("`{id}`")), "{message}");
                    assert!(message.contains("rejected the credentials"), "{message}");
                    assert!(!message.contains(&secret), "{message}");
                }
                other => panic!("expected Denied, got {other:?}"),
            }
        }
    }

    /// Undoes the percent-encoding of a request path.
    fn percent_decode(path: &str) -> String {
        let bytes = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    /// A stand-in for an S3 service on a loopback port that answers every
    /// request with an empty 200 and reports each request line.
    fn recording_server() -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                if sender.send(request_line.trim_end().to_owned()).is_err() {
                    return;
                }
            }
        });
        (endpoint, receiver)
    }

    /// The client sends every key as it is, whatever the service then
    /// makes of it: `//`, a leading `/`, `+`, `%`, spaces and non-ASCII
    /// letters reach the service unchanged.
    #[tokio::test]
    async fn keys_reach_the_service_exactly() {
        let (endpoint, requests) = recording_server();
        let storage = S3Storage::new(S3Config {
            endpoint: Some(endpoint),
            access_key_id: "wisp-test".to_owned(),
            secret_access_key: "wisp-test-secret".to_owned(),
            path_style: true,
            max_attempts: 1,
            ..S3Config::default()
        })
        .expect("client");
        for key in [
            "double//slash",
            "//leading",
            "trailing//",
            "a b+c%20d%e/é ☕",
            "dir/./dot/../up",
            "query?x=1&y=2#frag",
        ] {
            storage
                .put("wisp-keys", key, Bytes::from_static(b"x"))
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            // The first write also asks whether the bucket exists.
            let line = std::iter::from_fn(|| requests.recv_timeout(Duration::from_secs(5)).ok())
                .find(|line| !line.starts_with("HEAD "))
                .expect("a request");
            let target = line
                .strip_prefix("PUT ")
                .and_then(|rest| rest.strip_suffix(" HTTP/1.1"))
                .unwrap_or_else(|| panic!("not a PUT: {line}"));
            let path = target.split_once('?').map_or(target, |(path, _)| path);
            assert_eq!(percent_decode(path), format!("/wisp-keys/{key}"), "{line}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_fast() {
        let config = S3Config {
            endpoint: Some("http://127.0.0.1:1".to_owned()),
            access_key_id: "wisp-test".to_owned(),
            secret_access_key: "wisp-test-secret".to_owned(),
            path_style: true,
            ..S3Config::default()
        };
        let started = Instant::now();
        let result = S3Storage::connect(config).await;
        let took = started.elapsed();
        match result {
            Err(StorageError::Unreachable { endpoint, message }) => {
                assert_eq!(endpoint, "http://127.0.0.1:1");
                let shown = StorageError::Unreachable {
                    endpoint,
                    message: message.clone(),
                }
                .to_string();
                assert!(shown.contains("http://127.0.0.1:1"), "{shown}");
                assert!(shown.contains("server is running"), "{shown}");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    /// A port that accepts connections but never answers: the connection
    /// check gives up within seconds rather than after the SDK's retries.
    #[tokio::test]
    async fn a_silent_endpoint_fails_within_seconds() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let started = Instant::now();
        let result = S3Storage::connect(S3Config {
            endpoint: Some(endpoint.clone()),
            access_key_id: "wisp-test".to_owned(),
            secret_access_key: "wisp-test-secret".to_owned(),
            path_style: true,
            ..S3Config::default()
        })
        .await;
        let took = started.elapsed();
        match result {
            Err(StorageError::Unreachable {
                endpoint: named, ..
            }) => assert_eq!(named, endpoint),
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(took < Duration::from_secs(10), "took {took:?}");
        drop(listener);
    }

    #[tokio::test]
    async fn an_endpoint_with_a_trailing_slash_works() {
        let Some(config) = config_or_skip() else {
            return;
        };
        let endpoint = format!(
            "{}/",
            config
                .endpoint
                .as_deref()
                .expect("endpoint")
                .trim_end_matches('/')
        );
        let storage = S3Storage::connect(S3Config {
            endpoint: Some(endpoint),
            ..config
        })
        .await
        .expect("connect");
        let bucket = fresh_bucket();
        storage.create_bucket(&bucket).await.expect("create");
        storage
            .put(&bucket, "k", Bytes::from_static(b"v"))
            .await
            .expect("put");
        assert_eq!(&storage.get(&bucket, "k").await.expect("get")[..], b"v");
        storage.delete(&bucket, "k").await.expect("delete");
        storage.delete_bucket(&bucket).await.expect("delete bucket");
    }

    #[tokio::test]
    async fn an_endpoint_without_a_scheme_is_a_clear_error() {
        let config = S3Config {
            endpoint: Some("127.0.0.1:9000".to_owned()),
            access_key_id: "wisp-test".to_owned(),
            secret_access_key: "wisp-test-secret".to_owned(),
            ..S3Config::default()
        };
        match S3Storage::connect(config).await {
            Err(e @ StorageError::InvalidConfig { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("endpoint `127.0.0.1:9000` has no scheme"),
                    "{message}"
                );
                assert!(message.contains("write http://127.0.0.1:9000"), "{message}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}
