//! How reports come in on PostgreSQL: the group commit as one transaction, under the same rules
//! (`pasopati_common::ingest`) as the redb store, and what a `Hello` and a heartbeat leave.
//!
//! **The transaction.** The sites of a group are locked first (sorted, so two collectors
//! never wait on each other in a circle), then the arrival counter. Two sessions of one site,
//! on one collector or on two, therefore take turns, and arrival numbers are given in commit
//! order, as the report index needs. Then everything the rules may ask about the group's
//! batches is read at once (positions and verdicts in each batch's seq range, every revision
//! and owner of the report ids it carries, the hwm), the rules run against that in memory, and
//! what they hold is written with one statement per table. The commit returns after the
//! synchronous standby has the WAL, so an ack still means durable (on both machines).

use super::records::{put_site, site_for_update, update_site};
use super::reports::{expect_attachments, move_counters, EXPECT_ATTACHMENTS, MOVE_COUNTERS};
use super::store::{
    big, col, dec, enc, epoch_col, epoch_of, in_order, records, unbig, PgStore, Pooled, Step,
};
use crate::store::ingest::{
    batch_refusal_message, examined, merged_gap, note_batch, note_heartbeat, note_hello,
    report_refusal_message, rerequested_message, KeptVerdict,
};
use crate::store::{
    BatchJob, BatchOutcome, Gap, GapKind, Rejection, SiteRecord, StoreCounts, StoreError,
    StoredReport,
};
use pasopati_common::frame::{Heartbeat, Limits};
use pasopati_common::ingest::{apply_examined_batch, BatchVerdict, Ledger, Verdicts};
use pasopati_common::pii::{Finding, PiiGuard};
use pasopati_common::profile;
use pasopati_common::sync::HelloDecision;
use pasopati_common::{Epoch, Report, ReportId, Seq, SiteId, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use tokio_postgres::ToStatement;
use tokio_postgres::{GenericClient, Statement};

/// How long heartbeat history is kept (as in the redb store).
const HEARTBEAT_HISTORY_MS: i64 = 7 * 86_400_000;

impl PgStore {
    pub fn hwm(&self, site: &SiteId, epoch: Epoch) -> Result<Seq, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            hwm_of(&*c, site, epoch).await
        })
    }

    pub fn first_verdict_from(
        &self,
        site: &SiteId,
        epoch: Epoch,
        from: Seq,
    ) -> Result<Option<Seq>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let row = c
                .query_one(
                    "SELECT min(seq) FROM verdicts WHERE site = $1 AND epoch = $2 AND seq >= $3",
                    &[&site.as_str(), &epoch_col(epoch.0), &big(from)],
                )
                .await?;
            col::<Option<i64>>(&row, 0)?.map(unbig).transpose()
        })
    }

    pub fn record_hello(
        &self,
        site: &SiteId,
        epoch: Epoch,
        decision: &HelloDecision,
        agent_time: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            if !decision.records_more_than_seen() {
                telemetry(&txn).await?;
            }
            // The site's row first, as every writer of a site's data takes it.
            let record = site_for_update(&txn, site).await?;
            if let HelloDecision::Welcome {
                hwm,
                lost,
                rerequested,
                agent_behind,
            } = decision
            {
                if let Some(range) = lost {
                    let kind = GapKind::CollectorRollback;
                    upsert_gap(&txn, site, epoch, range.clone(), kind, now).await?;
                }
                if let Some(set) = decision.hwm_to_record() {
                    set_hwm(&txn, site, epoch, set).await?;
                }
                if let Some(range) = rerequested {
                    let reason = rerequested_message(epoch, range);
                    insert_rejections(&txn, INSERT_REJECTIONS, &[rejection(site, reason, now)])
                        .await?;
                }
                if *agent_behind {
                    let kind = GapKind::AgentRollback;
                    upsert_gap(&txn, site, epoch, *hwm..=*hwm, kind, now).await?;
                }
            }
            if let Some(mut record) = record {
                note_hello(&mut record, agent_time, now);
                put_site(&txn, &record).await?;
            }
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn record_heartbeat(
        &self,
        site: &SiteId,
        heartbeat: &Heartbeat,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            telemetry(&txn).await?;
            update_site(&txn, site, |r| note_heartbeat(r, heartbeat, now)).await?;
            // Two heartbeats within one millisecond keep both: the later one moves up a bit.
            let row = txn
                .query_one(
                    "SELECT coalesce(max(at) + 1, $2) FROM heartbeats WHERE site = $1 AND at >= $2",
                    &[&site.as_str(), &now.0],
                )
                .await?;
            let at: i64 = col(&row, 0)?;
            txn.execute(
                "INSERT INTO heartbeats (site, at, record) VALUES ($1, $2, $3)",
                &[&site.as_str(), &at, &enc(heartbeat)],
            )
            .await?;
            txn.execute(
                "DELETE FROM heartbeats WHERE site = $1 AND at < $2",
                &[&site.as_str(), &(now.0 - HEARTBEAT_HISTORY_MS)],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn heartbeats(&self, site: &SiteId) -> Result<Vec<(Timestamp, Heartbeat)>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT at, record FROM heartbeats WHERE site = $1 ORDER BY at",
                    &[&site.as_str()],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((Timestamp(col(r, 0)?), dec(col::<&[u8]>(r, 1)?)?)))
                .collect()
        })
    }

    pub fn apply_batches(
        &self,
        jobs: &[BatchJob],
        limits: &Limits,
        guard: &PiiGuard,
    ) -> Result<Vec<BatchOutcome>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let statements = WriteStatements::prepare(&mut c).await?;
            let txn = c.transaction().await?;
            let mut group = Group::read(&txn, jobs).await?;
            let mut outcomes = Vec::with_capacity(jobs.len());
            for job in jobs {
                outcomes.push(group.judge(job, limits, guard)?);
            }
            let committing = profile::COLLECTOR_COMMIT.start();
            group.write(&txn, &statements).await?;
            if group.next_arrival > group.first_arrival {
                // Delivered to the other collectors when (and only if) this commits.
                let payload = format!(
                    "{} {} {}",
                    self.instance(),
                    group.first_arrival,
                    group.next_arrival - 1
                );
                txn.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&super::store::STORED_CHANNEL, &payload],
                )
                .await?;
            }
            txn.commit().await?;
            drop(committing);
            profile::COLLECTOR_COMMIT.add_items(jobs.len() as u64);
            Ok(outcomes)
        })
    }

    pub fn record_rejection(
        &self,
        site: Option<&SiteId>,
        reason: String,
    ) -> Result<(), StoreError> {
        let rejection = Rejection {
            at: Timestamp::now(),
            site: site.cloned(),
            reason,
        };
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            insert_rejections(&txn, INSERT_REJECTIONS, &[rejection]).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        self.all(
            "SELECT record FROM gaps ORDER BY site COLLATE \"C\", epoch, from_seq",
            &[],
        )
    }

    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        self.all("SELECT record FROM rejections ORDER BY n", &[])
    }

    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let row = c
                .query_one(
                    "SELECT (SELECT count(*) FROM revisions WHERE findings IS NULL),
                            (SELECT count(*) FROM rejections),
                            (SELECT count(*) FROM revisions WHERE findings IS NOT NULL),
                            (SELECT count(*) FROM gaps),
                            (SELECT count(*) FROM media)",
                    &[],
                )
                .await?;
            Ok(StoreCounts {
                reports: unbig(col(&row, 0)?)?,
                rejections: unbig(col(&row, 1)?)?,
                quarantined: unbig(col(&row, 2)?)?,
                gaps: unbig(col(&row, 3)?)?,
                media: unbig(col(&row, 4)?)?,
            })
        })
    }
}

