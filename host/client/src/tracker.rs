//! What the client knows of a job's calls while they run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;
use wisp_runtime::{CallStatus, JobSpec};

/// The calls of one job: which have started, which have finished and how.
/// Each call's status is set once; a second report of the same call (a
/// duplicate delivery) is ignored, so no call is ever counted twice.
#[derive(Debug)]
pub(crate) struct JobTracker {
    pub(crate) spec: Arc<JobSpec>,
    statuses: Box<[OnceLock<Arc<CallStatus>>]>,
    running: Box<[AtomicBool]>,
    completed: watch::Sender<usize>,
    /// Woken on every completion of every job of the executor.
    any: Arc<watch::Sender<u64>>,
}

impl JobTracker {
    pub(crate) fn new(spec: Arc<JobSpec>, any: Arc<watch::Sender<u64>>) -> Self {
        let calls = spec.calls as usize;
        Self {
            spec,
            statuses: (0..calls).map(|_| OnceLock::new()).collect(),
            running: (0..calls).map(|_| AtomicBool::new(false)).collect(),
            completed: watch::Sender::new(0),
            any,
        }
    }

    pub(crate) fn mark_running(&self, index: u32) {
        if let Some(flag) = self.running.get(index as usize) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_running(&self, index: u32) -> bool {
        self.running
            .get(index as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Records a call's outcome; `false` if it was already recorded.
    pub(crate) fn complete(&self, index: u32, status: CallStatus) -> bool {
        let Some(slot) = self.statuses.get(index as usize) else {
            tracing::warn!(job = %self.spec.job_id, index, "outcome for a call the job does not have");
            return false;
        };
        if slot.set(Arc::new(status)).is_err() {
            tracing::debug!(job = %self.spec.job_id, index, "ignoring a second outcome");
            return false;
        }
        self.completed.send_modify(|n| *n += 1);
        self.any.send_modify(|n| *n += 1);
        true
    }

    pub(crate) fn status(&self, index: u32) -> Option<&Arc<CallStatus>> {
        self.statuses.get(index as usize).and_then(OnceLock::get)
    }

    /// How many calls have an outcome.
    pub(crate) fn completed(&self) -> usize {
        *self.completed.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<usize> {
        self.completed.subscribe()
    }
}
