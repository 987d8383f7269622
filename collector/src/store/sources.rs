//! What the polled sources left behind: the engagement of social media items, and each
//! source's health (last success, last error, items today, next poll) with what its next
//! conditional request needs (ETag, Last-Modified, the newest post seen).
//!
//! Both tables are new beside the media tables, whose records keep their encoding, so a data
//! directory made before them opens unchanged (the tables are created empty). Their values are
//! JSON rather than bincode, so that a field added later reads as its default in an older record
//! instead of making the record undecodable.

use super::{RedbStore, StoreError, StoredMedia};
use pasopati_analysis::social::Engagement;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Media item id → its latest known [`Engagement`] (JSON).
pub(super) const MEDIA_ENGAGEMENT: TableDefinition<&str, &[u8]> =
    TableDefinition::new("media_engagement");
/// Source key → its [`SourceHealth`] (JSON).
pub(super) const SOURCE_HEALTH: TableDefinition<&str, &[u8]> =
    TableDefinition::new("source_health");

/// A polled source's health and the state of its next request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceHealth {
    /// The source's key: its kind and address, as collector.toml gives them.
    pub key: String,
    /// `rss`, `youtube`, `mastodon`, `bluesky` or `telegram`.
    pub kind: String,
    /// What people read: `Mastodon #lapas di fedi.example`.
    pub label: String,
    /// The last request (milliseconds since the epoch).
    pub last_poll: Option<i64>,
    /// The last answer that was read (a document or `304 Not Modified`).
    pub last_success: Option<i64>,
    /// The last failure and when it was.
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Failures since the last success; the wait before the next poll grows with them.
    pub failures: u32,
    /// `304 Not Modified` answers so far.
    pub not_modified: u64,
    /// The WIB day (days since 1970-01-01) `items_today` counts.
    pub items_day: i64,
    /// New items stored on that day.
    pub items_today: u64,
    /// New items stored since the source was first polled.
    pub items_total: u64,
    /// When the next poll is due.
    pub next_poll: Option<i64>,
    /// The address the validators below came with (a conditional request is made only to it).
    pub validators_for: Option<String>,
    /// Stored as the record's own `etag` and `last_modified` fields.
    #[serde(flatten)]
    pub validators: Validators,
    /// The newest post seen (Mastodon's `since_id`, Bluesky's `since`).
    pub cursor: Option<String>,
}

/// What an answer gave for making the next request to its address conditional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Validators {
    /// Sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// Sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
}

/// A stored media item with its engagement, as the CLI and the API list it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MediaView {
    #[serde(flatten)]
    pub media: StoredMedia,
    /// Shares, replies, likes and views, when the source gave them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engagement: Option<Engagement>,
}

