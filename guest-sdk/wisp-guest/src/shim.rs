//! The path of one call, from the export that the macro generates to the
//! user's function and back.
//!
//! The generated export passes the host's pointer and length to [`export`]
//! along with a closure that decodes each argument, calls the function and
//! encodes what it returned. Everything around that closure lives here, so
//! the generated code stays a few lines long. [`invoke`] is the part without
//! guest memory in it, which the tests call on the host.

use wisp_abi::OutputTag;

use crate::args::{Args, ArgumentError};
use crate::output;

/// What the glue knows about a function: its exported name and its parameter
/// names, in order.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub(crate) function: &'static str,
    pub(crate) params: &'static [&'static str],
}

impl Signature {
    /// The signature of `function` with these parameters.
    pub const fn new(function: &'static str, params: &'static [&'static str]) -> Self {
        Self { function, params }
    }
}

/// Runs one call on `input` and returns the output buffer: the arguments are
/// split by `signature` and handed to `call`, which decodes them, calls the
/// function and encodes its result. An argument error becomes an output
/// tagged [`OutputTag::BadArguments`].
pub fn invoke<F>(signature: &Signature, input: &[u8], call: F) -> Vec<u8>
where
    F: FnOnce(&Args<'_>) -> Result<Vec<u8>, ArgumentError>,
{
    match Args::parse(signature, input).and_then(|args| call(&args)) {
        Ok(output) => output,
        Err(error) => output::message(OutputTag::BadArguments, error.message()),
    }
}

/// The body of a function export: [`invoke`] on the `len` bytes at `ptr`,
/// with the output buffer left in guest memory for the host to read.
///
/// The argument buffer and the output buffer are never freed: an instance
/// serves one call and is then dropped whole.
///
/// # Panics
///
/// On targets other than wasm32, where there is no guest memory: the glue is
/// compiled there only so that guest crates can be checked and unit-tested
/// natively, and the host never calls it.
pub fn export<F>(ptr: i32, len: i32, signature: &Signature, call: F) -> i64
where
    F: FnOnce(&Args<'_>) -> Result<Vec<u8>, ArgumentError>,
{
    crate::panic::install_hook();
    let output = invoke(signature, memory::guest_bytes(ptr, len), call);
    crate::panic::flush_stdout();
    memory::leak_output(output)
}

/// Guest memory as the ABI lays it out: 32-bit addresses and lengths.
#[cfg(target_arch = "wasm32")]
mod memory {
    /// The `len` bytes at `ptr`.
    pub(super) fn guest_bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
        // Both are u32 on the wire; i32 is only how wasm spells them.
        let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
        if len == 0 {
            return &[];
        }
        // SAFETY: by the ABI, the host wrote `len` bytes at `ptr` into memory
        // that it got from `wisp_alloc`, which nothing else owns, before the
        // call; they stay untouched until the call returns.
        unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
    }

    /// Leaks `output` and packs its address and length for the host.
    pub(super) fn leak_output(output: Vec<u8>) -> i64 {
        let output = Box::leak(output.into_boxed_slice());
        let packed = wisp_abi::pack_output(output.as_ptr() as usize as u32, output.len() as u32);
        packed as i64
    }
}

/// Stand-ins for targets without guest memory; see [`export`].
#[cfg(not(target_arch = "wasm32"))]
mod memory {
    const ONLY_WASM: &str = "a wisp function export is called by the wisp host, in a wasm32 module";

    pub(super) fn guest_bytes<'a>(_ptr: i32, _len: i32) -> &'a [u8] {
        panic!("{ONLY_WASM}")
    }

    pub(super) fn leak_output(_output: Vec<u8>) -> i64 {
        panic!("{ONLY_WASM}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD: Signature = Signature::new("add", &["a", "b"]);

    fn add(input: &str) -> Vec<u8> {
        invoke(&ADD, input.as_bytes(), |args| {
            let a: i64 = args.decode(0)?;
            let b: i64 = args.decode(1)?;
            Ok(crate::output::encode(a + b, args))
        })
    }

    #[test]
    fn a_call_returns_tagged_json() {
        assert_eq!(add("[40, 2]"), b"\x0042");
        assert_eq!(add(r#"{"a": -1, "b": 1}"#), b"\x000");
    }

    #[test]
    fn bad_arguments_are_tagged() {
        let out = add("[1]");
        assert_eq!(out[0], OutputTag::BadArguments as u8);
        assert_eq!(
            std::str::from_utf8(&out[1..]).unwrap(),
            "add takes 2 arguments (a, b) as a JSON array or object; got an array of 1 item"
        );

        let out = add("[1, true]");
        assert_eq!(out[0], OutputTag::BadArguments as u8);
        assert_eq!(
            std::str::from_utf8(&out[1..]).unwrap(),
            "argument `b` of `add`: invalid type: boolean `true`, expected i64"
        );
    }

    #[test]
    fn the_function_does_not_run_on_bad_arguments() {
        let mut ran = false;
        let out = invoke(&ADD, b"[1, 2, 3]", |_| {
            ran = true;
            Ok(Vec::new())
        });
        assert!(!ran);
        assert_eq!(out[0], OutputTag::BadArguments as u8);
    }
}
