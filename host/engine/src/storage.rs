//! The storage a guest may reach through wisp's host imports.
//!
//! The engine knows nothing of buckets or backends: whoever runs a call
//! hands it a [`GuestStorage`], already bound to the one bucket the call may
//! touch, and the imports translate between guest memory and that trait.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::{Caller, Linker};
use wisp_abi as abi;

use crate::call::CallState;

/// Storage as a guest sees it: blocking calls on one bucket. Errors are
/// messages for the guest.
pub trait GuestStorage: Send + Sync {
    /// Bytes `start..end` of an object (`end`: `None` for its end). With an
    /// ETag, fails if the object has changed since it was listed.
    fn get(
        &self,
        key: &str,
        start: u64,
        end: Option<u64>,
        etag: Option<&str>,
    ) -> Result<Bytes, String>;
    /// Writes an object.
    fn put(&self, key: &str, data: Vec<u8>) -> Result<(), String>;
    /// The objects under a prefix, as a JSON array of `{"key", "size",
    /// "etag"}`.
    fn list(&self, prefix: &str) -> Result<Vec<u8>, String>;
    /// Deletes an object.
    fn delete(&self, key: &str) -> Result<(), String>;
}

/// A shared handle to a call's storage.
pub type SharedStorage = Arc<dyn GuestStorage>;

const NO_STORAGE: &str = "this call has no storage to reach";

pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_STORAGE_GET,
        |mut caller: Caller<'_, CallState>,
         key_ptr: i32,
         key_len: i32,
         start: i64,
         end: i64,
         etag_ptr: i32,
         etag_len: i32|
         -> i64 {
            let result = (|| {
                let key = read_str(&mut caller, key_ptr, key_len)?;
                let etag = match etag_len {
                    0 => None,
                    _ => Some(read_str(&mut caller, etag_ptr, etag_len)?),
                };
                let storage = caller.data().storage.clone().ok_or(NO_STORAGE)?;
                let start = u64::try_from(start).map_err(|_| "negative start offset".to_owned())?;
                let end = u64::try_from(end).ok();
                if let Some(end) = end
                    && end - start.min(end) > caller.data().memory_limit()
                {
                    return Err(format!(
                        "{} bytes cannot fit in the call's memory limit of {} bytes; read smaller ranges",
                        end - start,
                        caller.data().memory_limit()
                    ));
                }
                tracing::trace!(%key, start, ?end, "guest storage get");
                storage.get(&key, start, end, etag.as_deref())
            })();
            respond(&mut caller, result)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_STORAGE_PUT,
        |mut caller: Caller<'_, CallState>,
         key_ptr: i32,
         key_len: i32,
         data_ptr: i32,
         data_len: i32|
         -> i64 {
            let result = (|| {
                let key = read_str(&mut caller, key_ptr, key_len)?;
                let data = read_bytes(&mut caller, data_ptr, data_len)?;
                let storage = caller.data().storage.clone().ok_or(NO_STORAGE)?;
                tracing::trace!(%key, bytes = data.len(), "guest storage put");
                storage.put(&key, data).map(|()| Bytes::new())
            })();
            respond(&mut caller, result)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_STORAGE_LIST,
        |mut caller: Caller<'_, CallState>, prefix_ptr: i32, prefix_len: i32| -> i64 {
            let result = (|| {
                let prefix = read_str(&mut caller, prefix_ptr, prefix_len)?;
                let storage = caller.data().storage.clone().ok_or(NO_STORAGE)?;
                tracing::trace!(%prefix, "guest storage list");
                storage.list(&prefix).map(Bytes::from)
            })();
            respond(&mut caller, result)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_STORAGE_DELETE,
        |mut caller: Caller<'_, CallState>, key_ptr: i32, key_len: i32| -> i64 {
            let result = (|| {
                let key = read_str(&mut caller, key_ptr, key_len)?;
                let storage = caller.data().storage.clone().ok_or(NO_STORAGE)?;
                tracing::trace!(%key, "guest storage delete");
                storage.delete(&key).map(|()| Bytes::new())
            })();
            respond(&mut caller, result)
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_TAKE_RESPONSE,
        |mut caller: Caller<'_, CallState>, ptr: i32| -> wasmtime::Result<()> {
            let response = std::mem::take(&mut caller.data_mut().response);
            let memory = memory(&mut caller).map_err(wasmtime::Error::msg)?;
            memory
                .write(&mut caller, ptr as u32 as usize, &response)
                .map_err(|_| {
                    wasmtime::Error::msg(
                        "take_response: the buffer lies outside the guest's memory",
                    )
                })
        },
    )?;
    Ok(())
}

fn respond(caller: &mut Caller<'_, CallState>, result: Result<Bytes, String>) -> i64 {
    // The response is kept as the storage returned it, without a copy,
    // until the guest takes it into its own memory.
    let (bytes, sign) = match result {
        Ok(bytes) => (bytes, 1),
        Err(message) => (Bytes::from(message), -1),
    };
    let len = bytes.len() as i64;
    caller.data_mut().response = bytes;
    sign * len
}

fn memory(caller: &mut Caller<'_, CallState>) -> Result<wasmtime::Memory, String> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| "the module exports no memory".to_owned())
}

fn read_bytes(caller: &mut Caller<'_, CallState>, ptr: i32, len: i32) -> Result<Vec<u8>, String> {
    let memory = memory(caller)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or("the buffer wraps around")?;
    memory
        .data(&caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "the buffer lies outside the guest's memory".to_owned())
}

fn read_str(caller: &mut Caller<'_, CallState>, ptr: i32, len: i32) -> Result<String, String> {
    String::from_utf8(read_bytes(caller, ptr, len)?).map_err(|_| "a key must be UTF-8".to_owned())
}
