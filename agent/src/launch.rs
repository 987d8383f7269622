//! Which agent executable runs, and going back when a new one is not healthy.
//!
//! The packaged executable (`/usr/bin/pasopati-agent`, root's, read-only to the service) is the
//! stable launcher. Releases the center offers are installed beside the outbox, never over it:
//! `versions/<version>/pasopati-agent` with the signed release it came as. `versions/state.json`
//! says which installed version runs ([`LaunchState`]). When `run` starts, [`decide`] picks the
//! executable: an installed version newer than the packaged one, after checking its signature
//! and hash again, is started with `exec` — the same process, so the service keeps its user,
//! sandbox and system-call filter — else the packaged one runs itself.
//!
//! A new version starts on trial. Each start counts an attempt before the `exec`; after
//! [`MAX_ATTEMPTS`] starts that did not come back healthy (it crashed at start, or was killed) the
//! launcher goes back to the version before. A trial version that runs but does not reach the
//! collector within its health timeout goes back by itself ([`Trial::overdue`]). Healthy means a
//! session welcomed by the collector that answered its status. Every step writes the state file
//! atomically (write, fsync, rename), so a crash at any point leaves a version that runs: the one
//! before until the state names the new one, and the new one's trial after.

use pasopati_common::fleet::{SignedRelease, UpdateState, Version};
use pasopati_common::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Starts a trial version may have before the launcher goes back to the version before it.
pub const MAX_ATTEMPTS: u32 = 3;
/// The exit status of an agent that stops to be started again on another version (so that
/// `Restart=on-failure` starts it again): EX_TEMPFAIL.
pub const EXIT_RESTART: u8 = 75;
/// Set by the launcher for the executable it starts: that one runs itself, whatever the state
/// says (so a mislabelled executable cannot start itself over and over).
pub const LAUNCHED_ENV: &str = "PASOPATI_AGENT_LAUNCHED";

const STATE_FILE: &str = "state.json";
const EXECUTABLE: &str = "pasopati-agent";
const SIGNED: &str = "release.bin";

/// The folder of installed versions in a data directory.
pub fn versions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("versions")
}

/// A new version on trial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub version: String,
    /// The version it replaced (`None`: the packaged executable).
    pub previous: Option<String>,
    /// Starts so far.
    pub attempts: u32,
    /// When it was installed (Unix milliseconds).
    pub installed_at: i64,
    /// How long it has to come back healthy.
    pub health_timeout_secs: u32,
}

impl Trial {
    /// Whether its time to come back healthy is over at `now`.
    pub fn overdue(&self, now: Timestamp) -> bool {
        now.0 - self.installed_at > i64::from(self.health_timeout_secs) * 1000
    }
}

/// Which installed version runs, and what became of the last update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchState {
    /// The installed version that runs (`None`: the packaged executable).
    pub current: Option<String>,
    /// A version on trial, which runs instead of `current` until it is healthy or given up.
    pub trial: Option<Trial>,
    /// The last update's outcome, reported to the center.
    pub last: Option<UpdateState>,
}

