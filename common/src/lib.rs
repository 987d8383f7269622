//! The I/O edges both daemons share, on top of the pure protocol crate (`pasopati-protocol`,
//! re-exported here whole so the daemons name one crate): frames on async streams ([`stream`]),
//! the QUIC endpoints' TLS configuration ([`quic`]), the PKI's files ([`pki`]), opening a redb
//! file privately ([`storage`]), the local control socket ([`control`]), the daemons' TOML
//! configuration files ([`config_file`]), logging and the async runtime of the command lines
//! ([`logging`]), blocking work off the async threads ([`task`]), escaped terminal output
//! ([`terminal`]), and the shell of the daemons' web pages ([`html`]).

pub use pasopati_protocol::*;

pub mod config_file;
pub mod control;
pub mod fuzzing;
pub mod html;
pub mod logging;
#[cfg(feature = "fixtures")]
pub mod pgtest;
pub mod pki;
pub mod profile;
pub mod quic;
pub mod storage;
pub mod stream;
pub mod task;
pub mod terminal;

/// The wire frames and their codec (from the protocol crate) with the async stream reader and
/// writer beside them.
pub mod frame {
    pub use crate::stream::{read_frame, write_frame};
    pub use pasopati_protocol::frame::*;
}
