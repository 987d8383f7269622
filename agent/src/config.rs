//! The agent's configuration file, `agent.toml` in its data directory, written by `enroll`.

use pasopati_common::backoff::BackoffConfig;
use pasopati_common::config_file::{self, CheckedConfig, ConfigFileError};
use pasopati_common::localtime::Zone;
use pasopati_common::pii::PiiConfig;
use pasopati_common::SiteId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "agent.toml";

/// Everything the agent needs to know that is not in its certificate or outbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The site this agent speaks for. Informational: the collector reads the site from the
    /// certificate.
    pub site_id: SiteId,
    /// `host:port` of the collector's QUIC listener.
    pub collector_addr: String,
    /// Where the site is: its time zone, for every time shown to people.
    #[serde(default)]
    pub site: SiteSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    /// The PII guard: `mode` (`block` or `redact`) and a `deny_list` of terms.
    #[serde(default)]
    pub pii: PiiConfig,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub inbox: InboxSettings,
    #[serde(default)]
    pub web: WebSettings,
    #[serde(default)]
    pub attachments: AttachmentSettings,
    #[serde(default)]
    pub log: LogSettings,
}

/// The agent's own log.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `error`, `warn`, `info` or `debug`; unset, `PASOPATI_LOG` or `info` decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// The site itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSettings {
    /// `WIB` (UTC+7), `WITA` (UTC+8) or `WIT` (UTC+9): times in the form, `status` and the
    /// command line are shown in it, and times typed into the form are read in it. Unset, the
    /// zone follows `[web] utc_offset` (WIB by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<Zone>,
}

/// Photos and documents attached to reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentSettings {
    /// The largest file accepted, in bytes (at most 64 MiB).
    pub max_bytes: u64,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        AttachmentSettings {
            max_bytes: pasopati_common::attachment::DEFAULT_MAX_BYTES,
        }
    }
}

/// The local web form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    pub enabled: bool,
    /// Where the form is served; loopback addresses only.
    pub listen: std::net::SocketAddr,
    /// The site's offset from UTC (`+07:00` WIB, `+08:00` WITA, `+09:00` WIT). Kept for
    /// configurations written before `[site] time_zone`, which takes precedence.
    pub utc_offset: String,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            enabled: true,
            listen: ([127, 0, 0, 1], 8787).into(),
            utc_offset: "+07:00".into(),
        }
    }
}

/// The inbox folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct InboxSettings {
    /// Whether the folder is watched.
    pub enabled: bool,
    /// Where report files are dropped (default: `inbox/` in the data directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

impl Default for InboxSettings {
    fn default() -> Self {
        InboxSettings {
            enabled: true,
            dir: None,
        }
    }
}

/// Limits of the outbox.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// Bytes of unsent reports the outbox may hold; past it new reports are refused (nothing
    /// saved is ever dropped).
    pub max_bytes: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            max_bytes: crate::outbox::DEFAULT_MAX_BYTES,
        }
    }
}

/// Tunables of the sync loop.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Most reports per batch (the collector's announced limit also applies).
    pub batch_max_reports: usize,
    /// About this many bytes of reports per batch.
    pub batch_max_bytes: usize,
    /// First retry delay ceiling, in milliseconds; doubles per failure.
    pub backoff_base_ms: u64,
    /// Largest retry delay ceiling, in milliseconds.
    pub backoff_cap_ms: u64,
    /// How long a connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How many acknowledged reports to keep, so a collector restored from an older copy can
    /// ask for them again.
    pub retain_acked: u64,
    /// Seconds between heartbeats (one is also sent at every connection).
    pub heartbeat_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            batch_max_reports: 1024,
            batch_max_bytes: 1024 * 1024,
            backoff_base_ms: 500,
            backoff_cap_ms: 60_000,
            connect_timeout_ms: 10_000,
            retain_acked: 10_000,
            heartbeat_secs: 60,
        }
    }
}

impl SyncSettings {
    pub fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(self.backoff_base_ms.max(1)),
            cap: Duration::from_millis(self.backoff_cap_ms.max(self.backoff_base_ms.max(1))),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path} is missing: this data directory is not enrolled")]
    NotEnrolled { path: String, dir: String },
    #[error("this site is not enrolled yet ({path} does not exist)")]
    NotEnrolledYet { path: String, dir: String },
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error("{dir} is a collector's data directory (it holds collector.toml), not an agent's. Pass the agent's data directory, which holds agent.toml (/var/lib/pasopati-agent when installed from the package)")]
    CollectorDir { dir: String },
}

