//! How reports come in: [`Store::apply_batch`], the exactly-once transaction, over the redb
//! `Ledger` of `pasopati_common::ingest`'s rules; the high-water marks; what a `Hello` and a
//! heartbeat leave behind; gaps, and the log of refusals.

use super::media::expect_attachments;
use super::report_log::{RecordReader, Records};
use super::reports::{
    add_shown, revision_range, shown_arrival, Quarantined, QuarantinedRef, StoredReport,
    StoredReportRef,
};
use super::sites::update_site;
use super::{
    decode, encode, encode_into, next_number, Health, RedbStore, SiteRecord, StoreError, BY_ID,
    HWM, META, QUARANTINE, REPORTS,
};
use bincode::{Decode, Encode};
use pasopati_common::frame::{Batch, Heartbeat, Limits, NackReason, RefusedReport};
use pasopati_common::ingest::{
    apply_examined_batch, examine, BatchVerdict, Examined, Ledger, Verdicts,
};
use pasopati_common::pii::{Finding, PiiGuard};
use pasopati_common::profile;
use pasopati_common::sync::HelloDecision;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, Report, ReportId, Seq, SiteId, Timestamp};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::Serialize;
use std::ops::RangeInclusive;

/// Layouts 1 to 3: report id → the site that first filed it. Every revision's record names its
/// site and only that site may store more, so the owner is read from the first revision held
/// ([`owner_of`]); layout 4's migration deletes this table, a fifth write per report.
const LEGACY_OWNERS: TableDefinition<&[u8], &str> = TableDefinition::new("owners");
/// (site, epoch, first seq) → (arrival number of that seq, length): a run of positions whose
/// seqs and arrival numbers both go up by one, as a batch's reports are stored. One entry per
/// run rather than one per report: a site draining alone writes one entry for all its batches,
/// and one insert per batch at most (see [`PositionRun`]).
pub(super) const POSITION_RUNS: TableDefinition<(&str, u64, u64), (u64, u64)> =
    TableDefinition::new("position_runs");
/// Layouts 1 to 3: (site, epoch, seq) → arrival number, one entry per report; layout 4's
/// migration turns it into [`POSITION_RUNS`] and deletes it.
const LEGACY_BY_POSITION: TableDefinition<(&str, u64, u64), u64> =
    TableDefinition::new("by_position");
/// (site, epoch, first missing seq) → gap record.
pub(super) const GAPS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("gaps");
/// (site, epoch, seq) → the verdict on a report refused or quarantined at that position, kept so
/// that a verdict whose answer was lost is named to the agent again.
pub(super) const VERDICTS: TableDefinition<(&str, u64, u64), &[u8]> =
    TableDefinition::new("verdicts");
/// Rejection number → rejection record.
pub(super) const REJECTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("rejections");
/// (site, received at in ms) → heartbeat, kept for seven days per site.
pub(super) const HEARTBEATS: TableDefinition<(&str, i64), &[u8]> =
    TableDefinition::new("heartbeats");
/// How long heartbeat history is kept.
const HEARTBEAT_HISTORY_MS: i64 = 7 * 86_400_000;
/// The counter of arrival numbers (stored and quarantined reports share it).
const NEXT_ARRIVAL: &str = "next_arrival";
/// The counter of rejection numbers.
const NEXT_REJECTION: &str = "next_rejection";

/// How a gap came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// A batch skipped seqs; it was refused and nothing after the gap was stored.
    SkippedSeqs,
    /// The agent no longer holds seqs the collector does not have: the collector lost them
    /// (restored from an older copy). They cannot be recovered from this agent.
    CollectorRollback,
    /// The collector holds seqs the agent has not given out: the agent's outbox was restored from
    /// an older copy. The agent starts a new epoch; reports are matched by id.
    AgentRollback,
}

impl GapKind {
    /// The kind's name, as `gaps` prints it and JSON shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::SkippedSeqs => "skipped_seqs",
            GapKind::CollectorRollback => "collector_rollback",
            GapKind::AgentRollback => "agent_rollback",
        }
    }
}

impl std::fmt::Display for GapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded gap.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Gap {
    pub site: SiteId,
    pub epoch: Epoch,
    pub from: Seq,
    pub to: Seq,
    pub kind: GapKind,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub times: u64,
}

/// A recorded refusal of a peer's frame or batch.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Rejection {
    pub at: Timestamp,
    pub site: Option<SiteId>,
    pub reason: String,
}

/// What applying a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored (or recognised) everything; `hwm` is the new high-water mark.
    Stored {
        hwm: Seq,
        stored: Vec<StoredReport>,
        replayed: u64,
        known_by_id: u64,
        /// Reports held in quarantine (inmate identity data found), not stored, with where
        /// the data is (never the value).
        quarantined: Vec<RefusedReport>,
        /// Reports refused (against the rules, or another site's report); their seqs are
        /// consumed and each is in the rejection log.
        refused: Vec<RefusedReport>,
    },
    /// Refused; nothing was stored.
    Refused { hwm: Seq, reason: NackReason },
}

