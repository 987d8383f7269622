//! Running the fleet from the center, over the sync session (protocol 2): what an agent runs
//! ([`AgentStatus`]), the settings the center wants it to run with ([`RemoteConfig`]), and the
//! releases it may install ([`SignedRelease`]). Both sides apply the same rules from here: the
//! collector before it stores a setting or a release, the agent before it applies or installs
//! one.
//!
//! After `Welcome`, an agent of protocol 2 sends [`AgentStatus`] (and again with every
//! heartbeat and whenever it changes); the collector answers each with [`Directives`]: the
//! configuration the site should run, a release it should install, and the key releases are
//! signed with. A download is pulled one part at a time with `Fetch`, only while no report
//! waits, the way attachments are pushed.

use crate::Timestamp;
use bincode::{Decode, Encode};

/// The largest part of a release one `ReleasePart` carries.
pub const RELEASE_PART_BYTES: usize = 256 * 1024;
/// The largest release package accepted: 256 MiB.
pub const MAX_RELEASE_BYTES: u64 = 256 * 1024 * 1024;
/// The longest text a status, a reason or a setting's value may hold.
pub const MAX_TEXT_CHARS: usize = 1000;

/// An agent version, `MAJOR.MINOR.PATCH` (a `-suffix` is kept in the text but not compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// A version that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a version (MAJOR.MINOR.PATCH, such as 0.2.0)")]
pub struct VersionError(pub String);

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(text: &str) -> Result<Version, VersionError> {
        let bad = || VersionError(text.chars().take(64).collect());
        let core = text.split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.').map(|p| {
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                Err(bad())
            } else {
                p.parse::<u32>().map_err(|_| bad())
            }
        });
        let version = Version {
            major: parts.next().ok_or_else(bad)??,
            minor: parts.next().ok_or_else(bad)??,
            patch: parts.next().ok_or_else(bad)??,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What precedes the version in an executable's version slot. It occurs once in a built
/// executable, so [`stamp_version`] can find the slot.
pub const VERSION_MARKER: &[u8; 24] = b"\0PASOPATI-VERSION-SLOT:\0";
/// The slot's size: the marker and up to 40 bytes of version.
pub const VERSION_SLOT_BYTES: usize = 64;

/// The slot holding `version` (truncated to fit), built at compile time.
pub const fn version_slot(version: &str) -> [u8; VERSION_SLOT_BYTES] {
    let mut slot = [0u8; VERSION_SLOT_BYTES];
    let mut i = 0;
    while i < VERSION_MARKER.len() {
        slot[i] = VERSION_MARKER[i];
        i += 1;
    }
    let bytes = version.as_bytes();
    let mut j = 0;
    while j < bytes.len() && VERSION_MARKER.len() + j < VERSION_SLOT_BYTES - 1 {
        slot[VERSION_MARKER.len() + j] = bytes[j];
        j += 1;
    }
    slot
}

/// The version in a slot, read through an opaque reference (`black_box`) so that what the file
/// holds at run time counts, not what the compiler saw (the stamping test of
/// `tests/tests/fleet.rs` runs a stamped executable and checks what it reports). `None` for an
/// empty slot.
pub fn slot_version(slot: &[u8; VERSION_SLOT_BYTES]) -> Option<String> {
    let bytes: [u8; VERSION_SLOT_BYTES] = *std::hint::black_box(slot);
    let text = &bytes[VERSION_MARKER.len()..];
    let len = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    std::str::from_utf8(&text[..len])
        .ok()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The marker as [`stamp_version`] looks for it. It is kept masked here and unmasked when
/// needed, so that the only copy of the plain marker in an executable is its slot.
fn marker() -> Vec<u8> {
    const MASK: u8 = 0x5a;
    const MASKED: [u8; 24] = {
        let mut m = [0u8; 24];
        let mut i = 0;
        while i < 24 {
            m[i] = VERSION_MARKER[i] ^ MASK;
            i += 1;
        }
        m
    };
    std::hint::black_box(MASKED)
        .iter()
        .map(|b| b ^ MASK)
        .collect()
}

/// Writes `version` into the version slot of an executable's bytes: how a release is built at
/// another version without compiling it again. Refused unless the slot occurs exactly once and
/// the version fits and reads as one.
pub fn stamp_version(executable: &mut [u8], version: &str) -> Result<(), String> {
    version.parse::<Version>().map_err(|e| e.to_string())?;
    let room = VERSION_SLOT_BYTES - VERSION_MARKER.len() - 1;
    if version.len() > room {
        return Err(format!("the version is longer than {room} bytes"));
    }
    let marker = marker();
    let found: Vec<usize> = executable
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker.as_slice())
        .map(|(i, _)| i)
        .collect();
    let [at] = found[..] else {
        return Err(format!(
            "the executable has {} version slots, not one: is it a PASOPATI agent?",
            found.len()
        ));
    };
    let slot = &mut executable[at + VERSION_MARKER.len()..at + VERSION_SLOT_BYTES];
    slot.fill(0);
    slot[..version.len()].copy_from_slice(version.as_bytes());
    Ok(())
}

/// The processor architecture of this build, as releases name it (`x86_64`, `aarch64`).
pub const ARCH: &str = std::env::consts::ARCH;

/// A log level the center may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// A setting the center may change on a site, named by its key in `agent.toml` (dotted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `sync.heartbeat_secs`: seconds between heartbeats, 1 to 86,400.
    HeartbeatSecs(u64),
    /// `outbox.max_bytes`: bytes of unsent reports the outbox may hold, at least 1 MiB.
    OutboxMaxBytes(u64),
    /// `pii.deny_list`: terms that must never leave the site, separated by `;` (they replace
    /// the site's own list while set; an empty value clears it).
    PiiDenyList(Vec<String>),
    /// `inbox.enabled`: whether the inbox folder is watched.
    InboxEnabled(bool),
    /// `web.enabled`: whether the local web form is served.
    WebEnabled(bool),
    /// `log.level`: how much the agent logs.
    LogLevel(LogLevel),
}

