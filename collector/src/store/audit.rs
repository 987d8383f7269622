//! The audit log: every admin action and every change of trust (sites, tokens, certificates,
//! users, API tokens, claims, publications, quarantine), hash-chained, appended in the same
//! transaction as the change it records, and the walk that verifies the chain.

use super::{decode, encode, RedbStore, StoreError, META};
use bincode::{Decode, Encode};
use pasopati_common::frame::decode_value;
use pasopati_common::Timestamp;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Audit entry number → hash-chained audit entry.
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// How many entries were ever appended, kept apart from the entries.
const AUDIT_COUNT: &str = "audit_count";

/// One entry of the hash-chained audit log.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: Timestamp,
    /// Who: `local-admin uid=N` for the CLI, `site:<id>` for an agent.
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// The SHA-256 of everything in the entry but its own hash.
    pub(super) fn compute_hash(&self) -> [u8; 32] {
        let body = encode(&(
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            &self.subject,
            &self.details,
            self.prev_hash,
        ));
        pasopati_common::sha256(&body)
    }
}

/// An audit entry as found at a position of the log: decoded, or why it does not decode.
pub type StoredAuditEntry = (u64, Result<AuditEntry, String>);

/// Where and why the audit chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first entry (by position) that does not verify.
    pub entry: u64,
    pub reason: String,
}

impl std::fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit entry {}: {}", self.entry, self.reason)
    }
}

/// Checks a chain read from the store; `count` is how many entries were ever appended.
pub fn verify_chain(entries: &[StoredAuditEntry], count: u64) -> Result<u64, AuditBreak> {
    let mut prev = [0u8; 32];
    for (expected, (key, entry)) in (0u64..).zip(entries) {
        let broken = |reason: String| AuditBreak {
            entry: expected,
            reason,
        };
        if *key != expected {
            return Err(broken(format!(
                "is missing (the next stored entry is {key}): entries were removed"
            )));
        }
        let entry = entry
            .as_ref()
            .map_err(|e| broken(format!("cannot be decoded ({e}): it was changed")))?;
        if entry.seq != expected {
            return Err(broken(format!(
                "holds entry {} instead: entries were reordered",
                entry.seq
            )));
        }
        if entry.prev_hash != prev {
            return Err(broken(
                "does not follow the entry before it: entries were removed or reordered".into(),
            ));
        }
        if entry.compute_hash() != entry.hash {
            return Err(broken(
                "its content does not match its hash: it was changed".into(),
            ));
        }
        prev = entry.hash;
    }
    let stored = entries.len() as u64;
    if stored != count {
        return Err(AuditBreak {
            entry: stored,
            reason: format!("the log holds {stored} entries but {count} were appended: entries were removed from the end"),
        });
    }
    Ok(stored)
}

/// Appends an audit entry inside the caller's transaction, so the entry and the change it
/// records commit together.
pub(super) fn audit(
    txn: &redb::WriteTransaction,
    actor: &str,
    action: &str,
    subject: &dyn std::fmt::Display,
    details: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(AUDIT_COUNT)?.map(|v| v.value()).unwrap_or(0);
    let mut table = txn.open_table(AUDIT)?;
    let prev_hash = match seq.checked_sub(1) {
        Some(last) => match table.get(last)? {
            Some(v) => decode::<AuditEntry>(v.value())?.hash,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "audit entry {last} is missing"
                )))
            }
        },
        None => [0u8; 32],
    };
    let mut entry = AuditEntry {
        seq,
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_string(),
        details,
        prev_hash,
        hash: [0u8; 32],
    };
    entry.hash = entry.compute_hash();
    table.insert(seq, encode(&entry).as_slice())?;
    meta.insert(AUDIT_COUNT, seq + 1)?;
    Ok(())
}

impl RedbStore {
    /// The audit log, oldest first, as stored (undecodable entries included as errors).
    pub fn audit_log(&self) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((
                k.value(),
                decode_value(v.value()).map_err(|e| e.to_string()),
            ));
        }
        Ok(out)
    }

    /// How many audit entries were ever appended (kept apart from the entries, so entries
    /// removed from the end are noticed).
    pub fn audit_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get(AUDIT_COUNT)?;
        Ok(value.map(|v| v.value()).unwrap_or(0))
    }

    /// Walks the audit chain.
    pub fn verify_audit(&self) -> Result<Result<u64, AuditBreak>, StoreError> {
        Ok(verify_chain(&self.audit_log()?, self.audit_count()?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{site, store};
    use super::*;

    #[test]
    fn the_audit_chain_verifies_and_names_tampering() {
        let (_d, s) = store();
        s.add_token(&site(), &[1; 32], Timestamp(0), Timestamp(100), "admin")
            .unwrap();
        s.revoke_site(&site(), "admin", Timestamp(2)).unwrap();
        let log = s.audit_log().unwrap();
        assert_eq!(s.verify_audit().unwrap(), Ok(3));
        let actions: Vec<_> = log
            .iter()
            .map(|(_, e)| e.as_ref().unwrap().action.clone())
            .collect();
        assert_eq!(actions, ["site_add", "token_minted", "site_revoke"]);

        let mut changed = log.clone();
        if let Ok(e) = &mut changed[1].1 {
            e.details.push('!');
        }
        assert_eq!(verify_chain(&changed, 3).unwrap_err().entry, 1);
        let removed: Vec<_> = log.iter().filter(|(k, _)| *k != 1).cloned().collect();
        assert_eq!(verify_chain(&removed, 3).unwrap_err().entry, 1);
        let mut swapped = log.clone();
        let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = b;
        swapped[2].1 = a;
        assert_eq!(verify_chain(&swapped, 3).unwrap_err().entry, 1);
        assert_eq!(verify_chain(&log[..2], 3).unwrap_err().entry, 2);
    }
}
