//! Events the collector publishes as they happen, for the demo's live output and, later, the
//! dashboard's live views.

use crate::admin::SiteState;
use crate::store::StoredReport;
use pasopati_common::SiteId;

/// Something that just happened at the collector.
#[derive(Clone, Debug)]
pub enum CollectorEvent {
    /// A report was durably stored for the first time.
    ReportStored(Box<StoredReport>),
    /// A site's sync session opened.
    SiteConnected(SiteId),
    /// A site's sync session closed.
    SiteDisconnected(SiteId),
    /// A site's state changed, as the dashboard shows it.
    SiteState { site: SiteId, state: SiteState },
    /// A spike alert appeared (its JSON).
    Alert(String),
    /// A peer, frame or batch was refused.
    Refused {
        site: Option<SiteId>,
        reason: String,
    },
}