impl RedbStore {
    /// The high-water mark of (site, epoch); 0 if never seen.
    pub fn hwm(&self, site: &SiteId, epoch: Epoch) -> Result<Seq, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HWM)?;
        let value = table.get((site.as_str(), epoch.0))?;
        Ok(value.map(|v| v.value()).unwrap_or(0))
    }

    /// The lowest seq of (site, epoch) from `from` on with a kept verdict, which a `Welcome`
    /// must stop below (see `CollectorSession::hwm_read`).
    pub fn first_verdict_from(
        &self,
        site: &SiteId,
        epoch: Epoch,
        from: Seq,
    ) -> Result<Option<Seq>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(VERDICTS)?;
        let mut range =
            table.range((site.as_str(), epoch.0, from)..=(site.as_str(), epoch.0, Seq::MAX))?;
        Ok(match range.next() {
            Some(entry) => Some(entry?.0.value().2),
            None => None,
        })
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
        let mut txn = self.db.begin_write()?;
        if !decision.records_more_than_seen() {
            self.telemetry(&mut txn)?;
        }
        {
            if let HelloDecision::Welcome {
                hwm,
                lost,
                rerequested,
                agent_behind,
            } = decision
            {
                let mut gaps = txn.open_table(GAPS)?;
                if let Some(range) = lost {
                    upsert_gap(
                        &mut gaps,
                        site,
                        epoch,
                        *range.start(),
                        *range.end(),
                        GapKind::CollectorRollback,
                        now,
                    )?;
                }
                if let Some(set) = decision.hwm_to_record() {
                    txn.open_table(HWM)?.insert((site.as_str(), epoch.0), set)?;
                }
                if let Some(range) = rerequested {
                    record_rejection(&txn, Some(site), rerequested_message(epoch, range), now)?;
                }
                if *agent_behind {
                    upsert_gap(
                        &mut gaps,
                        site,
                        epoch,
                        *hwm,
                        *hwm,
                        GapKind::AgentRollback,
                        now,
                    )?;
                }
            }
            update_site(&txn, site, |record| note_hello(record, agent_time, now))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Makes `txn` a record of what a site told about itself (a heartbeat, that it was seen,
    /// what its agent runs):
    /// committed without a sync to disk of its own, it becomes durable with the store's next
    /// durable commit (the next group commit, or closing the store). Lost in a crash, it is
    /// told again at the next heartbeat; the store stays whole either way.
    pub(super) fn telemetry(&self, txn: &mut redb::WriteTransaction) -> Result<(), StoreError> {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        self.unsynced
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether something was committed without a sync to disk of its own since the store was
    /// opened ([`RedbStore::telemetry`]), so that closing it makes a durable commit.
    #[cfg(test)]
    pub(crate) fn awaits_durable_commit(&self) -> bool {
        self.unsynced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records a heartbeat: the site's latest health, its clock offset, and the history.
    pub fn record_heartbeat(
        &self,
        site: &SiteId,
        heartbeat: &Heartbeat,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        self.telemetry(&mut txn)?;
        {
            update_site(&txn, site, |record| note_heartbeat(record, heartbeat, now))?;
            let mut history = txn.open_table(HEARTBEATS)?;
            // Two heartbeats within one millisecond keep both: the later one moves up a bit.
            let mut at = now.0;
            while history.get((site.as_str(), at))?.is_some() {
                at += 1;
            }
            history.insert((site.as_str(), at), encode(heartbeat).as_slice())?;
            let cutoff = now.0 - HEARTBEAT_HISTORY_MS;
            history.retain_in(
                (site.as_str(), i64::MIN)..(site.as_str(), cutoff),
                |_, _| false,
            )?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A site's heartbeat history, oldest first.
    pub fn heartbeats(&self, site: &SiteId) -> Result<Vec<(Timestamp, Heartbeat)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HEARTBEATS)?;
        let mut out = Vec::new();
        for entry in table.range((site.as_str(), i64::MIN)..=(site.as_str(), i64::MAX))? {
            let (k, v) = entry?;
            out.push((Timestamp(k.value().1), decode(v.value())?));
        }
        Ok(out)
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
        let txn = self.db.begin_write()?;
        let batches = jobs.len() as u64;
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut appends = self.log.appends(&txn)?;
        for job in jobs {
            let records = Records {
                log: &self.log,
                appends: &mut appends,
            };
            outcomes.push(apply_one(&txn, records, job, limits, guard)?);
        }
        profile::COLLECTOR_COMMIT.time(|| {
            // The reports' bytes are on disk before the commit that names them.
            profile::COLLECTOR_LOG_WRITE.time(|| self.log.write(&appends, &txn))?;
            txn.commit().map_err(StoreError::from)
        })?;
        self.log.recycle(appends);
        profile::COLLECTOR_COMMIT.add_items(batches);
        Ok(outcomes)
    }

    /// Records a refusal that is not about a batch (a malformed frame, a bad certificate).
    pub fn record_rejection(
        &self,
        site: Option<&SiteId>,
        reason: String,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        record_rejection(&txn, site, reason, Timestamp::now())?;
        txn.commit()?;
        Ok(())
    }

    /// All recorded gaps.
    pub fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        self.read_all(GAPS)
    }

    /// All recorded rejections, oldest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        self.read_all(REJECTIONS)
    }
}

/// One batch waiting for the group commit.
#[derive(Clone, Debug)]
pub struct BatchJob {
    pub site: SiteId,
    pub epoch: Epoch,
    pub batch: Batch,
    pub now: Timestamp,
    /// The batch examined at `now` ([`BatchJob::examine`]) before it came to the store's
    /// writer; when absent, the writer examines it.
    pub examined: Option<Vec<Examined>>,
}

impl BatchJob {
    /// Works out what the rules judge of each report without the store (checks, hashes, the
    /// PII guard), so the store's one writer does not have to.
    pub fn examine(&mut self, guard: &PiiGuard) {
        self.examined = Some(examined(&self.batch, guard, self.now));
    }
}

pub(super) fn examined(batch: &Batch, guard: &PiiGuard, now: Timestamp) -> Vec<Examined> {
    let _examining = profile::COLLECTOR_EXAMINE.start();
    profile::COLLECTOR_EXAMINE.add_items(batch.reports.len() as u64);
    examine(
        batch,
        Taxonomy::builtin(),
        |report| profile::COLLECTOR_PII.time(|| guard.check_report(report)),
        now,
    )
}

/// Applies one batch of a group inside the group's transaction. The reports it stores move
/// from the batch into the outcome, uncopied.
fn apply_one(
    txn: &redb::WriteTransaction,
    records: Records<'_>,
    job: BatchJob,
    limits: &Limits,
    guard: &PiiGuard,
) -> Result<BatchOutcome, StoreError> {
    let (site, epoch, batch, now) = (&job.site, job.epoch, &job.batch, job.now);
    let hwm = txn
        .open_table(HWM)?
        .get((site.as_str(), epoch.0))?
        .map(|v| v.value())
        .unwrap_or(0);
    let examined_here;
    let examined = match &job.examined {
        Some(examined) => examined,
        None => {
            examined_here = examined(batch, guard, now);
            &examined_here
        }
    };
    let (verdict, held) = {
        let _rules = profile::COLLECTOR_RULES.start();
        profile::COLLECTOR_RULES.add_items(batch.reports.len() as u64);
        let mut ledger = RedbLedger::open(txn, records, site, epoch, now)?;
        let verdict = apply_examined_batch(&mut ledger, site, hwm, batch, examined, limits)?;
        let held = match &verdict {
            BatchVerdict::Applied(applied) => ledger.finish(applied.hwm)?,
            BatchVerdict::Refused { .. } => Vec::new(),
        };
        (verdict, held)
    };
    match verdict {
        BatchVerdict::Refused {
            hwm,
            reason,
            skipped,
        } => {
            if let Some(range) = skipped {
                let mut gaps = txn.open_table(GAPS)?;
                upsert_gap(
                    &mut gaps,
                    site,
                    epoch,
                    *range.start(),
                    *range.end(),
                    GapKind::SkippedSeqs,
                    now,
                )?;
            }
            let message = batch_refusal_message(batch, epoch, hwm, &reason);
            record_rejection(txn, Some(site), message, now)?;
            Ok(BatchOutcome::Refused { hwm, reason })
        }
        BatchVerdict::Applied(applied) => {
            for r in &applied.refused {
                record_rejection(txn, Some(site), report_refusal_message(epoch, r), now)?;
            }
            touch_site(txn, site, now, held.len() as u64)?;
            let stored = stored_reports(job, held)?;
            Ok(BatchOutcome::Stored {
                hwm: applied.hwm,
                stored,
                replayed: applied.replayed,
                known_by_id: applied.known_by_id,
                quarantined: applied.quarantined,
                refused: applied.refused,
            })
        }
    }
}

/// A report of the batch stored by this transaction: where, and its content hash.
struct Held {
    seq: Seq,
    arrival: u64,
    content_hash: [u8; 32],
}

/// The reports `held` of `job`'s batch, moved out of it: the rules hold the batch's report at
/// each seq they hold ([`Ledger::hold`]), so the report at that seq is the one stored.
fn stored_reports(job: BatchJob, held: Vec<Held>) -> Result<Vec<StoredReport>, StoreError> {
    let first_seq = job.batch.first_seq;
    let mut reports: Vec<Option<Report>> = job.batch.reports.into_iter().map(Some).collect();
    held.into_iter()
        .map(|h| {
            let report = h
                .seq
                .checked_sub(first_seq)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| reports.get_mut(i))
                .and_then(Option::take)
                .ok_or_else(|| {
                    StoreError::Internal(format!(
                        "site {} epoch {}: seq {} was stored but is not in its batch from seq \
                         {first_seq}",
                        job.site, job.epoch, h.seq
                    ))
                })?;
            debug_assert_eq!(report.content_hash(), h.content_hash, "seq {}", h.seq);
            Ok(StoredReport {
                arrival: h.arrival,
                site: job.site.clone(),
                epoch: job.epoch,
                seq: h.seq,
                report,
                content_hash: h.content_hash,
                received_at: job.now,
            })
        })
        .collect()
}

/// The ingest rules' ledger over one write transaction: positions, the (id, revision) index,
/// the latest revision shown, and arrival numbers (owners are read from the revisions).
struct RedbLedger<'t, 'a> {
    txn: &'t redb::WriteTransaction,
    /// Where the reports' bytes go, and are read back from.
    records: Records<'a>,
    site: SiteId,
    epoch: Epoch,
    now: Timestamp,
    reports: redb::Table<'t, u64, &'static [u8]>,
    quarantine: redb::Table<'t, u64, &'static [u8]>,
    position_runs: redb::Table<'t, (&'static str, u64, u64), (u64, u64)>,
    /// The run of positions this batch is placing, written at [`RedbLedger::finish`] or when
    /// a position that does not extend it comes.
    run: Option<PositionRun>,
    by_id: redb::Table<'t, &'static [u8], u64>,
    /// Reports given their first clean revision by this batch: that many more are shown.
    newly_shown: u64,
    verdicts: redb::Table<'t, (&'static str, u64, u64), &'static [u8]>,
    next_arrival: u64,
    held: Vec<Held>,
    /// The buffer each record is encoded into before it is written.
    record: Vec<u8>,
    /// A report id whose owner this transaction found none of ([`Ledger::owner`]: no revision
    /// held), until a revision of it is held: the rules then ask of it twice more (the
    /// revision's hash, whether one is shown), both answered "none" without looking again.
    /// Most reports of a backlog are new.
    unseen: Option<ReportId>,
}

