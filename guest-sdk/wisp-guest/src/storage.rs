//! The job's storage, from inside a function.
//!
//! A function reaches the bucket that its executor is configured with, and
//! only that bucket: the host binds every call to it. Keys under `wisp/` hold
//! wisp's own job data; functions may read them but not write or delete
//! them.
//!
//! ```ignore
//! #[wisp_guest::function]
//! fn shout(key: String) -> wisp_guest::Result<usize> {
//!     let text = String::from_utf8(wisp_guest::storage::get(&key)?)?;
//!     wisp_guest::storage::put(&format!("loud/{key}"), text.to_uppercase().as_bytes())?;
//!     Ok(text.len())
//! }
//! ```

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// A tag that changes when its content does.
    pub etag: String,
}

/// Reads a whole object.
///
/// # Errors
///
/// When the object does not exist or storage fails.
pub fn get(key: &str) -> Result<Vec<u8>> {
    crate::imports::storage_get(key, 0, None, None).map_err(Error::msg)
}

/// Reads bytes `range` of an object; a range past its end is cut there.
///
/// # Errors
///
/// When the object does not exist, the range starts past its end, or
/// storage fails.
pub fn get_range(key: &str, range: Range<u64>) -> Result<Vec<u8>> {
    crate::imports::storage_get(key, range.start, Some(range.end), None).map_err(Error::msg)
}

/// Writes an object, replacing any of that key.
///
/// # Errors
///
/// When the key is under `wisp/` or storage fails.
pub fn put(key: &str, data: &[u8]) -> Result<()> {
    crate::imports::storage_put(key, data).map_err(Error::msg)
}

/// Lists the objects whose keys start with `prefix`, in key order.
///
/// # Errors
///
/// When storage fails.
pub fn list(prefix: &str) -> Result<Vec<ObjectInfo>> {
    let json = crate::imports::storage_list(prefix).map_err(Error::msg)?;
    serde_json::from_slice(&json)
        .map_err(|e| Error::msg(format!("the host's listing is not valid: {e}")))
}

/// Deletes an object; deleting one that does not exist succeeds.
///
/// # Errors
///
/// When the key is under `wisp/` or storage fails.
pub fn delete(key: &str) -> Result<()> {
    crate::imports::storage_delete(key).map_err(Error::msg)
}

/// A byte range of an object, as a data map hands it to each call.
///
/// With `whole_lines` (which wisp's data maps set), the part stands for the
/// lines that *start* in its range: [`read`](Self::read) skips a line cut
/// at the start, which belongs to the part before, and reads on past the
/// end to finish the last line. So cuts can fall anywhere and still no line
/// is split or read twice, and planning a job reads nothing but the
/// listing. The ETag is the object's when the job was planned: reading a
/// part of an object that has changed since fails instead of mixing two
/// versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPart {
    /// The object's key.
    pub key: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The object's ETag when the part was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Whether the part stands for the whole lines that start in its range.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_lines: bool,
}

/// How much is read at a time when looking for the end of a line.
const LINE_WINDOW: u64 = 8 * 1024;

impl ObjectPart {
    /// Reads the part's bytes: the exact range, or with `whole_lines` the
    /// lines that start in it.
    ///
    /// # Errors
    ///
    /// When the object is gone, has changed since the part was cut, or
    /// storage fails.
    pub fn read(&self) -> Result<Vec<u8>> {
        self.read_lines().map_err(|e| {
            Error::msg(e).context(format!(
                "reading bytes {}..{} of `{}`",
                self.start, self.end, self.key
            ))
        })
    }

    fn read_lines(&self) -> Result<Vec<u8>, String> {
        if !self.whole_lines {
            return self.range(self.start, self.end);
        }
        // One read covers the byte before the part (to see whether a line
        // starts right at `start`), the part, and a window past its end (to
        // finish its last line); lines longer than that window cost more
        // reads, but only they do.
        let low = self.start.saturating_sub(1);
        let high = self.end.saturating_add(LINE_WINDOW);
        let buffer = self.range(low, high)?;
        let object_ends = (buffer.len() as u64) < high - low;
        // A line that began before `start` belongs to the part before: this
        // part's first line starts after a newline at or after `start - 1`.
        let first = if self.start == 0 {
            0
        } else {
            match buffer.iter().position(|&b| b == b'\n') {
                Some(i) => low + i as u64 + 1,
                None if object_ends => return Ok(Vec::new()),
                None => match self.find_newline(high)? {
                    Some(newline) => newline + 1,
                    None => return Ok(Vec::new()),
                },
            }
        };
        if first >= self.end {
            return Ok(Vec::new());
        }
        // The last line ends at the first newline at or after `end - 1`.
        let from = (self.end - 1 - low) as usize;
        let mut data = match buffer[from.min(buffer.len())..]
            .iter()
            .position(|&b| b == b'\n')
        {
            Some(i) => buffer[(first - low) as usize..=from + i].to_vec(),
            None => buffer[((first - low) as usize).min(buffer.len())..].to_vec(),
        };
        if data.last() != Some(&b'\n') && !object_ends {
            let mut at = high;
            loop {
                let window = self.range(at, at + LINE_WINDOW)?;
                if let Some(i) = window.iter().position(|&b| b == b'\n') {
                    data.extend_from_slice(&window[..=i]);
                    break;
                }
                data.extend_from_slice(&window);
                if (window.len() as u64) < LINE_WINDOW {
                    break;
                }
                at += LINE_WINDOW;
            }
        }
        Ok(data)
    }

