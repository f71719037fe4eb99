//! Calls, maps and their failures: each failure is an error on that call
//! alone, naming it, and the executor and the other calls carry on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wisp::{CallError, CallState, Error, Failure, WaitFor};
use wisp_tests::{executor, faults, module};

fn call_error(err: &Error) -> &CallError {
    match err {
        Error::Call(failure) => match &failure.failure {
            Failure::Call(error) => error,
            other => panic!("not a call error: {other:?}"),
        },
        other => panic!("not a call failure: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_runs_once_and_as_a_map() {
    let (_dir, exec) = executor(2, Duration::from_secs(30)).await;
    let f = exec
        .function_from_bytes("hello", module("examples/hello"))
        .expect("hello loads");
    let fut = exec.call_async(&f, "my_function", 3).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&fut).await.expect("result"), 10);
    let timings = fut.timings().expect("done calls have timings");
    assert!(timings.submitted_us <= timings.worker_start_us);
    assert!(timings.worker_start_us <= timings.function_start_us);
    assert!(timings.function_start_us <= timings.function_end_us);
    assert!(timings.function_end_us <= timings.done_us);
    assert_eq!(fut.state(), CallState::Success);

    let futs = exec.map(&f, "my_function", 0..1000).await.expect("submit");
    let ys: Vec<i64> = exec.get_results(&futs).await.expect("results");
    assert_eq!(ys, (7..1007).collect::<Vec<_>>());
    assert_eq!(futs[999].call_id(), "00999");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_arguments_arrive_as_an_array_or_an_object() {
    let (_dir, exec) = executor(2, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let by_position = exec.call_async(&f, "add", (2, 40)).await.expect("submit");
    let by_name = exec
        .call_async(&f, "add", json!({"b": 40, "a": 2}))
        .await
        .expect("submit");
    assert_eq!(
        exec.get_result::<i64>(&by_position).await.expect("array"),
        42
    );
    assert_eq!(exec.get_result::<i64>(&by_name).await.expect("object"), 42);
    let echo = exec
        .call_async(&f, "echo", json!({"nested": [1, "two", null]}))
        .await
        .expect("submit");
    assert_eq!(
        exec.get_result::<Value>(&echo).await.expect("echo"),
        json!({"nested": [1, "two", null]})
    );
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_function_lists_the_ones_the_module_has() {
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let err = exec
        .call_async(&f, "nope", ())
        .await
        .expect_err("no such function");
    let message = err.to_string();
    assert!(message.contains("no function `nope`"), "{message}");
    for name in ["add", "echo", "noop", "panic", "spin"] {
        assert!(message.contains(name), "{name} missing from: {message}");
    }
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_of_the_wrong_type_are_a_user_error_not_a_trap() {
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec
        .call_async(&f, "add", ("two", 2))
        .await
        .expect("submit");
    let err = exec
        .get_result::<i64>(&fut)
        .await
        .expect_err("a string is no i64");
    let CallError::BadArguments { message } = call_error(&err) else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("invalid type"),
        "serde's message: {message}"
    );
    assert!(message.contains('a'), "names the parameter: {message}");
    let arity = exec.call_async(&f, "add", [1, 2, 3]).await.expect("submit");
    let err = exec
        .get_result::<i64>(&arity)
        .await
        .expect_err("three for two");
    assert!(
        matches!(call_error(&err), CallError::BadArguments { .. }),
        "{err:?}"
    );
    // The executor carries on.
    let ok = exec.call_async(&f, "add", (1, 2)).await.expect("submit");
    assert_eq!(exec.get_result::<i64>(&ok).await.expect("result"), 3);
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_and_panics_carry_their_message_and_the_call_id() {
    let (_dir, exec) = executor(2, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let failing = exec
        .call_async(&f, "fail", "disk on fire")
        .await
        .expect("submit");
    let err = exec.get_result::<()>(&failing).await.expect_err("fails");
    assert_eq!(
        call_error(&err),
        &CallError::Function {
            message: "disk on fire".to_owned()
        }
    );
    assert!(err.to_string().contains("call 00000"), "{err}");

    let futs = exec
        .map(&f, "panic", ["first", "second"])
        .await
        .expect("submit");
    let err = exec.get_results::<()>(&futs).await.expect_err("both panic");
    let Error::Calls { failed, total } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((failed.len(), *total), (2, 2));
    let message = err.to_string();
    assert!(message.contains("call 00001"), "{message}");
    assert!(message.contains("panicked at"), "{message}");
    assert!(message.contains("second"), "{message}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_times_out_and_the_other_calls_finish() {
    let (_dir, exec) = executor(2, Duration::from_secs(1)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let started = Instant::now();
    let spin = exec.call_async(&f, "spin", ()).await.expect("submit");
    let others = exec
        .map(&f, "add", [(1, 1), (2, 2), (3, 3)])
        .await
        .expect("submit");
    assert_eq!(
        exec.get_results::<i64>(&others)
            .await
            .expect("others finish"),
        [2, 4, 6]
    );
    let err = exec.get_result::<()>(&spin).await.expect_err("times out");
    let elapsed = started.elapsed();
    assert_eq!(call_error(&err), &CallError::Timeout { limit_ms: 1000 });
    assert!(err.to_string().contains("runtime_timeout"), "{err}");
    assert!(
        elapsed >= Duration::from_secs(1),
        "stopped early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "stopped late: {elapsed:?}"
    );
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_past_the_limit_fails_that_call_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exec = wisp::FunctionExecutor::builder()
        .storage_dir(dir.path())
        .runtime_memory(64)
        .workers(2)
        .build()
        .await
        .expect("executor");
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futs = exec.map(&f, "grow", [8u64, 200, 16]).await.expect("submit");
    let outcome = exec.wait(&futs, WaitFor::AllCompleted, None).await;
    assert!(outcome.pending.is_empty());
    assert_eq!(
        exec.get_result::<u64>(&futs[0]).await.expect("8 MiB fits"),
        8 << 20
    );
    assert_eq!(
        exec.get_result::<u64>(&futs[2]).await.expect("16 MiB fits"),
        16 << 20
    );
    let err = exec
        .get_result::<u64>(&futs[1])
        .await
        .expect_err("200 MiB does not");
    let CallError::MemoryLimit { limit_bytes, .. } = call_error(&err) else {
        panic!("{err:?}")
    };
    assert_eq!(*limit_bytes, 64 << 20);
    assert!(err.to_string().contains("runtime_memory"), "{err}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_overflow_is_an_error_and_the_next_call_runs() {
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let deep = exec
        .call_async(&f, "recurse", 10_000_000u64)
        .await
        .expect("submit");
    let err = exec.get_result::<u64>(&deep).await.expect_err("overflows");
    assert_eq!(call_error(&err), &CallError::StackOverflow);
    let shallow = exec
        .call_async(&f, "recurse", 1000u64)
        .await
        .expect("submit");
    assert_eq!(exec.get_result::<u64>(&shallow).await.expect("fits"), 1000);
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_captured_per_call_and_bounded() {
    let (_dir, exec) = executor(2, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec.call_async(&f, "log", 2u64).await.expect("submit");
    exec.get_result::<()>(&fut).await.expect("logs");
    let log = fut.log().expect("done");
    for line in [
        "stdout line 0",
        "stderr line 0",
        "stdout line 1",
        "stderr line 1",
    ] {
        assert!(log.contains(line), "{line} missing from {log:?}");
    }
    // Ten MiB of printing: the call succeeds, the log is cut with a marker.
    let loud = exec
        .call_async(&f, "big_log", 10u64 << 20)
        .await
        .expect("submit");
    assert_eq!(
        exec.get_result::<u64>(&loud)
            .await
            .expect("runs to the end"),
        10 << 20
    );
    let log = loud.log().expect("done");
    assert!(log.len() < 2 << 20, "log kept {} bytes", log.len());
    assert!(log.contains("log cut off here"), "no marker");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_results_travel_through_storage() {
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let fut = exec
        .call_async(&f, "big_output", 1u64 << 20)
        .await
        .expect("submit");
    let text: String = exec.get_result(&fut).await.expect("1 MiB result");
    assert_eq!(text.len(), 1 << 20);
    let status = fut.status().expect("done");
    assert!(status.output.is_none() && status.output_key.is_some());
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_wasi_command_runs_as_a_function() {
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec
        .function_from_bytes("command", module("tests/guests/command"))
        .expect("loads");
    assert!(f.manifest().command);
    let fut = exec
        .call_async(&f, "_start", [1, 2, 3, 4])
        .await
        .expect("submit");
    assert_eq!(
        exec.get_result::<Value>(&fut).await.expect("sum"),
        json!({"sum": 10, "count": 4})
    );
    let bad = exec
        .call_async(&f, "_start", "not numbers")
        .await
        .expect("submit");
    let err = exec.get_result::<Value>(&bad).await.expect_err("exit 2");
    assert!(
        matches!(
            call_error(&err),
            CallError::Exit {
                code: 2,
                command: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("exited with code 2: "),
        "says why: {err}"
    );
    assert!(!bad.log().expect("done").is_empty(), "stderr is the log");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_map_is_an_empty_result() {
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futs = exec
        .map(&f, "noop", Vec::<u8>::new())
        .await
        .expect("submit");
    assert!(futs.is_empty());
    assert!(
        exec.get_results::<()>(&futs)
            .await
            .expect("nothing")
            .is_empty()
    );
    assert!(exec.jobs().is_empty(), "no job for no calls");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_returns_as_asked_and_honours_its_timeout() {
    let (_dir, exec) = executor(2, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let slow = exec
        .call_async(&f, "busy_ms", 3000u64)
        .await
        .expect("submit");
    let quick = exec.call_async(&f, "noop", ()).await.expect("submit");
    let both = [slow.clone(), quick.clone()];
    let any = exec.wait(&both, WaitFor::AnyCompleted, None).await;
    assert_eq!(any.done.len(), 1, "{any:?}");
    assert_eq!(any.done[0].job_id(), quick.job_id());
    let started = Instant::now();
    let timed = exec
        .wait(
            &both,
            WaitFor::AllCompleted,
            Some(Duration::from_millis(200)),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(timed.pending.len(), 1);
    assert!(matches!(
        slow.state(),
        CallState::Running | CallState::Pending
    ));
    let now = exec.wait(&both, WaitFor::Always, None).await;
    assert_eq!(now.done.len() + now.pending.len(), 2);
    let err = exec
        .get_result_timeout::<u64>(&slow, Duration::from_millis(50))
        .await
        .expect_err("still running");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    exec.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_removes_job_data_unless_asked_to_keep_it() {
    for keep in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let exec = wisp::FunctionExecutor::builder()
            .storage_dir(dir.path())
            .keep_job_data(keep)
            .build()
            .await
            .expect("executor");
        let f = exec.function_from_bytes("faults", faults()).expect("loads");
        let futs = exec.map(&f, "noop", [(), ()]).await.expect("submit");
        exec.get_results::<()>(&futs).await.expect("results");
        let storage = exec.storage().clone();
        let bucket = exec.config().storage_bucket.clone();
        let job = futs[0].job_id().to_owned();
        let prefix = format!("wisp/jobs/{job}/");
        let before = storage.list(&bucket, &prefix).await.expect("list");
        // The spec, the arguments, and the statuses of both calls.
        let mut calls = Vec::new();
        for object in before.iter().filter(|o| o.key.contains("/status/")) {
            let bytes = storage.get(&bucket, &object.key).await.expect("get");
            let statuses = wisp_runtime::protocol::parse_statuses(&bytes).expect("statuses");
            calls.extend(statuses.into_iter().map(|s| s.call_id));
        }
        calls.sort();
        assert_eq!(calls, ["00000", "00001"], "{before:?}");
        let count = before.len();
        exec.close().await.expect("close");
        let after = storage.list(&bucket, &prefix).await.expect("list");
        assert_eq!(after.len(), if keep { count } else { 0 }, "keep = {keep}");
        let modules = storage.list(&bucket, "wisp/modules/").await.expect("list");
        assert_eq!(modules.len(), 1, "modules stay for later jobs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_call_is_reported_while_the_next_one_runs() {
    // One worker: the short call's outcome must not wait for the long one.
    let (_dir, exec) = executor(1, Duration::from_secs(30)).await;
    let f = exec.function_from_bytes("faults", faults()).expect("loads");
    let futures = exec
        .map(&f, "sleep_ms", [100u64, 3000])
        .await
        .expect("submit");
    let started = Instant::now();
    let outcome = exec
        .wait(
            &futures,
            WaitFor::AnyCompleted,
            Some(Duration::from_secs(30)),
        )
        .await;
    let first = started.elapsed();
    assert_eq!(outcome.done.len(), 1, "{outcome:?}");
    assert_eq!(outcome.done[0].call_id(), "00000");
    assert!(
        first < Duration::from_millis(1500),
        "the first result took {first:?}"
    );
    let timings = futures[0].timings().expect("done");
    let recorded_after_ms = (timings.done_us - timings.function_end_us) / 1000;
    assert!(
        recorded_after_ms < 500,
        "recorded {recorded_after_ms} ms after it ended"
    );
    exec.close().await.expect("close");
}
