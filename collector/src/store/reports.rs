//! The reports as the collector keeps them: every stored revision (by arrival, by (id,
//! revision); the one shown per id is the highest stored clean, [`shown_arrival`]), the
//! quarantine of reports carrying inmate identity data (released or purged by an admin), and
//! the queries that list them.

use super::audit::audit;
use super::media::expect_attachments;
use super::{
    change_record, decode, encode, RedbStore, StoreError, BY_ID, INDEX_LATE, META, QUARANTINE,
    REPORTS,
};
use bincode::{Decode, Encode};
use pasopati_common::pii::Finding;
use pasopati_common::{Epoch, Report, ReportId, Seq, SiteId, Timestamp};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

/// A report as the collector holds it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredReport {
    pub arrival: u64,
    pub site: SiteId,
    pub epoch: Epoch,
    pub seq: Seq,
    pub report: Report,
    pub content_hash: [u8; 32],
    pub received_at: Timestamp,
}

/// A [`StoredReport`] borrowed, for writing one without copying its report: it encodes to the
/// same bytes (the same fields in the same order; bincode writes a reference as its value).
#[derive(Encode)]
pub(super) struct StoredReportRef<'a> {
    pub(super) arrival: u64,
    pub(super) site: &'a SiteId,
    pub(super) epoch: Epoch,
    pub(super) seq: Seq,
    pub(super) report: &'a Report,
    pub(super) content_hash: &'a [u8; 32],
    pub(super) received_at: Timestamp,
}

/// A [`Quarantined`] borrowed, as [`StoredReportRef`] is a [`StoredReport`]: the same bytes.
#[derive(Encode)]
pub(super) struct QuarantinedRef<'a> {
    pub(super) report: StoredReportRef<'a>,
    pub(super) findings: &'a [Finding],
}

/// A report held back from the main tables because it carries inmate identity data.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Quarantined {
    pub report: StoredReport,
    pub findings: Vec<Finding>,
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    pub site: Option<SiteId>,
    /// Only arrivals at or after this number.
    pub after_arrival: Option<u64>,
    pub limit: Option<usize>,
}

impl RedbStore {
    /// Stored reports in arrival order, each at its latest revision (earlier revisions are in
    /// [`Store::revisions`]).
    pub fn reports(&self, query: &ReportQuery) -> Result<Vec<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let by_id = txn.open_table(BY_ID)?;
        let mut out = Vec::new();
        let limit = query.limit.unwrap_or(usize::MAX);
        for entry in reports.range(query.after_arrival.unwrap_or(0)..)? {
            if out.len() >= limit {
                break;
            }
            let r = log.report(entry?.1.value())?;
            if query.site.as_ref().is_some_and(|s| s != &r.site) {
                continue;
            }
            if !is_shown(&by_id, &reports, &r)? {
                continue;
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Visits each stored report at its latest revision with an arrival number of `from` or
    /// more, newest first: the tail the report index has not taken yet (`crate::report_index`).
    pub fn newest_from(
        &self,
        from: u64,
        mut visit: impl FnMut(StoredReport),
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let by_id = txn.open_table(BY_ID)?;
        for entry in reports.range(from..)?.rev() {
            let r = log.report(entry?.1.value())?;
            if is_shown(&by_id, &reports, &r)? {
                visit(r);
            }
        }
        Ok(())
    }

    /// Up to `limit` stored reports at their latest revision with an arrival number of `from`
    /// or more, in arrival order, with the arrival number to go on from: every arrival before
    /// it is either returned or no longer the latest revision of its report.
    pub fn latest_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<StoredReport>, u64), StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let by_id = txn.open_table(BY_ID)?;
        let mut out = Vec::new();
        let mut next = from;
        for entry in reports.range(from..)? {
            if out.len() >= limit {
                break;
            }
            let (arrival, value) = entry?;
            next = arrival.value().saturating_add(1);
            let r = log.report(value.value())?;
            if is_shown(&by_id, &reports, &r)? {
                out.push(r);
            }
        }
        Ok((out, next))
    }

