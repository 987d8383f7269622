//! Bluesky: the JSON that `app.bsky.feed.searchPosts` answers (`{"posts": [...], "cursor"}`).
//! Each post gives `uri` (`at://did/app.bsky.feed.post/rkey`), `author.handle`,
//! `record.text`, `record.createdAt`, `indexedAt`, `repostCount`, `quoteCount`, `replyCount`
//! and `likeCount`. Reposts and quotes both count as shares. The link is the post's page on
//! bsky.app. Fields not named here are ignored.
//!
//! The newest `indexedAt` is returned, so that the next poll passes it as `since` and gets
//! only newer posts.

use super::{collect, rfc3339, Engagement, Post, SocialRead};
use pasopati_protocol::Timestamp;
use serde::Deserialize;

#[derive(Deserialize)]
struct Answer {
    posts: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostView {
    uri: String,
    author: Author,
    record: Record,
    #[serde(default)]
    indexed_at: String,
    #[serde(default)]
    reply_count: Option<u64>,
    #[serde(default)]
    repost_count: Option<u64>,
    #[serde(default)]
    quote_count: Option<u64>,
    #[serde(default)]
    like_count: Option<u64>,
}

#[derive(Deserialize)]
struct Author {
    handle: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(default)]
    text: String,
    #[serde(default)]
    created_at: String,
}

/// Reads a search answer.
pub(super) fn read(file: &str, json: &str) -> SocialRead {
    let answer: Answer = match serde_json::from_str(json) {
        Ok(a) => a,
        Err(e) => {
            return SocialRead::failed(
                file,
                0,
                format!("not a Bluesky searchPosts answer (an object with `posts`): {e}"),
            )
        }
    };
    let mut newest: Option<(Timestamp, String)> = None;
    let mut posts = Vec::new();
    for value in answer.posts {
        let post = match serde_json::from_value::<PostView>(value) {
            Ok(p) => p,
            Err(e) => {
                posts.push(Err(format!("not a post view: {e}")));
                continue;
            }
        };
        if let Ok(indexed) = Timestamp::parse_rfc3339(&post.indexed_at) {
            if newest.as_ref().is_none_or(|(t, _)| indexed > *t) {
                newest = Some((indexed, post.indexed_at.clone()));
            }
        }
        posts.push(finish(post));
    }
    let mut read = collect(file, posts);
    read.newest = newest.map(|(_, text)| text);
    read
}

fn finish(p: PostView) -> Result<Post, String> {
    // The author's own time; the index's when the record has none.
    let date = if p.record.created_at.is_empty() {
        &p.indexed_at
    } else {
        &p.record.created_at
    };
    let published_at = rfc3339("createdAt", date)?;
    let rkey = p
        .uri
        .strip_prefix("at://")
        .and_then(|rest| rest.rsplit('/').next())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("`uri` `{}` is not an at:// post address", p.uri))?;
    let shares = match (p.repost_count, p.quote_count) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    };
    let handle = &p.author.handle;
    let url = format!("https://bsky.app/profile/{handle}/post/{rkey}");
    let source = format!("Bluesky @{handle}");
    let text = p.record.text.trim().to_owned();
    let engagement = Engagement {
        shares,
        replies: p.reply_count,
        likes: p.like_count,
        views: None,
    };
    let id = format!("bluesky:{}", p.uri);
    Ok(Post::new(id, url, source, text, published_at).with(engagement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::assert_read;

    #[test]
    fn posts_are_read_with_counts_and_the_newest_index_time() {
        let json = r#"{"cursor":"25","hitsTotal":3,"posts":[
 {"uri":"at://did:plc:ujicoba1/app.bsky.feed.post/3lujiabc","cid":"bafy","author":{"did":"did:plc:ujicoba1","handle":"pemantau-uji.bsky.social","displayName":"Pemantau Uji"},
  "record":{"$type":"app.bsky.feed.post","text":"Antrean kunjungan rutan uji panjang pagi ini.","createdAt":"2026-11-20T01:00:00.000Z","langs":["id"]},
  "replyCount":2,"repostCount":5,"likeCount":11,"quoteCount":1,"indexedAt":"2026-11-20T01:00:02.500Z"},
 {"uri":"at://did:plc:ujicoba2/app.bsky.feed.post/3lujidef","author":{"handle":"lain-uji.bsky.social"},
  "record":{"text":"Kabar kedua","createdAt":"2026-11-20T02:00:00Z"},"indexedAt":"2026-11-20T02:00:01Z"},
 {"uri":"bukan-at","author":{"handle":"h.bsky.social"},"record":{"text":"x","createdAt":"2026-11-20T02:00:00Z"},"indexedAt":"2026-11-20T00:00:00Z"}
]}"#;
        let read = read("bsky.json", json);
        assert_read(&read, 2, &["at://"]);
        let first = &read.items[0];
        assert_eq!(
            first.url,
            "https://bsky.app/profile/pemantau-uji.bsky.social/post/3lujiabc"
        );
        assert_eq!(first.engagement.shares, Some(6));
        assert_eq!(first.engagement.replies, Some(2));
        assert_eq!(first.engagement.likes, Some(11));
        assert_eq!(read.items[1].engagement, Engagement::default());
        assert_eq!(read.newest.as_deref(), Some("2026-11-20T02:00:01Z"));
    }
}
