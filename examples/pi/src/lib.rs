//! # pi: a Monte Carlo estimate of π, mapped and reduced
//!
//! Each `sample` call throws `samples` random points into the unit square and
//! counts the hits inside the quarter circle; the calls run in parallel, each
//! with its own seed. `estimate` gets the list of all their results and turns
//! the total into π ≈ 4 · hits / samples, with the standard error of that
//! estimate.
//!
//! ```sh
//! wisp submit examples/pi --function sample \
//!     --map-json '[[1, 10000000], [2, 10000000], [3, 10000000], [4, 10000000]]' \
//!     --reduce estimate
//! ```
//!
//! The same seed always gives the same points. The random numbers come from
//! SplitMix64; each 64-bit draw is split into two 32-bit coordinates, and a
//! point is inside when x² + y² < 2⁶⁴, which integer arithmetic decides
//! exactly.

use serde::{Deserialize, Serialize};

/// What one `sample` call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The seed the call used.
    pub seed: u64,
    /// Points thrown.
    pub samples: u64,
    /// Points inside the quarter circle.
    pub hits: u64,
}

/// The combined estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The estimate of π.
    pub pi: f64,
    /// Its distance from the true value, `pi - π`.
    pub error: f64,
    /// Standard error of the estimate: the spread expected from chance alone.
    pub std_error: f64,
    /// Points thrown in all calls.
    pub samples: u64,
    /// Points inside, in all calls.
    pub hits: u64,
    /// How many `sample` calls were combined.
    pub calls: u64,
}

/// Throws `samples` points from the stream of `seed` and counts the hits.
#[wisp_guest::function]
fn sample(seed: u64, samples: u64) -> Part {
    Part {
        seed,
        samples,
        hits: count_hits(seed, samples),
    }
}

/// Combines the results of any number of `sample` calls.
#[wisp_guest::function]
fn estimate(parts: Vec<Part>) -> Result<Estimate, String> {
    let samples = parts.iter().map(|p| p.samples).sum::<u64>();
    let hits = parts.iter().map(|p| p.hits).sum::<u64>();
    if samples == 0 {
        return Err("no samples to estimate from".to_string());
    }
    if hits > samples {
        return Err(format!("{hits} hits in only {samples} samples"));
    }
    let p = hits as f64 / samples as f64;
    let pi = 4.0 * p;
    Ok(Estimate {
        pi,
        error: pi - std::f64::consts::PI,
        std_error: 4.0 * (p * (1.0 - p) / samples as f64).sqrt(),
        samples,
        hits,
        calls: parts.len() as u64,
    })
}

/// Counts how many of `samples` points of the stream of `seed` fall inside
/// the quarter circle.
pub fn count_hits(seed: u64, samples: u64) -> u64 {
    let mut rng = SplitMix64(seed);
    let mut hits = 0;
    for _ in 0..samples {
        let r = rng.next_u64();
        let (x, y) = (r >> 32, r & 0xffff_ffff);
        // x² and y² each fit in 64 bits; their sum overflows exactly when
        // the point lies on or outside the circle of radius 2³².
        let (_, outside) = (x * x).overflowing_add(y * y);
        hits += u64::from(!outside);
    }
    hits
}

/// Steele, Lea and Flood's SplitMix64 generator: a Weyl sequence through a
/// strong output mix. Fast, and good enough for Monte Carlo work.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_its_reference_output() {
        // The first outputs for seed 0 of the published SplitMix64.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn a_seed_always_gives_the_same_hits() {
        assert_eq!(sample(7, 10_000), sample(7, 10_000));
        assert_ne!(count_hits(7, 10_000), count_hits(8, 10_000));
        assert_eq!(
            sample(7, 0),
            Part {
                seed: 7,
                samples: 0,
                hits: 0
            }
        );
    }

    #[test]
    fn the_estimate_is_close_to_pi() {
        let parts: Vec<Part> = (1..=4).map(|seed| sample(seed, 250_000)).collect();
        let e = estimate(parts).unwrap();
        assert_eq!((e.samples, e.calls), (1_000_000, 4));
        // The standard error at a million samples is about 0.0016.
        assert!((0.0015..0.0018).contains(&e.std_error), "{e:?}");
        assert!(e.error.abs() < 5.0 * e.std_error, "{e:?}");
        assert_eq!(e.error, e.pi - std::f64::consts::PI);
    }

    #[test]
    fn estimating_from_nothing_is_an_error() {
        assert!(estimate(Vec::new()).is_err());
        assert!(
            estimate(vec![Part {
                seed: 1,
                samples: 0,
                hits: 0
            }])
            .is_err()
        );
        assert!(
            estimate(vec![Part {
                seed: 1,
                samples: 1,
                hits: 2
            }])
            .is_err()
        );
    }
}
