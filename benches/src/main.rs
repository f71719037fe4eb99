//! wisp's benchmark: one program, one table.
//!
//! It measures what a call costs through the whole of wisp (a map on the
//! localhost executor), through wisp's engine alone, and on bare wasmtime
//! set up the same way, so that the table shows where the per-call time
//! goes; the cost of a module's first call against a warm one; and the
//! speed of compute in wisp against the same kernels compiled natively.
//!
//! ```text
//! cargo run -p wisp-bench -- [--calls N] [--runs R]
//! ```
//!
//! Each figure is the median over the runs, with the smallest and the
//! largest; each ratio is taken within one run, then summarised the same
//! way. Progress goes to stderr, the table to stdout.

mod bare;
mod client;
mod engine_loop;
mod native;
#[path = "../../tests/guests/faults/src/reference.rs"]
mod reference;
mod stats;
mod threads;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use clap::Parser;

use stats::{Row, Unit};

/// Measures wisp's per-call overhead, cold start and compute speed against
/// bare wasmtime and native code, and prints one Markdown table.
#[derive(Debug, Parser)]
#[command(name = "wisp-bench")]
struct Args {
    /// No-op calls in each throughput measurement.
    #[arg(long, default_value_t = 10_000)]
    calls: usize,
    /// Runs; each figure is the median over them, with min and max.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Steps of the `int_loop` kernel.
    #[arg(long, default_value_t = 200_000_000)]
    int_loop: u64,
    /// MiB hashed by the `hash_bytes` kernel.
    #[arg(long, default_value_t = 64)]
    hash_mib: u64,
}

/// Everything one run measured.
struct Run {
    client: client::Figures,
    engine: engine_loop::Figures,
    bare: bare::Figures,
    int_loop: native::Kernel<u64>,
    hash_bytes: native::Kernel<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.calls > 0, "--calls must be at least 1");
    ensure!(args.runs > 0, "--runs must be at least 1");
    let threads = std::thread::available_parallelism()
        .context("cannot tell how many cores this machine has")?
        .get();
    // The executor sizes its engine's instance pool this way.
    let slots = (threads as u32).saturating_mul(2).max(8);

    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests/faults");
    eprintln!("building {} for wasm32-wasip1…", guest.display());
    let wasm_path =
        wisp::builder::build_crate(&guest).context("the faults fixture does not build")?;
    let wasm = std::fs::read(&wasm_path)
        .with_context(|| format!("cannot read {}", wasm_path.display()))?;
    native::check_reference()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut runs = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        eprintln!("run {run} of {}…", args.runs);
        let client = runtime.block_on(client::run(
            &wasm,
            args.calls,
            threads,
            args.int_loop,
            args.hash_mib,
        ))?;
        let int_loop = native::int_loop(args.int_loop);
        ensure!(
            client.int_loop.value == int_loop.value,
            "int_loop({}) differs: wisp gives {}, native code {}",
            args.int_loop,
            client.int_loop.value,
            int_loop.value
        );
        let hash_bytes = native::hash_bytes(args.hash_mib)?;
        ensure!(
            client.hash_bytes.value == hash_bytes.value,
            "hash_bytes({}) differs: wisp gives {}, native code {}",
            args.hash_mib,
            client.hash_bytes.value,
            hash_bytes.value
        );
        let engine = engine_loop::run(&wasm, args.calls, threads, slots, &client.limits)?;
        let bare = bare::run(&wasm, args.calls, threads, slots)?;
        runs.push(Run {
            client,
            engine,
            bare,
            int_loop,
            hash_bytes,
        });
    }

    println!("## wisp benchmark\n");
    println!("- wisp {}", env!("CARGO_PKG_VERSION"));
    println!("- machine: {threads} cores (nproc), {}", cpu_model());
    println!(
        "- {} no-op calls per throughput figure, {} runs: each figure is the median \
         over the runs, with min and max; ratios are taken within each run",
        args.calls, args.runs
    );
    println!();
    print!("{}", stats::markdown(&rows(&args, threads), &runs));
    Ok(())
}

