//! Moving a redb store into PostgreSQL (`pasopati-collector store migrate`): every table of the
//! redb file into the PostgreSQL schema, resumable and verified.
//!
//! **What is copied.** Each PostgreSQL table is filled from the redb tables that hold its rows
//! ([`TARGETS`]). Records keep their bincode bytes, and the columns the PostgreSQL store queries
//! (a site's status and Kanwil, a report's title and body, a session's expiry) are read from
//! them as that store writes them. The redb tables that only find rows (revisions by id, media
//! by id) are PostgreSQL's indexes. A table in the redb file that no target reads fails the
//! move, as it fails a backup: a table added later is never left behind without a word.
//!
//! **Resumable.** The source is read in key order. Rows go in chunks, each written in one
//! transaction with the number of rows copied so far (`store_import`), so a move stopped
//! anywhere (Ctrl-C, a lost connection, a killed process) goes on from its last chunk.
//!
//! **Verified.** At the end every table is read back from PostgreSQL and compared with the redb
//! store, read again: the number of rows, and a content hash over every column of every row
//! (the sum, modulo 2^128, of each row's SHA-256, so the order rows come back in does not
//! matter).

use super::ingest::searchable;
use super::records::status_name;
use super::store::{big, epoch_col, PgStore};
use crate::store::report_log::RecordReader;
use crate::store::sites::TokenRecord;
use crate::store::{
    audit, decode, encode, ingest, media, publications, risk, sources, story_edits, users,
    AuditEntry, Quarantined, RedbStore, SiteRecord, StoreError, StoredReport, StoredSession, BY_ID,
    HWM, INDEX_LATE, META, QUARANTINE, REPORTS, SITES,
};
use futures_core::Stream;
use redb::{
    AccessGuard, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableHandle,
};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::pin::Pin;
use tokio_postgres::types::ToSql;

/// How far a move has come: sent after each chunk written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportProgress {
    pub table: &'static str,
    /// Rows of this table in PostgreSQL so far.
    pub copied: u64,
    /// Whether the table is complete.
    pub done: bool,
}

/// One table as verified: the same rows and content on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCheck {
    pub table: &'static str,
    pub rows: u64,
    /// The content hash (hex, 32 digits) both sides agree on.
    pub hash: String,
}

/// A finished move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    /// Whether an earlier run had begun it.
    pub resumed: bool,
    /// Rows written by this run.
    pub copied_now: u64,
    pub tables: Vec<TableCheck>,
}

/// What a column holds, as PostgreSQL types it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Bytes,
    MaybeBytes,
    Bool,
}

impl Kind {
    fn sql(self) -> &'static str {
        match self {
            Kind::Int => "bigint",
            Kind::Text => "text",
            Kind::Bytes | Kind::MaybeBytes => "bytea",
            Kind::Bool => "boolean",
        }
    }
}

/// One value of a row, whichever side it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cell {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Null,
    Bool(bool),
}

type Row = Vec<Cell>;

/// Whether a source gave every row (or its sink stopped it), or why it failed.
type Flow = Result<ControlFlow<()>, StoreError>;

/// Where the rows of a table go: a chunk writer, or the verification's hash. It answers
/// whether to go on.
type Sink<'s> = dyn FnMut(Row) -> Flow + 's;

/// The redb rows of one PostgreSQL table, in a fixed order, from the `skip`-th on.
type Source = fn(&Reading<'_>, &mut u64, &mut Sink<'_>) -> Flow;

/// The redb store as the import reads it: one read transaction, and the report log that its
/// `reports` entries may name.
struct Reading<'a> {
    txn: ReadTransaction,
    log: RecordReader<'a>,
}

impl std::ops::Deref for Reading<'_> {
    type Target = ReadTransaction;
    fn deref(&self) -> &ReadTransaction {
        &self.txn
    }
}

/// One PostgreSQL table and where its rows come from.
struct Target {
    table: &'static str,
    columns: &'static [(&'static str, Kind)],
    source: Source,
    /// What a row already there does: nothing (no table has rows before the move, but a chunk
    /// written again after a crash between its commit and our hearing of it finds its own), or,
    /// for `meta`, whose counters the schema made at zero, take the store's value.
    conflict: &'static str,
}

const NOTHING: &str = "ON CONFLICT DO NOTHING";

