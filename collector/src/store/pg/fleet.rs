//! The fleet's records on PostgreSQL (the redb store's `fleet.rs`), and the release packages
//! every collector on the database serves.

use super::records::{audit, Blobs};
use super::store::{col, PgStore};
use crate::store::fleet::{FleetAudit, FleetWrite};
use crate::store::StoreError;

impl PgStore {
    pub fn fleet_get(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let row = c
                .query_opt(
                    "SELECT record FROM fleet WHERE kind = $1 AND key = $2",
                    &[&kind, &key],
                )
                .await?;
            row.map(|r| col::<Vec<u8>>(&r, 0)).transpose()
        })
    }

    pub fn fleet_list(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT key, record FROM fleet WHERE kind = $1 ORDER BY key",
                    &[&kind],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((col::<String>(r, 0)?, col::<Vec<u8>>(r, 1)?)))
                .collect()
        })
    }

    /// As on redb. The change holds a transaction-level advisory lock on (kind, key), taken
    /// before the record is read, so two collectors changing one record take turns, the first
    /// writers of a record not there yet included (a row lock would find nothing to lock).
    pub fn fleet_update<T>(
        &self,
        kind: &str,
        key: &str,
        audit_entry: Option<FleetAudit>,
        change: impl FnOnce(Option<&[u8]>) -> Result<(FleetWrite, T), StoreError>,
    ) -> Result<T, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let lock = format!("pasopati fleet {kind}/{key}");
            txn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&lock],
            )
            .await?;
            let row = txn
                .query_opt(
                    "SELECT record FROM fleet WHERE kind = $1 AND key = $2",
                    &[&kind, &key],
                )
                .await?;
            let current = row.map(|r| col::<Vec<u8>>(&r, 0)).transpose()?;
            let (write, out) = change(current.as_deref())?;
            let told = matches!(write, FleetWrite::Told(_));
            let changed = match write {
                FleetWrite::Keep => false,
                FleetWrite::Put(bytes) | FleetWrite::Told(bytes) => {
                    let changed = current.as_deref() != Some(bytes.as_slice());
                    if changed && told {
                        super::ingest::telemetry(&txn).await?;
                    }
                    if changed {
                        txn.execute(
                            "INSERT INTO fleet (kind, key, record) VALUES ($1, $2, $3)
                             ON CONFLICT (kind, key) DO UPDATE SET record = $3",
                            &[&kind, &key, &bytes],
                        )
                        .await?;
                    }
                    changed
                }
                FleetWrite::Remove => {
                    txn.execute(
                        "DELETE FROM fleet WHERE kind = $1 AND key = $2",
                        &[&kind, &key],
                    )
                    .await?
                        > 0
                }
            };
            if !changed {
                return Ok(out);
            }
            if let Some(a) = audit_entry {
                audit(&txn, &a.actor, &a.action, &a.subject, a.details, a.at).await?;
            }
            txn.commit().await?;
            Ok(out)
        })
    }

    /// Keeps a release package's bytes under its SHA-256 (once).
    pub fn put_release_package(&self, sha256: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        self.put_blob(Blobs::RELEASE_PACKAGES, sha256, bytes)
    }

    /// A release package's bytes, if the database keeps them.
    pub fn release_package(&self, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.blob(Blobs::RELEASE_PACKAGES, sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PgOptions, PgStore};
    use crate::store::fleet::FleetWrite;

    /// A record a site told about itself is written and read back as a kept one is (its
    /// transaction sets `synchronous_commit` off first, which this cannot observe); writing the
    /// same again changes nothing.
    #[test]
    fn a_told_record_is_written_and_read_back() {
        let test = "a_told_record_is_written_and_read_back";
        let url = match pasopati_common::pgtest::fresh_database() {
            Ok(url) => url,
            Err(e) => return pasopati_common::pgtest::skip_or_fail(test, &e.to_string()),
        };
        let store = PgStore::open(&PgOptions {
            url,
            ..PgOptions::default()
        })
        .unwrap();
        let told = |bytes: &[u8]| {
            let bytes = bytes.to_vec();
            store
                .fleet_update("running", "lapas-uji", None, |current| {
                    Ok((FleetWrite::Told(bytes), current.map(<[u8]>::to_vec)))
                })
                .unwrap()
        };
        assert_eq!(told(b"{\"v\":1}"), None);
        assert_eq!(told(b"{\"v\":2}"), Some(b"{\"v\":1}".to_vec()));
        assert_eq!(told(b"{\"v\":2}"), Some(b"{\"v\":2}".to_vec()));
        assert_eq!(
            store.fleet_get("running", "lapas-uji").unwrap(),
            Some(b"{\"v\":2}".to_vec())
        );
    }
}
