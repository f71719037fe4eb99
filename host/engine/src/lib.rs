//! wisp's engine: wasmtime, narrowed to what running a function needs.
//!
//! An [`Engine`] compiles each module once per process, caches it by the
//! SHA-256 of its bytes, and runs every call in a fresh instance with its
//! own limits: a memory cap enforced by a resource limiter, a wall-time cap
//! enforced by epoch interruption, and bounded capture of stdout and stderr
//! as the call's log. A trap, a panic or a timeout fails that call only; the
//! engine and every other call carry on.
//!
//! The engine knows nothing of jobs, storage or networks: it takes bytes in
//! and gives bytes out. See `wisp-runtime` for the job protocol around it.
//!
//! Calls are synchronous and must run on a thread that is not driving an
//! async runtime (a plain thread or tokio's `spawn_blocking`): WASI's stdio
//! is serviced by blocking on tokio internally.

mod cache;
mod call;
mod log;
mod module;
mod sleep;
mod storage;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use wasmtime::{InstancePre, Linker, ModuleExport};

pub use cache::{CacheError, CodeCache, CodeSeal};
pub use call::{CallEnv, CallError, CallLimits, CallOutcome};
pub use log::{CapturedLog, LogPipe};
pub use module::{COMMAND_FUNCTION, FunctionInfo, Manifest};
pub use storage::{GuestStorage, SharedStorage};

use call::CallState;

/// How the engine is set up. The defaults suit a machine that runs one call
/// per core.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The largest memory any call may be given, in bytes. Calls ask for
    /// less through [`CallLimits::memory`]; this sizes the instance pool.
    /// Default: 4 GiB, all a 32-bit module can address.
    pub max_memory: u64,
    /// How many instances may be alive at once when pooling. Default: 64.
    pub instance_slots: u32,
    /// Pre-reserve instance slots and memories (wasmtime's pooling
    /// allocator). It makes instantiation several times cheaper. Default: on.
    pub pooling: bool,
    /// The granularity of time limits. Default: 5 ms.
    pub epoch_tick: Duration,
    /// A directory where compiled modules are kept between processes,
    /// authenticated (see [`CodeCache`]). Default: none.
    pub code_cache: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_memory: 4 << 30,
            instance_slots: 64,
            pooling: true,
            epoch_tick: Duration::from_millis(5),
            code_cache: None,
        }
    }
}

/// A module's identity: the SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = ModuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| ModuleError::Invalid(format!("`{s}` is not a SHA-256 digest in hex")))?;
        Ok(Self(bytes))
    }
}

/// Why the engine could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("could not set up wasmtime: {0}")]
    Wasmtime(String),
}

/// Why a module cannot be run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    /// The bytes are not WebAssembly at all.
    #[error(
        "this is not a WebAssembly module (it starts with {0}); \
         pass a .wasm file or a crate directory"
    )]
    NotWasm(String),
    /// The bytes look like WebAssembly but do not validate or compile.
    #[error("the WebAssembly module is invalid: {0}")]
    Invalid(String),
    /// Neither a manifest nor `_start`.
    #[error(
        "the module has neither a wisp manifest nor a `_start` export, so wisp \
         cannot tell what to call: mark functions with #[wisp_guest::function], \
         or build a WASI command that reads JSON on stdin"
    )]
    NotAFunctionModule,
    /// The manifest names an ABI this host does not speak.
    #[error(
        "the module was built for wisp guest ABI version {module} (wisp-guest {sdk}), \
         but this host speaks ABI {supported}: rebuild the function against \
         wisp-guest {host_sdk}, or run it with a wisp release that supports ABI {module}",
        supported = supported_abis(),
        host_sdk = env!("CARGO_PKG_VERSION")
    )]
    AbiMismatch {
        /// The module's ABI version.
        module: u32,
        /// The SDK version that built it.
        sdk: String,
    },
    /// The manifest cannot be read.
    #[error("the module's wisp manifest is malformed: {0}")]
    BadManifest(String),
    /// The manifest promises an export that is missing or of the wrong type.
    #[error("the module does not export what its manifest promises: {0}")]
    BadExports(String),
    /// The module imports something wisp does not provide.
    #[error("the module cannot be linked: {0}")]
    Link(String),
}

fn supported_abis() -> String {
    let range = wisp_abi::SUPPORTED_ABI_VERSIONS;
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{} to {}", range.start(), range.end())
    }
}

/// A compiled module, ready to instantiate.
pub struct Module {
    digest: Digest,
    manifest: Manifest,
    pre: InstancePre<CallState>,
    exports: Exports,
    from_code_cache: bool,
}