/// Every table, in the order they are filled.
const TARGETS: &[Target] = &[
    Target {
        table: "meta",
        columns: &[("key", Kind::Text), ("value", Kind::Int)],
        source: meta,
        conflict: "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    },
    Target {
        table: "sites",
        columns: &[
            ("id", Kind::Text),
            ("status", Kind::Text),
            ("kanwil", Kind::Text),
            ("record", Kind::Bytes),
        ],
        source: sites,
        conflict: NOTHING,
    },
    Target {
        table: "tokens",
        columns: &[
            ("secret_hash", Kind::Bytes),
            ("site", Kind::Text),
            ("record", Kind::Bytes),
        ],
        source: tokens,
        conflict: NOTHING,
    },
    Target {
        table: "hwm",
        columns: &[
            ("site", Kind::Text),
            ("epoch", Kind::Int),
            ("hwm", Kind::Int),
        ],
        source: hwm,
        conflict: NOTHING,
    },
    Target {
        table: "revisions",
        columns: &[
            ("arrival", Kind::Int),
            ("site", Kind::Text),
            ("epoch", Kind::Int),
            ("seq", Kind::Int),
            ("report_id", Kind::Bytes),
            ("revision", Kind::Int),
            ("category", Kind::Text),
            ("priority", Kind::Text),
            ("title", Kind::Text),
            ("body", Kind::Text),
            ("occurred_at", Kind::Int),
            ("received_at", Kind::Int),
            ("content_hash", Kind::Bytes),
            ("record", Kind::Bytes),
            ("findings", Kind::MaybeBytes),
            ("is_latest", Kind::Bool),
        ],
        source: revisions,
        conflict: NOTHING,
    },
    Target {
        table: "index_late",
        columns: &[("arrival", Kind::Int)],
        source: index_late,
        conflict: NOTHING,
    },
    Target {
        table: "positions",
        columns: &[
            ("site", Kind::Text),
            ("epoch", Kind::Int),
            ("seq", Kind::Int),
            ("arrival", Kind::Int),
        ],
        source: positions,
        conflict: NOTHING,
    },
    Target {
        table: "owners",
        columns: &[("report_id", Kind::Bytes), ("site", Kind::Text)],
        source: owners,
        conflict: NOTHING,
    },
    Target {
        table: "verdicts",
        columns: SITE_EPOCH_SEQ_RECORD,
        source: verdicts,
        conflict: NOTHING,
    },
    Target {
        table: "gaps",
        columns: &[
            ("site", Kind::Text),
            ("epoch", Kind::Int),
            ("from_seq", Kind::Int),
            ("record", Kind::Bytes),
        ],
        source: gaps,
        conflict: NOTHING,
    },
    Target {
        table: "rejections",
        columns: NUMBERED,
        source: rejections,
        conflict: NOTHING,
    },
    Target {
        table: "heartbeats",
        columns: &[
            ("site", Kind::Text),
            ("at", Kind::Int),
            ("record", Kind::Bytes),
        ],
        source: heartbeats,
        conflict: NOTHING,
    },
    Target {
        table: "attachments_expected",
        columns: &[
            ("site", Kind::Text),
            ("hash", Kind::Bytes),
            ("record", Kind::Bytes),
        ],
        source: attachments_expected,
        conflict: NOTHING,
    },
    Target {
        table: "attachments",
        columns: &[("hash", Kind::Bytes), ("record", Kind::Bytes)],
        source: attachments,
        conflict: NOTHING,
    },
    Target {
        table: "media",
        columns: &[
            ("n", Kind::Int),
            ("id", Kind::Text),
            ("record", Kind::Bytes),
        ],
        source: media_items,
        conflict: NOTHING,
    },
    Target {
        table: "claims",
        columns: NUMBERED,
        source: claims,
        conflict: NOTHING,
    },
    Target {
        table: "publications",
        columns: NUMBERED,
        source: publications,
        conflict: NOTHING,
    },
    Target {
        table: "story_edits",
        columns: NUMBERED,
        source: story_edits,
        conflict: NOTHING,
    },
    Target {
        table: "official_responses",
        columns: NUMBERED,
        source: official_responses,
        conflict: NOTHING,
    },
    Target {
        table: "notifications",
        columns: NUMBERED,
        source: notifications,
        conflict: NOTHING,
    },
    Target {
        table: "notify_active",
        columns: &[("name", Kind::Text), ("keys", Kind::Bytes)],
        source: notify_active,
        conflict: NOTHING,
    },
    Target {
        table: "users",
        columns: &[("username", Kind::Text), ("record", Kind::Bytes)],
        source: users,
        conflict: NOTHING,
    },
    Target {
        table: "api_tokens",
        columns: &[
            ("hash", Kind::Bytes),
            ("username", Kind::Text),
            ("info", Kind::MaybeBytes),
        ],
        source: api_tokens,
        conflict: NOTHING,
    },
    Target {
        table: "sessions",
        columns: &[
            ("hash", Kind::Bytes),
            ("username", Kind::Text),
            ("created_at", Kind::Int),
            ("expires_at", Kind::Int),
            ("record", Kind::Bytes),
        ],
        source: sessions,
        conflict: NOTHING,
    },
    Target {
        table: "media_engagement",
        columns: &[("id", Kind::Text), ("record", Kind::Bytes)],
        source: media_engagement,
        conflict: NOTHING,
    },
    Target {
        table: "source_health",
        columns: &[("key", Kind::Text), ("record", Kind::Bytes)],
        source: source_health,
        conflict: NOTHING,
    },
    Target {
        table: "risk",
        columns: &[
            ("day", Kind::Int),
            ("unit", Kind::Text),
            ("record", Kind::Bytes),
        ],
        source: risk_units,
        conflict: NOTHING,
    },
    Target {
        table: "fleet",
        columns: &[
            ("kind", Kind::Text),
            ("key", Kind::Text),
            ("record", Kind::Bytes),
        ],
        source: fleet_records,
        conflict: NOTHING,
    },
    Target {
        table: "risk_days",
        columns: &[("day", Kind::Int), ("n", Kind::Int)],
        source: risk_days,
        conflict: NOTHING,
    },
    Target {
        table: "alerts",
        columns: &[
            ("number", Kind::Int),
            ("key", Kind::Text),
            ("raised_at", Kind::Int),
            ("record", Kind::Text),
        ],
        source: alerts,
        conflict: NOTHING,
    },
    Target {
        table: "audit",
        columns: &[
            ("seq", Kind::Int),
            ("at", Kind::Int),
            ("actor", Kind::Text),
            ("action", Kind::Text),
            ("subject", Kind::Text),
            ("details", Kind::Text),
            ("prev_hash", Kind::Bytes),
            ("hash", Kind::Bytes),
        ],
        source: audit_log,
        conflict: NOTHING,
    },
];

const SITE_EPOCH_SEQ_RECORD: &[(&str, Kind)] = &[
    ("site", Kind::Text),
    ("epoch", Kind::Int),
    ("seq", Kind::Int),
    ("record", Kind::Bytes),
];

const NUMBERED: &[(&str, Kind)] = &[("n", Kind::Int), ("record", Kind::Bytes)];

/// The redb tables the targets read. `BY_ID` is the only one read by none: a revision's
/// arrival by report id and revision is the `revisions` table's unique key on PostgreSQL.
fn redb_tables() -> Vec<String> {
    let mut names: Vec<String> = [
        META.name(),
        SITES.name(),
        crate::store::sites::TOKENS.name(),
        HWM.name(),
        REPORTS.name(),
        QUARANTINE.name(),
        BY_ID.name(),
        INDEX_LATE.name(),
        ingest::POSITION_RUNS.name(),
        ingest::VERDICTS.name(),
        ingest::GAPS.name(),
        ingest::REJECTIONS.name(),
        ingest::HEARTBEATS.name(),
        media::ATTACHMENTS_EXPECTED.name(),
        media::ATTACHMENTS.name(),
        media::MEDIA.name(),
        media::MEDIA_IDS.name(),
        publications::CLAIMS.name(),
        publications::PUBLICATIONS.name(),
        crate::store::responses::RESPONSES.name(),
        crate::store::notifications::NOTIFICATIONS.name(),
        crate::store::notifications::NOTIFY_ACTIVE.name(),
        story_edits::STORY_EDITS.name(),
        users::USERS.name(),
        users::API_TOKENS.name(),
        users::API_TOKEN_INFO.name(),
        users::SESSIONS.name(),
        sources::MEDIA_ENGAGEMENT.name(),
        sources::SOURCE_HEALTH.name(),
        risk::RISK.name(),
        risk::RISK_DAYS.name(),
        // Its key → number map is the `key` column of `alerts`.
        crate::store::alerts::ALERTS.name(),
        crate::store::alerts::ALERT_KEYS.name(),
        crate::store::fleet::FLEET.name(),
        audit::AUDIT.name(),
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    names.sort();
    names
}

/// Opens a table the store makes on first use: `None` while it was never made.
fn open<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &Reading<'_>,
    definition: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, StoreError> {
    match txn.open_table(definition) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn len<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &Reading<'_>,
    definition: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    match open(txn, definition)? {
        Some(t) => Ok(t.len()?),
        None => Ok(0),
    }
}

/// Gives `sink` a row made by `row` from each entry of a redb table, in key order, past the
/// first `skip` (which it lowers by the entries it passes).
fn each<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &Reading<'_>,
    definition: TableDefinition<K, V>,
    skip: &mut u64,
    sink: &mut Sink<'_>,
    mut row: impl FnMut(AccessGuard<'_, K>, AccessGuard<'_, V>) -> Result<Row, StoreError>,
) -> Flow {
    let Some(table) = open(txn, definition)? else {
        return Ok(ControlFlow::Continue(()));
    };
    let entries = table.len()?;
    if *skip >= entries {
        *skip -= entries;
        return Ok(ControlFlow::Continue(()));
    }
    let mut rows = table.iter()?;
    for passed in rows
        .by_ref()
        .take(usize::try_from(*skip).unwrap_or(usize::MAX))
    {
        passed?;
    }
    *skip = 0;
    for entry in rows {
        let (k, v) = entry?;
        if sink(row(k, v)?)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Gives `sink` the rows of a list made whole (the small tables assembled from several).
fn feed(rows: Vec<Row>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let passed = usize::try_from(*skip).unwrap_or(usize::MAX).min(rows.len());
    *skip -= passed as u64;
    for row in rows.into_iter().skip(passed) {
        if sink(row)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

fn int(v: u64) -> Cell {
    Cell::Int(big(v))
}

fn text(v: &str) -> Cell {
    Cell::Text(v.to_owned())
}

fn bytes(v: &[u8]) -> Cell {
    Cell::Bytes(v.to_vec())
}

/// Every counter, and the three the PostgreSQL store keeps where the redb store counts its
/// tables (stored, quarantined and shown reports).
fn meta(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let mut values: Vec<(String, u64)> = Vec::new();
    if let Some(table) = open(txn, META)? {
        for entry in table.iter()? {
            let (k, v) = entry?;
            // The report log's marks belong to the redb file's log, which PostgreSQL has not.
            if !crate::store::report_log::is_log_mark(k.value()) {
                values.push((k.value().to_owned(), v.value()));
            }
        }
    }
    for (key, n) in [
        ("stored_count", len(txn, REPORTS)?),
        ("quarantined_count", len(txn, QUARANTINE)?),
        // Counted in `META` since layout 4, whose migration sets it: none shown without it.
        ("shown_count", 0),
        ("next_arrival", 0),
        ("audit_count", 0),
        // The report index starts empty: the feeder builds it from the moved reports.
        ("report_index_next", 0),
    ] {
        if !values.iter().any(|(k, _)| k == key) {
            values.push((key.to_owned(), n));
        }
    }
    let rows = values
        .into_iter()
        .map(|(k, v)| vec![Cell::Text(k), int(v)])
        .collect();
    feed(rows, skip, sink)
}

fn sites(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, SITES, skip, sink, |k, v| {
        let site: SiteRecord = decode(v.value())?;
        Ok(vec![
            text(k.value()),
            text(status_name(site.status)),
            Cell::Text(site.kanwil),
            bytes(v.value()),
        ])
    })
}

fn tokens(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, crate::store::sites::TOKENS, skip, sink, |k, v| {
        let token: TokenRecord = decode(v.value())?;
        Ok(vec![
            bytes(k.value()),
            text(token.site.as_str()),
            bytes(v.value()),
        ])
    })
}

fn hwm(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, HWM, skip, sink, |k, v| {
        let (site, epoch) = k.value();
        Ok(vec![
            text(site),
            Cell::Int(epoch_col(epoch)),
            int(v.value()),
        ])
    })
}

/// A revision's row as the PostgreSQL store writes it (`ingest::RevisionColumns`).
fn revision(r: &StoredReport, findings: Cell, shown: bool) -> Row {
    vec![
        int(r.arrival),
        text(r.site.as_str()),
        Cell::Int(epoch_col(r.epoch.0)),
        int(r.seq),
        bytes(&r.report.id.0),
        Cell::Int(i64::from(r.report.revision)),
        Cell::Text(searchable(&r.report.category)),
        text(r.report.priority.as_str()),
        Cell::Text(searchable(&r.report.title)),
        Cell::Text(searchable(&r.report.body)),
        Cell::Int(r.report.occurred_at.0),
        Cell::Int(r.received_at.0),
        bytes(&r.content_hash),
        Cell::Bytes(encode(r)),
        findings,
        Cell::Bool(shown),
    ]
}

/// Stored revisions (each shown if it is its id's latest), then quarantined ones.
fn revisions(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let tables = (open(txn, BY_ID)?, open(txn, REPORTS)?);
    let stored = each(txn, REPORTS, skip, sink, |_, v| {
        let report = txn.log.report(v.value())?;
        let shown = match &tables {
            (Some(by_id), Some(reports)) => {
                crate::store::reports::is_shown(by_id, reports, &report)?
            }
            _ => false,
        };
        Ok(revision(&report, Cell::Null, shown))
    })?;
    if stored.is_break() {
        return Ok(stored);
    }
    each(txn, QUARANTINE, skip, sink, |_, v| {
        let held: Quarantined = decode(v.value())?;
        let findings = if held.findings.is_empty() {
            Cell::Null
        } else {
            Cell::Bytes(encode(&held.findings))
        };
        Ok(revision(&held.report, findings, false))
    })
}

fn index_late(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, INDEX_LATE, skip, sink, |k, _| Ok(vec![int(k.value())]))
}

/// One row per position: each run of positions (`ingest::POSITION_RUNS`) gives a row for every
/// seq it holds, as PostgreSQL keeps them.
fn positions(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let Some(table) = open(txn, ingest::POSITION_RUNS)? else {
        return Ok(ControlFlow::Continue(()));
    };
    for entry in table.iter()? {
        let (k, v) = entry?;
        let (site, epoch, first_seq) = k.value();
        let run = ingest::PositionRun::from_entry(first_seq, v.value());
        if *skip >= run.len {
            *skip -= run.len;
            continue;
        }
        let from = std::mem::take(skip);
        for offset in from..run.len {
            let row = vec![
                text(site),
                Cell::Int(epoch_col(epoch)),
                int(run.first_seq + offset),
                int(run.first_arrival + offset),
            ];
            if sink(row)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// One row per report id held: its owner, read from its revisions (`ingest::owner_of`), as
/// PostgreSQL's `owners` table keeps it.
fn owners(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let tables = (
        open(txn, BY_ID)?,
        open(txn, REPORTS)?,
        open(txn, QUARANTINE)?,
    );
    let (Some(by_id), Some(reports), Some(quarantine)) = tables else {
        return Ok(ControlFlow::Continue(()));
    };
    let mut previous: Option<pasopati_common::ReportId> = None;
    for entry in by_id.iter()? {
        let (k, _) = entry?;
        let id = k
            .value()
            .get(..16)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(pasopati_common::ReportId)
            .ok_or_else(|| StoreError::Corrupt("a by_id key shorter than a report id".into()))?;
        if previous.replace(id) == Some(id) {
            continue;
        }
        let Some(site) = ingest::owner_of(&txn.log, &by_id, &reports, &quarantine, &id)? else {
            continue;
        };
        if *skip > 0 {
            *skip -= 1;
            continue;
        }
        if sink(vec![bytes(&id.0), text(site.as_str())])?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A table keyed by (site, epoch, seq) holding records.
fn by_position(
    txn: &Reading<'_>,
    definition: TableDefinition<(&str, u64, u64), &[u8]>,
    skip: &mut u64,
    sink: &mut Sink<'_>,
) -> Flow {
    each(txn, definition, skip, sink, |k, v| {
        let (site, epoch, seq) = k.value();
        Ok(vec![
            text(site),
            Cell::Int(epoch_col(epoch)),
            int(seq),
            bytes(v.value()),
        ])
    })
}

fn verdicts(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    by_position(txn, ingest::VERDICTS, skip, sink)
}

fn gaps(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    by_position(txn, ingest::GAPS, skip, sink)
}

/// A numbered register: number → record.
fn numbered(
    txn: &Reading<'_>,
    definition: TableDefinition<u64, &[u8]>,
    skip: &mut u64,
    sink: &mut Sink<'_>,
) -> Flow {
    each(txn, definition, skip, sink, |k, v| {
        Ok(vec![int(k.value()), bytes(v.value())])
    })
}

fn rejections(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    numbered(txn, ingest::REJECTIONS, skip, sink)
}

fn claims(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    numbered(txn, publications::CLAIMS, skip, sink)
}

fn publications(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    numbered(txn, publications::PUBLICATIONS, skip, sink)
}

fn notifications(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    numbered(txn, crate::store::notifications::NOTIFICATIONS, skip, sink)
}

fn notify_active(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(
        txn,
        crate::store::notifications::NOTIFY_ACTIVE,
        skip,
        sink,
        |k, v| Ok(vec![text(k.value()), bytes(v.value())]),
    )
}

fn official_responses(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    numbered(txn, crate::store::responses::RESPONSES, skip, sink)
}

fn story_edits(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    numbered(txn, story_edits::STORY_EDITS, skip, sink)
}

fn heartbeats(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, ingest::HEARTBEATS, skip, sink, |k, v| {
        let (site, at) = k.value();
        Ok(vec![text(site), Cell::Int(at), bytes(v.value())])
    })
}

fn attachments_expected(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, media::ATTACHMENTS_EXPECTED, skip, sink, |k, v| {
        let (site, hash) = k.value();
        Ok(vec![text(site), bytes(hash), bytes(v.value())])
    })
}

/// A table of records under a byte key.
fn keyed(
    txn: &Reading<'_>,
    definition: TableDefinition<&[u8], &[u8]>,
    skip: &mut u64,
    sink: &mut Sink<'_>,
) -> Flow {
    each(txn, definition, skip, sink, |k, v| {
        Ok(vec![bytes(k.value()), bytes(v.value())])
    })
}

/// A table of records under a text key.
fn named(
    txn: &Reading<'_>,
    definition: TableDefinition<&str, &[u8]>,
    skip: &mut u64,
    sink: &mut Sink<'_>,
) -> Flow {
    each(txn, definition, skip, sink, |k, v| {
        Ok(vec![text(k.value()), bytes(v.value())])
    })
}

fn attachments(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    keyed(txn, media::ATTACHMENTS, skip, sink)
}

fn users(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    named(txn, users::USERS, skip, sink)
}

fn media_engagement(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    named(txn, sources::MEDIA_ENGAGEMENT, skip, sink)
}

fn source_health(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    named(txn, sources::SOURCE_HEALTH, skip, sink)
}

/// The fleet's records (configuration layers, what agents run, releases, the rollout).
fn fleet_records(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, crate::store::fleet::FLEET, skip, sink, |k, v| {
        let (kind, key) = k.value();
        Ok(vec![text(kind), text(key), bytes(v.value())])
    })
}

/// Media items by id, each with its number and record.
fn media_items(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let items = open(txn, media::MEDIA)?;
    each(txn, media::MEDIA_IDS, skip, sink, |k, v| {
        let n = v.value();
        let record = match &items {
            Some(t) => t.get(n)?.map(|r| r.value().to_vec()),
            None => None,
        };
        let record = record.ok_or_else(|| {
            StoreError::Corrupt(format!("media item {} has no record {n}", k.value()))
        })?;
        Ok(vec![int(n), text(k.value()), Cell::Bytes(record)])
    })
}

/// API tokens with their expiry and use (none for a token made before tokens expired).
fn api_tokens(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    let infos = open(txn, users::API_TOKEN_INFO)?;
    each(txn, users::API_TOKENS, skip, sink, |k, v| {
        let info = match &infos {
            Some(t) => t.get(k.value())?.map(|i| i.value().to_vec()),
            None => None,
        };
        Ok(vec![
            bytes(k.value()),
            text(v.value()),
            info.map_or(Cell::Null, Cell::Bytes),
        ])
    })
}

fn sessions(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, users::SESSIONS, skip, sink, |k, v| {
        let session: StoredSession = decode(v.value())?;
        Ok(vec![
            bytes(k.value()),
            Cell::Text(session.username),
            Cell::Int(session.created_at),
            Cell::Int(session.expires_at),
            bytes(v.value()),
        ])
    })
}

fn risk_units(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, risk::RISK, skip, sink, |k, v| {
        let (day, unit) = k.value();
        Ok(vec![Cell::Int(day), text(unit), bytes(v.value())])
    })
}

fn risk_days(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, risk::RISK_DAYS, skip, sink, |k, v| {
        Ok(vec![Cell::Int(k.value()), int(v.value())])
    })
}

