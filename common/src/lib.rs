//! The I/O edges both daemons share, on top of the pure protocol crate (`pasopati-protocol`,
//! re-exported here whole so the daemons name one crate): frames on async streams ([`stream`]),
//! the QUIC endpoints' TLS configuration ([`quic`]), the PKI's files ([`pki`]), opening a redb
//! file privately ([`storage`]), the local control socket ([`control`]), reading TOML files, and
//! escaped terminal output ([`terminal`]).

pub use pasopati_protocol::*;

pub mod control;
pub mod fuzzing;
pub mod pki;
pub mod quic;
pub mod storage;
pub mod stream;
pub mod terminal;

/// The wire frames and their codec (from the protocol crate) with the async stream reader and
/// writer beside them.
pub mod frame {
    pub use crate::stream::{read_frame, write_frame};
    pub use pasopati_protocol::frame::*;
}

/// Reads a TOML file into `T`; the error says what is wrong in words (the path is the caller's).
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    toml::from_str(&text).map_err(|e| e.to_string())
}
