//! The notification outbox on PostgreSQL (the redb store's `notifications.rs`): the messages
//! under their ids, the rules' told conditions in `notify_active`, and the notifier's cursor,
//! the id counter and the first unsent id in `meta`, all changed together.

use super::store::{big, counter, dec, enc, next_number, unbig, PgStore};
use crate::store::notifications::{Notification, OutboxChange, CURSOR, FIRST_UNSENT, NEXT_ID};
use crate::store::StoreError;
use std::collections::BTreeMap;

impl PgStore {
    pub fn notify_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            // The cursor is never below 0, so u64::MAX stands for "never moved".
            let v = counter(&*c, CURSOR, u64::MAX).await?;
            Ok((v != u64::MAX).then_some(v))
        })
    }

    pub fn save_notifications(
        &self,
        change: OutboxChange,
    ) -> Result<Vec<Notification>, StoreError> {
        let set = "INSERT INTO meta (key, value) VALUES ($1, $2)
                   ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let mut saved = Vec::with_capacity(change.messages.len());
            let mut first_unsent = counter(&txn, FIRST_UNSENT, 1).await?;
            let mut moved = false;
            for mut n in change.messages {
                if n.id == 0 {
                    n.id = next_number(&txn, NEXT_ID, 1).await?;
                }
                if n.sent_at.is_none() && n.id < first_unsent {
                    first_unsent = n.id;
                    moved = true;
                }
                moved |= n.sent_at.is_some() && n.id == first_unsent;
                txn.execute(
                    "INSERT INTO notifications (n, record) VALUES ($1, $2)
                     ON CONFLICT (n) DO UPDATE SET record = EXCLUDED.record",
                    &[&big(n.id), &enc(&n)],
                )
                .await?;
                saved.push(n);
            }
            if moved {
                let mut next = counter(&txn, NEXT_ID, 1).await?;
                let rows = txn
                    .query(
                        "SELECT n, record FROM notifications WHERE n >= $1 ORDER BY n",
                        &[&big(first_unsent)],
                    )
                    .await?;
                for row in &rows {
                    let bytes: Vec<u8> = row.try_get(1)?;
                    let n: Notification = dec(&bytes)?;
                    if n.sent_at.is_none() {
                        next = unbig(row.try_get(0)?)?;
                        break;
                    }
                }
                txn.execute(set, &[&FIRST_UNSENT, &big(next)]).await?;
            }
            if let Some(c) = change.cursor {
                txn.execute(set, &[&CURSOR, &big(c)]).await?;
            }
            for (name, keys) in change.active {
                if keys.is_empty() {
                    txn.execute("DELETE FROM notify_active WHERE name = $1", &[&name])
                        .await?;
                } else {
                    txn.execute(
                        "INSERT INTO notify_active (name, keys) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET keys = EXCLUDED.keys",
                        &[&name, &enc(&keys)],
                    )
                    .await?;
                }
            }
            txn.commit().await?;
            Ok(saved)
        })
    }

    pub fn pending_notifications(&self) -> Result<Vec<Notification>, StoreError> {
        let all: Vec<Notification> = self.run(async {
            let c = self.pool.get().await?;
            let first = counter(&*c, FIRST_UNSENT, 1).await?;
            let rows = c
                .query(
                    "SELECT record FROM notifications WHERE n >= $1 ORDER BY n",
                    &[&big(first)],
                )
                .await?;
            records(&rows)
        })?;
        Ok(all.into_iter().filter(|n| n.sent_at.is_none()).collect())
    }

    pub fn recent_notifications(&self, limit: usize) -> Result<Vec<Notification>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT record FROM notifications ORDER BY n DESC LIMIT $1",
                    &[&(limit.min(i64::MAX as usize) as i64)],
                )
                .await?;
            records(&rows)
        })
    }

    pub fn notify_active(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c.query("SELECT name, keys FROM notify_active", &[]).await?;
            let mut all = BTreeMap::new();
            for row in &rows {
                let name: String = row.try_get(0)?;
                let bytes: Vec<u8> = row.try_get(1)?;
                all.insert(name, dec(&bytes)?);
            }
            Ok(all)
        })
    }
}

/// The messages of rows whose first column is a message's record.
fn records(rows: &[tokio_postgres::Row]) -> Result<Vec<Notification>, StoreError> {
    rows.iter()
        .map(|row| {
            let bytes: Vec<u8> = row.try_get(0)?;
            dec(&bytes)
        })
        .collect()
}