/// Every key the center may set, with what it takes, for messages and `--help`.
pub const SETTING_KEYS: &[(&str, &str)] = &[
    (
        "sync.heartbeat_secs",
        "seconds between heartbeats, 1 to 86400",
    ),
    (
        "outbox.max_bytes",
        "bytes of unsent reports, at least 1048576",
    ),
    ("pii.deny_list", "terms separated by `;` (empty clears)"),
    ("inbox.enabled", "true or false"),
    ("web.enabled", "true or false"),
    ("log.level", "error, warn, info or debug"),
];

/// A setting that cannot be applied, said so an admin can correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("`{0}` cannot be set from the center; the keys are: {keys}", keys = SETTING_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "))]
    UnknownKey(String),
    #[error("`{key}={value}`: {key} takes {takes}")]
    BadValue {
        key: String,
        value: String,
        takes: &'static str,
    },
    #[error("`{0}` is set twice")]
    Repeated(String),
}

impl Setting {
    /// Reads `key=value` as typed on the command line or carried on the wire.
    pub fn parse(key: &str, value: &str) -> Result<Setting, SettingError> {
        let takes = SETTING_KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| *t)
            .ok_or_else(|| SettingError::UnknownKey(key.chars().take(64).collect()))?;
        let bad = || SettingError::BadValue {
            key: key.to_owned(),
            value: value.chars().take(64).collect(),
            takes,
        };
        let value = value.trim();
        if value.chars().count() > MAX_TEXT_CHARS || value.chars().any(char::is_control) {
            return Err(bad());
        }
        let boolean = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad()),
        };
        Ok(match key {
            "sync.heartbeat_secs" => match value.parse::<u64>() {
                Ok(n) if (1..=86_400).contains(&n) => Setting::HeartbeatSecs(n),
                _ => return Err(bad()),
            },
            "outbox.max_bytes" => match value.parse::<u64>() {
                Ok(n) if n >= 1 << 20 => Setting::OutboxMaxBytes(n),
                _ => return Err(bad()),
            },
            "pii.deny_list" => Setting::PiiDenyList(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            "inbox.enabled" => Setting::InboxEnabled(boolean()?),
            "web.enabled" => Setting::WebEnabled(boolean()?),
            "log.level" => Setting::LogLevel(match value {
                "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "info" => LogLevel::Info,
                "debug" => LogLevel::Debug,
                _ => return Err(bad()),
            }),
            _ => return Err(SettingError::UnknownKey(key.to_owned())),
        })
    }

    /// The key, as in `agent.toml` (dotted).
    pub fn key(&self) -> &'static str {
        match self {
            Setting::HeartbeatSecs(_) => "sync.heartbeat_secs",
            Setting::OutboxMaxBytes(_) => "outbox.max_bytes",
            Setting::PiiDenyList(_) => "pii.deny_list",
            Setting::InboxEnabled(_) => "inbox.enabled",
            Setting::WebEnabled(_) => "web.enabled",
            Setting::LogLevel(_) => "log.level",
        }
    }

    /// The value as text, the form [`Setting::parse`] reads.
    pub fn value(&self) -> String {
        match self {
            Setting::HeartbeatSecs(n) | Setting::OutboxMaxBytes(n) => n.to_string(),
            Setting::PiiDenyList(terms) => terms.join(";"),
            Setting::InboxEnabled(b) | Setting::WebEnabled(b) => b.to_string(),
            Setting::LogLevel(level) => level.as_str().to_owned(),
        }
    }

    /// The value as it would be written in `agent.toml`.
    pub fn toml_value(&self) -> toml::Value {
        match self {
            Setting::HeartbeatSecs(n) | Setting::OutboxMaxBytes(n) => {
                toml::Value::Integer(i64::try_from(*n).unwrap_or(i64::MAX))
            }
            Setting::PiiDenyList(terms) => {
                toml::Value::Array(terms.iter().cloned().map(toml::Value::String).collect())
            }
            Setting::InboxEnabled(b) | Setting::WebEnabled(b) => toml::Value::Boolean(*b),
            Setting::LogLevel(level) => toml::Value::String(level.as_str().to_owned()),
        }
    }

    /// Writes the setting into a parsed `agent.toml`, creating its table if needed.
    pub fn write_into(&self, doc: &mut toml::Table) {
        let (table, field) = self.key().split_once('.').unwrap_or(("", self.key()));
        let entry = doc
            .entry(table.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        if let toml::Value::Table(t) = entry {
            t.insert(field.to_owned(), self.toml_value());
        }
    }

    /// Whether the value may be shown in lists and logs (the deny list names people: only how
    /// many terms it has is shown).
    pub fn shown(&self) -> String {
        match self {
            Setting::PiiDenyList(terms) => format!("({} terms)", terms.len()),
            other => other.value(),
        }
    }
}

