//! The localhost backend: calls run on a pool of threads in this process.
//!
//! Each thread takes one call at a time from a shared queue, so a slow call
//! never holds back the others. The threads speak the job protocol like
//! any worker: they fetch the job's module through the worker (a cache hit,
//! since the client compiled it) and run the call. A call that finishes
//! with nothing waiting to run is recorded by its worker at once; while
//! calls wait, workers hand finished ones to a recorder thread, which
//! writes them a few dozen per storage object, within 20 ms of the first
//! finishing, however long the next calls run. Outcomes go straight to the
//! job's tracker once recorded, so the client never polls storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use wisp_runtime::{CallInput, CallStatus, Failure, Worker};

use crate::tracker::JobTracker;

/// A job as the pool sees it: its tracker and its arguments.
pub(crate) struct JobRun {
    pub(crate) tracker: Arc<JobTracker>,
    pub(crate) args: Vec<Bytes>,
    /// Set when the executor closes: calls not yet started are skipped.
    pub(crate) cancelled: AtomicBool,
}

struct Task {
    job: Arc<JobRun>,
    index: u32,
    attempt: u32,
}

pub(crate) struct LocalhostBackend {
    /// The only strong handle on the queue's sender: the threads stop
    /// once it is dropped and the queue is drained.
    sender: Option<Arc<Sender<Task>>>,
    /// The workers, then the recorder, which stops once they have.
    threads: Vec<JoinHandle<()>>,
}

/// A finished call on its way to the recorder.
type Done = (Arc<JobRun>, u32, CallStatus);

impl LocalhostBackend {
    pub(crate) fn start(worker: Arc<Worker>, threads: usize) -> std::io::Result<Self> {
        let (sender, receiver) = crossbeam_channel::unbounded::<Task>();
        let (done, finished) = crossbeam_channel::unbounded::<Done>();
        let mut threads = (0..threads)
            .map(|i| {
                let worker = worker.clone();
                let receiver = receiver.clone();
                let done = done.clone();
                std::thread::Builder::new()
                    .name(format!("wisp-worker-{i}"))
                    .spawn(move || serve(&worker, &receiver, &done))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The workers hold the only senders of finished calls: when they
        // have all stopped, the recorder records what is left and stops.
        drop(done);
        threads.push(
            std::thread::Builder::new()
                .name("wisp-recorder".to_owned())
                .spawn(move || record_all(&worker, &finished))?,
        );
        Ok(Self {
            sender: Some(Arc::new(sender)),
            threads,
        })
    }

    /// A backend that runs nothing, left behind by [`Self::shut_down`].
    pub(crate) fn stopped() -> Self {
        Self {
            sender: None,
            threads: Vec::new(),
        }
    }

    pub(crate) fn submit(&self, job: Arc<JobRun>) {
        let Some(sender) = &self.sender else { return };
        // A retried call joins the back of the queue. The hook holds the
        // queue and the job weakly: the job holds the tracker that holds
        // the hook, and a closed backend must not be kept open by it.
        let queue = Arc::downgrade(sender);
        let weak = Arc::downgrade(&job);
        job.tracker.on_retry(Box::new(move |index, attempt| {
            let (Some(queue), Some(job)) = (queue.upgrade(), weak.upgrade()) else {
                return false;
            };
            queue
                .send(Task {
                    job,
                    index,
                    attempt,
                })
                .is_ok()
        }));
        for index in 0..job.tracker.spec.calls {
            // The receivers live as long as the threads, which outlive the
            // sender, so this cannot fail while the backend is open.
            let _ = sender.send(Task {
                job: job.clone(),
                index,
                attempt: 1,
            });
        }
    }

    /// Stops taking calls, lets the queued ones finish (or be skipped, if
    /// their job is cancelled), and joins the threads.
    pub(crate) fn shut_down(&mut self) {
        self.sender = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for LocalhostBackend {
    fn drop(&mut self) {
        self.sender = None;
        // Threads finish the queue on their own; not joining keeps a drop
        // inside an async context from blocking it.
    }
}

/// At most this many finished calls wait to be recorded together...
const RECORD_BATCH: usize = 64;
/// ...and for at most this long.
const RECORD_DELAY: Duration = Duration::from_millis(20);

fn serve(worker: &Worker, tasks: &Receiver<Task>, done: &Sender<Done>) {
    while let Ok(Task {
        job,
        index,
        attempt,
    }) = tasks.recv()
    {
        if job.cancelled.load(Ordering::Relaxed) {
            continue;
        }
        let tracker = &job.tracker;
        tracker.mark_running(index);
        let status = match worker.module(&tracker.spec) {
            Ok(module) => {
                let input = CallInput {
                    index,
                    args: job.args[index as usize].clone(),
                    attempt,
                };
                worker.execute(&tracker.spec, &module, &input)
            }
            Err(e) => worker.fail_call(
                &tracker.spec,
                index,
                attempt,
                Failure::Module {
                    message: e.to_string(),
                },
            ),
        };
        if tasks.is_empty() {
            // Nothing waits to run: record it here and now, sparing the
            // hand-over to the recorder.
            let status = worker.record(vec![status]).remove(0);
            job.tracker.complete(index, status);
        } else {
            // The recorder outlives the workers.
            let _ = done.send((job.clone(), index, status));
        }
    }
}

/// Records the finished calls the workers hand over (those that finished
/// while others waited to run): when [`RECORD_BATCH`] are waiting, or
/// [`RECORD_DELAY`] after the first of them finished.
fn record_all(worker: &Worker, done: &Receiver<Done>) {
    let mut finished = Finished::default();
    loop {
        let next = match finished.since {
            None => done.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(since) => done.recv_timeout(RECORD_DELAY.saturating_sub(since.elapsed())),
        };
        match next {
            Ok((job, index, status)) => {
                finished.push(job, index, status);
                if finished.is_due() {
                    finished.record(worker);
                }
            }
            Err(RecvTimeoutError::Timeout) => finished.record(worker),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    finished.record(worker);
}

/// Finished calls that are not recorded yet.
#[derive(Default)]
struct Finished {
    calls: Vec<(Arc<JobRun>, u32, CallStatus)>,
    since: Option<Instant>,
}

impl Finished {
    fn push(&mut self, job: Arc<JobRun>, index: u32, status: CallStatus) {
        self.since.get_or_insert_with(Instant::now);
        self.calls.push((job, index, status));
    }

    fn is_due(&self) -> bool {
        self.calls.len() >= RECORD_BATCH || self.since.is_some_and(|t| t.elapsed() >= RECORD_DELAY)
    }

    /// Writes the statuses, one object per job, then hands them to the
    /// trackers: a client learns an outcome only once it is in storage.
    fn record(&mut self, worker: &Worker) {
        self.since = None;
        let mut calls = std::mem::take(&mut self.calls);
        while !calls.is_empty() {
            let job = calls[0].0.clone();
            let (same, rest): (Vec<_>, Vec<_>) =
                calls.into_iter().partition(|(j, ..)| Arc::ptr_eq(j, &job));
            calls = rest;
            let (indices, statuses): (Vec<u32>, Vec<CallStatus>) = same
                .into_iter()
                .map(|(_, index, status)| (index, status))
                .unzip();
            for (index, status) in indices.into_iter().zip(worker.record(statuses)) {
                job.tracker.complete(index, status);
            }
        }
    }
}
