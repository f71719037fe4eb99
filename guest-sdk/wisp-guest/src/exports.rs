//! What every function module exports besides its functions.
//!
//! The memory export comes with every `cdylib` built for wasm32; the
//! allocator is defined here, in the SDK's rlib, and rustc exports
//! `#[no_mangle]` functions of dependencies from a `cdylib`, so a guest crate
//! gets it by depending on the SDK. The module test in `tests/` checks this.

use std::alloc::Layout;

/// Allocates `size` bytes of guest memory for the host to write a call's
/// arguments into, with alignment 1, and returns their address, or 0 when
/// `size` is negative or memory is exhausted. A `size` of 0 still gets a
/// valid, distinct address.
///
/// The host calls this export, named [`wisp_abi::ALLOC_EXPORT`]; a guest has
/// no use for it. The bytes are never freed: an instance serves one call.
#[unsafe(no_mangle)]
pub extern "C" fn wisp_alloc(size: i32) -> i32 {
    let Ok(size) = usize::try_from(size) else {
        return 0;
    };
    let Ok(layout) = Layout::from_size_align(size.max(1), 1) else {
        return 0;
    };
    // SAFETY: the layout's size is at least 1.
    let ptr = unsafe { std::alloc::alloc(layout) };
    // A null pointer becomes 0, the ABI's failure; wasm32 addresses fit i32.
    ptr as usize as i32
}
