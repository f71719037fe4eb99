//! Turning what a function returned into its output buffer.
//!
//! The buffer is an [`OutputTag`] byte followed by JSON (for `Ok`) or a UTF-8
//! message. Whether a return type is a `Result` is decided by the macro from
//! the type's name, because a `Result` is itself `Serialize`; the traits here
//! only check that the types fit, with messages that say what to derive.

use std::fmt::Display;

use serde::Serialize;
use wisp_abi::OutputTag;

use crate::args::Args;

/// A return type of a wisp function, or the `T` of its `Result<T, E>`:
/// anything that serde can encode. Implemented for every such type; it exists
/// so that a type that cannot be encoded gets a message that says what to
/// derive.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a `#[wisp_guest::function]`: \
               it does not implement `serde::Serialize`",
    label = "the result is encoded as JSON from this type",
    note = "add `#[derive(serde::Serialize)]` to `{Self}`, or return a type that \
            implements it"
)]
pub trait ReturnValue: Sized {
    /// The output buffer for a function that returned `self`.
    fn encode(self, args: &Args<'_>) -> Vec<u8>;

    /// The output buffer for a function that returned `result`.
    fn encode_result<E: ErrorValue>(result: Result<Self, E>, args: &Args<'_>) -> Vec<u8> {
        match result {
            Ok(value) => value.encode(args),
            Err(error) => message(OutputTag::Error, &error.message()),
        }
    }
}

impl<T: Serialize> ReturnValue for T {
    fn encode(self, args: &Args<'_>) -> Vec<u8> {
        let mut out = vec![OutputTag::Ok as u8];
        match serde_json::to_writer(&mut out, &self) {
            Ok(()) => out,
            Err(error) => message(
                OutputTag::Error,
                &format!(
                    "the result of `{}` could not be serialized as JSON: {error}",
                    args.function()
                ),
            ),
        }
    }
}

/// The error type `E` of a wisp function that returns `Result<T, E>`: anything
/// with a [`Display`]. The call's error message is `format!("{error:#}")`,
/// which prints the whole chain of causes for `anyhow::Error`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error of a `#[wisp_guest::function]`: \
               it does not implement `std::fmt::Display`",
    label = "the error is reported by its `Display` message",
    note = "implement `std::fmt::Display` for `{Self}`, or return \
            `wisp_guest::Result<T>` and convert errors with `?`"
)]
pub trait ErrorValue {
    /// The message of the failed call.
    fn message(&self) -> String;
}

impl<E: Display> ErrorValue for E {
    fn message(&self) -> String {
        format!("{self:#}")
    }
}

/// [`ReturnValue::encode`] for a return type that the macro cannot name
/// (`impl Serialize`).
pub fn encode<T: ReturnValue>(value: T, args: &Args<'_>) -> Vec<u8> {
    value.encode(args)
}

/// [`ReturnValue::encode_result`] for a `Result` type whose `T` the macro
/// cannot see (an alias with no generic arguments).
pub fn encode_result<T: ReturnValue, E: ErrorValue>(
    result: Result<T, E>,
    args: &Args<'_>,
) -> Vec<u8> {
    T::encode_result(result, args)
}

/// A buffer of `tag` and a UTF-8 message.
pub(crate) fn message(tag: OutputTag, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.len());
    out.push(tag as u8);
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::shim::Signature;

    const F: Signature = Signature::new("f", &[]);

    fn args() -> Args<'static> {
        Args::parse(&F, b"").unwrap()
    }

    #[test]
    fn values_are_tagged_json() {
        assert_eq!(42_i64.encode(&args()), b"\x0042");
        assert_eq!(().encode(&args()), b"\x00null");
        assert_eq!("é\"".encode(&args()), "\u{0}\"é\\\"\"".as_bytes());
        assert_eq!(vec![Some(1), None].encode(&args()), b"\x00[1,null]");
    }

    #[test]
    fn results_are_values_or_messages() {
        let ok: Result<u8, String> = Ok(7);
        assert_eq!(u8::encode_result(ok, &args()), b"\x007");
        let err: Result<u8, String> = Err("no luck".to_owned());
        assert_eq!(u8::encode_result(err, &args()), b"\x01no luck");
        let err = "x".parse::<u32>();
        assert_eq!(
            encode_result(err, &args()),
            b"\x01invalid digit found in string"
        );
    }

    #[test]
    fn errors_print_their_causes() {
        let error = crate::Error::from(std::io::Error::other("disk full"));
        let err: Result<(), _> = Err(error.context("writing `out.txt`"));
        assert_eq!(
            encode_result(err, &args()),
            b"\x01writing `out.txt`: disk full"
        );
    }

    #[test]
    fn unserializable_results_are_errors() {
        let mut map = BTreeMap::new();
        map.insert(vec![1], 2);
        let out = map.encode(&args());
        assert_eq!(out[0], OutputTag::Error as u8);
        assert_eq!(
            std::str::from_utf8(&out[1..]).unwrap(),
            "the result of `f` could not be serialized as JSON: key must be a string"
        );
    }
}
