//! A YouTube channel's Atom feed (`https://www.youtube.com/feeds/videos.xml?channel_id=…`):
//! each `<entry>` gives `yt:videoId`, `title`, `link rel="alternate"`, `published` and a
//! `media:group` with `media:description` and `media:community`, whose
//! `media:statistics views` are the views and `media:starRating count` the likes. The feed's
//! `title` (the channel's name) is the source.

use super::{collect, error, rfc3339, source_name, Engagement, Post, SocialRead};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

#[derive(Default)]
struct Entry {
    video: String,
    id: String,
    title: String,
    link: String,
    description: String,
    published: String,
    views: Option<u64>,
    likes: Option<u64>,
}

fn attribute(e: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// Reads a channel feed.
pub(super) fn read(file: &str, xml: &str) -> SocialRead {
    let mut reader = Reader::from_str(xml);
    let mut posts = Vec::new();
    let mut entry: Option<Entry> = None;
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut channel = String::new();
    let mut failure = None;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                failure = Some(format!(
                    "not a readable YouTube feed (XML error at byte {}: {e})",
                    reader.error_position()
                ));
                break;
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let empty = matches!(event, Event::Empty(_));
                match (name.as_str(), entry.as_mut()) {
                    ("entry", _) => entry = Some(Entry::default()),
                    ("link", Some(en)) => {
                        let rel = attribute(e, b"rel").unwrap_or_else(|| "alternate".into());
                        if rel == "alternate" && en.link.is_empty() {
                            en.link = attribute(e, b"href").unwrap_or_default();
                        }
                    }
                    ("media:statistics", Some(en)) => {
                        en.views = attribute(e, b"views").and_then(|v| v.trim().parse().ok());
                    }
                    ("media:starRating", Some(en)) => {
                        en.likes = attribute(e, b"count").and_then(|v| v.trim().parse().ok());
                    }
                    _ => {}
                }
                if !empty {
                    stack.push(name);
                    text.clear();
                }
            }
            Event::Text(t) => text.push_str(&t.xml_content().unwrap_or_default()),
            Event::CData(t) => text.push_str(&t.decode().unwrap_or_default()),
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap_or_default();
                text.push_str(&crate::feed::resolve_entity(&name));
            }
            Event::End(_) => {
                let Some(name) = stack.pop() else { continue };
                let value = text.trim().to_owned();
                text.clear();
                match (name.as_str(), entry.as_mut()) {
                    ("entry", Some(_)) => {
                        if let Some(done) = entry.take() {
                            posts.push(finish(done, &channel));
                        }
                    }
                    ("yt:videoId", Some(en)) => en.video = value,
                    ("id", Some(en)) => en.id = value,
                    ("title", Some(en)) => en.title = value,
                    ("media:description", Some(en)) => en.description = value,
                    ("published", Some(en)) => en.published = value,
                    ("title", None) if stack.last().is_some_and(|p| p == "feed") => channel = value,
                    _ => {}
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    failure = Some(format!(
                        "the feed ends inside <{open}> (a cut download?); the entries before the cut are kept"
                    ));
                }
                break;
            }
            _ => {}
        }
    }
    let mut read = collect(file, posts);
    if let Some(reason) = failure {
        read.errors.push(error(file, 0, reason));
    }
    read
}

fn finish(e: Entry, channel: &str) -> Result<Post, String> {
    let video = if e.video.is_empty() {
        e.id.strip_prefix("yt:video:").unwrap_or(&e.id).to_owned()
    } else {
        e.video
    };
    if video.is_empty() {
        return Err("no yt:videoId and no id".into());
    }
    let published_at = rfc3339("published", &e.published)?;
    let url = if e.link.is_empty() {
        format!("https://www.youtube.com/watch?v={video}")
    } else {
        e.link
    };
    let id = format!("youtube:{video}");
    let source = source_name("YouTube", ": ", channel);
    Ok(Post::new(id, url, source, e.description, published_at)
        .titled(e.title)
        .with(Engagement {
            views: e.views,
            likes: e.likes,
            ..Default::default()
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::assert_read;

    const FEED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns:yt="http://www.youtube.com/xml/schemas/2015" xmlns:media="http://search.yahoo.com/mrss/" xmlns="http://www.w3.org/2005/Atom">
 <title>Kanal Uji Pemasyarakatan</title>
 <entry>
  <id>yt:video:AbCdEf12345</id>
  <yt:videoId>AbCdEf12345</yt:videoId>
  <title>Panen Sayur Warga Binaan</title>
  <link rel="alternate" href="https://www.youtube.com/watch?v=AbCdEf12345"/>
  <published>2026-11-20T02:00:00+00:00</published>
  <media:group>
   <media:title>Panen Sayur Warga Binaan</media:title>
   <media:description>Kebun pembinaan &amp; hasil panen.</media:description>
   <media:community>
    <media:starRating count="42" average="5.00" min="1" max="5"/>
    <media:statistics views="1234"/>
   </media:community>
  </media:group>
 </entry>
 <entry><id>yt:video:Rusak</id><title>Tanpa tanggal</title></entry>
</feed>"#;

    #[test]
    fn videos_are_read_with_views_and_ratings() {
        let read = read("yt.xml", FEED);
        assert_read(&read, 1, &["post 2:"]);
        let v = &read.items[0];
        assert_eq!(v.id, "youtube:AbCdEf12345");
        assert_eq!(v.source, "YouTube: Kanal Uji Pemasyarakatan");
        assert_eq!(v.text, "Kebun pembinaan & hasil panen.");
        assert!(v.social);
        assert_eq!(v.engagement.views, Some(1234));
        assert_eq!(v.engagement.likes, Some(42));
        assert_eq!(v.engagement.shares, None);
        assert!(read.errors[0].reason.starts_with("post 2:"));
    }

    #[test]
    fn a_cut_feed_keeps_what_came_before() {
        let marker = "<entry><id>yt:video:Rusak</id>";
        let cut = &FEED[..FEED.find(marker).unwrap_or(0) + marker.len()];
        let read = read("yt.xml", cut);
        assert_read(&read, 1, &["ends inside"]);
    }
}