    /// How many reports are shown (each at its latest clean revision), without reading them.
    pub fn shown_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let shown = meta.get(SHOWN_COUNT)?.map(|v| v.value()).unwrap_or(0);
        Ok(shown)
    }

    /// The shown reports, newest first: `limit` of them after skipping `offset`. Reads only
    /// those and the ones skipped (the dashboard's default list, at any size of the store).
    pub fn newest_shown(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let by_id = txn.open_table(BY_ID)?;
        let mut out = Vec::new();
        let mut seen = 0usize;
        for entry in reports.iter()?.rev() {
            if out.len() >= limit {
                break;
            }
            let r = log.report(entry?.1.value())?;
            if !is_shown(&by_id, &reports, &r)? {
                continue;
            }
            if seen >= offset {
                out.push(r);
            }
            seen += 1;
        }
        Ok(out)
    }

    /// The stored reports at these arrivals, in the same order (`None` where there is none).
    pub fn reports_at(&self, arrivals: &[u64]) -> Result<Vec<Option<StoredReport>>, StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        arrivals
            .iter()
            .map(|a| reports.get(a)?.map(|v| log.report(v.value())).transpose())
            .collect()
    }

    /// Reports released from quarantine that the report index has not taken yet: each
    /// arrival, with its report if that is the latest revision shown.
    pub fn late_for_index(&self) -> Result<Vec<(u64, Option<StoredReport>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let late = txn.open_table(INDEX_LATE)?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let by_id = txn.open_table(BY_ID)?;
        let mut out = Vec::new();
        for entry in late.iter()? {
            let arrival = entry?.0.value();
            let report = match reports.get(arrival)? {
                Some(v) => Some(log.report(v.value())?),
                None => None,
            };
            let shown = match report {
                Some(r) if is_shown(&by_id, &reports, &r)? => Some(r),
                _ => None,
            };
            out.push((arrival, shown));
        }
        Ok(out)
    }

    /// The report index has taken these released reports.
    pub fn forget_late_for_index(&self, arrivals: &[u64]) -> Result<(), StoreError> {
        if arrivals.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut late = txn.open_table(INDEX_LATE)?;
            for a in arrivals {
                late.remove(a)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Every stored revision of a report, oldest first.
    pub fn revisions(&self, id: &ReportId) -> Result<Vec<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_id = txn.open_table(BY_ID)?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let (from, to) = revision_range(id);
        let mut out = Vec::new();
        for entry in by_id.range(&from[..]..=&to[..])? {
            if let Some(v) = reports.get(entry?.1.value())? {
                out.push(log.report(v.value())?);
            }
        }
        Ok(out)
    }

    /// The latest revision of the report with this id.
    pub fn report(&self, id: &ReportId) -> Result<Option<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_id = txn.open_table(BY_ID)?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let Some(arrival) = shown_arrival(&by_id, &reports, id)? else {
            return Ok(None);
        };
        let value = reports.get(arrival)?;
        value.map(|v| log.report(v.value())).transpose()
    }

    /// The sites that filed these report ids (unknown ids are left out), read in one
    /// transaction.
    pub fn owners_of(
        &self,
        ids: &[ReportId],
    ) -> Result<std::collections::HashMap<ReportId, SiteId>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_id = txn.open_table(BY_ID)?;
        let reports = txn.open_table(REPORTS)?;
        let log = self.log.reader();
        let quarantine = txn.open_table(QUARANTINE)?;
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(site) = super::ingest::owner_of(&log, &by_id, &reports, &quarantine, id)? {
                found.insert(*id, site);
            }
        }
        Ok(found)
    }

    /// How many report revisions are stored (quarantined ones not counted).
    pub fn report_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(REPORTS)?.len()?)
    }

    /// Reports held in quarantine, oldest first.
    pub fn quarantine(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.read_all(QUARANTINE)
    }
}