/// The settings the center wants a site to run with. `version` rises whenever they change for
/// the site; the agent reports the version it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct RemoteConfig {
    pub version: u64,
    /// `(key, value)` pairs, each key once, in the form [`Setting::parse`] reads.
    pub settings: Vec<(String, String)>,
}

impl RemoteConfig {
    /// The settings, typed; the first that cannot be applied refuses the whole configuration.
    pub fn check(&self) -> Result<Vec<Setting>, SettingError> {
        let mut seen = std::collections::BTreeSet::new();
        self.settings
            .iter()
            .map(|(key, value)| {
                if !seen.insert(key.as_str()) {
                    return Err(SettingError::Repeated(key.clone()));
                }
                Setting::parse(key, value)
            })
            .collect()
    }
}

/// What a signed release is: the package's version, architecture, size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ReleaseManifest {
    pub version: String,
    pub arch: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub signed_at: Timestamp,
    /// Until when (if at all) an agent on a higher version may install this one: a rollback
    /// the key's holder allowed explicitly. Without it, an agent never goes down a version.
    pub downgrade_until: Option<Timestamp>,
}

/// A manifest and its Ed25519 signature by the center's release key.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SignedRelease {
    /// The encoded [`ReleaseManifest`]; the signature covers exactly these bytes.
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why a release is not installed. Refusals are logged by the agent and reported to the
/// center in its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseRefusal {
    #[error("the release is not signed by this site's release key")]
    BadSignature,
    #[error("the release's manifest cannot be read")]
    BadManifest,
    #[error("the release is for {got}, this machine is {want}")]
    WrongArch { got: String, want: String },
    #[error("the release {offered} is not newer than {running}, and no rollback to it was signed")]
    Downgrade { offered: String, running: String },
    #[error("the package's SHA-256 does not match its signed manifest")]
    WrongHash,
    #[error("the package is {got} bytes, its signed manifest says {want}")]
    WrongSize { got: u64, want: u64 },
    #[error("the release's version is unreadable: {0}")]
    BadVersion(#[from] VersionError),
    #[error("no release key is known to this agent yet")]
    NoKey,
}

