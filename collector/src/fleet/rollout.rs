//! Staged rollouts: a release offered wave by wave (by Kanwil, by listed sites, or by a share
//! of the fleet), moving to the next wave only when every site of the current one reports the
//! new version healthy, and pausing, with the reason, as soon as a site rolls back or refuses
//! it. One rollout at a time; `pause`, `resume` and `abort` are the admin's.
//!
//! [`advance`] is the rule, pure over the rollout and what the sites report; [`step`] applies it
//! in the store (any collector may, after any status: the record's lock makes them take turns,
//! and applying it twice changes nothing).

use super::release::{self, ReleaseRecord};
use super::{from_json, get, kind, to_json, FleetError, SiteRunning};
use crate::store::fleet::{FleetAudit, FleetWrite};
use crate::store::{SiteRecord, SiteStatus, Store, StoreError};
use pasopati_common::fleet::ReleaseOffer;
use pasopati_common::{SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The key of the one rollout record.
const CURRENT: &str = "current";
/// How long, by default, a new version has to come back healthy at a site before the site goes
/// back to its previous version by itself.
pub const DEFAULT_HEALTH_TIMEOUT_SECS: u32 = 600;

/// Which sites a wave takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaveSpec {
    /// The active sites of a Kanwil.
    Kanwil(String),
    /// These sites.
    Sites(Vec<SiteId>),
    /// Enough further sites that the waves so far cover this share of the fleet (1 to 100).
    Percent(u8),
}

impl std::str::FromStr for WaveSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<WaveSpec, String> {
        let (what, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: a wave is kanwil=NAME, sites=ID,ID… or percent=N"))?;
        match what {
            "kanwil" if !value.trim().is_empty() => Ok(WaveSpec::Kanwil(value.trim().to_owned())),
            "sites" => value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SiteId::new(s).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|ids| {
                    if ids.is_empty() {
                        Err("sites= names no site".into())
                    } else {
                        Ok(WaveSpec::Sites(ids))
                    }
                }),
            "percent" => match value.trim().parse::<u8>() {
                Ok(n) if (1..=100).contains(&n) => Ok(WaveSpec::Percent(n)),
                _ => Err(format!(
                    "percent={value}: give a whole number from 1 to 100"
                )),
            },
            _ => Err(format!(
                "`{text}`: a wave is kanwil=NAME, sites=ID,ID… or percent=N"
            )),
        }
    }
}

/// One wave: what the admin asked for, and the sites it took.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Wave {
    pub label: String,
    pub sites: Vec<String>,
}

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    #[default]
    Running,
    Paused,
    Aborted,
    Completed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Aborted => "aborted",
            RolloutState::Completed => "completed",
        }
    }
}

/// The rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rollout {
    pub version: String,
    pub waves: Vec<Wave>,
    /// The wave being rolled out (every earlier one is done).
    pub wave: usize,
    pub state: RolloutState,
    /// Why it paused (a site's rollback or refusal, or the admin).
    pub reason: Option<String>,
    pub health_timeout_secs: u32,
    pub started_at: i64,
    pub started_by: String,
    /// When it was last resumed: a site's rollback or refusal reported before then is tried
    /// again (the release is offered to it anew).
    pub resumed_at: i64,
}

impl Rollout {
    /// The sites offered the release so far: every wave up to the current one.
    pub fn offered_sites(&self) -> impl Iterator<Item = &String> {
        self.waves
            .iter()
            .take(self.wave + 1)
            .flat_map(|w| w.sites.iter())
    }
}

/// Where one site of a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteProgress {
    /// Its wave has not come yet.
    Waiting,
    /// Offered; nothing reported about it yet.
    Offered,
    Downloading,
    Installed,
    Healthy,
    RolledBack,
    Refused,
}

impl SiteProgress {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteProgress::Waiting => "waiting",
            SiteProgress::Offered => "offered",
            SiteProgress::Downloading => "downloading",
            SiteProgress::Installed => "installed",
            SiteProgress::Healthy => "healthy",
            SiteProgress::RolledBack => "rolled_back",
            SiteProgress::Refused => "refused",
        }
    }
}

