//! The localhost backend: calls run on a pool of threads in this process.
//!
//! Each thread takes one call at a time from a shared queue, so a slow call
//! never holds back the others. The threads speak the job protocol like
//! any worker: they fetch the job's module through the worker (a cache hit,
//! since the client compiled it) and write every outcome to storage; they
//! also hand the outcome straight to the job's tracker, so the client never
//! has to poll storage to learn it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use wisp_runtime::{CallInput, Failure, Worker};

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
}

pub(crate) struct LocalhostBackend {
    sender: Option<Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl LocalhostBackend {
    pub(crate) fn start(worker: Arc<Worker>, threads: usize) -> std::io::Result<Self> {
        let (sender, receiver) = crossbeam_channel::unbounded::<Task>();
        let threads = (0..threads)
            .map(|i| {
                let worker = worker.clone();
                let receiver = receiver.clone();
                std::thread::Builder::new()
                    .name(format!("wisp-worker-{i}"))
                    .spawn(move || serve(&worker, &receiver))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            sender: Some(sender),
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
        for index in 0..job.tracker.spec.calls {
            // The receivers live as long as the threads, which outlive the
            // sender, so this cannot fail while the backend is open.
            let _ = sender.send(Task {
                job: job.clone(),
                index,
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

fn serve(worker: &Worker, tasks: &Receiver<Task>) {
    while let Ok(Task { job, index }) = tasks.recv() {
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
                };
                worker.run_call(&tracker.spec, &module, &input)
            }
            Err(e) => worker.fail_call(
                &tracker.spec,
                index,
                Failure::Module {
                    message: e.to_string(),
                },
            ),
        };
        tracker.complete(index, status);
    }
}
