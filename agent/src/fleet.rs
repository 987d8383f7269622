//! The agent's side of running the fleet from the center (protocol 2,
//! `pasopati_common::fleet`): what it reports it runs ([`Fleet::status`]), the settings the center
//! wants it to run with (applied over `agent.toml`, kept in `remote.toml`), the release key it
//! trusts (`release-key.pub`), and releases it downloads and installs (`launch.rs` runs them).
//!
//! The center's settings are checked with the rule both sides apply, then with the whole
//! configuration's own check; a configuration that fails either is refused whole, the one that
//! runs stays, and the refusal is reported. A release is installed only if the trusted key
//! signed it, its hash and size match, it is for this machine, and it is newer than what runs
//! (or a signed rollback allows it). Downloads go one part at a time into `updates/`, resume
//! after a cut, and never touch the outbox.

use crate::config::AgentConfig;
use crate::launch::{self, LaunchState};
use pasopati_common::fleet::{
    AgentStatus, Directives, ReleaseManifest, ReleaseOffer, RemoteConfig, SignedRelease,
    UpdateState, Version, ARCH,
};
use pasopati_common::{hex, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The release key the agent trusts (Ed25519, hex), in the data directory.
pub const RELEASE_KEY_FILE: &str = "release-key.pub";
/// The settings from the center the agent runs, in the data directory.
pub const REMOTE_CONFIG_FILE: &str = "remote.toml";
const DOWNLOAD_DIR: &str = "updates";

/// The release key this agent trusts (`release-key.pub` in `data_dir`), if it holds one.
pub fn trusted_release_key(data_dir: &Path) -> Option<Vec<u8>> {
    std::fs::read_to_string(data_dir.join(RELEASE_KEY_FILE))
        .ok()
        .and_then(|t| pasopati_common::unhex(t.trim()))
        .filter(|k| k.len() == 32)
}

/// The settings from the center, as kept in `remote.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteFile {
    pub version: u64,
    pub settings: BTreeMap<String, String>,
}

impl RemoteFile {
    /// The settings as the wire carries them.
    pub fn config(&self) -> RemoteConfig {
        RemoteConfig {
            version: self.version,
            settings: self
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// `base` (agent.toml) with the center's `remote` settings laid over it, checked whole.
pub fn effective_config(base: &AgentConfig, remote: &RemoteConfig) -> Result<AgentConfig, String> {
    let settings = remote.check().map_err(|e| e.to_string())?;
    let mut table = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for setting in &settings {
        setting.write_into(&mut table);
    }
    let config: AgentConfig = table
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())?;
    config.check()?;
    Ok(config)
}

/// Reads `remote.toml` and lays it over `base`; without the file (or with one that no longer
/// checks, which is logged) the result is `base` and version 0.
pub fn load_effective(data_dir: &Path, base: &AgentConfig) -> (AgentConfig, RemoteFile) {
    let path = data_dir.join(REMOTE_CONFIG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (base.clone(), RemoteFile::default());
    };
    let remote: RemoteFile = match toml::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(file = %path.display(), "the center's settings cannot be read ({e}); running with agent.toml alone until the center sends them again");
            return (base.clone(), RemoteFile::default());
        }
    };
    match effective_config(base, &remote.config()) {
        Ok(config) => (config, remote),
        Err(e) => {
            tracing::error!(file = %path.display(), version = remote.version, "the center's settings no longer fit agent.toml ({e}); running with agent.toml alone until the center sends them again");
            (base.clone(), RemoteFile::default())
        }
    }
}

/// A download under way.
struct Download {
    signed: SignedRelease,
    manifest: ReleaseManifest,
    health_timeout_secs: u32,
    path: PathBuf,
    received: u64,
}

#[derive(Default)]
struct State {
    config_version: u64,
    config_error: Option<String>,
    release_key: Option<Vec<u8>>,
    download: Option<Download>,
    /// The last refusal logged, so each is logged once.
    refused: Option<(String, String)>,
    /// The version of the center's settings refused last, so it is judged once.
    refused_config: Option<u64>,
}

/// What [`Fleet::on_directives`] asks of the daemon.
#[derive(Debug, Default)]
pub struct Outcome {
    /// A new configuration to run.
    pub config: Option<AgentConfig>,
    /// Whether the status changed (and should be sent again).
    pub status_changed: bool,
}