/// Where `site` (in wave `wave`) stands in `rollout`, by what it last reported.
pub fn progress(rollout: &Rollout, wave: usize, running: Option<&SiteRunning>) -> SiteProgress {
    if wave > rollout.wave {
        return SiteProgress::Waiting;
    }
    let Some(r) = running else {
        return SiteProgress::Offered;
    };
    let about_this = r.update_version.as_deref() == Some(rollout.version.as_str());
    // A failure reported before the admin resumed the rollout is tried again.
    let failed = about_this && r.reported_at >= rollout.resumed_at;
    match r.update.as_str() {
        "healthy" if about_this && r.agent_version == rollout.version => SiteProgress::Healthy,
        "rolled_back" if failed => SiteProgress::RolledBack,
        "refused" if failed => SiteProgress::Refused,
        "installed" if about_this => SiteProgress::Installed,
        "downloading" if about_this => SiteProgress::Downloading,
        _ => SiteProgress::Offered,
    }
}

/// The rule: how `rollout` moves given what sites report. A site of an offered wave that rolled
/// back or refused pauses it, with that site's reason; a current wave whose every site is
/// healthy hands over to the next (or completes the rollout). `None` when nothing changes.
pub fn advance(rollout: &Rollout, running: &HashMap<String, SiteRunning>) -> Option<Rollout> {
    if rollout.state != RolloutState::Running {
        return None;
    }
    for (w, wave) in rollout.waves.iter().enumerate().take(rollout.wave + 1) {
        for site in &wave.sites {
            let r = running.get(site);
            let p = progress(rollout, w, r);
            if matches!(p, SiteProgress::RolledBack | SiteProgress::Refused) {
                let why = r.and_then(|r| r.update_reason.clone()).unwrap_or_default();
                return Some(Rollout {
                    state: RolloutState::Paused,
                    reason: Some(format!(
                        "site {site} {} {}: {why}",
                        if p == SiteProgress::RolledBack {
                            "rolled back from"
                        } else {
                            "refused"
                        },
                        rollout.version
                    )),
                    ..rollout.clone()
                });
            }
        }
    }
    let current = rollout.waves.get(rollout.wave)?;
    let all_healthy = current
        .sites
        .iter()
        .all(|site| progress(rollout, rollout.wave, running.get(site)) == SiteProgress::Healthy);
    if !all_healthy {
        return None;
    }
    Some(if rollout.wave + 1 < rollout.waves.len() {
        Rollout {
            wave: rollout.wave + 1,
            ..rollout.clone()
        }
    } else {
        Rollout {
            state: RolloutState::Completed,
            ..rollout.clone()
        }
    })
}

/// The sites waves would take from `sites` (active ones only), in order; a site goes in the
/// first wave that names it. A share of the fleet takes further sites in an order spread by a
/// hash of their ids (stable, and not the order they were registered in).
pub fn resolve_waves(specs: &[WaveSpec], sites: &[SiteRecord]) -> Result<Vec<Wave>, FleetError> {
    let active: Vec<&SiteRecord> = sites
        .iter()
        .filter(|s| s.status == SiteStatus::Active)
        .collect();
    if active.is_empty() {
        return Err(FleetError::Refused("no site is enrolled and active".into()));
    }
    let all = [WaveSpec::Percent(100)];
    let specs = if specs.is_empty() { &all[..] } else { specs };
    let mut taken: HashSet<String> = HashSet::new();
    let mut spread: Vec<&SiteRecord> = active.clone();
    spread.sort_by_key(|s| pasopati_common::sha256(s.id.as_str().as_bytes()));
    let mut waves = Vec::new();
    for spec in specs {
        let (label, chosen): (String, Vec<String>) = match spec {
            WaveSpec::Kanwil(name) => {
                let ids: Vec<String> = active
                    .iter()
                    .filter(|s| s.kanwil.eq_ignore_ascii_case(name))
                    .map(|s| s.id.as_str().to_owned())
                    .collect();
                if ids.is_empty() {
                    return Err(FleetError::Refused(format!(
                        "kanwil={name}: no active site belongs to it; `site list` shows each site's Kanwil"
                    )));
                }
                (format!("kanwil={name}"), ids)
            }
            WaveSpec::Sites(ids) => {
                for id in ids {
                    if !active.iter().any(|s| &s.id == id) {
                        return Err(FleetError::Refused(format!(
                            "sites=…{id}…: no such active site"
                        )));
                    }
                }
                (
                    format!(
                        "sites={}",
                        ids.iter().map(SiteId::as_str).collect::<Vec<_>>().join(",")
                    ),
                    ids.iter().map(|id| id.as_str().to_owned()).collect(),
                )
            }
            WaveSpec::Percent(n) => {
                let target = (active.len() * usize::from(*n)).div_ceil(100);
                let missing = target.saturating_sub(taken.len());
                let ids = spread
                    .iter()
                    .map(|s| s.id.as_str().to_owned())
                    .filter(|id| !taken.contains(id))
                    .take(missing)
                    .collect();
                (format!("percent={n}"), ids)
            }
        };
        let fresh: Vec<String> = chosen
            .into_iter()
            .filter(|id| taken.insert(id.clone()))
            .collect();
        if fresh.is_empty() {
            return Err(FleetError::Refused(format!(
                "the wave {label} takes no site that an earlier wave did not"
            )));
        }
        waves.push(Wave {
            label,
            sites: fresh,
        });
    }
    Ok(waves)
}

