//! A local directory as object storage: the embedded default.
//!
//! Each bucket is a directory under the root, and each key a path below it,
//! split at `/`. Writes go to a hidden temporary file that is renamed into
//! place, so a reader never sees half an object. Key segments that a file
//! system cannot hold as they are (empty ones from `//`, `.`, `..`, names
//! starting with `.`, which are kept for temporary files) are escaped with
//! `%`, and `%` itself as `%25`, so every S3 key round-trips exactly.
//!
//! One difference from S3 remains: a key cannot be both an object and the
//! prefix of another (`a` and `a/b`), since `a` cannot be both a file and a
//! directory. Such a write fails with a clear error.
//!
//! Operations run inline rather than on a blocking pool: they are short,
//! and the hop to another thread costs more than most of them.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{ObjectMeta, Progress, Result, Storage, StorageError, validate_bucket, validate_key};

/// Object storage in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage rooted at `root`, which is created when first written to.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory that holds the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        validate_bucket(bucket)?;
        Ok(self.root.join(bucket))
    }

    /// The bucket's directory, which must exist.
    fn existing_bucket(&self, bucket: &str) -> Result<PathBuf> {
        let dir = self.bucket_dir(bucket)?;
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(StorageError::NoSuchBucket {
                bucket: bucket.to_owned(),
            })
        }
    }

    fn object_path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        let mut path = self.existing_bucket(bucket)?;
        for segment in key.split('/') {
            let encoded = encode_segment(segment);
            if encoded.len() > 255 {
                return Err(StorageError::InvalidKey {
                    key: key.to_owned(),
                    reason: "a part between two `/` is longer than local storage allows \
                             (255 bytes once escaped)"
                        .to_owned(),
                });
            }
            path.push(encoded);
        }
        Ok(path)
    }

    /// Writes an object through `write` into a temporary file that is then
    /// renamed into place.
    fn write_atomically(
        &self,
        bucket: &str,
        key: &str,
        write: impl FnOnce(&mut fs::File) -> io::Result<()>,
    ) -> Result<()> {
        let path = self.object_path(bucket, key)?;
        let parent = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(|source| {
            if source.kind() == io::ErrorKind::NotADirectory
                || source.kind() == io::ErrorKind::AlreadyExists
            {
                StorageError::InvalidKey {
                    key: key.to_owned(),
                    reason: "a prefix of it is already an object, and local storage \
                             cannot hold both `a` and `a/b`"
                        .to_owned(),
                }
            } else {
                io_error("write", path.display())(source)
            }
        })?;
        if path.is_dir() {
            return Err(StorageError::InvalidKey {
                key: key.to_owned(),
                reason: "other objects have it as their prefix, and local storage \
                         cannot hold both `a` and `a/b`"
                    .to_owned(),
            });
        }
        let temp = parent.join(format!(".wisp-tmp-{:016x}", fastrand::u64(..)));
        let written = fs::File::create(&temp)
            .and_then(|mut file| write(&mut file))
            .and_then(|()| fs::rename(&temp, &path));
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", path.display())(source));
        }
        Ok(())
    }
}

fn io_error(
    op: &'static str,
    target: impl std::fmt::Display,
) -> impl FnOnce(io::Error) -> StorageError {
    move |source| StorageError::Io {
        op,
        target: target.to_string(),
        source,
    }
}

