//! Storage faults in the middle of a job: an S3 server killed and started
//! again, briefly and for longer than the workers wait for it, and one
//! that accepts connections but never answers. Each test runs its own
//! s3s-fs (the server `scripts/s3-server.sh` installs) on a free port, so
//! that killing it disturbs no other test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wisp::config::{S3Section, StorageKind};
use wisp::{Config, Failure, FunctionExecutor, WaitFor};
use wisp_tests::faults;

/// An s3s-fs of this test's own, on a port and a data directory that
/// outlive its restarts.
pub(crate) struct PrivateS3 {
    binary: PathBuf,
    port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
    access_key: String,
    secret_key: String,
}

impl PrivateS3 {
    /// Starts one with the credentials of a fresh MinIO, or `None` when
    /// the S3 tests are skipped.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with("minioadmin", "minioadmin")
    }

    /// Starts one that accepts these credentials only.
    pub(crate) fn start_with(access_key: &str, secret_key: &str) -> Option<Self> {
        if std::env::var("WISP_TEST_S3").as_deref() == Ok("skip") {
            eprintln!("SKIPPED: storage faults (WISP_TEST_S3=skip)");
            return None;
        }
        let binary = which_s3s_fs().unwrap_or_else(|| {
            panic!(
                "s3s-fs is not installed: run scripts/test, or scripts/s3-server.sh start once \
                 (it installs it), or set WISP_TEST_S3=skip"
            )
        });
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            binary,
            port,
            data: tempfile::tempdir().expect("data dir"),
            child: None,
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
        };
        server.run();
        Some(server)
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(self.data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once, as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn section(&self, bucket: &str) -> S3Section {
        S3Section {
            endpoint: Some(self.endpoint()),
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
            storage_bucket: Some(bucket.to_owned()),
            create_bucket: true,
            ..S3Section::default()
        }
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        self.kill();
    }
}

fn which_s3s_fs() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        Some(home.join("bin").join("s3s-fs")).filter(|p| p.is_file())
    })
}

async fn executor(server: &PrivateS3, workers: usize, retries: u32) -> FunctionExecutor {
    let bucket = format!("wisp-faults-{:08x}", fastrand::u32(..));
    let config = Config {
        storage: StorageKind::Minio,
        minio: Some(server.section(&bucket)),
        workers,
        ..Config::default()
    };
    FunctionExecutor::builder()
        .config(config)
        .retries(retries)
        .keep_job_data(true)
        .build()
        .await
        .expect("executor starts")
}