/// The rollout, if one was ever started.
pub fn current(store: &Store) -> Result<Option<Rollout>, StoreError> {
    get(store, kind::ROLLOUT, CURRENT)
}

fn audit(actor: &str, action: &str, details: String, now: Timestamp) -> Option<FleetAudit> {
    Some(FleetAudit {
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: "rollout".into(),
        details,
        at: now,
    })
}

/// Starts a rollout of `version` in `waves`. Refused while another is running or paused (abort
/// it first), and for a version never added.
pub fn start(
    store: &Store,
    version: &str,
    waves: &[WaveSpec],
    health_timeout_secs: Option<u32>,
    actor: &str,
    now: Timestamp,
) -> Result<Rollout, FleetError> {
    if release::release(store, version)?.is_none() {
        return Err(FleetError::Refused(format!(
            "there is no release {version}; add it with `pasopati-collector release add`"
        )));
    }
    let waves = resolve_waves(waves, &store.sites()?)?;
    let rollout = Rollout {
        version: version.to_owned(),
        waves,
        wave: 0,
        state: RolloutState::Running,
        reason: None,
        health_timeout_secs: health_timeout_secs.unwrap_or(DEFAULT_HEALTH_TIMEOUT_SECS),
        started_at: now.0,
        started_by: actor.to_owned(),
        // A site's failure with this version in an earlier rollout does not count against
        // this one.
        resumed_at: now.0,
    };
    let details = format!(
        "{version} in {} wave(s): {}",
        rollout.waves.len(),
        rollout
            .waves
            .iter()
            .map(|w| format!("{} ({} sites)", w.label, w.sites.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    store
        .fleet_update(
            kind::ROLLOUT,
            CURRENT,
            audit(actor, "rollout_start", details, now),
            |current| {
                if let Some(existing) = current.map(from_json::<Rollout>).transpose()? {
                    if matches!(existing.state, RolloutState::Running | RolloutState::Paused) {
                        return Ok((FleetWrite::Keep, Err(existing)));
                    }
                }
                Ok((FleetWrite::Put(to_json(&rollout)?), Ok(rollout.clone())))
            },
        )?
        .map_err(|existing| {
            FleetError::Refused(format!(
                "the rollout of {} is {}; abort it first (`rollout abort`)",
                existing.version,
                existing.state.as_str()
            ))
        })
}

/// What the admin can do to a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Abort,
}

/// Pauses, resumes or aborts the rollout; refused when there is none in a state that allows it.
pub fn control(
    store: &Store,
    what: Control,
    actor: &str,
    now: Timestamp,
) -> Result<Rollout, FleetError> {
    let action = match what {
        Control::Pause => "rollout_pause",
        Control::Resume => "rollout_resume",
        Control::Abort => "rollout_abort",
    };
    store
        .fleet_update(
            kind::ROLLOUT,
            CURRENT,
            audit(actor, action, String::new(), now),
            |current| {
                let Some(mut rollout) = current.map(from_json::<Rollout>).transpose()? else {
                    let none =
                        "there is no rollout; start one with `pasopati-collector rollout start`";
                    return Ok((FleetWrite::Keep, Err(none.to_owned())));
                };
                let allowed = match (what, rollout.state) {
                    (Control::Pause, RolloutState::Running) => {
                        rollout.state = RolloutState::Paused;
                        rollout.reason = Some(format!("paused by {actor}"));
                        true
                    }
                    (Control::Resume, RolloutState::Paused) => {
                        rollout.state = RolloutState::Running;
                        rollout.reason = None;
                        rollout.resumed_at = now.0;
                        true
                    }
                    (Control::Abort, RolloutState::Running | RolloutState::Paused) => {
                        rollout.state = RolloutState::Aborted;
                        rollout.reason = Some(format!("aborted by {actor}"));
                        true
                    }
                    _ => false,
                };
                if !allowed {
                    let message = format!(
                        "the rollout of {} is {}",
                        rollout.version,
                        rollout.state.as_str()
                    );
                    return Ok((FleetWrite::Keep, Err(message)));
                }
                Ok((FleetWrite::Put(to_json(&rollout)?), Ok(rollout)))
            },
        )?
        .map_err(FleetError::Refused)
}

/// Applies [`advance`] to the stored rollout; returns it when it changed.
pub fn step(store: &Store) -> Result<Option<Rollout>, StoreError> {
    // Most statuses come while no rollout runs: one read, no write transaction.
    if current(store)?.is_none_or(|r| r.state != RolloutState::Running) {
        return Ok(None);
    }
    let running = super::running(store)?;
    store.fleet_update(kind::ROLLOUT, CURRENT, None, |current| {
        let Some(rollout) = current.map(from_json::<Rollout>).transpose()? else {
            return Ok((FleetWrite::Keep, None));
        };
        match advance(&rollout, &running) {
            Some(next) => {
                if next.state == RolloutState::Paused {
                    tracing::warn!(version = %next.version, reason = next.reason.as_deref().unwrap_or(""), "rollout paused");
                } else {
                    tracing::info!(version = %next.version, wave = next.wave + 1, state = next.state.as_str(), "rollout moved on");
                }
                Ok((FleetWrite::Put(to_json(&next)?), Some(next)))
            }
            None => Ok((FleetWrite::Keep, None)),
        }
    })
}

/// The release to offer `site` now, if a running rollout includes it and it runs another
/// version (and did not roll back from or refuse this one).
pub fn offer_for(
    store: &Store,
    site: &SiteId,
    running: &SiteRunning,
) -> Result<Option<ReleaseOffer>, StoreError> {
    let Some(rollout) = current(store)? else {
        return Ok(None);
    };
    if rollout.state != RolloutState::Running
        || !rollout.offered_sites().any(|s| s == site.as_str())
    {
        return Ok(None);
    }
    let wave = rollout
        .waves
        .iter()
        .position(|w| w.sites.iter().any(|s| s == site.as_str()))
        .unwrap_or(0);
    let progress = progress(&rollout, wave, Some(running));
    if matches!(
        progress,
        SiteProgress::Healthy | SiteProgress::RolledBack | SiteProgress::Refused
    ) || running.agent_version == rollout.version
    {
        return Ok(None);
    }
    let Some(record): Option<ReleaseRecord> = release::release(store, &rollout.version)? else {
        return Ok(None);
    };
    Ok(Some(ReleaseOffer {
        release: record.signed_release()?,
        health_timeout_secs: rollout.health_timeout_secs,
    }))
}

/// Each site of the rollout with its wave and where it stands.
pub fn site_progress(
    rollout: &Rollout,
    running: &HashMap<String, SiteRunning>,
) -> Vec<(String, usize, SiteProgress)> {
    rollout
        .waves
        .iter()
        .enumerate()
        .flat_map(|(w, wave)| {
            wave.sites
                .iter()
                .map(move |s| (s.clone(), w, progress(rollout, w, running.get(s))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: &str, kanwil: &str) -> SiteRecord {
        SiteRecord::new(
            SiteId::new(id).unwrap(),
            id.into(),
            pasopati_common::SiteType::Lapas,
            kanwil.into(),
            SiteStatus::Active,
            Timestamp(0),
        )
    }

    fn fleet() -> Vec<SiteRecord> {
        let mut sites = Vec::new();
        for i in 0..10 {
            sites.push(site(&format!("lapas-a{i}"), "Kanwil A"));
            sites.push(site(&format!("lapas-b{i}"), "Kanwil B"));
        }
        sites
    }

    fn reported(version: &str, update: &str, about: &str) -> SiteRunning {
        SiteRunning {
            agent_version: version.into(),
            update: update.into(),
            update_version: Some(about.into()),
            update_reason: (update == "rolled_back").then(|| "crashed at start".into()),
            ..SiteRunning::default()
        }
    }

    #[test]
    fn waves_take_each_site_once_in_the_order_asked() {
        let specs: Vec<WaveSpec> = ["sites=lapas-a0,lapas-b0", "kanwil=kanwil a", "percent=100"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let waves = resolve_waves(&specs, &fleet()).unwrap();
        assert_eq!(waves.len(), 3);
        assert_eq!(waves[0].sites, vec!["lapas-a0", "lapas-b0"]);
        assert_eq!(waves[1].sites.len(), 9, "kanwil A without lapas-a0");
        assert_eq!(waves[2].sites.len(), 9, "the rest of Kanwil B");
        let all: HashSet<&String> = waves.iter().flat_map(|w| &w.sites).collect();
        assert_eq!(all.len(), 20);

        let shares = resolve_waves(
            &[
                WaveSpec::Percent(10),
                WaveSpec::Percent(50),
                WaveSpec::Percent(100),
            ],
            &fleet(),
        )
        .unwrap();
        let sizes: Vec<usize> = shares.iter().map(|w| w.sites.len()).collect();
        assert_eq!(sizes, vec![2, 8, 10]);

        for bad in [
            "kanwil=",
            "percent=0",
            "percent=101",
            "sites=",
            "wave=1",
            "kanwil",
        ] {
            assert!(bad.parse::<WaveSpec>().is_err(), "{bad}");
        }
        let err = resolve_waves(&[WaveSpec::Kanwil("Kanwil C".into())], &fleet()).unwrap_err();
        assert!(err.to_string().contains("Kanwil C"), "{err}");
        let twice = [WaveSpec::Percent(100), WaveSpec::Kanwil("Kanwil A".into())];
        assert!(resolve_waves(&twice, &fleet()).is_err());
    }

    #[test]
    fn a_wave_moves_on_when_all_its_sites_are_healthy_and_a_rollback_pauses() {
        let specs = [
            WaveSpec::Kanwil("Kanwil A".into()),
            WaveSpec::Kanwil("Kanwil B".into()),
        ];
        let rollout = Rollout {
            version: "0.2.0".into(),
            waves: resolve_waves(&specs, &fleet()).unwrap(),
            ..Rollout::default()
        };
        let mut running: HashMap<String, SiteRunning> = HashMap::new();
        assert_eq!(advance(&rollout, &running), None, "nobody reported");
        for i in 0..9 {
            running.insert(format!("lapas-a{i}"), reported("0.2.0", "healthy", "0.2.0"));
        }
        running.insert("lapas-a9".into(), reported("0.1.0", "downloading", "0.2.0"));
        assert_eq!(advance(&rollout, &running), None, "one still downloading");
        // Healthy on another version does not count.
        running.insert("lapas-a9".into(), reported("0.1.0", "healthy", "0.1.9"));
        assert_eq!(advance(&rollout, &running), None);
        running.insert("lapas-a9".into(), reported("0.2.0", "healthy", "0.2.0"));
        let second = advance(&rollout, &running).unwrap();
        assert_eq!((second.wave, second.state), (1, RolloutState::Running));

        running.insert("lapas-b3".into(), reported("0.1.0", "rolled_back", "0.2.0"));
        let paused = advance(&second, &running).unwrap();
        assert_eq!(paused.state, RolloutState::Paused);
        let reason = paused.reason.clone().unwrap();
        assert!(
            reason.contains("lapas-b3") && reason.contains("crashed at start"),
            "{reason}"
        );
        assert_eq!(advance(&paused, &running), None, "a paused rollout stays");

        // A rollback in a wave not offered yet cannot pause anything.
        let mut early = running.clone();
        early.remove("lapas-b3");
        early.insert("lapas-b5".into(), reported("0.1.0", "rolled_back", "0.2.0"));
        assert_eq!(
            advance(&rollout, &early).map(|r| r.state),
            Some(RolloutState::Running)
        );

        // Resumed after that report: the site is offered the release again.
        let resumed = Rollout {
            state: RolloutState::Running,
            resumed_at: 1,
            ..paused.clone()
        };
        assert_eq!(
            progress(&resumed, 1, running.get("lapas-b3")),
            SiteProgress::Offered
        );
        assert_eq!(
            advance(&resumed, &running),
            None,
            "not paused again at once"
        );
        for i in 0..10 {
            running.insert(format!("lapas-b{i}"), reported("0.2.0", "healthy", "0.2.0"));
        }
        assert_eq!(
            advance(&second, &running).map(|r| r.state),
            Some(RolloutState::Completed)
        );
    }
}