async fn hwm_of(c: &impl GenericClient, site: &SiteId, epoch: Epoch) -> Result<Seq, StoreError> {
    let row = c
        .query_opt(
            "SELECT hwm FROM hwm WHERE site = $1 AND epoch = $2",
            &[&site.as_str(), &epoch_col(epoch.0)],
        )
        .await?;
    match row {
        Some(row) => unbig(col(&row, 0)?),
        None => Ok(0),
    }
}

async fn set_hwm(
    c: &impl GenericClient,
    site: &SiteId,
    epoch: Epoch,
    hwm: Seq,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO hwm (site, epoch, hwm) VALUES ($1, $2, $3)
         ON CONFLICT (site, epoch) DO UPDATE SET hwm = $3",
        &[&site.as_str(), &epoch_col(epoch.0), &big(hwm)],
    )
    .await?;
    Ok(())
}

fn rejection(site: &SiteId, reason: String, now: Timestamp) -> Rejection {
    Rejection {
        at: now,
        site: Some(site.clone()),
        reason,
    }
}

/// Files rejections under the next rejection numbers: their count and record array.
const INSERT_REJECTIONS: &str = "WITH counter AS (
         INSERT INTO meta (key, value) VALUES ('next_rejection', $1::bigint)
         ON CONFLICT (key) DO UPDATE SET value = meta.value + $1::bigint
         RETURNING value - $1::bigint AS first)
     INSERT INTO rejections (n, record)
     SELECT counter.first + t.i - 1, t.record
     FROM counter, unnest($2::bytea[]) WITH ORDINALITY AS t(record, i)";

