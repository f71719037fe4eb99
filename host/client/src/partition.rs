//! Splitting data files into chunks for a map, like Lithops' partitioner.
//!
//! Each file is cut into byte ranges of about the chunk size; every cut is
//! moved forward to just past the next newline, so that no line, and so no
//! record or word, is split between two calls.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why data could not be partitioned.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The chunk size is not usable.
    #[error("invalid chunk size `{given}`: {reason}")]
    ChunkSize {
        /// What was given.
        given: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A path cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A chunk is not text.
    #[error(
        "{path} is not UTF-8 text (invalid bytes near offset {offset}); \
         data maps pass each chunk as text"
    )]
    NotText {
        /// The file.
        path: PathBuf,
        /// Where the invalid bytes are.
        offset: u64,
    },
}

/// A byte range of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The file.
    pub path: PathBuf,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// What a function receives for a chunk: `{"source", "offset", "text"}`.
#[derive(Debug, Clone, Serialize)]
pub struct TextChunk {
    /// The file the chunk comes from.
    pub source: String,
    /// The chunk's byte offset in that file.
    pub offset: u64,
    /// The chunk's text, whole lines.
    pub text: String,
}

/// How to cut data into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Chunks of about this many bytes.
    Size(u64),
    /// This many chunks per file or object, of about equal size.
    Count(u64),
}

impl Chunking {
    /// The chunk size for a file or object of `size` bytes.
    fn size_for(self, size: u64) -> u64 {
        match self {
            Self::Size(bytes) => bytes.max(1),
            Self::Count(count) => size.div_ceil(count.max(1)).max(1),
        }
    }
}

/// A byte range of an object in storage, as a call receives it: the call
/// reads it with `ObjectPart::read` of `wisp-guest`. The ETag makes a read
/// fail if the object changes while the job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectPart {
    /// The object's key.
    pub key: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The object's ETag when it was partitioned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Whether the part stands for the whole lines that start in its range
    /// (the call skips a line cut at the start and finishes the last one).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub whole_lines: bool,
}

/// A `s3://bucket/prefix` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (possibly empty).
    pub prefix: String,
}

impl StorageUrl {
    /// Parses `s3://bucket/prefix`; `None` if `text` is not such a URL.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// How many objects are asked for their ETag at once.
const HEADS_IN_FLIGHT: usize = 16;

/// Cuts the objects under `prefix` in `bucket` into parts. With
/// `whole_lines`, each part stands for the lines that start in it, which the
/// call reads whole (see `ObjectPart` in `wisp-guest`), so cutting reads
/// nothing but the listing. Empty objects, keys ending in `/` and wisp's own
/// objects are left out; a prefix with no objects gives no parts.
///
/// # Errors
///
/// When storage fails.
pub async fn partition_objects(
    storage: &dyn wisp_storage::Storage,
    bucket: &str,
    prefix: &str,
    chunking: Chunking,
    whole_lines: bool,
) -> Result<Vec<ObjectPart>, wisp_storage::StorageError> {
    use futures::stream::{self, StreamExt, TryStreamExt};

    let own = format!("{}/", wisp_runtime::protocol::ROOT);
    let objects: Vec<_> = storage
        .list(bucket, prefix)
        .await?
        .into_iter()
        .filter(|o| o.size > 0 && !o.key.ends_with('/') && !o.key.starts_with(&own))
        .collect();
    // Listings may leave the ETag out; ask for it, so reads can check it.
    let objects: Vec<(wisp_storage::ObjectMeta, Option<String>)> = stream::iter(objects)
        .map(|object| async move {
            if !object.etag.is_empty() {
                let etag = Some(object.etag.clone());
                return Ok((object, etag));
            }
            let head = storage.head(bucket, &object.key).await?;
            let etag = head.map(|m| m.etag).filter(|e| !e.is_empty());
            Ok::<_, wisp_storage::StorageError>((object, etag))
        })
        .buffered(HEADS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut parts = Vec::new();
    for (object, etag) in objects {
        let chunk = chunking.size_for(object.size);
        let mut start = 0;
        while start < object.size {
            let end = start.saturating_add(chunk).min(object.size);
            parts.push(ObjectPart {
                key: object.key.clone(),
                start,
                end,
                etag: etag.clone(),
                whole_lines,
            });
            start = end;
        }
    }
    Ok(parts)
}

/// Parses a size such as `256KiB`, `1MiB`, `4MB` or `65536`.
///
/// # Errors
///
/// When the text is not a size, or the size is zero.
pub fn parse_size(given: &str) -> Result<u64, PartitionError> {
    let invalid = |reason: &str| PartitionError::ChunkSize {
        given: given.to_owned(),
        reason: reason.to_owned(),
    };
    let text = given.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(invalid(
            "expected a number with an optional unit, such as 256KiB or 1MiB",
        ));
    }
    let number: f64 = number.parse().map_err(|_| {
        invalid("expected a number with an optional unit, such as 256KiB or 1.5MiB")
    })?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(invalid("unknown unit; use B, KB, KiB, MB, MiB, GB or GiB")),
    };
    let size = (number * factor as f64).round();
    if size >= u64::MAX as f64 {
        return Err(invalid("too large"));
    }
    let size = size as u64;
    if size == 0 {
        return Err(invalid("a chunk must be at least one byte"));
    }
    Ok(size)
}

