//! The reports as kept on PostgreSQL: one `revisions` table holds every revision, stored or
//! quarantined (`findings` not null), with `is_latest` marking the one shown for its id; and
//! the quarantine's release and purge. Counts the dashboard asks for on every page (shown,
//! stored, quarantined) are counters moved in the same transaction as the rows, since counting
//! millions of rows is not free on PostgreSQL.

use super::records::{audit, site_for_update};
use super::store::{big, col, dec, enc, epoch_col, unbig, PgStore};
use crate::store::{Quarantined, ReportQuery, SnapshotSummary, StoreError, StoredReport};
use pasopati_common::attachment::AttachmentRef;
use pasopati_common::pii::Finding;
use pasopati_common::{ReportId, SiteId, Timestamp};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tokio_postgres::ToStatement;
use tokio_postgres::{GenericClient, IsolationLevel};

/// Moves the report counters (kept in `meta`) by its three amounts: stored, quarantined, shown.
pub(super) const MOVE_COUNTERS: &str = "UPDATE meta SET value = value + CASE key
         WHEN 'stored_count' THEN $1::bigint
         WHEN 'quarantined_count' THEN $2::bigint
         ELSE $3::bigint END
     WHERE key IN ('stored_count', 'quarantined_count', 'shown_count')";

/// Moves the report counters by these amounts, with [`MOVE_COUNTERS`] (text or prepared).
pub(super) async fn move_counters<S: ToStatement + ?Sized + Sync + Send>(
    c: &impl GenericClient,
    statement: &S,
    stored: i64,
    quarantined: i64,
    shown: i64,
) -> Result<(), StoreError> {
    if stored == 0 && quarantined == 0 && shown == 0 {
        return Ok(());
    }
    c.execute(statement, &[&stored, &quarantined, &shown])
        .await?;
    Ok(())
}

/// Notes expected attachments: site, hash and record arrays, skipping those held already.
pub(super) const EXPECT_ATTACHMENTS: &str = "INSERT INTO attachments_expected (site, hash, record)
     SELECT s, h, r FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS t(s, h, r)
     WHERE NOT EXISTS (SELECT 1 FROM attachments a WHERE a.hash = t.h)
     ON CONFLICT (site, hash) DO UPDATE SET record = excluded.record";

/// Notes the attachments `site`'s stored reports bring that the collector does not hold yet.
pub(super) async fn expect_attachments<S: ToStatement + ?Sized + Sync + Send>(
    c: &impl GenericClient,
    statement: &S,
    expected: &[(SiteId, AttachmentRef)],
) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    let (mut sites, mut hashes, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
    for (site, a) in expected {
        if seen.insert((site.clone(), a.hash)) {
            sites.push(site.as_str());
            hashes.push(a.hash.to_vec());
            blobs.push(enc(a));
        }
    }
    if sites.is_empty() {
        return Ok(());
    }
    c.execute(statement, &[&sites, &hashes, &blobs]).await?;
    Ok(())
}

fn report_of(raw: &[u8]) -> Result<StoredReport, StoreError> {
    dec(raw)
}

impl PgStore {
    pub fn reports(&self, query: &ReportQuery) -> Result<Vec<StoredReport>, StoreError> {
        let site = query.site.as_ref().map(|s| s.as_str());
        let limit = query.limit.map_or(i64::MAX, |l| big(l as u64));
        self.all(
            "SELECT record FROM revisions
             WHERE is_latest AND arrival >= $1 AND ($2::text IS NULL OR site = $2)
             ORDER BY arrival LIMIT $3",
            &[&big(query.after_arrival.unwrap_or(0)), &site, &limit],
        )
    }

    pub fn newest_from(
        &self,
        from: u64,
        mut visit: impl FnMut(StoredReport),
    ) -> Result<(), StoreError> {
        let tail: Vec<StoredReport> = self.all(
            "SELECT record FROM revisions WHERE is_latest AND arrival >= $1 ORDER BY arrival DESC",
            &[&big(from)],
        )?;
        tail.into_iter().for_each(&mut visit);
        Ok(())
    }

