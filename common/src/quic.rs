//! quinn configurations with explicit limits, shared by both daemons and the tests.

use crate::pki::PkiError;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use std::sync::Arc;
use std::time::Duration;

/// How long a silent connection lives. Agents send keep-alives well within it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle agent connection pings, so NAT bindings and the idle timer stay alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The bytes of unread datagrams (agents' pings) the collector keeps per connection; older
/// ones are dropped.
const PING_BUFFER: usize = 1024;

fn transport(keep_alive: Option<Duration>) -> TransportConfig {
    let mut t = TransportConfig::default();
    // One session stream per connection, plus room for a replacement while the old one closes.
    t.max_concurrent_bidi_streams(VarInt::from_u32(2));
    // No unidirectional streams are used by protocol 1.
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    // Windows sized for a 4 MiB frame plus pipelining, and no more: a peer cannot make us buffer
    // more than this per connection.
    t.stream_receive_window(VarInt::from_u32(12 * 1024 * 1024));
    t.receive_window(VarInt::from_u32(16 * 1024 * 1024));
    t.send_window(16 * 1024 * 1024);
    t.max_idle_timeout(IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    t.keep_alive_interval(keep_alive);
    t
}

/// The collector's QUIC server configuration.
pub fn server_config(tls: rustls::ServerConfig) -> Result<quinn::ServerConfig, PkiError> {
    let crypto = QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut t = transport(None);
    // Agents ping with one-byte datagrams when a reply is late (agent/src/liveness.rs). The
    // collector's QUIC stack acknowledges them and nothing reads them: keep at most a few.
    t.datagram_receive_buffer_size(Some(PING_BUFFER));
    config.transport_config(Arc::new(t));
    // Bounded queue of handshakes not yet accepted; beyond it new attempts are refused.
    config.max_incoming(4096);
    config.migration(true);
    Ok(config)
}

/// An agent's QUIC client configuration.
pub fn client_config(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, PkiError> {
    let crypto = QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut t = transport(Some(KEEP_ALIVE));
    // The collector sends no datagrams.
    t.datagram_receive_buffer_size(None);
    config.transport_config(Arc::new(t));
    Ok(config)
}
