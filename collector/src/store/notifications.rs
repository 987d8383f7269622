//! The notification outbox: what the collector has to tell people (a burst of urgent reports,
//! a spike, a negative story, a coverage gap, a silent site, a paused rollout, the morning
//! digest), each message with the id a receiver drops duplicates by, gathered while its group
//! window is open and kept until its channel took it.
//!
//! What caused a message is recorded with it, in one transaction: the notifier's cursor over
//! report arrivals (the first arrival it has not looked at), and for conditions the set of
//! keys each rule has already told (`notify_active`: a site silent since a given hour, a story
//! told negative, a digest's day). So a crash neither loses a message nor writes one twice; a
//! message is marked sent only after its channel answered, so one may go out twice and never
//! zero times.
//!
//! Reads stay small as the outbox grows: the messages not sent yet are those from the first
//! unsent id on (kept in `meta` as `notify_first_unsent`), and the rate limits read only the
//! newest messages.

use super::{decode, encode, next_number, RedbStore, StoreError, META};
use bincode::{Decode, Encode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use std::collections::BTreeMap;

/// Message id → message.
pub(super) const NOTIFICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("notifications");
/// Rule name → the keys of the conditions it has told and that still hold (bincode
/// `Vec<String>`).
pub(super) const NOTIFY_ACTIVE: TableDefinition<&str, &[u8]> =
    TableDefinition::new("notify_active");
/// The META key of the notifier's cursor over report arrivals.
pub(super) const CURSOR: &str = "notify_cursor";
/// The META key of the next message id.
pub(super) const NEXT_ID: &str = "next_notification";
/// The META key of the first message id not sent yet (every one before it was sent).
pub(super) const FIRST_UNSENT: &str = "notify_first_unsent";

/// One message of the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Notification {
    /// Its id (0 until the outbox gives it one); receivers drop a message they have seen.
    pub id: u64,
    /// The channel (by name, from `[[notify.channels]]`) it goes to.
    pub channel: String,
    /// What it tells: `urgent_report`, `spike`, `negative_story`, `coverage_gap`,
    /// `silent_site`, `rollout_paused` or `morning_digest`.
    pub event: String,
    /// When its group opened, and when it may be sent (the group window's end).
    pub opened_at: i64,
    pub due_at: i64,
    /// How many events it gathers, about which sites or units, and the first ones' lines.
    pub count: u64,
    pub sites: Vec<String>,
    pub lines: Vec<String>,
    /// A message written whole when it opened (the morning digest): its subject, its text
    /// and its HTML for email.
    pub subject: Option<String>,
    pub body: Option<String>,
    pub html: Option<String>,
    pub sent_at: Option<i64>,
    pub attempts: u32,
    /// Not before this time again, after a failed attempt.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl Notification {
    /// A message of `event` to `channel`, opened at `opened_at` and due at `due_at`, with
    /// nothing gathered yet (its id is given when it is first saved).
    pub fn opening(channel: &str, event: &str, opened_at: i64, due_at: i64) -> Notification {
        Notification {
            id: 0,
            channel: channel.to_owned(),
            event: event.to_owned(),
            opened_at,
            due_at,
            count: 0,
            sites: Vec::new(),
            lines: Vec::new(),
            subject: None,
            body: None,
            html: None,
            sent_at: None,
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
        }
    }
}

/// What one pass of the notifier writes, in one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxChange {
    /// New messages (id 0) and changed ones.
    pub messages: Vec<Notification>,
    /// The cursor's new place over report arrivals.
    pub cursor: Option<u64>,
    /// Rules whose told conditions changed: name → the keys that hold now.
    pub active: Vec<(String, Vec<String>)>,
}

