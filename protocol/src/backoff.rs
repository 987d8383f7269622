//! Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
//! Jitter", 2015): the n-th retry waits a uniformly random time in `[0, min(cap, base * 2^n)]`,
//! so 700 sites that lost the collector together do not come back together.

use std::time::Duration;

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

/// The retry state of one connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Backoff {
        Backoff { config, attempt: 0 }
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.config
            .base
            .checked_mul(factor)
            .unwrap_or(self.config.cap)
            .min(self.config.cap)
    }

    /// The next delay, drawn with `random` (any uniformly distributed `u64`).
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self.ceiling().as_millis() as u64;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(random % (ceiling + 1))
    }

    /// Forgets past failures after a successful session.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_jitter_stays_below_it() {
        let mut b = Backoff::new(BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(3),
        });
        let mut ceilings = Vec::new();
        for i in 0..40u64 {
            let ceiling = b.ceiling();
            ceilings.push(ceiling.as_millis());
            let d = b.next_delay(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert!(d <= ceiling);
        }
        assert_eq!(&ceilings[..6], &[100, 200, 400, 800, 1600, 3000]);
        assert!(ceilings.iter().all(|&c| c <= 3000));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn delays_are_spread_not_synchronised() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..100u64 {
            let mut b = Backoff::new(BackoffConfig::default());
            for _ in 0..5 {
                b.next_delay(0);
            }
            seen.insert(b.next_delay(i.wrapping_mul(0x2545_f491_4f6c_dd1d)));
        }
        assert!(seen.len() > 90, "only {} distinct delays", seen.len());
    }
}