/// Waits until at least one of the calls has an outcome.
async fn first_outcome(futures: &[wisp::CallFuture]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !futures.iter().any(|f| f.is_done()) {
        assert!(Instant::now() < deadline, "no call finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_server_restarted_mid_job_costs_no_call() {
    let Some(mut server) = PrivateS3::start() else {
        return;
    };
    let exec = executor(&server, 2, 0).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futures = exec
        .map(&f, "sleep_ms", [200u64; 24])
        .await
        .expect("submitted");
    first_outcome(&futures).await;
    // Down for two seconds: less than the workers wait for storage.
    server.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.run();

    let outcome = exec
        .wait(
            &futures,
            WaitFor::AllCompleted,
            Some(Duration::from_secs(120)),
        )
        .await;
    assert!(outcome.pending.is_empty(), "every call ends");
    let slept: Vec<u64> = exec
        .get_results(&futures)
        .await
        .expect("every call succeeds");
    assert!(slept.iter().all(|&ms| ms >= 200), "{slept:?}");
    assert_eq!(exec.completed_calls(), 24, "no call counted twice");
    // What storage holds after the restart is the whole job, once.
    let job = wisp::jobs::get(exec.storage().as_ref(), exec.bucket(), futures[0].job_id())
        .await
        .expect("the job is listable");
    assert_eq!((job.succeeded(), job.failed(), job.pending()), (24, 0, 0));
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_server_down_too_long_fails_calls_by_name_and_retries_rescue_them() {
    let Some(mut server) = PrivateS3::start() else {
        return;
    };
    // The same job twice: without retries and with them.
    let plain = executor(&server, 1, 0).await;
    let retrying = executor(&server, 1, 3).await;
    let f = plain
        .function_from_bytes("faults", faults())
        .expect("loads");
    let g = retrying
        .function_from_bytes("faults", faults())
        .expect("loads");
    let plain_calls = plain
        .map(&f, "sleep_ms", [400u64; 6])
        .await
        .expect("submitted");
    let retried_calls = retrying
        .map(&g, "sleep_ms", [400u64; 6])
        .await
        .expect("submitted");
    first_outcome(&plain_calls).await;
    // Down for longer than the workers wait for storage (10 s after the
    // first failure, each try taking up to a few seconds): calls that end
    // meanwhile cannot record their outcome.
    server.kill();
    let killed = Instant::now();
    let mut first_error: Option<Duration> = None;
    while killed.elapsed() < Duration::from_secs(20) {
        if first_error.is_none()
            && plain_calls
                .iter()
                .any(|f| f.status().is_some_and(|s| !s.succeeded()))
        {
            first_error = Some(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.run();

    let all = Some(Duration::from_secs(120));
    assert!(
        plain
            .wait(&plain_calls, WaitFor::AllCompleted, all)
            .await
            .pending
            .is_empty()
    );
    assert!(
        retrying
            .wait(&retried_calls, WaitFor::AllCompleted, all)
            .await
            .pending
            .is_empty()
    );

    // Without retries, the calls caught by the outage fail naming storage
    // and the endpoint; the others succeed with their real result.
    let endpoint = server.endpoint();
    let mut failed = 0;
    for future in &plain_calls {
        let status = future.status().expect("ended");
        match &status.error {
            None => assert!(plain.get_result::<u64>(future).await.expect("result") >= 400),
            Some(Failure::Storage { message }) => {
                assert!(message.contains(&endpoint[7..]), "{message}");
                failed += 1;
            }
            Some(other) => panic!("unexpected failure: {other}"),
        }
    }
    assert!(failed >= 1, "the outage failed no call");
    assert_eq!(plain.completed_calls(), 6, "no call counted twice");

    // With retries, every call succeeds, some on a later run.
    let slept: Vec<u64> = retrying
        .get_results(&retried_calls)
        .await
        .expect("all succeed");
    assert!(slept.iter().all(|&ms| ms >= 400), "{slept:?}");
    let attempts: Vec<u32> = retried_calls.iter().map(|f| f.attempts()).collect();
    assert!(attempts.iter().any(|&a| a > 1), "{attempts:?}");
    assert_eq!(retrying.completed_calls(), 6, "no call counted twice");
    eprintln!(
        "S3 down 20 s: {failed} of 6 calls failed without retries, the first {:?} after the \
         kill; with 3 retries all 6 succeeded, attempts {attempts:?}",
        first_error.unwrap_or_default()
    );
    plain.close().await.expect("close");
    retrying.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_server_that_never_answers_is_a_timeout_not_a_hang() {
    // Accepts connections and reads nothing: a stalled server.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let _held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = Config {
        storage: StorageKind::Minio,
        minio: Some(S3Section {
            endpoint: Some(endpoint.clone()),
            access_key_id: Some("minioadmin".to_owned()),
            secret_access_key: Some("minioadmin".to_owned()),
            ..S3Section::default()
        }),
        ..Config::default()
    };
    let started = Instant::now();
    let err = FunctionExecutor::builder()
        .config(config)
        .build()
        .await
        .err()
        .expect("a stalled server is an error");
    let waited = started.elapsed();
    let message = err.to_string();
    assert!(message.contains(&endpoint[7..]), "{message}");
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    eprintln!("stalled S3 server: error after {waited:?}: {message}");
}
