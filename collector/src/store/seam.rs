//! The seam between the collector and its store: [`Store`], one method per transaction, each
//! sent to the backend chosen in the configuration: the embedded redb file ([`RedbStore`], the
//! default) or PostgreSQL ([`pg::PgStore`], the production tier). Callers never learn which;
//! the two backends keep the same record types, the same rules (`pasopati_common::ingest`) and
//! the same behaviour, which the store's unit tests check on both (`PASOPATI_TEST_STORE`).
//!
//! Dispatch is a `match` rather than a trait object because several methods are generic (a
//! certificate is issued by a closure run inside the transaction that records it).

use super::pg;
use super::*;
use crate::store::{BatchJob, BatchOutcome, ReportQuery};
use pasopati_analysis::edits::StoryEdit;
use pasopati_analysis::risk::RiskScore;
use pasopati_analysis::social::Engagement;
use pasopati_common::attachment::AttachmentRef;
use pasopati_common::frame::{Batch, Heartbeat, Limits};
use pasopati_common::pii::PiiGuard;
use pasopati_common::sync::HelloDecision;
use pasopati_common::{Epoch, ReportId, Seq, SiteId, Timestamp};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the store is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// `collector.redb` in this data directory.
    Redb(PathBuf),
    /// A PostgreSQL database.
    Postgres(pg::PgOptions),
}

/// The collector's store; see the module documentation for what it keeps and how.
pub struct Store {
    backend: Backend,
    /// The collector's data directory, where the files beside the store live (attachments,
    /// the report index, the analysis snapshot), whichever the backend.
    data_dir: PathBuf,
}

enum Backend {
    Redb(RedbStore),
    Postgres(Box<pg::PgStore>),
}

macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Redb(s) => s.$method($($arg),*),
            Backend::Postgres(s) => s.$method($($arg),*),
        }
    };
}