/// A verdict kept by position (the value of [`VERDICTS`]).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(super) struct KeptVerdict {
    pub(super) quarantined: bool,
    pub(super) report: RefusedReport,
}

impl<'t, 'a> RedbLedger<'t, 'a> {
    fn open(
        txn: &'t redb::WriteTransaction,
        records: Records<'a>,
        site: &SiteId,
        epoch: Epoch,
        now: Timestamp,
    ) -> Result<RedbLedger<'t, 'a>, StoreError> {
        let next_arrival = {
            let meta = txn.open_table(META)?;
            let next = meta.get(NEXT_ARRIVAL)?.map(|v| v.value()).unwrap_or(0);
            next
        };
        Ok(RedbLedger {
            txn,
            records,
            site: site.clone(),
            epoch,
            now,
            reports: txn.open_table(REPORTS)?,
            quarantine: txn.open_table(QUARANTINE)?,
            position_runs: txn.open_table(POSITION_RUNS)?,
            run: None,
            by_id: txn.open_table(BY_ID)?,
            newly_shown: 0,
            verdicts: txn.open_table(VERDICTS)?,
            next_arrival,
            held: Vec::new(),
            record: Vec::new(),
            unseen: None,
        })
    }

    /// Whether no revision of `id` is held, as far as this transaction knows without looking.
    fn known_unseen(&self, id: &ReportId) -> bool {
        self.unseen.as_ref() == Some(id)
    }

    /// Moves the hwm and the arrival counter with the data, writes the last run of positions;
    /// returns where each report stored by this batch went.
    fn finish(mut self, hwm: Seq) -> Result<Vec<Held>, StoreError> {
        if let Some(run) = self.run.take() {
            write_run(&mut self.position_runs, &self.site, self.epoch, run)?;
        }
        let mut meta = self.txn.open_table(META)?;
        meta.insert(NEXT_ARRIVAL, self.next_arrival)?;
        add_shown(&mut meta, self.newly_shown)?;
        let mut hwm_table = self.txn.open_table(HWM)?;
        let old = hwm_table
            .get((self.site.as_str(), self.epoch.0))?
            .map(|v| v.value())
            .unwrap_or(0);
        if hwm > old {
            hwm_table.insert((self.site.as_str(), self.epoch.0), hwm)?;
        }
        Ok(self.held)
    }

    /// Places report `seq` of this batch at `arrival`: it extends the run being placed, or
    /// writes that run and begins another.
    fn place(&mut self, seq: Seq, arrival: u64) -> Result<(), StoreError> {
        if let Some(run) = &mut self.run {
            if run.extend(seq, arrival) {
                return Ok(());
            }
        }
        let begun = PositionRun::new(seq, arrival);
        if let Some(done) = self.run.replace(begun) {
            write_run(&mut self.position_runs, &self.site, self.epoch, done)?;
        }
        Ok(())
    }
}

impl Ledger for RedbLedger<'_, '_> {
    type Error = StoreError;

    fn hash_at(&mut self, seq: Seq) -> Result<Option<[u8; 32]>, StoreError> {
        let placing = self.run.as_ref().and_then(|run| run.arrival_of(seq));
        let arrival = match placing {
            Some(a) => Some(a),
            None => arrival_at(&self.position_runs, &self.site, self.epoch, seq)?,
        };
        match arrival {
            Some(a) => stored_hash(&self.records.reader(), &self.reports, &self.quarantine, a),
            None => Ok(None),
        }
    }

    fn hash_of_revision(
        &mut self,
        id: &ReportId,
        revision: u32,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        if self.known_unseen(id) {
            return Ok(None);
        }
        let key = revision_key(id, revision);
        let arrival = self.by_id.get(&key[..])?.map(|v| v.value());
        match arrival {
            Some(a) => stored_hash(&self.records.reader(), &self.reports, &self.quarantine, a),
            None => Ok(None),
        }
    }

    fn owner(&mut self, id: &ReportId) -> Result<Option<SiteId>, StoreError> {
        let owner = owner_of(
            &self.records.reader(),
            &self.by_id,
            &self.reports,
            &self.quarantine,
            id,
        )?;
        if owner.is_none() {
            // No revision of it is in the reports or the quarantine, so none has a hash or is
            // shown either.
            self.unseen = Some(*id);
        }
        Ok(owner)
    }

    fn hold(
        &mut self,
        seq: Seq,
        report: &Report,
        hash: [u8; 32],
        findings: Vec<Finding>,
    ) -> Result<(), StoreError> {
        let arrival = self.next_arrival;
        let record = StoredReportRef {
            arrival,
            site: &self.site,
            epoch: self.epoch,
            seq,
            report,
            content_hash: &hash,
            received_at: self.now,
        };
        if findings.is_empty() {
            // The highest clean revision is the one shown (`reports::shown_arrival`), which
            // takes nothing to record; a report with no clean revision before is one more shown.
            if self.known_unseen(&report.id)
                || shown_arrival(&self.by_id, &self.reports, &report.id)?.is_none()
            {
                self.newly_shown += 1;
            }
            encode_into(&record, &mut self.record)?;
            let in_log = self.records.appends.push(&self.record)?;
            self.reports.insert(arrival, &in_log[..])?;
            expect_attachments(self.txn, &self.site, &report.attachments)?;
            self.held.push(Held {
                seq,
                arrival,
                content_hash: hash,
            });
        } else {
            let quarantined = QuarantinedRef {
                report: record,
                findings: &findings,
            };
            encode_into(&quarantined, &mut self.record)?;
            self.quarantine.insert(arrival, self.record.as_slice())?;
        }
        let key = revision_key(&report.id, report.revision);
        self.place(seq, arrival)?;
        self.by_id.insert(&key[..], arrival)?;
        if self.known_unseen(&report.id) {
            self.unseen = None;
        }
        self.next_arrival += 1;
        Ok(())
    }

    fn link(&mut self, seq: Seq, report: &Report) -> Result<(), StoreError> {
        let key = revision_key(&report.id, report.revision);
        let arrival = self.by_id.get(&key[..])?.map(|v| v.value());
        if let Some(a) = arrival {
            self.place(seq, a)?;
        }
        Ok(())
    }

    fn remember_verdicts(&mut self, verdicts: &Verdicts) -> Result<(), StoreError> {
        let tagged = verdicts
            .refused
            .iter()
            .map(|r| (false, r))
            .chain(verdicts.quarantined.iter().map(|r| (true, r)));
        for (quarantined, report) in tagged {
            let kept = KeptVerdict {
                quarantined,
                report: report.clone(),
            };
            self.verdicts.insert(
                (self.site.as_str(), self.epoch.0, report.seq),
                &encode(&kept)[..],
            )?;
        }
        Ok(())
    }

    fn verdicts_within(&mut self, range: RangeInclusive<Seq>) -> Result<Verdicts, StoreError> {
        let (site, epoch) = (self.site.as_str(), self.epoch.0);
        let mut found = Verdicts::default();
        for entry in self
            .verdicts
            .range((site, epoch, *range.start())..=(site, epoch, *range.end()))?
        {
            let kept: KeptVerdict = decode(entry?.1.value())?;
            match kept.quarantined {
                true => found.quarantined.push(kept.report),
                false => found.refused.push(kept.report),
            }
        }
        Ok(found)
    }
}

