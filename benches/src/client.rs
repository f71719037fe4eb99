//! The workloads that go through the whole of wisp: a `FunctionExecutor`
//! on the localhost backend with local-directory storage, as a user runs it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use wisp::FunctionExecutor;
use wisp_engine::CallLimits;

/// Warm calls timed per run; the run's figure is their median.
const WARM_CALLS: usize = 11;

/// What one run of the executor workloads measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// `function_from_bytes` of a module this executor has never seen, then
    /// `call_async` and `get_result` of `noop`.
    pub first_call: Duration,
    /// The same in a second executor that finds the module's compiled
    /// code in the disk cache the first one filled (a new process would
    /// do the same).
    pub first_call_cached: Duration,
    /// `call_async` and `get_result` of `noop` once the module is loaded.
    pub warm_call: Duration,
    /// The map of `noop`: `map` and `get_results`.
    pub map: Map,
    /// `int_loop(n)` through the executor.
    pub int_loop: Kernel<u64>,
    /// `hash_bytes(megabytes)` through the executor.
    pub hash_bytes: Kernel<String>,
    /// The limits each call ran with.
    pub limits: CallLimits,
    /// Cold starts of the smallest module: wisp hello's 400 bytes.
    pub tiny: ColdStart,
    /// Cold starts of `examples/hello`, a Rust guest built with the SDK.
    pub hello: ColdStart,
}

/// The first result of a module in a new executor: compiled there, then
/// from the disk cache in another, then a warm repeat.
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    /// `function_from_bytes` + `call_async` + `get_result`, compiling.
    pub compiled: Duration,
    /// The same in a second executor that loads the compiled code.
    pub cached: Duration,
    /// `call_async` + `get_result` again in that executor (median of 11).
    pub warm: Duration,
}

/// Measures [`ColdStart`] for `function(args)` of `wasm`, which must
/// return `expected`, with a code cache of its own under `dir`.
pub async fn cold_start(
    dir: &Path,
    name: &str,
    wasm: &[u8],
    function: &str,
    args: serde_json::Value,
    expected: &serde_json::Value,
) -> Result<ColdStart> {
    let code_cache = dir.join("code-cache");
    let mut times = Vec::with_capacity(2);
    let mut warm = Vec::with_capacity(WARM_CALLS);
    for compiled in [true, false] {
        let exec = executor_with_cache(dir, 1, Some(code_cache.clone())).await?;
        let started = Instant::now();
        let f = exec
            .function_from_bytes(name, wasm.to_vec())
            .with_context(|| format!("the executor cannot load {name}"))?;
        let future = exec.call_async(&f, function, args.clone()).await?;
        let result = exec
            .get_result::<serde_json::Value>(&future)
            .await
            .with_context(|| format!("the first call of {name} failed"))?;
        times.push(started.elapsed());
        ensure!(
            &result == expected,
            "{name}: {function} gave {result}, not {expected}"
        );
        ensure!(
            f.from_code_cache() != compiled,
            "{name}: the {} executor should {} the module",
            if compiled { "first" } else { "second" },
            if compiled {
                "compile"
            } else {
                "load the compiled"
            }
        );
        if !compiled {
            for _ in 0..WARM_CALLS {
                let started = Instant::now();
                let future = exec.call_async(&f, function, args.clone()).await?;
                exec.get_result::<serde_json::Value>(&future).await?;
                warm.push(started.elapsed());
            }
        }
        exec.close().await.context("the executor did not close")?;
    }
    warm.sort();
    Ok(ColdStart {
        compiled: times[0],
        cached: times[1],
        warm: warm[WARM_CALLS / 2],
    })
}

/// A map of no-op calls, and where its time went.
#[derive(Debug, Clone, Copy)]
pub struct Map {
    /// From `map` to the end of `get_results`.
    pub wall: Duration,
    /// Until `map` returned: arguments and job spec stored, calls queued.
    pub submit: Duration,
    /// Summed over the calls: time inside `Engine::call` on the workers.
    pub engine: Duration,
}

/// A kernel's result and how long the call took.
#[derive(Debug, Clone)]
pub struct Kernel<T> {
    pub value: T,
    pub time: Duration,
}

/// Runs every executor workload once on a fresh executor with `workers`
/// workers and fresh storage in `dir`, and closes it.
///
/// The executor keeps its jobs' data: the caller removes it all at the end,
/// because on some file systems (ext4 without a journal) creating files is
/// slow for a minute or more after many were deleted, and the next
/// measurements would pay for this one's cleanup.
/// An executor on local storage in `dir` that keeps job data: the
/// benchmarks remove their files themselves, once, at the end.
pub async fn executor(dir: &Path, workers: usize) -> Result<FunctionExecutor> {
    executor_with_cache(dir, workers, None).await
}

