//! The same calls on bare wasmtime: the engine set up as wisp's engine sets
//! it up (epoch interruption, Cranelift at `Speed`, the pooling allocator
//! with the same slots and memory reservation, WASI preview 1 linked
//! synchronously), a store per call with a fresh WASI context whose stdout
//! and stderr go to memory pipes, and the function called through the guest
//! ABI by hand. No job, no storage, no limiter, no outcome record: the
//! floor under wisp's per-call cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use wasmtime::{InstancePre, Linker, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// wisp's epoch tick, and its deadline for a 300 s limit in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
const DEADLINE_TICKS: u64 = 60_001;
/// wisp's largest memory: all that a 32-bit module can address.
const MAX_MEMORY: usize = 4 << 30;
/// What the memory pipes keep, as wisp keeps 1 MiB of log.
const PIPE_CAPACITY: usize = 1 << 20;

/// A fresh engine set up as wisp's, with the module compiled and
/// pre-linked, ready to call `noop`.
pub struct Bare {
    engine: wasmtime::Engine,
    pre: InstancePre<WasiP1Ctx>,
    initialize: bool,
    /// How long `wasmtime::Module::new` took.
    pub compile: Duration,
    _ticker: Ticker,
}

impl Bare {
    /// Compiles `wasm` on a fresh engine with `slots` instance slots.
    pub fn new(wasm: &[u8], slots: u32) -> Result<Self> {
        let engine = engine(slots)?;
        let ticker = Ticker::start(engine.clone())?;
        let started = Instant::now();
        let module =
            wasmtime::Module::new(&engine, wasm).map_err(wasmtime_error("compile the module"))?;
        let compile = started.elapsed();
        let mut linker = Linker::<WasiP1Ctx>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx| ctx)
            .map_err(wasmtime_error("link WASI"))?;
        // wisp's own imports (panic, storage): `noop` calls none of them, so
        // bare wasmtime links them as traps and does no more work than it
        // must.
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(wasmtime_error("link wisp's imports"))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(wasmtime_error("link the module"))?;
        Ok(Self {
            engine,
            pre,
            initialize: module.get_export("_initialize").is_some(),
            compile,
            _ticker: ticker,
        })
    }

    /// One call: a store, an instance, `wisp_alloc`, the arguments `null`
    /// written into guest memory, `wisp:fn:noop`, and its output checked.
    pub fn call(&self) -> Result<()> {
        let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
        let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr)
            .args(&["wisp", "noop"])
            .build_p1();
        let mut store = Store::new(&self.engine, wasi);
        store.set_epoch_deadline(DEADLINE_TICKS);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(wasmtime_error("instantiate"))?;
        if self.initialize {
            instance
                .get_typed_func::<(), ()>(&mut store, "_initialize")
                .and_then(|f| f.call(&mut store, ()))
                .map_err(wasmtime_error("call _initialize"))?;
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("the module exports no memory")?;
        let args = b"null";
        let len = args.len() as i32;
        let ptr = instance
            .get_typed_func::<i32, i32>(&mut store, "wisp_alloc")
            .and_then(|alloc| alloc.call(&mut store, len))
            .map_err(wasmtime_error("call wisp_alloc"))?;
        ensure!(ptr != 0, "wisp_alloc returned a null pointer");
        memory
            .write(&mut store, ptr as u32 as usize, args)
            .context("wisp_alloc returned memory outside the guest's memory")?;
        let packed = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "wisp:fn:noop")
            .and_then(|f| f.call(&mut store, (ptr, len)))
            .map_err(wasmtime_error("call wisp:fn:noop"))? as u64;
        let (out_ptr, out_len) = ((packed >> 32) as usize, packed as u32 as usize);
        let output = memory
            .data(&store)
            .get(out_ptr..out_ptr + out_len)
            .context("noop's output lies outside the guest's memory")?;
        ensure!(
            output == b"\0null",
            "noop returned {:?}, not the Ok tag and `null`",
            String::from_utf8_lossy(output)
        );
        Ok(())
    }
}

/// A wasmtime engine configured as `wisp_engine::Engine::new` configures it.
fn engine(slots: u32) -> Result<wasmtime::Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_core_instances(slots);
    pool.total_memories(slots);
    pool.total_tables(slots);
    pool.total_stacks(slots);
    pool.total_component_instances(0);
    pool.max_memory_size(MAX_MEMORY);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    wasmtime::Engine::new(&config).map_err(wasmtime_error("set up wasmtime"))
}

/// wasmtime's own error type does not convert into `anyhow` with the
/// features wisp builds it with, so errors are carried over as text.
fn wasmtime_error(what: &'static str) -> impl Fn(wasmtime::Error) -> anyhow::Error {
    move |e| anyhow!("bare wasmtime: cannot {what}: {e:#}")
}

/// Advances the epoch every tick, as wisp's engine does, until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-epoch".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("cannot start the epoch thread")?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