/// The collector's configuration file, whose presence marks a collector's data directory.
const COLLECTOR_CONFIG_FILE: &str = "collector.toml";

/// An error for a data directory that holds no agent.toml: a collector's, or one not enrolled.
pub fn missing_config(data_dir: &Path) -> ConfigError {
    if data_dir.join(COLLECTOR_CONFIG_FILE).exists() {
        ConfigError::CollectorDir {
            dir: data_dir.display().to_string(),
        }
    } else {
        ConfigError::NotEnrolled {
            path: AgentConfig::path(data_dir).display().to_string(),
            dir: data_dir.display().to_string(),
        }
    }
}

impl AgentConfig {
    /// The path of the configuration in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONFIG_FILE)
    }

    /// Loads `agent.toml` from `data_dir`.
    pub fn load(data_dir: &Path) -> Result<AgentConfig, ConfigError> {
        let path = Self::path(data_dir);
        if !path.exists() {
            return Err(missing_config(data_dir));
        }
        Ok(config_file::read_toml(&path)?)
    }

    /// Loads and checks a configuration file anywhere (for `validate --config`). A missing file
    /// in a data directory means the site is not enrolled yet, and says so.
    pub fn load_file(path: &Path) -> Result<AgentConfig, ConfigError> {
        if !path.exists() {
            let dir = path.parent().unwrap_or(Path::new("."));
            if path.file_name().is_some_and(|n| n == CONFIG_FILE) {
                return Err(match missing_config(dir) {
                    ConfigError::NotEnrolled { path, dir } => {
                        ConfigError::NotEnrolledYet { path, dir }
                    }
                    other => other,
                });
            }
        }
        Ok(config_file::load_checked(path)?)
    }

    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        if !pasopati_common::is_host_port_list(&self.collector_addr) {
            return Err(format!(
                "collector_addr `{}` is not host:port (for example collector.example.go.id:4433; several collectors separated by commas)",
                self.collector_addr
            ));
        }
        let s = &self.sync;
        if s.batch_max_reports == 0 || s.batch_max_bytes == 0 {
            return Err("[sync] batch_max_reports and batch_max_bytes must be above 0".into());
        }
        if s.backoff_base_ms == 0 || s.backoff_cap_ms < s.backoff_base_ms {
            return Err("[sync] backoff_base_ms must be above 0 and at most backoff_cap_ms".into());
        }
        if s.connect_timeout_ms < 100 || s.heartbeat_secs == 0 {
            return Err(
                "[sync] connect_timeout_ms must be at least 100 and heartbeat_secs above 0".into(),
            );
        }
        if self.outbox.max_bytes < 64 * 1024 {
            return Err(format!(
                "[outbox] max_bytes = {} is too small to hold a single report; use at least 65536",
                self.outbox.max_bytes
            ));
        }
        let a = self.attachments.max_bytes;
        if a == 0 || a > pasopati_common::attachment::HARD_MAX_BYTES {
            return Err(format!(
                "[attachments] max_bytes = {a} is out of range; use 1 to {} (64 MiB)",
                pasopati_common::attachment::HARD_MAX_BYTES
            ));
        }
        if !self.web.listen.ip().is_loopback() {
            return Err(format!(
                "[web] listen = {} is not a loopback address; the form is served on this machine only (127.0.0.1)",
                self.web.listen
            ));
        }
        let offset_zone = Zone::parse(&self.web.utc_offset).map_err(|_| {
            format!(
                "[web] utc_offset `{}` is not the offset of an Indonesian time zone (+07:00 WIB, +08:00 WITA, +09:00 WIT); better, set [site] time_zone = \"WIB\", \"WITA\" or \"WIT\"",
                self.web.utc_offset
            )
        })?;
        if let Some(zone) = self.site.time_zone {
            if zone != offset_zone && self.web.utc_offset != WebSettings::default().utc_offset {
                return Err(format!(
                    "[site] time_zone = \"{zone}\" and [web] utc_offset = \"{}\" disagree; remove utc_offset",
                    self.web.utc_offset
                ));
            }
        }
        if self.pii.deny_list.iter().any(|t| t.trim().is_empty()) {
            return Err("[pii] deny_list has an empty term".into());
        }
        if let Some(level) = &self.log.level {
            if !["error", "warn", "info", "debug"].contains(&level.as_str()) {
                return Err(format!(
                    "[log] level `{level}` is not one of error, warn, info, debug"
                ));
            }
        }
        Ok(())
    }

    /// The site's time zone: `[site] time_zone`, else the zone of `[web] utc_offset`, else WIB.
    pub fn zone(&self) -> Zone {
        self.site
            .time_zone
            .or_else(|| Zone::parse(&self.web.utc_offset).ok())
            .unwrap_or_default()
    }

    /// Writes `agent.toml` atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        Ok(config_file::save_toml(
            &Self::path(data_dir),
            "# PASOPATI Edge agent configuration, written by `pasopati-agent enroll`.\n",
            self,
        )?)
    }
}