/// Files rejections under the next rejection numbers, with [`INSERT_REJECTIONS`].
async fn insert_rejections<S: ToStatement + ?Sized + Sync + Send>(
    c: &impl GenericClient,
    statement: &S,
    rejections: &[Rejection],
) -> Result<(), StoreError> {
    if rejections.is_empty() {
        return Ok(());
    }
    let n = rejections.len() as i64;
    let blobs: Vec<Vec<u8>> = rejections.iter().map(enc).collect();
    c.execute(statement, &[&n, &blobs]).await?;
    Ok(())
}

async fn upsert_gap(
    c: &impl GenericClient,
    site: &SiteId,
    epoch: Epoch,
    range: RangeInclusive<Seq>,
    kind: GapKind,
    now: Timestamp,
) -> Result<(), StoreError> {
    let key = (site.as_str(), epoch_col(epoch.0), big(*range.start()));
    let existing: Option<Gap> = records(
        c,
        "SELECT record FROM gaps WHERE site = $1 AND epoch = $2 AND from_seq = $3 FOR UPDATE",
        &[&key.0, &key.1, &key.2],
    )
    .await?
    .pop();
    let gap = merged_gap(existing, site, epoch, range, kind, now);
    c.execute(
        "INSERT INTO gaps (site, epoch, from_seq, record) VALUES ($1, $2, $3, $4)
         ON CONFLICT (site, epoch, from_seq) DO UPDATE SET record = $4",
        &[&key.0, &key.1, &key.2, &enc(&gap)],
    )
    .await?;
    Ok(())
}

/// What the store holds of one revision, as the rules ask about it.
#[derive(Clone, Copy, Debug)]
struct Held {
    id: [u8; 16],
    revision: u32,
    hash: [u8; 32],
}

/// A revision the group holds, to be written.
struct NewRevision {
    record: StoredReport,
    findings: Vec<Finding>,
}

/// One group commit: what was read under the locks, the rules' view of it with their writes
/// laid over, and what is left to write.
struct Group {
    sites: BTreeMap<SiteId, SiteRecord>,
    touched_sites: HashSet<SiteId>,
    next_arrival: u64,
    first_arrival: u64,
    hwm: HashMap<(SiteId, u64), Seq>,
    hwm_changed: HashSet<(SiteId, u64)>,
    positions: HashMap<(SiteId, u64, Seq), u64>,
    held: HashMap<u64, Held>,
    by_revision: HashMap<([u8; 16], u32), u64>,
    latest: HashMap<[u8; 16], u64>,
    latest_changed: HashSet<[u8; 16]>,
    /// The report ids shown before this group.
    shown_before: HashSet<[u8; 16]>,
    owners: HashMap<[u8; 16], SiteId>,
    new_owners: Vec<([u8; 16], SiteId)>,
    verdicts: BTreeMap<(SiteId, u64, Seq), KeptVerdict>,
    new_verdicts: Vec<((SiteId, u64, Seq), KeptVerdict)>,
    new_positions: Vec<(SiteId, u64, Seq, u64)>,
    new_revisions: Vec<NewRevision>,
    rejections: Vec<Rejection>,
    gaps: Vec<(SiteId, Epoch, RangeInclusive<Seq>, GapKind, Timestamp)>,
}

