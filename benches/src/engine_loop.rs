//! wisp's engine alone: `wisp_engine::Engine::call` of `noop` in a loop,
//! with the limits the executor gives each call. It is what the executor's
//! workers do per call minus the job protocol: no queue, no outcome written
//! to storage, no futures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use wisp_engine::{CallLimits, Engine, EngineConfig, Module};

/// A fresh engine with the module loaded, ready to call `noop`.
pub struct EngineNoop {
    pub engine: Arc<Engine>,
    pub module: Arc<Module>,
    pub limits: CallLimits,
    /// How long `Engine::load` took: compiling, reading the manifest,
    /// checking the exports, pre-linking.
    pub load: Duration,
}

impl EngineNoop {
    /// An engine with `slots` instance slots, as the executor sets one up,
    /// with `wasm` loaded.
    pub fn new(wasm: &[u8], slots: u32, limits: CallLimits) -> Result<Self> {
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
        Ok(Self {
            engine: Arc::new(engine),
            module,
            limits,
            load,
        })
    }

    /// One call of `noop`, its result checked. Must run on a plain thread.
    pub fn call(&self) -> Result<()> {
        let outcome = self
            .engine
            .call(&self.module, "noop", b"null", &self.limits);
        let output = outcome
            .result
            .map_err(|e| anyhow!("engine call of noop failed: {e}"))?;
        ensure!(
            output == b"null",
            "engine call of noop returned {:?}, not `null`",
            String::from_utf8_lossy(&output)
        );
        Ok(())
    }
}
