//! What several collectors serving one PostgreSQL store keep in step, beyond what the store's
//! transactions already do. So far: a site revoked through any instance loses its live
//! connection on every instance within [`REVOCATION_CHECK`] (the instance that took the
//! command closes it at once; the others see the revocation in the store). A new session on any
//! instance reads the site's status from the store, so it is refused there at once.

use crate::server::ServerState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often an instance looks for sites revoked elsewhere (the bound is 5 s).
pub const REVOCATION_CHECK: Duration = Duration::from_secs(1);

/// Closes, every [`REVOCATION_CHECK`], the live connections of sites the store says are
/// revoked, until `stop`. Only a shared store needs it: on redb one process takes every
/// command, and `site revoke` closes the connection itself.
pub async fn cut_revoked_sites(state: Arc<ServerState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REVOCATION_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let connected = state.connected_sites();
        if connected.is_empty() {
            continue;
        }
        let st = state.clone();
        let revoked = tokio::task::spawn_blocking(move || st.store.revoked_sites()).await;
        match revoked {
            Ok(Ok(revoked)) => {
                for site in connected.iter().filter(|s| revoked.contains(s)) {
                    state.close_site(site);
                }
            }
            Ok(Err(e)) => tracing::warn!("cannot read revoked sites from the store: {e}"),
            Err(e) => tracing::warn!("the revocation check failed: {e}"),
        }
    }
}