impl Group {
    /// Locks the group's sites and the arrival counter, and reads what the rules may ask: the
    /// statements of each step go out together (tokio-postgres pipelines them), so a group
    /// costs a few round trips however many batches and reports it holds.
    async fn read(c: &impl GenericClient, jobs: &[BatchJob]) -> Result<Group, StoreError> {
        let mut site_ids: Vec<&str> = jobs.iter().map(|j| j.site.as_str()).collect();
        site_ids.sort_unstable();
        site_ids.dedup();
        let (site_rows, counter_row) = tokio::try_join!(
            async {
                c.query(
                    "SELECT record FROM sites WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                    &[&site_ids],
                )
                .await
            },
            async {
                c.query_one(
                    "SELECT value FROM meta WHERE key = 'next_arrival' FOR UPDATE",
                    &[],
                )
                .await
            },
        )?;
        let mut sites = BTreeMap::new();
        for row in &site_rows {
            let record: SiteRecord = dec(col::<&[u8]>(row, 0)?)?;
            sites.insert(record.id.clone(), record);
        }
        let next_arrival = unbig(col(&counter_row, 0)?)?;
        let mut group = Group {
            sites,
            touched_sites: HashSet::new(),
            next_arrival,
            first_arrival: next_arrival,
            hwm: HashMap::new(),
            hwm_changed: HashSet::new(),
            positions: HashMap::new(),
            held: HashMap::new(),
            by_revision: HashMap::new(),
            latest: HashMap::new(),
            latest_changed: HashSet::new(),
            shown_before: HashSet::new(),
            owners: HashMap::new(),
            new_owners: Vec::new(),
            verdicts: BTreeMap::new(),
            new_verdicts: Vec::new(),
            new_positions: Vec::new(),
            new_revisions: Vec::new(),
            rejections: Vec::new(),
            gaps: Vec::new(),
        };
        // Each batch's (site, epoch) and seq range, and every report id the group carries.
        let (mut sites, mut epochs, mut lows, mut highs) = (vec![], vec![], vec![], vec![]);
        let mut ids: Vec<Vec<u8>> = Vec::new();
        for job in jobs {
            ids.extend(job.batch.reports.iter().map(|r| r.id.0.to_vec()));
            let last = (job.batch.reports.len() as u64)
                .checked_sub(1)
                .and_then(|n| job.batch.first_seq.checked_add(n))
                .unwrap_or(job.batch.first_seq);
            sites.push(job.site.as_str());
            epochs.push(epoch_col(job.epoch.0));
            lows.push(big(job.batch.first_seq));
            highs.push(big(last));
        }
        ids.sort_unstable();
        ids.dedup();
        let (hwm_rows, position_rows, verdict_rows, revision_rows, owner_rows) = tokio::try_join!(
            async {
                c.query(
                    "SELECT h.site, h.epoch, h.hwm FROM hwm h
                     JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::bigint[])) AS q(site, epoch)
                       ON h.site = q.site AND h.epoch = q.epoch",
                    &[&sites, &epochs],
                )
                .await
            },
            async {
                c.query(
                    "SELECT p.site, p.epoch, p.seq, p.arrival, r.report_id, r.revision, r.content_hash
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                          AS q(site, epoch, lo, hi)
                     JOIN positions p ON p.site = q.site AND p.epoch = q.epoch
                          AND p.seq BETWEEN q.lo AND q.hi
                     JOIN revisions r ON r.arrival = p.arrival",
                    &[&sites, &epochs, &lows, &highs],
                )
                .await
            },
            async {
                c.query(
                    "SELECT v.site, v.epoch, v.seq, v.record
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                          AS q(site, epoch, lo, hi)
                     JOIN verdicts v ON v.site = q.site AND v.epoch = q.epoch
                          AND v.seq BETWEEN q.lo AND q.hi",
                    &[&sites, &epochs, &lows, &highs],
                )
                .await
            },
            async {
                c.query(
                    "SELECT arrival, report_id, revision, content_hash, is_latest
                     FROM revisions WHERE report_id = ANY($1)",
                    &[&ids],
                )
                .await
            },
            async {
                c.query(
                    "SELECT report_id, site FROM owners WHERE report_id = ANY($1)",
                    &[&ids],
                )
                .await
            },
        )?;
        for row in &hwm_rows {
            let key = (site_id(col(row, 0)?)?, epoch_of(col(row, 1)?));
            group.hwm.insert(key, unbig(col(row, 2)?)?);
        }
        for job in jobs {
            group
                .hwm
                .entry((job.site.clone(), job.epoch.0))
                .or_insert(0);
        }
        for row in &position_rows {
            let key = (
                site_id(col(row, 0)?)?,
                epoch_of(col(row, 1)?),
                unbig(col(row, 2)?)?,
            );
            let arrival = unbig(col(row, 3)?)?;
            group.positions.insert(key, arrival);
            group.note_held(arrival, col(row, 4)?, col(row, 5)?, col(row, 6)?)?;
        }
        for row in &verdict_rows {
            let key = (
                site_id(col(row, 0)?)?,
                epoch_of(col(row, 1)?),
                unbig(col(row, 2)?)?,
            );
            group.verdicts.insert(key, dec(col::<&[u8]>(row, 3)?)?);
        }
        for row in &revision_rows {
            let arrival = unbig(col(row, 0)?)?;
            let held = group.note_held(arrival, col(row, 1)?, col(row, 2)?, col(row, 3)?)?;
            if col::<bool>(row, 4)? {
                group.latest.insert(held.id, arrival);
                group.shown_before.insert(held.id);
            }
        }
        for row in &owner_rows {
            group
                .owners
                .insert(id16(col(row, 0)?)?, site_id(col(row, 1)?)?);
        }
        Ok(group)
    }

    fn note_held(
        &mut self,
        arrival: u64,
        id: &[u8],
        revision: i64,
        hash: &[u8],
    ) -> Result<Held, StoreError> {
        let held = Held {
            id: id16(id)?,
            revision: u32::try_from(revision)
                .map_err(|_| StoreError::Corrupt(format!("revision {revision}")))?,
            hash: hash.try_into().map_err(|_| {
                StoreError::Corrupt(format!("a content hash of {} bytes", hash.len()))
            })?,
        };
        self.held.insert(arrival, held);
        self.by_revision.insert((held.id, held.revision), arrival);
        Ok(held)
    }

    /// Judges one batch by the rules against the hwm the group's earlier batches left, as the
    /// redb store does inside its one write transaction.
    fn judge(
        &mut self,
        job: &BatchJob,
        limits: &Limits,
        guard: &PiiGuard,
    ) -> Result<BatchOutcome, StoreError> {
        let (site, epoch, batch, now) = (&job.site, job.epoch, &job.batch, job.now);
        let hwm = self.hwm.get(&(site.clone(), epoch.0)).copied().unwrap_or(0);
        let examined_here;
        let examined_batch = match &job.examined {
            Some(examined) => examined,
            None => {
                examined_here = examined(batch, guard, now);
                &examined_here
            }
        };
        let (verdict, stored) = {
            let _rules = profile::COLLECTOR_RULES.start();
            profile::COLLECTOR_RULES.add_items(batch.reports.len() as u64);
            let mut ledger = GroupLedger {
                group: self,
                site,
                epoch,
                now,
                stored: Vec::new(),
            };
            let verdict =
                apply_examined_batch(&mut ledger, site, hwm, batch, examined_batch, limits)?;
            let stored = std::mem::take(&mut ledger.stored);
            (verdict, stored)
        };
        match verdict {
            BatchVerdict::Refused {
                hwm,
                reason,
                skipped,
            } => {
                if let Some(range) = skipped {
                    let kind = GapKind::SkippedSeqs;
                    self.gaps.push((site.clone(), epoch, range, kind, now));
                }
                let message = batch_refusal_message(batch, epoch, hwm, &reason);
                self.rejections.push(rejection(site, message, now));
                Ok(BatchOutcome::Refused { hwm, reason })
            }
            BatchVerdict::Applied(applied) => {
                let key = (site.clone(), epoch.0);
                if applied.hwm > hwm {
                    self.hwm.insert(key.clone(), applied.hwm);
                    self.hwm_changed.insert(key);
                }
                for r in &applied.refused {
                    let message = report_refusal_message(epoch, r);
                    self.rejections.push(rejection(site, message, now));
                }
                if let Some(record) = self.sites.get_mut(site) {
                    note_batch(record, now, stored.len() as u64);
                    self.touched_sites.insert(site.clone());
                }
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

    /// Writes what the group holds: one statement per table, all sent together.
    async fn write(&self, c: &impl GenericClient, st: &WriteStatements) -> Result<(), StoreError> {
        let unshown: Vec<Vec<u8>> = self.latest_changed.iter().map(|id| id.to_vec()).collect();
        let mut revisions = RevisionColumns::default();
        let mut expected = Vec::new();
        let (mut stored, mut quarantined) = (0i64, 0i64);
        for new in &self.new_revisions {
            let shown = self.latest.get(&new.record.report.id.0) == Some(&new.record.arrival);
            revisions.push(new, shown);
            if new.findings.is_empty() {
                stored += 1;
                let site = &new.record.site;
                expected.extend(
                    new.record
                        .report
                        .attachments
                        .iter()
                        .map(|a| (site.clone(), a.clone())),
                );
            } else {
                quarantined += 1;
            }
        }
        let shown = self
            .latest_changed
            .iter()
            .filter(|id| !self.shown_before.contains(*id))
            .count() as i64;
        let mut positions = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (site, epoch, seq, arrival) in &self.new_positions {
            positions.0.push(site.as_str());
            positions.1.push(epoch_col(*epoch));
            positions.2.push(big(*seq));
            positions.3.push(big(*arrival));
        }
        let owner_ids: Vec<Vec<u8>> = self.new_owners.iter().map(|(id, _)| id.to_vec()).collect();
        let owner_sites: Vec<&str> = self.new_owners.iter().map(|(_, s)| s.as_str()).collect();
        let mut verdicts = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((site, epoch, seq), kept) in &self.new_verdicts {
            verdicts.0.push(site.as_str());
            verdicts.1.push(epoch_col(*epoch));
            verdicts.2.push(big(*seq));
            verdicts.3.push(enc(kept));
        }
        let mut hwms = (Vec::new(), Vec::new(), Vec::new());
        for key in &self.hwm_changed {
            if let Some(hwm) = self.hwm.get(key) {
                hwms.0.push(key.0.as_str());
                hwms.1.push(epoch_col(key.1));
                hwms.2.push(big(*hwm));
            }
        }
        let mut sites = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for id in &self.touched_sites {
            if let Some(record) = self.sites.get(id) {
                sites.0.push(id.as_str());
                sites.1.push(super::records::status_name(record.status));
                sites.2.push(record.kanwil.as_str());
                sites.3.push(enc(record));
            }
        }
        let arrival_moved = self.next_arrival != self.first_arrival;
        let mut steps: Vec<Step<'_>> = Vec::new();
        // Revisions no longer shown first: the partial unique index allows one shown each.
        if !unshown.is_empty() {
            let params: (Vec<Vec<u8>>, i64) = (unshown, big(self.first_arrival));
            steps.push(Box::pin(async move {
                c.execute(&st.unset_latest, &[&params.0, &params.1]).await?;
                Ok(())
            }));
        }
        if !self.new_revisions.is_empty() {
            steps.push(Box::pin(revisions.insert(c, &st.insert_revisions)));
        }
        if !positions.0.is_empty() {
            steps.push(Box::pin(async move {
                let p = &positions;
                c.execute(&st.insert_positions, &[&p.0, &p.1, &p.2, &p.3])
                    .await?;
                Ok(())
            }));
        }
        if !owner_ids.is_empty() {
            steps.push(Box::pin(async move {
                c.execute(&st.insert_owners, &[&owner_ids, &owner_sites])
                    .await?;
                Ok(())
            }));
        }
        if !verdicts.0.is_empty() {
            steps.push(Box::pin(async move {
                let v = &verdicts;
                c.execute(&st.insert_verdicts, &[&v.0, &v.1, &v.2, &v.3])
                    .await?;
                Ok(())
            }));
        }
        if !hwms.0.is_empty() {
            steps.push(Box::pin(async move {
                c.execute(&st.set_hwms, &[&hwms.0, &hwms.1, &hwms.2])
                    .await?;
                Ok(())
            }));
        }
        if arrival_moved {
            let next = big(self.next_arrival);
            steps.push(Box::pin(async move {
                c.execute(&st.next_arrival, &[&next]).await?;
                Ok(())
            }));
        }
        steps.push(Box::pin(move_counters(
            c,
            &st.move_counters,
            stored,
            quarantined,
            shown,
        )));
        steps.push(Box::pin(insert_rejections(
            c,
            &st.insert_rejections,
            &self.rejections,
        )));
        steps.push(Box::pin(expect_attachments(
            c,
            &st.expect_attachments,
            &expected,
        )));
        if !sites.0.is_empty() {
            steps.push(Box::pin(async move {
                let x = &sites;
                c.execute(&st.update_sites, &[&x.0, &x.1, &x.2, &x.3])
                    .await?;
                Ok(())
            }));
        }
        in_order(steps).await?;
        for (site, epoch, range, kind, now) in &self.gaps {
            upsert_gap(c, site, *epoch, range.clone(), *kind, *now).await?;
        }
        Ok(())
    }
}

fn site_id(raw: &str) -> Result<SiteId, StoreError> {
    SiteId::new(raw).map_err(|e| StoreError::Corrupt(format!("a stored site id: {e}")))
}

/// Inserts revisions from column arrays (see [`RevisionColumns`]).
pub(super) const INSERT_REVISIONS: &str = "INSERT INTO revisions (arrival, site, epoch, seq,
         report_id, revision, category, priority, title, body, occurred_at, received_at,
         content_hash, record, findings, is_latest)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[],
         $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[],
         $12::bigint[], $13::bytea[], $14::bytea[], $15::bytea[], $16::boolean[])";

