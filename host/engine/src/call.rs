//! One call: a fresh instance, its limits, and the outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use wasmtime::{Caller, Linker, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};
use wisp_wire::output::GuestOutput;

use crate::log::{CapturedLog, LogPipe};
use crate::storage::SharedStorage;
use crate::{Engine, Module};

/// The limits of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLimits {
    /// The most linear memory the call may use, in bytes. Default: 256 MiB.
    pub memory: u64,
    /// The most wall time the call may take. Default: 300 s.
    pub timeout: Duration,
    /// The most stdout and stderr kept as the call's log, in bytes; the
    /// rest is dropped and counted. Default: 1 MiB.
    pub log_bytes: usize,
    /// The largest result the call may return, in bytes. Default: 64 MiB.
    pub output_bytes: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            memory: 256 << 20,
            timeout: Duration::from_secs(300),
            log_bytes: 1 << 20,
            output_bytes: 64 << 20,
        }
    }
}

/// Why a call failed. Each message names the cause and, where there is
/// one, the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallError {
    /// The module has no function of that name.
    #[error("the module has no function `{function}`; it has: {available}")]
    UnknownFunction {
        /// The name asked for.
        function: String,
        /// The names the module has.
        available: String,
    },
    /// The arguments do not fit the function's parameters.
    #[error("bad arguments: {message}")]
    BadArguments {
        /// The guest's description, with serde's message.
        message: String,
    },
    /// The function returned an error.
    #[error("the function returned an error: {message}")]
    Function {
        /// The error's message.
        message: String,
    },
    /// The function panicked.
    #[error("the function {message}")]
    Panic {
        /// `panicked at file:line:col: message`.
        message: String,
    },
    /// The call ran past its time limit.
    #[error(
        "the call ran past its time limit of {} and was stopped; \
         raise runtime_timeout if it needs longer",
        humanize_ms(*limit_ms)
    )]
    Timeout {
        /// The limit, in milliseconds.
        limit_ms: u64,
    },
    /// The call wanted more memory than it may have.
    #[error(
        "the call needed more memory than its limit of {}{}; \
         raise runtime_memory if it needs more",
        humanize_bytes(*limit_bytes),
        requested_bytes.map(|r| format!(" (it asked for {} in all)", humanize_bytes(r))).unwrap_or_default()
    )]
    MemoryLimit {
        /// The limit.
        limit_bytes: u64,
        /// The size the guest tried to grow its memory to.
        requested_bytes: Option<u64>,
    },
    /// The call was stopped because whoever ran it shut down.
    #[error("the call was cancelled: its executor closed before it finished")]
    Cancelled,
    /// The guest overflowed its stack.
    #[error("the function overflowed its stack (unbounded recursion?)")]
    StackOverflow,
    /// Any other trap.
    #[error("the function trapped: {message}")]
    Trap {
        /// wasmtime's description, with the wasm backtrace.
        message: String,
    },
    /// The guest called `proc_exit`.
    #[error(
        "the function exited with code {code}{}{}",
        if *command { "" } else { " instead of returning" },
        if last_words.is_empty() { String::new() } else { format!(": {last_words}") }
    )]
    Exit {
        /// The exit code.
        code: i32,
        /// Whether the module is a WASI command (for which exiting is normal).
        command: bool,
        /// The last line it wrote to stderr, which usually says why.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        last_words: String,
    },
    /// The result is larger than the limit.
    #[error(
        "the result is {} but results are limited to {}; \
         write large results to storage and return their key",
        humanize_bytes(*bytes),
        humanize_bytes(*limit)
    )]
    OutputTooLarge {
        /// The result's size, as far as it is known.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The guest returned something that is not a valid result.
    #[error("the function returned an invalid result: {message}")]
    InvalidOutput {
        /// What was wrong.
        message: String,
    },
    /// The instance could not be created.
    #[error("could not start an instance of the module: {message}")]
    Instantiate {
        /// wasmtime's message.
        message: String,
    },
}

impl CallError {
    /// Whether the function itself is at fault (its code, its arguments),
    /// as opposed to the platform. Retrying does not help such a call.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Instantiate { .. })
    }
}

/// What happened in one call.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The result as JSON, or the error.
    pub result: Result<Vec<u8>, CallError>,
    /// What the call wrote to stdout and stderr (for a WASI command, only
    /// stderr: its stdout is the result).
    pub log: CapturedLog,
    /// What it wrote to stderr, when the call asked for the streams apart
    /// ([`CallEnv::split_streams`]); otherwise stderr is in `log`.
    pub stderr: Option<CapturedLog>,
    /// When the instance was about to be created.
    pub started: SystemTime,
    /// When the call returned or failed.
    pub finished: SystemTime,
}

