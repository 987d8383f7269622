//! The notification outbox: what the collector has to tell people (a burst of urgent reports,
//! for now), each message with the id a receiver drops duplicates by, gathered while its group
//! window is open and kept until its channel took it. The notifier's cursor (the first report
//! arrival it has not looked at) moves in the same transaction as the messages it wrote, so a
//! crash neither loses a message nor writes one twice; a message is marked sent only after its
//! channel answered, so one may go out twice and never zero times.

use super::{decode, encode, next_number, RedbStore, StoreError, META};
use bincode::{Decode, Encode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

/// Message id → message.
pub(super) const NOTIFICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("notifications");
/// The META key of the notifier's cursor over report arrivals.
pub(super) const CURSOR: &str = "notify_cursor";
/// The META key of the next message id.
pub(super) const NEXT_ID: &str = "next_notification";

/// One message of the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Notification {
    /// Its id (0 until the outbox gives it one); receivers drop a message they have seen.
    pub id: u64,
    /// The channel (by name, from `[[notify.channels]]`) it goes to.
    pub channel: String,
    /// What it tells: `urgent_report`.
    pub event: String,
    /// When its group opened, and when it may be sent (the group window's end).
    pub opened_at: i64,
    pub due_at: i64,
    /// How many events it gathers, from which sites, and the first ones' lines.
    pub count: u64,
    pub sites: Vec<String>,
    pub lines: Vec<String>,
    pub sent_at: Option<i64>,
    pub attempts: u32,
    /// Not before this time again, after a failed attempt.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl RedbStore {
    /// The first report arrival the notifier has not looked at; `None` before its first look.
    pub fn notify_cursor(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(CURSOR)?.map(|v| v.value()))
    }

    /// Writes `changed` messages (those with id 0 get one) and, when given, the cursor, in
    /// one transaction; returns the messages as stored.
    pub fn save_notifications(
        &self,
        changed: Vec<Notification>,
        cursor: Option<u64>,
    ) -> Result<Vec<Notification>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut saved = Vec::with_capacity(changed.len());
        {
            let mut meta = txn.open_table(META)?;
            let mut table = txn.open_table(NOTIFICATIONS)?;
            for mut n in changed {
                if n.id == 0 {
                    n.id = next_number(&mut meta, NEXT_ID, 1)?;
                }
                table.insert(n.id, encode(&n).as_slice())?;
                saved.push(n);
            }
            if let Some(c) = cursor {
                meta.insert(CURSOR, c)?;
            }
        }
        txn.commit()?;
        Ok(saved)
    }

    /// The messages not sent yet, oldest first, and the `recent` last sent ones.
    pub fn notifications(&self, recent: usize) -> Result<Vec<Notification>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NOTIFICATIONS)?;
        let mut unsent = Vec::new();
        let mut sent = Vec::new();
        for entry in table.iter()? {
            let (_, v) = entry?;
            let n: Notification = decode(v.value())?;
            if n.sent_at.is_some() {
                sent.push(n);
            } else {
                unsent.push(n);
            }
        }
        let skip = sent.len().saturating_sub(recent);
        sent.drain(..skip);
        sent.extend(unsent);
        sent.sort_by_key(|n| n.id);
        Ok(sent)
    }
}
