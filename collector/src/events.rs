//! Events the collector publishes as they happen, for the demo's live output and, later, the
//! dashboard's live views.

use crate::store::StoredReport;
use pasopati_common::SiteId;

/// Something that just happened at the collector.
#[derive(Clone, Debug)]
pub enum CollectorEvent {
    /// A report was durably stored for the first time.
    ReportStored(Box<StoredReport>),
    SiteConnected(SiteId),
    SiteDisconnected(SiteId),
    /// A site's state changed (`online`, `buffering`, `offline`, `silent`, `revoked`).
    SiteState {
        site: SiteId,
        state: String,
    },
    /// A spike alert appeared (its JSON).
    Alert(String),
    /// A peer, frame or batch was refused.
    Refused {
        site: Option<SiteId>,
        reason: String,
    },
}