/// The store data of one call.
pub(crate) struct CallState {
    wasi: WasiP1Ctx,
    limiter: Limiter,
    panic: Option<String>,
    pub(crate) storage: Option<SharedStorage>,
    /// The response of the last storage import, until the guest takes it.
    pub(crate) response: bytes::Bytes,
    /// When the call must end.
    deadline: Instant,
    /// The engine's cancellation count, and its value when the call began.
    cancel: Arc<AtomicU64>,
    cancel_seen: u64,
}

impl CallState {
    pub(crate) fn memory_limit(&self) -> u64 {
        self.limiter.memory
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) != self.cancel_seen
    }

    /// Whether the call is past its deadline or cancelled.
    pub(crate) fn should_stop(&self) -> bool {
        self.cancelled() || Instant::now() >= self.deadline
    }
}

struct Limiter {
    memory: u64,
    denied: Option<u64>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory {
            self.denied = Some(desired as u64);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far past what any
        // compiled Rust program needs, and bounds the host memory they take.
        Ok(desired <= 1_000_000)
    }
}

/// The host functions that every module is linked against.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut CallState| &mut state.wasi)?;
    linker.func_wrap(
        wisp_abi::IMPORT_MODULE,
        wisp_abi::IMPORT_PANIC,
        |mut caller: Caller<'_, CallState>, ptr: i32, len: i32| {
            let message = caller
                .get_export("memory")
                .and_then(|m| m.into_memory())
                .and_then(|memory| {
                    let data = memory.data(&caller);
                    let start = ptr as u32 as usize;
                    let len = (len as u32 as usize).min(64 * 1024);
                    data.get(start..start.checked_add(len)?)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                })
                .unwrap_or_else(|| "panicked (the message could not be read)".to_owned());
            caller.data_mut().panic = Some(message);
        },
    )?;
    crate::storage::add_to_linker(&mut linker)?;
    crate::sleep::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// What a call sees of the world besides its arguments.
#[derive(Clone, Default)]
pub struct CallEnv {
    /// Storage reachable through wisp's storage imports, if any.
    pub storage: Option<SharedStorage>,
    /// Environment variables the guest can read: this call's alone, so
    /// that concurrent calls never see each other's.
    pub vars: Vec<(String, String)>,
    /// Keep stderr apart from stdout, in [`CallOutcome::stderr`], rather
    /// than interleaved with it in [`CallOutcome::log`].
    pub split_streams: bool,
}

impl std::fmt::Debug for CallEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Variables may carry secrets: name them, never show their values.
        let names: Vec<&str> = self.vars.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("CallEnv")
            .field("storage", &self.storage.is_some())
            .field("vars", &names)
            .field("split_streams", &self.split_streams)
            .finish()
    }
}

pub(crate) fn run(
    engine: &Engine,
    module: &Module,
    function: &str,
    args: &[u8],
    limits: &CallLimits,
    env: CallEnv,
) -> CallOutcome {
    let started = SystemTime::now();
    let log = LogPipe::new(limits.log_bytes);
    let stderr = if env.split_streams {
        LogPipe::new(limits.log_bytes)
    } else {
        log.clone()
    };
    let command = module.manifest.command;
    let stdout = LogPipe::new(limits.output_bytes);
    let mut wasi = WasiCtxBuilder::new();
    wasi.stderr(stderr.clone());
    wasi.envs(&env.vars);
    let storage = env.storage;
    if command {
        wasi.stdin(MemoryInputPipe::new(args.to_vec()));
        wasi.stdout(stdout.clone());
        wasi.args(&["wisp"]);
    } else {
        wasi.stdout(log.clone());
        wasi.args(&["wisp", function]);
    }
    let state = CallState {
        wasi: wasi.build_p1(),
        limiter: Limiter {
            memory: limits.memory,
            denied: None,
        },
        panic: None,
        storage,
        response: bytes::Bytes::new(),
        deadline: Instant::now() + limits.timeout,
        cancel: engine.cancel.clone(),
        cancel_seen: engine.cancel.load(Ordering::Relaxed),
    };
    let mut store = Store::new(&engine.wasmtime, state);
    store.limiter(|state| &mut state.limiter);
    // Look at the wall clock and the cancellation flag every few ticks; the
    // deadline itself is wall time, so slow ticks cannot stretch it.
    let check_every = engine.check_ticks();
    store.set_epoch_deadline(check_every);
    store.epoch_deadline_callback(move |context| {
        if context.data().should_stop() {
            Err(Trap::Interrupt.into())
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(check_every))
        }
    });

    let result = if command {
        run_command(&mut store, module, function).and_then(|()| {
            let out = stdout.take();
            if out.dropped > 0 {
                return Err(CallError::OutputTooLarge {
                    bytes: out.bytes.len() as u64 + out.dropped,
                    limit: limits.output_bytes as u64,
                });
            }
            wisp_wire::output::json_result(out.bytes).map_err(|e| CallError::InvalidOutput {
                message: e.to_string(),
            })
        })
    } else {
        run_function(&mut store, module, function, args, limits)
    };
    let log = log.take();
    let stderr = env.split_streams.then(|| stderr.take());
    let result = result.map_err(|error| match refine(error, store.data_mut(), limits) {
        CallError::Exit { code, command, .. } => CallError::Exit {
            code,
            command,
            last_words: last_line(stderr.as_ref().unwrap_or(&log)),
        },
        other => other,
    });
    CallOutcome {
        result,
        log,
        stderr,
        started,
        finished: SystemTime::now(),
    }
}

