//! The contract between the wisp host and the modules built with `wisp-guest`.
//!
//! Both sides depend on this crate, so it stays tiny and free of dependencies:
//! names, numbers and the shape of the manifest, nothing that runs.
//!
//! # A function module, ABI version 1
//!
//! - It exports its linear memory as `memory` and an allocator
//!   [`ALLOC_EXPORT`] of type `(size: i32) -> i32` that returns a pointer to
//!   `size` fresh bytes, or 0 when it cannot.
//! - Every `#[wisp_guest::function]` becomes an export named
//!   [`FUNCTION_EXPORT_PREFIX`] + its name, of type
//!   `(args_ptr: i32, args_len: i32) -> i64`. The host writes the call's
//!   arguments (JSON) into memory it got from the allocator and calls the
//!   export. The `i64` result packs the output buffer: pointer in the high 32
//!   bits, length in the low 32. The buffer's first byte is an [`OutputTag`];
//!   the rest is JSON for [`OutputTag::Ok`] and a UTF-8 message otherwise.
//! - A custom section named [`MANIFEST_SECTION`] holds one line per function,
//!   each a JSON object with the keys `abi`, `sdk`, `function` and `params`.
//!   The linker concatenates the sections of all functions, so the lines
//!   arrive in no particular order.
//! - The module may import functions from the module [`IMPORT_MODULE`]:
//!   [`IMPORT_PANIC`] `(ptr: i32, len: i32)` hands the host a panic's message
//!   just before the guest traps; the `storage_*` imports reach the job's
//!   storage (see below).
//!
//! # Storage imports
//!
//! Each returns an `i64`: zero or more is success and the length of the
//! response the host holds for the guest (the object's bytes for a get, a
//! JSON array for a list, nothing for a put or a delete); below zero is an
//! error, and its negation is the length of the UTF-8 message the host
//! holds instead. The guest allocates that many bytes and calls
//! [`IMPORT_TAKE_RESPONSE`] `(ptr: i32)` to have the host copy them there.
//!
//! - [`IMPORT_STORAGE_GET`] `(key_ptr, key_len, start: i64, end: i64,
//!   etag_ptr, etag_len)`: bytes `start..end` of an object (`end` < 0: to the
//!   end); with an ETag, the read fails if the object has changed.
//! - [`IMPORT_STORAGE_PUT`] `(key_ptr, key_len, data_ptr, data_len)`.
//! - [`IMPORT_STORAGE_LIST`] `(prefix_ptr, prefix_len)`: a JSON array of
//!   `{"key", "size", "etag"}`.
//! - [`IMPORT_STORAGE_DELETE`] `(key_ptr, key_len)`.
//! - If the module exports `_initialize` (a WASI reactor), the host calls it
//!   once per instance before the function.
//!
//! A module with no manifest but a `_start` export is a plain WASI command:
//! it reads its argument as JSON on stdin and writes its result as JSON on
//! stdout.

/// The ABI version that this crate describes. A host runs modules whose
/// manifest names a version in [`SUPPORTED_ABI_VERSIONS`].
pub const ABI_VERSION: u32 = 1;

/// The ABI versions that a host built from this crate can run.
pub const SUPPORTED_ABI_VERSIONS: std::ops::RangeInclusive<u32> = 1..=1;

/// Name of the custom section that carries the manifest.
pub const MANIFEST_SECTION: &str = "wisp-manifest";

/// Name of the allocator export.
pub const ALLOC_EXPORT: &str = "wisp_alloc";

/// Prefix of the export of each function: `wisp:fn:` + the function's name.
pub const FUNCTION_EXPORT_PREFIX: &str = "wisp:fn:";

/// The module from which guests import host functions.
pub const IMPORT_MODULE: &str = "wisp";

/// `(ptr: i32, len: i32)`: the UTF-8 message of a panic, sent by the guest's
/// panic hook just before it traps.
pub const IMPORT_PANIC: &str = "panic";

/// Reads an object or a byte range of it.
pub const IMPORT_STORAGE_GET: &str = "storage_get";

/// Writes an object.
pub const IMPORT_STORAGE_PUT: &str = "storage_put";

/// Lists a prefix.
pub const IMPORT_STORAGE_LIST: &str = "storage_list";

/// Deletes an object.
pub const IMPORT_STORAGE_DELETE: &str = "storage_delete";

/// `(ptr: i32)`: copies the response of the last storage import into guest
/// memory.
pub const IMPORT_TAKE_RESPONSE: &str = "take_response";

/// The export name of a function.
pub fn function_export(name: &str) -> String {
    format!("{FUNCTION_EXPORT_PREFIX}{name}")
}

/// Packs an output buffer's pointer and length into the `i64` that a
/// function export returns.
pub const fn pack_output(ptr: u32, len: u32) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// Splits the `i64` returned by a function export into pointer and length.
pub const fn unpack_output(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

/// The first byte of a function's output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OutputTag {
    /// The function returned; the rest is its result as JSON.
    Ok = 0,
    /// The function returned an error; the rest is its message.
    Error = 1,
    /// The arguments did not fit the parameters; the rest says why.
    BadArguments = 2,
}

impl OutputTag {
    /// The tag for a byte, if it is one.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Ok),
            1 => Some(Self::Error),
            2 => Some(Self::BadArguments),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips() {
        let packed = pack_output(0xdead_beef, 0x1234_5678);
        assert_eq!(unpack_output(packed), (0xdead_beef, 0x1234_5678));
        assert_eq!(unpack_output(pack_output(0, u32::MAX)), (0, u32::MAX));
    }

    #[test]
    fn tags_round_trip() {
        for tag in [OutputTag::Ok, OutputTag::Error, OutputTag::BadArguments] {
            assert_eq!(OutputTag::from_byte(tag as u8), Some(tag));
        }
        assert_eq!(OutputTag::from_byte(3), None);
    }
}
