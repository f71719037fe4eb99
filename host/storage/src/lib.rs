//! Object storage for wisp: one [`Storage`] trait and its backends.
//!
//! Storage is where a job's parts meet: the client writes the module, the job
//! spec and the arguments; workers read them and write each call's output and
//! status. The trait is the small subset of S3 that this needs, with S3's
//! semantics (flat keys, whole-object writes, lexicographic listing), so that
//! code written against the local backend behaves the same on MinIO.
//!
//! Backends: [`LocalStorage`], a directory on this machine, and
//! [`S3Storage`], any service that speaks S3 (AWS S3, MinIO, Ceph).

mod local;
mod s3;

use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStorage;
pub use s3::{S3Config, S3Storage};

/// Called while a file is uploaded, with the bytes sent so far and the
/// file's size.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// What a listing or a `head` tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: SystemTime,
    /// A tag that changes whenever the object's content may have changed,
    /// without S3's quotes. Empty when the service reports none (s3s-fs
    /// does not in listings; `head` always has one).
    pub etag: String,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist.
    #[error(
        "bucket `{bucket}` does not exist: create it with `wisp storage create-bucket {bucket}` \
         (or check the name in the config)"
    )]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The object does not exist.
    #[error("object `{key}` does not exist in bucket `{bucket}`")]
    NotFound {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// The bucket name is not one S3 accepts.
    #[error("`{bucket}` is not a valid bucket name: {reason}")]
    InvalidBucket {
        /// The name.
        bucket: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The key cannot be stored.
    #[error("`{key}` cannot be used as a key: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A ranged read asked for bytes the object does not have.
    #[error("object `{key}` is {size} bytes long, so bytes {start}..{end} cannot be read")]
    InvalidRange {
        /// The key.
        key: String,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The object's size.
        size: u64,
    },
    /// An ETag precondition failed: the object is no longer the one that
    /// was described when the job started reading it.
    #[error(
        "object `{key}` changed while the job read it (ETag {expected}, now {actual}); \
         keep a job's input unchanged while it runs, or run the job again"
    )]
    Changed {
        /// The key.
        key: String,
        /// The ETag the reader expected.
        expected: String,
        /// The ETag the object has now (or a note that it is gone).
        actual: String,
    },
    /// The bucket cannot be deleted while it holds objects.
    #[error("bucket `{bucket}` is not empty; delete its objects first")]
    BucketNotEmpty {
        /// The bucket.
        bucket: String,
    },
    /// Some objects of a batch delete could not be deleted.
    #[error("{}", describe_failed_deletes(bucket, failures))]
    DeleteFailed {
        /// The bucket.
        bucket: String,
        /// Each key that was not deleted, with the reason.
        failures: Vec<(String, String)>,
    },
    /// The storage service refused the credentials or the operation.
    #[error("{message}")]
    Denied {
        /// What was refused, for which access key id, and what to do.
        message: String,
    },
    /// The storage service did not answer.
    #[error(
        "cannot reach the S3 endpoint {endpoint}: {message}; \
         check that the server is running and that the endpoint is right"
    )]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        message: String,
    },
    /// A backend's settings cannot be used (an endpoint without a scheme,
    /// missing credentials).
    #[error("{message}")]
    InvalidConfig {
        /// What is wrong and how to put it right.
        message: String,
    },
    /// The storage service answered with an error that has no variant of
    /// its own.
    #[error("S3 {op} failed: {message}")]
    Backend {
        /// The operation and what it was done on.
        op: String,
        /// The service's error, in full.
        message: String,
    },
    /// The backend failed.
    #[error("could not {op} `{target}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        target: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn describe_failed_deletes(bucket: &str, failures: &[(String, String)]) -> String {
    const SHOWN: usize = 5;
    let mut message = format!(
        "{} object(s) could not be deleted from bucket `{bucket}`: ",
        failures.len()
    );
    for (i, (key, reason)) in failures.iter().take(SHOWN).enumerate() {
        if i > 0 {
            message.push_str("; ");
        }
        message.push_str(&format!("`{key}`: {reason}"));
    }
    if failures.len() > SHOWN {
        message.push_str(&format!(" (and {} more)", failures.len() - SHOWN));
    }
    message
}

