//! Decoding the output buffer of a guest's function call.
//!
//! The buffer's first byte is an [`OutputTag`]: a result (the rest is
//! JSON), the function's own error, or arguments that did not fit its
//! parameters (the rest a message).

use wisp_abi::OutputTag;

/// The most of a guest's error message that is kept, in bytes.
pub const MESSAGE_LIMIT: usize = 64 * 1024;

/// What a guest's output buffer said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestOutput {
    /// The function returned this JSON (surrounding whitespace trimmed;
    /// an empty result is `null`).
    Result(Vec<u8>),
    /// The function failed with this message (at most [`MESSAGE_LIMIT`]
    /// bytes of it, then a marker).
    Error(String),
    /// The arguments did not fit the function's parameters.
    BadArguments(String),
}

/// A buffer that is not a valid output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// Not even a tag.
    #[error("the result is empty")]
    Empty,
    /// A tag no ABI version defines.
    #[error("unknown result tag {0}")]
    UnknownTag(u8),
    /// The result is not JSON.
    #[error("the result is not JSON ({0})")]
    NotJson(String),
}

/// Decodes a guest's output buffer.
///
/// # Errors
///
/// When the buffer is empty, starts with an unknown tag, or tags as a
/// result something that is not JSON.
pub fn decode(buffer: &[u8]) -> Result<GuestOutput, OutputError> {
    let Some((&tag, body)) = buffer.split_first() else {
        return Err(OutputError::Empty);
    };
    match OutputTag::from_byte(tag) {
        Some(OutputTag::Ok) => json_result(body.to_vec()).map(GuestOutput::Result),
        Some(OutputTag::Error) => Ok(GuestOutput::Error(bounded_message(body))),
        Some(OutputTag::BadArguments) => Ok(GuestOutput::BadArguments(bounded_message(body))),
        None => Err(OutputError::UnknownTag(tag)),
    }
}

/// A guest's message as text: invalid UTF-8 replaced, cut at
/// [`MESSAGE_LIMIT`] bytes (on a character boundary) with a marker that
/// says how much was dropped.
pub fn bounded_message(bytes: &[u8]) -> String {
    if bytes.len() <= MESSAGE_LIMIT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut text = String::from_utf8_lossy(&bytes[..MESSAGE_LIMIT]).into_owned();
    text.push_str(&format!(
        " [message cut off: {} more bytes]",
        bytes.len() - MESSAGE_LIMIT
    ));
    text
}

/// The JSON of a result (a tagged buffer's body, or a command's stdout),
/// trimmed; `null` for an empty one.
///
/// # Errors
///
/// When it is not one JSON value.
pub fn json_result(mut body: Vec<u8>) -> Result<Vec<u8>, OutputError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(b"null".to_vec());
    }
    // Checked as text first: serde skips the bytes of a string it is
    // told to ignore without looking at them, and a result that is not
    // UTF-8 would pass as JSON only to fail every reader after us.
    let text = std::str::from_utf8(trimmed)
        .map_err(|e| OutputError::NotJson(format!("not UTF-8 after byte {}", e.valid_up_to())))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| OutputError::NotJson(e.to_string()))?;
    // Most results carry no surrounding whitespace and keep their buffer.
    let end = body.trim_ascii_end().len();
    let start = end - body[..end].trim_ascii_start().len();
    body.truncate(end);
    body.drain(..start);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tag_decodes_to_its_outcome() {
        assert_eq!(
            decode(b"\x00 {\"a\":1}\n"),
            Ok(GuestOutput::Result(b"{\"a\":1}".to_vec()))
        );
        assert_eq!(decode(b"\x00"), Ok(GuestOutput::Result(b"null".to_vec())));
        assert_eq!(decode(b"\x01no"), Ok(GuestOutput::Error("no".to_owned())));
        assert_eq!(
            decode(b"\x02expected i64"),
            Ok(GuestOutput::BadArguments("expected i64".to_owned()))
        );
    }

    #[test]
    fn bad_buffers_say_what_is_wrong() {
        assert_eq!(decode(b""), Err(OutputError::Empty));
        assert_eq!(decode(b"\x07{}"), Err(OutputError::UnknownTag(7)));
        let err = decode(b"\x00{\"a\":").unwrap_err();
        assert!(
            err.to_string().starts_with("the result is not JSON"),
            "{err}"
        );
        assert!(matches!(decode(b"\x00{} {}"), Err(OutputError::NotJson(_))));
        // Found by the guest_output fuzz target: bytes that are not UTF-8
        // inside a string.
        assert_eq!(
            decode(b"\x00{\"top\xca\":1}"),
            Err(OutputError::NotJson("not UTF-8 after byte 5".to_owned()))
        );
    }

    #[test]
    fn long_messages_are_cut_with_a_marker_and_stay_text() {
        let mut long = vec![b'x'; MESSAGE_LIMIT - 1];
        long.extend("é".repeat(100).as_bytes());
        let text = bounded_message(&long);
        assert!(
            text.ends_with(" [message cut off: 199 more bytes]"),
            "{text}"
        );
        assert!(text.len() < MESSAGE_LIMIT + 64);
        assert_eq!(bounded_message(b"\xffok"), "\u{fffd}ok");
    }
}
