//! Many small objects written, then read, a fixed number of requests in
//! flight: the rate of requests, where a large object measures bandwidth.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use tokio::task::JoinSet;
use wisp_storage::Storage;

/// Where the small objects go.
pub const PREFIX: &str = "bench/small/";

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// All the puts.
    pub put: Duration,
    /// All the gets.
    pub get: Duration,
}

/// The workload's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Objects written and read.
    pub count: usize,
    /// Bytes in each.
    pub size: usize,
    /// Requests in flight at once.
    pub in_flight: usize,
}

fn key(i: usize) -> String {
    format!("{PREFIX}{i:06}")
}

/// Runs `op` on `0..count`, `in_flight` at a time, each in a task of its
/// own that takes the next index as soon as its last operation is done.
async fn in_flight<F, Fut>(count: usize, in_flight: usize, op: F) -> Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    for _ in 0..in_flight.min(count) {
        let next = next.clone();
        let op = op.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                op(i).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a request task panicked")??;
    }
    Ok(started.elapsed())
}

/// Writes `shape.count` objects of `shape.size` bytes under [`PREFIX`],
/// reads each back, checks its size, and deletes them all (untimed).
pub async fn run(storage: Arc<dyn Storage>, bucket: &str, shape: Shape) -> Result<Figures> {
    let data = Bytes::from(crate::generated_bytes(shape.size, 7));
    let bucket: Arc<str> = Arc::from(bucket);
    let put = {
        let (storage, bucket) = (storage.clone(), bucket.clone());
        in_flight(shape.count, shape.in_flight, move |i| {
            let (storage, bucket, data) = (storage.clone(), bucket.clone(), data.clone());
            async move {
                storage
                    .put(&bucket, &key(i), data)
                    .await
                    .with_context(|| format!("put of `{}` failed", key(i)))
            }
        })
        .await?
    };
    let get = {
        let (storage, bucket) = (storage.clone(), bucket.clone());
        in_flight(shape.count, shape.in_flight, move |i| {
            let (storage, bucket) = (storage.clone(), bucket.clone());
            async move {
                let data = storage
                    .get(&bucket, &key(i))
                    .await
                    .with_context(|| format!("get of `{}` failed", key(i)))?;
                ensure!(
                    data.len() == shape.size,
                    "`{}` came back with {} bytes, not {}",
                    key(i),
                    data.len(),
                    shape.size
                );
                Ok(())
            }
        })
        .await?
    };
    let keys: Vec<String> = (0..shape.count).map(key).collect();
    storage
        .delete_many(&bucket, &keys)
        .await
        .context("cannot delete the small objects")?;
    Ok(Figures { put, get })
}