/// What a part of a download led to.
#[derive(Debug, PartialEq, Eq)]
pub enum PartOutcome {
    /// More to fetch.
    More,
    /// The release is installed on trial: restart into it.
    Installed(String),
    /// The download stopped (logged); it starts again from where it was at the next offer.
    Stopped,
}

/// The agent's side of the fleet.
pub struct Fleet {
    data_dir: PathBuf,
    state: Mutex<State>,
}

impl Fleet {
    /// Opens the fleet state of `data_dir`: the trusted release key and the version of the
    /// center's settings that runs.
    pub fn open(data_dir: &Path, remote: &RemoteFile) -> Fleet {
        let release_key = trusted_release_key(data_dir);
        Fleet {
            data_dir: data_dir.to_owned(),
            state: Mutex::new(State {
                config_version: remote.version,
                release_key,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The release key the agent trusts, if any.
    pub fn release_key(&self) -> Option<Vec<u8>> {
        self.state().release_key.clone()
    }

    /// What the agent runs, for the center.
    pub fn status(&self) -> AgentStatus {
        let state = self.state();
        let update = match &state.download {
            Some(d) => UpdateState::Downloading {
                version: d.manifest.version.clone(),
                received: d.received,
                size: d.manifest.size,
            },
            None => LaunchState::load(&self.data_dir)
                .last
                .unwrap_or(UpdateState::Idle),
        };
        AgentStatus {
            agent_version: pasopati_common::version().to_owned(),
            arch: ARCH.to_owned(),
            config_version: state.config_version,
            config_error: state.config_error.clone(),
            update,
            release_key: state
                .release_key
                .as_ref()
                .map(|k| pasopati_common::sha256(k)),
        }
    }

    /// Acts on what the center wants now: trusts its release key if none is trusted yet,
    /// checks and takes its configuration, and starts (or goes on with, or stops) a download.
    pub fn on_directives(
        &self,
        directives: Directives,
        base: &AgentConfig,
        now: Timestamp,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        if let Some(key) = directives.release_key {
            outcome.status_changed |= self.trust_key(&key);
        }
        if let Some(config) = directives.config {
            outcome.status_changed = true;
            outcome.config = self.take_config(&config, base);
        }
        outcome.status_changed |= self.consider_offer(directives.release, now);
        outcome
    }

    fn trust_key(&self, key: &[u8]) -> bool {
        let mut state = self.state();
        match &state.release_key {
            Some(trusted) if trusted.as_slice() == key => false,
            Some(_) => {
                tracing::error!("the collector offers a release key other than the one this agent trusts; it is ignored, and releases are checked against the trusted key");
                false
            }
            None if key.len() != 32 => false,
            None => {
                let path = self.data_dir.join(RELEASE_KEY_FILE);
                if let Err(e) =
                    pasopati_common::pki::write_file_atomic(&path, hex(key).as_bytes(), 0o600)
                {
                    tracing::error!("cannot keep the release key in {}: {e}", path.display());
                    return false;
                }
                tracing::info!(sha256 = %hex(&pasopati_common::sha256(key)), "release key received from the collector and trusted from now on");
                state.release_key = Some(key.to_vec());
                true
            }
        }
    }

    fn take_config(&self, config: &RemoteConfig, base: &AgentConfig) -> Option<AgentConfig> {
        let mut state = self.state();
        // Offered again with every status until the center changes it: judged once.
        if state.refused_config == Some(config.version) {
            return None;
        }
        let checked = effective_config(base, config);
        match checked {
            Ok(effective) => {
                let file = RemoteFile {
                    version: config.version,
                    settings: config.settings.iter().cloned().collect(),
                };
                let text = match toml::to_string(&file) {
                    Ok(t) => t,
                    Err(e) => {
                        state.config_error = Some(format!("version {}: {e}", config.version));
                        return None;
                    }
                };
                let path = self.data_dir.join(REMOTE_CONFIG_FILE);
                let header = "# Settings from the media center (`pasopati-collector site config set`), written by the agent.\n# They are laid over agent.toml; edit agent.toml for local settings.\n";
                if let Err(e) = pasopati_common::pki::write_file_atomic(
                    &path,
                    format!("{header}{text}").as_bytes(),
                    0o600,
                ) {
                    state.config_error =
                        Some(format!("version {}: cannot be kept: {e}", config.version));
                    return None;
                }
                let shown: Vec<String> = config
                    .check()
                    .unwrap_or_default()
                    .iter()
                    .map(|s| format!("{}={}", s.key(), s.shown()))
                    .collect();
                tracing::info!(version = config.version, settings = %shown.join(", "), "settings from the center applied");
                state.config_version = config.version;
                state.config_error = None;
                Some(effective)
            }
            Err(reason) => {
                tracing::error!(
                    version = config.version,
                    "settings from the center refused ({reason}); the ones running stay"
                );
                state.config_error = Some(format!("version {} refused: {reason}", config.version));
                state.refused_config = Some(config.version);
                None
            }
        }
    }

    /// Starts, goes on with or stops a download for `offer`. Returns whether the status changed.
    fn consider_offer(&self, offer: Option<ReleaseOffer>, now: Timestamp) -> bool {
        let mut state = self.state();
        let Some(offer) = offer else {
            if let Some(d) = state.download.take() {
                tracing::info!(version = %d.manifest.version, "the center no longer offers this release; the download stops (what is held stays for later)");
                return true;
            }
            return false;
        };
        let verdict = state
            .release_key
            .as_deref()
            .ok_or(pasopati_common::fleet::ReleaseRefusal::NoKey)
            .and_then(|key| offer.release.verify(key))
            .and_then(|m| {
                let running: Version = pasopati_common::version()
                    .parse()
                    .map_err(pasopati_common::fleet::ReleaseRefusal::BadVersion)?;
                m.check_install(running, ARCH, now).map(|_| m)
            });
        let manifest = match verdict {
            Ok(m) => m,
            Err(refusal) => {
                let version = crate::fleet::offered_version(&offer.release);
                let reason = refusal.to_string();
                if state.refused.as_ref() != Some(&(version.clone(), reason.clone())) {
                    tracing::error!(%version, "release refused: {reason}");
                    state.refused = Some((version.clone(), reason.clone()));
                    let mut launch = LaunchState::load(&self.data_dir);
                    launch.last = Some(UpdateState::Refused { version, reason });
                    if let Err(e) = launch.save(&self.data_dir) {
                        tracing::error!("{e}");
                    }
                    return true;
                }
                return false;
            }
        };
        if state
            .download
            .as_ref()
            .is_some_and(|d| d.manifest.sha256 == manifest.sha256)
        {
            return false;
        }
        let path = self
            .data_dir
            .join(DOWNLOAD_DIR)
            .join(format!("{}.part", hex(&manifest.sha256)));
        if let Err(e) =
            pasopati_common::storage::create_private_dir(&self.data_dir.join(DOWNLOAD_DIR))
        {
            tracing::error!("cannot make the download folder: {e}");
            return false;
        }
        // A part already held (from a download cut off earlier) is kept: the download resumes.
        let received = std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or(0)
            .min(manifest.size);
        tracing::info!(version = %manifest.version, bytes = manifest.size, from = received, "downloading a release the center offers");
        state.download = Some(Download {
            signed: offer.release,
            manifest,
            health_timeout_secs: offer.health_timeout_secs,
            path,
            received,
        });
        true
    }

    /// The part to fetch next, if a download is under way.
    pub fn next_fetch(&self) -> Option<([u8; 32], u64)> {
        self.state()
            .download
            .as_ref()
            .map(|d| (d.manifest.sha256, d.received))
    }

    /// Takes a fetched part: appends it, and once the whole package is held checks it against
    /// its signed manifest and installs it on trial.
    pub fn on_part(
        &self,
        sha256: [u8; 32],
        offset: u64,
        data: &[u8],
        now: Timestamp,
    ) -> PartOutcome {
        let mut state = self.state();
        let Some(d) = state.download.as_mut() else {
            return PartOutcome::Stopped;
        };
        if d.manifest.sha256 != sha256 || offset != d.received {
            return PartOutcome::More;
        }
        if data.is_empty() && d.received < d.manifest.size {
            tracing::warn!(version = %d.manifest.version, "the collector has no more of this release; the download stops until it is offered again");
            state.download = None;
            return PartOutcome::Stopped;
        }
        let room = d.manifest.size - d.received;
        let data = &data[..data.len().min(room as usize)];
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&d.path)
            .and_then(|mut f| {
                f.set_len(d.received)?;
                f.write_all(data)?;
                f.sync_data()
            });
        if let Err(e) = appended {
            tracing::error!(file = %d.path.display(), "cannot write the download ({e}); it stops until the release is offered again");
            state.download = None;
            return PartOutcome::Stopped;
        }
        d.received += data.len() as u64;
        if d.received < d.manifest.size {
            return PartOutcome::More;
        }
        let Some(d) = state.download.take() else {
            return PartOutcome::Stopped;
        };
        drop(state);
        self.install(d, now)
    }

    fn install(&self, d: Download, now: Timestamp) -> PartOutcome {
        let version = d.manifest.version.clone();
        let package = match std::fs::read(&d.path) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(file = %d.path.display(), "cannot read the download: {e}");
                return PartOutcome::Stopped;
            }
        };
        let _ = std::fs::remove_file(&d.path);
        if let Err(refusal) = d.manifest.check_package(&package) {
            let reason = refusal.to_string();
            tracing::error!(%version, "the downloaded release is refused: {reason}");
            let mut launch = LaunchState::load(&self.data_dir);
            launch.last = Some(UpdateState::Refused { version, reason });
            if let Err(e) = launch.save(&self.data_dir) {
                tracing::error!("{e}");
            }
            return PartOutcome::Stopped;
        }
        match launch::install(
            &self.data_dir,
            &d.signed,
            &version,
            &package,
            d.health_timeout_secs,
            now,
        ) {
            Ok(()) => {
                tracing::info!(%version, "release installed; the agent restarts into it");
                PartOutcome::Installed(version)
            }
            Err(e) => {
                tracing::error!(%version, "the release cannot be installed: {e}");
                PartOutcome::Stopped
            }
        }
    }
}

/// The version a signed release claims, for messages about one that is refused (unverified).
pub fn offered_version(release: &SignedRelease) -> String {
    pasopati_common::frame::decode_value::<ReleaseManifest>(&release.manifest)
        .map(|m| m.version.chars().take(32).collect())
        .unwrap_or_else(|_| "(unreadable)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> AgentConfig {
        toml::from_str(include_str!("../../config/agent.example.toml")).unwrap()
    }

    fn remote(version: u64, settings: &[(&str, &str)]) -> RemoteConfig {
        RemoteConfig {
            version,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_centers_settings_are_laid_over_agent_toml_and_checked_whole() {
        let config = effective_config(
            &base(),
            &remote(
                4,
                &[
                    ("sync.heartbeat_secs", "30"),
                    ("web.enabled", "false"),
                    ("inbox.enabled", "false"),
                    ("pii.deny_list", "Nama Rekaan"),
                    ("log.level", "debug"),
                    ("outbox.max_bytes", "2097152"),
                ],
            ),
        )
        .unwrap();
        assert_eq!(config.sync.heartbeat_secs, 30);
        assert!(!config.web.enabled && !config.inbox.enabled);
        assert_eq!(config.pii.deny_list, vec!["Nama Rekaan".to_string()]);
        assert_eq!(config.log.level.as_deref(), Some("debug"));
        assert_eq!(config.outbox.max_bytes, 2 << 20);
        // Everything else is agent.toml's.
        assert_eq!(config.collector_addr, base().collector_addr);

        let err = effective_config(&base(), &remote(5, &[("collector_addr", "x:1")])).unwrap_err();
        assert!(err.contains("cannot be set from the center"), "{err}");
        let err =
            effective_config(&base(), &remote(5, &[("sync.heartbeat_secs", "0")])).unwrap_err();
        assert!(err.contains("1 to 86400"), "{err}");
    }

    #[test]
    fn a_refused_configuration_keeps_the_one_running_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(dir.path(), &RemoteFile::default());
        let good = Directives {
            config: Some(remote(7, &[("sync.heartbeat_secs", "45")])),
            release: None,
            release_key: None,
        };
        let outcome = fleet.on_directives(good, &base(), Timestamp(0));
        assert_eq!(outcome.config.unwrap().sync.heartbeat_secs, 45);
        assert_eq!(fleet.status().config_version, 7);
        let (loaded, file) = load_effective(dir.path(), &base());
        assert_eq!((loaded.sync.heartbeat_secs, file.version), (45, 7));

        let bad = Directives {
            config: Some(remote(8, &[("log.level", "loud")])),
            release: None,
            release_key: None,
        };
        let outcome = fleet.on_directives(bad.clone(), &base(), Timestamp(0));
        assert!(outcome.config.is_none() && outcome.status_changed);
        // Offered again (with every status), it is not judged or logged again.
        assert!(fleet
            .on_directives(bad, &base(), Timestamp(0))
            .config
            .is_none());
        let status = fleet.status();
        assert_eq!(status.config_version, 7, "the last good one runs");
        let error = status.config_error.unwrap();
        assert!(
            error.starts_with("version 8 refused") && error.contains("log.level"),
            "{error}"
        );
        assert_eq!(load_effective(dir.path(), &base()).1.version, 7);
    }

    #[test]
    fn the_first_release_key_is_trusted_and_another_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(dir.path(), &RemoteFile::default());
        let key = |k: u8| Directives {
            config: None,
            release: None,
            release_key: Some(vec![k; 32]),
        };
        assert!(
            fleet
                .on_directives(key(1), &base(), Timestamp(0))
                .status_changed
        );
        assert!(
            !fleet
                .on_directives(key(2), &base(), Timestamp(0))
                .status_changed
        );
        assert_eq!(fleet.release_key(), Some(vec![1; 32]));
        let reopened = Fleet::open(dir.path(), &RemoteFile::default());
        assert_eq!(reopened.release_key(), Some(vec![1; 32]));
    }

    fn signed_by(
        key: &ring::signature::Ed25519KeyPair,
        version: &str,
        package: &[u8],
    ) -> SignedRelease {
        SignedRelease::sign(
            &ReleaseManifest {
                version: version.into(),
                arch: ARCH.into(),
                size: package.len() as u64,
                sha256: pasopati_common::sha256(package),
                signed_at: Timestamp(0),
                downgrade_until: None,
            },
            key,
        )
    }

    fn key() -> ring::signature::Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn a_release_signed_by_another_key_is_refused_reported_and_never_fetched() {
        use ring::signature::KeyPair;
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(dir.path(), &RemoteFile::default());
        let trusted = key();
        let other = key();
        let offer = |release| Directives {
            config: None,
            release: Some(ReleaseOffer {
                release,
                health_timeout_secs: 60,
            }),
            release_key: Some(trusted.public_key().as_ref().to_vec()),
        };
        let package = b"a release".to_vec();
        let outcome = fleet.on_directives(
            offer(signed_by(&other, "99.0.0", &package)),
            &base(),
            Timestamp(0),
        );
        assert!(outcome.status_changed);
        assert_eq!(fleet.next_fetch(), None, "nothing is downloaded");
        match fleet.status().update {
            UpdateState::Refused { version, reason } => {
                assert_eq!(version, "99.0.0");
                assert!(reason.contains("not signed"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // The same release signed by the trusted key is downloaded.
        fleet.on_directives(
            offer(signed_by(&trusted, "99.0.0", &package)),
            &base(),
            Timestamp(0),
        );
        assert_eq!(
            fleet.next_fetch(),
            Some((pasopati_common::sha256(&package), 0))
        );
        // A part for another release, or from the wrong place, is not taken.
        assert_eq!(
            fleet.on_part([9; 32], 0, b"xx", Timestamp(0)),
            PartOutcome::More
        );
        assert_eq!(
            fleet.next_fetch(),
            Some((pasopati_common::sha256(&package), 0))
        );
    }

    #[test]
    fn a_download_cut_off_resumes_from_the_bytes_held() {
        use ring::signature::KeyPair;
        let dir = tempfile::tempdir().unwrap();
        let trusted = key();
        let package: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let sha = pasopati_common::sha256(&package);
        let offer = || Directives {
            config: None,
            release: Some(ReleaseOffer {
                release: signed_by(&trusted, "99.0.0", &package),
                health_timeout_secs: 60,
            }),
            release_key: Some(trusted.public_key().as_ref().to_vec()),
        };
        let fleet = Fleet::open(dir.path(), &RemoteFile::default());
        fleet.on_directives(offer(), &base(), Timestamp(0));
        assert_eq!(
            fleet.on_part(sha, 0, &package[..400], Timestamp(0)),
            PartOutcome::More
        );
        assert_eq!(fleet.next_fetch(), Some((sha, 400)));
        // The agent restarts (or the link drops and the offer comes again): it goes on at 400.
        drop(fleet);
        let fleet = Fleet::open(dir.path(), &RemoteFile::default());
        fleet.on_directives(offer(), &base(), Timestamp(0));
        assert_eq!(fleet.next_fetch(), Some((sha, 400)));
        assert_eq!(
            fleet.on_part(sha, 400, &package[400..], Timestamp(0)),
            PartOutcome::Installed("99.0.0".into())
        );
        let installed = crate::launch::versions_dir(dir.path())
            .join("99.0.0")
            .join("pasopati-agent");
        assert_eq!(std::fs::read(installed).unwrap(), package);
        let state = crate::launch::LaunchState::load(dir.path());
        assert_eq!(state.trial.map(|t| t.version), Some("99.0.0".into()));
    }
}
