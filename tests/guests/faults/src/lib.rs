//! # faults: functions for the host's tests
//!
//! Functions that succeed in every shape the ABI allows, fail in every way a
//! guest can fail (an error, a panic, a trap, a runaway loop, too much memory,
//! too deep a stack), fill the log and the output, and burn CPU in kernels
//! whose results are known. The host's integration tests build this crate
//! with `cargo build --release --target wasm32-wasip1` and call it through
//! the engine, the runtime and the client.
//!
//! ```sh
//! wisp submit tests/guests/faults --function add --args '[2, 3]'
//! wisp submit tests/guests/faults --function panic --args '"boom"'
//! ```
//!
//! Every kernel here is deterministic: the same arguments give the same
//! result on every run and every host. Their code is in `reference.rs`, a
//! file without dependencies that native benchmarks can compile as it is
//! (`#[path = ".../reference.rs"] mod reference;`) to compare against.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use reference::MIB;

/// Takes nothing, does nothing, returns `null`.
#[wisp_guest::function]
fn noop() {}

/// Returns its argument unchanged.
#[wisp_guest::function]
fn echo(value: Value) -> Value {
    value
}

/// Adds two numbers, as `[a, b]` or `{"a": a, "b": b}`; overflow is an error.
#[wisp_guest::function]
fn add(a: i64, b: i64) -> Result<i64, String> {
    a.checked_add(b)
        .ok_or_else(|| format!("{a} + {b} overflows an i64"))
}

/// Exported as `renamed`, not under its Rust name.
#[wisp_guest::function(name = "renamed")]
fn renamed_function() -> &'static str {
    "renamed"
}

/// Fails with `message` as its error.
#[wisp_guest::function]
fn fail(message: String) -> Result<(), String> {
    Err(message)
}

/// Panics with `message`.
#[wisp_guest::function]
fn panic(message: String) {
    panic!("{message}");
}

/// Runs forever, until the host's time limit interrupts it.
#[wisp_guest::function]
fn spin() {
    let mut x = 0u64;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

/// Allocates `megabytes` MiB and writes to every page of it; returns the
/// number of bytes allocated. Past the memory limit the allocation fails the
/// way it fails for any function: the module aborts (traps).
#[wisp_guest::function]
fn grow(megabytes: u64) -> u64 {
    let Some(bytes) = megabytes
        .checked_mul(MIB)
        .and_then(|b| usize::try_from(b).ok())
    else {
        panic!("{megabytes} MiB do not fit in a 32-bit address space");
    };
    let mut block: Vec<u8> = Vec::with_capacity(bytes);
    // A non-zero fill writes every page, where `vec![0; n]` may take fresh
    // zeroed pages without writing them. Reading a byte of each page back
    // keeps the writes and the memory from being optimised away.
    block.resize(bytes, 0xa5);
    let block = black_box(block);
    let touched = block.iter().step_by(4096).filter(|&&b| b == 0xa5).count() as u64;
    assert_eq!(touched, (bytes as u64).div_ceil(4096));
    block.len() as u64
}

/// Recurses `depth` levels deep, not in tail position, and returns the depth
/// reached. A small depth (a thousand) returns; a large one (ten million)
/// exhausts the wasm call stack and traps.
#[wisp_guest::function]
fn recurse(depth: u64) -> u64 {
    descend(depth)
}

/// Each level keeps its state in wasm locals, not in linear memory, so that
/// the wasm call stack is what runs out. Passing the result through
/// `black_box` after the call keeps the recursion from becoming a loop.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    black_box(descend(depth - 1)) + 1
}

/// Prints `stdout line {i}` on standard output and `stderr line {i}` on
/// standard error, for `i` in `0..lines`, interleaved.
#[wisp_guest::function]
fn log(lines: u64) {
    for i in 0..lines {
        println!("stdout line {i}");
        eprintln!("stderr line {i}");
    }
}

/// Writes `bytes` bytes to standard output (lines of 63 `x` and a newline,
/// the last one possibly short) and returns how many it wrote.
#[wisp_guest::function]
fn big_log(bytes: u64) -> u64 {
    let line = [b"x".repeat(63), b"\n".to_vec()].concat();
    let mut out = std::io::stdout().lock();
    let mut left = bytes as usize;
    while left > 0 {
        let n = left.min(line.len());
        out.write_all(&line[..n]).expect("stdout takes the log");
        left -= n;
    }
    out.flush().expect("stdout takes the log");
    bytes
}

/// Reads a file of the host as text, which a call cannot do: wisp opens
/// no directory to a guest, so every path fails, and the error (with the
/// path in front) is the result.
#[wisp_guest::function]
fn read_host_file(path: String) -> Result<String, String> {
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// Opens a TCP connection to `addr`, which a call cannot do either: WASI
/// preview 1 has no way to open a socket.
#[wisp_guest::function]
fn connect(addr: String) -> Result<(), String> {
    std::net::TcpStream::connect(&addr)
        .map(drop)
        .map_err(|e| format!("{addr}: {e}"))
}

/// Sleeps `ms` milliseconds in the host (`std::thread::sleep`, which is a
/// WASI `poll_oneoff`), then returns the milliseconds that really passed.
#[wisp_guest::function]
fn sleep_ms(ms: u64) -> u64 {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(ms));
    start.elapsed().as_millis() as u64
}

