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

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "wisp")]
unsafe extern "C" {
    #[link_name = "storage_get"]
    fn wisp_storage_get(
        key: *const u8,
        key_len: usize,
        start: i64,
        end: i64,
        etag: *const u8,
        etag_len: usize,
    ) -> i64;
    #[link_name = "storage_put"]
    fn wisp_storage_put(key: *const u8, key_len: usize, data: *const u8, data_len: usize) -> i64;
    #[link_name = "storage_list"]
    fn wisp_storage_list(prefix: *const u8, prefix_len: usize) -> i64;
    #[link_name = "storage_delete"]
    fn wisp_storage_delete(key: *const u8, key_len: usize) -> i64;
    #[link_name = "take_response"]
    fn wisp_take_response(ptr: *mut u8);
}

/// Collects the response of the storage import that returned `status`.
#[cfg(target_arch = "wasm32")]
fn response(status: i64) -> Result<Vec<u8>, String> {
    let len = status.unsigned_abs() as usize;
    let mut buffer = Vec::with_capacity(len);
    // SAFETY: the host writes exactly the `len` bytes it announced into the
    // spare capacity, so they are initialised before the length covers them;
    // not zeroing them first saves touching every page twice.
    unsafe {
        wisp_take_response(buffer.as_mut_ptr());
        buffer.set_len(len);
    }
    if status >= 0 {
        Ok(buffer)
    } else {
        Err(String::from_utf8_lossy(&buffer).into_owned())
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn storage_get(
    key: &str,
    start: u64,
    end: Option<u64>,
    etag: Option<&str>,
) -> Result<Vec<u8>, String> {
    let etag = etag.unwrap_or("");
    let end = end.map_or(-1, |e| e.min(i64::MAX as u64) as i64);
    // SAFETY: the host reads the key and the ETag within their lengths.
    let status = unsafe {
        wisp_storage_get(
            key.as_ptr(),
            key.len(),
            start as i64,
            end,
            etag.as_ptr(),
            etag.len(),
        )
    };
    response(status)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn storage_put(key: &str, data: &[u8]) -> Result<(), String> {
    // SAFETY: the host reads the key and the data within their lengths.
    let status = unsafe { wisp_storage_put(key.as_ptr(), key.len(), data.as_ptr(), data.len()) };
    response(status).map(drop)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn storage_list(prefix: &str) -> Result<Vec<u8>, String> {
    // SAFETY: the host reads the prefix within its length.
    let status = unsafe { wisp_storage_list(prefix.as_ptr(), prefix.len()) };
    response(status)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn storage_delete(key: &str) -> Result<(), String> {
    // SAFETY: the host reads the key within its length.
    let status = unsafe { wisp_storage_delete(key.as_ptr(), key.len()) };
    response(status).map(drop)
}

#[cfg(not(target_arch = "wasm32"))]
const NO_HOST: &str = "storage is reachable only inside a wisp call";

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn storage_get(
    _: &str,
    _: u64,
    _: Option<u64>,
    _: Option<&str>,
) -> Result<Vec<u8>, String> {
    Err(NO_HOST.to_owned())
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn storage_put(_: &str, _: &[u8]) -> Result<(), String> {
    Err(NO_HOST.to_owned())
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn storage_list(_: &str) -> Result<Vec<u8>, String> {
    Err(NO_HOST.to_owned())
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn storage_delete(_: &str) -> Result<(), String> {
    Err(NO_HOST.to_owned())
}