fn alerts(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, crate::store::alerts::ALERTS, skip, sink, |_, v| {
        let a: crate::store::AlertRecord = decode(v.value())?;
        Ok(vec![
            int(a.number),
            Cell::Text(a.key),
            Cell::Int(a.raised_at),
            Cell::Text(a.json),
        ])
    })
}

fn audit_log(txn: &Reading<'_>, skip: &mut u64, sink: &mut Sink<'_>) -> Flow {
    each(txn, audit::AUDIT, skip, sink, |_, v| {
        let e: AuditEntry = decode(v.value())?;
        Ok(vec![
            int(e.seq),
            Cell::Int(e.at.0),
            Cell::Text(e.actor),
            Cell::Text(e.action),
            Cell::Text(e.subject),
            Cell::Text(e.details),
            bytes(&e.prev_hash),
            bytes(&e.hash),
        ])
    })
}

/// The content hash of a set of rows; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    rows: u64,
    sum: u128,
}

impl Tally {
    fn add(&mut self, row: &Row) {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for cell in row {
            match cell {
                Cell::Int(v) => {
                    h.update(&[1]);
                    h.update(&v.to_be_bytes());
                }
                Cell::Text(s) => {
                    h.update(&[2]);
                    h.update(&(s.len() as u64).to_be_bytes());
                    h.update(s.as_bytes());
                }
                Cell::Bytes(b) => {
                    h.update(&[3]);
                    h.update(&(b.len() as u64).to_be_bytes());
                    h.update(b);
                }
                Cell::Null => h.update(&[4]),
                Cell::Bool(b) => h.update(&[5, u8::from(*b)]),
            }
        }
        let digest = h.finish();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest.as_ref()[..16]);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(first));
    }
}

