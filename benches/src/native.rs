//! The CPU kernels of the `faults` module compiled natively, from the very
//! file the module compiles, as the anchor for wisp's compute speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use crate::reference;

/// Values the fixtures' README documents, which the module gives too.
const INT_LOOP_100M: u64 = 2_873_919_100_978_416_786;
const HASH_BYTES_64: &str = "7393f4ec4e68e27c";

/// A kernel's result and how long it took natively.
#[derive(Debug, Clone)]
pub struct Kernel<T> {
    pub value: T,
    pub time: Duration,
}

/// Checks that the natively compiled kernels give the documented values,
/// so that a comparison with wisp compares like with like.
pub fn check_reference() -> Result<()> {
    let got = reference::int_loop(black_box(100_000_000));
    ensure!(
        got == INT_LOOP_100M,
        "native int_loop(100000000) is {got}, but the fixtures document {INT_LOOP_100M}"
    );
    Ok(())
}

/// `int_loop(n)`, natively.
pub fn int_loop(n: u64) -> Kernel<u64> {
    let started = Instant::now();
    let value = black_box(reference::int_loop(black_box(n)));
    Kernel {
        value,
        time: started.elapsed(),
    }
}

/// `hash_bytes(megabytes)`, natively, as the 16 hex digits the module
/// returns; checked against the documented value for 64 MiB.
pub fn hash_bytes(megabytes: u64) -> Result<Kernel<String>> {
    let started = Instant::now();
    let hash = black_box(reference::hash_bytes(black_box(megabytes)));
    let time = started.elapsed();
    let value = format!("{hash:016x}");
    ensure!(
        megabytes != 64 || value == HASH_BYTES_64,
        "native hash_bytes(64) is {value}, but the fixtures document {HASH_BYTES_64}"
    );
    Ok(Kernel { value, time })
}