/// Export handles resolved once at load, so that a call does no lookups by
/// name.
struct Exports {
    memory: Option<ModuleExport>,
    alloc: Option<ModuleExport>,
    initialize: Option<ModuleExport>,
    functions: HashMap<String, ModuleExport>,
}

impl Module {
    /// The SHA-256 of the module's bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Whether its compiled code came from the disk cache rather than
    /// from compiling it in this process.
    pub fn from_code_cache(&self) -> bool {
        self.from_code_cache
    }

    /// What the module declares about itself.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("digest", &self.digest)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

/// Compiles, caches and runs modules. Cheap to share behind an `Arc`.
pub struct Engine {
    wasmtime: wasmtime::Engine,
    linker: Linker<CallState>,
    modules: Mutex<HashMap<Digest, Arc<Module>>>,
    tick: Duration,
    ticker: Option<Ticker>,
    /// Bumped by [`Engine::cancel_running`]; calls that began before stop.
    cancel: Arc<std::sync::atomic::AtomicU64>,
    /// Compiled modules on disk, and the tag of this engine's settings
    /// that an entry must match.
    code_cache: Option<(CodeCache, String)>,
    /// That tag: compiled code made by an engine with another tag does not
    /// load here.
    tag: String,
}

impl Engine {
    /// Sets up wasmtime with `config`, and starts the thread that drives
    /// time limits.
    ///
    /// # Errors
    ///
    /// When wasmtime refuses the configuration, for example a pool that
    /// cannot reserve its address space.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let wasmtime = match wasmtime::Engine::new(&wasm_config(&config, config.pooling)) {
            Ok(engine) => engine,
            // The pool reserves address space up front (4 GiB and guard
            // pages per slot); where a ulimit forbids that, instances are
            // allocated on demand instead, slower to create but equal to run.
            Err(e) if config.pooling => {
                tracing::warn!(
                    "cannot reserve the instance pool ({e:#}); allocating instances on demand"
                );
                wasmtime::Engine::new(&wasm_config(&config, false))
                    .map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?
            }
            Err(e) => return Err(EngineError::Wasmtime(format!("{e:#}"))),
        };
        let linker =
            call::linker(&wasmtime).map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
        let ticker = Ticker::start(wasmtime.clone(), config.epoch_tick)
            .map_err(|e| EngineError::Wasmtime(format!("could not start the epoch thread: {e}")))?;
        let tag = compatibility_tag(&wasmtime);
        let code_cache = config.code_cache.as_ref().and_then(|dir| {
            CodeCache::open(dir)
                .map_err(|e| tracing::warn!("compiling without a code cache: {e}"))
                .ok()
                .map(|cache| (cache, tag.clone()))
        });
        Ok(Self {
            wasmtime,
            linker,
            modules: Mutex::new(HashMap::new()),
            tick: config.epoch_tick,
            ticker: Some(ticker),
            cancel: Arc::default(),
            code_cache,
            tag,
        })
    }

    /// The tag of this engine's settings: compiled code is kept under it,
    /// and loads only into engines with the same one.
    pub fn code_tag(&self) -> &str {
        &self.tag
    }

    /// The module of `bytes` from compiled code that `seal` vouches for
    /// (see [`seal_code`](Self::seal_code)), or the one this engine has
    /// already; `None` when the code does not verify or does not load
    /// here, and the module must be compiled.
    ///
    /// # Errors
    ///
    /// When the bytes are not a module wisp can run.
    pub fn load_sealed(
        &self,
        bytes: &[u8],
        sealed: &[u8],
        seal: &CodeSeal,
    ) -> Result<Option<Arc<Module>>, ModuleError> {
        let digest = Digest::of(bytes);
        if let Some(module) = self.cached(&digest) {
            return Ok(Some(module));
        }
        let Some(code) = seal.open(&digest, &self.tag, sealed) else {
            tracing::warn!(%digest, "ignoring compiled code whose MAC does not verify");
            return Ok(None);
        };
        // SAFETY: the code is what `Module::serialize` wrote for an engine
        // with these settings (the tag), and its MAC, made with a key that
        // only those who share this seal hold, shows that none else wrote
        // it. wasmtime checks the version and settings again.
        let compiled = match unsafe { wasmtime::Module::deserialize(&self.wasmtime, code) } {
            Ok(compiled) => compiled,
            Err(e) => {
                tracing::debug!(%digest, "sealed code does not load, compiling: {e:#}");
                return Ok(None);
            }
        };
        let manifest = Manifest::read(bytes)?;
        let module = Arc::new(self.finish(digest, manifest, compiled, true)?);
        Ok(Some(self.cache().entry(digest).or_insert(module).clone()))
    }

    /// The module's compiled code, sealed for [`load_sealed`](Self::load_sealed)
    /// in engines of the same settings.
    pub fn seal_code(&self, module: &Module, seal: &CodeSeal) -> Option<Vec<u8>> {
        match module.pre.module().serialize() {
            Ok(code) => Some(seal.seal(&module.digest, &self.tag, &code)),
            Err(e) => {
                tracing::debug!(digest = %module.digest, "cannot serialize the module: {e:#}");
                None
            }
        }
    }

    /// The module with this digest, if this engine has compiled it.
    pub fn cached(&self, digest: &Digest) -> Option<Arc<Module>> {
        self.cache().get(digest).cloned()
    }

    /// Compiles a module, or returns the one compiled before from the same
    /// bytes.
    ///
    /// # Errors
    ///
    /// When the bytes are not a module wisp can run: see [`ModuleError`].
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<Module>, ModuleError> {
        let digest = Digest::of(bytes);
        if let Some(module) = self.cached(&digest) {
            return Ok(module);
        }
        let module = Arc::new(self.compile(digest, bytes)?);
        // Two threads may have compiled the same module at once; both
        // results are equivalent, and the first one stored wins.
        Ok(self.cache().entry(digest).or_insert(module).clone())
    }

    fn compile(&self, digest: Digest, bytes: &[u8]) -> Result<Module, ModuleError> {
        if !bytes.starts_with(b"\0asm") {
            let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Err(ModuleError::NotWasm(if head.is_empty() {
                "nothing: the file is empty".to_owned()
            } else {
                format!("the bytes 0x{head}")
            }));
        }
        let started = std::time::Instant::now();
        let manifest = Manifest::read(bytes)?;
        let cached = self.cached_code(&digest);
        let from_code_cache = cached.is_some();
        let compiled = match cached {
            Some(module) => module,
            None => {
                let module = wasmtime::Module::new(&self.wasmtime, bytes)
                    .map_err(|e| ModuleError::Invalid(format!("{e:#}")))?;
                if let Some((cache, tag)) = &self.code_cache {
                    match module.serialize() {
                        Ok(code) => cache.put(&digest, tag, &code),
                        Err(e) => tracing::debug!(%digest, "cannot serialize the module: {e:#}"),
                    }
                }
                module
            }
        };
        let module = self.finish(digest, manifest, compiled, from_code_cache)?;
        tracing::debug!(%digest, elapsed = ?started.elapsed(), from_code_cache, "compiled module");
        Ok(module)
    }

    /// A module from its compiled code: manifest, exports and pre-link.
    fn finish(
        &self,
        digest: Digest,
        manifest: Manifest,
        compiled: wasmtime::Module,
        from_code_cache: bool,
    ) -> Result<Module, ModuleError> {
        let exports = resolve_exports(&compiled, &manifest)?;
        let pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| ModuleError::Link(link_message(&e)))?;
        Ok(Module {
            digest,
            manifest,
            pre,
            exports,
            from_code_cache,
        })
    }

    /// The module's compiled code from the disk cache, when an entry for
    /// this engine is there and authentic.
    fn cached_code(&self, digest: &Digest) -> Option<wasmtime::Module> {
        let (cache, tag) = self.code_cache.as_ref()?;
        let code = cache.get(digest, tag)?;
        // SAFETY: the code is what `Module::serialize` wrote for an engine
        // with these settings (the tag), and its MAC, made with a key only
        // this user can read, shows that no one else wrote it. wasmtime
        // checks the version and settings again before loading it.
        match unsafe { wasmtime::Module::deserialize(&self.wasmtime, &code) } {
            Ok(module) => {
                tracing::debug!(%digest, "loaded the compiled module from the code cache");
                Some(module)
            }
            Err(e) => {
                tracing::debug!(%digest, "cached code does not load, compiling: {e:#}");
                None
            }
        }
    }

    /// Runs one call of `function` with JSON `args` in a fresh instance.
    ///
    /// Never fails as a whole: whatever goes wrong is the call's error, in
    /// the outcome, with whatever the call logged before it.
    ///
    /// Must not be called from a thread that drives an async runtime.
    pub fn call(
        &self,
        module: &Module,
        function: &str,
        args: &[u8],
        limits: &CallLimits,
    ) -> CallOutcome {
        call::run(self, module, function, args, limits, CallEnv::default())
    }

    /// As [`call`](Self::call), with `storage` reachable through wisp's
    /// storage imports.
    pub fn call_with_storage(
        &self,
        module: &Module,
        function: &str,
        args: &[u8],
        limits: &CallLimits,
        storage: SharedStorage,
    ) -> CallOutcome {
        self.call_in(
            module,
            function,
            args,
            limits,
            CallEnv {
                storage: Some(storage),
                ..CallEnv::default()
            },
        )
    }

    /// As [`call`](Self::call), in the given environment: storage,
    /// environment variables, and how the output streams are kept.
    pub fn call_in(
        &self,
        module: &Module,
        function: &str,
        args: &[u8],
        limits: &CallLimits,
        env: CallEnv,
    ) -> CallOutcome {
        call::run(self, module, function, args, limits, env)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Module>>> {
        self.modules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops every call running now, as soon as it next runs wasm code or
    /// wakes from a sleep; each fails with [`CallError::Cancelled`]. Calls
    /// started afterwards are not affected.
    pub fn cancel_running(&self) {
        self.cancel.fetch_add(1, Ordering::Relaxed);
    }

    /// How many epoch ticks pass between two looks at a call's deadline:
    /// about 50 ms, so a call stops within that of its limit.
    fn check_ticks(&self) -> u64 {
        (Duration::from_millis(50).as_nanos() / self.tick.as_nanos().max(1)).max(1) as u64
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("modules", &self.cache().len())
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}

/// A name for everything that decides whether compiled code fits this
/// engine: wasmtime's own hash of its version and code-shaping settings.
/// (A toolchain that hashes differently only costs a recompile.)
fn compatibility_tag(engine: &wasmtime::Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("e{:016x}", hasher.finish())
}

fn wasm_config(config: &EngineConfig, pooling: bool) -> wasmtime::Config {
    let mut wasm_config = wasmtime::Config::new();
    wasm_config.epoch_interruption(true);
    wasm_config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_core_instances(config.instance_slots);
        pool.total_memories(config.instance_slots);
        pool.total_tables(config.instance_slots);
        pool.total_stacks(config.instance_slots);
        pool.total_component_instances(0);
        pool.max_memory_size(config.max_memory as usize);
        wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    wasm_config
}

fn resolve_exports(module: &wasmtime::Module, manifest: &Manifest) -> Result<Exports, ModuleError> {
    use wasmtime::ValType::{I32, I64};

    let func_export = |name: &str, params: &[wasmtime::ValType], results: &[wasmtime::ValType]| {
        let Some(ty) = module.get_export(name) else {
            return Err(ModuleError::BadExports(format!("no export named `{name}`")));
        };
        let ok = ty.func().is_some_and(|f| {
            f.params()
                .map(|p| p.to_string())
                .eq(params.iter().map(|p| p.to_string()))
                && f.results()
                    .map(|r| r.to_string())
                    .eq(results.iter().map(|r| r.to_string()))
        });
        if !ok {
            return Err(ModuleError::BadExports(format!(
                "`{name}` is not a function of type {params:?} -> {results:?}"
            )));
        }
        module
            .get_export_index(name)
            .ok_or_else(|| ModuleError::BadExports(format!("no export named `{name}`")))
    };
    let initialize = match module.get_export("_initialize") {
        Some(_) => Some(func_export("_initialize", &[], &[])?),
        None => None,
    };
    if manifest.command {
        return Ok(Exports {
            memory: None,
            alloc: None,
            initialize,
            functions: HashMap::from([(
                COMMAND_FUNCTION.to_owned(),
                func_export(COMMAND_FUNCTION, &[], &[])?,
            )]),
        });
    }
    let memory = match module.get_export("memory") {
        Some(ty) if ty.memory().is_some() => module.get_export_index("memory"),
        _ => {
            return Err(ModuleError::BadExports(
                "no memory exported as `memory`".to_owned(),
            ));
        }
    };
    let alloc = func_export(wisp_abi::ALLOC_EXPORT, &[I32], &[I32])?;
    let functions = manifest
        .functions
        .keys()
        .map(|name| {
            let export = func_export(&wisp_abi::function_export(name), &[I32, I32], &[I64])?;
            Ok((name.clone(), export))
        })
        .collect::<Result<_, ModuleError>>()?;
    Ok(Exports {
        memory,
        alloc: Some(alloc),
        initialize,
        functions,
    })
}

fn link_message(error: &wasmtime::Error) -> String {
    let message = format!("{error:#}");
    if message.contains("unknown import") {
        format!(
            "{message}; a wisp function may import only WASI preview 1 \
             (`wasi_snapshot_preview1`) and wisp's own `{}` module",
            wisp_abi::IMPORT_MODULE
        )
    } else {
        message
    }
}

/// The thread that advances the epoch, so that calls past their deadline
/// are interrupted.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wisp-epoch".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}
