//! The messages wisp reads from peers it does not trust, and how it reads
//! them.
//!
//! - [`action`]: the requests OpenWhisk's invoker (or anyone who reaches
//!   the port) sends to the action server: `/init` and `/run` bodies and the
//!   job requests they carry.
//! - [`output`]: the output buffer a guest hands back from a function call.
//!
//! Every parser here takes arbitrary bytes and either returns a value that
//! satisfies the documented bounds or an error that says what was wrong.
//! None of them panics, allocates much beyond its input, or recurses past
//! serde_json's depth limit; the fuzz targets under `fuzz/` hold them to it.

pub mod action;
pub mod output;
