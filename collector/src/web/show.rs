//! How the dashboard shows things to people: one rule for time (local time with its zone),
//! category labels instead of ids, site and unit names instead of slugs, and the Kanwil list.
//!
//! Time: every time a person reads is shown as `2026-11-02 08:15 WIB`, in the zone of the site
//! it belongs to (WIB, WITA or WIT, from the site's Kanwil, which is a province) and in WIB
//! when it belongs to no site (media, the center's own clock). The JSON API carries the same
//! instants as RFC 3339 with that zone's offset (`2026-11-02T08:15:00+07:00`).

use pasopati_analysis::gazetteer::Gazetteer;
use pasopati_common::{localtime, Timestamp};
use std::collections::HashMap;

pub use pasopati_common::localtime::Zone;

/// The one way a page shows a time: `2026-11-02 08:15 WIB`.
pub fn local(ms: i64, zone: Zone) -> String {
    localtime::format_local(Timestamp(ms), zone)
}

/// [`local`] of an RFC 3339 text (as the admin views carry times); a text that is not one is
/// shown as it is.
pub fn local_text(rfc3339: &str, zone: Zone) -> String {
    localtime::format_local_text(rfc3339, zone)
}

/// RFC 3339 with the zone's offset, for JSON: `2026-11-02T08:15:00+07:00`.
pub fn rfc3339(ms: i64, zone: Zone) -> String {
    localtime::to_rfc3339_local(Timestamp(ms), zone)
}

/// [`rfc3339`] of an RFC 3339 text in any offset; other text is left as it is.
pub fn rfc3339_text(text: &str, zone: Zone) -> String {
    Timestamp::parse_rfc3339(text).map_or_else(|_| text.to_owned(), |t| rfc3339(t.0, zone))
}

/// A duration in Indonesian words, in the largest unit that divides it: `3 hari`, `36 jam`,
/// `90 menit`, `45 detik`.
pub fn duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    for (unit, per) in [("hari", 86_400), ("jam", 3_600), ("menit", 60)] {
        if secs >= per && secs.is_multiple_of(per) {
            return format!("{} {unit}", secs / per);
        }
    }
    if d.subsec_millis() == 0 {
        format!("{secs} detik")
    } else {
        format!("{} milidetik", d.as_millis())
    }
}

/// The label of a report category (`Kejadian Menonjol` for `kejadian_menonjol`); an unknown id
/// is shown as it is.
pub fn category(id: &str) -> String {
    pasopati_common::taxonomy::Taxonomy::builtin()
        .get(id)
        .map_or_else(|| id.to_owned(), |c| c.label.clone())
}

/// The 38 Kanwil of the gazetteer, sorted: the only choices wherever a Kanwil is entered or
/// filtered (`admin::canonical_kanwil` checks a typed one against the same list).
pub fn kanwil_list() -> Vec<String> {
    Gazetteer::builtin().kanwil_names()
}

/// Names of the sites the collector knows (from its store) and of the units in the gazetteer,
/// with each site's zone.
pub struct Names {
    sites: HashMap<String, (String, String)>,
}

impl Names {
    /// The names of the store's sites; a store that cannot be read leaves only the gazetteer.
    pub fn of(store: &crate::store::Store) -> Names {
        Names::of_sites(&store.sites().unwrap_or_default())
    }

    /// The names of these sites, and the gazetteer's.
    pub fn of_sites(sites: &[crate::store::SiteRecord]) -> Names {
        Names {
            sites: sites
                .iter()
                .map(|s| (s.id.to_string(), (s.name.clone(), s.kanwil.clone())))
                .collect(),
        }
    }

    /// The name of a site or unit: the store's name of the site, else the gazetteer's name of
    /// the unit, else the id itself.
    pub fn unit(&self, id: &str) -> String {
        if let Some((name, _)) = self.sites.get(id) {
            return name.clone();
        }
        Gazetteer::builtin()
            .get(id)
            .map_or_else(|| id.to_owned(), |u| u.name.clone())
    }

    /// The names of several units, joined with commas.
    pub fn units(&self, ids: &[String]) -> String {
        ids.iter()
            .map(|u| self.unit(u))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The Kanwil of a site or unit, if known.
    pub fn kanwil(&self, id: &str) -> Option<String> {
        self.sites
            .get(id)
            .map(|(_, k)| k.clone())
            .or_else(|| Gazetteer::builtin().get(id).map(|u| u.kanwil.clone()))
    }

    /// The zone a site's times are shown in.
    pub fn zone(&self, id: &str) -> Zone {
        self.kanwil(id).map_or(Zone::Wib, |k| Zone::of_kanwil(&k))
    }

    /// A time of a site, in the site's zone.
    pub fn time(&self, site: &str, ms: i64) -> String {
        local(ms, self.zone(site))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_are_said_in_the_largest_whole_unit() {
        use std::time::Duration;
        for (d, text) in [
            (Duration::from_secs(3 * 86_400), "3 hari"),
            (Duration::from_secs(36 * 3_600), "36 jam"),
            (Duration::from_secs(90 * 60), "90 menit"),
            (Duration::from_secs(45), "45 detik"),
            (Duration::from_millis(1_500), "1500 milidetik"),
        ] {
            assert_eq!(super::duration(d), text);
        }
    }

    use super::*;

    #[test]
    fn times_are_local_with_their_zone() {
        let t = Timestamp::parse_rfc3339("2026-11-02T01:15:30Z").unwrap().0;
        assert_eq!(local(t, Zone::Wib), "2026-11-02 08:15 WIB");
        assert_eq!(local(t, Zone::Wita), "2026-11-02 09:15 WITA");
        assert_eq!(local(t, Zone::Wit), "2026-11-02 10:15 WIT");
        assert_eq!(rfc3339(t, Zone::Wib), "2026-11-02T08:15:30+07:00");
        assert_eq!(rfc3339(t + 250, Zone::Wit), "2026-11-02T10:15:30.25+09:00");
        let late = Timestamp::parse_rfc3339("2026-11-02T20:00:00Z").unwrap().0;
        assert_eq!(local(late, Zone::Wib), "2026-11-03 03:00 WIB");
        assert_eq!(
            Timestamp::parse_rfc3339(&rfc3339(late, Zone::Wita))
                .unwrap()
                .0,
            late
        );
    }

    #[test]
    fn every_kanwil_of_the_gazetteer_has_a_zone_and_the_names_of_the_lists_exist() {
        let all = kanwil_list();
        assert_eq!(all.len(), 38);
        for k in localtime::WITA_PROVINCES
            .iter()
            .chain(localtime::WIT_PROVINCES)
        {
            assert!(all.iter().any(|a| a == k), "{k} is not a Kanwil");
        }
        assert_eq!(Zone::of_kanwil("Sulawesi Selatan"), Zone::Wita);
        assert_eq!(Zone::of_kanwil("Papua Barat Daya"), Zone::Wit);
        assert_eq!(Zone::of_kanwil("Kalimantan Barat"), Zone::Wib);
        assert_eq!(category("kejadian_menonjol"), "Kejadian Menonjol");
    }
}