impl SignedRelease {
    /// Signs `manifest` with an Ed25519 key (PKCS#8).
    pub fn sign(
        manifest: &ReleaseManifest,
        key: &ring::signature::Ed25519KeyPair,
    ) -> SignedRelease {
        let manifest = crate::frame::encode_value(manifest);
        let signature = key.sign(&manifest).as_ref().to_vec();
        SignedRelease {
            manifest,
            signature,
        }
    }

    /// The manifest, if `public_key` (32 bytes, Ed25519) signed it.
    pub fn verify(&self, public_key: &[u8]) -> Result<ReleaseManifest, ReleaseRefusal> {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
            .verify(&self.manifest, &self.signature)
            .map_err(|_| ReleaseRefusal::BadSignature)?;
        crate::frame::decode_value(&self.manifest).map_err(|_| ReleaseRefusal::BadManifest)
    }
}

impl ReleaseManifest {
    /// The version, read.
    pub fn parsed_version(&self) -> Result<Version, ReleaseRefusal> {
        Ok(self.version.parse()?)
    }

    /// Whether an agent running `running` on `arch` may install this release at `now`: the
    /// same architecture, and a higher version unless a signed rollback allows a lower one
    /// (the same version is a no-op, never an install).
    pub fn check_install(
        &self,
        running: Version,
        arch: &str,
        now: Timestamp,
    ) -> Result<Version, ReleaseRefusal> {
        if self.arch != arch {
            return Err(ReleaseRefusal::WrongArch {
                got: self.arch.chars().take(32).collect(),
                want: arch.to_owned(),
            });
        }
        let offered = self.parsed_version()?;
        let downgrade_allowed = self.downgrade_until.is_some_and(|until| now <= until);
        if offered > running || (offered < running && downgrade_allowed) {
            Ok(offered)
        } else {
            Err(ReleaseRefusal::Downgrade {
                offered: offered.to_string(),
                running: running.to_string(),
            })
        }
    }

    /// Whether `package` is the package this manifest describes.
    pub fn check_package(&self, package: &[u8]) -> Result<(), ReleaseRefusal> {
        if package.len() as u64 != self.size {
            return Err(ReleaseRefusal::WrongSize {
                got: package.len() as u64,
                want: self.size,
            });
        }
        if crate::sha256(package) != self.sha256 {
            return Err(ReleaseRefusal::WrongHash);
        }
        Ok(())
    }
}

/// A release the center asks an agent to install.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ReleaseOffer {
    pub release: SignedRelease,
    /// How long the new version has to report healthy before the agent goes back by itself.
    pub health_timeout_secs: u32,
}

/// Where an agent's update stands, as it reports it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UpdateState {
    /// Nothing to do, or nothing offered.
    Idle,
    /// Fetching `version`: `received` of `size` bytes held.
    Downloading {
        version: String,
        received: u64,
        size: u64,
    },
    /// `version` is installed and the agent is restarting into it.
    Installed { version: String },
    /// `version` runs and came back healthy.
    Healthy { version: String },
    /// `version` did not come back healthy; the agent returned to the version before it.
    RolledBack { version: String, reason: String },
    /// `version` was not installed.
    Refused { version: String, reason: String },
}