/// The statements a group commit writes with, prepared on its connection before the
/// transaction begins.
struct WriteStatements {
    unset_latest: Statement,
    insert_revisions: Statement,
    insert_positions: Statement,
    insert_owners: Statement,
    insert_verdicts: Statement,
    set_hwms: Statement,
    next_arrival: Statement,
    move_counters: Statement,
    insert_rejections: Statement,
    expect_attachments: Statement,
    update_sites: Statement,
}

impl WriteStatements {
    async fn prepare(c: &mut Pooled<'_>) -> Result<WriteStatements, StoreError> {
        Ok(WriteStatements {
            unset_latest: c
                .prepared(
                    "UPDATE revisions SET is_latest = false
                     WHERE report_id = ANY($1) AND is_latest AND arrival < $2",
                )
                .await?,
            insert_revisions: c.prepared(INSERT_REVISIONS).await?,
            insert_positions: c
                .prepared(
                    "INSERT INTO positions (site, epoch, seq, arrival)
                     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                     ON CONFLICT (site, epoch, seq) DO UPDATE SET arrival = excluded.arrival",
                )
                .await?,
            insert_owners: c
                .prepared(
                    "INSERT INTO owners (report_id, site)
                     SELECT * FROM unnest($1::bytea[], $2::text[])",
                )
                .await?,
            insert_verdicts: c
                .prepared(
                    "INSERT INTO verdicts (site, epoch, seq, record)
                     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
                     ON CONFLICT (site, epoch, seq) DO UPDATE SET record = excluded.record",
                )
                .await?,
            set_hwms: c
                .prepared(
                    "INSERT INTO hwm (site, epoch, hwm)
                     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
                     ON CONFLICT (site, epoch) DO UPDATE SET hwm = excluded.hwm",
                )
                .await?,
            next_arrival: c
                .prepared("UPDATE meta SET value = $1 WHERE key = 'next_arrival'")
                .await?,
            move_counters: c.prepared(MOVE_COUNTERS).await?,
            insert_rejections: c.prepared(INSERT_REJECTIONS).await?,
            expect_attachments: c.prepared(EXPECT_ATTACHMENTS).await?,
            update_sites: c
                .prepared(
                    "UPDATE sites SET status = q.status, kanwil = q.kanwil, record = q.record
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
                          AS q(id, status, kanwil, record)
                     WHERE sites.id = q.id",
                )
                .await?,
        })
    }
}

