//! The place where wisp functions are executed.
//!
//! Two halves: [`protocol`] says what a job is and where each of its parts
//! lives in storage, and [`Worker`] runs calls of a job and records their
//! outcomes there. The client writes jobs in this shape and reads outcomes
//! back; any worker that speaks it (the in-process pool of the localhost
//! backend, an action in the runtime image) can run them.

pub mod action;
mod guest_storage;
pub mod protocol;
mod retry;
pub mod settings;
mod worker;

pub use guest_storage::BucketStorage;
pub use protocol::{CallStatus, Failure, JobSpec, Outcome, Timings};
pub use settings::StorageSettings;
pub use worker::{CallInput, Worker, WorkerError};

/// Microseconds since the Unix epoch: the clock of every timing wisp records.
pub fn now_us() -> u64 {
    unix_us(std::time::SystemTime::now())
}

/// A time as microseconds since the Unix epoch.
pub fn unix_us(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}
