//! What the client knows of a job's calls while they run.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::watch;
use wisp_runtime::{CallStatus, Failure, JobSpec};

/// Which failed calls are run again, and how often.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs after the first, at most, for each call.
    pub retries: u32,
    /// Whether a call that failed by itself (an error, a panic, a limit)
    /// is run again too, not only one the infrastructure failed.
    pub function_errors: bool,
}

impl RetryPolicy {
    /// Whether a call that failed this way on attempt `attempt` gets
    /// another.
    pub fn retries(&self, failure: &Failure, attempt: u32) -> bool {
        attempt <= self.retries
            && match failure {
                Failure::Module { .. } | Failure::Storage { .. } | Failure::Lost { .. } => true,
                Failure::Call(_) => self.function_errors,
            }
    }
}

/// Where a retried call goes: the backend's way of running one call of
/// the job again, as the given attempt; `false` when it no longer can (it
/// has shut down).
pub(crate) type Resubmit = Box<dyn Fn(u32, u32) -> bool + Send + Sync>;

/// The calls of one job: which have started, which have finished and how.
///
/// Each call's final status is set once. A report for an attempt the
/// tracker has moved past (a duplicate delivery, a batch declared lost
/// whose calls were retried) is ignored, except a success, which ends the
/// call if nothing has yet; so no call is ever counted twice.
pub(crate) struct JobTracker {
    pub(crate) spec: Arc<JobSpec>,
    statuses: Box<[OnceLock<Arc<CallStatus>>]>,
    running: Box<[AtomicBool]>,
    /// The attempt each call is on, from 1.
    attempts: Box<[AtomicU32]>,
    policy: RetryPolicy,
    resubmit: Mutex<Option<Resubmit>>,
    completed: watch::Sender<usize>,
    /// Woken on every completion of every job of the executor.
    any: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for JobTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobTracker")
            .field("job", &self.spec.job_id)
            .field("completed", &*self.completed.borrow())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl JobTracker {
    pub(crate) fn new(
        spec: Arc<JobSpec>,
        policy: RetryPolicy,
        any: Arc<watch::Sender<u64>>,
    ) -> Self {
        let calls = spec.calls as usize;
        Self {
            spec,
            statuses: (0..calls).map(|_| OnceLock::new()).collect(),
            running: (0..calls).map(|_| AtomicBool::new(false)).collect(),
            attempts: (0..calls).map(|_| AtomicU32::new(1)).collect(),
            policy,
            resubmit: Mutex::new(None),
            completed: watch::Sender::new(0),
            any,
        }
    }

    /// Sets how the backend runs a call again; without it, failures are
    /// final.
    pub(crate) fn on_retry(&self, resubmit: Resubmit) {
        *self.resubmit.lock().unwrap_or_else(PoisonError::into_inner) = Some(resubmit);
    }

    /// The attempt a call is on.
    pub(crate) fn attempt(&self, index: u32) -> u32 {
        self.attempts
            .get(index as usize)
            .map_or(1, |a| a.load(Ordering::Acquire))
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

    /// Records a call's outcome, or runs the call again when it failed
    /// and the policy says so; `true` if this ended the call.
    pub(crate) fn complete(&self, index: u32, status: CallStatus) -> bool {
        let (Some(slot), Some(attempt)) = (
            self.statuses.get(index as usize),
            self.attempts.get(index as usize),
        ) else {
            tracing::warn!(job = %self.spec.job_id, index, "outcome for a call the job does not have");
            return false;
        };
        if slot.get().is_some() {
            tracing::debug!(job = %self.spec.job_id, index, "ignoring a second outcome");
            return false;
        }
        if !status.succeeded() {
            let current = attempt.load(Ordering::Acquire);
            if status.attempt != current {
                tracing::debug!(
                    job = %self.spec.job_id, index, attempt = status.attempt, current,
                    "ignoring the failure of an earlier attempt"
                );
                return false;
            }
            let failure = status.error.as_ref();
            if failure.is_some_and(|f| self.policy.retries(f, current))
                && self.retry(index, current, failure)
            {
                return false;
            }
        }
        if slot.set(Arc::new(status)).is_err() {
            tracing::debug!(job = %self.spec.job_id, index, "ignoring a second outcome");
            return false;
        }
        self.completed.send_modify(|n| *n += 1);
        self.any.send_modify(|n| *n += 1);
        true
    }

    /// Moves a call to its next attempt and hands it to the backend;
    /// `false` when there is no backend to run it or another report moved
    /// it on first.
    fn retry(&self, index: u32, current: u32, failure: Option<&Failure>) -> bool {
        let resubmit = self.resubmit.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(resubmit) = resubmit.as_ref() else {
            return false;
        };
        let next = current + 1;
        if self.attempts[index as usize]
            .compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return true;
        }
        if let Some(failure) = failure {
            tracing::info!(
                job = %self.spec.job_id, call = index, attempt = next,
                "running the call again: attempt {current} failed: {failure}"
            );
        }
        self.running[index as usize].store(false, Ordering::Relaxed);
        if resubmit(index, next) {
            return true;
        }
        self.attempts[index as usize].store(current, Ordering::Release);
        false
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
