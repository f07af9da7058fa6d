//! Token buckets in integer micro-tokens.
//!
//! One frame costs one token (`SCALE` micro-tokens). The bucket refills at
//! `per_second` tokens per second, computed from elapsed microseconds with
//! saturating integer arithmetic, and never holds more than `burst` tokens.
//! Time that goes backwards (a bad clock) refills nothing.

use crate::policy::Rate;

const SCALE: u64 = 1_000_000;

/// A token bucket's running state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    tokens: u64,
    cap: u64,
    per_second: u64,
    last_us: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate, now_us: u64) -> Bucket {
        let cap = u64::from(rate.burst.max(1)).saturating_mul(SCALE);
        Bucket {
            tokens: cap,
            cap,
            per_second: u64::from(rate.per_second),
            last_us: now_us,
        }
    }

    fn refill(&mut self, now_us: u64) {
        if now_us > self.last_us {
            let dt = now_us - self.last_us;
            // per_second tokens/s = per_second micro-tokens/us.
            let add = dt.saturating_mul(self.per_second);
            self.tokens = self.tokens.saturating_add(add).min(self.cap);
            self.last_us = now_us;
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now_us: u64) -> bool {
        self.refill(now_us);
        if self.tokens >= SCALE {
            self.tokens -= SCALE;
            true
        } else {
            false
        }
    }

    /// Whole tokens available now (without taking any).
    pub fn available(&mut self, now_us: u64) -> u64 {
        self.refill(now_us);
        self.tokens / SCALE
    }

    /// The burst, in tokens.
    pub fn burst(&self) -> u64 {
        self.cap / SCALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_rate() {
        let mut b = Bucket::new(
            Rate {
                per_second: 10,
                burst: 3,
            },
            0,
        );
        assert!(b.take(0) && b.take(0) && b.take(0));
        assert!(!b.take(0));
        assert!(!b.take(99_999));
        assert!(b.take(100_000));
        // Long idle refills to the burst, not beyond.
        assert_eq!(b.available(100_000_000), 3);
        // Time going backwards adds nothing.
        let mut c = Bucket::new(
            Rate {
                per_second: 10,
                burst: 1,
            },
            1_000,
        );
        assert!(c.take(1_000));
        assert!(!c.take(0));
    }

    proptest! {
        /// Never more than `burst` tokens, and over any run at most
        /// burst + rate * elapsed frames pass.
        #[test]
        fn never_exceeds_burst(per_second in 0u32..100_000, burst in 1u32..1000,
                               steps in proptest::collection::vec((0u64..50_000, 0u8..4), 1..300)) {
            let mut b = Bucket::new(Rate { per_second, burst }, 0);
            let mut now = 0u64;
            let mut passed = 0u64;
            for (dt, tries) in steps {
                now += dt;
                prop_assert!(b.available(now) <= u64::from(burst));
                for _ in 0..tries {
                    if b.take(now) { passed += 1; }
                }
            }
            let bound = u64::from(burst) + (u64::from(per_second) * now) / 1_000_000;
            prop_assert!(passed <= bound, "passed {} > bound {}", passed, bound);
        }
    }
}
