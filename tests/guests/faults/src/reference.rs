//! The CPU kernels of the `faults` module as plain Rust, with no
//! dependencies, so that a native benchmark can compile this very file and
//! compare its speed and results with the wasm module's.

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;

/// `n` steps of Marsaglia's xorshift64 (13, 7, 17), each mixed into a
/// rotating checksum together with its step number.
pub fn int_loop(n: u64) -> u64 {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut sum: u64 = 0;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum = (sum ^ x ^ i).rotate_left(7).wrapping_add(x);
    }
    sum
}

/// Fills a 1 MiB buffer from a SplitMix64 stream `megabytes` times and
/// hashes all of it, 8 bytes at a time, with a multiply-xorshift step.
pub fn hash_bytes(megabytes: u64) -> u64 {
    let mut buffer = vec![0u8; MIB as usize];
    let mut state: u64 = 0;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..megabytes {
        for word in buffer.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        for word in buffer.chunks_exact(8) {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            hash = (hash ^ w).wrapping_mul(0x0000_0100_0000_01b3);
            hash ^= hash >> 32;
        }
    }
    hash
}
