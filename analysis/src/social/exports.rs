//! The data that platforms give account holders when they download their own data:
//!
//! * X (Twitter) archive, `data/tweets.js`: `window.YTD.tweets.part0 = [{"tweet": {…}}, …]`,
//!   each tweet with `id_str`, `full_text`, `created_at` (`Wed Nov 20 01:00:00 +0000 2026`),
//!   `retweet_count` and `favorite_count` (written as strings). Archives carry no reply or
//!   view counts.
//! * Instagram, `your_instagram_activity/content/posts_1.json`: an array of posts with
//!   `creation_timestamp` (Unix seconds) and `title` (the caption), or a `media` array whose
//!   first entry has them. No link and no counts: the id is made from the time and the text.
//! * Facebook, `your_facebook_activity/posts/your_posts_1.json`: an array of posts with
//!   `timestamp` (Unix seconds), `data: [{"post": text}]` and, when the post shared a link,
//!   `attachments[].data[].external_context.url`. No counts.
//! * TikTok, `user_data_tiktok.json`: `Video.Videos.VideoList` (older downloads:
//!   `Post.Posts.VideoList`), each with `Date` (`2026-11-20 01:00:00`, UTC), `Link`, `Likes`
//!   and `Title`.
//!
//! Meta's downloads write text byte by byte (`\u00c3\u00a9` for `é`); it is repaired with
//! [`super::repair_meta_text`].

use super::{
    collect, from_unix_seconds, json_count, repair_meta_text, short_hash, Engagement, Post,
    SocialRead,
};
use crate::feed::parse_feed_date;
use pasopati_protocol::Timestamp;
use serde_json::Value;

fn not_json(file: &str, what: &str, e: impl std::fmt::Display) -> SocialRead {
    SocialRead::failed(file, 0, format!("not {what}: {e}"))
}

/// Reads an X archive's `tweets.js` (or the same array as plain JSON).
pub(super) fn read_x(file: &str, text: &str) -> SocialRead {
    // The archive assigns the array to a variable so a browser can load it; the JSON starts
    // at the first `[`.
    let json = match text.find('[') {
        Some(at) => &text[at..],
        None => return not_json(file, "an X archive's tweets.js (no `[` found)", "empty"),
    };
    let entries: Vec<Value> = match serde_json::from_str(json.trim_end().trim_end_matches(';')) {
        Ok(v) => v,
        Err(e) => return not_json(file, "an X archive's tweets.js", e),
    };
    let posts = entries
        .iter()
        .map(|entry| {
            let tweet = entry.get("tweet").unwrap_or(entry);
            let id = tweet["id_str"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| tweet["id"].as_u64().map(|n| n.to_string()))
                .or_else(|| tweet["id"].as_str().map(str::to_owned))
                .ok_or("the tweet has no `id_str`")?;
            let text = tweet["full_text"]
                .as_str()
                .or_else(|| tweet["text"].as_str())
                .unwrap_or_default();
            let date = tweet["created_at"].as_str().unwrap_or_default();
            let published_at = parse_x_date(date)
                .ok_or_else(|| format!("`created_at` `{date}` is not an X archive time"))?;
            let url = format!("https://x.com/i/status/{id}");
            let text = text.trim().to_owned();
            let engagement = Engagement {
                shares: json_count(tweet.get("retweet_count")),
                likes: json_count(tweet.get("favorite_count")),
                replies: json_count(tweet.get("reply_count")),
                views: None,
            };
            let id = format!("x:{id}");
            Ok(Post::new(id, url, "X".into(), text, published_at).with(engagement))
        })
        .collect();
    collect(file, posts)
}

/// An X archive time, `Wed Nov 20 01:00:00 +0000 2026`.
fn parse_x_date(text: &str) -> Option<Timestamp> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [weekday, month, day, clock, offset, year] = parts.as_slice() else {
        return None;
    };
    parse_feed_date(&format!("{weekday}, {day} {month} {year} {clock} {offset}"))
}

/// Reads Instagram's `posts_1.json`.
pub(super) fn read_instagram(file: &str, text: &str) -> SocialRead {
    let entries: Vec<Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return not_json(file, "Instagram's posts_1.json (a JSON array of posts)", e),
    };
    let posts = entries
        .iter()
        .map(|post| {
            let first_media = post["media"].get(0).unwrap_or(&Value::Null);
            let caption = post["title"]
                .as_str()
                .filter(|t| !t.is_empty())
                .or_else(|| first_media["title"].as_str())
                .map(repair_meta_text)
                .unwrap_or_default();
            let seconds = post["creation_timestamp"]
                .as_i64()
                .or_else(|| first_media["creation_timestamp"].as_i64())
                .ok_or("the post has no `creation_timestamp`")?;
            let published_at =
                from_unix_seconds(seconds).ok_or("`creation_timestamp` is out of range")?;
            let id = format!("instagram:{seconds}:{}", short_hash(&caption));
            let (url, text) = (String::new(), caption.trim().to_owned());
            Ok(Post::new(id, url, "Instagram".into(), text, published_at))
        })
        .collect();
    collect(file, posts)
}

