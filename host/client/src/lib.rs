//! Run Rust functions as WebAssembly jobs.
//!
//! A user marks a function with `#[wisp_guest::function]`; the
//! [`FunctionExecutor`] builds the crate into a WASI module, stores it, and
//! runs it once or mapped over many inputs on a compute backend. With no
//! configuration everything runs on this machine: calls on a pool of one
//! worker per core, jobs in a local directory.
//!
//! ```no_run
//! # async fn run() -> wisp::Result<()> {
//! let exec = wisp::FunctionExecutor::new().await?;
//! let f = exec.function("examples/hello")?;
//! let futs = exec.map(&f, "my_function", [1, 2, 3]).await?;
//! let ys: Vec<i64> = exec.get_results(&futs).await?;
//! assert_eq!(ys, [8, 9, 10]);
//! exec.close().await?;
//! # Ok(()) }
//! ```
//!
//! The parts: [`config`] reads `~/.wisp/config.yaml`; [`builder`] turns a
//! crate into a module; [`partition`] cuts data files into chunks for a map;
//! the executor and its futures are at the top level.

pub mod builder;
pub mod config;
pub mod docker;
mod executor;
pub mod hello;
pub mod jobs;
mod localhost;
pub mod openwhisk;
pub mod partition;
pub mod plots;
pub mod storage;
mod tracker;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

pub use config::Config;
pub use executor::{
    CallFuture, CallState, ExecutorBuilder, Function, FunctionExecutor, MAX_RETRIES, MapReduce,
    WaitFor, WaitOutcome,
};
pub use tracker::RetryPolicy;
pub use wisp_engine::{CallError, Manifest};
pub use wisp_runtime::{CallStatus, Failure, Timings};

/// A failed call, as the client reports it.
#[derive(Debug, Clone)]
pub struct CallFailure {
    /// The job.
    pub job_id: String,
    /// The call.
    pub call_id: String,
    /// The function it called.
    pub function: String,
    /// Why it failed.
    pub failure: Failure,
    /// What it printed before it failed.
    pub log: String,
    /// How many times it ran: more than 1 when it was retried.
    pub attempts: u32,
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "call {} of job {} ({}) failed",
            self.call_id, self.job_id, self.function
        )?;
        if self.attempts > 1 {
            write!(f, " {} times", self.attempts)?;
        }
        write!(f, ": {}", self.failure)
    }
}

/// Everything that can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A crate did not build.
    #[error(transparent)]
    Build(#[from] builder::BuildError),
    /// Data could not be partitioned.
    #[error(transparent)]
    Partition(#[from] partition::PartitionError),
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// A module cannot be run.
    #[error("{source_name}: {error}")]
    Module {
        /// Where the module came from.
        source_name: String,
        /// Why it cannot be run.
        error: wisp_engine::ModuleError,
    },
    /// The module has no function of that name.
    #[error("the module has no function `{function}`; it has: {available}")]
    UnknownFunction {
        /// The name asked for.
        function: String,
        /// The names it has.
        available: String,
    },
    /// Arguments could not be encoded.
    #[error("the arguments of call {index} cannot be encoded as JSON: {message}")]
    Arguments {
        /// The call's index.
        index: usize,
        /// serde's message.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] wisp_storage::StorageError),
    /// The engine could not be set up.
    #[error(transparent)]
    Engine(#[from] wisp_engine::EngineError),
    /// One call failed.
    #[error("{0}")]
    Call(Box<CallFailure>),
    /// Some calls of a batch failed.
    #[error("{}", calls_summary(failed, *total))]
    Calls {
        /// Every failed call.
        failed: Vec<CallFailure>,
        /// How many calls there were.
        total: usize,
    },
    /// A result is not of the type asked for.
    #[error("call {call_id} of job {job_id}: {message}")]
    Decode {
        /// The job.
        job_id: String,
        /// The call.
        call_id: String,
        /// What did not fit.
        message: String,
    },
    /// Waiting ran out of time.
    #[error("gave up after {waited:?}: {pending} of {total} calls have no outcome yet")]
    Timeout {
        /// How long was waited.
        waited: Duration,
        /// Calls without an outcome.
        pending: usize,
        /// Calls waited for.
        total: usize,
    },
    /// The Docker engine or a registry failed.
    #[error(transparent)]
    Docker(#[from] docker::DockerError),
    /// The OpenWhisk API failed.
    #[error(transparent)]
    OpenWhisk(#[from] openwhisk::OpenWhiskError),
    /// Something this release cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// Result of a client operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The most failed calls a summary spells out.
const SUMMARY_CALLS: usize = 10;

fn calls_summary(failed: &[CallFailure], total: usize) -> String {
    let mut text = format!("{} of {total} calls failed:", failed.len());
    for failure in failed.iter().take(SUMMARY_CALLS) {
        let _ = write!(text, "\n  call {}: {}", failure.call_id, failure.failure);
    }
    if failed.len() > SUMMARY_CALLS {
        let _ = write!(text, "\n  … and {} more", failed.len() - SUMMARY_CALLS);
    }
    text
}