impl RedbStore {
    /// The first report arrival the notifier has not looked at; `None` before its first look.
    pub fn notify_cursor(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(CURSOR)?.map(|v| v.value()))
    }

    /// Writes a pass's messages (those with id 0 get one), the cursor and the told
    /// conditions in one transaction; returns the messages as stored.
    pub fn save_notifications(
        &self,
        change: OutboxChange,
    ) -> Result<Vec<Notification>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut saved = Vec::with_capacity(change.messages.len());
        {
            let mut meta = txn.open_table(META)?;
            let mut table = txn.open_table(NOTIFICATIONS)?;
            let mut first_unsent = meta.get(FIRST_UNSENT)?.map_or(1, |v| v.value());
            let mut moved = false;
            for mut n in change.messages {
                if n.id == 0 {
                    n.id = next_number(&mut meta, NEXT_ID, 1)?;
                }
                if n.sent_at.is_none() && n.id < first_unsent {
                    first_unsent = n.id;
                    moved = true;
                }
                moved |= n.sent_at.is_some() && n.id == first_unsent;
                table.insert(n.id, encode(&n).as_slice())?;
                saved.push(n);
            }
            if moved {
                let mut next = meta.get(NEXT_ID)?.map_or(1, |v| v.value());
                for entry in table.range(first_unsent..)? {
                    let (k, v) = entry?;
                    let n: Notification = decode(v.value())?;
                    if n.sent_at.is_none() {
                        next = k.value();
                        break;
                    }
                }
                meta.insert(FIRST_UNSENT, next)?;
            }
            if let Some(c) = change.cursor {
                meta.insert(CURSOR, c)?;
            }
            let mut active = txn.open_table(NOTIFY_ACTIVE)?;
            for (name, keys) in change.active {
                if keys.is_empty() {
                    active.remove(name.as_str())?;
                } else {
                    active.insert(name.as_str(), encode(&keys).as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(saved)
    }

    /// The messages not sent yet, oldest first.
    pub fn pending_notifications(&self) -> Result<Vec<Notification>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let first = meta.get(FIRST_UNSENT)?.map_or(1, |v| v.value());
        let table = txn.open_table(NOTIFICATIONS)?;
        let mut pending = Vec::new();
        for entry in table.range(first..)? {
            let (_, v) = entry?;
            let n: Notification = decode(v.value())?;
            if n.sent_at.is_none() {
                pending.push(n);
            }
        }
        Ok(pending)
    }

    /// The `limit` newest messages, sent or not, newest first.
    pub fn recent_notifications(&self, limit: usize) -> Result<Vec<Notification>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NOTIFICATIONS)?;
        let mut recent = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (_, v) = entry?;
            recent.push(decode(v.value())?);
        }
        Ok(recent)
    }

    /// Every rule's told conditions that still hold: name → keys.
    pub fn notify_active(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NOTIFY_ACTIVE)?;
        let mut all = BTreeMap::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            all.insert(k.value().to_owned(), decode(v.value())?);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::store;

    fn message(channel: &str) -> Notification {
        Notification {
            count: 1,
            sites: vec!["lapas-uji".into()],
            lines: vec!["Lapas Uji: kebakaran kecil (uji)".into()],
            ..Notification::opening(channel, "urgent_report", 1, 2)
        }
    }

    /// Runs on the backend the tests are set to (redb, or PostgreSQL with
    /// `PASOPATI_TEST_STORE=postgres`).
    #[test]
    fn only_unsent_messages_are_read_back_and_told_conditions_move_with_them() {
        let (_dir, store) = store();
        let change = |messages: Vec<Notification>| OutboxChange {
            messages,
            ..OutboxChange::default()
        };
        let saved = store
            .save_notifications(OutboxChange {
                messages: vec![message("a"), message("b"), message("c")],
                cursor: Some(7),
                active: vec![("a/silent_site/60s".into(), vec!["lapas-uji@5".into()])],
            })
            .unwrap();
        let ids: Vec<u64> = saved.iter().map(|n| n.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(store.notify_cursor().unwrap(), Some(7));
        let pending = |store: &crate::store::Store| -> Vec<u64> {
            store
                .pending_notifications()
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect()
        };
        assert_eq!(pending(&store), [1, 2, 3]);
        let sent = |mut n: Notification| {
            n.sent_at = Some(10);
            n
        };
        // The first sent: the rest are pending. The last sent: the middle one still is.
        store
            .save_notifications(change(vec![sent(saved[0].clone())]))
            .unwrap();
        assert_eq!(pending(&store), [2, 3]);
        store
            .save_notifications(change(vec![sent(saved[2].clone())]))
            .unwrap();
        assert_eq!(pending(&store), [2]);
        store
            .save_notifications(change(vec![sent(saved[1].clone())]))
            .unwrap();
        assert!(pending(&store).is_empty());
        let fourth = store
            .save_notifications(change(vec![message("d")]))
            .unwrap();
        assert_eq!(fourth[0].id, 4);
        assert_eq!(pending(&store), [4]);
        let recent: Vec<u64> = store
            .recent_notifications(2)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(recent, [4, 3]);
        // The cursor stays where it was when a pass does not move it.
        assert_eq!(store.notify_cursor().unwrap(), Some(7));

        let active = store.notify_active().unwrap();
        assert_eq!(
            active.get("a/silent_site/60s"),
            Some(&vec!["lapas-uji@5".to_owned()])
        );
        store
            .save_notifications(OutboxChange {
                active: vec![("a/silent_site/60s".into(), Vec::new())],
                ..OutboxChange::default()
            })
            .unwrap();
        assert!(store.notify_active().unwrap().is_empty());
    }
}
