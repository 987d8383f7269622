//! Which part of the country a signed-in user sees: the whole of it for the national roles,
//! one Kanwil's sites and units for `kanwil_admin` and `kanwil_analyst`, one site for
//! `upt_operator`.
//!
//! A [`Reach`] is worked out from the user's record and the site table on every request (a
//! site can move to another Kanwil, a user can change role), and every read a scoped route
//! makes goes through it: the report searches take its sites into the index's own query
//! (`report_index`, tantivy or PostgreSQL), single records are looked up and then refused when
//! they fall outside, and the analysis' lists (stories, media, alerts, events) are filtered
//! by their units. A route whose data cannot be scoped this way is refused to regional users
//! at the gate ([`super::Access`]), so nothing reaches them by default.

use crate::store::{Role, Scope, SiteRecord, Store, StoreError};
use pasopati_analysis::gazetteer::Gazetteer;
use serde_json::Value;
use std::collections::BTreeSet;

/// The part of the country a user sees, resolved to sites and units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    scope: Scope,
    /// The site ids in scope; `None` for the whole country.
    sites: Option<BTreeSet<String>>,
    /// The units in scope: the sites' ids and, for a Kanwil, the gazetteer's units there (a
    /// story or media item names units by these ids).
    units: BTreeSet<String>,
}

impl Reach {
    /// The whole country.
    pub fn national() -> Reach {
        Reach {
            scope: Scope::National,
            sites: None,
            units: BTreeSet::new(),
        }
    }

    /// What `role` sees today, from the site table and the gazetteer.
    pub fn of(store: &Store, role: &Role) -> Result<Reach, StoreError> {
        match role.scope() {
            Scope::National => Ok(Reach::national()),
            scope => Ok(Reach::of_scope(&store.sites()?, scope)),
        }
    }

    /// What `scope` takes in, given the site table (a user's scope, or a notification
    /// channel's).
    pub fn of_scope(all_sites: &[SiteRecord], scope: Scope) -> Reach {
        let (sites, units) = match &scope {
            Scope::National => return Reach::national(),
            Scope::Kanwil(kanwil) => {
                let sites: BTreeSet<String> = all_sites
                    .iter()
                    .filter(|s| &s.kanwil == kanwil)
                    .map(|s| s.id.to_string())
                    .collect();
                let mut units = sites.clone();
                units.extend(
                    Gazetteer::builtin()
                        .upts()
                        .iter()
                        .filter(|u| &u.kanwil == kanwil)
                        .map(|u| u.id.clone()),
                );
                (sites, units)
            }
            Scope::Site(site) => (
                BTreeSet::from([site.clone()]),
                BTreeSet::from([site.clone()]),
            ),
        };
        Reach {
            scope,
            sites: Some(sites),
            units,
        }
    }

    /// Whether this is the whole country.
    pub fn is_national(&self) -> bool {
        self.scope == Scope::National
    }

    /// The scope, as the role gives it.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether site `id` is in scope.
    pub fn site(&self, id: &str) -> bool {
        self.sites.as_ref().is_none_or(|s| s.contains(id))
    }

    /// The sites a search may return: those `asked` (all when `None`) that are in scope.
    pub fn narrow(&self, asked: Option<BTreeSet<String>>) -> Option<BTreeSet<String>> {
        match (&self.sites, asked) {
            (None, asked) => asked,
            (Some(mine), None) => Some(mine.clone()),
            (Some(mine), Some(asked)) => Some(mine.intersection(&asked).cloned().collect()),
        }
    }

    /// Whether a story or media item tagged with these units and Kanwil is in scope: it names
    /// a unit in scope, or (for a Kanwil user) names the Kanwil itself.
    pub fn tagged(&self, upt: &[String], kanwil: &[String]) -> bool {
        match &self.scope {
            Scope::National => true,
            Scope::Kanwil(k) => upt.iter().any(|u| self.units.contains(u)) || kanwil.contains(k),
            Scope::Site(_) => upt.iter().any(|u| self.units.contains(u)),
        }
    }

    /// Keeps of a story's or media item's unit and Kanwil tags those in scope: an item about
    /// units of two Kanwil shows each Kanwil its own.
    pub fn own_tags(&self, upt: &mut Vec<String>, kanwil: &mut Vec<String>) {
        if self.is_national() {
            return;
        }
        upt.retain(|u| self.tagged(std::slice::from_ref(u), &[]));
        kanwil.retain(|k| self.tagged(&[], std::slice::from_ref(k)));
    }

    /// Whether a spike alert (as the analysis gives it, JSON) is in scope: the national ones
    /// (a topic, everything) are not; a unit's are when the unit is.
    pub fn alert(&self, alert: &Value) -> bool {
        if self.is_national() {
            return true;
        }
        alert
            .get("series")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("upt:"))
            .is_some_and(|unit| self.units.contains(unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kanwil(sites: &[&str], units: &[&str]) -> Reach {
        Reach {
            scope: Scope::Kanwil("Jawa Tengah".into()),
            sites: Some(sites.iter().map(|s| s.to_string()).collect()),
            units: units.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_search_never_widens_past_the_scope() {
        let reach = kanwil(&["a", "b"], &["a", "b"]);
        assert_eq!(
            reach.narrow(None),
            Some(BTreeSet::from(["a".into(), "b".into()]))
        );
        // Asking for a site elsewhere gives nothing, not everything.
        assert_eq!(
            reach.narrow(Some(BTreeSet::from(["z".into()]))),
            Some(BTreeSet::new())
        );
        assert_eq!(
            reach.narrow(Some(BTreeSet::from(["b".into(), "z".into()]))),
            Some(BTreeSet::from(["b".into()]))
        );
        assert_eq!(Reach::national().narrow(None), None);
    }

    #[test]
    fn stories_media_and_alerts_are_judged_by_their_units() {
        let reach = kanwil(&["a"], &["a", "lapas-x"]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(reach.tagged(&s(&["lapas-x"]), &[]));
        assert!(reach.tagged(&[], &s(&["Jawa Tengah"])));
        assert!(!reach.tagged(&s(&["lapas-y"]), &s(&["Jawa Barat"])));
        assert!(!reach.tagged(&[], &[]));
        assert!(reach.alert(&json!({"series": "upt:lapas-x"})));
        assert!(!reach.alert(&json!({"series": "upt:lapas-y"})));
        assert!(!reach.alert(&json!({"series": "topic:kabur"})));
        assert!(!reach.alert(&json!({"series": "all"})));
        assert!(Reach::national().alert(&json!({"series": "all"})));
        let operator = Reach {
            scope: Scope::Site("a".into()),
            sites: Some(BTreeSet::from(["a".into()])),
            units: BTreeSet::from(["a".into()]),
        };
        // A site's operator does not see the Kanwil's other news.
        assert!(!operator.tagged(&[], &s(&["Jawa Tengah"])));
        assert!(operator.tagged(&s(&["a"]), &[]));
    }
}