/// Corrections of the quarantine: an admin releases a report the guard was wrong about, or
/// purges one's text. Each is in the audit log, in the same transaction as the change.
impl RedbStore {
    /// Releases a quarantined report into the reports (the guard was wrong: an admin read it
    /// and found no identity data). It becomes the shown revision if it is the newest.
    pub fn release_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<StoredReport>, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut quarantine = txn.open_table(QUARANTINE)?;
            let Some(held) = quarantine
                .remove(arrival)?
                .map(|v| decode::<Quarantined>(v.value()))
            else {
                return Ok(None);
            };
            let held = held?;
            if held.report.report.title.is_empty() {
                // Purged: nothing left to release.
                quarantine.insert(arrival, encode(&held).as_slice())?;
                return Ok(None);
            }
            let record = held.report;
            let mut reports = txn.open_table(REPORTS)?;
            let by_id = txn.open_table(BY_ID)?;
            // Shown if it is now the highest clean revision, which takes nothing to record; a
            // report with no clean revision before is one more shown.
            if shown_arrival(&by_id, &reports, &record.report.id)?.is_none() {
                add_shown(&mut txn.open_table(META)?, 1)?;
            }
            reports.insert(arrival, encode(&record).as_slice())?;
            drop((reports, quarantine, by_id));
            expect_attachments(&txn, &record.site, &record.report.attachments)?;
            // Released with its old arrival number: the report index, which follows arrivals,
            // must be told (`crate::report_index`).
            txn.open_table(INDEX_LATE)?.insert(arrival, ())?;
            // Stored now: a resend of its seq is no longer answered with the quarantine.
            txn.open_table(super::ingest::VERDICTS)?.remove((
                record.site.as_str(),
                record.epoch.0,
                record.seq,
            ))?;
            record
        };
        audit(
            &txn,
            actor,
            "quarantine_release",
            &format!("report:{}", record.report.id),
            reason.to_owned(),
            now,
        )?;
        txn.commit()?;
        Ok(Some(record))
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
        let txn = self.db.begin_write()?;
        let Some(held) = change_record(&txn, QUARANTINE, arrival, purge_text)? else {
            return Ok(false);
        };
        let id = held.report.report.id;
        audit(
            &txn,
            actor,
            "quarantine_purge",
            &format!("report:{id}"),
            reason.to_owned(),
            now,
        )?;
        txn.commit()?;
        Ok(true)
    }
}

/// Purges a quarantined report's text: title, body, reason and attachment names.
pub(super) fn purge_text(held: &mut Quarantined) {
    let report = &mut held.report.report;
    report.title = String::new();
    report.body = String::new();
    report.retraction = report.retraction.take().map(|_| String::new());
    for a in &mut report.attachments {
        a.name = String::new();
    }
}

/// How many report ids have a revision shown, in `META` (PostgreSQL keeps the same counter).
pub(super) const SHOWN_COUNT: &str = "shown_count";

/// Counts `n` more reports shown.
pub(super) fn add_shown(
    meta: &mut redb::Table<&'static str, u64>,
    n: u64,
) -> Result<(), StoreError> {
    if n > 0 {
        let shown = meta.get(SHOWN_COUNT)?.map(|v| v.value()).unwrap_or(0);
        meta.insert(SHOWN_COUNT, shown + n)?;
    }
    Ok(())
}

/// The arrival number of the revision of report `id` that is shown: the highest revision stored
/// clean, so an older one arriving late only joins the history, and a quarantined one never
/// hides the clean one before it.
pub(super) fn shown_arrival(
    by_id: &impl ReadableTable<&'static [u8], u64>,
    reports: &impl ReadableTable<u64, &'static [u8]>,
    id: &ReportId,
) -> Result<Option<u64>, StoreError> {
    let (from, to) = revision_range(id);
    for entry in by_id.range(&from[..]..=&to[..])?.rev() {
        let arrival = entry?.1.value();
        if reports.get(arrival)?.is_some() {
            return Ok(Some(arrival));
        }
    }
    Ok(None)
}

/// Whether the stored revision `r` is the one shown of its report ([`shown_arrival`]), read
/// without looking up `r` itself again.
pub(super) fn is_shown(
    by_id: &impl ReadableTable<&'static [u8], u64>,
    reports: &impl ReadableTable<u64, &'static [u8]>,
    r: &StoredReport,
) -> Result<bool, StoreError> {
    let (from, to) = revision_range(&r.report.id);
    for entry in by_id.range(&from[..]..=&to[..])?.rev() {
        let arrival = entry?.1.value();
        if arrival == r.arrival {
            return Ok(true);
        }
        if reports.get(arrival)?.is_some() {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Layout 4's migration: the table of each report's latest revision (layouts 1 to 3) gives way
/// to [`shown_arrival`], read from the revisions; its size becomes the [`SHOWN_COUNT`].
pub(super) fn forget_latest(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    const LEGACY_LATEST: redb::TableDefinition<&[u8], u64> = redb::TableDefinition::new("latest");
    if !super::ingest::has_table(txn, LEGACY_LATEST)? {
        return Ok(());
    }
    let shown = txn.open_table(LEGACY_LATEST)?.len()?;
    txn.open_table(META)?.insert(SHOWN_COUNT, shown)?;
    txn.delete_table(LEGACY_LATEST)?;
    Ok(())
}

/// The first and last by-id keys of report `id`'s revisions.
pub(super) fn revision_range(id: &ReportId) -> ([u8; 20], [u8; 20]) {
    let mut from = [0u8; 20];
    from[..16].copy_from_slice(&id.0);
    let mut to = [0xffu8; 20];
    to[..16].copy_from_slice(&id.0);
    (from, to)
}