/// A run of positions of one (site, epoch): `len` seqs from `first_seq`, stored at as many
/// arrival numbers from `first_arrival`. Within an epoch positions are placed in seq order, so
/// runs never overlap, and the run holding a seq is the last one beginning at or before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PositionRun {
    pub(super) first_seq: Seq,
    pub(super) first_arrival: u64,
    pub(super) len: u64,
}

impl PositionRun {
    fn new(seq: Seq, arrival: u64) -> PositionRun {
        PositionRun {
            first_seq: seq,
            first_arrival: arrival,
            len: 1,
        }
    }

    /// The run of a [`POSITION_RUNS`] entry.
    pub(super) fn from_entry(first_seq: Seq, (first_arrival, len): (u64, u64)) -> PositionRun {
        PositionRun {
            first_seq,
            first_arrival,
            len,
        }
    }

    /// The arrival number of `seq`, if the run holds it.
    pub(super) fn arrival_of(&self, seq: Seq) -> Option<u64> {
        let offset = seq.checked_sub(self.first_seq)?;
        (offset < self.len).then(|| self.first_arrival + offset)
    }

    /// Takes in the position just past the run if it is `arrival`, just past its arrivals.
    fn extend(&mut self, seq: Seq, arrival: u64) -> bool {
        let follows = self.follows_on(&PositionRun::new(seq, arrival));
        if follows {
            self.len += 1;
        }
        follows
    }

    /// Whether `next` begins just past this run, in seqs and in arrivals.
    fn follows_on(&self, next: &PositionRun) -> bool {
        self.first_seq.checked_add(self.len) == Some(next.first_seq)
            && self.first_arrival.checked_add(self.len) == Some(next.first_arrival)
    }
}

/// The arrival number of the report at (`site`, `epoch`, `seq`), if one is placed there.
pub(super) fn arrival_at(
    runs: &impl ReadableTable<(&'static str, u64, u64), (u64, u64)>,
    site: &SiteId,
    epoch: Epoch,
    seq: Seq,
) -> Result<Option<u64>, StoreError> {
    let key = (site.as_str(), epoch.0);
    let Some(entry) = runs
        .range((key.0, key.1, 0)..=(key.0, key.1, seq))?
        .next_back()
    else {
        return Ok(None);
    };
    let (k, v) = entry?;
    Ok(PositionRun::from_entry(k.value().2, v.value()).arrival_of(seq))
}

/// Writes `run` of (`site`, `epoch`), joined to the run before it when it continues that one
/// (the next batch of a site draining alone), so the table keeps one entry for both.
fn write_run(
    runs: &mut redb::Table<(&'static str, u64, u64), (u64, u64)>,
    site: &SiteId,
    epoch: Epoch,
    run: PositionRun,
) -> Result<(), StoreError> {
    let (site, epoch) = (site.as_str(), epoch.0);
    let before = match runs
        .range((site, epoch, 0)..(site, epoch, run.first_seq))?
        .next_back()
    {
        Some(entry) => {
            let (k, v) = entry?;
            Some(PositionRun::from_entry(k.value().2, v.value()))
        }
        None => None,
    };
    let joined = match before {
        Some(mut before) if before.follows_on(&run) => {
            before.len += run.len;
            before
        }
        _ => run,
    };
    runs.insert(
        (site, epoch, joined.first_seq),
        (joined.first_arrival, joined.len),
    )?;
    Ok(())
}

/// Layout 4's migration: turns the one-entry-per-report positions of layouts 1 to 3 into runs,
/// in key order, and deletes the old table.
pub(super) fn positions_into_runs(txn: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let mut written = 0u64;
    if !has_table(txn, LEGACY_BY_POSITION)? {
        return Ok(0);
    }
    {
        let legacy = txn.open_table(LEGACY_BY_POSITION)?;
        let mut runs = txn.open_table(POSITION_RUNS)?;
        let mut open: Option<(String, u64, PositionRun)> = None;
        for entry in legacy.iter()? {
            let (k, v) = entry?;
            let (site, epoch, seq) = k.value();
            let arrival = v.value();
            if let Some((s, e, run)) = &mut open {
                if s == site && *e == epoch && run.extend(seq, arrival) {
                    continue;
                }
                runs.insert(
                    (s.as_str(), *e, run.first_seq),
                    (run.first_arrival, run.len),
                )?;
                written += 1;
            }
            open = Some((site.to_owned(), epoch, PositionRun::new(seq, arrival)));
        }
        if let Some((s, e, run)) = open {
            runs.insert((s.as_str(), e, run.first_seq), (run.first_arrival, run.len))?;
            written += 1;
        }
    }
    txn.delete_table(LEGACY_BY_POSITION)?;
    Ok(written)
}

/// Layout 4's migration: deletes the owners table of layouts 1 to 3 (owners are read from the
/// revisions now, [`owner_of`]).
pub(super) fn forget_owners(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    if has_table(txn, LEGACY_OWNERS)? {
        txn.delete_table(LEGACY_OWNERS)?;
    }
    Ok(())
}

/// Whether the store has the table `definition` names. A migration looks before it opens an
/// old table: opening a missing one in a write transaction makes it, and redb 3.1 cannot commit
/// a table made and deleted in one transaction.
pub(super) fn has_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::WriteTransaction,
    definition: TableDefinition<K, V>,
) -> Result<bool, StoreError> {
    let name = definition.name();
    let found = txn.list_tables()?.any(|t| t.name() == name);
    Ok(found)
}

/// The by-id key of a report revision: its id and its revision, big-endian.
fn revision_key(id: &ReportId, revision: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&id.0);
    key[16..].copy_from_slice(&revision.to_be_bytes());
    key
}

/// The site that owns report `id`: the one that first filed it, the only one that may store
/// more of its revisions. Every revision held is in the reports or the quarantine under its arrival number (a release
/// keeps the number, a purge keeps the record's site), and all of them are that site's, since
/// the rules refuse another site's; so the first one found names the owner.
pub(super) fn owner_of(
    log: &RecordReader<'_>,
    by_id: &impl ReadableTable<&'static [u8], u64>,
    reports: &impl ReadableTable<u64, &'static [u8]>,
    quarantine: &impl ReadableTable<u64, &'static [u8]>,
    id: &ReportId,
) -> Result<Option<SiteId>, StoreError> {
    let (from, to) = revision_range(id);
    for entry in by_id.range(&from[..]..=&to[..])? {
        let arrival = entry?.1.value();
        if let Some(v) = reports.get(arrival)? {
            return Ok(Some(log.report(v.value())?.site));
        }
        if let Some(v) = quarantine.get(arrival)? {
            return Ok(Some(decode::<Quarantined>(v.value())?.report.site));
        }
    }
    Ok(None)
}

/// The content hash of the report at `arrival`, stored or quarantined.
fn stored_hash(
    log: &RecordReader<'_>,
    reports: &redb::Table<u64, &'static [u8]>,
    quarantine: &redb::Table<u64, &'static [u8]>,
    arrival: u64,
) -> Result<Option<[u8; 32]>, StoreError> {
    if let Some(v) = reports.get(arrival)? {
        return Ok(Some(log.report(v.value())?.content_hash));
    }
    match quarantine.get(arrival)? {
        Some(v) => Ok(Some(decode::<Quarantined>(v.value())?.report.content_hash)),
        None => Ok(None),
    }
}

