//! RSS 2.0 and Atom feeds, read into media items.
//!
//! RSS: each `<item>` gives `title`, `link`, `description` (or `content:encoded`), `pubDate`
//! (RFC 2822; `WIB`, `WITA` and `WIT` are read as +07:00, +08:00 and +09:00) or `dc:date`,
//! and `guid`. Atom: each `<entry>` gives `title`, `link href` (the `alternate` one),
//! `summary` or `content`, `published` or `updated` (RFC 3339) and `id`. The feed's own title
//! is the source. HTML in descriptions is reduced to its text. An entry without a title and
//! text, a link or id, or a readable date is reported by its number and skipped; a document
//! that is not XML is one error.

use crate::engine::MediaItem;
use crate::media::{is_social, InputError};
use pasopati_protocol::Timestamp;
use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Default)]
struct Entry {
    title: String,
    link: String,
    text: String,
    date: String,
    id: String,
}

/// Reads a feed document. `file` names it in errors.
pub fn read_feed(file: &str, xml: &str) -> (Vec<MediaItem>, Vec<InputError>) {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut entry: Option<Entry> = None;
    let mut entries = 0usize;
    let mut source = String::new();
    let mut text = String::new();
    let error = |line: usize, reason: String| InputError {
        file: file.to_owned(),
        line,
        reason,
    };
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                errors.push(error(
                    0,
                    format!(
                        "not a readable feed (XML error at byte {}: {e})",
                        reader.error_position()
                    ),
                ));
                break;
            }
        };
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if name == "item" || name == "entry" {
                    entry = Some(Entry::default());
                    entries += 1;
                }
                if name == "link" {
                    link_href(&e, entry.as_mut());
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(e) if e.local_name().as_ref() == b"link" => {
                link_href(&e, entry.as_mut());
            }
            Event::Text(t) => text.push_str(&t.xml_content().unwrap_or_default()),
            Event::CData(t) => text.push_str(&t.decode().unwrap_or_default()),
            Event::GeneralRef(r) => {
                let name = r.decode().unwrap_or_default();
                text.push_str(&resolve_entity(&name));
            }
            Event::End(_) => {
                let Some(name) = stack.pop() else { continue };
                let parent = stack.last().map(String::as_str).unwrap_or("");
                let value = text.trim().to_owned();
                match (&mut entry, name.as_str()) {
                    (Some(_), "item" | "entry") => {
                        if let Some(done) = entry.take() {
                            match finish(done, &source) {
                                Ok(item) => items.push(item),
                                Err(reason) => errors
                                    .push(error(entries, format!("entry {entries}: {reason}"))),
                            }
                        }
                    }
                    (Some(en), "title") => en.title = value,
                    (Some(en), "link") if en.link.is_empty() && !value.is_empty() => {
                        en.link = value
                    }
                    (Some(en), "description" | "summary") if en.text.is_empty() => en.text = value,
                    (Some(en), "encoded" | "content") => en.text = value,
                    (Some(en), "pubDate" | "published") => en.date = value,
                    (Some(en), "date" | "updated") if en.date.is_empty() => en.date = value,
                    (Some(en), "guid" | "id") => en.id = value,
                    (None, "title") if parent == "channel" || parent == "feed" => source = value,
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    errors.push(error(
                        entries,
                        format!(
                            "the feed ends inside <{open}> (a cut download?): {} entries read before the cut are kept, the one in progress is dropped; fetch the file again",
                            items.len()
                        ),
                    ));
                }
                break;
            }
            _ => {}
        }
    }
    (items, errors)
}

fn link_href(e: &quick_xml::events::BytesStart<'_>, entry: Option<&mut Entry>) {
    let Some(entry) = entry else { return };
    let attr = |name: &[u8]| {
        e.try_get_attribute(name)
            .ok()
            .flatten()
            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
    };
    let rel = attr(b"rel").unwrap_or_else(|| "alternate".into());
    if let Some(href) = attr(b"href") {
        if rel == "alternate" && entry.link.is_empty() {
            entry.link = href;
        }
    }
}

pub(crate) fn resolve_entity(name: &str) -> String {
    let decoded = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
    } else if let Some(dec) = name.strip_prefix('#') {
        dec.parse::<u32>().ok().and_then(char::from_u32)
    } else {
        match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => None,
        }
    };
    decoded.map_or_else(|| format!("&{name};"), |c| c.to_string())
}

