//! Running the fleet from the center (protocol 2, `pasopati_common::fleet`): the settings each
//! site should run (`config`), the releases it may install (`release`) and the staged rollouts
//! that offer them (`rollout`), over what each agent reports it runs ([`SiteRunning`]).
//!
//! Everything lives in the store's fleet records (JSON under a kind and a key, on both
//! backends), so every collector on one PostgreSQL sees the same fleet, and the command line
//! works the same whether the daemon runs or not.

pub mod config;
pub mod release;
pub mod rollout;

use crate::store::fleet::FleetWrite;
use crate::store::{SiteRecord, Store, StoreError};
use pasopati_common::fleet::{AgentStatus, Directives, SettingError, UpdateState};
use pasopati_common::Timestamp;
use serde::{Deserialize, Serialize};

/// The record kinds of the fleet.
pub(crate) mod kind {
    /// A configuration layer, under its scope's key (`all`, `kanwil:NAME`, `site:ID`).
    pub const CONFIG: &str = "config";
    /// What a site's agent last reported it runs, under the site id.
    pub const RUNNING: &str = "running";
    /// A release, under its version.
    pub const RELEASE: &str = "release";
    /// The rollout, under `current`.
    pub const ROLLOUT: &str = "rollout";
    /// Counters, under their names.
    pub const COUNTER: &str = "counter";
}

/// A fleet operation that cannot be done, said so an admin can act on it.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("fleet record: {e}")))
}

/// Reads a fleet record.
pub(crate) fn get<T: for<'de> Deserialize<'de>>(
    store: &Store,
    kind: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    store
        .fleet_get(kind, key)?
        .map(|bytes| from_json(&bytes))
        .transpose()
}

/// Every record of a kind, by key.
pub(crate) fn list<T: for<'de> Deserialize<'de>>(
    store: &Store,
    kind: &str,
) -> Result<Vec<(String, T)>, StoreError> {
    store
        .fleet_list(kind)?
        .into_iter()
        .map(|(k, v)| Ok((k, from_json(&v)?)))
        .collect()
}

/// The next value of counter `name` (1 first), taken durably.
pub(crate) fn next_counter(store: &Store, name: &str) -> Result<u64, StoreError> {
    store.fleet_update(kind::COUNTER, name, None, |current| {
        let n = match current {
            Some(bytes) => from_json::<u64>(bytes)? + 1,
            None => 1,
        };
        Ok((FleetWrite::Put(to_json(&n)?), n))
    })
}

/// What a site's agent last reported it runs (its `Status`), and when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteRunning {
    pub agent_version: String,
    pub arch: String,
    /// The configuration version it runs (0: none from the center).
    pub config_version: u64,
    pub config_error: Option<String>,
    /// `idle`, `downloading`, `installed`, `healthy`, `rolled_back` or `refused`.
    pub update: String,
    /// The version the update state is about.
    pub update_version: Option<String>,
    /// Why the update was rolled back or refused.
    pub update_reason: Option<String>,
    /// Whether it holds the center's current release key.
    pub has_release_key: bool,
    /// When it reported this (Unix milliseconds).
    pub reported_at: i64,
}

impl SiteRunning {
    fn from_status(status: &AgentStatus, key_ok: bool, now: Timestamp) -> SiteRunning {
        let update_reason = match &status.update {
            UpdateState::RolledBack { reason, .. } | UpdateState::Refused { reason, .. } => {
                Some(reason.clone())
            }
            _ => None,
        };
        SiteRunning {
            agent_version: status.agent_version.clone(),
            arch: status.arch.clone(),
            config_version: status.config_version,
            config_error: status.config_error.clone(),
            update: status.update.name().to_owned(),
            update_version: status.update.version().map(str::to_owned),
            update_reason,
            has_release_key: key_ok,
            reported_at: now.0,
        }
    }
}

/// What every site's agent last reported it runs, by site id.
pub fn running(
    store: &Store,
) -> Result<std::collections::HashMap<String, SiteRunning>, StoreError> {
    Ok(list(store, kind::RUNNING)?.into_iter().collect())
}

/// Records what `site`'s agent reports it runs, and answers what the center wants of it now:
/// the configuration it should run (when it runs another), the release its rollout offers, and
/// the release key (when it holds another or none).
pub fn on_status(
    store: &Store,
    site: &SiteRecord,
    status: &AgentStatus,
    now: Timestamp,
) -> Result<Directives, FleetError> {
    let center_key = release::public_key(store)?;
    let key_fingerprint = center_key.as_ref().map(|k| pasopati_common::sha256(k));
    let key_ok = key_fingerprint.is_some() && status.release_key == key_fingerprint;
    let reported = SiteRunning::from_status(status, key_ok, now);
    let id = site.id.as_str().to_owned();
    // Only what changed is written (the time of the report alone is not worth a commit per
    // heartbeat): a status that says the same as the last one keeps the record, and the
    // record as kept is what the offer below is judged by, as the rollout's rule judges it.
    let running = store.fleet_update(kind::RUNNING, &id, None, |current| {
        let previous: Option<SiteRunning> = current.map(from_json).transpose()?;
        if let Some(previous) = previous {
            let same = SiteRunning {
                reported_at: previous.reported_at,
                ..reported.clone()
            };
            if same == previous && now.0 - previous.reported_at < 15 * 60_000 {
                return Ok((FleetWrite::Keep, previous));
            }
        }
        Ok((FleetWrite::Told(to_json(&reported)?), reported.clone()))
    })?;
    let wanted = config::wanted(store, site)?;
    let config = (wanted.version > 0 && wanted.version != status.config_version).then_some(wanted);
    let release = rollout::offer_for(store, &site.id, &running)?;
    Ok(Directives {
        config,
        release,
        release_key: if key_ok { None } else { center_key },
    })
}

