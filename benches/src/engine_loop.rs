//! wisp's engine alone: `wisp_engine::Engine::call` in a loop on plain
//! threads, with the limits the executor gives each call. It is what the
//! executor's workers do per call minus the job protocol: no queue, no
//! outcome written to storage, no futures.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use wisp_engine::{CallLimits, Engine, EngineConfig};

use crate::threads;

/// The figures of one run.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// `Engine::load` of the module on a fresh engine: compiling, reading
    /// the manifest, checking the exports, pre-linking.
    pub load: Duration,
    /// The calls on as many threads as the executor has workers.
    pub multi: Duration,
    /// The calls on one thread.
    pub single: Duration,
}

/// Loads `wasm` on a fresh engine with `slots` instance slots, then makes
/// `calls` calls of `noop` on `threads` threads and again on one thread.
pub fn run(
    wasm: &[u8],
    calls: usize,
    threads: usize,
    slots: u32,
    limits: &CallLimits,
) -> Result<Figures> {
    let engine = Engine::new(EngineConfig {
        instance_slots: slots,
        ..EngineConfig::default()
    })
    .context("cannot set up wisp's engine")?;
    let started = Instant::now();
    let module = engine
        .load(wasm)
        .context("wisp's engine cannot load the module")?;
    let load = started.elapsed();
    let call = || -> Result<()> {
        let outcome = engine.call(&module, "noop", b"null", limits);
        let output = outcome
            .result
            .map_err(|e| anyhow!("engine call of noop failed: {e}"))?;
        ensure!(
            output == b"null",
            "engine call of noop returned {:?}, not `null`",
            String::from_utf8_lossy(&output)
        );
        Ok(())
    };
    for _ in 0..threads * 4 {
        call()?;
    }
    let multi = threads::split(calls, threads, call)?;
    let single = threads::split(calls, 1, call)?;
    Ok(Figures {
        load,
        multi,
        single,
    })
}
