//! A guest's output buffer, as the engine decodes it after every call:
//! whatever the bytes, the outcome is valid JSON, a bounded message, or an
//! error that names the problem.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wisp_wire::output::{GuestOutput, MESSAGE_LIMIT, OutputError, decode};

fuzz_target!(|buffer: &[u8]| {
    match decode(buffer) {
        Ok(GuestOutput::Result(json)) => {
            assert!(json == b"null" || json.len() < buffer.len());
            // The worker keeps a result as a raw JSON value in the call's
            // status: whatever passed must be one.
            let text = String::from_utf8(json.clone()).expect("a decoded result is UTF-8");
            serde_json::value::RawValue::from_string(text).expect("a decoded result is JSON");
            assert_eq!(json.trim_ascii(), &json[..]);
        }
        Ok(GuestOutput::Error(message) | GuestOutput::BadArguments(message)) => {
            assert!(matches!(buffer[0], 1 | 2));
            // Each byte becomes at most one replacement character (3
            // bytes), and the cut adds one short marker.
            assert!(message.len() <= 3 * MESSAGE_LIMIT + 64);
        }
        Err(OutputError::Empty) => assert!(buffer.is_empty()),
        Err(OutputError::UnknownTag(tag)) => assert!(tag > 2 && buffer[0] == tag),
        Err(OutputError::NotJson(why)) => {
            assert_eq!(buffer[0], 0);
            assert!(!why.is_empty());
        }
    }
});
