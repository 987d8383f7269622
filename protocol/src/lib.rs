//! The protocol of PASOPATI Edge, free of I/O: the domain types both daemons speak (ids,
//! reports, the taxonomy), the wire frames and their codec, the sync protocol as a pure state
//! machine for each side ([`sync`]), the batch rules every store applies ([`ingest`]), chunked
//! transfers ([`transfer`]), validation and the PII guard ([`report`], [`pii`]), the enrollment
//! token, backoff, and times.
//!
//! Nothing here opens a socket, a file or a database: inputs, including the time, come in as
//! arguments and decisions come out as values. A test (`tests/tests/layering.rs`) keeps tokio,
//! quinn, redb and rustls out of this crate's dependency tree. The I/O halves (QUIC, PKI files,
//! redb, the control socket) are in `pasopati-common`, which re-exports this crate.

/// The `String` conversions that serde's `try_from = "String", into = "String"` call, for a type
/// that reads itself with `FromStr` and writes itself with `Display`.
macro_rules! text_conversions {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = <$t as std::str::FromStr>::Err;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.to_string()
            }
        }
    };
}
pub(crate) use text_conversions;

pub mod attachment;
pub mod backoff;
pub mod csv;
pub mod duration;
pub mod faults;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod fleet;
pub mod frame;
pub mod ids;
pub mod ingest;
pub mod localtime;
pub mod pii;
pub mod report;
#[cfg(test)]
mod sim;
pub mod sync;
pub mod taxonomy;
pub mod timestamp;
pub mod token;
pub mod transfer;

pub use duration::HumanDuration;
pub use ids::{Epoch, ReportId, Seq, SiteId, SiteType};
pub use report::{Priority, Report, ReportDraft, Revision};
pub use timestamp::Timestamp;

/// The ALPN protocol id of the agent–collector protocol.
pub const ALPN: &[u8] = b"pasopati/1";

/// The protocol version carried in `Hello`: this release speaks it.
///
/// 1. The first: reports, heartbeats, attachments, renewal.
/// 2. Adds running the fleet from the center: `Status` / `Directives` and `Fetch` /
///    `ReleasePart` ([`fleet`]). Nothing of version 1 changed.
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest protocol version a collector of this release still serves: the one before, so
/// agents one release behind keep syncing during a rollout.
pub const OLDEST_PROTOCOL_VERSION: u16 = 1;

/// The version of this build as Cargo knows it. What an agent reports is [`version`], which a
/// release build may have stamped with another (see [`fleet::stamp_version`]).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version this executable runs as: [`VERSION`], unless the executable was stamped with
/// another after it was built (the slot is read from memory at run time, so a stamp in the file
/// is what runs).
pub fn version() -> &'static str {
    static RUNNING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RUNNING.get_or_init(|| fleet::slot_version(&VERSION_SLOT).unwrap_or_else(|| VERSION.to_owned()))
}

/// The stamp slot: [`fleet::VERSION_MARKER`], then the version, NUL-padded.
#[used]
static VERSION_SLOT: [u8; fleet::VERSION_SLOT_BYTES] = fleet::version_slot(VERSION);

/// Whether `addr` is `host:port` with a non-empty host and a numeric port. (Port 0 passes: an
/// in-process collector bound to an ephemeral port advertises the port it got.)
pub fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The collector addresses of a list (`host:port[,host:port…]`): every collector serving one
/// store, in the order an agent tries them. Empty entries are skipped.
pub fn collector_addrs(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

/// Whether `list` is one or more `host:port` addresses separated by commas.
pub fn is_host_port_list(list: &str) -> bool {
    let addrs = collector_addrs(list);
    !addrs.is_empty() && addrs.iter().all(|a| is_host_port(a))
}

/// Hex-encodes bytes in lower case.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Decodes lower- or upper-case hex; `None` on any other character or an odd length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Fills a fresh array from the operating system's random source.
///
/// The OS generator failing is not something a daemon can recover from, and it does not come
/// from the network, a file or a user, so this panics with a clear message rather than letting
/// every caller invent a fallback.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// A random `u64` from the operating system's random source.
pub fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes::<8>())
}

#[cfg(test)]
mod addr_list_tests {
    use super::*;

    #[test]
    fn an_address_list_is_read_in_order_and_checked_entry_by_entry() {
        assert_eq!(
            collector_addrs(" a.example:4433, b.example:4433 ,"),
            ["a.example:4433", "b.example:4433"]
        );
        assert!(is_host_port_list("a.example:4433"));
        assert!(is_host_port_list("a.example:4433,[::1]:4433"));
        assert!(!is_host_port_list("a.example:4433,b.example"));
        assert!(!is_host_port_list(" , "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let data = [0u8, 1, 0xab, 0xff, 0x10];
        assert_eq!(hex(&data), "0001abff10");
        assert_eq!(unhex("0001ABff10").as_deref(), Some(&data[..]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