/// Whether `site` is named by a scope key (`all`, `kanwil:NAME`, `site:ID`).
pub(crate) fn scope_covers(scope: &str, site: &SiteRecord) -> bool {
    match scope.split_once(':') {
        None => scope == "all",
        Some(("kanwil", name)) => site.kanwil.eq_ignore_ascii_case(name),
        Some(("site", id)) => site.id.as_str() == id,
        Some(_) => false,
    }
}

/// What the command line asks of the fleet, through the daemon (or directly when it is
/// stopped). Each answer is JSON documents, one a line.
#[derive(Clone, Debug, bincode::Encode, bincode::Decode)]
pub enum FleetRequest {
    /// Make the release key (`release key`).
    ReleaseKey,
    /// Record a release the command line signed and staged (`release add`): the encoded
    /// `SignedRelease`.
    ReleaseRecord(Vec<u8>),
    ReleaseList,
    RolloutStart {
        version: String,
        waves: Vec<String>,
        health_timeout_secs: Option<u32>,
    },
    RolloutStatus,
    RolloutPause,
    RolloutResume,
    RolloutAbort,
    /// Set settings on a layer: `all`, `kanwil:NAME` or `site:ID`.
    ConfigSet {
        scope: String,
        settings: Vec<(String, String)>,
    },
}

fn json_line<T: Serialize>(value: &T) -> Result<String, FleetError> {
    serde_json::to_string(value).map_err(|e| FleetError::Refused(e.to_string()))
}

/// A rollout as `rollout status --json` prints its first line.
#[derive(Serialize)]
struct RolloutLine<'a> {
    version: &'a str,
    state: &'a str,
    reason: Option<&'a str>,
    wave: usize,
    waves: Vec<WaveLine<'a>>,
    health_timeout_secs: u32,
    started_at: String,
    started_by: &'a str,
}

#[derive(Serialize)]
struct WaveLine<'a> {
    label: &'a str,
    sites: usize,
}

/// One site of a rollout, as `rollout status --json` prints it.
#[derive(Serialize)]
struct SiteLine<'a> {
    site: &'a str,
    wave: usize,
    state: &'a str,
    agent_version: Option<&'a str>,
    reason: Option<&'a str>,
    reported_at: Option<String>,
}