impl Store {
    /// Opens (creating if absent) the embedded store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_at(&StoreLocation::Redb(data_dir.to_owned()), data_dir)
    }

    /// Opens the store at `location` for the collector of `data_dir`; a PostgreSQL database is
    /// migrated to this binary's schema first.
    pub fn open_at(location: &StoreLocation, data_dir: &Path) -> Result<Store, StoreError> {
        let backend = match location {
            StoreLocation::Redb(dir) => Backend::Redb(RedbStore::open(dir)?),
            StoreLocation::Postgres(options) => {
                Backend::Postgres(Box::new(pg::PgStore::open(options)?))
            }
        };
        Ok(Store {
            backend,
            data_dir: data_dir.to_owned(),
        })
    }

    /// The collector's data directory (see [`Store`]).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the store is, for messages: the file, or the database address without its
    /// password.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Redb(s) => s.path().display().to_string(),
            Backend::Postgres(s) => s.location(),
        }
    }

    /// The embedded store, when that is the backend (backups and tests reach into it).
    pub fn as_redb(&self) -> Option<&RedbStore> {
        match &self.backend {
            Backend::Redb(s) => Some(s),
            Backend::Postgres(_) => None,
        }
    }

    /// The sites revoked now.
    pub fn revoked_sites(&self) -> Result<Vec<SiteId>, StoreError> {
        dispatch!(self, revoked_sites())
    }

    /// The PostgreSQL store, when that is the backend (what several collectors share).
    pub fn as_postgres(&self) -> Option<&pg::PgStore> {
        match &self.backend {
            Backend::Redb(_) => None,
            Backend::Postgres(s) => Some(s),
        }
    }

    /// Whether the backend is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The audit log, oldest first, as stored (undecodable entries included as errors).
    pub fn audit_log(&self) -> Result<Vec<StoredAuditEntry>, StoreError> {
        dispatch!(self, audit_log())
    }

    /// How many audit entries were ever appended (kept apart from the entries, so entries
    /// removed from the end are noticed).
    pub fn audit_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, audit_count())
    }

    /// Walks the audit chain.
    pub fn verify_audit(&self) -> Result<Result<u64, AuditBreak>, StoreError> {
        dispatch!(self, verify_audit())
    }

    /// The high-water mark of (site, epoch); 0 if never seen.
    pub fn hwm(&self, site: &SiteId, epoch: Epoch) -> Result<Seq, StoreError> {
        dispatch!(self, hwm(site, epoch))
    }

    /// The lowest seq of (site, epoch) from `from` on with a kept verdict, which a `Welcome`
    /// must stop below (see `CollectorSession::hwm_read`).
    pub fn first_verdict_from(
        &self,
        site: &SiteId,
        epoch: Epoch,
        from: Seq,
    ) -> Result<Option<Seq>, StoreError> {
        dispatch!(self, first_verdict_from(site, epoch, from))
    }

    /// Applies a `Hello` decision: records a lost range as a gap and moves the hwm past it,
    /// records an agent rollback, and notes the site as seen.
    pub fn record_hello(
        &self,
        site: &SiteId,
        epoch: Epoch,
        decision: &HelloDecision,
        agent_time: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        dispatch!(self, record_hello(site, epoch, decision, agent_time, now))
    }

    /// Records a heartbeat: the site's latest health, its clock offset, and the history.
    pub fn record_heartbeat(
        &self,
        site: &SiteId,
        heartbeat: &Heartbeat,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        dispatch!(self, record_heartbeat(site, heartbeat, now))
    }

    /// A site's heartbeat history, oldest first.
    pub fn heartbeats(&self, site: &SiteId) -> Result<Vec<(Timestamp, Heartbeat)>, StoreError> {
        dispatch!(self, heartbeats(site))
    }

    /// Applies a batch from (site, epoch) in one durable transaction: [`Store::apply_batches`]
    /// with one job.
    pub fn apply_batch(
        &self,
        site: &SiteId,
        epoch: Epoch,
        batch: &Batch,
        limits: &Limits,
        guard: &PiiGuard,
        now: Timestamp,
    ) -> Result<BatchOutcome, StoreError> {
        let job = BatchJob {
            site: site.clone(),
            epoch,
            batch: batch.clone(),
            now,
            examined: None,
        };
        let mut outcomes = self.apply_batches(vec![job], limits, guard)?;
        outcomes.pop().ok_or(StoreError::Corrupt(
            "a group of one batch came back empty".into(),
        ))
    }

    /// Applies batches, of any sites, in order, in one durable transaction: the group commit.
    /// Each batch is judged by the rules of `pasopati_common::ingest` (the same the
    /// simulation's model store follows) against the hwm its predecessors in the group left,
    /// exactly as if each had its own transaction; one fsync then makes them all durable, and
    /// only after it does any of their answers go out. A batch the rules refuse as a whole
    /// changes nothing (the rules decide that before the ledger's first write); its refusal
    /// and any gap are recorded in the same transaction. An error fails the whole group, and
    /// nothing of it is stored.
    pub fn apply_batches(
        &self,
        jobs: Vec<BatchJob>,
        limits: &Limits,
        guard: &PiiGuard,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.apply_batches(jobs, limits, guard),
            Backend::Postgres(s) => s.apply_batches(&jobs, limits, guard),
        }
    }

    /// Records a refusal that is not about a batch (a malformed frame, a bad certificate).
    pub fn record_rejection(
        &self,
        site: Option<&SiteId>,
        reason: String,
    ) -> Result<(), StoreError> {
        dispatch!(self, record_rejection(site, reason))
    }

    /// All recorded gaps.
    pub fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        dispatch!(self, gaps())
    }

    /// All recorded rejections, oldest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        dispatch!(self, rejections())
    }

    /// The reference of attachment `hash` if a stored report of `site` brings it and it is not
    /// held yet.
    pub fn expected_attachment(
        &self,
        site: &SiteId,
        hash: &[u8; 32],
    ) -> Result<Option<AttachmentRef>, StoreError> {
        dispatch!(self, expected_attachment(site, hash))
    }

    /// The stored attachment with this hash.
    pub fn attachment(&self, hash: &[u8; 32]) -> Result<Option<StoredAttachment>, StoreError> {
        dispatch!(self, attachment(hash))
    }

    /// Every stored attachment, in hash order.
    pub fn attachments(&self) -> Result<Vec<StoredAttachment>, StoreError> {
        dispatch!(self, attachments())
    }

    /// Records that attachment `reference`, sent by `site`, is verified and its file is in
    /// place; no site is expected to send it any more. Idempotent.
    pub fn record_attachment(
        &self,
        site: &SiteId,
        reference: &AttachmentRef,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        dispatch!(self, record_attachment(site, reference, now))
    }

    /// Stores media items not seen before (by id), in one transaction; returns how many were
    /// new. `make` builds each record from its arrival number, and is called only for new ids.
    pub fn add_media(
        &self,
        ids: &[String],
        make: impl FnMut(usize, u64) -> StoredMedia,
    ) -> Result<Vec<bool>, StoreError> {
        dispatch!(self, add_media(ids, make))
    }

    /// Which of these media item ids are stored, read in one transaction.
    pub fn known_media<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        dispatch!(self, known_media(ids))
    }

    /// The stored media items of these ids (those stored), read in one transaction.
    pub fn media_items<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<StoredMedia>, StoreError> {
        dispatch!(self, media_items(ids))
    }

    /// Media items in arrival order, from `after` (inclusive), at most `limit`.
    pub fn media(&self, after: u64, limit: usize) -> Result<Vec<StoredMedia>, StoreError> {
        dispatch!(self, media(after, limit))
    }

    /// How many records some tables hold, read in one transaction without decoding them.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        dispatch!(self, counts())
    }

    /// Adds a claim to the register; returns its number.
    pub fn add_claim(&self, claim: Claim, actor: &str) -> Result<u64, StoreError> {
        dispatch!(self, add_claim(claim, actor))
    }

    /// Changes a claim with `change`; `None` if there is no such claim.
    pub fn update_claim(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut Claim),
    ) -> Result<Option<Claim>, StoreError> {
        dispatch!(self, update_claim(number, actor, action, change))
    }

    /// The claim register, oldest first.
    pub fn claims(&self) -> Result<Vec<Claim>, StoreError> {
        dispatch!(self, claims())
    }

    /// Adds a publication draft; returns its number.
    pub fn add_publication(&self, p: Publication, actor: &str) -> Result<u64, StoreError> {
        dispatch!(self, add_publication(p, actor))
    }

    /// Approves a publication; `None` if there is none with this number.
    pub fn approve_publication(
        &self,
        number: u64,
        actor: &str,
    ) -> Result<Option<Publication>, StoreError> {
        dispatch!(self, approve_publication(number, actor))
    }

    /// Every publication, oldest first.
    pub fn publications(&self) -> Result<Vec<Publication>, StoreError> {
        dispatch!(self, publications())
    }

    /// Files a unit's official response to a story; returns its number.
    pub fn add_response(&self, r: OfficialResponse, actor: &str) -> Result<u64, StoreError> {
        dispatch!(self, add_response(r, actor))
    }

    /// Changes an official response, audited as `action`; `None` if there is none.
    pub fn update_response(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut OfficialResponse),
    ) -> Result<Option<OfficialResponse>, StoreError> {
        dispatch!(self, update_response(number, actor, action, change))
    }

    /// The first report arrival the notifier has not looked at (`None` before its first look).
    pub fn notify_cursor(&self) -> Result<Option<u64>, StoreError> {
        dispatch!(self, notify_cursor())
    }

    /// Writes a notifier pass (new messages get their id, the cursor, the told conditions)
    /// in one transaction.
    pub fn save_notifications(
        &self,
        change: OutboxChange,
    ) -> Result<Vec<Notification>, StoreError> {
        dispatch!(self, save_notifications(change))
    }

    /// The outbox's messages not sent yet, oldest first.
    pub fn pending_notifications(&self) -> Result<Vec<Notification>, StoreError> {
        dispatch!(self, pending_notifications())
    }

    /// The `limit` newest messages, newest first.
    pub fn recent_notifications(&self, limit: usize) -> Result<Vec<Notification>, StoreError> {
        dispatch!(self, recent_notifications(limit))
    }

    /// Every notification rule's told conditions that still hold: rule name → keys.
    pub fn notify_active(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        dispatch!(self, notify_active())
    }

    /// Every official response, oldest first.
    pub fn responses(&self) -> Result<Vec<OfficialResponse>, StoreError> {
        dispatch!(self, responses())
    }

    /// Stored reports in arrival order, each at its latest revision (earlier revisions are in
    /// [`Store::revisions`]).
    pub fn reports(&self, query: &ReportQuery) -> Result<Vec<StoredReport>, StoreError> {
        dispatch!(self, reports(query))
    }

    /// Visits each stored report at its latest revision with an arrival number of `from` or
    /// more, newest first: the tail the report index has not taken yet (`crate::report_index`).
    pub fn newest_from(
        &self,
        from: u64,
        visit: impl FnMut(StoredReport),
    ) -> Result<(), StoreError> {
        dispatch!(self, newest_from(from, visit))
    }

    /// Up to `limit` stored reports at their latest revision with an arrival number of `from`
    /// or more, in arrival order, with the arrival number to go on from: every arrival before
    /// it is either returned or no longer the latest revision of its report.
    pub fn latest_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<StoredReport>, u64), StoreError> {
        dispatch!(self, latest_from(from, limit))
    }

    /// How many reports are shown (each at its latest clean revision), without reading them.
    pub fn shown_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, shown_count())
    }

    /// The shown reports, newest first: `limit` of them after skipping `offset`. Reads only
    /// those and the ones skipped (the dashboard's default list, at any size of the store).
    pub fn newest_shown(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredReport>, StoreError> {
        dispatch!(self, newest_shown(offset, limit))
    }

    /// The stored reports at these arrivals, in the same order (`None` where there is none).
    pub fn reports_at(&self, arrivals: &[u64]) -> Result<Vec<Option<StoredReport>>, StoreError> {
        dispatch!(self, reports_at(arrivals))
    }

    /// Reports released from quarantine that the report index has not taken yet: each
    /// arrival, with its report if that is the latest revision shown.
    pub fn late_for_index(&self) -> Result<Vec<(u64, Option<StoredReport>)>, StoreError> {
        dispatch!(self, late_for_index())
    }

    /// The report index has taken these released reports.
    pub fn forget_late_for_index(&self, arrivals: &[u64]) -> Result<(), StoreError> {
        dispatch!(self, forget_late_for_index(arrivals))
    }

    /// Every stored revision of a report, oldest first.
    pub fn revisions(&self, id: &ReportId) -> Result<Vec<StoredReport>, StoreError> {
        dispatch!(self, revisions(id))
    }

    /// The sites that filed these report ids (unknown ids left out), in one read.
    pub fn owners_of(
        &self,
        ids: &[ReportId],
    ) -> Result<std::collections::HashMap<ReportId, SiteId>, StoreError> {
        dispatch!(self, owners_of(ids))
    }

    /// The latest revision of the report with this id.
    pub fn report(&self, id: &ReportId) -> Result<Option<StoredReport>, StoreError> {
        dispatch!(self, report(id))
    }

    /// How many report revisions are stored (quarantined ones not counted).
    pub fn report_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, report_count())
    }

    /// Reports held in quarantine, oldest first.
    pub fn quarantine(&self) -> Result<Vec<Quarantined>, StoreError> {
        dispatch!(self, quarantine())
    }

    /// Releases a quarantined report into the reports (the guard was wrong: an admin read it
    /// and found no identity data). It becomes the shown revision if it is the newest.
    pub fn release_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<StoredReport>, StoreError> {
        dispatch!(self, release_quarantined(arrival, actor, reason, now))
    }

    /// Purges a quarantined report's text (title, body, reason, attachment names). Its
    /// position and content hash stay, so a resend by the agent is still recognised as the same
    /// report and never stored. False if there is no such quarantined report.
    pub fn purge_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        dispatch!(self, purge_quarantined(arrival, actor, reason, now))
    }

    /// Records the scores of `day`, replacing any recorded for it, in one transaction.
    pub fn record_risk_day(&self, day: i64, scores: &[RiskScore]) -> Result<(), StoreError> {
        dispatch!(self, record_risk_day(day, scores))
    }

    /// The recorded days from `first` to `last` (inclusive).
    pub fn risk_days(&self, first: i64, last: i64) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, risk_days(first, last))
    }

    /// The scores recorded from day `first` to `last` (inclusive), by day.
    pub fn risk_history(&self, first: i64, last: i64) -> Result<Vec<(i64, RiskScore)>, StoreError> {
        dispatch!(self, risk_history(first, last))
    }

    /// Records the alerts whose key is not recorded yet, in one transaction, and returns them
    /// with their numbers.
    pub fn record_alerts(&self, alerts: &[NewAlert]) -> Result<Vec<AlertRecord>, StoreError> {
        dispatch!(self, record_alerts(alerts))
    }

    /// Up to `limit` alerts numbered after `after`, oldest first.
    pub fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        dispatch!(self, alerts_after(after, limit))
    }

    /// The number of the last alert recorded (0 before the first).
    pub fn last_alert(&self) -> Result<u64, StoreError> {
        dispatch!(self, last_alert())
    }

    /// Beats this collector's liveness in a shared store and, when given, publishes the sites
    /// it has live sessions with. The embedded store has one collector: nothing to do.
    pub fn publish_live_sites(
        &self,
        instance: &str,
        sites: Option<&[SiteId]>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(()),
            Backend::Postgres(s) => s.publish_live_sites(instance, sites),
        }
    }

    /// The sites with a live session on another collector of a shared store that beat within
    /// `within`; none on the embedded store.
    pub fn live_sites_elsewhere(
        &self,
        instance: &str,
        within: std::time::Duration,
    ) -> Result<Vec<SiteId>, StoreError> {
        match &self.backend {
            Backend::Redb(_) => Ok(Vec::new()),
            Backend::Postgres(s) => s.live_sites_elsewhere(instance, within),
        }
    }

    /// Registers a new site.
    pub fn add_site(&self, site: &SiteRecord, actor: &str) -> Result<(), StoreError> {
        dispatch!(self, add_site(site, actor))
    }

    /// Revokes a site: its connections are refused from now on. Returns false if it was already
    /// revoked.
    pub fn revoke_site(
        &self,
        site: &SiteId,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        dispatch!(self, revoke_site(site, actor, now))
    }

    /// Issues a renewed certificate for a site that authenticated with its current one: the
    /// new certificate becomes current, the presented one stays accepted until the new one is
    /// first used.
    pub fn renew_cert<E: std::fmt::Display>(
        &self,
        site: &SiteId,
        presented: &[u8; 32],
        now: Timestamp,
        issue: impl FnOnce() -> Result<(Vec<u8>, Timestamp), E>,
    ) -> Result<Result<Vec<u8>, String>, StoreError> {
        dispatch!(self, renew_cert(site, presented, now, issue))
    }

    /// Notes that a site connected with its new certificate: the previous one is no longer
    /// accepted.
    pub fn retire_previous_cert(&self, site: &SiteId) -> Result<(), StoreError> {
        dispatch!(self, retire_previous_cert(site))
    }

    /// One site.
    pub fn site(&self, id: &SiteId) -> Result<Option<SiteRecord>, StoreError> {
        dispatch!(self, site(id))
    }

    /// All sites, by id.
    pub fn sites(&self) -> Result<Vec<SiteRecord>, StoreError> {
        dispatch!(self, sites())
    }

    /// Stores a token (by the hash of its secret) for a registered site.
    pub fn add_token(
        &self,
        site: &SiteId,
        secret_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
        actor: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, add_token(site, secret_hash, now, expires_at, actor))
    }

    /// Redeems a token and records the certificate `issue` returns, in one transaction: either
    /// the token is spent and the certificate recorded, or neither.
    pub fn redeem_token<E>(
        &self,
        site: &SiteId,
        secret_hash: &[u8; 32],
        now: Timestamp,
        issue: impl FnOnce() -> Result<(Vec<u8>, Timestamp), E>,
    ) -> Result<Result<Vec<u8>, TokenRefusal>, StoreError>
    where
        E: std::fmt::Display,
    {
        dispatch!(self, redeem_token(site, secret_hash, now, issue))
    }

    /// marks and gaps, and no earlier certificate is accepted. False if it was not revoked.
    pub fn reinstate_site(
        &self,
        site: &SiteId,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        dispatch!(self, reinstate_site(site, actor, reason, now))
    }

    /// Changes a site's name and, if given, its Kanwil.
    pub fn rename_site(
        &self,
        site: &SiteId,
        name: &str,
        kanwil: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        dispatch!(self, rename_site(site, name, kanwil, actor, now))
    }

    /// Removes a site registered by mistake, with its unused tokens. A site that ever stored a
    /// report is never removed (its reports must keep their site): revoke it instead. Returns
    /// the refusal in words, or `Ok(())`.
    pub fn remove_site(
        &self,
        site: &SiteId,
        actor: &str,
        now: Timestamp,
    ) -> Result<Result<(), String>, StoreError> {
        dispatch!(self, remove_site(site, actor, now))
    }

    /// Writes a consistent copy of the store to a new redb file at `path` (which must not
    /// exist), while other transactions go on.
    pub fn snapshot_to(&self, path: &Path) -> Result<SnapshotSummary, StoreError> {
        dispatch!(self, snapshot_to(path))
    }

    /// Records the engagement of media items (stored or about to be), each figure the newest
    /// read where one was given and the one held before where not, in one transaction.
    pub fn put_engagement(&self, items: &[(String, Engagement)]) -> Result<(), StoreError> {
        dispatch!(self, put_engagement(items))
    }

    /// The engagement of every media item that has one, by item id.
    pub fn engagement_all(&self) -> Result<HashMap<String, Engagement>, StoreError> {
        dispatch!(self, engagement_all())
    }

    /// Media items in arrival order, from `after` (inclusive), at most `limit`, each with its
    /// engagement.
    pub fn media_views(&self, after: u64, limit: usize) -> Result<Vec<MediaView>, StoreError> {
        dispatch!(self, media_views(after, limit))
    }

    /// Media items numbered below `before`, newest first, after skipping `skip`, at most
    /// `limit`, each with its number and engagement.
    pub fn media_views_newest(
        &self,
        before: u64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(u64, MediaView)>, StoreError> {
        dispatch!(self, media_views_newest(before, skip, limit))
    }

    /// The engagement of one media item.
    pub fn engagement(&self, id: &str) -> Result<Option<Engagement>, StoreError> {
        dispatch!(self, engagement(id))
    }

    /// The health of the source with this key.
    pub fn source_health(&self, key: &str) -> Result<Option<SourceHealth>, StoreError> {
        dispatch!(self, source_health(key))
    }

    /// Records a source's health under its key.
    pub fn put_source_health(&self, health: &SourceHealth) -> Result<(), StoreError> {
        dispatch!(self, put_source_health(health))
    }

    /// Records an edit; returns its number. The id of a story split out is
    /// `pisah-<number>` (the engine's ids all start `story-`, so the two never meet), set
    /// here whatever the caller put.
    pub fn add_story_edit(
        &self,
        edit: StoryEdit,
        note: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        dispatch!(self, add_story_edit(edit, note, actor, now))
    }

    /// Marks edit `number` undone; `None` if there is no such edit. Undoing an edit twice
    /// changes nothing the second time.
    pub fn undo_story_edit(
        &self,
        number: u64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<RecordedEdit>, StoreError> {
        dispatch!(self, undo_story_edit(number, actor, now))
    }

    /// The fleet record of `kind` under `key` (`store::fleet`).
    pub fn fleet_get(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, fleet_get(kind, key))
    }

    /// Every fleet record of `kind`, by key.
    pub fn fleet_list(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        dispatch!(self, fleet_list(kind))
    }

    /// Reads the fleet record of `kind` under `key` and writes what `change` makes of it, with
    /// `audit` when that changed anything, in one transaction (two collectors take turns).
    pub fn fleet_update<T>(
        &self,
        kind: &str,
        key: &str,
        audit: Option<super::fleet::FleetAudit>,
        change: impl FnOnce(Option<&[u8]>) -> Result<(super::fleet::FleetWrite, T), StoreError>,
    ) -> Result<T, StoreError> {
        dispatch!(self, fleet_update(kind, key, audit, change))
    }

    /// Every edit, oldest first, undone ones included.
    pub fn story_edits(&self) -> Result<Vec<RecordedEdit>, StoreError> {
        dispatch!(self, story_edits())
    }

    /// Adds a user; refuses an existing username.
    pub fn add_user(&self, user: &User, actor: &str) -> Result<(), StoreError> {
        dispatch!(self, add_user(user, actor))
    }

    /// The user with this name.
    pub fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, user(username))
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        dispatch!(self, users())
    }

    /// Disables a user; false if there is no such user.
    pub fn disable_user(&self, username: &str, actor: &str) -> Result<bool, StoreError> {
        dispatch!(self, disable_user(username, actor))
    }

    /// Sets a user's password hash (Argon2id, made by the CLI) and, if given, role; the user's
    /// sessions and tokens keep their role only until their next check. False if no such user.
    pub fn update_user(
        &self,
        username: &str,
        password_hash: Option<String>,
        role: Option<Role>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, update_user(username, password_hash, role, actor))
    }

    /// Stores an API token (its SHA-256) for a user, valid until `expires_at` (Unix ms).
    pub fn add_api_token(
        &self,
        hash: &[u8; 32],
        username: &str,
        expires_at: i64,
        actor: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, add_api_token(hash, username, expires_at, actor))
    }

    /// The user an API token (by its SHA-256) acts as, if the token exists and has not
    /// expired.
    pub fn api_token_user(&self, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        dispatch!(self, api_token_user(hash))
    }

    /// Every API token, expired ones included, by id.
    pub fn api_tokens(&self) -> Result<Vec<ApiTokenView>, StoreError> {
        dispatch!(self, api_tokens())
    }

    /// Revokes the API token with this id (see [`api_token_id`]); returns the user it acted
    /// as, or `None` if no token has this id.
    pub fn revoke_api_token(&self, id: &str, actor: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, revoke_api_token(id, actor))
    }

    /// Stores a new session under the SHA-256 of its id. In the same transaction, expired
    /// sessions are swept and, if the user already has `max_per_user` live sessions, the
    /// oldest are removed so that at most that many remain.
    pub fn add_session(
        &self,
        hash: &[u8; 32],
        session: &StoredSession,
        max_per_user: usize,
    ) -> Result<(), StoreError> {
        dispatch!(self, add_session(hash, session, max_per_user))
    }

    /// The live session stored under this SHA-256 of a session id; `None` if there is none or
    /// it has expired.
    pub fn session(&self, hash: &[u8; 32]) -> Result<Option<StoredSession>, StoreError> {
        dispatch!(self, session(hash))
    }

    /// Removes the session stored under this SHA-256 of a session id (logout); false if there
    /// was none.
    pub fn remove_session(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        dispatch!(self, remove_session(hash))
    }

    /// How many sessions (live or not yet swept) a user has.
    pub fn session_count(&self, username: &str) -> Result<usize, StoreError> {
        dispatch!(self, session_count(username))
    }

    /// Files an API token as tokens were kept before they expired (a username, no dates), as
    /// an older store holds them.
    #[cfg(test)]
    pub(crate) fn insert_legacy_api_token_for_tests(&self, hash: &[u8; 32], username: &str) {
        match &self.backend {
            Backend::Redb(s) => s.insert_legacy_api_token_for_tests(hash, username),
            Backend::Postgres(s) => s.insert_legacy_api_token_for_tests(hash, username),
        }
    }
}
