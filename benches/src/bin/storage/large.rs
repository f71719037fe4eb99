//! One large object read from its first byte to its last in ranges of a
//! fixed size, one range after another: from inside a wisp function, and
//! natively, through wisp's own S3 client and through a plain aws-sdk-s3
//! client.
//!
//! Two more native reads take the guest's path one step at a time, so that
//! the table shows where a gap between the guest and native code comes
//! from: the storage import runs each read with `Handle::block_on` on a
//! worker thread outside the async runtime, then copies the bytes into a
//! `Vec`, and the guest zeroes a buffer of that size that the host copies
//! them into.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use aws_sdk_s3::Client;
use tokio::runtime::Handle;
use wisp::{Function, FunctionExecutor};
use wisp_storage::Storage;

/// The object that every read reads.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub size: u64,
}

/// How long a guest's read took.
#[derive(Debug, Clone, Copy)]
pub struct GuestRead {
    /// From the instance's creation to the function's return, as the
    /// call's timings record them.
    pub function: Duration,
    /// From `call_async` to the end of `get_result`.
    pub end_to_end: Duration,
}

/// Calls the `read_chunks` guest function on the object once.
pub async fn guest(
    exec: &FunctionExecutor,
    f: &Function,
    object: Object<'_>,
    chunk: u64,
) -> Result<GuestRead> {
    let chunk_mib = chunk >> 20;
    let started = Instant::now();
    let future = exec
        .call_async(f, "read_chunks", (object.key, chunk_mib))
        .await
        .context("cannot submit the read_chunks call")?;
    let read: u64 = exec
        .get_result(&future)
        .await
        .with_context(|| format!("read_chunks({:?}, {chunk_mib}) failed", object.key))?;
    let end_to_end = started.elapsed();
    ensure!(
        read == object.size,
        "the guest read {read} bytes of `{}`, which has {}",
        object.key,
        object.size
    );
    let timings = future
        .timings()
        .context("the finished read_chunks call has no timings")?;
    Ok(GuestRead {
        function: Duration::from_micros(
            timings
                .function_end_us
                .saturating_sub(timings.function_start_us),
        ),
        end_to_end,
    })
}

/// The object's size as a listing of its key gives it, as the guest
/// function learns it.
async fn listed_size(storage: &dyn Storage, object: Object<'_>) -> Result<u64> {
    storage
        .list(object.bucket, object.key)
        .await?
        .into_iter()
        .find(|o| o.key == object.key)
        .map(|o| o.size)
        .with_context(|| format!("`{}` is not in its own listing", object.key))
}

fn check_read(read: u64, object: Object<'_>, path: &str) -> Result<()> {
    ensure!(
        read == object.size,
        "{path} read {read} bytes of `{}`, which has {}",
        object.key,
        object.size
    );
    Ok(())
}

/// Reads the object with `Storage::get_range`, in the runtime.
pub async fn wisp_storage(
    storage: &dyn Storage,
    object: Object<'_>,
    chunk: u64,
) -> Result<Duration> {
    let started = Instant::now();
    let size = listed_size(storage, object).await?;
    let mut offset = 0;
    while offset < size {
        let data = storage
            .get_range(object.bucket, object.key, offset..offset + chunk)
            .await?;
        let read = data.len() as u64;
        black_box(data);
        offset += read;
        if read < chunk {
            break;
        }
    }
    let time = started.elapsed();
    check_read(offset, object, "Storage::get_range")?;
    Ok(time)
}

/// What a blocking read does with each range, beyond reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// Nothing: the bytes are dropped.
    None,
    /// What the storage import and the guest do: copy the bytes into a new
    /// `Vec`, zero a buffer of that size that lives as long as the call
    /// (the guest's allocation), and copy the bytes into it (the host's
    /// write into guest memory).
    AsTheImport,
}

/// The least memory set aside for the imitated guest memory of
/// [`blocking`]: more than glibc ever takes from its heap for one block.
const GUEST_MEMORY_MIN: u64 = 33 << 20;

/// Reads the object with `Storage::get_range` from a thread outside the
/// runtime, each range through `Handle::block_on`, as a wisp worker thread
/// runs the storage import.
pub fn blocking(
    runtime: &Handle,
    storage: Arc<dyn Storage>,
    object: Object<'_>,
    chunk: u64,
    copies: Copies,
) -> Result<Duration> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<Duration> {
                // The guest's linear memory is a mapping of its own, outside
                // the host's malloc heap. A block larger than glibc's largest
                // mmap threshold (32 MiB) is one too; it is touched as the
                // reads go, as the guest's memory is.
                let mut guest_memory: Vec<u8> = Vec::with_capacity(
                    usize::try_from(chunk.max(GUEST_MEMORY_MIN))
                        .context("the chunk does not fit in memory")?,
                );
                let started = Instant::now();
                let size = runtime.block_on(listed_size(storage.as_ref(), object))?;
                let mut offset = 0;
                while offset < size {
                    let data = runtime.block_on(storage.get_range(
                        object.bucket,
                        object.key,
                        offset..offset + chunk,
                    ))?;
                    let read = data.len() as u64;
                    if copies == Copies::AsTheImport {
                        let response = data.to_vec();
                        drop(data);
                        if guest_memory.len() < response.len() {
                            guest_memory.resize(response.len(), 0);
                        }
                        let target = &mut guest_memory[..response.len()];
                        target.fill(0);
                        target.copy_from_slice(&response);
                        black_box(&guest_memory);
                        drop(response);
                    } else {
                        black_box(data);
                    }
                    offset += read;
                    if read < chunk {
                        break;
                    }
                }
                let time = started.elapsed();
                check_read(offset, object, "the blocking read")?;
                Ok(time)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the blocking reader thread panicked"))?
    })
}

/// What a plain aws-sdk-s3 read does with each response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Collected into one `Bytes`, as `S3Storage` does.
    Collected,
    /// Taken frame by frame and counted, never joined: the least a reader
    /// can do.
    Streamed,
}

/// Reads the object with GetObject and a Range header per range, sizing it
/// first with HeadObject.
pub async fn sdk(client: &Client, object: Object<'_>, chunk: u64, body: Body) -> Result<Duration> {
    let started = Instant::now();
    let head = client
        .head_object()
        .bucket(object.bucket)
        .key(object.key)
        .send()
        .await
        .with_context(|| format!("HeadObject of `{}` failed", object.key))?;
    let size = head
        .content_length()
        .and_then(|n| u64::try_from(n).ok())
        .context("HeadObject gave no size")?;
    let mut offset = 0;
    while offset < size {
        let end = (offset + chunk).min(size);
        let output = client
            .get_object()
            .bucket(object.bucket)
            .key(object.key)
            .range(format!("bytes={offset}-{}", end - 1))
            .send()
            .await
            .with_context(|| format!("GetObject of `{}` at {offset} failed", object.key))?;
        let read = match body {
            Body::Collected => {
                let data = output
                    .body
                    .collect()
                    .await
                    .context("reading a GetObject body failed")?
                    .into_bytes();
                let read = data.len() as u64;
                black_box(data);
                read
            }
            Body::Streamed => {
                let mut stream = output.body;
                let mut read = 0;
                while let Some(frame) = stream
                    .try_next()
                    .await
                    .context("reading a GetObject body failed")?
                {
                    read += frame.len() as u64;
                    black_box(frame);
                }
                read
            }
        };
        let wanted = end - offset;
        offset += read;
        if read < wanted {
            break;
        }
    }
    let time = started.elapsed();
    check_read(offset, object, "aws-sdk-s3")?;
    Ok(time)
}