fn meta(key: String, metadata: &fs::Metadata) -> ObjectMeta {
    let last_modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let nanos = last_modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    ObjectMeta {
        key,
        size: metadata.len(),
        last_modified,
        etag: format!("{:x}-{nanos:x}", metadata.len()),
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn describe(&self) -> String {
        format!("local storage at {}", self.root.display())
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        Ok(self.bucket_dir(bucket)?.is_dir())
    }

    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.bucket_dir(bucket)?;
        fs::create_dir_all(&dir).map_err(io_error("create bucket", dir.display()))
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let dir = self.existing_bucket(bucket)?;
        match fs::remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                Err(StorageError::BucketNotEmpty {
                    bucket: bucket.to_owned(),
                })
            }
            Err(e) => Err(io_error("delete bucket", bucket)(e)),
        }
    }

    async fn put(&self, bucket: &str, key: &str, data: Bytes) -> Result<()> {
        self.write_atomically(bucket, key, |file| file.write_all(&data))
    }

    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        progress: Option<Progress<'_>>,
    ) -> Result<u64> {
        let read_error = io_error("read", path.display());
        let mut source = fs::File::open(path).map_err(io_error("read", path.display()))?;
        let total = source
            .metadata()
            .map_err(io_error("read", path.display()))?
            .len();
        let mut size = 0;
        let mut failed_read = None;
        let written = self.write_atomically(bucket, key, |file| {
            let mut buffer = vec![0; 1 << 20];
            loop {
                let n = match source.read(&mut buffer) {
                    Ok(0) if size == total => return Ok(()),
                    Ok(0) => {
                        failed_read = Some(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file changed size during the upload",
                        ));
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let kind = e.kind();
                        failed_read = Some(e);
                        return Err(kind.into());
                    }
                };
                file.write_all(&buffer[..n])?;
                size += n as u64;
                if let Some(progress) = progress {
                    progress(size, total.max(size));
                }
            }
        });
        if let Some(e) = failed_read {
            return Err(read_error(e));
        }
        written?;
        if size == 0
            && let Some(progress) = progress
        {
            progress(0, 0);
        }
        Ok(size)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        let path = self.object_path(bucket, key)?;
        match fs::read(&path) {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if is_missing(&e) || path.is_dir() => Err(StorageError::NotFound {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            Err(e) => Err(io_error("read", key)(e)),
        }
    }

    async fn get_range_if(
        &self,
        bucket: &str,
        key: &str,
        range: Range<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes> {
        let path = self.object_path(bucket, key)?;
        let not_found = || StorageError::NotFound {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if is_missing(&e) => return Err(not_found()),
            Err(e) => return Err(io_error("read", key)(e)),
        };
        let metadata = file.metadata().map_err(io_error("read", key))?;
        if metadata.is_dir() {
            return Err(not_found());
        }
        let size = metadata.len();
        if let Some(expected) = etag.filter(|etag| !etag.is_empty()) {
            // The open file is the object that will be read, even if it is
            // replaced meanwhile, so its ETag is the one to check.
            let actual = meta(key.to_owned(), &metadata).etag;
            if actual != expected {
                return Err(StorageError::Changed {
                    key: key.to_owned(),
                    expected: expected.to_owned(),
                    actual,
                });
            }
        }
        if range.start > range.end || (range.start >= size && !(range.start == 0 && size == 0)) {
            return Err(StorageError::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
                size,
            });
        }
        let end = range.end.min(size);
        let mut data = vec![0; (end - range.start) as usize];
        file.seek(SeekFrom::Start(range.start))
            .and_then(|_| file.read_exact(&mut data))
            .map_err(io_error("read", key))?;
        Ok(Bytes::from(data))
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.object_path(bucket, key)?;
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(meta(key.to_owned(), &m))),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(io_error("read", key)(e)),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.existing_bucket(bucket)?;
        // Walk only the directory that the prefix's complete segments name.
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let mut start = root.clone();
        let mut start_key = String::new();
        if prefix.contains('/') {
            for segment in dir_part.split('/') {
                start.push(encode_segment(segment));
                start_key.push_str(segment);
                start_key.push('/');
            }
        }
        let mut found = Vec::new();
        walk(&start, &start_key, prefix, &mut found).map_err(io_error("list", prefix))?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let path = self.object_path(bucket, key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if is_missing(&e) || path.is_dir() => return Ok(()),
            Err(e) => return Err(io_error("delete", path.display())(e)),
        }
        // Remove the directories the key leaves empty, as S3 has no
        // directories to leave behind.
        let bucket_dir = self.bucket_dir(bucket)?;
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == bucket_dir || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn walk(dir: &Path, key_prefix: &str, wanted: &str, found: &mut Vec<ObjectMeta>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue; // a write in progress
        }
        let Some(segment) = decode_segment(name) else {
            continue;
        };
        let key = format!("{key_prefix}{segment}");
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            let sub = format!("{key}/");
            // Descend only where keys can still start with the prefix.
            if sub.starts_with(wanted) || wanted.starts_with(&sub) {
                walk(&entry.path(), &sub, wanted, found)?;
            }
        } else if key.starts_with(wanted) {
            match entry.metadata() {
                Ok(m) => found.push(meta(key, &m)),
                Err(e) if is_missing(&e) => {} // deleted while listing
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Escapes one key segment into a file name.
fn encode_segment(segment: &str) -> String {
    match segment {
        "" => return "%".to_owned(),
        "." => return "%2E".to_owned(),
        ".." => return "%2E%2E".to_owned(),
        _ => {}
    }
    let mut out = String::with_capacity(segment.len());
    for (i, c) in segment.char_indices() {
        match c {
            '%' => out.push_str("%25"),
            '\0' => out.push_str("%00"),
            '.' if i == 0 => out.push_str("%2E"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`encode_segment`]; `None` for names it cannot have made.
fn decode_segment(name: &str) -> Option<String> {
    if name == "%" {
        return Some(String::new());
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = LocalStorage::new(dir.path());
        (dir, storage)
    }

    #[test]
    fn segments_round_trip() {
        for segment in ["", ".", "..", ".hidden", "a%b", "50%", "é ü+", "a.b", "%2E"] {
            let encoded = encode_segment(segment);
            assert!(!encoded.starts_with('.'), "{encoded}");
            assert_eq!(
                decode_segment(&encoded).as_deref(),
                Some(segment),
                "{segment}"
            );
        }
    }

    #[tokio::test]
    async fn awkward_keys_round_trip_and_list_in_order() {
        let (_dir, s) = storage();
        s.create_bucket("wisp-data").await.expect("bucket");
        let keys = [
            "a b/c+d%e.txt",
            "dir//double",
            "dir/./dot",
            "dir/../up",
            "unicode/café ☕",
            ".hidden",
            "empty",
        ];
        for key in keys {
            let body = if key == "empty" {
                Bytes::new()
            } else {
                Bytes::from(key.to_owned())
            };
            s.put("wisp-data", key, body).await.expect(key);
        }
        for key in keys {
            let body = s.get("wisp-data", key).await.expect(key);
            let expected: &[u8] = if key == "empty" { b"" } else { key.as_bytes() };
            assert_eq!(&body[..], expected, "{key}");
        }
        let listed: Vec<String> = s
            .list("wisp-data", "")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        sorted.sort();
        assert_eq!(listed, sorted);
        let under_dir: Vec<String> = s
            .list("wisp-data", "dir/")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(under_dir, ["dir/../up", "dir/./dot", "dir//double"]);
        let partial: Vec<String> = s
            .list("wisp-data", "dir/.")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(partial, ["dir/../up", "dir/./dot"]);
    }

    #[tokio::test]
    async fn ranges_heads_and_deletes() {
        let (dir, s) = storage();
        s.create_bucket("b-1").await.expect("bucket");
        s.put("b-1", "x/y/z", Bytes::from_static(b"0123456789"))
            .await
            .expect("put");
        assert_eq!(
            &s.get_range("b-1", "x/y/z", 2..5).await.expect("range")[..],
            b"234"
        );
        assert_eq!(
            &s.get_range("b-1", "x/y/z", 8..100).await.expect("range")[..],
            b"89"
        );
        assert!(matches!(
            s.get_range("b-1", "x/y/z", 10..12).await,
            Err(StorageError::InvalidRange { size: 10, .. })
        ));
        let head = s.head("b-1", "x/y/z").await.expect("head").expect("exists");
        assert_eq!(head.size, 10);
        assert!(s.head("b-1", "x/y").await.expect("head").is_none());
        assert!(matches!(
            s.get("b-1", "x/y").await,
            Err(StorageError::NotFound { .. })
        ));
        assert!(matches!(
            s.put("b-1", "x/y/z/w", Bytes::new()).await,
            Err(StorageError::InvalidKey { .. })
        ));
        s.delete("b-1", "x/y/z").await.expect("delete");
        s.delete("b-1", "x/y/z")
            .await
            .expect("deleting twice is fine");
        assert!(s.list("b-1", "").await.expect("list").is_empty());
        assert!(
            !dir.path().join("b-1/x").exists(),
            "empty directories are removed"
        );
        assert!(matches!(
            s.get("nope-bucket", "k").await,
            Err(StorageError::NoSuchBucket { .. })
        ));
    }

    #[tokio::test]
    async fn delete_prefix_removes_only_that_prefix() {
        let (_dir, s) = storage();
        s.create_bucket("b-2").await.expect("bucket");
        for key in ["jobs/1/a", "jobs/1/b", "jobs/10/a", "other"] {
            s.put("b-2", key, Bytes::from_static(b"x"))
                .await
                .expect("put");
        }
        assert_eq!(s.delete_prefix("b-2", "jobs/1/").await.expect("delete"), 2);
        let left: Vec<String> = s
            .list("b-2", "")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(left, ["jobs/10/a", "other"]);
    }
}