    pub fn latest_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<StoredReport>, u64), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            // One snapshot for the page and the end it reaches.
            let txn = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let rows = txn
                .query(
                    "SELECT arrival, record FROM revisions WHERE is_latest AND arrival >= $1
                     ORDER BY arrival LIMIT $2",
                    &[&big(from), &big(limit as u64)],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(report_of(col(row, 1)?)?);
            }
            let next = if out.len() >= limit {
                out.last().map_or(from, |r| r.arrival.saturating_add(1))
            } else {
                // The page ends the store: everything up to the last arrival was seen.
                let row = txn
                    .query_one(
                        "SELECT max(arrival) FROM revisions WHERE arrival >= $1",
                        &[&big(from)],
                    )
                    .await?;
                match col::<Option<i64>>(&row, 0)? {
                    Some(last) => unbig(last)?.saturating_add(1),
                    None => from,
                }
            };
            txn.commit().await?;
            Ok((out, next))
        })
    }

    pub fn shown_count(&self) -> Result<u64, StoreError> {
        self.counter("shown_count")
    }

    pub fn newest_shown(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StoredReport>, StoreError> {
        self.all(
            "SELECT record FROM revisions WHERE is_latest ORDER BY arrival DESC OFFSET $1 LIMIT $2",
            &[&big(offset as u64), &big(limit as u64)],
        )
    }

    pub fn reports_at(&self, arrivals: &[u64]) -> Result<Vec<Option<StoredReport>>, StoreError> {
        let wanted: Vec<i64> = arrivals.iter().map(|a| big(*a)).collect();
        let found: Vec<StoredReport> = self.all(
            "SELECT record FROM revisions WHERE arrival = ANY($1) AND findings IS NULL",
            &[&wanted],
        )?;
        let mut by_arrival: HashMap<u64, StoredReport> =
            found.into_iter().map(|r| (r.arrival, r)).collect();
        Ok(arrivals.iter().map(|a| by_arrival.remove(a)).collect())
    }

    pub fn late_for_index(&self) -> Result<Vec<(u64, Option<StoredReport>)>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT l.arrival, r.record FROM index_late l
                     LEFT JOIN revisions r ON r.arrival = l.arrival AND r.is_latest
                     ORDER BY l.arrival",
                    &[],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let record: Option<&[u8]> = col(row, 1)?;
                out.push((unbig(col(row, 0)?)?, record.map(report_of).transpose()?));
            }
            Ok(out)
        })
    }

    pub fn forget_late_for_index(&self, arrivals: &[u64]) -> Result<(), StoreError> {
        if arrivals.is_empty() {
            return Ok(());
        }
        let arrivals: Vec<i64> = arrivals.iter().map(|a| big(*a)).collect();
        self.run(async {
            let c = self.pool.get().await?;
            c.execute(
                "DELETE FROM index_late WHERE arrival = ANY($1)",
                &[&arrivals],
            )
            .await?;
            Ok(())
        })
    }

    pub fn revisions(&self, id: &ReportId) -> Result<Vec<StoredReport>, StoreError> {
        self.all(
            "SELECT record FROM revisions WHERE report_id = $1 AND findings IS NULL ORDER BY revision",
            &[&&id.0[..]],
        )
    }

    pub fn report(&self, id: &ReportId) -> Result<Option<StoredReport>, StoreError> {
        self.one(
            "SELECT record FROM revisions WHERE report_id = $1 AND is_latest",
            &[&&id.0[..]],
        )
    }

    pub fn owners_of(
        &self,
        ids: &[ReportId],
    ) -> Result<std::collections::HashMap<ReportId, SiteId>, StoreError> {
        let keys: Vec<&[u8]> = ids.iter().map(|id| &id.0[..]).collect();
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT report_id, site FROM owners WHERE report_id = ANY($1)",
                    &[&keys],
                )
                .await?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let id: &[u8] = col(row, 0)?;
                let site: &str = col(row, 1)?;
                if let (Ok(id), Ok(site)) = (<[u8; 16]>::try_from(id), SiteId::new(site)) {
                    found.insert(ReportId(id), site);
                }
            }
            Ok(found)
        })
    }

    pub fn report_count(&self) -> Result<u64, StoreError> {
        self.counter("stored_count")
    }

    pub fn quarantine(&self) -> Result<Vec<Quarantined>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT record, findings FROM revisions WHERE findings IS NOT NULL ORDER BY arrival",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Quarantined {
                        report: report_of(col(row, 0)?)?,
                        findings: dec(col::<&[u8]>(row, 1)?)?,
                    })
                })
                .collect()
        })
    }

    pub fn release_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<StoredReport>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let Some(held) = quarantined_at(&txn, arrival).await? else {
                return Ok(None);
            };
            // The owning site's row orders this with the site's own new revisions of the id.
            site_for_update(&txn, &held.report.site).await?;
            let Some(held) = quarantined_at(&txn, arrival).await? else {
                return Ok(None);
            };
            let record = held.report;
            if record.report.title.is_empty() {
                // Purged: nothing left to release.
                return Ok(None);
            }
            let id = &record.report.id.0[..];
            let shown = txn
                .query_opt(
                    "SELECT arrival, revision FROM revisions WHERE report_id = $1 AND is_latest",
                    &[&id],
                )
                .await?;
            let newer = match &shown {
                Some(row) => i64::from(record.report.revision) >= col::<i64>(row, 1)?,
                None => true,
            };
            if newer {
                txn.execute(
                    "UPDATE revisions SET is_latest = false WHERE report_id = $1 AND is_latest",
                    &[&id],
                )
                .await?;
            }
            txn.execute(
                "UPDATE revisions SET findings = NULL, is_latest = $2 WHERE arrival = $1",
                &[&big(arrival), &newer],
            )
            .await?;
            let newly_shown = i64::from(newer && shown.is_none());
            move_counters(&txn, MOVE_COUNTERS, 1, -1, newly_shown).await?;
            let expected: Vec<(SiteId, AttachmentRef)> = record
                .report
                .attachments
                .iter()
                .map(|a| (record.site.clone(), a.clone()))
                .collect();
            expect_attachments(&txn, EXPECT_ATTACHMENTS, &expected).await?;
            // Released with its old arrival number: the report index, which follows arrivals,
            // must be told (`crate::report_index`).
            if newer {
                super::search::index_released(&txn, arrival).await?;
            }
            txn.execute(
                "INSERT INTO index_late (arrival) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&big(arrival)],
            )
            .await?;
            // Stored now: a resend of its seq is no longer answered with the quarantine.
            txn.execute(
                "DELETE FROM verdicts WHERE site = $1 AND epoch = $2 AND seq = $3",
                &[
                    &record.site.as_str(),
                    &epoch_col(record.epoch.0),
                    &big(record.seq),
                ],
            )
            .await?;
            let subject = format!("report:{}", record.report.id);
            let action = "quarantine_release";
            audit(&txn, actor, action, &subject, reason.to_owned(), now).await?;
            txn.commit().await?;
            Ok(Some(record))
        })
    }

    pub fn purge_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let Some(mut held) = quarantined_at(&txn, arrival).await? else {
                return Ok(false);
            };
            crate::store::reports::purge_text(&mut held);
            txn.execute(
                "UPDATE revisions SET record = $2, title = '', body = '' WHERE arrival = $1",
                &[&big(arrival), &enc(&held.report)],
            )
            .await?;
            let subject = format!("report:{}", held.report.report.id);
            let action = "quarantine_purge";
            audit(&txn, actor, action, &subject, reason.to_owned(), now).await?;
            txn.commit().await?;
            Ok(true)
        })
    }

    pub fn snapshot_to(&self, _path: &Path) -> Result<SnapshotSummary, StoreError> {
        Err(StoreError::Database(
            "`backup` copies the embedded redb store; a PostgreSQL store is backed up with pg_dump, or with base backups and WAL archiving (INSTALL.md, \"Backups\"); keep a copy of the data directory's collector.toml and keys beside it".into(),
        ))
    }

    fn counter(&self, key: &str) -> Result<u64, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            super::store::counter(&*c, key, 0).await
        })
    }
}

/// The quarantined revision at `arrival`, locked until the transaction ends.
async fn quarantined_at(
    c: &impl GenericClient,
    arrival: u64,
) -> Result<Option<Quarantined>, StoreError> {
    let row = c
        .query_opt(
            "SELECT record, findings FROM revisions
             WHERE arrival = $1 AND findings IS NOT NULL FOR UPDATE",
            &[&big(arrival)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let findings: Vec<Finding> = dec(col::<&[u8]>(&row, 1)?)?;
    Ok(Some(Quarantined {
        report: report_of(col(&row, 0)?)?,
        findings,
    }))
}
