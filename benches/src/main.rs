//! wisp's benchmark: one program, one table.
//!
//! It measures what a call costs through the whole of wisp (a map on the
//! localhost executor), through each layer under it alone (the runtime's
//! worker, local storage, the engine), and on bare wasmtime set up as
//! wisp's engine, so that the table shows where the per-call time goes;
//! the cost of a module's first call against a warm one; and the speed of
//! compute in wisp against the same kernels compiled natively.
//!
//! ```text
//! cargo run -p wisp-bench -- [--calls N] [--runs R] [--storage-dir DIR] [--lithops]
//! ```
//!
//! With `--lithops`, each run also runs Lithops on its localhost backend
//! (see `lithops.rs`), and the table compares it with wisp.
//!
//! Each figure is the median over the runs, with the smallest and the
//! largest; each ratio is taken within one run, then summarised the same
//! way. Progress goes to stderr, the table to stdout.

mod bare;
mod client;
mod engine_loop;
mod layers;
mod lithops;
mod machine;
mod native;
#[path = "../../tests/guests/faults/src/reference.rs"]
mod reference;
mod report;
#[allow(
    dead_code,
    reason = "shared by both benchmark binaries; each uses part of it"
)]
mod stats;
mod threads;
mod worker_loop;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, ensure};
use clap::Parser;

use machine::{cpu_model, file_system, load_average};

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
    /// Where the local storage of the runs goes (a fresh directory inside
    /// it, removed at the end). Default: the system's temporary directory.
    #[arg(long)]
    storage_dir: Option<PathBuf>,
    /// Also run Lithops (localhost backend and storage, installed into a
    /// virtualenv by benches/lithops/setup.sh) and compare it with wisp.
    #[arg(long)]
    lithops: bool,
    /// No-op calls in Lithops' map. Default: --calls, at most 1,000.
    #[arg(long)]
    lithops_calls: Option<usize>,
}

/// Everything one run measured.
struct Run {
    client: client::Figures,
    layers: layers::Figures,
    int_loop: native::Kernel<u64>,
    hash_bytes: native::Kernel<String>,
    lithops: Option<lithops::Figures>,
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
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    eprintln!("building {} for wasm32-wasip1…", hello.display());
    let hello_path = wisp::builder::build_crate(&hello).context("examples/hello does not build")?;
    let hello_wasm = std::fs::read(&hello_path)
        .with_context(|| format!("cannot read {}", hello_path.display()))?;
    native::check_reference()?;
    let mut comparison = if args.lithops {
        Some(lithops::Comparison::start(&args, threads)?)
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let storage_parent = args.storage_dir.clone().unwrap_or_else(std::env::temp_dir);
    let storage = tempfile::Builder::new()
        .prefix("wisp-bench-")
        .tempdir_in(&storage_parent)
        .with_context(|| format!("cannot create a directory in {}", storage_parent.display()))?;
    let load_before = load_average();
    let mut runs = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        eprintln!("run {run} of {}…", args.runs);
        let run_dir = storage.path().join(format!("run-{run}"));
        let client = runtime.block_on(client::run(
            &run_dir.join("executor"),
            &wasm,
            &hello_wasm,
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
        let layers = layers::run(
            &run_dir.join("layers"),
            &wasm,
            args.calls,
            threads,
            slots,
            client.limits.clone(),
            runtime.handle(),
        )?;
        let lithops = match comparison.as_mut() {
            Some(c) => c.run(&runtime, &run_dir.join("lithops"), run)?,
            None => None,
        };
        runs.push(Run {
            client,
            layers,
            int_loop,
            hash_bytes,
            lithops,
        });
    }
    let load_after = load_average();
    eprintln!("removing {}…", storage.path().display());
    let storage_path = storage.path().to_owned();
    storage
        .close()
        .with_context(|| format!("cannot remove {}", storage_path.display()))?;

    println!("## wisp benchmark\n");
    println!("- wisp {}", env!("CARGO_PKG_VERSION"));
    println!("- machine: {threads} cores (nproc), {}", cpu_model());
    println!(
        "- local storage in {} ({})",
        storage_parent.display(),
        file_system(&storage_parent)
    );
    println!("- load average (1, 5, 15 min) before: {load_before}; after: {load_after}");
    println!(
        "- {} no-op calls per throughput figure, {} runs: each figure is the median \
         over the runs, with min and max; ratios are taken within each run",
        args.calls, args.runs
    );
    let mut rows = report::rows(&args, threads);
    if let Some(c) = &comparison {
        c.notes(&runs).iter().for_each(|note| println!("{note}"));
        rows.extend(c.rows(&args, &runs));
    }
    println!();
    print!("{}", stats::markdown(&rows, &runs));
    Ok(())
}