/// As [`executor`], with compiled modules kept in `code_cache`.
async fn executor_with_cache(
    dir: &Path,
    workers: usize,
    code_cache: Option<std::path::PathBuf>,
) -> Result<FunctionExecutor> {
    let config = wisp::Config {
        storage_dir: dir.to_owned(),
        workers,
        code_cache,
        data_cleaner: false,
        ..wisp::Config::default()
    };
    FunctionExecutor::builder()
        .config(config)
        .build()
        .await
        .context("cannot start the executor")
}

#[allow(
    clippy::too_many_arguments,
    reason = "one run's inputs, named at the call"
)]
pub async fn run(
    dir: &Path,
    wasm: &[u8],
    hello_wasm: &[u8],
    calls: usize,
    workers: usize,
    int_loop_n: u64,
    hash_mib: u64,
) -> Result<Figures> {
    let code_cache = dir.join("code-cache");
    let exec = executor_with_cache(dir, workers, Some(code_cache.clone())).await?;

    let bytes = wasm.to_vec();
    let started = Instant::now();
    let f = exec
        .function_from_bytes("faults", bytes)
        .context("the executor cannot load the faults module")?;
    let future = exec.call_async(&f, "noop", ()).await?;
    exec.get_result::<()>(&future)
        .await
        .context("the first noop call failed")?;
    let first_call = started.elapsed();
    ensure!(
        !f.from_code_cache(),
        "the first executor compiled the module"
    );

    let first_call_cached = {
        let second = executor_with_cache(dir, workers, Some(code_cache)).await?;
        let started = Instant::now();
        let f = second
            .function_from_bytes("faults", wasm.to_vec())
            .context("the second executor cannot load the faults module")?;
        let future = second.call_async(&f, "noop", ()).await?;
        second
            .get_result::<()>(&future)
            .await
            .context("the first noop call from the code cache failed")?;
        let elapsed = started.elapsed();
        ensure!(
            f.from_code_cache(),
            "the second executor found the compiled code"
        );
        second
            .close()
            .await
            .context("the second executor did not close")?;
        elapsed
    };

    let mut warm = Vec::with_capacity(WARM_CALLS);
    for _ in 0..WARM_CALLS {
        let started = Instant::now();
        let future = exec.call_async(&f, "noop", ()).await?;
        exec.get_result::<()>(&future)
            .await
            .context("a warm noop call failed")?;
        warm.push(started.elapsed());
    }
    warm.sort();
    let warm_call = warm[WARM_CALLS / 2];

    let map = map_noop(&exec, &f, calls).await?;

    let started = Instant::now();
    let future = exec.call_async(&f, "int_loop", int_loop_n).await?;
    let value = exec
        .get_result::<u64>(&future)
        .await
        .context("int_loop failed")?;
    let int_loop = Kernel {
        value,
        time: started.elapsed(),
    };

    let started = Instant::now();
    let future = exec.call_async(&f, "hash_bytes", hash_mib).await?;
    let value = exec
        .get_result::<String>(&future)
        .await
        .context("hash_bytes failed")?;
    let hash_bytes = Kernel {
        value,
        time: started.elapsed(),
    };

    let limits = exec.limits();
    exec.close()
        .await
        .context("the executor did not close cleanly")?;
    let ten = serde_json::json!(10);
    let tiny = cold_start(
        &dir.join("tiny"),
        "wisp hello's module",
        &wisp::hello::module(),
        "my_function",
        serde_json::json!(3),
        &ten,
    )
    .await?;
    let hello = cold_start(
        &dir.join("hello"),
        "examples/hello",
        hello_wasm,
        "my_function",
        serde_json::json!(3),
        &ten,
    )
    .await?;
    Ok(Figures {
        tiny,
        hello,
        first_call,
        first_call_cached,
        warm_call,
        map,
        int_loop,
        hash_bytes,
        limits,
    })
}

async fn map_noop(exec: &FunctionExecutor, f: &wisp::Function, calls: usize) -> Result<Map> {
    let started = Instant::now();
    let futures = exec.map(f, "noop", std::iter::repeat_n((), calls)).await?;
    let submit = started.elapsed();
    let results: Vec<()> = exec
        .get_results(&futures)
        .await
        .context("the map of noop failed")?;
    let wall = started.elapsed();
    ensure!(
        results.len() == calls,
        "the map of {calls} calls gave {} results",
        results.len()
    );
    let mut engine_us = 0u64;
    for future in &futures {
        let t = future.timings().context("a finished call has no timings")?;
        engine_us += t.function_end_us.saturating_sub(t.function_start_us);
    }
    Ok(Map {
        wall,
        submit,
        engine: Duration::from_micros(engine_us),
    })
}
