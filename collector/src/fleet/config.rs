//! The settings the center wants sites to run: layers for the whole fleet, a Kanwil and one
//! site (a narrower layer wins key by key), merged into each site's [`RemoteConfig`]. Every
//! change takes the next configuration version, so a site's version rises whenever a layer
//! covering it changes, and `site list` can tell a site still on an older one.

use super::{from_json, kind, next_counter, scope_covers, to_json, FleetError};
use crate::store::fleet::{FleetAudit, FleetWrite};
use crate::store::{SiteRecord, Store, StoreError};
use pasopati_common::fleet::{RemoteConfig, Setting};
use pasopati_common::{SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which sites a layer covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    All,
    Kanwil(String),
    Site(SiteId),
}

impl Scope {
    /// The layer's key among the fleet records.
    pub fn key(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Kanwil(name) => format!("kanwil:{name}"),
            Scope::Site(id) => format!("site:{id}"),
        }
    }

    /// How narrow the layer is: a narrower one wins.
    fn rank(key: &str) -> u8 {
        match key.split_once(':') {
            None => 0,
            Some(("kanwil", _)) => 1,
            _ => 2,
        }
    }
}

/// One layer: its settings (key → value as `Setting::parse` reads it) and the version of its
/// last change (who made it, and when, is in the audit log).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigLayer {
    pub settings: BTreeMap<String, String>,
    pub version: u64,
}

/// Sets `settings` on the layer of `scope` (other keys of the layer stay), audited, and returns
/// the new configuration version. A Kanwil or site the store does not know is refused.
pub fn set(
    store: &Store,
    scope: &Scope,
    settings: &[Setting],
    actor: &str,
    now: Timestamp,
) -> Result<u64, FleetError> {
    if settings.is_empty() {
        return Err(FleetError::Refused(
            "nothing to set: give KEY=VALUE pairs, such as sync.heartbeat_secs=30".into(),
        ));
    }
    let sites = store.sites()?;
    match scope {
        Scope::All => {}
        Scope::Kanwil(name) => {
            if !sites.iter().any(|s| s.kanwil.eq_ignore_ascii_case(name)) {
                return Err(FleetError::Refused(format!(
                    "no registered site belongs to Kanwil `{name}`; `site list` shows each site's Kanwil"
                )));
            }
        }
        Scope::Site(id) => {
            if !sites.iter().any(|s| &s.id == id) {
                return Err(StoreError::UnknownSite(id.to_string()).into());
            }
        }
    }
    let version = next_counter(store, "config_version")?;
    let shown: Vec<String> = settings
        .iter()
        .map(|s| format!("{}={}", s.key(), s.shown()))
        .collect();
    let audit = FleetAudit {
        actor: actor.to_owned(),
        action: "site_config_set".into(),
        subject: scope.key(),
        details: format!("version {version}: {}", shown.join(", ")),
        at: now,
    };
    store.fleet_update(kind::CONFIG, &scope.key(), Some(audit), |current| {
        let mut layer: ConfigLayer = current.map(from_json).transpose()?.unwrap_or_default();
        for setting in settings {
            layer
                .settings
                .insert(setting.key().to_owned(), setting.value());
        }
        layer.version = version;
        Ok((FleetWrite::Put(to_json(&layer)?), ()))
    })?;
    Ok(version)
}

/// Every layer, by scope key.
pub fn layers(store: &Store) -> Result<Vec<(String, ConfigLayer)>, StoreError> {
    super::list(store, kind::CONFIG)
}

/// The configuration `site` should run: the layers that cover it merged (the fleet's, then its
/// Kanwil's, then its own, each key taken from the narrowest), at the version of the newest.
/// Version 0 (and no settings) when no layer covers it.
pub fn wanted(store: &Store, site: &SiteRecord) -> Result<RemoteConfig, StoreError> {
    Ok(merge(&layers(store)?, site))
}

/// [`wanted`] over layers already read.
pub fn merge(layers: &[(String, ConfigLayer)], site: &SiteRecord) -> RemoteConfig {
    let mut covering: Vec<&(String, ConfigLayer)> = layers
        .iter()
        .filter(|(scope, _)| scope_covers(scope, site))
        .collect();
    covering.sort_by_key(|(scope, _)| Scope::rank(scope));
    let mut merged = BTreeMap::new();
    let mut version = 0;
    for (_, layer) in covering {
        version = version.max(layer.version);
        for (k, v) in &layer.settings {
            merged.insert(k.clone(), v.clone());
        }
    }
    RemoteConfig {
        version,
        settings: merged.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{site as test_site, store};

    fn setting(text: &str) -> Setting {
        let (k, v) = text.split_once('=').unwrap();
        Setting::parse(k, v).unwrap()
    }

    #[test]
    fn a_narrower_layer_wins_key_by_key_and_every_change_raises_the_version() {
        let (_dir, store) = store();
        let site = store.site(&test_site()).unwrap().unwrap();
        assert_eq!(wanted(&store, &site).unwrap(), RemoteConfig::default());

        let now = Timestamp(1_800_000_000_000);
        let v1 = set(
            &store,
            &Scope::All,
            &[
                setting("sync.heartbeat_secs=120"),
                setting("web.enabled=false"),
            ],
            "admin",
            now,
        )
        .unwrap();
        let v2 = set(
            &store,
            &Scope::Kanwil(site.kanwil.to_uppercase()),
            &[setting("sync.heartbeat_secs=30")],
            "admin",
            now,
        )
        .unwrap();
        let v3 = set(
            &store,
            &Scope::Site(site.id.clone()),
            &[setting("pii.deny_list=Nama Rekaan Satu;Nama Rekaan Dua")],
            "admin",
            now,
        )
        .unwrap();
        assert!(v1 < v2 && v2 < v3);
        let config = wanted(&store, &site).unwrap();
        assert_eq!(config.version, v3);
        assert_eq!(
            config.settings,
            vec![
                (
                    "pii.deny_list".into(),
                    "Nama Rekaan Satu;Nama Rekaan Dua".into()
                ),
                ("sync.heartbeat_secs".into(), "30".into()),
                ("web.enabled".into(), "false".into()),
            ]
        );
        assert!(config.check().is_ok());

        // A layer of another Kanwil does not reach the site, nor raise its version.
        let other = Scope::Kanwil("Kanwil Lain".into());
        assert!(set(&store, &other, &[setting("web.enabled=true")], "admin", now).is_err());
        assert_eq!(wanted(&store, &site).unwrap().version, v3);

        // The audit log names the keys, never the deny list's terms.
        let log = store.audit_log().unwrap();
        let details: Vec<&str> = log
            .iter()
            .filter_map(|(_, e)| e.as_ref().ok())
            .filter(|e| e.action == "site_config_set")
            .map(|e| e.details.as_str())
            .collect();
        assert_eq!(details.len(), 3, "{details:?}");
        assert!(
            details[2].contains("pii.deny_list=(2 terms)"),
            "{details:?}"
        );
        assert!(!details.iter().any(|d| d.contains("Rekaan")), "{details:?}");
    }

    #[test]
    fn an_unknown_site_or_an_empty_change_is_refused() {
        let (_dir, store) = store();
        let now = Timestamp(1_800_000_000_000);
        let ghost = Scope::Site(SiteId::new("lapas-hantu").unwrap());
        assert!(set(&store, &ghost, &[setting("web.enabled=true")], "admin", now).is_err());
        assert!(set(&store, &Scope::All, &[], "admin", now).is_err());
        assert!(layers(&store).unwrap().is_empty());
    }
}
