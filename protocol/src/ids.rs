//! Identities: which site, which agent database (`Epoch`), which position in its log (`Seq`),
//! and which report (`ReportId`).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A registered site (one UPT). Lower-case ASCII letters, digits, `-` and `_`, 1 to 64 long,
/// starting with a letter or digit, so it is safe in certificate names, file names and URLs.
///
/// On the collector a `SiteId` is only ever taken from a verified client certificate, never from
/// anything an agent sends.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct SiteId(String);

/// Why a string is not a site id.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid site id: use 1 to 64 lower-case letters, digits, `-` or `_`, starting with a letter or digit (for example `lapas-cipinang`)")]
pub struct SiteIdError(String);

impl SiteId {
    /// Validates and wraps a site id.
    pub fn new(id: impl Into<String>) -> Result<SiteId, SiteIdError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && id
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(SiteId(id))
        } else {
            Err(SiteIdError(id))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SiteId {
    type Err = SiteIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SiteId::new(s)
    }
}

impl TryFrom<String> for SiteId {
    type Error = SiteIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SiteId::new(s)
    }
}

impl From<SiteId> for String {
    fn from(id: SiteId) -> String {
        id.0
    }
}

/// The kind of UPT a site is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum SiteType {
    Lapas,
    Rutan,
    Lpka,
    Bapas,
    Rupbasan,
}

impl SiteType {
    /// All types, in the order the CLI lists them.
    pub const ALL: [SiteType; 5] = [
        SiteType::Lapas,
        SiteType::Rutan,
        SiteType::Lpka,
        SiteType::Bapas,
        SiteType::Rupbasan,
    ];

    /// The lower-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteType::Lapas => "lapas",
            SiteType::Rutan => "rutan",
            SiteType::Lpka => "lpka",
            SiteType::Bapas => "bapas",
            SiteType::Rupbasan => "rupbasan",
        }
    }
}

impl fmt::Display for SiteType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a site type.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a site type: use one of lapas, rutan, lpka, bapas, rupbasan")]
pub struct SiteTypeError(String);

impl FromStr for SiteType {
    type Err = SiteTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SiteType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SiteTypeError(s.to_owned()))
    }
}

/// One agent database's lifetime. Chosen at random when an agent creates its outbox, so a
/// wiped and re-enrolled agent can never be mistaken for its former self.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// A fresh random epoch; never zero.
    pub fn random() -> Epoch {
        Epoch(crate::random_u64().max(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A position in one epoch's log. Dense and monotonic: the first report sent in an epoch is 1,
/// and 0 means "nothing yet".
pub type Seq = u64;

/// The stable id of a report: 48 bits of filing time in milliseconds followed by 80 random bits,
/// so ids sort roughly by filing time and never collide in practice. Written as 32 hex digits.
/// The time first matters to the collector: its id-keyed indexes then grow at their end, where
/// a random id would dirty a page of each per report wherever it falls (in redb, 23 µs an entry
/// at a million entries against 2.4 µs in order; TESTING.md).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ReportId(pub [u8; 16]);

/// Why a string is not a report id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a report id (32 hexadecimal digits)")]
pub struct ReportIdError(String);

impl ReportId {
    /// A fresh id for a report filed at `filed_at`.
    pub fn generate(filed_at: crate::Timestamp) -> ReportId {
        let mut id = crate::random_bytes::<16>();
        let millis = (filed_at.0.max(0) as u64).to_be_bytes();
        id[..6].copy_from_slice(&millis[2..]);
        ReportId(id)
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex(&self.0))
    }
}

impl FromStr for ReportId {
    type Err = ReportIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = crate::unhex(s.trim()).ok_or_else(|| ReportIdError(s.to_owned()))?;
        let array: [u8; 16] = bytes.try_into().map_err(|_| ReportIdError(s.to_owned()))?;
        Ok(ReportId(array))
    }
}

crate::text_conversions!(ReportId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids_are_validated() {
        assert!(SiteId::new("lapas-cipinang").is_ok());
        assert!(SiteId::new("rutan_01").is_ok());
        for bad in ["", "Lapas", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(SiteId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn report_ids_round_trip_and_sort_by_time() {
        let a = ReportId::generate(crate::Timestamp(1_000));
        let b = ReportId::generate(crate::Timestamp(2_000));
        assert!(a < b);
        assert_eq!(a.to_string().parse::<ReportId>().unwrap(), a);
        assert!("xyz".parse::<ReportId>().is_err());
    }

    #[test]
    fn site_types_parse() {
        assert_eq!("LPKA".parse::<SiteType>().unwrap(), SiteType::Lpka);
        assert!("kanwil".parse::<SiteType>().is_err());
    }
}