    /// Bytes `start..end` of the object: fewer at its end, none past it.
    fn range(&self, start: u64, end: u64) -> Result<Vec<u8>, String> {
        crate::imports::storage_get(&self.key, start, Some(end), self.etag.as_deref()).or_else(
            |e| {
                // The host refuses a range that starts at or past the end.
                if e.contains("cannot be read") {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            },
        )
    }

    /// The offset of the first newline at or after `from`, if any.
    fn find_newline(&self, mut from: u64) -> Result<Option<u64>, String> {
        loop {
            let window = self.range(from, from + LINE_WINDOW)?;
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                return Ok(Some(from + i as u64));
            }
            if (window.len() as u64) < LINE_WINDOW {
                return Ok(None);
            }
            from += LINE_WINDOW;
        }
    }

    /// Reads the part as text.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read), and when the bytes are not UTF-8.
    pub fn text(&self) -> Result<String> {
        String::from_utf8(self.read()?).map_err(|e| {
            Error::msg(format!(
                "bytes {}..{} of `{}` are not UTF-8 (at offset {})",
                self.start,
                self.end,
                self.key,
                self.start + e.utf8_error().valid_up_to() as u64
            ))
        })
    }
}

/// One chunk of a data map: either text that travelled with the call (from
/// local files) or a part of an object that the call reads from storage.
/// A function that takes a `DataChunk` works with both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, try_from = "RawChunk")]
pub enum DataChunk {
    /// Text cut from a local file.
    Text {
        /// The file.
        #[serde(default)]
        source: String,
        /// The chunk's byte offset in the file.
        #[serde(default)]
        offset: u64,
        /// The chunk's text: whole lines.
        text: String,
    },
    /// A byte range of an object in storage.
    Part(ObjectPart),
}

/// Every field either shape of [`DataChunk`] may have, so that a chunk that
/// fits neither gets a message naming what is missing or unknown.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChunk {
    source: Option<String>,
    offset: Option<u64>,
    text: Option<String>,
    key: Option<String>,
    start: Option<u64>,
    end: Option<u64>,
    etag: Option<String>,
    #[serde(default)]
    whole_lines: bool,
}

impl TryFrom<RawChunk> for DataChunk {
    type Error = String;

    fn try_from(raw: RawChunk) -> Result<Self, String> {
        let whole_lines = raw.whole_lines;
        match raw {
            RawChunk {
                text: Some(text),
                source,
                offset,
                ..
            } => Ok(Self::Text {
                source: source.unwrap_or_default(),
                offset: offset.unwrap_or_default(),
                text,
            }),
            RawChunk {
                key: Some(key),
                start: Some(start),
                end: Some(end),
                etag,
                ..
            } if start <= end => Ok(Self::Part(ObjectPart {
                key,
                start,
                end,
                etag,
                whole_lines,
            })),
            RawChunk {
                key: Some(_),
                start: Some(start),
                end: Some(end),
                ..
            } => Err(format!(
                "a data chunk's start ({start}) is past its end ({end})"
            )),
            _ => Err(
                "a data chunk has either `text` (text that travels with the call) or \
                      `key`, `start` and `end` (a part of an object in storage)"
                    .to_owned(),
            ),
        }
    }
}

impl DataChunk {
    /// The chunk's text, read from storage if it did not travel with the
    /// call.
    ///
    /// # Errors
    ///
    /// As [`ObjectPart::text`].
    pub fn text(&self) -> Result<Cow<'_, str>> {
        match self {
            Self::Text { text, .. } => Ok(Cow::Borrowed(text)),
            Self::Part(part) => part.text().map(Cow::Owned),
        }
    }

    /// Where the chunk comes from: a file or a key.
    pub fn source(&self) -> &str {
        match self {
            Self::Text { source, .. } => source,
            Self::Part(part) => &part.key,
        }
    }

    /// The chunk's byte offset in its file or object.
    pub fn offset(&self) -> u64 {
        match self {
            Self::Text { offset, .. } => *offset,
            Self::Part(part) => part.start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_both_shapes() {
        let text: DataChunk =
            serde_json::from_str(r#"{"source":"a.txt","offset":4,"text":"hi\n"}"#).expect("text");
        assert_eq!(text.text().expect("inline").as_ref(), "hi\n");
        assert_eq!((text.source(), text.offset()), ("a.txt", 4));
        let part: DataChunk =
            serde_json::from_str(r#"{"key":"books/a.txt","start":10,"end":20,"etag":"x"}"#)
                .expect("part");
        assert!(
            matches!(&part, DataChunk::Part(p) if p.end == 20 && p.etag.as_deref() == Some("x"))
        );
        assert_eq!((part.source(), part.offset()), ("books/a.txt", 10));
        // Outside a wisp call there is no host to read from.
        assert!(part.text().is_err());
        let typo = serde_json::from_str::<DataChunk>(r#"{"txt":"x"}"#).expect_err("typo");
        assert!(typo.to_string().contains("unknown field `txt`"), "{typo}");
        let neither = serde_json::from_str::<DataChunk>(r#"{"key":"k"}"#).expect_err("no range");
        assert!(
            neither.to_string().contains("`key`, `start` and `end`"),
            "{neither}"
        );
    }
}