fn rows<'a>(args: &Args, threads: usize) -> Vec<Row<'a, Run>> {
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
            move |r| rate(r.engine.multi),
        ),
        figure(
            format!("bare wasmtime, instantiate + call, {threads} threads"),
            Unit::CallsPerSecond,
            move |r| rate(r.bare.multi),
        ),
        figure(
            "wisp engine alone, 1 thread",
            Unit::CallsPerSecond,
            move |r| rate(r.engine.single),
        ),
        figure("bare wasmtime, 1 thread", Unit::CallsPerSecond, move |r| {
            rate(r.bare.single)
        }),
        figure(
            format!("map ÷ bare wasmtime, time per call, {threads} threads (goal ≤ 5)"),
            Unit::Ratio,
            |r| ratio(r.client.map.wall, r.bare.multi),
        ),
        figure(
            format!("engine alone ÷ bare wasmtime, {threads} threads"),
            Unit::Ratio,
            |r| ratio(r.engine.multi, r.bare.multi),
        ),
        figure(
            format!("map ÷ engine alone, {threads} threads"),
            Unit::Ratio,
            |r| ratio(r.client.map.wall, r.engine.multi),
        ),
        figure(
            "engine alone ÷ bare wasmtime, 1 thread",
            Unit::Ratio,
            |r| ratio(r.engine.single, r.bare.single),
        ),
        section(format!(
            "Where a map call's time goes: thread time per call (wall × {threads} ÷ {calls})"
        )),
        figure("map, all of it", Unit::Micros, move |r| {
            per_call(r.client.map.wall, t)
        }),
        figure(
            "… inside `Engine::call` on a worker",
            Unit::Micros,
            move |r| per_call(r.client.map.engine, 1.0),
        ),
        figure(
            "… recording the outcome (status JSON, file write)",
            Unit::Micros,
            move |r| per_call(r.client.map.record, 1.0),
        ),
        figure(
            "… submitting (`map` returning: arguments and job spec stored)",
            Unit::Micros,
            move |r| per_call(r.client.map.submit, t),
        ),
        figure(
            "… the rest (queue, tracker, wake-ups, collecting results)",
            Unit::Micros,
            move |r| {
                let m = &r.client.map;
                per_call(m.wall, t)
                    - per_call(m.engine, 1.0)
                    - per_call(m.record, 1.0)
                    - per_call(m.submit, t)
            },
        ),
        figure("engine alone, all of it", Unit::Micros, move |r| {
            per_call(r.engine.multi, t)
        }),
        figure("bare wasmtime, all of it", Unit::Micros, move |r| {
            per_call(r.bare.multi, t)
        }),
        section("First call of a module vs a warm call (`faults`, `noop`)"),
        figure(
            "first: `function_from_bytes` + `call_async` + `get_result`, new executor",
            Unit::Millis,
            move |r| ms(r.client.first_call),
        ),
        figure(
            "warm: `call_async` + `get_result` (median of 11 per run)",
            Unit::Millis,
            move |r| ms(r.client.warm_call),
        ),
        figure("first ÷ warm", Unit::Ratio, |r| {
            ratio(r.client.first_call, r.client.warm_call)
        }),
        figure(
            "wisp `Engine::load` (compile, manifest, exports, pre-link), new engine",
            Unit::Millis,
            move |r| ms(r.engine.load),
        ),
        figure(
            "bare `wasmtime::Module::new`, new engine",
            Unit::Millis,
            move |r| ms(r.bare.compile),
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

/// The CPU's model name from `/proc/cpuinfo`, or why it is unknown.
fn cpu_model() -> String {
    match std::fs::read_to_string("/proc/cpuinfo") {
        Ok(info) => info
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "CPU model not in /proc/cpuinfo".to_owned()),
        Err(e) => format!("CPU model unknown (/proc/cpuinfo: {e})"),
    }
}
