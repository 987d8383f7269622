//! The placer: stored site reports go into the analysis engine from one background thread, at
//! low priority, read back from the store in arrival order; so do media items another
//! collector on a shared store stored (`Newsroom::follow_stored_media`).
//!
//! Sessions only signal that reports were stored ([`Newsroom::reports_stored`]); they never wait
//! for the analysis, and the analysis never takes the cores from them. On a machine as small as
//! the center's first one (two cores for the QUIC sessions, their group commits and the
//! analysis) placing each batch as it was committed took about a third of the CPU during a
//! backlog drain, which slowed the drain by as much. Now the analysis falls behind during a
//! drain and catches up after it: the dashboard's stories lag by the backlog, never a report's
//! durability or its acknowledgement. A low priority alone did not keep it out of the drain's
//! way, so while reports keep arriving it also paces itself to a tenth of the time ([`Pacer`]).
//! What is stored but not yet placed is read back from the store, so the lag costs no memory,
//! and a restart places it as the replay always did.

use super::{report_of, Newsroom};
use crate::store::{ReportQuery, StoreError};
use pasopati_common::task::Pacer;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reports placed per hold of the engine's lock: the dashboard, waiting for the lock, waits
/// for at most one page.
const PAGE: usize = 256;

/// How often the placer looks at the store without being signalled (a missed signal costs at
/// most this much lag), and how long stopping waits for it.
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// The placer thread's scheduling priority (nice): it yields the cores to everything else.
const NICE: i32 = 10;

/// The placer's share of the time while sessions keep storing reports (see [`Pacer`]).
pub(crate) const SHARE_WHILE_STORING: f64 = 0.1;

impl Newsroom {
    /// Tells the placer that reports were stored. Cheap and never blocking: sessions call it
    /// after each commit.
    pub fn reports_stored(&self) {
        self.stored_signal.raise();
    }

    /// Places every stored report not placed yet, a page at a time, if the engine is running
    /// (before it runs, its replay places them). Returns how many it placed. Blocking.
    pub fn place_stored(&self) -> Result<usize, StoreError> {
        self.place_stored_until(&|| false)
    }

    /// Like [`Newsroom::place_stored`], asking `stop` between pages (where the daemon's placer
    /// also paces itself) and stopping once it says so: a daemon stopping with a long backlog
    /// unplaced does not wait for it (a restart places it).
    fn place_stored_until(&self, stop: &dyn Fn() -> bool) -> Result<usize, StoreError> {
        let poisoned = || StoreError::Storage("the analysis engine was poisoned by a panic".into());
        let mut total = 0;
        while !stop() {
            let mut slot = self.engine.lock().map_err(|_| poisoned())?;
            let Some(engine) = slot.as_mut() else {
                return Ok(total);
            };
            let mut placed = self.placed_reports.lock().map_err(|_| poisoned())?;
            let page = self.store.reports(&ReportQuery {
                after_arrival: Some(placed.below),
                limit: Some(PAGE),
                ..Default::default()
            })?;
            let Some(last) = page.last().map(|r| r.arrival) else {
                return Ok(total);
            };
            for r in page.iter().filter(|r| !placed.above.contains(&r.arrival)) {
                engine.add_report(&report_of(r));
                total += 1;
            }
            // Every arrival up to the page's last is placed now: the ones the page skipped are
            // revisions superseded before they were placed.
            placed.below = placed.below.max(last + 1);
            let below = placed.below;
            placed.above.retain(|a| *a >= below);
        }
        Ok(total)
    }
}

/// Runs the placer on its own thread until `stop` is cancelled; join the handle to wait for it
/// (it notices within [`IDLE_LOOK`]).
pub fn spawn(
    newsroom: Arc<Newsroom>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("analysis-placer".into())
        .spawn(move || {
            pasopati_common::task::lower_this_thread_priority(NICE);
            let pacer = Pacer::new(&newsroom.stored_signal, SHARE_WHILE_STORING);
            let between_pages = || pacer.stop_or_pause(|| stop.is_cancelled());
            while !stop.is_cancelled() {
                if let Err(e) = newsroom.follow_stored_media() {
                    tracing::warn!(error = %e, "media items stored by another collector could not be placed in the analysis; trying again");
                }
                pacer.resume();
                if let Err(e) = newsroom.place_stored_until(&between_pages) {
                    tracing::warn!(error = %e, "stored reports could not be placed in the analysis; trying again");
                }
                newsroom.stored_signal.wait(IDLE_LOOK);
            }
        })
}

/// Wakes the placer so that it sees `stop` at once.
pub fn wake(newsroom: &Newsroom) {
    newsroom.stored_signal.raise();
}
