//! `poll_oneoff` that honours the call's deadline.
//!
//! Epoch interruption stops a guest only while it runs wasm code. A guest
//! that sleeps (Rust's `thread::sleep` is WASI's `poll_oneoff` on a clock)
//! waits inside the host, where no epoch reaches it, so a 1 s limit would
//! not stop a 20 s sleep. This replacement sleeps in short slices and gives
//! up as soon as the call's deadline passes or the call is cancelled.
//!
//! Guests have no file descriptors but their in-memory stdio, which is
//! always ready, so subscriptions to descriptors complete at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker, Trap};

use crate::call::CallState;

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const EVENT_CLOCK: u8 = 0;
const CLOCK_REALTIME: u32 = 0;
const FLAG_ABSTIME: u16 = 1;
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
/// How often a sleeping call looks at its deadline.
const SLICE: Duration = Duration::from_millis(10);

pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        |mut caller: Caller<'_, CallState>,
         subscriptions: i32,
         events: i32,
         count: i32,
         event_count: i32|
         -> wasmtime::Result<i32> {
            poll_oneoff(
                &mut caller,
                subscriptions as u32,
                events as u32,
                count as u32,
                event_count as u32,
            )
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

struct Subscription {
    userdata: u64,
    kind: u8,
    /// For clocks: how long from now.
    wait: Duration,
}

fn poll_oneoff(
    caller: &mut Caller<'_, CallState>,
    subscriptions: u32,
    events: u32,
    count: u32,
    event_count: u32,
) -> wasmtime::Result<i32> {
    if count == 0 {
        return Ok(ERRNO_INVAL);
    }
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return Ok(ERRNO_FAULT);
    };
    let mut raw = vec![0; count as usize * SUBSCRIPTION_SIZE];
    if memory
        .read(&*caller, subscriptions as usize, &mut raw)
        .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    let subs: Vec<Subscription> = raw.chunks_exact(SUBSCRIPTION_SIZE).map(parse).collect();

    // Descriptors are always ready; clocks wait for the shortest of them.
    let ready: Vec<&Subscription> = subs.iter().filter(|s| s.kind != EVENT_CLOCK).collect();
    let fired: Vec<&Subscription> = if ready.is_empty() {
        let wait = subs.iter().map(|s| s.wait).min().unwrap_or_default();
        sleep(caller, wait)?;
        subs.iter().filter(|s| s.wait <= wait).collect()
    } else {
        ready
    };

    let mut out = vec![0; fired.len() * EVENT_SIZE];
    for (event, sub) in out.chunks_exact_mut(EVENT_SIZE).zip(&fired) {
        event[0..8].copy_from_slice(&sub.userdata.to_le_bytes());
        event[10] = sub.kind;
    }
    let written = memory
        .write(&mut *caller, events as usize, &out)
        .and_then(|()| {
            memory.write(
                &mut *caller,
                event_count as usize,
                &(fired.len() as u32).to_le_bytes(),
            )
        });
    Ok(if written.is_ok() {
        ERRNO_SUCCESS
    } else {
        ERRNO_FAULT
    })
}

fn parse(raw: &[u8]) -> Subscription {
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default());
    let kind = raw[8];
    let mut wait = Duration::ZERO;
    if kind == EVENT_CLOCK {
        let clock = u32::from_le_bytes(raw[16..20].try_into().unwrap_or_default());
        let timeout = u64_at(24);
        let flags = u16::from_le_bytes(raw[40..42].try_into().unwrap_or_default());
        wait = if flags & FLAG_ABSTIME != 0 && clock == CLOCK_REALTIME {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            Duration::from_nanos(timeout.saturating_sub(now))
        } else {
            Duration::from_nanos(timeout)
        };
    }
    Subscription {
        userdata: u64_at(0),
        kind,
        wait,
    }
}

/// Sleeps for `wait`, or traps as interrupted when the call's deadline
/// passes or the call is cancelled first.
fn sleep(caller: &mut Caller<'_, CallState>, wait: Duration) -> wasmtime::Result<()> {
    let until = std::time::Instant::now() + wait;
    loop {
        if caller.data().should_stop() {
            return Err(Trap::Interrupt.into());
        }
        let now = std::time::Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(SLICE));
    }
}