/// The files under `path`: the file itself, or every file below the
/// directory, in name order.
///
/// # Errors
///
/// When the path or a directory below it cannot be read.
pub fn files_under(path: &Path) -> Result<Vec<PathBuf>, PartitionError> {
    let io = |source| PartitionError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if metadata.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    if !metadata.is_dir() {
        return Err(PartitionError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("not a regular file or a directory"),
        });
    }
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        // Links to directories are not followed (they can loop); links to
        // files are. Sockets, pipes and devices are no data files.
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            files.extend(files_under(&path)?);
        } else if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        } else {
            tracing::warn!(path = %path.display(), "skipping: not a regular file");
        }
    }
    Ok(files)
}

/// Cuts each file into chunks, each cut moved to just past a newline.
/// Empty files give no chunks.
///
/// # Errors
///
/// When a file cannot be read.
pub fn partition(files: &[PathBuf], chunking: Chunking) -> Result<Vec<Chunk>, PartitionError> {
    let mut chunks = Vec::new();
    for path in files {
        let io = |source| PartitionError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let chunk_size = chunking.size_for(size);
        let mut start = 0;
        while start < size {
            let mut end = start.saturating_add(chunk_size).min(size);
            if end < size {
                end = next_line_start(&mut file, end, size).map_err(io)?;
            }
            chunks.push(Chunk {
                path: path.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(chunks)
}

/// The offset just past the first newline at or after `from`, or `size`.
fn next_line_start(file: &mut File, from: u64, size: u64) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(from))?;
    let mut buffer = [0; 8192];
    let mut offset = from;
    while offset < size {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        if let Some(i) = buffer[..read].iter().position(|&b| b == b'\n') {
            return Ok(offset + i as u64 + 1);
        }
        offset += read as u64;
    }
    Ok(size)
}

impl Chunk {
    /// Reads the chunk as text.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or the chunk is not UTF-8.
    pub fn read_text(&self) -> Result<TextChunk, PartitionError> {
        let io = |source| PartitionError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(self.start)).map_err(io)?;
        let mut bytes = vec![0; (self.end - self.start) as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        let text = String::from_utf8(bytes).map_err(|e| PartitionError::NotText {
            path: self.path.clone(),
            offset: self.start + e.utf8_error().valid_up_to() as u64,
        })?;
        Ok(TextChunk {
            source: self.path.display().to_string(),
            offset: self.start,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("256KiB").expect("valid"), 256 * 1024);
        assert_eq!(parse_size("1MiB").expect("valid"), 1 << 20);
        assert_eq!(parse_size("4MB").expect("valid"), 4_000_000);
        assert_eq!(parse_size("100").expect("valid"), 100);
        assert_eq!(parse_size(" 2 gib ").expect("valid"), 2 << 30);
        for bad in [
            "0",
            "0KiB",
            "",
            "KiB",
            "12XB",
            "-1",
            "99999999999999999999GiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        let zero = parse_size("0").expect_err("zero").to_string();
        assert!(zero.contains("at least one byte"), "{zero}");
    }

    #[test]
    fn chunks_end_at_newlines_and_cover_every_byte() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.txt");
        let text = "alpha beta\ngamma\n\ndelta epsilon zeta\nlast line without newline";
        std::fs::write(&path, text).expect("write");
        for size in [1, 3, 7, 11, 1000] {
            let chunks =
                partition(std::slice::from_ref(&path), Chunking::Size(size)).expect("partition");
            let mut joined = String::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let part = chunk.read_text().expect("text");
                assert_eq!(part.offset, chunk.start);
                if i + 1 < chunks.len() {
                    assert!(part.text.ends_with('\n'), "size {size}: {:?}", part.text);
                }
                joined.push_str(&part.text);
            }
            assert_eq!(joined, text, "size {size}");
        }
        std::fs::write(dir.path().join("empty.txt"), "").expect("write");
        let files = files_under(dir.path()).expect("files");
        assert_eq!(files.len(), 2);
        assert_eq!(
            partition(&files[..1], Chunking::Size(5))
                .expect("partition")
                .len(),
            0
        );
        let two = partition(&files[1..], Chunking::Count(2)).expect("partition");
        assert_eq!(two.len(), 2, "{two:?}");
    }

    #[test]
    fn binary_data_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.bin");
        std::fs::write(&path, b"ok\n\xff\xfe").expect("write");
        let chunks =
            partition(std::slice::from_ref(&path), Chunking::Size(100)).expect("partition");
        let err = chunks[0].read_text().expect_err("not text").to_string();
        assert!(
            err.contains("not UTF-8") && err.contains("offset 3"),
            "{err}"
        );
    }
}