/// The statement that writes a chunk of `target`'s rows, given as one array per column.
fn insert_sql(target: &Target) -> String {
    let names: Vec<&str> = target.columns.iter().map(|(n, _)| *n).collect();
    let arrays: Vec<String> = target
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| format!("${}::{}[]", i + 1, kind.sql()))
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({}) {}",
        target.table,
        names.join(", "),
        arrays.join(", "),
        target.conflict
    )
}

/// A chunk of rows as one array per column, the rows given up on the way.
fn columns(
    target: &Target,
    rows: &mut [Row],
) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, StoreError> {
    let mismatch = |column: &str| {
        StoreError::Corrupt(format!(
            "a row for {}.{column} holds a value of another type (a bug of this version)",
            target.table
        ))
    };
    let mut out: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    for (i, (name, kind)) in target.columns.iter().enumerate() {
        let mut take = rows.iter_mut().map(|r| match r.get_mut(i) {
            Some(cell) => std::mem::replace(cell, Cell::Null),
            None => Cell::Null,
        });
        let column: Box<dyn ToSql + Sync + Send> = match kind {
            Kind::Int => Box::new(
                take.by_ref()
                    .map(|c| match c {
                        Cell::Int(v) => Ok(v),
                        _ => Err(mismatch(name)),
                    })
                    .collect::<Result<Vec<i64>, _>>()?,
            ),
            Kind::Text => Box::new(
                take.by_ref()
                    .map(|c| match c {
                        Cell::Text(v) => Ok(v),
                        _ => Err(mismatch(name)),
                    })
                    .collect::<Result<Vec<String>, _>>()?,
            ),
            Kind::Bytes => Box::new(
                take.by_ref()
                    .map(|c| match c {
                        Cell::Bytes(v) => Ok(v),
                        _ => Err(mismatch(name)),
                    })
                    .collect::<Result<Vec<Vec<u8>>, _>>()?,
            ),
            Kind::MaybeBytes => Box::new(
                take.by_ref()
                    .map(|c| match c {
                        Cell::Bytes(v) => Ok(Some(v)),
                        Cell::Null => Ok(None),
                        _ => Err(mismatch(name)),
                    })
                    .collect::<Result<Vec<Option<Vec<u8>>>, _>>()?,
            ),
            Kind::Bool => Box::new(
                take.by_ref()
                    .map(|c| match c {
                        Cell::Bool(v) => Ok(v),
                        _ => Err(mismatch(name)),
                    })
                    .collect::<Result<Vec<bool>, _>>()?,
            ),
        };
        out.push(column);
    }
    Ok(out)
}