/// The engagement of an item read now (`new`) over the one held (`old`): each figure the newest
/// read where one was given, the one held before where not.
pub(super) fn merge_engagement(new: &Engagement, old: &Engagement) -> Engagement {
    Engagement {
        shares: new.shares.or(old.shares),
        replies: new.replies.or(old.replies),
        likes: new.likes.or(old.likes),
        views: new.views.or(old.views),
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
}

pub(super) fn from_json<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl RedbStore {
    /// The JSON value under `key` in `table`.
    fn json_get<T: for<'de> Deserialize<'de>>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let value = table.get(key)?;
        value.map(|v| from_json(v.value())).transpose()
    }

    /// Records `value` as JSON under `key` in `table`.
    fn json_put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(table)?
            .insert(key, to_json(value)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Records the engagement of media items (stored or about to be), each figure the newest
    /// read where one was given and the one held before where not, in one transaction.
    pub fn put_engagement(&self, items: &[(String, Engagement)]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(MEDIA_ENGAGEMENT)?;
            for (id, new) in items {
                let old: Engagement = match table.get(id.as_str())? {
                    Some(v) => from_json(v.value())?,
                    None => Engagement::default(),
                };
                let merged = merge_engagement(new, &old);
                table.insert(id.as_str(), to_json(&merged)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The engagement of every media item that has one, by item id.
    pub fn engagement_all(&self) -> Result<HashMap<String, Engagement>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEDIA_ENGAGEMENT)?;
        let mut out = HashMap::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.insert(k.value().to_owned(), from_json(v.value())?);
        }
        Ok(out)
    }

    /// Media items in arrival order, from `after` (inclusive), at most `limit`, each with its
    /// engagement.
    pub fn media_views(&self, after: u64, limit: usize) -> Result<Vec<MediaView>, StoreError> {
        let media = self.media(after, limit)?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEDIA_ENGAGEMENT)?;
        media
            .into_iter()
            .map(|m| {
                let engagement = table
                    .get(m.id.as_str())?
                    .map(|v| from_json(v.value()))
                    .transpose()?;
                Ok(MediaView {
                    media: m,
                    engagement,
                })
            })
            .collect()
    }

    /// Media items numbered below `before`, newest first, after skipping `skip` of them, at
    /// most `limit`, each with its number and engagement. Skipped items are not decoded.
    pub fn media_views_newest(
        &self,
        before: u64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(u64, MediaView)>, StoreError> {
        let txn = self.db.begin_read()?;
        let media = txn.open_table(super::media::MEDIA)?;
        let engagement = txn.open_table(MEDIA_ENGAGEMENT)?;
        let mut out = Vec::new();
        for entry in media.range(..before)?.rev().skip(skip).take(limit) {
            let (number, value) = entry?;
            let m: StoredMedia = super::decode(value.value())?;
            let e = engagement
                .get(m.id.as_str())?
                .map(|v| from_json(v.value()))
                .transpose()?;
            out.push((
                number.value(),
                MediaView {
                    media: m,
                    engagement: e,
                },
            ));
        }
        Ok(out)
    }

    /// The engagement of one media item.
    pub fn engagement(&self, id: &str) -> Result<Option<Engagement>, StoreError> {
        self.json_get(MEDIA_ENGAGEMENT, id)
    }

    /// The health of the source with this key.
    pub fn source_health(&self, key: &str) -> Result<Option<SourceHealth>, StoreError> {
        self.json_get(SOURCE_HEALTH, key)
    }

    /// Records a source's health under its key.
    pub fn put_source_health(&self, health: &SourceHealth) -> Result<(), StoreError> {
        self.json_put(SOURCE_HEALTH, &health.key, health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::store;

    /// The record's JSON is flat, its validators among its own fields, and a record missing
    /// fields (an older one) reads them as their defaults.
    #[test]
    fn health_is_stored_as_flat_json() {
        let health = SourceHealth {
            key: "k".into(),
            failures: 2,
            validators: Validators {
                etag: Some("e".into()),
                last_modified: None,
            },
            ..Default::default()
        };
        let json = to_json(&health).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"key":"k","kind":"","label":"","last_poll":null,"last_success":null,"last_error":null,"last_error_at":null,"failures":2,"not_modified":0,"items_day":0,"items_today":0,"items_total":0,"next_poll":null,"validators_for":null,"etag":"e","last_modified":null,"cursor":null}"#
        );
        assert_eq!(from_json::<SourceHealth>(&json).unwrap(), health);
        let older: SourceHealth = from_json(br#"{"key":"k","failures":2,"etag":"e"}"#).unwrap();
        assert_eq!(older, health);
    }

    #[test]
    fn engagement_and_health_survive_a_reopen() {
        let (dir, store) = store();
        let first = Engagement {
            shares: Some(2),
            views: Some(100),
            ..Default::default()
        };
        store.put_engagement(&[("a".into(), first)]).unwrap();
        // A later read that gives likes but no views keeps the views known before.
        let later = Engagement {
            shares: Some(5),
            likes: Some(1),
            ..Default::default()
        };
        store.put_engagement(&[("a".into(), later)]).unwrap();
        let health = SourceHealth {
            key: "youtube https://yt.contoh.invalid/feed".into(),
            kind: "youtube".into(),
            validators: Validators {
                etag: Some("\"v1\"".into()),
                last_modified: None,
            },
            items_today: 3,
            ..Default::default()
        };
        store.put_source_health(&health).unwrap();
        drop(store);
        let store = crate::store::fixtures::open(dir.path());
        assert_eq!(
            store.engagement("a").unwrap(),
            Some(Engagement {
                shares: Some(5),
                likes: Some(1),
                views: Some(100),
                replies: None
            })
        );
        assert_eq!(store.engagement_all().unwrap().len(), 1);
        assert_eq!(
            store.source_health(&health.key).unwrap(),
            Some(health.clone())
        );
        assert_eq!(store.source_health("tidak ada").unwrap(), None);
    }
}