/// Reads Facebook's `your_posts_1.json`.
pub(super) fn read_facebook(file: &str, text: &str) -> SocialRead {
    let entries: Vec<Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return not_json(
                file,
                "Facebook's your_posts_1.json (a JSON array of posts)",
                e,
            )
        }
    };
    let posts = entries
        .iter()
        .map(|post| {
            let seconds = post["timestamp"]
                .as_i64()
                .ok_or("the post has no `timestamp`")?;
            let published_at = from_unix_seconds(seconds).ok_or("`timestamp` is out of range")?;
            let body: Vec<String> = post["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["post"].as_str())
                .map(repair_meta_text)
                .collect();
            let body = body.join("\n");
            let link = post["attachments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["data"].as_array().into_iter().flatten())
                .find_map(|d| d["external_context"]["url"].as_str())
                .unwrap_or_default();
            let id = format!("facebook:{seconds}:{}", short_hash(&body));
            let (url, text) = (link.to_owned(), body.trim().to_owned());
            Ok(Post::new(id, url, "Facebook".into(), text, published_at))
        })
        .collect();
    collect(file, posts)
}

/// Reads TikTok's `user_data_tiktok.json` (its list of the account's videos).
pub(super) fn read_tiktok(file: &str, text: &str) -> SocialRead {
    let data: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return not_json(file, "TikTok's user_data_tiktok.json", e),
    };
    let list = data
        .pointer("/Video/Videos/VideoList")
        .or_else(|| data.pointer("/Post/Posts/VideoList"))
        .and_then(Value::as_array);
    let Some(list) = list else {
        return SocialRead::failed(
            file,
            0,
            "no video list (`Video.Videos.VideoList` or `Post.Posts.VideoList`): is this TikTok's user_data_tiktok.json in JSON format?",
        );
    };
    let posts = list
        .iter()
        .map(|video| {
            let link = video["Link"].as_str().unwrap_or_default().trim().to_owned();
            if link.is_empty() {
                return Err("the video has no `Link`".to_owned());
            }
            let date = video["Date"].as_str().unwrap_or_default();
            let published_at =
                Timestamp::parse_rfc3339(&format!("{}Z", date.trim().replace(' ', "T")))
                    .map_err(|_| format!("`Date` `{date}` is not `YYYY-MM-DD HH:MM:SS`"))?;
            let title = video["Title"]
                .as_str()
                .or_else(|| video["Description"].as_str())
                .unwrap_or_default();
            let id = format!("tiktok:{link}");
            let text = title.trim().to_owned();
            let engagement = Engagement {
                likes: json_count(video.get("Likes")),
                ..Default::default()
            };
            Ok(Post::new(id, link, "TikTok".into(), text, published_at).with(engagement))
        })
        .collect();
    collect(file, posts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::assert_read;

    #[test]
    fn an_x_archive_is_read_with_its_string_counts() {
        let js = r#"window.YTD.tweets.part0 = [
  {"tweet":{"id_str":"1860000000000000001","full_text":"Donor darah bersama petugas rutan uji.","created_at":"Fri Nov 20 01:00:00 +0000 2026","retweet_count":"4","favorite_count":"15","lang":"in"}},
  {"tweet":{"id_str":"1860000000000000002","full_text":"Rusak","created_at":"kemarin"}}
]"#;
        let read = read_x("tweets.js", js);
        assert_read(&read, 1, &["created_at"]);
        let t = &read.items[0];
        assert_eq!(t.id, "x:1860000000000000001");
        assert_eq!(t.url, "https://x.com/i/status/1860000000000000001");
        assert_eq!(
            t.published_at,
            Timestamp::parse_rfc3339("2026-11-20T01:00:00Z").unwrap()
        );
        assert_eq!(t.engagement.shares, Some(4));
        assert_eq!(t.engagement.likes, Some(15));
    }

    #[test]
    fn meta_exports_are_read_and_repaired() {
        let ig = r#"[{"media":[{"uri":"media/posts/202611/a.jpg","creation_timestamp":1795650000,"title":"Kegiatan pramuka \u00c3\u00a9 di lapas uji"}],"title":"","creation_timestamp":1795650000},
                     {"title":"Tanpa waktu"}]"#;
        let read = read_instagram("posts_1.json", ig);
        assert_read(&read, 1, &["creation_timestamp"]);
        assert_eq!(read.items[0].text, "Kegiatan pramuka é di lapas uji");
        assert!(read.items[0].id.starts_with("instagram:1795650000:"));

        let fb = r#"[{"timestamp":1795650000,"data":[{"post":"Bakti sosial petugas uji."}],"attachments":[{"data":[{"external_context":{"url":"https://berita.contoh.invalid/a"}}]}],"title":"Akun Uji updated status."}]"#;
        let read = read_facebook("your_posts_1.json", fb);
        assert_read(&read, 1, &[]);
        assert_eq!(read.items[0].url, "https://berita.contoh.invalid/a");
        assert_eq!(read.items[0].text, "Bakti sosial petugas uji.");
    }

    #[test]
    fn a_tiktok_download_is_read_from_either_list() {
        for path in [("Video", "Videos"), ("Post", "Posts")] {
            let json = format!(
                r#"{{"{}":{{"{}":{{"VideoList":[{{"Date":"2026-11-20 01:00:00","Link":"https://www.tiktokv.com/share/video/7400000000000000001/","Likes":"2.5K","Title":"Senam pagi"}}]}}}}}}"#,
                path.0, path.1
            );
            let read = read_tiktok("user_data_tiktok.json", &json);
            assert_read(&read, 1, &[]);
            assert_eq!(read.items[0].engagement.likes, Some(2500));
            assert_eq!(read.items[0].text, "Senam pagi");
        }
        let read = read_tiktok("user_data_tiktok.json", "{}");
        assert_read(&read, 0, &["VideoList"]);
    }
}
