//! Write wisp functions in plain Rust.
//!
//! A wisp function is an ordinary Rust function marked with
//! [`#[wisp_guest::function]`](function) in a crate built as a `cdylib` for
//! `wasm32-wasip1`. The attribute leaves the function as it is and adds the
//! export through which the wisp host calls it, plus a line of the module's
//! manifest that names it and its parameters.
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! wisp-guest = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! ```ignore
//! #[wisp_guest::function]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! #[wisp_guest::function(name = "word-count")]
//! fn count(text: String) -> usize {
//!     text.split_whitespace().count()
//! }
//! ```
//!
//! # What the attribute accepts
//!
//! A free `fn`, possibly `const` and of any visibility, that is not `async`,
//! `unsafe`, `extern` or generic, and whose parameters are plain names
//! (`pair: (i32, i32)`, not `(a, b): (i32, i32)`), since an argument may be
//! passed by name. Anything else is a compile error that says what to change.
//! The function itself stays an ordinary Rust function: unit tests call it
//! directly, natively, with `cargo test`.
//!
//! `#[wisp_guest::function(name = "word-count")]` exports the function under
//! another name, made of 1 to 128 ASCII letters, digits, `_`, `-` and `.`.
//!
//! # Arguments
//!
//! A call's arguments arrive as one JSON value. Every parameter type must
//! implement [`serde::Deserialize`] and own its data (`String`, not `&str`):
//!
//! - a function without parameters accepts `null`, `[]`, `{}` or nothing;
//! - a function with one parameter takes the JSON value itself as that
//!   argument, with no array or object around it: `count` above is called
//!   with `"some text"`, not `["some text"]`;
//! - a function with two or more parameters takes either an array with one
//!   item per parameter, in order (`[1, 2]`), or an object keyed by parameter
//!   name (`{"a": 1, "b": 2}`) that names each parameter exactly once.
//!
//! Arguments that do not fit fail the call before the function runs, with a
//! message that names the function and the parameter.
//!
//! # Results and errors
//!
//! The return value must implement [`serde::Serialize`] and travels back as
//! JSON; a function that returns nothing returns `null`.
//!
//! A return type whose last path segment is `Result` (`Result<T, E>`,
//! [`wisp_guest::Result<T>`](Result), `anyhow::Result<T>`,
//! `std::io::Result<T>`) is taken as a `std::result::Result` whose first
//! generic argument is the value: `Ok(value)` returns `value`, and
//! `Err(error)` fails the call with the message `format!("{error:#}")`, so the
//! error type must implement [`Display`](std::fmt::Display). The macro goes by
//! the name as written: an alias of `Result` named otherwise is encoded as a
//! plain value, which serde writes as `{"Ok": value}`. [`Error`] converts from
//! any standard error with `?` and keeps its chain of causes:
//!
//! ```ignore
//! #[wisp_guest::function]
//! fn parse(text: String) -> wisp_guest::Result<u32> {
//!     Ok(text.trim().parse()?)
//! }
//! ```
//!
//! # Panics
//!
//! A panic fails the call: the SDK hands the host the message and location,
//! `panicked at src/lib.rs:4:5: ...` (at most 64 KiB of it), and the module
//! traps. The instance is gone after that, but no other call is affected.
//!
//! # Logging
//!
//! Whatever the function writes to standard output and standard error, with
//! `println!` and `eprintln!` for instance, goes to the host, which keeps it
//! as the call's log. Standard output is flushed when the function returns
//! or panics, so a last line without a newline is kept too.
//!
//! # Limits
//!
//! Each call runs in a fresh instance, so no state survives from one call
//! to the next. The runtime caps an instance's memory and the call's wall
//! time; arguments and results share that memory, so both must fit into it
//! at once. There is no file system or network unless the host grants one.
//!
//! # Custom serde types
//!
//! Derive the serde traits with serde as a direct dependency, as above. The
//! copy re-exported here ([`serde`]) serves crates that do not depend on
//! serde themselves; its derives then need
//! `#[serde(crate = "wisp_guest::serde")]`.

#![deny(missing_docs)]

mod args;
mod error;
#[cfg(any(target_arch = "wasm32", doc))]
mod exports;
mod imports;
mod json;
mod output;
mod panic;
mod shim;
pub mod storage;

pub use error::{Error, Result};
#[cfg(any(target_arch = "wasm32", doc))]
pub use exports::wisp_alloc;
pub use serde;
pub use serde_json;
pub use storage::{DataChunk, ObjectPart};
pub use wisp_guest_macros::function;

/// The runtime side of the code that `#[function]` generates. Not a public
/// API: it changes whenever the macro does, which is why both crates share
/// one version.
#[doc(hidden)]
pub mod __private {
    pub use crate::args::{Args, Argument, ArgumentError};
    pub use crate::output::{ErrorValue, ReturnValue, encode, encode_result};
    pub use crate::shim::{Signature, export, invoke};
}
