//! Durations as people write them in configuration and on the command line: `90d`, `72h`,
//! `30m`, `45s`, `500ms`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written with a unit.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(pub Duration);

/// A duration that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a duration: write a whole number and a unit, for example 90d, 72h, 30m, 45s or 500ms")]
pub struct DurationError(String);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    /// Milliseconds, saturating.
    pub fn as_millis_i64(self) -> i64 {
        self.0.as_millis().min(i64::MAX as u128) as i64
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| DurationError(s.to_owned()))?;
        let (number, unit) = text.split_at(split);
        let n: u64 = number.parse().map_err(|_| DurationError(s.to_owned()))?;
        let millis_per = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(DurationError(s.to_owned())),
        };
        let millis = n
            .checked_mul(millis_per)
            .ok_or_else(|| DurationError(s.to_owned()))?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

crate::text_conversions!(HumanDuration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, per) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= per && ms.is_multiple_of(per) {
                return write!(f, "{}{unit}", ms / per);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units() {
        for (text, secs) in [
            ("90d", 90 * 86_400),
            ("25h", 25 * 3_600),
            ("30m", 1_800),
            ("45s", 45),
        ] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_secs(secs));
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(
            "1500ms".parse::<HumanDuration>().unwrap().to_string(),
            "1500ms"
        );
        for bad in ["", "d", "10", "10 weeks", "-1s", "99999999999999999999d"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad:?} accepted");
        }
    }
}
