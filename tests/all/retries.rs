//! The retrying executor on the embedded default: failed calls run again
//! as the policy says, every call ends with exactly one outcome, and the
//! outcome says how many runs it took.

use std::time::Duration;

use serde_json::json;
use wisp::{Error, Failure, FunctionExecutor};
use wisp_tests::faults;

async fn retrying(dir: &std::path::Path, retries: u32, function_errors: bool) -> FunctionExecutor {
    let config = wisp::Config {
        storage_dir: dir.join("storage"),
        workers: 2,
        runtime_timeout: Duration::from_secs(30),
        ..wisp::Config::default()
    };
    FunctionExecutor::builder()
        .config(config)
        .retries(retries)
        .retry_function_errors(function_errors)
        .build()
        .await
        .expect("executor starts")
}

/// How many times `fail_first` ran for `key`: it leaves one object per run.
async fn runs(exec: &FunctionExecutor, key: &str) -> usize {
    exec.storage()
        .list(exec.bucket(), &format!("{key}/"))
        .await
        .expect("list")
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn function_errors_run_again_when_asked_and_the_outcome_counts_the_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = retrying(dir.path(), 2, true).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futures = exec
        .map(
            &f,
            "fail_first",
            [
                json!(["once", 1]),
                json!(["twice", 2]),
                json!(["always", 9]),
                json!(["never", 0]),
            ],
        )
        .await
        .expect("submit");
    let outcome = exec
        .wait(
            &futures,
            wisp::WaitFor::AllCompleted,
            Some(Duration::from_secs(60)),
        )
        .await;
    assert!(outcome.pending.is_empty());

    // Each call ran until it succeeded or its retries ran out, no more.
    let ran: Vec<u32> = futures.iter().map(|f| f.attempts()).collect();
    assert_eq!(ran, [2, 3, 3, 1]);
    for (key, expected) in [("once", 2), ("twice", 3), ("always", 3), ("never", 1)] {
        assert_eq!(runs(&exec, key).await, expected, "runs of {key}");
    }
    let results: Vec<Option<u32>> = {
        let mut results = Vec::new();
        for future in &futures {
            results.push(exec.get_result::<u32>(future).await.ok());
        }
        results
    };
    assert_eq!(results, [Some(2), Some(3), None, Some(1)]);

    let err = exec
        .get_result::<u32>(&futures[2])
        .await
        .expect_err("out of retries");
    let Error::Call(failure) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failure.attempts, 3);
    let message = err.to_string();
    assert!(message.contains("failed 3 times"), "{message}");
    assert!(message.contains("run 3 fails on purpose"), "{message}");

    // One outcome per call, however many runs.
    assert_eq!(exec.completed_calls(), 4);
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_only_the_infrastructures_failures_run_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = retrying(dir.path(), 3, false).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let future = exec
        .call_async(&f, "fail_first", json!(["infra-only", 1]))
        .await
        .expect("submit");
    let err = exec.get_result::<u32>(&future).await.expect_err("fails");
    assert!(matches!(&err, Error::Call(f) if matches!(f.failure, Failure::Call(_))));
    assert_eq!(future.attempts(), 1);
    assert_eq!(runs(&exec, "infra-only").await, 1);
    assert!(!err.to_string().contains("times"), "{err}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn kept_job_data_shows_the_last_attempt_of_each_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = retrying(dir.path(), 1, true).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futures = exec
        .map(
            &f,
            "fail_first",
            [json!(["kept-a", 1]), json!(["kept-b", 5])],
        )
        .await
        .expect("submit");
    exec.wait(&futures, wisp::WaitFor::AllCompleted, None).await;
    let job_id = futures[0].job_id().to_owned();
    // Both attempts of each call are in storage; the listing reads one.
    let job = wisp::jobs::get(exec.storage().as_ref(), exec.bucket(), &job_id)
        .await
        .expect("job listed");
    assert_eq!((job.succeeded(), job.failed()), (1, 1));
    let a = &job.statuses["00000"];
    assert!(a.succeeded() && a.attempt == 2, "{a:?}");
    let b = &job.statuses["00001"];
    assert!(!b.succeeded() && b.attempt == 2, "{b:?}");
    exec.close().await.expect("close");
}
