//! The no-op call through each layer under the executor, measured side by
//! side in one run: wisp's runtime worker, local storage, wisp's engine and
//! bare wasmtime, on as many threads as the executor has workers, then the
//! engine and bare wasmtime on one thread.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use tokio::runtime::Handle;
use wisp_engine::CallLimits;

use crate::bare::Bare;
use crate::engine_loop::EngineNoop;
use crate::threads::split;
use crate::worker_loop::{StoragePut, WorkerNoop};

/// Calls per thread made before timing: the pool's slots, the code and the
/// storage directories are warm when the clock starts.
const WARM_UP_PER_THREAD: usize = 4;

/// What one run measured, each the wall time of all the calls.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub worker: Duration,
    pub storage: Duration,
    pub engine: Duration,
    pub bare: Duration,
    pub engine_single: Duration,
    pub bare_single: Duration,
    /// wisp's `Engine::load` on a fresh engine.
    pub engine_load: Duration,
    /// `wasmtime::Module::new` on a fresh engine.
    pub bare_compile: Duration,
}

/// Sets every layer up afresh (engines, storage in `dir`), and makes
/// `calls` calls through each; plain threads do the calls, `runtime`
/// drives storage. What the calls store stays in `dir` for the caller to
/// remove.
pub fn run(
    dir: &Path,
    wasm: &[u8],
    calls: usize,
    threads: usize,
    slots: u32,
    limits: CallLimits,
    runtime: &Handle,
) -> Result<Figures> {
    let warm_up = threads * WARM_UP_PER_THREAD;
    let engine = Arc::new(EngineNoop::new(wasm, slots, limits)?);
    let bare = Bare::new(wasm, slots)?;
    let worker = WorkerNoop::new(
        engine.clone(),
        &dir.join("worker"),
        runtime,
        calls + warm_up,
    )?;
    let mut status = Vec::new();
    for _ in 0..warm_up {
        engine.call()?;
        bare.call()?;
        status =
            serde_json::to_vec(&worker.call_with_status()?).context("cannot encode a status")?;
    }
    let storage = StoragePut::new(&dir.join("storage"), runtime, Bytes::from(status))?;
    for _ in 0..warm_up {
        storage.call()?;
    }

    let figures = Figures {
        worker: split(calls, threads, || worker.call())?,
        storage: split(calls, threads, || storage.call())?,
        engine: split(calls, threads, || engine.call())?,
        bare: split(calls, threads, || bare.call())?,
        engine_single: split(calls, 1, || engine.call())?,
        bare_single: split(calls, 1, || bare.call())?,
        engine_load: engine.load,
        bare_compile: bare.compile,
    };
    Ok(figures)
}