/// The last non-empty line of a log, at most 500 characters of it.
fn last_line(log: &CapturedLog) -> String {
    let text = String::from_utf8_lossy(&log.bytes);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    line.trim().chars().take(500).collect()
}

fn run_command(
    store: &mut Store<CallState>,
    module: &Module,
    function: &str,
) -> Result<(), CallError> {
    if function != crate::COMMAND_FUNCTION {
        return Err(unknown(module, function));
    }
    let instance = module
        .pre
        .instantiate(&mut *store)
        .map_err(instantiate_error)?;
    if let Some(export) = &module.exports.initialize {
        call_export::<(), ()>(store, &instance, export, ())?;
    }
    let start = &module.exports.functions[crate::COMMAND_FUNCTION];
    match call_export::<(), ()>(store, &instance, start, ()) {
        Ok(()) | Err(CallError::Exit { code: 0, .. }) => Ok(()),
        Err(CallError::Exit { code, .. }) => Err(CallError::Exit {
            code,
            command: true,
            last_words: String::new(),
        }),
        Err(e) => Err(e),
    }
}

fn run_function(
    store: &mut Store<CallState>,
    module: &Module,
    function: &str,
    args: &[u8],
    limits: &CallLimits,
) -> Result<Vec<u8>, CallError> {
    let Some(export) = module.exports.functions.get(function) else {
        return Err(unknown(module, function));
    };
    let len = i32::try_from(args.len()).map_err(|_| CallError::BadArguments {
        message: format!("the arguments are {} bytes; the most is 2 GiB", args.len()),
    })?;
    let instance = module
        .pre
        .instantiate(&mut *store)
        .map_err(instantiate_error)?;
    let memory = module
        .exports
        .memory
        .as_ref()
        .and_then(|e| instance.get_module_export(&mut *store, e))
        .and_then(|e| e.into_memory())
        .ok_or_else(|| CallError::InvalidOutput {
            message: "the instance has no memory".to_owned(),
        })?;
    if let Some(export) = &module.exports.initialize {
        call_export::<(), ()>(store, &instance, export, ())?;
    }
    let alloc = module
        .exports
        .alloc
        .as_ref()
        .ok_or_else(|| CallError::InvalidOutput {
            message: "the module has no allocator".to_owned(),
        })?;
    let ptr = call_export::<i32, i32>(store, &instance, alloc, len)?;
    if ptr == 0 {
        return Err(CallError::MemoryLimit {
            limit_bytes: limits.memory,
            requested_bytes: None,
        });
    }
    memory
        .write(&mut *store, ptr as u32 as usize, args)
        .map_err(|_| CallError::InvalidOutput {
            message: format!("the allocator returned {ptr:#x}, outside the guest's memory"),
        })?;
    let packed = call_export::<(i32, i32), i64>(store, &instance, export, (ptr, len))?;
    let (out_ptr, out_len) = wisp_abi::unpack_output(packed as u64);
    if out_len as usize > limits.output_bytes.saturating_add(1) {
        return Err(CallError::OutputTooLarge {
            bytes: u64::from(out_len).saturating_sub(1),
            limit: limits.output_bytes as u64,
        });
    }
    let data = memory.data(&*store);
    let output = data
        .get(out_ptr as usize..out_ptr as usize + out_len as usize)
        .ok_or_else(|| CallError::InvalidOutput {
            message: format!(
                "the result at {out_ptr:#x} ({out_len} bytes) lies outside the guest's memory"
            ),
        })?;
    match wisp_wire::output::decode(output) {
        Ok(GuestOutput::Result(json)) => Ok(json),
        Ok(GuestOutput::Error(message)) => Err(CallError::Function { message }),
        Ok(GuestOutput::BadArguments(message)) => Err(CallError::BadArguments { message }),
        Err(e) => Err(CallError::InvalidOutput {
            message: e.to_string(),
        }),
    }
}

