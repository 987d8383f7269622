//! The outbox's reports, in segments: one redb table per 4,096 filing numbers, keyed by
//! (lane, filing number), and a count per segment of the reports it still holds for someone.
//!
//! A report leaves the outbox by being forgotten, which only lowers its segment's count; when
//! a segment is complete (filing has moved past it) and its count reaches zero, the whole table
//! is dropped at once. redb rewrites pages to delete single entries, so deleting each report
//! as its acknowledgement left retention cost the agent more than anything else in a drain;
//! dropping a table frees its pages without rewriting any. A forgotten report's bytes stay on
//! disk until its segment goes, so readers never look below the positions the outbox keeps
//! (the lanes' cursors and the sent log's runs).

use super::OutboxError;
use redb::{ReadableTable, TableDefinition, TableError};

/// Filing numbers per segment, as a power of two: 4,096. The unit tests use segments of 16,
/// so that a few hundred filings cross many of them.
const BITS: u32 = if cfg!(test) { 4 } else { 12 };

/// Segment → how many of its reports are still held (queued, sent, or acknowledged and
/// retained). A segment without an entry has no table.
const LIVE: TableDefinition<u64, u64> = TableDefinition::new("segment_live");

/// The segment of a filing number.
pub(super) fn segment_of(filing: u64) -> u64 {
    filing >> BITS
}

fn name(segment: u64) -> String {
    format!("reports.{segment:016x}")
}

fn definition(name: &str) -> TableDefinition<'_, (u8, u64), &'static [u8]> {
    TableDefinition::new(name)
}

/// Reading segments, in a read or a write transaction.
pub(super) trait Segments {
    type Table<'a>: ReadableTable<(u8, u64), &'static [u8]>
    where
        Self: 'a;

    /// The segment's table, if it has one.
    fn segment(&self, segment: u64) -> Result<Option<Self::Table<'_>>, OutboxError>;

    /// Every segment with a table, in order, with its count.
    fn live(&self) -> Result<Vec<(u64, u64)>, OutboxError>;
}

impl Segments for redb::ReadTransaction {
    type Table<'a> = redb::ReadOnlyTable<(u8, u64), &'static [u8]>;

    fn segment(&self, segment: u64) -> Result<Option<Self::Table<'_>>, OutboxError> {
        let name = name(segment);
        match self.open_table(definition(&name)) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn live(&self) -> Result<Vec<(u64, u64)>, OutboxError> {
        match self.open_table(LIVE) {
            Ok(table) => collect_live(&table),
            Err(TableError::TableDoesNotExist(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Segments for redb::WriteTransaction {
    type Table<'a> = redb::Table<'a, (u8, u64), &'static [u8]>;

    fn segment(&self, segment: u64) -> Result<Option<Self::Table<'_>>, OutboxError> {
        // Opening a table in a write transaction creates it: only segments with a count have one.
        if self.open_table(LIVE)?.get(segment)?.is_none() {
            return Ok(None);
        }
        let name = name(segment);
        Ok(Some(self.open_table(definition(&name))?))
    }

    fn live(&self) -> Result<Vec<(u64, u64)>, OutboxError> {
        collect_live(&self.open_table(LIVE)?)
    }
}

fn collect_live(table: &impl ReadableTable<u64, u64>) -> Result<Vec<(u64, u64)>, OutboxError> {
    table
        .iter()?
        .map(|entry| {
            let (k, v) = entry?;
            Ok((k.value(), v.value()))
        })
        .collect()
}

/// Creates the count table, so that read transactions find it.
pub(super) fn prepare(txn: &redb::WriteTransaction) -> Result<(), OutboxError> {
    txn.open_table(LIVE)?;
    Ok(())
}

/// How many reports the outbox holds.
pub(super) fn held(txn: &impl Segments) -> Result<u64, OutboxError> {
    Ok(txn.live()?.iter().map(|(_, n)| n).sum())
}

/// Calls `each` with (filing number, encoded report) for every report of `lane` filed from
/// `from` on, in filing order (or the reverse), while it returns true.
pub(super) fn each_in_lane(
    txn: &impl Segments,
    lane: u8,
    from: u64,
    reverse: bool,
    mut each: impl FnMut(u64, &[u8]) -> Result<bool, OutboxError>,
) -> Result<(), OutboxError> {
    let mut segments: Vec<u64> = txn
        .live()?
        .into_iter()
        .map(|(s, _)| s)
        .filter(|&s| s >= segment_of(from))
        .collect();
    if reverse {
        segments.reverse();
    }
    for segment in segments {
        let Some(table) = txn.segment(segment)? else {
            continue;
        };
        let range = table.range((lane, from)..=(lane, u64::MAX))?;
        let mut visit = |entry: Result<_, redb::StorageError>| -> Result<bool, OutboxError> {
            let (key, value): (redb::AccessGuard<(u8, u64)>, redb::AccessGuard<&[u8]>) = entry?;
            each(key.value().1, value.value())
        };
        if reverse {
            for entry in range.rev() {
                if !visit(entry)? {
                    return Ok(());
                }
            }
        } else {
            for entry in range {
                if !visit(entry)? {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Writes a report filed as `(lane, filing)`.
pub(super) fn insert(
    txn: &redb::WriteTransaction,
    lane: u8,
    filing: u64,
    raw: &[u8],
) -> Result<(), OutboxError> {
    let segment = segment_of(filing);
    {
        let mut live = txn.open_table(LIVE)?;
        let count = live.get(segment)?.map_or(0, |v| v.value());
        live.insert(segment, count + 1)?;
    }
    let name = name(segment);
    txn.open_table(definition(&name))?
        .insert((lane, filing), raw)?;
    Ok(())
}

/// Lowers the count of `segment` by `count` reports forgotten.
pub(super) fn forget(
    txn: &redb::WriteTransaction,
    segment: u64,
    count: u64,
) -> Result<(), OutboxError> {
    let mut live = txn.open_table(LIVE)?;
    let held = live.get(segment)?.map_or(0, |v| v.value());
    if held < count {
        return Err(OutboxError::Inconsistent(format!(
            "segment {segment} holds {held} reports, and {count} were to be forgotten"
        )));
    }
    live.insert(segment, held - count)?;
    Ok(())
}

/// Drops every segment that holds nothing any more and will not be filed into again (every
/// segment before the one of `next_filing`).
pub(super) fn drop_empty(
    txn: &redb::WriteTransaction,
    next_filing: u64,
) -> Result<(), OutboxError> {
    let empty: Vec<u64> = txn
        .live()?
        .into_iter()
        .filter(|&(s, n)| n == 0 && s < segment_of(next_filing))
        .map(|(s, _)| s)
        .collect();
    for segment in empty {
        txn.open_table(LIVE)?.remove(segment)?;
        let name = name(segment);
        txn.delete_table(definition(&name))?;
    }
    Ok(())
}

/// The segments that have a table, for tests.
#[cfg(test)]
pub(super) fn tables(txn: &redb::ReadTransaction) -> Vec<u64> {
    use redb::TableHandle;
    let mut out: Vec<u64> = txn
        .list_tables()
        .map(|tables| {
            tables
                .filter_map(|t| {
                    let name = t.name().to_owned();
                    let hex = name.strip_prefix("reports.")?;
                    u64::from_str_radix(hex, 16).ok()
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_named_in_order() {
        assert!(name(9) < name(10));
        assert_eq!(segment_of((1 << BITS) - 1), 0);
        assert_eq!(segment_of(1 << BITS), 1);
    }
}
