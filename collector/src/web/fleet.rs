//! The fleet as the dashboard shows it: the state `site list` gives (collector/src/admin.rs),
//! corrected by the facts only the running daemon has.
//!
//! - A site with no live connection is `offline` at once: the daemon knows its connections
//!   (`ServerState::connected_sites`), so a stopped agent is not shown green for
//!   `offline_after`.
//! - A backlog is the agent's count at its last heartbeat. When the collector stored a batch
//!   from the site after that heartbeat, the count is stale (the agent has sent since): it is
//!   marked so, and it no longer makes the site `buffering`.

use crate::admin::SiteView;
use pasopati_common::Timestamp;

/// Whether a batch was stored after the heartbeat that reported the site's backlog.
pub fn backlog_stale(v: &SiteView) -> bool {
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| Timestamp::parse_rfc3339(t).ok());
    match (parse(&v.last_report_at), parse(&v.heartbeat_at)) {
        (Some(batch), Some(heartbeat)) => batch > heartbeat,
        _ => false,
    }
}

/// The state the dashboard shows for a site.
pub fn state(v: &SiteView) -> &'static str {
    match v.state.as_str() {
        "revoked" => "revoked",
        "pending" => "pending",
        _ if !v.connected => "offline",
        "buffering" if backlog_stale(v) => "online",
        "buffering" => "buffering",
        "silent" => "silent",
        _ => "online",
    }
}

/// The views with the dashboard's state.
pub fn correct(mut views: Vec<SiteView>) -> Vec<SiteView> {
    for v in &mut views {
        v.state = state(v).to_owned();
    }
    views
}