fn finish(e: Entry, source: &str) -> Result<MediaItem, String> {
    let title = strip_html(&e.title);
    let text = strip_html(&e.text);
    if title.is_empty() && text.is_empty() {
        return Err("no title and no text".into());
    }
    let url = e.link.trim().to_owned();
    let id = if e.id.trim().is_empty() {
        url.clone()
    } else {
        e.id.trim().to_owned()
    };
    if id.is_empty() {
        return Err("no link and no id".into());
    }
    let published_at = parse_feed_date(&e.date)
        .ok_or_else(|| format!("the date `{}` is neither RFC 2822 nor RFC 3339", e.date))?;
    Ok(MediaItem {
        social: is_social(&url, source),
        id,
        url,
        source: source.to_owned(),
        title,
        text,
        published_at,
        engagement: Default::default(),
    })
}

/// Reads an RFC 3339 or RFC 2822 date, with Indonesian zone names.
pub fn parse_feed_date(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    if let Ok(ts) = Timestamp::parse_rfc3339(t) {
        return Some(ts);
    }
    let zoned = [
        (" WIB", " +0700"),
        (" WITA", " +0800"),
        (" WIT", " +0900"),
        (" UTC", " +0000"),
    ]
    .iter()
    .find_map(|(zone, offset)| t.strip_suffix(zone).map(|s| format!("{s}{offset}")))
    .unwrap_or_else(|| t.to_owned());
    time::OffsetDateTime::parse(&zoned, &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|d| Timestamp((d.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// The text of an HTML fragment: tags removed, entities of the common kind resolved,
/// whitespace collapsed.
pub fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&nbsp;", " ")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_feed_is_an_error_not_a_short_feed() {
        let xml = "<rss><channel><title>Contoh</title><item><title>Satu</title><link>https://contoh.invalid/1</link><pubDate>Mon, 02 Nov 2026 08:00:00 +0700</pubDate></item><item><title>Du";
        let (items, errors) = read_feed("f.xml", xml);
        assert_eq!(items.len(), 1);
        crate::media::assert_one_error(&errors, "ends inside");
    }

    #[test]
    fn rss_items_are_read_with_html_and_local_zones() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>Portal Contoh</title><link>https://portal.example</link>
<item><title>Dua Napi Kabur &amp; Dikejar</title>
<link>https://portal.example/berita/1?utm_source=rss</link>
<description><![CDATA[<p>Dua narapidana <b>Lapas Kelas IIA Bogor</b> kabur.</p>]]></description>
<pubDate>Mon, 02 Nov 2026 08:15:00 WIB</pubDate><guid>https://portal.example/berita/1</guid></item>
<item><title>Tanpa tanggal</title><link>https://portal.example/berita/2</link><pubDate>kemarin</pubDate></item>
<item><title>Remisi</title><link>https://portal.example/berita/3</link>
<description>Warga binaan menerima remisi &#8211; 30 orang.</description>
<pubDate>Tue, 03 Nov 2026 01:00:00 +0000</pubDate></item>
</channel></rss>"#;
        let (items, errors) = read_feed("feed.xml", xml);
        assert_eq!(items.len(), 2, "{errors:?}");
        assert_eq!(items[0].title, "Dua Napi Kabur & Dikejar");
        assert_eq!(items[0].text, "Dua narapidana Lapas Kelas IIA Bogor kabur.");
        assert_eq!(items[0].source, "Portal Contoh");
        assert_eq!(items[0].id, "https://portal.example/berita/1");
        assert_eq!(
            items[0].published_at,
            Timestamp::parse_rfc3339("2026-11-02T08:15:00+07:00").unwrap()
        );
        assert_eq!(
            items[1].text,
            "Warga binaan menerima remisi \u{2013} 30 orang."
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].reason.starts_with("entry 2:"), "{errors:?}");
    }

    #[test]
    fn atom_entries_are_read() {
        let xml = r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>Kanal Atom</title>
<entry><title>Razia Lapas Cipinang</title><id>tag:contoh,2026:1</id>
<link rel="alternate" href="https://atom.example/1"/><link rel="self" href="https://atom.example/1.xml"/>
<summary type="html">&lt;p&gt;Petugas menemukan 25 ponsel.&lt;/p&gt;</summary>
<published>2026-11-05T21:00:00+07:00</published></entry></feed>"#;
        let (items, errors) = read_feed("atom.xml", xml);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(items[0].url, "https://atom.example/1");
        assert_eq!(items[0].id, "tag:contoh,2026:1");
        assert_eq!(items[0].text, "Petugas menemukan 25 ponsel.");
        assert_eq!(items[0].source, "Kanal Atom");
    }

    #[test]
    fn garbage_is_one_error() {
        let (items, errors) = read_feed("x.xml", "<rss><channel><item><title>a</title></channel>");
        assert!(items.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}