fn unknown(module: &Module, function: &str) -> CallError {
    CallError::UnknownFunction {
        function: function.to_owned(),
        available: module.manifest.function_list(),
    }
}

fn call_export<P, R>(
    store: &mut Store<CallState>,
    instance: &wasmtime::Instance,
    export: &wasmtime::ModuleExport,
    params: P,
) -> Result<R, CallError>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    let func = instance
        .get_module_export(&mut *store, export)
        .and_then(|e| e.into_func())
        .ok_or_else(|| CallError::InvalidOutput {
            message: "an export the module was checked for is missing".to_owned(),
        })?;
    let typed = func
        .typed::<P, R>(&*store)
        .map_err(|e| CallError::InvalidOutput {
            message: format!("{e:#}"),
        })?;
    typed.call(&mut *store, params).map_err(trap_error)
}

fn instantiate_error(error: wasmtime::Error) -> CallError {
    // A trap while the instance is set up (a data segment past the end of
    // its memory, a start function that fails or exits) is the module's
    // fault like any other trap, not the platform's.
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow | Trap::Interrupt) => return trap_error(error),
        Some(_) => {
            return CallError::Trap {
                message: format!(
                    "while its instance was set up (its data and element segments \
                     and its start function run then): {error:#}"
                ),
            };
        }
        None if error.is::<I32Exit>() => return trap_error(error),
        None => {}
    }
    CallError::Instantiate {
        message: format!("{error:#}"),
    }
}

fn trap_error(error: wasmtime::Error) -> CallError {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return CallError::Exit {
            code: exit.0,
            command: false,
            last_words: String::new(),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout { limit_ms: 0 },
        Some(Trap::StackOverflow) => CallError::StackOverflow,
        // `{:#}` gives the trap and its wasm backtrace; `{:?}` would add
        // the host's own backtrace when RUST_BACKTRACE is set.
        Some(Trap::MemoryOutOfBounds) => CallError::Trap {
            message: format!(
                "{error:#}\n(in a Rust guest this is most often a stack overflow: \
                 its stack lives in linear memory)"
            ),
        },
        _ => CallError::Trap {
            message: format!("{error:#}"),
        },
    }
}

/// Turns what the trap alone says into what really happened, using what
/// the store saw: a denied memory growth or a panic message explain a trap
/// better than the trap does.
fn refine(error: CallError, state: &mut CallState, limits: &CallLimits) -> CallError {
    if let Some(requested) = state.limiter.denied
        && (matches!(
            error,
            CallError::Trap { .. } | CallError::Instantiate { .. } | CallError::Panic { .. }
        ) || state.panic.is_some())
    {
        return CallError::MemoryLimit {
            limit_bytes: limits.memory,
            requested_bytes: Some(requested),
        };
    }
    match error {
        CallError::Timeout { .. } if state.cancelled() => CallError::Cancelled,
        CallError::Timeout { .. } => CallError::Timeout {
            limit_ms: limits.timeout.as_millis() as u64,
        },
        CallError::Trap { .. } if state.panic.is_some() => CallError::Panic {
            message: state.panic.take().unwrap_or_default(),
        },
        other => other,
    }
}

fn humanize_ms(ms: u64) -> String {
    if ms >= 1000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// A `Duration` for the record: how long an outcome took.
impl CallOutcome {
    /// Wall time from instantiation to the end of the call.
    pub fn elapsed(&self) -> Duration {
        self.finished
            .duration_since(self.started)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(humanize_bytes(512), "512 B");
        assert_eq!(humanize_bytes(256 << 20), "256 MiB");
        assert_eq!(humanize_bytes(3 << 29), "1.5 GiB");
        assert_eq!(humanize_ms(5000), "5 s");
        assert_eq!(humanize_ms(1500), "1500 ms");
    }

    #[test]
    fn messages_name_the_fix() {
        let timeout = CallError::Timeout { limit_ms: 2000 }.to_string();
        assert!(
            timeout.contains("2 s") && timeout.contains("runtime_timeout"),
            "{timeout}"
        );
        let memory = CallError::MemoryLimit {
            limit_bytes: 64 << 20,
            requested_bytes: Some(128 << 20),
        }
        .to_string();
        assert!(
            memory.contains("64 MiB") && memory.contains("128 MiB"),
            "{memory}"
        );
        assert!(memory.contains("runtime_memory"), "{memory}");
    }

    #[test]
    fn errors_survive_a_round_trip_through_json() {
        let error = CallError::Panic {
            message: "panicked at src/lib.rs:1:1: boom".to_owned(),
        };
        let json = serde_json::to_string(&error).expect("serializable");
        assert!(json.contains(r#""kind":"panic""#), "{json}");
        assert_eq!(
            serde_json::from_str::<CallError>(&json).expect("readable"),
            error
        );
    }
}
