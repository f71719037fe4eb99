//! Splitting a number of calls over plain threads, as the localhost
//! executor splits a map over its workers.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};

/// Makes `calls` calls of `call`, split as evenly as can be over `threads`
/// plain (non-async) threads, and returns the wall time of all of them.
pub fn split<F>(calls: usize, threads: usize, call: F) -> Result<Duration>
where
    F: Fn() -> Result<()> + Sync,
{
    let threads = threads.clamp(1, calls.max(1));
    let call = &call;
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles = (0..threads)
            .map(|t| {
                let share = calls / threads + usize::from(t < calls % threads);
                std::thread::Builder::new()
                    .name(format!("bench-{t}"))
                    .spawn_scoped(scope, move || (0..share).try_for_each(|_| call()))
                    .context("cannot start a benchmark thread")
            })
            .collect::<Result<Vec<_>>>()?;
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow!("a benchmark thread panicked"))??;
        }
        Ok(started.elapsed())
    })
}