/// Spins for `ms` milliseconds of wall time without ever leaving the guest
/// for long (only to read the clock); returns the milliseconds that passed.
#[wisp_guest::function]
fn busy_ms(ms: u64) -> u64 {
    let start = Instant::now();
    let limit = Duration::from_millis(ms);
    let mut x = 1u64;
    while start.elapsed() < limit {
        for _ in 0..1000 {
            x = black_box(x.wrapping_mul(3).wrapping_add(1));
        }
    }
    start.elapsed().as_millis() as u64
}

/// Returns a string of exactly `bytes` bytes (the letters `a` to `z` over and
/// over), so its JSON output is `bytes + 2` bytes long.
#[wisp_guest::function]
fn big_output(bytes: u64) -> String {
    (0..bytes)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// A CPU kernel: `n` steps of a xorshift generator folded into a checksum.
#[wisp_guest::function]
fn int_loop(n: u64) -> u64 {
    reference::int_loop(n)
}

/// A CPU and memory kernel: generates `megabytes` MiB of pseudo-random data
/// and hashes it; returns the hash as 16 hex digits.
#[wisp_guest::function]
fn hash_bytes(megabytes: u64) -> String {
    format!("{:016x}", reference::hash_bytes(megabytes))
}

pub mod reference;

/// Writes `text` to `key`, reads it back, lists the prefix `key` lies
/// under, deletes the object, and returns what it saw:
/// `{"read": text, "listed": [keys], "after_delete": [keys]}`.
#[wisp_guest::function]
fn storage_round_trip(key: String, text: String) -> wisp_guest::Result<Value> {
    use wisp_guest::storage;
    storage::put(&key, text.as_bytes())?;
    let read = String::from_utf8(storage::get(&key)?)?;
    let prefix = key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let keys = |objects: Vec<storage::ObjectInfo>| -> Vec<String> {
        objects.into_iter().map(|o| o.key).collect()
    };
    let listed = keys(storage::list(prefix)?);
    storage::delete(&key)?;
    let after_delete = keys(storage::list(prefix)?);
    Ok(serde_json::json!({"read": read, "listed": listed, "after_delete": after_delete}))
}

/// Writes to a key, to show which keys a function may not write.
#[wisp_guest::function]
fn storage_put(key: String) -> wisp_guest::Result<()> {
    wisp_guest::storage::put(&key, b"x")
}

/// Reads a part of an object as text.
#[wisp_guest::function]
fn read_part(part: wisp_guest::ObjectPart) -> wisp_guest::Result<String> {
    part.text()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_functions() {
        noop();
        assert_eq!(
            echo(serde_json::json!({"a": [1, "x", null]})),
            serde_json::json!({"a": [1, "x", null]})
        );
        assert_eq!(add(2, 3), Ok(5));
        assert!(add(i64::MAX, 1).unwrap_err().contains("overflows"));
        assert_eq!(fail("no".into()), Err("no".to_string()));
        assert_eq!(renamed_function(), "renamed");
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn panics() {
        panic("boom".into());
    }

    #[test]
    fn memory_stack_and_output() {
        assert_eq!(grow(3), 3 * MIB);
        assert_eq!(grow(0), 0);
        assert_eq!(recurse(1000), 1000);
        assert_eq!(big_output(28), "abcdefghijklmnopqrstuvwxyzab");
        assert_eq!(big_output(0), "");
        assert_eq!(big_log(100), 100);
    }

    #[test]
    fn time() {
        assert!(sleep_ms(20) >= 20);
        assert!(busy_ms(20) >= 20);
    }

    #[test]
    fn kernels_are_deterministic() {
        // The same values come out of the wasm module: the kernels use only
        // wrapping integer arithmetic, which is the same on every target.
        assert_eq!(int_loop(0), 0);
        assert_eq!(int_loop(1_000_000), 17_576_477_763_675_064_859);
        assert_ne!(int_loop(1_000_000), int_loop(1_000_001));
        assert_eq!(hash_bytes(2), "8a604492478e531c");
        assert_ne!(hash_bytes(1), hash_bytes(2));
    }
}

/// Reads the object `key` from its first byte to its last in ranges of
/// `chunk_mib` MiB, one storage import per range, and returns the bytes
/// read. The object's size comes from a listing of its key, since a range
/// that starts at the end is an error; a range that comes back short ends
/// the read early. The storage benchmark times this against native reads.
#[wisp_guest::function]
fn read_chunks(key: String, chunk_mib: u64) -> wisp_guest::Result<u64> {
    use wisp_guest::storage;
    let chunk = match chunk_mib.checked_mul(MIB) {
        Some(chunk) if chunk > 0 => chunk,
        _ => {
            return Err(wisp_guest::Error::msg(format!(
                "chunk_mib must be between 1 and {}, not {chunk_mib}",
                u64::MAX / MIB
            )));
        }
    };
    let size = storage::list(&key)?
        .into_iter()
        .find(|object| object.key == key)
        .ok_or_else(|| wisp_guest::Error::msg(format!("object `{key}` does not exist")))?
        .size;
    let mut offset = 0;
    while offset < size {
        let read = storage::get_range(&key, offset..offset.saturating_add(chunk))?.len() as u64;
        offset += read;
        if read < chunk {
            break;
        }
    }
    Ok(offset)
}

#[cfg(test)]
mod read_chunks_tests {
    use super::*;

    #[test]
    fn needs_a_chunk_size_and_a_host() {
        let zero = read_chunks("k".into(), 0).unwrap_err().to_string();
        assert!(zero.contains("not 0"), "{zero}");
        let huge = read_chunks("k".into(), u64::MAX).unwrap_err().to_string();
        assert!(huge.contains("chunk_mib"), "{huge}");
        let outside = read_chunks("k".into(), 4).unwrap_err().to_string();
        assert!(outside.contains("only inside a wisp call"), "{outside}");
    }
}

/// Prints `hello stdout` on standard output and `hello stderr` on standard
/// error, then returns its argument unchanged: the echo of the action
/// server's tests.
#[wisp_guest::function]
fn action_echo(value: Value) -> Value {
    println!("hello stdout");
    eprintln!("hello stderr");
    value
}

/// The OpenWhisk activation context as the action server hands it to a
/// call, read from the environment: `api_host`, `api_key`, `namespace`,
/// `action_name`, `action_version`, `activation_id` and `deadline`, each a
/// string, or `null` when its variable is not set.
#[wisp_guest::function]
fn action_context() -> serde_json::Map<String, Value> {
    [
        "api_host",
        "api_key",
        "namespace",
        "action_name",
        "action_version",
        "activation_id",
        "deadline",
    ]
    .into_iter()
    .map(|key| {
        let var = format!("__OW_{}", key.to_uppercase());
        (
            key.to_owned(),
            std::env::var(var).map_or(Value::Null, Value::String),
        )
    })
    .collect()
}

/// Returns the environment variables named in `names`, as an object from
/// name to value (`null` for a variable that is not set).
#[wisp_guest::function]
fn action_env(names: Vec<String>) -> serde_json::Map<String, Value> {
    names
        .into_iter()
        .map(|name| {
            let value = std::env::var(&name).map_or(Value::Null, Value::String);
            (name, value)
        })
        .collect()
}

/// Returns a result of the shape that `{"shape": …}` asks for: `text` (the
/// string `not a json object`), `number` (`42`), `string` (`"x"`), `array`
/// (`["a","b"]`) or `error` (`{"error":{"code":7}}`).
#[wisp_guest::function]
fn action_shape(request: Value) -> Result<Value, String> {
    match request["shape"].as_str() {
        Some("text") => Ok(Value::from("not a json object")),
        Some("number") => Ok(Value::from(42)),
        Some("string") => Ok(Value::from("x")),
        Some("array") => Ok(serde_json::json!(["a", "b"])),
        Some("error") => Ok(serde_json::json!({"error": {"code": 7}})),
        _ => Err(format!("no such shape: {}", request["shape"])),
    }
}

/// Logs `begin {tag}` on both streams, sleeps `ms` milliseconds, logs
/// `end {tag}`, and returns the tag with the activation id it saw before
/// and after sleeping.
#[wisp_guest::function]
fn action_sleep(ms: u64, tag: String) -> Value {
    let before = std::env::var("__OW_ACTIVATION_ID").ok();
    println!("begin {tag}");
    eprintln!("begin {tag}");
    std::thread::sleep(Duration::from_millis(ms));
    println!("end {tag}");
    eprintln!("end {tag}");
    let after = std::env::var("__OW_ACTIVATION_ID").ok();
    serde_json::json!({"tag": tag, "before": before, "after": after})
}

/// Fails the way `{"fault": …}` asks: `panic` panics with `message`,
/// `unreachable` executes wasm's `unreachable` instruction (a trap). Any
/// other request is returned unchanged.
#[wisp_guest::function]
fn action_fault(request: Value) -> Value {
    match request["fault"].as_str() {
        Some("unreachable") => {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
            #[cfg(not(target_arch = "wasm32"))]
            std::process::abort();
        }
        Some("panic") => panic!("{}", request["message"].as_str().unwrap_or("no message")),
        _ => request,
    }
}

/// Fails its first `times` runs and succeeds after, counting its runs as
/// objects under `key/` in the job's bucket: a call that needs retries.
/// Returns the run that succeeded, from 1.
#[wisp_guest::function]
fn fail_first(key: String, times: u32) -> wisp_guest::Result<u32> {
    use wisp_guest::storage;
    let runs = storage::list(&format!("{key}/"))?.len() as u32;
    storage::put(&format!("{key}/{runs}"), b"ran")?;
    if runs < times {
        return Err(wisp_guest::Error::msg(format!(
            "run {} fails on purpose",
            runs + 1
        )));
    }
    Ok(runs + 1)
}
