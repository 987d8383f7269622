//! The risk history: each day's scores of UPTs and Kanwil (`pasopati_analysis::risk`), kept
//! so the dashboard can draw how a unit's risk moved. A day is recorded whole, replacing what
//! was recorded for it before (today's scores are recorded again through the day).

use super::{decode, encode, RedbStore, StoreError};
use pasopati_analysis::risk::RiskScore;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// (day number in WIB, `upt:<id>` or `kanwil:<name>`) → the score with its parts.
pub(super) const RISK: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("risk");
/// Day number → how many scores were recorded for it (zero for a calm day), so a day
/// recorded calm is told from a day never recorded.
pub(super) const RISK_DAYS: TableDefinition<i64, u64> = TableDefinition::new("risk_days");

impl RedbStore {
    /// Records the scores of `day`, replacing any recorded for it, in one transaction.
    pub fn record_risk_day(&self, day: i64, scores: &[RiskScore]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(RISK)?;
            let mut stale: Vec<String> = Vec::new();
            for entry in table.range((day, "")..(day + 1, ""))? {
                stale.push(entry?.0.value().1.to_owned());
            }
            for key in &stale {
                table.remove((day, key.as_str()))?;
            }
            for s in scores {
                table.insert((day, s.scope.key().as_str()), encode(s).as_slice())?;
            }
            txn.open_table(RISK_DAYS)?
                .insert(day, scores.len() as u64)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The recorded days from `first` to `last` (inclusive).
    pub fn risk_days(&self, first: i64, last: i64) -> Result<Vec<i64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RISK_DAYS)?;
        let mut out = Vec::new();
        for entry in table.range(first..=last)? {
            out.push(entry?.0.value());
        }
        Ok(out)
    }

    /// The scores recorded from day `first` to `last` (inclusive), by day.
    pub fn risk_history(&self, first: i64, last: i64) -> Result<Vec<(i64, RiskScore)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RISK)?;
        let mut out = Vec::new();
        for entry in table.range((first, "")..(last.saturating_add(1), ""))? {
            let (key, value) = entry?;
            out.push((key.value().0, decode(value.value())?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::store;
    use pasopati_analysis::risk::{Component, Part, Scope};

    fn score(unit: &str, points: f64) -> RiskScore {
        RiskScore {
            scope: Scope::Upt(unit.into()),
            score: points,
            parts: vec![Part {
                component: Component::UrgentReport,
                value: points / 5.0,
                weight: 5.0,
                points,
            }],
        }
    }

    #[test]
    fn writers_of_one_day_at_once_take_turns() {
        // The daemon's keeper and the `risk` command (or two collectors on one database) may
        // record the same day together; neither fails, and the day holds one writer's scores.
        let (_dir, store) = store();
        let store = std::sync::Arc::new(store);
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..40 {
                        // The two writers list the units in opposite orders.
                        let mut scores = vec![score("a", f64::from(w * 100 + i)), score("b", 1.0)];
                        if w == 1 {
                            scores.reverse();
                        }
                        store.record_risk_day(200, &scores).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(store.risk_history(200, 200).unwrap().len(), 2);
    }

    #[test]
    fn a_day_is_replaced_whole_and_calm_days_are_recorded() {
        let (dir, store) = store();
        store
            .record_risk_day(100, &[score("a", 10.0), score("b", 5.0)])
            .unwrap();
        store.record_risk_day(101, &[score("a", 15.0)]).unwrap();
        // Today again: `b` is calm now and is gone from the day.
        store.record_risk_day(101, &[score("a", 20.0)]).unwrap();
        store.record_risk_day(102, &[]).unwrap();
        let history = store.risk_history(100, 102).unwrap();
        let days: Vec<(i64, f64)> = history.iter().map(|(d, s)| (*d, s.score)).collect();
        assert_eq!(days, [(100, 10.0), (100, 5.0), (101, 20.0)]);
        assert_eq!(store.risk_days(99, 200).unwrap(), [100, 101, 102]);
        // The history survives reopening the store.
        drop(store);
        let reopened = crate::store::fixtures::open(dir.path());
        assert_eq!(reopened.risk_history(101, 101).unwrap().len(), 1);
    }
}
