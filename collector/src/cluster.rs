//! What several collectors serving one PostgreSQL store keep in step, beyond what the store's
//! transactions already do:
//!
//! - a site with a live session on any instance is online on every instance's dashboard, site
//!   list and silent-site notifications: each publishes its live sites through the store
//!   ([`share_live_sites`]);
//! - a site revoked through any instance loses its live connection on every instance within
//!   [`REVOCATION_CHECK`] (the instance that took the command closes it at once; the others
//!   see the revocation in the store). A new session on any instance reads the site's status
//!   from the store, so it is refused there at once;
//! - reports stored through any instance reach every instance's live event stream (the
//!   dashboard's), analysis and report index: each group commit that stores reports sends a
//!   PostgreSQL notification with their arrival numbers in its transaction (delivered only if
//!   it commits), and each instance reads the reports of the others' notifications back from
//!   the store;
//! - the media desk (polling the feeds and social sources, recording the risk days) runs on
//!   one instance at a time: the one holding the database's advisory lock
//!   ([`lead_media_desk`]). When it dies, its connection ends and another takes the lock
//!   within [`LEAD_CHECK`]. Every instance's analysis follows the media items the leader
//!   stored, with the leader's placement recorded on each item, and its analysts' story edits
//!   are in the store, so every dashboard shows the same stories.

use crate::events::CollectorEvent;
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

/// How often a collector on a shared store publishes its live sites and reads the others'.
pub const LIVE_SITES_EVERY: Duration = Duration::from_secs(1);

/// How long a collector that stopped beating still counts: its sites are taken for offline
/// after this (a SIGKILLed collector publishes nothing more).
pub const LIVE_SITES_STALE: Duration = Duration::from_secs(5);

/// Every [`LIVE_SITES_EVERY`], until `stop`: beats this collector's liveness in the store,
/// publishes its live sites when they changed, and reads which sites have a live session on
/// the other collectors, so that every instance's dashboard, `site list` and notifications
/// call a site online wherever its session is. Only a shared store needs it.
pub async fn share_live_sites(state: Arc<ServerState>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(LIVE_SITES_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published: Option<Vec<pasopati_common::SiteId>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let mut local = state.connected_sites();
        local.sort();
        let changed = published.as_ref() != Some(&local);
        let st = state.clone();
        let sites = local.clone();
        let result = tokio::task::spawn_blocking(move || {
            st.store
                .publish_live_sites(&st.instance, changed.then_some(sites.as_slice()))?;
            st.store
                .live_sites_elsewhere(&st.instance, LIVE_SITES_STALE)
        })
        .await;
        match result {
            Ok(Ok(elsewhere)) => {
                if changed {
                    published = Some(local);
                }
                state.set_elsewhere(elsewhere);
            }
            Ok(Err(e)) => tracing::warn!("cannot share the live sites through the store: {e}"),
            Err(e) => tracing::warn!("the live-site exchange failed: {e}"),
        }
    }
    // Stopping: the others stop counting this collector's sites at once.
    let st = state.clone();
    let _ =
        tokio::task::spawn_blocking(move || st.store.publish_live_sites(&st.instance, Some(&[])))
            .await;
}

/// The most arrivals one notification is read back for (a group commit stores far fewer).
const RELAY_LIMIT: u64 = 100_000;

/// Relays reports stored through the other collectors on the store into this one's events,
/// analysis and report index, until `stop`. Listens again a second after the database goes
/// away (a failover).
pub async fn relay_stored_reports(state: Arc<ServerState>, stop: CancellationToken) {
    let Some(own) = state.store.as_postgres().map(|pg| pg.instance()) else {
        return;
    };
    loop {
        let st = state.clone();
        let listening = tokio::task::spawn_blocking(move || {
            st.store.as_postgres().map(|pg| pg.stored_notifications())
        })
        .await;
        match listening {
            Ok(Some(Ok(mut notifications))) => loop {
                tokio::select! {
                    payload = notifications.recv() => match payload {
                        Some(payload) => relay(&state, own, &payload).await,
                        None => break,
                    },
                    _ = stop.cancelled() => return,
                }
            },
            Ok(Some(Err(e))) => tracing::warn!("cannot listen for reports stored elsewhere: {e}"),
            Ok(None) => return,
            Err(e) => tracing::warn!("the listener for reports stored elsewhere failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One notification: `INSTANCE FIRST LAST` (arrival numbers).
async fn relay(state: &Arc<ServerState>, own: u64, payload: &str) {
    let numbers: Vec<u64> = payload
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [instance, first, last] = numbers[..] else {
        tracing::warn!(payload, "an unreadable notification of stored reports");
        return;
    };
    if instance == own || last < first {
        return;
    }
    crate::newsroom::placer::wake(&state.newsroom);
    crate::report_index::wake(&state.report_index);
    let arrivals: Vec<u64> = (first..=last.min(first.saturating_add(RELAY_LIMIT))).collect();
    let st = state.clone();
    match tokio::task::spawn_blocking(move || st.store.reports_at(&arrivals)).await {
        Ok(Ok(reports)) => {
            for report in reports.into_iter().flatten() {
                let _ = state
                    .events
                    .send(CollectorEvent::ReportStored(Box::new(report)));
            }
        }
        Ok(Err(e)) => tracing::warn!("cannot read reports stored elsewhere: {e}"),
        Err(e) => tracing::warn!("reading reports stored elsewhere failed: {e}"),
    }
}

/// How often the media desk's leader proves it still holds the lock, and how often the others
/// try to take it.
pub const LEAD_CHECK: Duration = Duration::from_secs(1);

/// Keeps this instance's claim on the media desk until `stop`: takes the lock when it is
/// free, proves every [`LEAD_CHECK`] that it still holds it, and gives up the lead the moment
/// its connection is lost (a database failover frees every lock; whoever takes it first on
/// the new primary leads). Only a shared store has this; on redb the one collector leads.
pub async fn lead_media_desk(state: Arc<ServerState>, stop: CancellationToken) {
    if !state.store.is_postgres() {
        return;
    }
    let mut lead: Option<crate::store::pg::Lead> = None;
    loop {
        let st = state.clone();
        let held = lead.take();
        let checked = tokio::task::spawn_blocking(move || {
            let pg = st.store.as_postgres()?;
            match held {
                Some(l) if pg.still_leads(&l) => Some(l),
                _ => match pg.try_lead() {
                    Ok(taken) => taken,
                    Err(e) => {
                        tracing::warn!("cannot ask the store who leads the media desk: {e}");
                        None
                    }
                },
            }
        })
        .await;
        lead = checked.unwrap_or_else(|e| {
            tracing::warn!("the media desk's lead check failed: {e}");
            None
        });
        let leads = lead.is_some();
        if leads != state.newsroom.leads() {
            state.newsroom.set_leading(leads);
            if leads {
                tracing::info!("this collector leads the media desk now (polls the sources, records the risk days)");
            } else {
                tracing::warn!("this collector no longer leads the media desk (its connection to the store was lost); another takes over");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LEAD_CHECK) => {}
            _ = stop.cancelled() => break,
        }
    }
    state.newsroom.set_leading(false);
    // Dropping the lead closes its connection: the lock is free for another at once.
    drop(lead);
}