/// A row read back from PostgreSQL as the cells the source gave.
fn cells(target: &Target, row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let bad = |i: usize, e: tokio_postgres::Error| {
        StoreError::Corrupt(format!(
            "{}.{}: {}",
            target.table,
            target.columns[i].0,
            super::explain(&e)
        ))
    };
    target
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => Cell::Int(row.try_get(i).map_err(|e| bad(i, e))?),
                Kind::Text => Cell::Text(row.try_get(i).map_err(|e| bad(i, e))?),
                Kind::Bytes => Cell::Bytes(row.try_get(i).map_err(|e| bad(i, e))?),
                Kind::MaybeBytes => row
                    .try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(|e| bad(i, e))?
                    .map_or(Cell::Null, Cell::Bytes),
                Kind::Bool => Cell::Bool(row.try_get(i).map_err(|e| bad(i, e))?),
            })
        })
        .collect()
}

impl PgStore {
    /// Moves `from` into this (empty) database, or goes on with a move begun before from the
    /// same store (`source`, its collector's CA fingerprint), `rows_per_chunk` rows per
    /// transaction; then verifies every table. `progress` hears of each chunk and may stop the
    /// move there (`None` then: run again to go on). Refuses a database that holds anything
    /// else.
    pub fn import_from(
        &self,
        from: &RedbStore,
        source: &str,
        rows_per_chunk: usize,
        progress: &mut dyn FnMut(&ImportProgress) -> ControlFlow<()>,
    ) -> Result<Option<ImportSummary>, StoreError> {
        let read = Reading {
            txn: from.db.begin_read()?,
            log: from.log.reader(),
        };
        let mut unknown: Vec<String> = Vec::new();
        let known = redb_tables();
        for table in read.list_tables()? {
            if !known.iter().any(|k| k == table.name()) {
                unknown.push(table.name().to_owned());
            }
        }
        if !unknown.is_empty() {
            return Err(StoreError::Migration(format!(
                "the redb store holds tables this version cannot move ({}); this is a bug of this version: report it, and keep the collector on redb until then",
                unknown.join(", ")
            )));
        }
        let begun = self.import_state(source)?;
        let resumed = !begun.is_empty();
        let mut copied_now = 0u64;
        for target in TARGETS {
            let (mut copied, done) = begun.get(target.table).copied().unwrap_or((0, false));
            if done {
                continue;
            }
            let sql = insert_sql(target);
            let mut skip = copied;
            let mut chunk: Vec<Row> = Vec::with_capacity(rows_per_chunk);
            let mut flush = |chunk: &mut Vec<Row>, copied: &mut u64, done: bool| {
                let n = chunk.len() as u64;
                self.write_chunk(target, &sql, chunk, source, *copied + n, done)?;
                chunk.clear();
                *copied += n;
                copied_now += n;
                Ok::<_, StoreError>(progress(&ImportProgress {
                    table: target.table,
                    copied: *copied,
                    done,
                }))
            };
            let flow = (target.source)(&read, &mut skip, &mut |row| {
                chunk.push(row);
                if chunk.len() < rows_per_chunk {
                    return Ok(ControlFlow::Continue(()));
                }
                flush(&mut chunk, &mut copied, false)
            })?;
            if flow.is_break() || flush(&mut chunk, &mut copied, true)?.is_break() {
                return Ok(None);
            }
        }
        let tables = self.verify_import(&read)?;
        Ok(Some(ImportSummary {
            resumed,
            copied_now,
            tables,
        }))
    }

