//! The table's rows: what each figure is, and how it is read from a run.

use std::time::Duration;

use crate::stats::{Row, Unit};
use crate::{Args, Run};

/// The rows of the table for these arguments, on `threads` threads.
pub fn rows<'a>(args: &Args, threads: usize) -> Vec<Row<'a, Run>> {
    let n = args.calls as f64;
    let t = threads as f64;
    let rate = move |d: Duration| n / d.as_secs_f64();
    // Thread time per call: the wall time times the threads, over the calls.
    let per_call = move |d: Duration, threads: f64| d.as_secs_f64() * threads / n * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let secs = |d: Duration| d.as_secs_f64();
    let (calls, int_n, mib) = (args.calls, args.int_loop, args.hash_mib);
    vec![
        section(format!(
            "Per-call overhead: {calls} no-op calls on {threads} threads"
        )),
        figure(
            format!("wisp `map` + `get_results`, localhost, {threads} workers"),
            Unit::CallsPerSecond,
            move |r| rate(r.client.map.wall),
        ),
        figure(
            format!("wisp engine alone, `Engine::call` loop, {threads} threads"),
            Unit::CallsPerSecond,
            move |r| rate(r.layers.engine),
        ),
        figure(
            format!("bare wasmtime, instantiate + call, {threads} threads"),
            Unit::CallsPerSecond,
            move |r| rate(r.layers.bare),
        ),
        figure(
            "wisp engine alone, 1 thread",
            Unit::CallsPerSecond,
            move |r| rate(r.layers.engine_single),
        ),
        figure("bare wasmtime, 1 thread", Unit::CallsPerSecond, move |r| {
            rate(r.layers.bare_single)
        }),
        figure(
            format!("map ÷ bare wasmtime, time per call, {threads} threads (goal ≤ 3)"),
            Unit::Ratio,
            |r| ratio(r.client.map.wall, r.layers.bare),
        ),
        figure(
            format!("engine alone ÷ bare wasmtime, {threads} threads"),
            Unit::Ratio,
            |r| ratio(r.layers.engine, r.layers.bare),
        ),
        figure(
            "engine alone ÷ bare wasmtime, 1 thread",
            Unit::Ratio,
            |r| ratio(r.layers.engine_single, r.layers.bare_single),
        ),
        section(format!(
            "Where a map call's time goes: thread time per call (wall × threads ÷ {calls}), \
             each layer alone on {threads} threads"
        )),
        figure(
            "wisp `map` + `get_results` (the executor)",
            Unit::Micros,
            move |r| per_call(r.client.map.wall, t),
        ),
        figure(
            "… of which `map` returning (arguments and job spec stored, calls queued)",
            Unit::Micros,
            move |r| per_call(r.client.map.submit, t),
        ),
        figure(
            "… of which inside `Engine::call` on a worker (the calls' own timings)",
            Unit::Micros,
            move |r| per_call(r.client.map.engine, 1.0),
        ),
        figure(
            "wisp runtime worker alone, `Worker::run_call` (engine call + status written)",
            Unit::Micros,
            move |r| per_call(r.layers.worker, t),
        ),
        figure(
            "local storage alone, `put` of one status (a new file)",
            Unit::Micros,
            move |r| per_call(r.layers.storage, t),
        ),
        figure(
            "wisp engine alone, `Engine::call`",
            Unit::Micros,
            move |r| per_call(r.layers.engine, t),
        ),
        figure(
            "bare wasmtime, instantiate + call",
            Unit::Micros,
            move |r| per_call(r.layers.bare, t),
        ),
        figure("executor ÷ worker alone", Unit::Ratio, |r| {
            ratio(r.client.map.wall, r.layers.worker)
        }),
        figure("worker alone ÷ engine alone", Unit::Ratio, |r| {
            ratio(r.layers.worker, r.layers.engine)
        }),
        section("Cold start of small modules: first result in a new executor"),
        figure(
            "wisp hello's module (400 B): compiled",
            Unit::Millis,
            move |r| ms(r.client.tiny.compiled),
        ),
        figure(
            "wisp hello's module: compiled code from the disk cache",
            Unit::Millis,
            move |r| ms(r.client.tiny.cached),
        ),
        figure("wisp hello's module: warm", Unit::Millis, move |r| {
            ms(r.client.tiny.warm)
        }),
        figure(
            "examples/hello (137 KB, Rust + serde): compiled",
            Unit::Millis,
            move |r| ms(r.client.hello.compiled),
        ),
        figure(
            "examples/hello: compiled code from the disk cache",
            Unit::Millis,
            move |r| ms(r.client.hello.cached),
        ),
        figure("examples/hello: warm", Unit::Millis, move |r| {
            ms(r.client.hello.warm)
        }),
        section("First call of a module vs a warm call (`faults`, `noop`)"),
        figure(
            "first: `function_from_bytes` + `call_async` + `get_result`, new executor",
            Unit::Millis,
            move |r| ms(r.client.first_call),
        ),
        figure(
            "first, compiled code in the disk cache: the same in a second executor",
            Unit::Millis,
            move |r| ms(r.client.first_call_cached),
        ),
        figure(
            "warm: `call_async` + `get_result` (median of 11 per run)",
            Unit::Millis,
            move |r| ms(r.client.warm_call),
        ),
        figure("first ÷ warm", Unit::Ratio, |r| {
            ratio(r.client.first_call, r.client.warm_call)
        }),
        figure("first ÷ first from the disk cache", Unit::Ratio, |r| {
            ratio(r.client.first_call, r.client.first_call_cached)
        }),
        figure(
            "wisp `Engine::load` (compile, manifest, exports, pre-link), new engine",
            Unit::Millis,
            move |r| ms(r.layers.engine_load),
        ),
        figure(
            "bare `wasmtime::Module::new`, new engine",
            Unit::Millis,
            move |r| ms(r.layers.bare_compile),
        ),
        section("Compute against native code (results checked equal)"),
        figure(
            format!("`int_loop({int_n})` in wisp, `call_async` + `get_result`"),
            Unit::Seconds,
            move |r| secs(r.client.int_loop.time),
        ),
        figure(
            format!("`int_loop({int_n})` native"),
            Unit::Seconds,
            move |r| secs(r.int_loop.time),
        ),
        figure("int_loop: wisp ÷ native", Unit::Ratio, |r| {
            ratio(r.client.int_loop.time, r.int_loop.time)
        }),
        figure(
            format!("`hash_bytes({mib})` ({mib} MiB) in wisp, `call_async` + `get_result`"),
            Unit::Millis,
            move |r| ms(r.client.hash_bytes.time),
        ),
        figure(
            format!("`hash_bytes({mib})` native"),
            Unit::Millis,
            move |r| ms(r.hash_bytes.time),
        ),
        figure("hash_bytes: wisp ÷ native", Unit::Ratio, |r| {
            ratio(r.client.hash_bytes.time, r.hash_bytes.time)
        }),
    ]
}

fn figure<'a>(
    label: impl Into<String>,
    unit: Unit,
    value: impl Fn(&Run) -> f64 + 'a,
) -> Row<'a, Run> {
    Row::figure(label, unit, value)
}

fn section<'a>(title: impl Into<String>) -> Row<'a, Run> {
    Row::section(title)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
}
