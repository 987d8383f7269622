//! Wall-clock instants as they travel and are stored: milliseconds since the Unix epoch, UTC.
//!
//! Wall clocks only ever label reports for people. Ordering and identity never depend on them:
//! that is what `(epoch, seq)` is for.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// A timestamp that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not an RFC 3339 date and time (for example 2026-11-27T09:30:00+07:00)")]
pub struct TimestampError {
    input: String,
}

impl Timestamp {
    /// The current wall-clock time (shifted only when a test injects a clock offset, see
    /// [`crate::faults`]).
    pub fn now() -> Timestamp {
        let now = OffsetDateTime::now_utc();
        Timestamp(
            (now.unix_timestamp_nanos() / 1_000_000) as i64 + crate::faults::clock_offset_ms(),
        )
    }

    /// Parses an RFC 3339 date-time with any offset (`Z`, `+07:00`, ...).
    pub fn parse_rfc3339(input: &str) -> Result<Timestamp, TimestampError> {
        let parsed = OffsetDateTime::parse(input.trim(), &Rfc3339).map_err(|_| TimestampError {
            input: input.to_owned(),
        })?;
        Ok(Timestamp(
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64,
        ))
    }

    /// Formats as RFC 3339 in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t
                .format(&Rfc3339)
                .unwrap_or_else(|_| format!("@{}ms", self.0)),
            Err(_) => format!("@{}ms", self.0),
        }
    }

    /// Milliseconds from `earlier` to `self`, saturating.
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_formats_utc() {
        let wib = Timestamp::parse_rfc3339("2026-11-27T09:30:00+07:00").unwrap();
        let utc = Timestamp::parse_rfc3339("2026-11-27T02:30:00Z").unwrap();
        assert_eq!(wib, utc);
        assert_eq!(utc.to_rfc3339(), "2026-11-27T02:30:00Z");
        assert!(Timestamp::parse_rfc3339("27/11/2026").is_err());
    }
}