impl UpdateState {
    /// The state's name, as `rollout status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            UpdateState::Idle => "idle",
            UpdateState::Downloading { .. } => "downloading",
            UpdateState::Installed { .. } => "installed",
            UpdateState::Healthy { .. } => "healthy",
            UpdateState::RolledBack { .. } => "rolled_back",
            UpdateState::Refused { .. } => "refused",
        }
    }

    /// The version the state is about, if any.
    pub fn version(&self) -> Option<&str> {
        match self {
            UpdateState::Idle => None,
            UpdateState::Downloading { version, .. }
            | UpdateState::Installed { version }
            | UpdateState::Healthy { version }
            | UpdateState::RolledBack { version, .. }
            | UpdateState::Refused { version, .. } => Some(version),
        }
    }
}

/// What an agent runs and where its configuration and update stand.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AgentStatus {
    pub agent_version: String,
    pub arch: String,
    /// The version of the center's configuration the agent runs (0: none yet).
    pub config_version: u64,
    /// Why the last configuration offered was not applied, if it was not.
    pub config_error: Option<String>,
    pub update: UpdateState,
    /// SHA-256 of the release key the agent holds, if any.
    pub release_key: Option<[u8; 32]>,
}

impl AgentStatus {
    /// Whether every field lies in its bounds; the collector refuses a status that does not.
    pub fn check(&self) -> Result<(), String> {
        let short = |s: &str| s.chars().count() <= MAX_TEXT_CHARS;
        let texts = [
            Some(self.agent_version.as_str()),
            Some(self.arch.as_str()),
            self.config_error.as_deref(),
            self.update.version(),
            match &self.update {
                UpdateState::RolledBack { reason, .. } | UpdateState::Refused { reason, .. } => {
                    Some(reason.as_str())
                }
                _ => None,
            },
        ];
        if texts.iter().flatten().any(|t| !short(t)) {
            return Err(format!("a text is over {MAX_TEXT_CHARS} characters"));
        }
        if self.agent_version.is_empty() || self.agent_version.chars().count() > 64 {
            return Err("agent_version must be 1 to 64 characters".into());
        }
        if let UpdateState::Downloading { received, size, .. } = &self.update {
            if received > size || *size > MAX_RELEASE_BYTES {
                return Err("a download's progress is out of bounds".into());
            }
        }
        Ok(())
    }
}

