//! Media items (imported files and polled feeds, identity data masked, with where the
//! analysis placed each on arrival) and attachments: those a stored report brings and a site
//! is expected to send, and those the collector holds.

use super::{decode, encode, RedbStore, StoreError, META};
use bincode::{Decode, Encode};
use pasopati_common::attachment::AttachmentRef;
use pasopati_common::{SiteId, Timestamp};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

/// (site, BLAKE3 hash) → the reference of an attachment a stored report of the site brings and
/// the collector does not hold yet. Only these are accepted from the site.
pub(super) const ATTACHMENTS_EXPECTED: TableDefinition<(&str, &[u8]), &[u8]> =
    TableDefinition::new("attachments_expected");
/// BLAKE3 hash → a stored attachment (its bytes are in `attachments/<hex>`).
pub(super) const ATTACHMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("attachments");
/// Arrival number → a media item (its text with identity data masked) and where the analysis
/// placed it when it arrived.
pub(super) const MEDIA: TableDefinition<u64, &[u8]> = TableDefinition::new("media");
/// Media item id → arrival number (an import of the same id again is skipped).
pub(super) const MEDIA_IDS: TableDefinition<&str, u64> = TableDefinition::new("media_ids");
/// The counter of media arrival numbers.
const NEXT_MEDIA: &str = "next_media";

/// An attachment the collector holds.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredAttachment {
    pub reference: AttachmentRef,
    /// The first site that sent it.
    pub site: SiteId,
    pub stored_at: Timestamp,
}

/// A media item as the collector keeps it.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize)]
pub struct StoredMedia {
    pub arrival: u64,
    pub id: String,
    pub url: String,
    pub normalized_url: String,
    pub source: String,
    /// Title and text with NIKs, phone and register numbers and initials masked.
    pub title: String,
    pub text: String,
    pub published_at: i64,
    pub social: bool,
    pub imported_at: i64,
    /// Where the analysis placed it on arrival.
    pub duplicate_of: Option<String>,
    pub story: String,
    pub upt: Vec<String>,
    pub kanwil: Vec<String>,
    pub sentiment: f64,
    pub topic: String,
    pub category: String,
}

impl RedbStore {
    /// The reference of attachment `hash` if a stored report of `site` brings it and it is not
    /// held yet.
    pub fn expected_attachment(
        &self,
        site: &SiteId,
        hash: &[u8; 32],
    ) -> Result<Option<AttachmentRef>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ATTACHMENTS_EXPECTED)?;
        let value = table.get((site.as_str(), &hash[..]))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// The stored attachment with this hash.
    pub fn attachment(&self, hash: &[u8; 32]) -> Result<Option<StoredAttachment>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ATTACHMENTS)?;
        let value = table.get(&hash[..])?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Every stored attachment, in hash order.
    pub fn attachments(&self) -> Result<Vec<StoredAttachment>, StoreError> {
        self.read_all(ATTACHMENTS)
    }

    /// Records that attachment `reference`, sent by `site`, is verified and its file is in
    /// place; no site is expected to send it any more. Idempotent.
    pub fn record_attachment(
        &self,
        site: &SiteId,
        reference: &AttachmentRef,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut stored = txn.open_table(ATTACHMENTS)?;
            if stored.get(&reference.hash[..])?.is_none() {
                let record = StoredAttachment {
                    reference: reference.clone(),
                    site: site.clone(),
                    stored_at: now,
                };
                stored.insert(&reference.hash[..], encode(&record).as_slice())?;
            }
            let mut expected = txn.open_table(ATTACHMENTS_EXPECTED)?;
            let mut done = Vec::new();
            for entry in expected.iter()? {
                let (k, _) = entry?;
                let (s, h) = k.value();
                if h == &reference.hash[..] {
                    done.push(s.to_owned());
                }
            }
            for s in done {
                expected.remove((s.as_str(), &reference.hash[..]))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores media items not seen before (by id), in one transaction; returns how many were
    /// new. `make` builds each record from its arrival number, and is called only for new ids.
    pub fn add_media(
        &self,
        ids: &[String],
        mut make: impl FnMut(usize, u64) -> StoredMedia,
    ) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut added = Vec::with_capacity(ids.len());
        {
            let mut meta = txn.open_table(META)?;
            let mut media = txn.open_table(MEDIA)?;
            let mut by_id = txn.open_table(MEDIA_IDS)?;
            let mut next = meta.get(NEXT_MEDIA)?.map(|v| v.value()).unwrap_or(0);
            for (i, id) in ids.iter().enumerate() {
                if by_id.get(id.as_str())?.is_some() {
                    added.push(false);
                    continue;
                }
                let record = make(i, next);
                media.insert(next, encode(&record).as_slice())?;
                by_id.insert(id.as_str(), next)?;
                next += 1;
                added.push(true);
            }
            meta.insert(NEXT_MEDIA, next)?;
        }
        txn.commit()?;
        Ok(added)
    }

    /// Which of these media item ids are stored, read in one transaction.
    pub fn known_media<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEDIA_IDS)?;
        let mut known = std::collections::HashSet::new();
        for id in ids {
            if table.get(id)?.is_some() {
                known.insert(id.to_owned());
            }
        }
        Ok(known)
    }

    /// The stored media items of these ids (those stored), read in one transaction.
    pub fn media_items<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<StoredMedia>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_id = txn.open_table(MEDIA_IDS)?;
        let media = txn.open_table(MEDIA)?;
        let mut out = Vec::new();
        for id in ids {
            let Some(arrival) = by_id.get(id)?.map(|v| v.value()) else {
                continue;
            };
            if let Some(raw) = media.get(arrival)? {
                out.push(decode(raw.value())?);
            }
        }
        Ok(out)
    }

    /// Media items in arrival order, from `after` (inclusive), at most `limit`.
    pub fn media(&self, after: u64, limit: usize) -> Result<Vec<StoredMedia>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEDIA)?;
        let mut out = Vec::new();
        for entry in table.range(after..)?.take(limit) {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }
}

/// Notes within `txn` the attachments a newly stored report of `site` brings that the
/// collector does not hold yet: only these are accepted from the site.
pub(super) fn expect_attachments(
    txn: &redb::WriteTransaction,
    site: &SiteId,
    attachments: &[AttachmentRef],
) -> Result<(), StoreError> {
    if attachments.is_empty() {
        return Ok(());
    }
    let stored = txn.open_table(ATTACHMENTS)?;
    let mut expected = txn.open_table(ATTACHMENTS_EXPECTED)?;
    for a in attachments {
        if stored.get(&a.hash[..])?.is_none() {
            expected.insert((site.as_str(), &a.hash[..]), encode(a).as_slice())?;
        }
    }
    Ok(())
}