/// The columns of new revisions, for one `INSERT … SELECT FROM unnest(…)`.
#[derive(Default)]
pub(super) struct RevisionColumns {
    arrival: Vec<i64>,
    site: Vec<String>,
    epoch: Vec<i64>,
    seq: Vec<i64>,
    report_id: Vec<Vec<u8>>,
    revision: Vec<i64>,
    category: Vec<String>,
    priority: Vec<String>,
    title: Vec<String>,
    body: Vec<String>,
    occurred_at: Vec<i64>,
    received_at: Vec<i64>,
    content_hash: Vec<Vec<u8>>,
    record: Vec<Vec<u8>>,
    findings: Vec<Option<Vec<u8>>>,
    is_latest: Vec<bool>,
}

/// Text for a searched column: PostgreSQL's text cannot hold NUL, which a report may (the
/// record column keeps the exact report).
pub(super) fn searchable(text: &str) -> String {
    text.replace('\0', "")
}

impl RevisionColumns {
    fn push(&mut self, new: &NewRevision, shown: bool) {
        self.push_record(&new.record, &new.findings, shown);
    }

    /// Adds one revision: stored when `findings` is empty, else quarantined.
    pub(super) fn push_record(&mut self, r: &StoredReport, findings: &[Finding], shown: bool) {
        self.arrival.push(big(r.arrival));
        self.site.push(r.site.as_str().to_owned());
        self.epoch.push(epoch_col(r.epoch.0));
        self.seq.push(big(r.seq));
        self.report_id.push(r.report.id.0.to_vec());
        self.revision.push(i64::from(r.report.revision));
        self.category.push(searchable(&r.report.category));
        self.priority.push(r.report.priority.as_str().to_owned());
        self.title.push(searchable(&r.report.title));
        self.body.push(searchable(&r.report.body));
        self.occurred_at.push(r.report.occurred_at.0);
        self.received_at.push(r.received_at.0);
        self.content_hash.push(r.content_hash.to_vec());
        self.record.push(enc(r));
        self.findings
            .push((!findings.is_empty()).then(|| enc(&findings.to_vec())));
        self.is_latest.push(shown);
    }

