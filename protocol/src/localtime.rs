//! Times as people read them: the one rule for every screen and command line of PASOPATI Edge.
//!
//! A person reads local time with its zone (`2026-11-27 09:30 WIB`); a program reads RFC 3339
//! with the offset (`2026-11-27T09:30:00+07:00`). Stored and transmitted times stay UTC
//! milliseconds ([`Timestamp`]); only what is shown is converted, here and nowhere else.
//!
//! Indonesia has three zones without daylight saving: WIB (UTC+7, the default), WITA (UTC+8) and
//! WIT (UTC+9).

use crate::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// One of Indonesia's three time zones.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub enum Zone {
    /// Waktu Indonesia Barat, UTC+7 (Sumatra, Java, West and Central Kalimantan).
    #[default]
    Wib,
    /// Waktu Indonesia Tengah, UTC+8 (Bali, Nusa Tenggara, Sulawesi, East Kalimantan).
    Wita,
    /// Waktu Indonesia Timur, UTC+9 (Maluku, Papua).
    Wit,
}

/// A zone name that is not one of Indonesia's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a time zone of Indonesia; use WIB (UTC+7), WITA (UTC+8) or WIT (UTC+9)")]
pub struct ZoneError(pub String);

/// The Kanwil (provinces) in WITA; every Kanwil of the gazetteer is in one of these lists or
/// in WIB.
pub const WITA_PROVINCES: &[&str] = &[
    "Bali",
    "Nusa Tenggara Barat",
    "Nusa Tenggara Timur",
    "Kalimantan Selatan",
    "Kalimantan Timur",
    "Kalimantan Utara",
    "Sulawesi Utara",
    "Sulawesi Tengah",
    "Sulawesi Selatan",
    "Sulawesi Tenggara",
    "Sulawesi Barat",
    "Gorontalo",
];

/// The Kanwil (provinces) in WIT.
pub const WIT_PROVINCES: &[&str] = &[
    "Maluku",
    "Maluku Utara",
    "Papua",
    "Papua Barat",
    "Papua Barat Daya",
    "Papua Selatan",
    "Papua Tengah",
    "Papua Pegunungan",
];

impl Zone {
    /// The zone of a Kanwil (a province, as the gazetteer `config/upt.csv` spells it); WIB when
    /// the name is none of the WITA or WIT provinces.
    pub fn of_kanwil(kanwil: &str) -> Zone {
        let k = kanwil.trim();
        if WITA_PROVINCES.iter().any(|w| w.eq_ignore_ascii_case(k)) {
            Zone::Wita
        } else if WIT_PROVINCES.iter().any(|w| w.eq_ignore_ascii_case(k)) {
            Zone::Wit
        } else {
            Zone::Wib
        }
    }

    /// Hours ahead of UTC.
    pub const fn offset_hours(self) -> i8 {
        match self {
            Zone::Wib => 7,
            Zone::Wita => 8,
            Zone::Wit => 9,
        }
    }

    /// `WIB`, `WITA` or `WIT`.
    pub const fn abbreviation(self) -> &'static str {
        match self {
            Zone::Wib => "WIB",
            Zone::Wita => "WITA",
            Zone::Wit => "WIT",
        }
    }

    /// The offset as RFC 3339 writes it: `+07:00`, `+08:00`, `+09:00`.
    pub const fn rfc3339_offset(self) -> &'static str {
        match self {
            Zone::Wib => "+07:00",
            Zone::Wita => "+08:00",
            Zone::Wit => "+09:00",
        }
    }

    /// Reads `WIB`, `WITA`, `WIT` (any case), an offset (`+07:00`, `+0800`, `UTC+9`) or an IANA
    /// name of Indonesia (`Asia/Jakarta`, `Asia/Pontianak`, `Asia/Makassar`, `Asia/Jayapura`).
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        let t = text.trim().to_ascii_uppercase();
        let t = t.strip_prefix("UTC").unwrap_or(&t);
        match t {
            "WIB" | "+07:00" | "+0700" | "+07" | "+7" | "ASIA/JAKARTA" | "ASIA/PONTIANAK" => {
                Ok(Zone::Wib)
            }
            "WITA" | "+08:00" | "+0800" | "+08" | "+8" | "ASIA/MAKASSAR" => Ok(Zone::Wita),
            "WIT" | "+09:00" | "+0900" | "+09" | "+9" | "ASIA/JAYAPURA" => Ok(Zone::Wit),
            _ => Err(ZoneError(text.to_owned())),
        }
    }

    fn offset(self) -> UtcOffset {
        // Whole hours from 7 to 9 are always a valid offset; UTC is the unreachable fallback.
        UtcOffset::from_hms(self.offset_hours(), 0, 0).unwrap_or(UtcOffset::UTC)
    }

    fn local(self, t: Timestamp) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
            .ok()
            .map(|d| d.to_offset(self.offset()))
    }
}