    /// How far an earlier move from `source` came, table by table; refuses a database that
    /// holds another store's rows.
    fn import_state(&self, source: &str) -> Result<HashMap<String, (u64, bool)>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query("SELECT tbl, source, copied, done FROM store_import", &[])
                .await?;
            let mut begun = HashMap::new();
            for row in &rows {
                let from: &str = super::store::col(row, 1)?;
                if from != source {
                    return Err(StoreError::Migration(format!(
                        "the database holds part of another collector's store (a move begun from the store whose CA has the fingerprint {from}); move into a new, empty database"
                    )));
                }
                let copied: i64 = super::store::col(row, 2)?;
                begun.insert(
                    super::store::col::<String>(row, 0)?,
                    (super::store::unbig(copied)?, super::store::col(row, 3)?),
                );
            }
            if begun.is_empty() {
                for target in TARGETS.iter().filter(|t| t.table != "meta") {
                    let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", target.table);
                    let held: bool = super::store::col(&c.query_one(&sql, &[]).await?, 0)?;
                    if held {
                        return Err(StoreError::Migration(format!(
                            "the database already holds a store (its table `{}` has rows); move into a new, empty database (createdb)",
                            target.table
                        )));
                    }
                }
            }
            Ok(begun)
        })
    }

    /// Writes one chunk and the progress it makes, in one transaction.
    fn write_chunk(
        &self,
        target: &Target,
        sql: &str,
        chunk: &mut [Row],
        source: &str,
        copied: u64,
        done: bool,
    ) -> Result<(), StoreError> {
        let arrays = columns(target, chunk)?;
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            if !chunk.is_empty() {
                let params: Vec<&(dyn ToSql + Sync)> = arrays
                    .iter()
                    .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                txn.execute(sql, &params).await?;
            }
            txn.execute(
                "INSERT INTO store_import (tbl, source, copied, done) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tbl) DO UPDATE SET copied = $3, done = $4",
                &[&target.table, &source, &big(copied), &done],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })?;
        pasopati_common::faults::failpoint("collector.migrate_after_chunk");
        Ok(())
    }

    /// Compares every table with the redb store: rows and content.
    fn verify_import(&self, read: &Reading<'_>) -> Result<Vec<TableCheck>, StoreError> {
        let mut checks = Vec::new();
        let mut differ = Vec::new();
        for target in TARGETS {
            let mut want = Tally::default();
            let mut skip = 0;
            let _whole = (target.source)(read, &mut skip, &mut |row| {
                want.add(&row);
                Ok(ControlFlow::Continue(()))
            })?;
            let got = self.tally(target)?;
            if got != want {
                differ.push(format!(
                    "{} ({} rows in redb, {} in PostgreSQL{})",
                    target.table,
                    want.rows,
                    got.rows,
                    if want.rows == got.rows {
                        ", with other content"
                    } else {
                        ""
                    }
                ));
            }
            checks.push(TableCheck {
                table: target.table,
                rows: want.rows,
                hash: format!("{:032x}", want.sum),
            });
        }
        if !differ.is_empty() {
            return Err(StoreError::Migration(format!(
                "the copy differs from the redb store in {}. Was the collector started on the redb store between two runs of the move? Move into a new, empty database again (the redb store is unchanged)",
                differ.join(", ")
            )));
        }
        Ok(checks)
    }

    /// The rows and content hash of `target`'s table in PostgreSQL.
    fn tally(&self, target: &Target) -> Result<Tally, StoreError> {
        let names: Vec<&str> = target.columns.iter().map(|(n, _)| *n).collect();
        let sql = format!("SELECT {} FROM {}", names.join(", "), target.table);
        self.run(async {
            let c = self.pool.get().await?;
            let none: [&(dyn ToSql + Sync); 0] = [];
            let stream = c.query_raw(&sql, none).await?;
            let mut stream: Pin<Box<_>> = Box::pin(stream);
            let mut tally = Tally::default();
            while let Some(row) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
                tally.add(&cells(target, &row?)?);
            }
            Ok(tally)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{apply, batch, redb_store, report, site, T0};
    use crate::store::pg::PgOptions;
    use crate::store::{ReportQuery, Role, Store, StoreLocation, User};
    use pasopati_common::frame::Batch;
    use pasopati_common::{Epoch, Timestamp};

    /// A redb store with something in most tables: two epochs of reports, a revision, a
    /// quarantined report, an enrollment token, a user with a session and an API token, risk
    /// days, an alert, and the audit entries all of that appends.
    fn filled() -> (tempfile::TempDir, Store) {
        let (dir, s) = redb_store();
        let now = Timestamp(T0 + 10);
        apply(&s, &site(), Epoch(1), &batch(1, 40), now);
        // An epoch past i64::MAX, as random epochs often are.
        let later = Batch {
            first_seq: 1,
            reports: (41..46).map(report).collect(),
        };
        apply(&s, &site(), Epoch(u64::MAX - 7), &later, now);
        let mut revised = report(3);
        revised.revision = 1;
        revised.body = "Kegiatan diperbarui: peserta 40 orang.".into();
        let mut held = report(90);
        held.body = "Hubungi 081234567890".into();
        let b = Batch {
            first_seq: 6,
            reports: vec![revised, held],
        };
        apply(&s, &site(), Epoch(u64::MAX - 7), &b, now);
        s.add_token(
            &site(),
            &[7; 32],
            Timestamp(T0),
            Timestamp(T0 + 100),
            "admin",
        )
        .unwrap();
        let user = User {
            username: "analis-contoh".into(),
            role: Role::Analyst,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$ZmFrZQ".into(),
            disabled: false,
            created_at: T0,
        };
        s.add_user(&user, "admin").unwrap();
        let session = StoredSession {
            username: user.username.clone(),
            csrf: "csrf-contoh".into(),
            created_at: T0,
            expires_at: T0 + 3_600_000,
        };
        s.add_session(&[9; 32], &session, 5).unwrap();
        s.add_api_token(&[8; 32], &user.username, T0 + 3_600_000, "admin")
            .unwrap();
        s.record_risk_day(100, &[]).unwrap();
        s.record_alerts(&[crate::store::NewAlert {
            key: "spike:all:20400".into(),
            raised_at: T0 + 5,
            json: "{\"kind\":\"spike\"}".into(),
        }])
        .unwrap();
        (dir, s)
    }

    fn database(test: &str) -> Option<(PgOptions, PgStore)> {
        match pasopati_common::pgtest::fresh_database() {
            Ok(url) => {
                let options = PgOptions {
                    url,
                    ..PgOptions::default()
                };
                let store = PgStore::open(&options).unwrap();
                Some((options, store))
            }
            Err(e) => {
                pasopati_common::pgtest::skip_or_fail(test, &e.to_string());
                None
            }
        }
    }

    fn go_on(_: &ImportProgress) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }

    /// What a reader of the store sees, to compare the two backends by.
    fn seen(s: &Store) -> String {
        let reports = s.reports(&ReportQuery::default()).unwrap();
        let shown: Vec<_> = reports
            .iter()
            .filter_map(|r| s.report(&r.report.id).unwrap())
            .map(|r| (r.arrival, r.report.revision))
            .collect();
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            reports,
            shown,
            s.quarantine().unwrap(),
            s.sites().unwrap(),
            s.users().unwrap(),
            s.api_tokens().unwrap(),
            s.audit_log().unwrap(),
            (
                s.report_count().unwrap(),
                s.shown_count().unwrap(),
                s.counts().unwrap()
            ),
            (
                s.hwm(&site(), Epoch(1)).unwrap(),
                s.hwm(&site(), Epoch(u64::MAX - 7)).unwrap(),
                s.session(&[9; 32]).unwrap(),
                s.risk_days(0, 1_000).unwrap(),
                s.alerts_after(0, 10).unwrap(),
                s.last_alert().unwrap(),
            ),
        )
    }

    #[test]
    fn a_redb_store_moves_whole_into_postgres_and_reads_the_same() {
        let test = "a_redb_store_moves_whole_into_postgres_and_reads_the_same";
        let Some((options, pg)) = database(test) else {
            return;
        };
        let (dir, s) = filled();
        let summary = pg
            .import_from(s.as_redb().unwrap(), "ca-a", 1_000, &mut go_on)
            .unwrap()
            .unwrap();
        assert!(!summary.resumed);
        let rows = |t: &str| summary.tables.iter().find(|c| c.table == t).unwrap().rows;
        assert_eq!(
            rows("revisions"),
            47,
            "45 filed, a revision and a quarantined one"
        );
        assert_eq!(rows("sites"), 1);
        assert!(rows("audit") >= 4, "{:?}", summary.tables);
        drop(pg);
        let location = StoreLocation::Postgres(options);
        let moved = Store::open_at(&location, dir.path()).unwrap();
        assert_eq!(seen(&moved), seen(&s));
        assert!(moved.verify_audit().unwrap().is_ok());
        assert_eq!(moved.quarantine().unwrap().len(), 1);
        // The moved store goes on where the redb one stopped: the next batch is no gap.
        let out = apply(&moved, &site(), Epoch(1), &batch(41, 3), Timestamp(T0 + 20));
        let out_redb = apply(&s, &site(), Epoch(1), &batch(41, 3), Timestamp(T0 + 20));
        assert_eq!(format!("{out:?}"), format!("{out_redb:?}"));
    }

    /// The positions, kept as runs in redb, give one row per seq, and a move that goes on
    /// from any row (inside a run, at its edge, past the end) gives the rows from there.
    #[test]
    fn positions_give_a_row_per_seq_from_any_row_on() {
        let (_dir, s) = filled();
        let redb = s.as_redb().unwrap();
        let read = Reading {
            txn: redb.db.begin_read().unwrap(),
            log: redb.log.reader(),
        };
        let rows_from = |from: u64| {
            let mut rows = Vec::new();
            let mut skip = from;
            let flow = positions(&read, &mut skip, &mut |row| {
                rows.push(row);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
            assert!(flow.is_continue());
            rows
        };
        let all = rows_from(0);
        // 40 seqs of the first epoch, 7 of the second.
        assert_eq!(all.len(), 47);
        assert_eq!(all[0][2..], [Cell::Int(1), Cell::Int(0)]);
        assert_eq!(all[46][2..], [Cell::Int(7), Cell::Int(46)]);
        for from in [1, 20, 39, 40, 41, 46, 47, 60] {
            let from_usize = (from as usize).min(all.len());
            assert_eq!(rows_from(from), all[from_usize..], "from {from}");
        }
    }

    #[test]
    fn a_move_stopped_midway_goes_on_and_a_changed_copy_is_caught() {
        let test = "a_move_stopped_midway_goes_on_and_a_changed_copy_is_caught";
        let Some((_, pg)) = database(test) else {
            return;
        };
        let (_dir, s) = filled();
        let from = s.as_redb().unwrap();
        let mut chunks = 0;
        let stopped = pg
            .import_from(from, "ca-a", 7, &mut |_| {
                chunks += 1;
                if chunks == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert!(stopped.is_none());
        let refused = pg.import_from(from, "ca-b", 7, &mut go_on).unwrap_err();
        assert!(
            refused.to_string().contains("another collector's store"),
            "{refused}"
        );
        let summary = pg
            .import_from(from, "ca-a", 7, &mut go_on)
            .unwrap()
            .unwrap();
        assert!(summary.resumed);
        let total: u64 = summary.tables.iter().map(|c| c.rows).sum();
        let before: u64 = 5 * 7;
        assert!(
            summary.copied_now < total && summary.copied_now + before >= total,
            "resumed, not begun again: {} of {total}",
            summary.copied_now
        );
        // Run again when done: nothing to copy, verified again.
        let again = pg
            .import_from(from, "ca-a", 7, &mut go_on)
            .unwrap()
            .unwrap();
        assert_eq!((again.copied_now, &again.tables), (0, &summary.tables));
        // A row changed behind the move's back is found.
        pg.run(async {
            let c = pg.pool.get().await?;
            c.execute(
                "UPDATE revisions SET body = 'diubah' WHERE arrival = 3",
                &[],
            )
            .await?;
            Ok(())
        })
        .unwrap();
        let err = pg.import_from(from, "ca-a", 7, &mut go_on).unwrap_err();
        assert!(
            err.to_string()
                .contains("revisions (47 rows in redb, 47 in PostgreSQL, with other content)"),
            "{err}"
        );
    }

    #[test]
    fn a_database_that_holds_a_store_is_refused() {
        let test = "a_database_that_holds_a_store_is_refused";
        let Some((_, pg)) = database(test) else {
            return;
        };
        let (_dir, s) = filled();
        let (_other_dir, other) = filled();
        pg.import_from(other.as_redb().unwrap(), "ca-a", 100, &mut go_on)
            .unwrap()
            .unwrap();
        pg.run(async {
            let c = pg.pool.get().await?;
            c.execute("DELETE FROM store_import", &[]).await?;
            Ok(())
        })
        .unwrap();
        let err = pg
            .import_from(s.as_redb().unwrap(), "ca-b", 100, &mut go_on)
            .unwrap_err();
        assert!(err.to_string().contains("already holds a store"), "{err}");
    }
}