/// Answers a [`FleetRequest`] by `actor` at `now`.
pub fn answer(
    store: &Store,
    request: FleetRequest,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<String>, FleetError> {
    match request {
        FleetRequest::ReleaseKey => {
            let public = release::create_key(store, store.data_dir(), actor)?;
            Ok(vec![json_line(&serde_json::json!({
                "public_key": pasopati_common::hex(&public),
                "sha256": pasopati_common::hex(&pasopati_common::sha256(&public)),
                "private_key": store.data_dir().join(release::SIGNING_KEY_FILE),
            }))?])
        }
        FleetRequest::ReleaseRecord(encoded) => {
            let signed = pasopati_common::frame::decode_value(&encoded)
                .map_err(|e| FleetError::Refused(format!("the signed release: {e}")))?;
            let record = release::record(store, &signed, actor, now)?;
            Ok(vec![json_line(&record)?])
        }
        FleetRequest::ReleaseList => release::releases(store)?.iter().map(json_line).collect(),
        FleetRequest::RolloutStart {
            version,
            waves,
            health_timeout_secs,
        } => {
            let specs = waves
                .iter()
                .map(|w| w.parse().map_err(FleetError::Refused))
                .collect::<Result<Vec<rollout::WaveSpec>, _>>()?;
            rollout::start(store, &version, &specs, health_timeout_secs, actor, now)?;
            rollout_status(store)
        }
        FleetRequest::RolloutStatus => rollout_status(store),
        FleetRequest::RolloutPause | FleetRequest::RolloutResume | FleetRequest::RolloutAbort => {
            let what = match request {
                FleetRequest::RolloutPause => rollout::Control::Pause,
                FleetRequest::RolloutResume => rollout::Control::Resume,
                _ => rollout::Control::Abort,
            };
            rollout::control(store, what, actor, now)?;
            rollout_status(store)
        }
        FleetRequest::ConfigSet { scope, settings } => {
            let scope = match scope.split_once(':') {
                None if scope == "all" => config::Scope::All,
                Some(("kanwil", name)) => config::Scope::Kanwil(name.to_owned()),
                Some(("site", id)) => config::Scope::Site(
                    pasopati_common::SiteId::new(id)
                        .map_err(|e| FleetError::Refused(e.to_string()))?,
                ),
                _ => return Err(FleetError::Refused(format!("`{scope}` is not a scope"))),
            };
            let typed = pasopati_common::fleet::RemoteConfig {
                version: 0,
                settings,
            }
            .check()?;
            let version = config::set(store, &scope, &typed, actor, now)?;
            let sites = store
                .sites()?
                .iter()
                .filter(|s| scope_covers(&scope.key(), s))
                .count();
            Ok(vec![json_line(&serde_json::json!({
                "scope": scope.key(),
                "config_version": version,
                "sites": sites,
            }))?])
        }
    }
}

fn rollout_status(store: &Store) -> Result<Vec<String>, FleetError> {
    let Some(r) = rollout::current(store)? else {
        return Ok(Vec::new());
    };
    let running = running(store)?;
    let mut lines = vec![json_line(&RolloutLine {
        version: &r.version,
        state: r.state.as_str(),
        reason: r.reason.as_deref(),
        wave: r.wave,
        waves: r
            .waves
            .iter()
            .map(|w| WaveLine {
                label: &w.label,
                sites: w.sites.len(),
            })
            .collect(),
        health_timeout_secs: r.health_timeout_secs,
        started_at: Timestamp(r.started_at).to_rfc3339(),
        started_by: &r.started_by,
    })?];
    for (site, wave, progress) in rollout::site_progress(&r, &running) {
        let run = running.get(&site);
        lines.push(json_line(&SiteLine {
            site: &site,
            wave,
            state: progress.as_str(),
            agent_version: run.map(|r| r.agent_version.as_str()),
            reason: run.and_then(|r| r.update_reason.as_deref()),
            reported_at: run.map(|r| Timestamp(r.reported_at).to_rfc3339()),
        })?);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{site, store};
    use pasopati_common::fleet::AgentStatus;

    fn rolled_back() -> AgentStatus {
        AgentStatus {
            agent_version: "0.1.0".into(),
            arch: "x86_64".into(),
            config_version: 0,
            config_error: None,
            update: UpdateState::RolledBack {
                version: "0.2.0".into(),
                reason: "started 3 times without coming back healthy".into(),
            },
            release_key: None,
        }
    }

    /// What a site's agent runs is told, not decided here: it is committed without a sync of
    /// its own (as a heartbeat is; the store then owes a durable commit, which fails here if it
    /// were durable), and a clean close keeps it.
    #[test]
    fn what_an_agent_runs_is_recorded_and_kept_across_a_clean_close() {
        let (dir, store) = store();
        let record = store.site(&site()).unwrap().unwrap();
        // On redb the store tells whether it owes a durable commit (on PostgreSQL the
        // transaction's `synchronous_commit` is not observable from here).
        let owes_durable_commit = || store.as_redb().map(|r| r.awaits_durable_commit());
        assert_ne!(owes_durable_commit(), Some(true));
        on_status(&store, &record, &rolled_back(), Timestamp(2_000)).unwrap();
        assert_ne!(
            owes_durable_commit(),
            Some(false),
            "the status was synced to disk on its own"
        );
        let told = running(&store).unwrap();
        assert_eq!(told[&site().to_string()].agent_version, "0.1.0");
        drop(store);
        let store = crate::store::fixtures::open(dir.path());
        let kept = running(&store).unwrap();
        assert_eq!(kept, told);
    }

    #[test]
    fn a_resumed_rollout_offers_the_release_again_to_a_site_still_reporting_its_old_failure() {
        let (_dir, store) = store();
        let record = store.site(&site()).unwrap().unwrap();
        release::create_key(&store, store.data_dir(), "admin").unwrap();
        let package = store.data_dir().join("package");
        std::fs::write(&package, "#!/bin/sh\nexit 0\n").unwrap();
        let new = release::NewRelease {
            package: &package,
            version: "0.2.0",
            arch: Some("x86_64"),
            key: None,
            downgrade_until: None,
        };
        let signed = release::sign_and_stage(store.data_dir(), &new).unwrap();
        release::record(&store, &signed, "admin", Timestamp(1_000)).unwrap();
        rollout::start(&store, "0.2.0", &[], Some(600), "admin", Timestamp(1_000)).unwrap();

        // The site goes back from 0.2.0: no offer, and the rollout pauses.
        let answer = on_status(&store, &record, &rolled_back(), Timestamp(2_000)).unwrap();
        assert!(answer.release.is_none());
        let paused = rollout::step(&store).unwrap().unwrap();
        assert_eq!(paused.state, rollout::RolloutState::Paused);

        // Resumed, the site still says what it said before (its record is kept, not
        // rewritten): it is offered the release again, and the rollout stays running.
        rollout::control(&store, rollout::Control::Resume, "admin", Timestamp(3_000)).unwrap();
        let answer = on_status(&store, &record, &rolled_back(), Timestamp(4_000)).unwrap();
        assert!(
            answer.release.is_some(),
            "not offered again after the resume"
        );
        assert_eq!(rollout::step(&store).unwrap(), None);
    }
}