    pub(super) async fn insert<S: ToStatement + ?Sized + Sync + Send>(
        &self,
        c: &impl GenericClient,
        statement: &S,
    ) -> Result<(), StoreError> {
        c.execute(
            statement,
            &[
                &self.arrival,
                &self.site,
                &self.epoch,
                &self.seq,
                &self.report_id,
                &self.revision,
                &self.category,
                &self.priority,
                &self.title,
                &self.body,
                &self.occurred_at,
                &self.received_at,
                &self.content_hash,
                &self.record,
                &self.findings,
                &self.is_latest,
            ],
        )
        .await?;
        Ok(())
    }
}

fn id16(raw: &[u8]) -> Result<[u8; 16], StoreError> {
    raw.try_into()
        .map_err(|_| StoreError::Corrupt(format!("a report id of {} bytes", raw.len())))
}

/// The rules' ledger over one group: reads what [`Group::read`] found with the group's own
/// writes laid over it; writes go to the group, written at its end.
struct GroupLedger<'g> {
    group: &'g mut Group,
    site: &'g SiteId,
    epoch: Epoch,
    now: Timestamp,
    stored: Vec<StoredReport>,
}

impl Ledger for GroupLedger<'_> {
    type Error = StoreError;

    fn hash_at(&mut self, seq: Seq) -> Result<Option<[u8; 32]>, StoreError> {
        let key = (self.site.clone(), self.epoch.0, seq);
        Ok(self
            .group
            .positions
            .get(&key)
            .and_then(|a| self.group.held.get(a))
            .map(|h| h.hash))
    }

    fn hash_of_revision(
        &mut self,
        id: &ReportId,
        revision: u32,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self
            .group
            .by_revision
            .get(&(id.0, revision))
            .and_then(|a| self.group.held.get(a))
            .map(|h| h.hash))
    }

    fn owner(&mut self, id: &ReportId) -> Result<Option<SiteId>, StoreError> {
        Ok(self.group.owners.get(&id.0).cloned())
    }

    fn hold(
        &mut self,
        seq: Seq,
        report: &Report,
        hash: [u8; 32],
        findings: Vec<Finding>,
    ) -> Result<(), StoreError> {
        let group = &mut *self.group;
        let arrival = group.next_arrival;
        group.next_arrival += 1;
        let record = StoredReport {
            arrival,
            site: self.site.clone(),
            epoch: self.epoch,
            seq,
            report: report.clone(),
            content_hash: hash,
            received_at: self.now,
        };
        let clean = findings.is_empty();
        let held = Held {
            id: report.id.0,
            revision: report.revision,
            hash,
        };
        group.held.insert(arrival, held);
        group
            .by_revision
            .insert((report.id.0, report.revision), arrival);
        group
            .positions
            .insert((self.site.clone(), self.epoch.0, seq), arrival);
        group
            .new_positions
            .push((self.site.clone(), self.epoch.0, seq, arrival));
        if let std::collections::hash_map::Entry::Vacant(slot) = group.owners.entry(report.id.0) {
            slot.insert(self.site.clone());
            group.new_owners.push((report.id.0, self.site.clone()));
        }
        // The highest clean revision is shown; a quarantined one never hides the clean one
        // before it, and an older one arriving late only joins the history.
        if clean {
            let newer = match group.latest.get(&report.id.0) {
                Some(a) => group
                    .held
                    .get(a)
                    .is_none_or(|shown| report.revision >= shown.revision),
                None => true,
            };
            if newer {
                group.latest.insert(report.id.0, arrival);
                group.latest_changed.insert(report.id.0);
            }
            self.stored.push(record.clone());
        }
        group.new_revisions.push(NewRevision { record, findings });
        Ok(())
    }

    fn link(&mut self, seq: Seq, report: &Report) -> Result<(), StoreError> {
        let group = &mut *self.group;
        if let Some(&arrival) = group.by_revision.get(&(report.id.0, report.revision)) {
            group
                .positions
                .insert((self.site.clone(), self.epoch.0, seq), arrival);
            group
                .new_positions
                .push((self.site.clone(), self.epoch.0, seq, arrival));
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
            let key = (self.site.clone(), self.epoch.0, report.seq);
            let kept = KeptVerdict {
                quarantined,
                report: report.clone(),
            };
            self.group.verdicts.insert(key.clone(), kept.clone());
            self.group.new_verdicts.push((key, kept));
        }
        Ok(())
    }

    fn verdicts_within(&mut self, range: RangeInclusive<Seq>) -> Result<Verdicts, StoreError> {
        let from = (self.site.clone(), self.epoch.0, *range.start());
        let to = (self.site.clone(), self.epoch.0, *range.end());
        let mut found = Verdicts::default();
        for kept in self.group.verdicts.range(from..=to).map(|(_, v)| v) {
            match kept.quarantined {
                true => found.quarantined.push(kept.report.clone()),
                false => found.refused.push(kept.report.clone()),
            }
        }
        Ok(found)
    }
}

/// Makes `txn` a record of what a site told about itself (a heartbeat, that it was seen, what
/// its agent runs): its
/// commit does not wait for the WAL to reach the disk (nor a standby), as on redb it waits for
/// the next durable commit. Lost in a crash or a failover, it is told again at the next
/// heartbeat.
pub(super) async fn telemetry(txn: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    txn.batch_execute("SET LOCAL synchronous_commit TO OFF")
        .await?;
    Ok(())
}