/// The center's answer to an [`AgentStatus`]: what it wants of the agent now.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Directives {
    /// The configuration the site should run (sent when it differs from the reported one).
    pub config: Option<RemoteConfig>,
    /// A release to install (while a rollout includes the site).
    pub release: Option<ReleaseOffer>,
    /// The center's release key (Ed25519, 32 bytes), for an agent that holds none.
    pub release_key: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ring::signature::Ed25519KeyPair {
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn manifest(version: &str, package: &[u8]) -> ReleaseManifest {
        ReleaseManifest {
            version: version.into(),
            arch: ARCH.into(),
            size: package.len() as u64,
            sha256: crate::sha256(package),
            signed_at: Timestamp(1_800_000_000_000),
            downgrade_until: None,
        }
    }

    const NOW: Timestamp = Timestamp(1_800_000_100_000);

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0") > v("0.99.99"));
        assert_eq!(v("0.2.0-rc1"), v("0.2.0"));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1..2",
            "-1.0.0",
            "1.0.99999999999",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_release_signed_by_the_key_installs_and_anything_else_is_refused() {
        let key = key();
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        let package = b"\x7fELF a new agent".to_vec();
        let signed = SignedRelease::sign(&manifest("0.2.0", &package), &key);
        let m = signed.verify(&public).unwrap();
        assert_eq!(m.check_install(v("0.1.0"), ARCH, NOW), Ok(v("0.2.0")));
        assert_eq!(m.check_package(&package), Ok(()));

        // Another key, a changed manifest, a tampered package.
        let other = ring::signature::KeyPair::public_key(&self::key())
            .as_ref()
            .to_vec();
        assert_eq!(signed.verify(&other), Err(ReleaseRefusal::BadSignature));
        let mut forged = signed.clone();
        let mut lifted = manifest("0.2.0", &package);
        lifted.version = "9.0.0".into();
        forged.manifest = crate::frame::encode_value(&lifted);
        assert_eq!(forged.verify(&public), Err(ReleaseRefusal::BadSignature));
        let mut tampered = package.clone();
        tampered[1] ^= 1;
        assert_eq!(m.check_package(&tampered), Err(ReleaseRefusal::WrongHash));
        assert!(matches!(
            m.check_package(&package[1..]),
            Err(ReleaseRefusal::WrongSize { .. })
        ));

        // Another architecture; the same or a lower version.
        assert!(matches!(
            m.check_install(v("0.1.0"), "riscv64", NOW),
            Err(ReleaseRefusal::WrongArch { .. })
        ));
        for running in ["0.2.0", "0.3.0"] {
            assert!(matches!(
                m.check_install(v(running), ARCH, NOW),
                Err(ReleaseRefusal::Downgrade { .. })
            ));
        }
    }

    #[test]
    fn a_lower_version_installs_only_while_its_signed_rollback_lasts() {
        let key = key();
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        let mut back = manifest("0.1.0", b"old agent");
        back.downgrade_until = Some(Timestamp(NOW.0 + 1000));
        let m = SignedRelease::sign(&back, &key).verify(&public).unwrap();
        assert_eq!(m.check_install(v("0.2.0"), ARCH, NOW), Ok(v("0.1.0")));
        assert!(matches!(
            m.check_install(v("0.2.0"), ARCH, Timestamp(NOW.0 + 1001)),
            Err(ReleaseRefusal::Downgrade { .. })
        ));
        assert!(
            m.check_install(v("0.1.0"), ARCH, NOW).is_err(),
            "the same version is never installed again"
        );
    }

    #[test]
    fn settings_are_read_with_their_bounds_and_written_as_in_agent_toml() {
        assert_eq!(
            Setting::parse("sync.heartbeat_secs", "30"),
            Ok(Setting::HeartbeatSecs(30))
        );
        for (key, value) in [
            ("sync.heartbeat_secs", "0"),
            ("sync.heartbeat_secs", "thirty"),
            ("outbox.max_bytes", "1000"),
            ("web.enabled", "yes"),
            ("log.level", "trace"),
            ("log.level", "info\nx"),
        ] {
            let err = Setting::parse(key, value).unwrap_err();
            assert!(
                matches!(err, SettingError::BadValue { .. }),
                "{key}={value}: {err}"
            );
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = Setting::parse("sync.collector_addr", "evil:1").unwrap_err();
        assert!(err.to_string().contains("sync.heartbeat_secs"), "{err}");

        let deny = Setting::parse("pii.deny_list", "Nama Rekaan; Nama Lain ;").unwrap();
        assert_eq!(
            deny,
            Setting::PiiDenyList(vec!["Nama Rekaan".into(), "Nama Lain".into()])
        );
        assert_eq!(deny.shown(), "(2 terms)");
        let mut doc: toml::Table = "[sync]\nheartbeat_secs = 60\n".parse().unwrap();
        Setting::HeartbeatSecs(30).write_into(&mut doc);
        deny.write_into(&mut doc);
        Setting::WebEnabled(false).write_into(&mut doc);
        let text = toml::to_string(&doc).unwrap();
        assert!(text.contains("heartbeat_secs = 30"), "{text}");
        assert!(
            text.contains("deny_list = [\"Nama Rekaan\", \"Nama Lain\"]"),
            "{text}"
        );
        assert!(text.contains("[web]\nenabled = false"), "{text}");

        let twice = RemoteConfig {
            version: 3,
            settings: vec![
                ("web.enabled".into(), "true".into()),
                ("web.enabled".into(), "false".into()),
            ],
        };
        assert_eq!(
            twice.check(),
            Err(SettingError::Repeated("web.enabled".into()))
        );
    }
}