/// An update step that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the update state {} cannot be read ({reason}); it is set aside and the packaged version runs", path.display())]
    State { reason: String, path: PathBuf },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LaunchError + 'a {
    move |source| LaunchError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl LaunchState {
    /// Reads the state of `data_dir` (the default when there is none). A state that cannot be
    /// read is moved aside, so the packaged version runs rather than nothing.
    pub fn load(data_dir: &Path) -> LaunchState {
        let path = versions_dir(data_dir).join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => return LaunchState::default(),
        };
        match serde_json::from_slice(&bytes) {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(
                    "{}",
                    LaunchError::State {
                        reason: e.to_string(),
                        path: path.clone()
                    }
                );
                let _ = pasopati_common::storage::move_aside(&path);
                LaunchState::default()
            }
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), LaunchError> {
        let dir = versions_dir(data_dir);
        pasopati_common::storage::create_private_dir(&dir).map_err(io("cannot create", &dir))?;
        let path = dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        pasopati_common::pki::write_file_atomic(&path, &bytes, 0o600).map_err(|e| LaunchError::Io {
            what: "cannot write",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// The version that should run now, before counting this start: the trial's, else the
    /// current one (`None`: the packaged executable).
    pub fn wanted(&self) -> Option<&str> {
        match &self.trial {
            Some(t) => Some(&t.version),
            None => self.current.as_deref(),
        }
    }
}

/// What [`decide`] chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// This executable runs the agent.
    Here,
    /// Start this installed executable instead, with `exec`.
    Exec { version: String, path: PathBuf },
}

/// The rule, over the state alone (the caller checks the executable): counts this start of a
/// trial and gives a trial up after [`MAX_ATTEMPTS`], and prefers the packaged executable when it
/// is as new as or newer than the installed version (a package upgraded by hand wins).
/// Returns the state to save first, and the version to start (`None`: this executable).
pub fn plan(mut state: LaunchState, packaged: Version) -> (LaunchState, Option<String>) {
    match state.trial.take() {
        Some(trial) if trial.attempts >= MAX_ATTEMPTS => {
            state.last = Some(UpdateState::RolledBack {
                version: trial.version.clone(),
                reason: format!(
                    "started {} times without coming back healthy (it crashed or was stopped at start)",
                    trial.attempts
                ),
            });
            state.current = trial.previous;
        }
        Some(mut trial) => {
            trial.attempts += 1;
            state.trial = Some(trial);
        }
        None => {}
    }
    let wanted = state
        .wanted()
        .filter(|v| v.parse::<Version>().is_ok_and(|v| v > packaged))
        .map(str::to_owned);
    (state, wanted)
}

/// Picks the executable for `run` in `data_dir` and saves the state first (see the module
/// documentation). `release_key` is the key the agent trusts; an installed executable whose
/// signature or hash no longer checks is not started (the state goes back, the refusal is
/// recorded), so a file changed on disk never runs.
pub fn decide(data_dir: &Path, release_key: Option<&[u8]>) -> Result<Launch, LaunchError> {
    if std::env::var_os(LAUNCHED_ENV).is_some() {
        return Ok(Launch::Here);
    }
    let packaged: Version = pasopati_common::version().parse().unwrap_or(Version {
        major: 0,
        minor: 0,
        patch: 0,
    });
    let before = LaunchState::load(data_dir);
    let (mut state, wanted) = plan(before.clone(), packaged);
    if let (Some(trial), None) = (&before.trial, &state.trial) {
        tracing::error!(version = %trial.version, attempts = trial.attempts,
            "the new version did not come back healthy after {} starts; going back to the version before it",
            trial.attempts);
    }
    let Some(version) = wanted else {
        state.save(data_dir)?;
        return Ok(Launch::Here);
    };
    match verify_installed(data_dir, &version, release_key) {
        Ok(path) => {
            state.save(data_dir)?;
            Ok(Launch::Exec { version, path })
        }
        Err(reason) => {
            tracing::error!(%version, "the installed version is not started: {reason}");
            if state.trial.as_ref().is_some_and(|t| t.version == version) {
                let trial = state.trial.take();
                state.current = trial.and_then(|t| t.previous);
            } else {
                state.current = None;
            }
            state.last = Some(UpdateState::Refused { version, reason });
            state.save(data_dir)?;
            // What is left may be an older installed version; decide again over it.
            decide(data_dir, release_key)
        }
    }
}

/// The executable of installed `version`, if its signed release still verifies with `key` and
/// the file still has the signed hash.
fn verify_installed(data_dir: &Path, version: &str, key: Option<&[u8]>) -> Result<PathBuf, String> {
    let dir = versions_dir(data_dir).join(version);
    let key = key.ok_or("no release key is known")?;
    let signed: SignedRelease = std::fs::read(dir.join(SIGNED))
        .map_err(|e| format!("its signed release cannot be read: {e}"))
        .and_then(|b| pasopati_common::frame::decode_value(&b).map_err(|e| e.to_string()))?;
    let manifest = signed.verify(key).map_err(|e| e.to_string())?;
    if manifest.version != version {
        return Err(format!("it is signed as {}", manifest.version));
    }
    let path = dir.join(EXECUTABLE);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    manifest.check_package(&bytes).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Installs a verified package as `version` and puts it on trial, replacing the version that
/// runs now; the next start runs it. The package was checked against `signed` by the caller.
pub fn install(
    data_dir: &Path,
    signed: &SignedRelease,
    version: &str,
    package: &[u8],
    health_timeout_secs: u32,
    now: Timestamp,
) -> Result<(), LaunchError> {
    let dir = versions_dir(data_dir).join(version);
    pasopati_common::storage::create_private_dir(&dir).map_err(io("cannot create", &dir))?;
    let write = |name: &str, bytes: &[u8], mode: u32| {
        let path = dir.join(name);
        pasopati_common::pki::write_file_atomic(&path, bytes, mode).map_err(|e| LaunchError::Io {
            what: "cannot write",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    };
    write(EXECUTABLE, package, 0o700)?;
    write(SIGNED, &pasopati_common::frame::encode_value(signed), 0o600)?;
    let mut state = LaunchState::load(data_dir);
    let running = running_installed(&state);
    state.trial = Some(Trial {
        version: version.to_owned(),
        previous: running,
        attempts: 0,
        installed_at: now.0,
        health_timeout_secs,
    });
    state.last = Some(UpdateState::Installed {
        version: version.to_owned(),
    });
    state.save(data_dir)?;
    remove_others(data_dir, &state);
    Ok(())
}

/// The installed version running now, if this is one (else the packaged executable runs).
fn running_installed(state: &LaunchState) -> Option<String> {
    let here = pasopati_common::version();
    [
        state.trial.as_ref().map(|t| t.version.as_str()),
        state.current.as_deref(),
    ]
    .into_iter()
    .flatten()
    .find(|v| *v == here)
    .map(str::to_owned)
}

/// Deletes installed versions the state no longer names (the two it may still need stay).
fn remove_others(data_dir: &Path, state: &LaunchState) {
    let keep: Vec<&str> = [
        state.current.as_deref(),
        state.trial.as_ref().map(|t| t.version.as_str()),
        state.trial.as_ref().and_then(|t| t.previous.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let Ok(entries) = std::fs::read_dir(versions_dir(data_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !keep.contains(&name.as_str()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Called by a running agent once it is healthy: a trial of this version ends as its current
/// one. Returns whether a trial ended.
pub fn healthy(data_dir: &Path) -> Result<bool, LaunchError> {
    let mut state = LaunchState::load(data_dir);
    let here = pasopati_common::version();
    match &state.trial {
        Some(t) if t.version == here => {
            state.current = Some(here.to_owned());
            state.trial = None;
            state.last = Some(UpdateState::Healthy {
                version: here.to_owned(),
            });
            state.save(data_dir)?;
            remove_others(data_dir, &state);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Called by a running trial version whose time ran out: the version before runs from the next
/// start, and the reason is recorded for the center.
pub fn give_up(data_dir: &Path, reason: &str) -> Result<(), LaunchError> {
    let mut state = LaunchState::load(data_dir);
    if let Some(trial) = state.trial.take() {
        state.current = trial.previous;
        state.last = Some(UpdateState::RolledBack {
            version: trial.version,
            reason: reason.to_owned(),
        });
        state.save(data_dir)?;
    }
    Ok(())
}

/// For `run`: picks the executable for `data_dir` and, when it is an installed release, starts
/// it in place of this process. Returns when this executable is to run the agent (also when the
/// hand-over failed, which is logged: the packaged version is better than none).
pub fn hand_over(data_dir: &Path) {
    let key = crate::fleet::trusted_release_key(data_dir);
    match decide(data_dir, key.as_deref()) {
        Ok(Launch::Here) => {}
        Ok(Launch::Exec { version, path }) => {
            tracing::info!(%version, executable = %path.display(), "starting the installed release");
            let e = exec(&version, &path);
            tracing::error!(%version, "cannot start the installed release ({e}); this version runs instead");
            let _ = give_up(data_dir, &format!("cannot be started: {e}"));
        }
        Err(e) => tracing::error!("cannot read or write the update state ({e}); this version runs"),
    }
}

/// For every other command on an enrolled data directory (`report`, `status`): the command is
/// answered by the executable of the version the daemon runs, so the command line and the
/// daemon always speak the same control protocol. Nothing is counted or changed here; an
/// installed executable that does not verify is not started, and this one answers.
pub fn hand_over_command(data_dir: &Path) {
    if std::env::var_os(LAUNCHED_ENV).is_some() {
        return;
    }
    let packaged: Version = match pasopati_common::version().parse() {
        Ok(v) => v,
        Err(_) => return,
    };
    let state = LaunchState::load(data_dir);
    let running = match &state.trial {
        Some(t) if t.attempts < MAX_ATTEMPTS => Some(t.version.clone()),
        Some(t) => t.previous.clone(),
        None => state.current.clone(),
    };
    let Some(version) = running.filter(|v| v.parse::<Version>().is_ok_and(|v| v > packaged)) else {
        return;
    };
    let key = crate::fleet::trusted_release_key(data_dir);
    if let Ok(path) = verify_installed(data_dir, &version, key.as_deref()) {
        let e = exec(&version, &path);
        tracing::warn!(%version, "cannot hand the command to the installed release ({e}); this version answers");
    }
}

/// Starts `path` in place of this process with the same arguments. Returns only on failure.
pub fn exec(version: &str, path: &Path) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::Command::new(path)
        .args(args)
        .env(LAUNCHED_ENV, version)
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    fn trial(version: &str, previous: Option<&str>, attempts: u32) -> LaunchState {
        LaunchState {
            current: previous.map(str::to_owned),
            trial: Some(Trial {
                version: version.into(),
                previous: previous.map(str::to_owned),
                attempts,
                installed_at: 0,
                health_timeout_secs: 60,
            }),
            last: None,
        }
    }

    #[test]
    fn a_trial_is_started_until_its_attempts_run_out_then_the_version_before_runs() {
        let mut state = trial("0.3.0", Some("0.2.0"), 0);
        for attempt in 1..=MAX_ATTEMPTS {
            let (next, wanted) = plan(state, v("0.1.0"));
            assert_eq!(wanted.as_deref(), Some("0.3.0"));
            assert_eq!(next.trial.as_ref().unwrap().attempts, attempt);
            state = next;
        }
        let (next, wanted) = plan(state, v("0.1.0"));
        assert_eq!(
            wanted.as_deref(),
            Some("0.2.0"),
            "back to the version before"
        );
        assert_eq!(next.trial, None);
        assert!(matches!(
            next.last,
            Some(UpdateState::RolledBack { ref version, .. }) if version == "0.3.0"
        ));
        // A trial over the packaged executable goes back to it.
        let (next, wanted) = plan(trial("0.3.0", None, MAX_ATTEMPTS), v("0.1.0"));
        assert_eq!((wanted, next.current), (None, None));
    }

    #[test]
    fn the_packaged_executable_wins_when_it_is_as_new() {
        let state = LaunchState {
            current: Some("0.2.0".into()),
            ..LaunchState::default()
        };
        assert_eq!(plan(state.clone(), v("0.1.0")).1.as_deref(), Some("0.2.0"));
        assert_eq!(plan(state.clone(), v("0.2.0")).1, None);
        assert_eq!(plan(state, v("0.3.0")).1, None);
    }

    #[test]
    fn an_overdue_trial_is_one_past_its_health_timeout() {
        let t = trial("0.2.0", None, 1).trial.unwrap();
        assert!(!t.overdue(Timestamp(60_000)));
        assert!(t.overdue(Timestamp(60_001)));
    }

    #[test]
    fn an_installed_executable_changed_on_disk_is_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        let package = b"#!/bin/sh\nexit 0\n".to_vec();
        let manifest = pasopati_common::fleet::ReleaseManifest {
            version: "99.0.0".into(),
            arch: pasopati_common::fleet::ARCH.into(),
            size: package.len() as u64,
            sha256: pasopati_common::sha256(&package),
            signed_at: Timestamp(0),
            downgrade_until: None,
        };
        let signed = SignedRelease::sign(&manifest, &key);
        install(dir.path(), &signed, "99.0.0", &package, 60, Timestamp(0)).unwrap();
        assert_eq!(
            verify_installed(dir.path(), "99.0.0", Some(&public)),
            Ok(versions_dir(dir.path()).join("99.0.0").join(EXECUTABLE))
        );
        std::fs::write(
            versions_dir(dir.path()).join("99.0.0").join(EXECUTABLE),
            b"#!/bin/sh\nexit 1\n",
        )
        .unwrap();
        let launch = decide(dir.path(), Some(&public)).unwrap();
        assert_eq!(launch, Launch::Here);
        let state = LaunchState::load(dir.path());
        assert_eq!(state.trial, None);
        assert!(
            matches!(state.last, Some(UpdateState::Refused { ref reason, .. }) if reason.contains("SHA-256")),
            "{state:?}"
        );
    }
}
