//! The notification outbox on PostgreSQL (the redb store's `notifications.rs`): the messages
//! under their ids, the notifier's cursor and the id counter in `meta`, changed together.

use super::store::{big, counter, dec, enc, next_number, PgStore};
use crate::store::notifications::{Notification, CURSOR, NEXT_ID};
use crate::store::StoreError;

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
        changed: Vec<Notification>,
        cursor: Option<u64>,
    ) -> Result<Vec<Notification>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let mut saved = Vec::with_capacity(changed.len());
            for mut n in changed {
                if n.id == 0 {
                    n.id = next_number(&txn, NEXT_ID, 1).await?;
                }
                txn.execute(
                    "INSERT INTO notifications (n, record) VALUES ($1, $2)
                     ON CONFLICT (n) DO UPDATE SET record = EXCLUDED.record",
                    &[&big(n.id), &enc(&n)],
                )
                .await?;
                saved.push(n);
            }
            if let Some(c) = cursor {
                txn.execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&CURSOR, &big(c)],
                )
                .await?;
            }
            txn.commit().await?;
            Ok(saved)
        })
    }

    pub fn notifications(&self, recent: usize) -> Result<Vec<Notification>, StoreError> {
        let all: Vec<Notification> = self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query("SELECT record FROM notifications ORDER BY n", &[])
                .await?;
            rows.iter()
                .map(|row| {
                    let bytes: Vec<u8> = row.try_get(0)?;
                    dec(&bytes)
                })
                .collect()
        })?;
        let sent = all.iter().filter(|n| n.sent_at.is_some()).count();
        let mut skip = sent.saturating_sub(recent);
        Ok(all
            .into_iter()
            .filter(|n| {
                if n.sent_at.is_some() && skip > 0 {
                    skip -= 1;
                    return false;
                }
                true
            })
            .collect())
    }
}
