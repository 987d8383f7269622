//! The alerts the media desk raised (a spike of coverage in a series and a period), each
//! recorded once, by the collector leading the media desk, with the time it was first raised.
//! Every collector's live event stream reads them from here after a cursor, so every
//! dashboard sees the same alerts, once, whichever instance raised them and across restarts
//! and a change of leader: a new leader finds the alerts already raised and raises only new
//! ones.
//!
//! Numbers are given in commit order (one writer at a time: the redb writer here, a table lock
//! on PostgreSQL), so a reader that saw number `n` has seen every alert before it.

use super::{decode, encode, next_number, RedbStore, StoreError, META};
use bincode::{Decode, Encode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

/// Alert number → [`AlertRecord`].
pub(super) const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");
/// Alert key → its number, so an alert is recorded once.
pub(super) const ALERT_KEYS: TableDefinition<&str, u64> = TableDefinition::new("alert_keys");
/// The META key of the next alert number.
const NEXT_ALERT: &str = "next_alert";

/// An alert as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct AlertRecord {
    /// Its number, from 1, in the order alerts were recorded.
    pub number: u64,
    /// What it is about, stable while it holds: `kind:series:period`.
    pub key: String,
    /// When it was first raised (ms since the epoch).
    pub raised_at: i64,
    /// The alert as the analysis gave it when it was raised (JSON).
    pub json: String,
}

/// An alert to record: its key, the time it is raised and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub key: String,
    pub raised_at: i64,
    pub json: String,
}

impl RedbStore {
    /// Records the alerts whose key is not recorded yet, in one transaction, and returns them
    /// as recorded (with their numbers); the others are left as they are.
    pub fn record_alerts(&self, alerts: &[NewAlert]) -> Result<Vec<AlertRecord>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut recorded = Vec::new();
        {
            let mut keys = txn.open_table(ALERT_KEYS)?;
            let mut table = txn.open_table(ALERTS)?;
            let mut meta = txn.open_table(META)?;
            for alert in alerts {
                if keys.get(alert.key.as_str())?.is_some() {
                    continue;
                }
                let number = next_number(&mut meta, NEXT_ALERT, 1)?;
                let record = AlertRecord {
                    number,
                    key: alert.key.clone(),
                    raised_at: alert.raised_at,
                    json: alert.json.clone(),
                };
                keys.insert(alert.key.as_str(), number)?;
                table.insert(number, encode(&record).as_slice())?;
                recorded.push(record);
            }
        }
        if recorded.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(recorded)
    }

    /// Up to `limit` alerts numbered after `after`, oldest first.
    pub fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ALERTS)?;
        let mut out = Vec::new();
        for entry in table.range(after.saturating_add(1)..)?.take(limit) {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// The number of the last alert recorded (0 before the first).
    pub fn last_alert(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ALERTS)?;
        let last = table.last()?.map(|(k, _)| k.value());
        Ok(last.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::store;

    fn alert(key: &str, at: i64) -> NewAlert {
        NewAlert {
            key: key.to_owned(),
            raised_at: at,
            json: format!("{{\"id\":\"{key}\"}}"),
        }
    }

    #[test]
    fn an_alert_is_recorded_once_and_read_after_a_cursor() {
        let (dir, store) = store();
        assert_eq!(store.last_alert().unwrap(), 0);
        let first = store
            .record_alerts(&[alert("spike:all:1", 10), alert("spike:upt:a:1", 11)])
            .unwrap();
        assert_eq!(first.iter().map(|a| a.number).collect::<Vec<_>>(), [1, 2]);
        // Raised again (the next look, or another leader after a failover): nothing new, and
        // the first time it was raised is kept.
        let again = store
            .record_alerts(&[alert("spike:all:1", 99), alert("spike:all:2", 100)])
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].number, again[0].key.as_str()), (3, "spike:all:2"));
        assert_eq!(
            store.record_alerts(&[alert("spike:all:2", 101)]).unwrap(),
            []
        );
        let all = store.alerts_after(0, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].raised_at, 10);
        assert_eq!(all[0].json, "{\"id\":\"spike:all:1\"}");
        let after_first = store.alerts_after(1, 10).unwrap();
        assert_eq!(
            after_first
                .iter()
                .map(|a| a.key.as_str())
                .collect::<Vec<_>>(),
            ["spike:upt:a:1", "spike:all:2"]
        );
        assert_eq!(store.alerts_after(1, 1).unwrap().len(), 1);
        assert_eq!(store.alerts_after(3, 10).unwrap(), []);
        assert_eq!(store.last_alert().unwrap(), 3);
        // They survive reopening the store, and numbering goes on after them.
        drop(store);
        let reopened = crate::store::fixtures::open(dir.path());
        assert_eq!(reopened.last_alert().unwrap(), 3);
        let next = reopened
            .record_alerts(&[alert("spike:all:3", 200)])
            .unwrap();
        assert_eq!(next[0].number, 4);
    }

    #[test]
    fn two_writers_at_once_record_each_alert_once() {
        // An old leader not yet gone and a new one may raise the same alerts together.
        let (_dir, store) = store();
        let store = std::sync::Arc::new(store);
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut got = 0;
                    for i in 0..30 {
                        let keys = [alert(&format!("spike:all:{i}"), w), alert("spike:all:x", w)];
                        got += store.record_alerts(&keys).unwrap().len();
                    }
                    got
                })
            })
            .collect();
        let total: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(total, 31);
        let all = store.alerts_after(0, 100).unwrap();
        let numbers: Vec<u64> = all.iter().map(|a| a.number).collect();
        assert_eq!(numbers, (1..=31).collect::<Vec<u64>>());
    }
}