/// Result of a storage operation.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Object storage, S3 style.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// A short name of the backend and where it stores, for messages.
    fn describe(&self) -> String;

    /// Whether the bucket exists.
    async fn bucket_exists(&self, bucket: &str) -> Result<bool>;

    /// Creates the bucket; succeeds if it already exists.
    async fn create_bucket(&self, bucket: &str) -> Result<()>;

    /// Deletes an empty bucket: one that holds objects fails with
    /// [`StorageError::BucketNotEmpty`], a missing one with
    /// [`StorageError::NoSuchBucket`].
    async fn delete_bucket(&self, bucket: &str) -> Result<()>;

    /// Writes a whole object, replacing any object of that key. Readers see
    /// either the old object or the new one, never a part.
    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<()>;

    /// Writes a whole object from a file, as [`put`](Self::put) does, and
    /// returns its size. `progress` is told of the bytes sent as the upload
    /// goes. This default reads the whole file into memory; backends
    /// override it to stream large files.
    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<u64> {
        let data = tokio::fs::read(path)
            .await
            .map_err(|source| StorageError::Io {
                op: "read",
                target: path.display().to_string(),
                source,
            })?;
        let size = data.len() as u64;
        self.put(bucket, key, Bytes::from(data)).await?;
        if let Some(progress) = progress {
            progress(size, size);
        }
        Ok(size)
    }

    /// Reads a whole object.
    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes>;

    /// Reads the bytes `range` of an object. A range that runs past the
    /// end is cut at the end; one that starts past it is an error.
    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.get_range_if(bucket, key, range, None).await
    }

    /// Reads the bytes `range` of an object, as [`get_range`](Self::get_range)
    /// does, provided that the object still has the ETag `etag` (as `head`
    /// or `list` reported it): a reader that reads an object in parts uses
    /// it to notice that the object was replaced in between, which fails
    /// with [`StorageError::Changed`]. An empty `etag` checks nothing.
    async fn get_range_if(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes>;

    /// Describes an object, or `None` if there is none of that key.
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>>;

    /// Lists the objects whose keys start with `prefix`, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object; deleting one that does not exist succeeds.
    async fn delete(&self, bucket: &str, key: &str) -> Result<()>;

    /// Deletes several objects. A key that cannot be deleted does not stop
    /// the others; all of them are reported in one
    /// [`StorageError::DeleteFailed`].
    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<()> {
        let mut failures = Vec::new();
        for key in keys {
            match self.delete(bucket, key).await {
                Ok(()) => {}
                Err(e @ (StorageError::NoSuchBucket { .. } | StorageError::Unreachable { .. })) => {
                    return Err(e);
                }
                Err(e) => failures.push((key.clone(), e.to_string())),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(StorageError::DeleteFailed {
                bucket: bucket.to_owned(),
                failures,
            })
        }
    }

    /// Deletes every object under `prefix`, and says how many there were.
    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize> {
        let keys: Vec<String> = self
            .list(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        self.delete_many(bucket, &keys).await?;
        Ok(keys.len())
    }
}

/// Checks a bucket name against S3's rules, so that a name that works here
/// works on every backend.
pub fn validate_bucket(bucket: &str) -> Result<()> {
    let invalid = |reason| {
        Err(StorageError::InvalidBucket {
            bucket: bucket.to_owned(),
            reason,
        })
    };
    if !(3..=63).contains(&bucket.len()) {
        return invalid("it must be 3 to 63 characters long");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return invalid("use only lowercase letters, digits, `-` and `.`");
    }
    let first = bucket.as_bytes()[0];
    let last = bucket.as_bytes()[bucket.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return invalid("it must start and end with a letter or a digit");
    }
    if bucket.contains("..") {
        return invalid("it must not contain `..`");
    }
    Ok(())
}

/// Checks a key against S3's rules.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey {
            key: key.to_owned(),
            reason: "keys must not be empty".to_owned(),
        });
    }
    if key.len() > 1024 {
        return Err(StorageError::InvalidKey {
            key: format!("{}…", key.chars().take(64).collect::<String>()),
            reason: format!("keys are at most 1024 bytes; this one is {}", key.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3() {
        for good in ["wisp-data", "abc", "my.bucket-1"] {
            assert!(validate_bucket(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Wisp",
            "under_score",
            "-lead",
            "trail-",
            "a..b",
            &"x".repeat(64),
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn failed_deletes_are_listed_with_their_reasons() {
        let failures: Vec<(String, String)> = (0..7)
            .map(|i| (format!("k{i}"), "AccessDenied: no".to_owned()))
            .collect();
        let message = StorageError::DeleteFailed {
            bucket: "wisp-data".to_owned(),
            failures,
        }
        .to_string();
        assert!(
            message.starts_with(
                "7 object(s) could not be deleted from bucket `wisp-data`: \
                 `k0`: AccessDenied: no; `k1`"
            ),
            "{message}"
        );
        assert!(
            message.ends_with("`k4`: AccessDenied: no (and 2 more)"),
            "{message}"
        );
    }

    #[test]
    fn keys_follow_s3() {
        assert!(validate_key("a//b c+%é").is_ok());
        assert!(validate_key("").is_err());
        let long = "é".repeat(600);
        let message = validate_key(&long).expect_err("too long").to_string();
        assert!(message.contains("1024 bytes"), "{message}");
    }
}
