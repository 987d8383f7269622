//! The fleet's records (`crate::fleet`): configuration layers, what each agent reports it runs,
//! releases and rollouts, each a JSON document under (kind, key), so that a field a later
//! release adds reads as its default in an older record and a record an older release wrote
//! still opens. Changes that people make are audited in the same transaction.

use super::{audit, RedbStore, StoreError};
use pasopati_common::Timestamp;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// (kind, key) → a JSON document.
pub(super) const FLEET: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("fleet");

/// An audit entry to write with a fleet change.
#[derive(Clone, Debug)]
pub struct FleetAudit {
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub at: Timestamp,
}

/// What a fleet change decides for its record: keep it as it was, write this, or remove it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetWrite {
    Keep,
    Put(Vec<u8>),
    /// Write this, which a site told about itself (what its agent runs): like a heartbeat, it
    /// is committed without a sync to disk of its own and becomes durable with the store's next
    /// durable commit; lost in a crash, the site tells it again in its next session. Many
    /// sites connecting at once so cost the store no commit each beside their reports'.
    Told(Vec<u8>),
    Remove,
}

impl RedbStore {
    /// The record of `kind` under `key`.
    pub fn fleet_get(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FLEET)?;
        let value = table.get((kind, key))?.map(|v| v.value().to_vec());
        Ok(value)
    }

    /// Every record of `kind`, by key.
    pub fn fleet_list(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(FLEET)?;
        let mut out = Vec::new();
        for entry in table.range((kind, "")..)? {
            let (k, v) = entry?;
            let (k_kind, k_key) = k.value();
            if k_kind != kind {
                break;
            }
            out.push((k_key.to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Reads the record of `kind` under `key` and writes what `change` makes of it, with
    /// `audit` if it changed anything, in one transaction, durable unless what it wrote was
    /// [`FleetWrite::Told`]. `change` may refuse (its error is returned and nothing is written).
    pub fn fleet_update<T>(
        &self,
        kind: &str,
        key: &str,
        audit: Option<FleetAudit>,
        change: impl FnOnce(Option<&[u8]>) -> Result<(FleetWrite, T), StoreError>,
    ) -> Result<T, StoreError> {
        let mut txn = self.db.begin_write()?;
        let (out, told) = {
            let mut table = txn.open_table(FLEET)?;
            let current = table.get((kind, key))?.map(|v| v.value().to_vec());
            let (write, out) = change(current.as_deref())?;
            let told = matches!(write, FleetWrite::Told(_));
            let changed = match write {
                FleetWrite::Keep => false,
                FleetWrite::Put(bytes) | FleetWrite::Told(bytes) => {
                    let changed = current.as_deref() != Some(bytes.as_slice());
                    table.insert((kind, key), bytes.as_slice())?;
                    changed
                }
                FleetWrite::Remove => table.remove((kind, key))?.is_some(),
            };
            if let (true, Some(a)) = (changed, audit) {
                audit::audit(&txn, &a.actor, &a.action, &a.subject, a.details, a.at)?;
            }
            if !changed {
                return Ok(out);
            }
            (out, told)
        };
        if told {
            self.telemetry(&mut txn)?;
        }
        txn.commit()?;
        Ok(out)
    }
}
