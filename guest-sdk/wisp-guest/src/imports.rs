//! The functions that a guest imports from the wisp host, with stand-ins on
//! other targets so that the SDK and guest crates build and test natively.
//!
//! The import names are attribute literals, which cannot refer to the
//! constants of `wisp-abi`; the module test in `tests/` checks that a built
//! module imports exactly [`wisp_abi::IMPORT_MODULE`].[`wisp_abi::IMPORT_PANIC`].

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wisp")]
unsafe extern "C" {
    /// [`wisp_abi::IMPORT_PANIC`]: the host keeps `len` bytes of UTF-8 at
    /// `ptr` as the reason why the call is about to trap.
    #[link_name = "panic"]
    fn wisp_panic(ptr: *const u8, len: usize);
}

/// Hands the host the message of a panic.
#[cfg(target_arch = "wasm32")]
pub(crate) fn panic(message: &str) {
    // SAFETY: the host only reads `message.len()` bytes at its address.
    unsafe { wisp_panic(message.as_ptr(), message.len()) }
}

/// Prints the message of a panic, where there is no host to hand it to.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn panic(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}