/// Records a gap of (site, epoch) from `from` to `to`, or notes one seen before again.
fn upsert_gap(
    gaps: &mut redb::Table<(&'static str, u64, u64), &'static [u8]>,
    site: &SiteId,
    epoch: Epoch,
    from: Seq,
    to: Seq,
    kind: GapKind,
    now: Timestamp,
) -> Result<(), StoreError> {
    let key = (site.as_str(), epoch.0, from);
    let existing: Option<Gap> = gaps.get(key)?.map(|v| decode(v.value())).transpose()?;
    let gap = merged_gap(existing, site, epoch, from..=to, kind, now);
    gaps.insert(key, encode(&gap).as_slice())?;
    Ok(())
}

/// The gap of (site, epoch) from `range`'s start to its end as recorded now: a new one, or
/// `existing` (the gap recorded at that start) seen again.
pub(super) fn merged_gap(
    existing: Option<Gap>,
    site: &SiteId,
    epoch: Epoch,
    range: RangeInclusive<Seq>,
    kind: GapKind,
    now: Timestamp,
) -> Gap {
    match existing {
        Some(mut g) if g.kind == kind => {
            g.to = g.to.max(*range.end());
            g.last_seen = now;
            g.times += 1;
            g
        }
        _ => Gap {
            site: site.clone(),
            epoch,
            from: *range.start(),
            to: *range.end(),
            kind,
            first_seen: now,
            last_seen: now,
            times: 1,
        },
    }
}

/// What the rejection log says of a batch refused whole.
pub(super) fn batch_refusal_message(
    batch: &Batch,
    epoch: Epoch,
    hwm: Seq,
    reason: &NackReason,
) -> String {
    match reason {
        NackReason::Conflict { seq } if *seq <= hwm => {
            format!("batch refused: epoch {epoch} {reason}; the stored report is kept")
        }
        NackReason::Conflict { seq } => match seq
            .checked_sub(batch.first_seq)
            .and_then(|i| batch.reports.get(i as usize))
        {
            Some(report) => format!(
                "batch refused: report {} arrived again with different content",
                report.id
            ),
            None => format!("batch refused: {reason}"),
        },
        _ => format!("batch refused: {reason}"),
    }
}

/// What the rejection log says of one report refused within a batch.
pub(super) fn report_refusal_message(epoch: Epoch, r: &RefusedReport) -> String {
    format!(
        "report {} revision {} (epoch {epoch}, seq {}) refused, not stored: {}",
        r.id, r.revision, r.seq, r.reason
    )
}

/// What the rejection log says when a `Hello` shows the collector lost acknowledged seqs.
pub(super) fn rerequested_message(epoch: Epoch, range: &RangeInclusive<Seq>) -> String {
    format!(
        "rollback detected for epoch {epoch}: seqs {}..={} were acknowledged earlier but are \
         not in this store; the agent sends them again",
        range.start(),
        range.end()
    )
}

/// A site's record after a `Hello` with the agent's clock at `agent_time`.
pub(super) fn note_hello(record: &mut SiteRecord, agent_time: Timestamp, now: Timestamp) {
    record.last_seen_at = Some(now);
    record.clock_offset_ms = Some(agent_time.millis_since(now));
}

/// A site's record after a heartbeat.
pub(super) fn note_heartbeat(record: &mut SiteRecord, heartbeat: &Heartbeat, now: Timestamp) {
    let previous_backlog = record.health.as_ref().map(|h| h.heartbeat.backlog);
    record.health = Some(Health {
        heartbeat: heartbeat.clone(),
        received_at: now,
        previous_backlog,
    });
    record.clock_offset_ms = Some(heartbeat.agent_time.millis_since(now));
    record.last_seen_at = Some(now);
}

/// A site's record after a batch of it stored `new_reports` new reports.
pub(super) fn note_batch(record: &mut SiteRecord, now: Timestamp, new_reports: u64) {
    record.last_seen_at = Some(now);
    record.reports += new_reports;
    if new_reports > 0 {
        record.last_report_at = Some(now);
    }
}

/// Records a refusal within `txn`, under the next rejection number.
fn record_rejection(
    txn: &redb::WriteTransaction,
    site: Option<&SiteId>,
    reason: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let n = next_number(&mut txn.open_table(META)?, NEXT_REJECTION, 0)?;
    let record = Rejection {
        at: now,
        site: site.cloned(),
        reason,
    };
    txn.open_table(REJECTIONS)?
        .insert(n, encode(&record).as_slice())?;
    Ok(())
}

/// Notes contact with `site` (and the reports a batch of it stored) within `txn`.
fn touch_site(
    txn: &redb::WriteTransaction,
    site: &SiteId,
    now: Timestamp,
    new_reports: u64,
) -> Result<(), StoreError> {
    update_site(txn, site, |record| note_batch(record, now, new_reports))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{apply, batch, redb_store, report, site, store, T0};
    use super::*;
    use crate::store::Store;
    use redb::ReadableTableMetadata;

    const E: Epoch = Epoch(9);

    /// Revision `revision` of `report`, changed by `change`.
    fn revision_of(report: &Report, revision: u32, change: impl FnOnce(&mut Report)) -> Report {
        let mut next = report.clone();
        next.revision = revision;
        change(&mut next);
        next
    }

    /// What a stored batch did: hwm, reports stored, reports quarantined, reports refused.
    fn stored_outcome(out: BatchOutcome) -> (Seq, usize, u64, Vec<RefusedReport>) {
        match out {
            BatchOutcome::Stored {
                hwm,
                stored,
                quarantined,
                refused,
                ..
            } => (hwm, stored.len(), quarantined.len() as u64, refused),
            other => panic!("{other:?}"),
        }
    }

    /// A stored report is written from its batch without a copy ([`StoredReportRef`]): the
    /// bytes are those of the [`StoredReport`] it reads back as, and the outcome hands over the
    /// batch's own reports at their seqs, replays left out.
    #[test]
    fn a_report_is_written_as_its_record_and_handed_over_from_its_batch() {
        let record = StoredReport {
            arrival: 7,
            site: site(),
            epoch: E,
            seq: 3,
            report: report(3),
            content_hash: [5; 32],
            received_at: Timestamp(T0),
        };
        let borrowed = StoredReportRef {
            arrival: record.arrival,
            site: &record.site,
            epoch: record.epoch,
            seq: record.seq,
            report: &record.report,
            content_hash: &record.content_hash,
            received_at: record.received_at,
        };
        let mut buf = vec![1, 2, 3];
        encode_into(&borrowed, &mut buf).unwrap();
        assert_eq!(buf, encode(&record));
        // An invented mobile number, so that there are findings to encode.
        let mut carrying = report(3);
        carrying.body = "Hubungi 081234567890".into();
        let findings = PiiGuard::default().check_report(&carrying);
        assert!(!findings.is_empty());
        let quarantined = QuarantinedRef {
            report: borrowed,
            findings: &findings,
        };
        encode_into(&quarantined, &mut buf).unwrap();
        assert_eq!(
            buf,
            encode(&Quarantined {
                report: record.clone(),
                findings: findings.clone(),
            })
        );

        let (_dir, store) = redb_store();
        let now = Timestamp(T0 + 10);
        let first = apply(&store, &site(), E, &batch(1, 3), now);
        // Seqs 2 and 3 again, then 4 and 5: only the new ones are stored and handed over.
        let second = apply(&store, &site(), E, &batch(2, 4), now);
        let mut handed = Vec::new();
        for out in [first, second] {
            let BatchOutcome::Stored { stored, .. } = out else {
                panic!("{out:?}")
            };
            handed.extend(stored);
        }
        let seqs: Vec<(Seq, Report)> = handed.iter().map(|r| (r.seq, r.report.clone())).collect();
        let filed: Vec<(Seq, Report)> = (1..=5).map(|seq| (seq, report(seq))).collect();
        assert_eq!(seqs, filed);
        let read = store
            .reports(&super::super::ReportQuery::default())
            .unwrap();
        assert_eq!(read, handed);
    }

    /// A heartbeat and a plain `Hello` are committed without a sync to disk of their own, and
    /// a clean close keeps them: reopened, the store holds the heartbeat and the site's clock.
    #[test]
    fn heartbeats_and_plain_hellos_survive_a_clean_close() {
        let (dir, store) = store();
        let heartbeat = Heartbeat {
            backlog: 3,
            ..pasopati_common::fixtures::heartbeat(Timestamp(T0 - 1_500), "1.0.0")
        };
        store
            .record_heartbeat(&site(), &heartbeat, Timestamp(T0))
            .unwrap();
        let plain = HelloDecision::Welcome {
            hwm: 0,
            lost: None,
            rerequested: None,
            agent_behind: false,
        };
        assert!(!plain.records_more_than_seen());
        let later = Timestamp(T0 + 60_000);
        store
            .record_hello(&site(), E, &plain, Timestamp(later.0 - 2_000), later)
            .unwrap();
        drop(store);
        let store = super::super::fixtures::open(dir.path());
        let kept = store.heartbeats(&site()).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, heartbeat);
        let record = store.site(&site()).unwrap().unwrap();
        assert_eq!(record.last_seen_at, Some(later));
        assert_eq!(record.clock_offset_ms, Some(-2_000));
    }

    /// Registers a second site, `rutan-lain`, active; returns its id.
    fn add_other_site(s: &Store) -> SiteId {
        let other = SiteId::new("rutan-lain").unwrap();
        let record = crate::store::SiteRecord::new(
            other.clone(),
            "Rutan Lain".into(),
            pasopati_common::SiteType::Rutan,
            "Contoh".into(),
            crate::store::SiteStatus::Active,
            Timestamp(0),
        );
        s.add_site(&record, "test").unwrap();
        other
    }

    /// The runs of positions a redb store keeps, in key order: (site, epoch, run).
    fn runs_of(store: &Store) -> Vec<(String, u64, PositionRun)> {
        let txn = store.as_redb().unwrap().db.begin_read().unwrap();
        let table = txn.open_table(POSITION_RUNS).unwrap();
        let runs = table.iter().unwrap().map(|entry| {
            let (k, v) = entry.unwrap();
            let (site, epoch, first_seq) = k.value();
            (
                site.to_owned(),
                epoch,
                PositionRun::from_entry(first_seq, v.value()),
            )
        });
        runs.collect()
    }

    fn run(first_seq: Seq, first_arrival: u64, len: u64) -> PositionRun {
        PositionRun {
            first_seq,
            first_arrival,
            len,
        }
    }

    /// A site's batches stored one after another keep one run of positions; a group commit
    /// that puts another site's reports between its batches starts new runs. Every seq is found
    /// in them: a replay of all of them is absorbed, and a changed report at a seq inside a
    /// run, or at the first or last seq of one, is refused as a conflict.
    #[test]
    fn positions_are_kept_as_runs_and_found_at_every_seq() {
        let (_d, s) = redb_store();
        let other = add_other_site(&s);
        let now = Timestamp(T0 + 10);
        apply(&s, &site(), E, &batch(1, 3), now);
        apply(&s, &site(), E, &batch(4, 3), now);
        let one = vec![(site().to_string(), E.0, run(1, 0, 6))];
        assert_eq!(runs_of(&s), one);
        let theirs = |first: Seq, n: u64| {
            let mut b = batch(first, n);
            for r in &mut b.reports {
                r.id.0[0] = 0x77;
            }
            b
        };
        let jobs = [
            (other.clone(), theirs(1, 2)),
            (site(), batch(7, 2)),
            (other.clone(), theirs(3, 2)),
        ]
        .map(|(site, batch)| BatchJob {
            site,
            epoch: E,
            batch,
            now,
            examined: None,
        });
        s.apply_batches(jobs.to_vec(), &Limits::default(), &PiiGuard::default())
            .unwrap();
        let other_runs = vec![
            (site().to_string(), E.0, run(1, 0, 6)),
            (site().to_string(), E.0, run(7, 8, 2)),
            (other.to_string(), E.0, run(1, 6, 2)),
            (other.to_string(), E.0, run(3, 10, 2)),
        ];
        let mut expected = other_runs;
        expected.sort_by(|a, b| (&a.0, a.2.first_seq).cmp(&(&b.0, b.2.first_seq)));
        assert_eq!(runs_of(&s), expected);
        match apply(&s, &site(), E, &batch(1, 8), now) {
            BatchOutcome::Stored {
                hwm,
                stored,
                replayed,
                ..
            } => assert_eq!((hwm, stored.len(), replayed), (8, 0, 8)),
            other => panic!("{other:?}"),
        }
        for seq in [1, 4, 6, 7, 8] {
            let mut changed = batch(seq, 1);
            changed.reports[0].body = "diubah".into();
            assert_eq!(
                apply(&s, &site(), E, &changed, now),
                BatchOutcome::Refused {
                    hwm: 8,
                    reason: NackReason::Conflict { seq }
                },
                "seq {seq}"
            );
        }
        // Seqs past the runs, or of another epoch, are not placed.
        let txn = s.as_redb().unwrap().db.begin_read().unwrap();
        let runs = txn.open_table(POSITION_RUNS).unwrap();
        assert_eq!(arrival_at(&runs, &site(), E, 5).unwrap(), Some(4));
        assert_eq!(arrival_at(&runs, &site(), E, 8).unwrap(), Some(9));
        assert_eq!(arrival_at(&runs, &site(), E, 9).unwrap(), None);
        assert_eq!(arrival_at(&runs, &site(), Epoch(10), 1).unwrap(), None);
        assert_eq!(arrival_at(&runs, &other, E, 4).unwrap(), Some(11));
    }

    /// Layout 4's migration turns one entry per position into runs: breaks where the arrival
    /// numbers or the seqs jump, or the site or epoch changes; every position keeps its arrival.
    /// It deletes the owners table, and both steps do nothing on a store without the tables.
    #[test]
    fn the_migration_turns_positions_into_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("legacy.redb")).unwrap();
        let positions: Vec<(&str, u64, u64, u64)> = vec![
            ("a", 1, 1, 0),
            ("a", 1, 2, 1),
            ("a", 1, 3, 2),
            ("a", 1, 4, 7),
            ("a", 1, 5, 8),
            ("a", 1, 7, 9),
            ("a", 2, 8, 10),
            ("b", 1, 1, 3),
            ("b", 1, 2, 4),
        ];
        let txn = db.begin_write().unwrap();
        assert_eq!(positions_into_runs(&txn).unwrap(), 0, "no legacy table");
        forget_owners(&txn).unwrap();
        {
            let mut legacy = txn.open_table(LEGACY_BY_POSITION).unwrap();
            for (site, epoch, seq, arrival) in &positions {
                legacy.insert((*site, *epoch, *seq), *arrival).unwrap();
            }
            let mut owners = txn.open_table(LEGACY_OWNERS).unwrap();
            owners.insert(&[1u8; 16][..], "a").unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_write().unwrap();
        assert_eq!(positions_into_runs(&txn).unwrap(), 5);
        forget_owners(&txn).unwrap();
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let runs = txn.open_table(POSITION_RUNS).unwrap();
        assert_eq!(runs.len().unwrap(), 5);
        for (site, epoch, seq, arrival) in positions {
            let site = SiteId::new(site).unwrap();
            assert_eq!(
                arrival_at(&runs, &site, Epoch(epoch), seq).unwrap(),
                Some(arrival),
                "{site} {epoch} {seq}"
            );
        }
        assert_eq!(
            arrival_at(&runs, &SiteId::new("a").unwrap(), Epoch(1), 6).unwrap(),
            None
        );
        assert!(matches!(
            txn.open_table(LEGACY_BY_POSITION),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
        assert!(matches!(
            txn.open_table(LEGACY_OWNERS),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
    }

    /// The revision shown of each report is its highest clean one, and the count of reports
    /// shown follows: a revision replaces the shown one without adding to the count, a report
    /// held only in the quarantine adds nothing until it is released, a quarantined revision
    /// shows nothing new until it is released (on the backend the tests are set to).
    #[test]
    fn the_highest_clean_revision_is_shown_and_counted_once() {
        let (_d, s) = store();
        let now = Timestamp(T0 + 10);
        apply(&s, &site(), E, &batch(1, 3), now);
        assert_eq!(s.shown_count().unwrap(), 3);
        let edited = revision_of(&report(1), 1, |r| r.body = "Isi yang diperbarui".into());
        let mut held = report(4);
        held.body = "Hubungi 081234567890".into();
        let held_revision = revision_of(&report(2), 1, |r| r.body = "Hubungi 081234567890".into());
        let b = Batch {
            first_seq: 4,
            reports: vec![edited.clone(), held.clone(), held_revision.clone()],
        };
        let (_, stored, quarantined, _) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!((stored, quarantined), (1, 2));
        assert_eq!(s.shown_count().unwrap(), 3);
        assert_eq!(s.report(&edited.id).unwrap().unwrap().report, edited);
        assert_eq!(s.report(&report(2).id).unwrap().unwrap().report.revision, 0);
        assert!(s.report(&held.id).unwrap().is_none());
        let listed = |s: &Store| -> Vec<(ReportId, u32)> {
            let all = s.reports(&crate::store::ReportQuery::default()).unwrap();
            all.iter()
                .map(|r| (r.report.id, r.report.revision))
                .collect()
        };
        assert_eq!(
            listed(&s),
            [(report(2).id, 0), (report(3).id, 0), (edited.id, 1)]
        );
        for q in s.quarantine().unwrap() {
            s.release_quarantined(q.report.arrival, "admin", "bukan data WBP", now)
                .unwrap()
                .unwrap();
        }
        assert_eq!(s.shown_count().unwrap(), 4);
        assert_eq!(s.report(&held.id).unwrap().unwrap().report, held);
        assert_eq!(
            s.report(&report(2).id).unwrap().unwrap().report,
            held_revision
        );
        assert_eq!(s.newest_shown(0, 10).unwrap().len(), 4);
    }

    /// A report new to the store and its edit in one batch: both held, the report shown once;
    /// a new report quarantined and its clean edit in the same batch: shown once, by the edit.
    /// (The writer answers questions about an id it has just found new without looking again,
    /// until a revision of it is held.)
    #[test]
    fn a_new_report_and_its_edit_in_one_batch_are_shown_once() {
        let (_d, s) = store();
        let now = Timestamp(T0 + 10);
        let first = report(1);
        let edited = revision_of(&first, 1, |r| r.body = "Isi yang diperbarui".into());
        let mut held = report(2);
        held.body = "Hubungi 081234567890".into();
        let cleaned = revision_of(&held, 1, |r| r.body = "Isi tanpa nomor".into());
        let b = Batch {
            first_seq: 1,
            reports: vec![first.clone(), edited.clone(), held, cleaned.clone()],
        };
        let (_, stored, quarantined, _) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!((stored, quarantined), (3, 1));
        assert_eq!(s.shown_count().unwrap(), 2);
        assert_eq!(s.report(&first.id).unwrap().unwrap().report, edited);
        assert_eq!(s.report(&cleaned.id).unwrap().unwrap().report, cleaned);
        assert_eq!(s.revisions(&first.id).unwrap().len(), 2);
        // Sent again, the same batch is recognised, nothing held twice (the quarantined
        // revision's verdict is named again, as for any replay).
        let (_, stored, quarantined, _) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!((stored, quarantined), (0, 1));
        assert_eq!(s.shown_count().unwrap(), 2);
    }

    /// The owners of report ids, read at once: each filed id with its site (one held only in
    /// the quarantine too), unknown ids left out (on the backend the tests are set to).
    #[test]
    fn the_owners_of_report_ids_are_read_at_once() {
        let (_dir, store) = store();
        apply(&store, &site(), E, &batch(1, 3), Timestamp(T0 + 10));
        let mut held = report(4);
        held.body = "Hubungi 081234567890".into();
        let b = Batch {
            first_seq: 4,
            reports: vec![held],
        };
        let (_, _, quarantined, _) = stored_outcome(apply(&store, &site(), E, &b, Timestamp(T0)));
        assert_eq!(quarantined, 1);
        let ids: Vec<ReportId> = [1, 3, 7, 4].iter().map(|&n| report(n).id).collect();
        let owners = store.owners_of(&ids).unwrap();
        assert_eq!(owners.len(), 3, "{owners:?}");
        assert_eq!(owners.get(&ids[0]), Some(&site()));
        assert_eq!(owners.get(&ids[1]), Some(&site()));
        assert_eq!(owners.get(&ids[3]), Some(&site()));
        assert!(store.owners_of(&[]).unwrap().is_empty());
    }

    /// A group commit judges each batch against what the ones before it in the group left,
    /// exactly as separate transactions would: consecutive batches of one site, a batch that
    /// jumps a gap (refused, recorded, nothing stored), a replay, another site's batch.
    #[test]
    fn a_group_commit_is_the_same_as_one_transaction_per_batch() {
        let other = SiteId::new("rutan-lain").unwrap();
        let now = Timestamp(T0 + 10);
        let mut later = batch(3, 2);
        for r in &mut later.reports {
            r.id.0[0] = 9;
        }
        let jobs = [
            (site(), batch(1, 2)),
            (site(), later.clone()),
            (site(), batch(7, 1)),
            (site(), batch(1, 2)),
            (other.clone(), batch(1, 1)),
        ]
        .map(|(site, batch)| BatchJob {
            site,
            epoch: Epoch(5),
            batch,
            now,
            examined: None,
        });
        // Some examined before they come to the store's writer, as a session does, some not:
        // the same outcomes either way.
        let mut jobs = jobs;
        for job in jobs.iter_mut().step_by(2) {
            job.examine(&PiiGuard::default());
        }
        // Two stores, each with both sites registered.
        let with_other = || {
            let (dir, s) = store();
            assert_eq!(add_other_site(&s), other);
            (dir, s)
        };
        let (_one, separately) = with_other();
        let one_by_one: Vec<String> = jobs
            .iter()
            .map(|j| format!("{:?}", apply(&separately, &j.site, j.epoch, &j.batch, now)))
            .collect();
        let (_group, grouped) = with_other();
        let together: Vec<String> = grouped
            .apply_batches(jobs.to_vec(), &Limits::default(), &PiiGuard::default())
            .unwrap()
            .iter()
            .map(|o| format!("{o:?}"))
            .collect();
        // Stored records carry their arrival time and numbers; those agree as well.
        assert_eq!(together, one_by_one);
        assert!(together[2].contains("Gap"), "{}", together[2]);
        assert_eq!(grouped.hwm(&site(), Epoch(5)).unwrap(), 4);
        assert_eq!(grouped.hwm(&other, Epoch(5)).unwrap(), 1);
        assert_eq!(grouped.gaps().unwrap().len(), 1);
        // Four of the site's own; the other site's report 1 is the site's id, refused by seq.
        assert_eq!(grouped.report_count().unwrap(), 4);
        assert!(together[4].contains("another site"), "{}", together[4]);
    }

    #[test]
    fn another_sites_edit_or_retraction_is_refused_and_the_owners_report_kept() {
        let (_d, s) = store();
        let other = SiteId::new("rutan-lain").unwrap();
        let now = Timestamp(T0 + 10);
        let original = report(1);
        apply(&s, &site(), E, &batch(1, 1), now);
        let edit = revision_of(&original, 1, |r| r.title = "Teks situs lain".into());
        let retract = revision_of(&original, 2, |r| {
            r.retraction = Some("disembunyikan".into());
        });
        let foreign = Batch {
            first_seq: 1,
            reports: vec![edit, retract, report(50)],
        };
        let (hwm, stored, _, refused) = stored_outcome(apply(&s, &other, E, &foreign, now));
        assert_eq!(
            (hwm, stored),
            (3, 1),
            "seqs consumed, the clean report stored"
        );
        assert_eq!(
            refused.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2],
            "{refused:?}"
        );
        assert!(refused[0].reason.contains("another site"));
        let shown = s.report(&original.id).unwrap().unwrap();
        assert_eq!(
            (shown.site, shown.report.title),
            (site(), original.title.clone())
        );
        assert!(shown.report.retraction.is_none());
        assert!(s
            .rejections()
            .unwrap()
            .iter()
            .any(|r| r.reason.contains("refused, not stored")));
        // The owner itself may still edit.
        let b = Batch {
            first_seq: 2,
            reports: vec![revision_of(&original, 1, |r| {
                r.title = "Judul diperbaiki".into();
            })],
        };
        let (_, stored, _, refused) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!((stored, refused.len()), (1, 0));
        assert_eq!(
            s.report(&original.id).unwrap().unwrap().report.title,
            "Judul diperbaiki"
        );
    }

    #[test]
    fn a_revision_held_with_other_content_is_refused_by_seq_and_the_batch_goes_on() {
        // A batch whose third report repeats the second one's (id, revision) with other content
        // (an outbox restored from an older copy numbers its next edit like one it already
        // delivered). Before, the whole batch was refused as a conflict, for ever, and the
        // reports before it were committed without the hwm or the arrival counter: the next
        // batch of any site overwrote them. Now the twin is refused by seq and the rest stored.
        let (_d, s) = store();
        let other = SiteId::new("rutan-lain").unwrap();
        let now = Timestamp(T0 + 10);
        let mut twin = report(2);
        twin.title = "Isi lain".into();
        let b = Batch {
            first_seq: 1,
            reports: vec![report(1), report(2), twin, report(4)],
        };
        let (hwm, stored, _, refused) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!((hwm, stored), (4, 3));
        assert_eq!(refused.iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        assert!(refused[0].reason.contains("other content"), "{refused:?}");
        assert_eq!(s.hwm(&site(), E).unwrap(), 4);
        // Another site's report takes the next arrival; nothing of the first site's is
        // overwritten.
        let theirs = Batch {
            first_seq: 1,
            reports: vec![report(100)],
        };
        stored_outcome(apply(&s, &other, E, &theirs, now));
        for n in [1, 2, 4] {
            let mine = s.report(&report(n).id).unwrap().unwrap();
            assert_eq!((mine.site, mine.report), (site(), report(n)));
        }
        let theirs = s.report(&report(100).id).unwrap().unwrap();
        assert_eq!((theirs.site, theirs.report), (other, report(100)));
    }

    #[test]
    fn a_quarantined_revision_never_hides_the_clean_one() {
        let (_d, s) = store();
        let now = Timestamp(T0 + 10);
        let original = report(1);
        apply(&s, &site(), E, &batch(1, 1), now);
        let b = Batch {
            first_seq: 2,
            reports: vec![revision_of(&original, 1, |r| {
                r.body = "Hubungi 081234567890".into();
            })],
        };
        let (_, stored, quarantined, _) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!((stored, quarantined), (0, 1));
        let shown = s.report(&original.id).unwrap().unwrap();
        assert_eq!(
            shown.report.revision, 0,
            "the clean revision stays the one shown"
        );
    }

    #[test]
    fn reports_against_the_shared_rules_are_refused_one_by_one() {
        let (_d, s) = store();
        let now = Timestamp(T0 + 10);
        let mut bad = Vec::new();
        let mut r = report(10);
        r.title = "x".repeat(1_000);
        bad.push(r);
        let mut r = report(11);
        r.category = "<script>alert(1)</script>".into();
        bad.push(r);
        let mut r = report(12);
        r.occurred_at = Timestamp(253_402_300_799_000); // 9999-12-31
        bad.push(r);
        let mut r = report(13);
        r.occurred_at = Timestamp(i64::MIN);
        bad.push(r);
        let mut r = report(14);
        r.title = "Judul\u{1}".into();
        bad.push(r);
        let mut r = report(15);
        r.body = String::new();
        bad.push(r);
        let n = bad.len() as u64;
        bad.push(report(16));
        let b = Batch {
            first_seq: 1,
            reports: bad,
        };
        let (hwm, stored, _, refused) = stored_outcome(apply(&s, &site(), E, &b, now));
        assert_eq!(
            (hwm, stored, refused.len() as u64),
            (n + 1, 1, n),
            "{refused:?}"
        );
        assert_eq!(s.report_count().unwrap(), 1);
        // A replay of the refused seqs is absorbed (nothing to compare), not a conflict.
        let again = apply(&s, &site(), E, &b, Timestamp(T0 + 11));
        assert!(matches!(again, BatchOutcome::Stored { hwm, .. } if hwm == n + 1));
    }

    #[test]
    fn replays_are_absorbed_and_conflicts_refused() {
        let (_d, s) = store();
        let out = apply(&s, &site(), E, &batch(1, 3), Timestamp(T0 + 5));
        assert!(matches!(out, BatchOutcome::Stored { hwm: 3, .. }));
        let out = apply(&s, &site(), E, &batch(2, 4), Timestamp(T0 + 6));
        match out {
            BatchOutcome::Stored {
                hwm,
                stored,
                replayed,
                ..
            } => {
                assert_eq!((hwm, stored.len(), replayed), (5, 2, 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.report_count().unwrap(), 5);
        let mut evil = batch(2, 1);
        evil.reports[0].body = "diubah".into();
        let out = apply(&s, &site(), E, &evil, Timestamp(T0 + 7));
        assert_eq!(
            out,
            BatchOutcome::Refused {
                hwm: 5,
                reason: NackReason::Conflict { seq: 2 }
            }
        );
        assert_eq!(s.report(&report(2).id).unwrap().unwrap().report.body, "Isi");
        assert_eq!(s.rejections().unwrap().len(), 1);
        assert_eq!(s.site(&site()).unwrap().unwrap().reports, 5);
    }

    #[test]
    fn gaps_are_refused_and_recorded() {
        let (_d, s) = store();
        let out = apply(&s, &site(), E, &batch(3, 2), Timestamp(T0 + 5));
        assert!(matches!(out, BatchOutcome::Refused { hwm: 0, .. }));
        assert_eq!(s.report_count().unwrap(), 0);
        let gaps = s.gaps().unwrap();
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (gaps[0].from, gaps[0].to, gaps[0].kind),
            (1, 2, GapKind::SkippedSeqs)
        );
    }

    #[test]
    fn a_report_under_a_new_epoch_is_recognised_by_id() {
        let (_d, s) = store();
        apply(&s, &site(), E, &batch(1, 2), Timestamp(T0 + 5));
        let again = Batch {
            first_seq: 1,
            reports: vec![report(2), report(7)],
        };
        match apply(&s, &site(), Epoch(10), &again, Timestamp(T0 + 6)) {
            BatchOutcome::Stored {
                hwm,
                stored,
                known_by_id,
                ..
            } => {
                assert_eq!((hwm, stored.len(), known_by_id), (2, 1, 1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.report_count().unwrap(), 3);
    }

    #[test]
    fn epochs_past_the_top_bit_each_keep_their_own_hwm() {
        // Agents draw epochs at random from all 64 bits; a backend that stores them in a
        // signed column must keep every bit, or two epochs share one hwm.
        let (_d, s) = store();
        let (high, higher) = (Epoch(0x8000_0000_0000_0001), Epoch(u64::MAX));
        assert!(matches!(
            apply(&s, &site(), high, &batch(1, 3), Timestamp(T0)),
            BatchOutcome::Stored { hwm: 3, .. }
        ));
        assert_eq!(s.hwm(&site(), high).unwrap(), 3);
        assert_eq!(s.hwm(&site(), higher).unwrap(), 0);
        // The next batch of that epoch is judged against its own hwm.
        assert!(matches!(
            apply(&s, &site(), high, &batch(4, 2), Timestamp(T0 + 1)),
            BatchOutcome::Stored { hwm: 5, .. }
        ));
        assert!(matches!(
            apply(&s, &site(), higher, &batch(9, 1), Timestamp(T0 + 2)),
            BatchOutcome::Refused { hwm: 0, .. }
        ));
        assert_eq!(s.first_verdict_from(&site(), high, 1).unwrap(), None);
    }

    #[test]
    fn collector_rollback_is_recorded_as_a_gap() {
        let (_d, s) = store();
        let decision = HelloDecision::Welcome {
            hwm: 10,
            lost: Some(4..=10),
            rerequested: None,
            agent_behind: false,
        };
        s.record_hello(&site(), E, &decision, Timestamp(3), Timestamp(1))
            .unwrap();
        assert_eq!(s.site(&site()).unwrap().unwrap().clock_offset_ms, Some(2));
        assert_eq!(s.hwm(&site(), E).unwrap(), 10);
        assert_eq!(s.gaps().unwrap()[0].kind, GapKind::CollectorRollback);
    }
}
