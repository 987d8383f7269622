//! Mastodon and other Fediverse servers speaking its API: the JSON array of statuses that
//! `GET /api/v1/timelines/tag/{tag}` and `GET /api/v1/accounts/{id}/statuses` answer. Each
//! status gives `id`, `created_at`, `url` (or `uri`), `content` (HTML, reduced to its text,
//! with `spoiler_text` before it), `account.acct`, `reblogs_count`, `replies_count` and
//! `favourites_count`. A boost (`reblog` set) is read as the post it boosts. Fields not named
//! here are ignored: servers add fields over time.
//!
//! The newest id is returned, so that the next poll passes it as `since_id` and gets only
//! newer posts. Mastodon's ids are decimal numbers that grow with time, compared as numbers.

use super::{collect, rfc3339, source_name, Engagement, Post, SocialRead};
use serde::Deserialize;

#[derive(Deserialize)]
struct Status {
    id: String,
    created_at: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    uri: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    spoiler_text: String,
    #[serde(default)]
    account: Option<Account>,
    #[serde(default)]
    reblogs_count: Option<u64>,
    #[serde(default)]
    replies_count: Option<u64>,
    #[serde(default)]
    favourites_count: Option<u64>,
    #[serde(default)]
    reblog: Option<Box<Status>>,
}

#[derive(Deserialize)]
struct Account {
    #[serde(default)]
    acct: String,
}

/// Whether Mastodon id `a` is newer than `b` (longer is larger; equal lengths compare as text).
pub(crate) fn newer_id(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// Reads a timeline.
pub(super) fn read(file: &str, json: &str) -> SocialRead {
    let statuses: Vec<serde_json::Value> = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            return SocialRead::failed(
                file,
                0,
                format!("not a Mastodon timeline (a JSON array of statuses): {e}"),
            )
        }
    };
    let mut newest: Option<String> = None;
    let mut posts = Vec::new();
    for value in statuses {
        let status = match serde_json::from_value::<Status>(value) {
            Ok(s) => s,
            Err(e) => {
                posts.push(Err(format!("not a status: {e}")));
                continue;
            }
        };
        // The timeline's own id is what `since_id` compares, boost or not.
        if newest.as_deref().is_none_or(|n| newer_id(&status.id, n)) {
            newest = Some(status.id.clone());
        }
        let status = match status.reblog {
            Some(original) => *original,
            None => status,
        };
        posts.push(finish(status));
    }
    let mut read = collect(file, posts);
    read.newest = newest;
    read
}

fn finish(s: Status) -> Result<Post, String> {
    let published_at = rfc3339("created_at", &s.created_at)?;
    let url = s
        .url
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| s.uri.clone());
    // The `uri` is the post's identity across servers; the id is only this server's number.
    let identity = if s.uri.is_empty() { &url } else { &s.uri };
    if identity.is_empty() {
        return Err("the status has neither `uri` nor `url`".into());
    }
    let content = super::html_text(&s.content);
    let spoiler = s.spoiler_text.trim();
    let text = if spoiler.is_empty() {
        content
    } else {
        format!("{spoiler}. {content}")
    };
    let acct = s.account.map(|a| a.acct).unwrap_or_default();
    let id = format!("mastodon:{identity}");
    let source = source_name("Mastodon", " @", &acct);
    let engagement = Engagement {
        shares: s.reblogs_count,
        replies: s.replies_count,
        likes: s.favourites_count,
        views: None,
    };
    Ok(Post::new(id, url, source, text, published_at).with(engagement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::assert_read;

    const TIMELINE: &str = r#"[
 {"id":"113500000000000002","created_at":"2026-11-20T03:04:05.000Z","uri":"https://fedi.contoh.invalid/users/humas_uji/statuses/113500000000000002",
  "url":"https://fedi.contoh.invalid/@humas_uji/113500000000000002","content":"<p>Pelatihan menjahit di <a href=\"https://fedi.contoh.invalid/tags/lapas\">#<span>lapas</span></a> uji &amp; pameran.</p>",
  "spoiler_text":"","account":{"id":"1","acct":"humas_uji","display_name":"Humas Uji"},
  "reblogs_count":3,"replies_count":1,"favourites_count":7,"reblog":null,"language":"id","visibility":"public"},
 {"id":"113500000000000010","created_at":"2026-11-20T04:00:00Z","uri":"https://fedi.contoh.invalid/users/pengamat/statuses/113500000000000010/activity",
  "content":"","account":{"acct":"pengamat@lain.invalid"},"reblogs_count":0,"replies_count":0,"favourites_count":0,
  "reblog":{"id":"113499999999999990","created_at":"2026-11-19T22:00:00Z","uri":"https://lain.invalid/users/asal/statuses/9","url":"https://lain.invalid/@asal/9",
   "content":"<p>Kunjungan keluarga dibuka kembali.</p>","spoiler_text":"Info","account":{"acct":"asal@lain.invalid"},
   "reblogs_count":12,"replies_count":4,"favourites_count":30}},
 {"id":"9","created_at":"kemarin","uri":"https://fedi.contoh.invalid/x/9","content":"<p>Rusak</p>"}
]"#;

    #[test]
    fn statuses_are_read_with_counts_and_boosts_as_their_original() {
        let read = read("tag.json", TIMELINE);
        assert_read(&read, 2, &["created_at"]);
        let first = &read.items[0];
        assert_eq!(first.text, "Pelatihan menjahit di #lapas uji & pameran.");
        assert_eq!(first.source, "Mastodon @humas_uji");
        assert_eq!(
            first.engagement,
            Engagement {
                shares: Some(3),
                replies: Some(1),
                likes: Some(7),
                views: None
            }
        );
        let boosted = &read.items[1];
        assert_eq!(
            boosted.id,
            "mastodon:https://lain.invalid/users/asal/statuses/9"
        );
        assert_eq!(boosted.text, "Info. Kunjungan keluarga dibuka kembali.");
        assert_eq!(boosted.engagement.likes, Some(30));
        assert_eq!(read.newest.as_deref(), Some("113500000000000010"));
    }

    #[test]
    fn ids_compare_as_numbers_and_garbage_is_one_error() {
        assert!(newer_id("100", "99"));
        assert!(!newer_id("99", "100"));
        let read = read("x.json", "<html>rate limited</html>");
        assert_read(&read, 0, &["Mastodon timeline"]);
    }
}