impl std::str::FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Zone, ZoneError> {
        Zone::parse(s)
    }
}

crate::text_conversions!(Zone);

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.abbreviation())
    }
}

/// For people: `2026-11-27 09:30 WIB` (minutes; the zone always named).
pub fn format_local(t: Timestamp, zone: Zone) -> String {
    match zone.local(t) {
        Some(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} {}",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            zone.abbreviation()
        ),
        None => t.to_rfc3339(),
    }
}

/// [`format_local`] of a time stored as RFC 3339 text (as admin views carry them); a text that
/// is not one is returned as it is.
pub fn format_local_text(rfc3339: &str, zone: Zone) -> String {
    Timestamp::parse_rfc3339(rfc3339).map_or_else(|_| rfc3339.to_owned(), |t| format_local(t, zone))
}

/// For programs (JSON): RFC 3339 with the zone's offset, `2026-11-27T09:30:00+07:00`
/// (fractional seconds only when there are any).
pub fn to_rfc3339_local(t: Timestamp, zone: Zone) -> String {
    zone.local(t)
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_rfc3339())
}

/// Reads a time a person typed in the zone: `2026-11-27T09:30` (an HTML `datetime-local`
/// field), `2026-11-27 09:30`, with or without seconds, or a full RFC 3339 time with its own
/// offset (which then wins). `None` when it is none of these.
pub fn parse_local(text: &str, zone: Zone) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Some(t);
    }
    let mut local = text.replacen(' ', "T", 1);
    if local.len() == 16 {
        local.push_str(":00");
    }
    Timestamp::parse_rfc3339(&format!("{local}{}", zone.rfc3339_offset())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn people_read_local_time_with_the_zone_named() {
        let t = utc("2026-11-27T02:30:00Z");
        assert_eq!(format_local(t, Zone::Wib), "2026-11-27 09:30 WIB");
        assert_eq!(format_local(t, Zone::Wita), "2026-11-27 10:30 WITA");
        assert_eq!(format_local(t, Zone::Wit), "2026-11-27 11:30 WIT");
        // Past midnight local time the date moves too.
        let late = utc("2026-11-27T18:15:00Z");
        assert_eq!(format_local(late, Zone::Wib), "2026-11-28 01:15 WIB");
    }

    #[test]
    fn programs_read_rfc3339_with_the_offset() {
        let t = utc("2026-11-27T02:30:00Z");
        assert_eq!(to_rfc3339_local(t, Zone::Wib), "2026-11-27T09:30:00+07:00");
        assert_eq!(to_rfc3339_local(t, Zone::Wit), "2026-11-27T11:30:00+09:00");
        assert_eq!(
            Timestamp::parse_rfc3339(&to_rfc3339_local(t, Zone::Wita)).unwrap(),
            t,
            "the JSON form reads back as the same instant"
        );
    }

    #[test]
    fn typed_local_times_take_the_zone() {
        let expected = utc("2026-11-27T02:30:00Z");
        assert_eq!(parse_local("2026-11-27T09:30", Zone::Wib), Some(expected));
        assert_eq!(
            parse_local("2026-11-27 09:30:00", Zone::Wib),
            Some(expected)
        );
        assert_eq!(parse_local("2026-11-27T10:30", Zone::Wita), Some(expected));
        assert_eq!(
            parse_local("2026-11-27T02:30:00Z", Zone::Wit),
            Some(expected),
            "an explicit offset wins"
        );
        assert_eq!(parse_local("kemarin", Zone::Wib), None);
    }

    #[test]
    fn zones_are_read_by_name_offset_or_iana_name() {
        assert_eq!(Zone::parse("wib"), Ok(Zone::Wib));
        assert_eq!(Zone::parse("WITA"), Ok(Zone::Wita));
        assert_eq!(Zone::parse("+09:00"), Ok(Zone::Wit));
        assert_eq!(Zone::parse("UTC+8"), Ok(Zone::Wita));
        assert_eq!(Zone::parse("Asia/Jayapura"), Ok(Zone::Wit));
        assert!(Zone::parse("CET").unwrap_err().to_string().contains("WITA"));
        assert_eq!(Zone::default(), Zone::Wib);
        let json = serde_json::to_string(&Zone::Wita).unwrap();
        assert_eq!(json, "\"WITA\"");
        assert_eq!(serde_json::from_str::<Zone>(&json).unwrap(), Zone::Wita);
    }
}