impl CheckedConfig for AgentConfig {
    fn check(&self) -> Result<(), String> {
        AgentConfig::check(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, include_str!("../../config/agent.example.toml")).unwrap();
        assert!(AgentConfig::load_file(&path).is_ok());
        let bad = include_str!("../../config/agent.example.toml")
            .replace("collector.example.go.id:4433", "collector.example.go.id");
        std::fs::write(&path, bad).unwrap();
        let err = AgentConfig::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("host:port"), "{err}");
    }

    #[test]
    fn the_time_zone_comes_from_the_site_or_the_old_offset() {
        let base = include_str!("../../config/agent.example.toml");
        let example: AgentConfig = toml::from_str(base).unwrap();
        assert_eq!(example.zone(), Zone::Wib);
        // A configuration written before `[site] time_zone` keeps its offset's zone.
        let old = base
            .replace("time_zone = \"WIB\"", "")
            .replace("utc_offset = \"+07:00\"", "utc_offset = \"+09:00\"");
        let wit: AgentConfig = toml::from_str(&old).unwrap();
        assert_eq!(wit.zone(), Zone::Wit);
        let mut wita = example.clone();
        wita.site.time_zone = Some(Zone::Wita);
        assert_eq!(wita.zone(), Zone::Wita);
        assert!(
            wita.check().is_ok(),
            "the default offset yields to the zone"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, base.replace("\"WIB\"", "\"CET\"")).unwrap();
        let err = AgentConfig::load_file(&path).unwrap_err().to_string();
        assert!(err.contains("WITA"), "{err}");
    }

    #[test]
    fn the_shipped_example_parses() {
        let example: AgentConfig =
            toml::from_str(include_str!("../../config/agent.example.toml")).unwrap();
        assert_eq!(example.sync, SyncSettings::default());
    }

    #[test]
    fn round_trips_and_names_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let config = AgentConfig {
            site_id: SiteId::new("lapas-contoh").unwrap(),
            collector_addr: "127.0.0.1:4433".into(),
            site: SiteSettings {
                time_zone: Some(Zone::Wita),
            },
            sync: SyncSettings::default(),
            pii: PiiConfig::default(),
            outbox: OutboxSettings::default(),
            inbox: InboxSettings::default(),
            web: WebSettings::default(),
            attachments: AttachmentSettings::default(),
            log: LogSettings::default(),
        };
        config.save(dir.path()).unwrap();
        assert_eq!(AgentConfig::load(dir.path()).unwrap(), config);
        std::fs::write(
            AgentConfig::path(dir.path()),
            "site_id='a'\ncollector_addr='x'\ncolour=1\n",
        )
        .unwrap();
        let err = AgentConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            AgentConfig::load(empty.path()),
            Err(ConfigError::NotEnrolled { .. })
        ));
        let err = AgentConfig::load_file(&empty.path().join(CONFIG_FILE)).unwrap_err();
        assert!(
            err.to_string().contains("not enrolled yet") && err.to_string().contains("enroll"),
            "{err}"
        );
    }

    #[test]
    fn a_collectors_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("collector.toml"), "").unwrap();
        let err = AgentConfig::load(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::CollectorDir { .. }), "{err}");
        assert!(err.to_string().contains("agent.toml"), "{err}");
    }
}
