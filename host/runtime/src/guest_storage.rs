//! The job's storage as a guest reaches it: one bucket, blocking calls.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::runtime::Handle;
use wisp_engine::GuestStorage;
use wisp_storage::Storage;

use crate::protocol::ROOT;
use crate::retry::retrying;

/// [`Storage`] bound to one bucket, for the guest: writes and deletes under
/// wisp's own prefix are refused, so a function cannot forge the statuses
/// or modules of any job.
pub struct BucketStorage {
    storage: Arc<dyn Storage>,
    bucket: String,
    runtime: Handle,
}

impl BucketStorage {
    /// `bucket` of `storage`, whose futures run on `runtime`.
    pub fn new(storage: Arc<dyn Storage>, bucket: impl Into<String>, runtime: Handle) -> Self {
        Self {
            storage,
            bucket: bucket.into(),
            runtime,
        }
    }

    /// Keys with `.` or `..` segments, or a leading `/`, are refused: some
    /// S3 servers resolve them as paths, which would let a function step
    /// out of its bucket or into wisp's prefix.
    fn plain(key: &str) -> Result<(), String> {
        if key.starts_with('/')
            || key
                .split('/')
                .any(|segment| segment == "." || segment == "..")
        {
            return Err(format!(
                "`{key}` has a `.` or `..` segment or a leading `/`; functions use plain keys"
            ));
        }
        Ok(())
    }

    fn writable(key: &str) -> Result<(), String> {
        Self::plain(key)?;
        if key == ROOT || key.starts_with(&format!("{ROOT}/")) {
            return Err(format!(
                "`{key}` is under `{ROOT}/`, which holds wisp's job data: functions may read \
                 it but not change it; use another prefix"
            ));
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    key: &'a str,
    size: u64,
    etag: &'a str,
}

impl GuestStorage for BucketStorage {
    fn get(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes, String> {
        let read = async {
            match (start, end, etag) {
                (0, None, None) => self.storage.get(&self.bucket, key).await,
                _ => {
                    let end = end.unwrap_or(u64::MAX);
                    self.storage
                        .get_range_if(&self.bucket, key, start..end, etag)
                        .await
                }
            }
        };
        self.runtime.block_on(read).map_err(|e| e.to_string())
    }

    fn put(&self, key: &str, data: Vec<u8>) -> Result<(), String> {
        Self::writable(key)?;
        let data = Bytes::from(data);
        self.runtime
            .block_on(retrying("writing for a function", || {
                self.storage.put(&self.bucket, key, data.clone())
            }))
            .map_err(|e| e.to_string())
    }

    fn list(&self, prefix: &str) -> Result<Vec<u8>, String> {
        let objects = self
            .runtime
            .block_on(retrying("listing for a function", || {
                self.storage.list(&self.bucket, prefix)
            }))
            .map_err(|e| e.to_string())?;
        let entries: Vec<Entry<'_>> = objects
            .iter()
            .map(|o| Entry {
                key: &o.key,
                size: o.size,
                etag: &o.etag,
            })
            .collect();
        serde_json::to_vec(&entries).map_err(|e| e.to_string())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        Self::writable(key)?;
        self.runtime
            .block_on(retrying("deleting for a function", || {
                self.storage.delete(&self.bucket, key)
            }))
            .map_err(|e| e.to_string())
    }
}
