//! Object storage for wisp: one [`Storage`] trait and its backends.
//!
//! Storage is where a job's parts meet: the client writes the module, the job
//! spec and the arguments; workers read them and write each call's output and
//! status. The trait is the small subset of S3 that this needs, with S3's
//! semantics (flat keys, whole-object writes, lexicographic listing), so that
//! code written against the local backend behaves the same on MinIO.

mod local;

use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalStorage;

/// What a listing or a `head` tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: SystemTime,
    /// A tag that changes whenever the object's content may have changed.
    pub etag: String,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist.
    #[error("bucket `{bucket}` does not exist; create it first (or check the name in the config)")]
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

    /// Writes a whole object, replacing any object of that key. Readers see
    /// either the old object or the new one, never a part.
    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<()>;

    /// Reads a whole object.
    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes>;

    /// Reads the bytes `range` of an object. A range that runs past the
    /// end is cut at the end; one that starts past it is an error.
    async fn get_range(&self, bucket: &str, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// Describes an object, or `None` if there is none of that key.
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>>;

    /// Lists the objects whose keys start with `prefix`, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object; deleting one that does not exist succeeds.
    async fn delete(&self, bucket: &str, key: &str) -> Result<()>;

    /// Deletes several objects.
    async fn delete_many(&self, bucket: &str, keys: &[String]) -> Result<()> {
        for key in keys {
            self.delete(bucket, key).await?;
        }
        Ok(())
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
    fn keys_follow_s3() {
        assert!(validate_key("a//b c+%é").is_ok());
        assert!(validate_key("").is_err());
        let long = "é".repeat(600);
        let message = validate_key(&long).expect_err("too long").to_string();
        assert!(message.contains("1024 bytes"), "{message}");
    }
}
