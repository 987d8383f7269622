//! The daemons' TOML configuration files (`agent.toml`, `collector.toml`): read, checked and
//! written the same way on both sides, with errors that name the file and keep their cause.

use std::path::Path;

/// A configuration's own rule for values that parse but cannot work.
pub trait CheckedConfig: serde::de::DeserializeOwned {
    /// Why the configuration cannot work, in words that name the setting.
    fn check(&self) -> Result<(), String>;
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("{path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Malformed {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    /// It parses, but a value cannot work; the reason names the setting.
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{path}: {source}")]
    Unserialisable {
        path: String,
        #[source]
        source: toml::ser::Error,
    },
    #[error("{path}: {source}")]
    Unwritable {
        path: String,
        #[source]
        source: crate::pki::PkiError,
    },
}

/// Reads a TOML file into `T`, without judging its values.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Unreadable {
        path: shown(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigFileError::Malformed {
        path: shown(),
        source,
    })
}

/// Reads a configuration file and checks its values.
pub fn load_checked<T: CheckedConfig>(path: &Path) -> Result<T, ConfigFileError> {
    let config: T = read_toml(path)?;
    config.check().map_err(|reason| ConfigFileError::Invalid {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(config)
}

/// Writes a configuration atomically (mode 0644), `header` (comment lines, each ending in a line
/// feed) first.
pub fn save_toml<T: serde::Serialize>(
    path: &Path,
    header: &str,
    config: &T,
) -> Result<(), ConfigFileError> {
    let shown = || path.display().to_string();
    let text =
        toml::to_string_pretty(config).map_err(|source| ConfigFileError::Unserialisable {
            path: shown(),
            source,
        })?;
    crate::pki::write_file_atomic(path, format!("{header}{text}").as_bytes(), 0o644).map_err(
        |source| ConfigFileError::Unwritable {
            path: shown(),
            source,
        },
    )
}
