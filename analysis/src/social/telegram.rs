//! A public Telegram channel's preview page, `https://t.me/s/{channel}`: an HTML page with one
//! block per message, marked `data-post="{channel}/{number}"`, holding the text
//! (`js-message_text`), the views (`tgme_widget_message_views`, written `1.2K`) and the time
//! (`<time datetime="…">`). The channel's name comes from the page's `og:title`. Messages
//! without text (a photo alone, a service message such as "channel created") are passed over
//! without an error, since there is nothing in them to read.
//!
//! The page is HTML, not XML, so it is scanned for these markers rather than parsed; a page
//! without any `data-post` is one error (Telegram answers a private or missing channel with a
//! page that has none).

use super::{collect, html_text, parse_count, source_name, Engagement, Post, SocialRead};
use pasopati_protocol::Timestamp;

/// The value of attribute `name` in the first tag of `html` that has it, HTML-unescaped.
fn attribute_after<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("{name}=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(&html[start..start + end])
}

/// The content of the element whose opening tag holds `marker`, up to its closing `</div>`
/// (nested `div`s counted).
fn div_content<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let start = at + html[at..].find('>')? + 1;
    let mut depth = 1usize;
    let mut pos = start;
    while depth > 0 {
        let next_open = html[pos..].find("<div").map(|i| pos + i);
        let next_close = html[pos..].find("</div>").map(|i| pos + i)?;
        match next_open {
            Some(open) if open < next_close => {
                depth += 1;
                pos = open + 4;
            }
            _ => {
                depth -= 1;
                if depth == 0 {
                    return Some(&html[start..next_close]);
                }
                pos = next_close + 6;
            }
        }
    }
    None
}

/// The text of the element whose opening tag holds `marker`, up to the next `<`.
fn span_text<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let start = at + html[at..].find('>')? + 1;
    let end = html[start..].find('<')?;
    Some(&html[start..start + end])
}

/// Reads a channel page.
pub(super) fn read(file: &str, html: &str) -> SocialRead {
    let channel = html
        .find("property=\"og:title\"")
        .and_then(|at| attribute_after(&html[at..], "content"))
        .map(html_text)
        .unwrap_or_default();
    let source = source_name("Telegram", ": ", &channel);
    let mut starts: Vec<usize> = html.match_indices("data-post=\"").map(|(i, _)| i).collect();
    if starts.is_empty() {
        return SocialRead::failed(
            file,
            0,
            "the page holds no channel messages (`data-post`): is the channel public, and is the address https://t.me/s/<channel>?",
        );
    }
    starts.push(html.len());
    let mut posts = Vec::new();
    for pair in starts.windows(2) {
        let block = &html[pair[0]..pair[1]];
        let Some(text_html) = div_content(block, "js-message_text") else {
            continue;
        };
        posts.push(message(block, text_html, &source));
    }
    collect(file, posts)
}

fn message(block: &str, text_html: &str, source: &str) -> Result<Post, String> {
    let post = attribute_after(block, "data-post").unwrap_or_default();
    if !post.contains('/') {
        return Err(format!("`data-post` `{post}` is not channel/number"));
    }
    let date = block
        .find("<time")
        .and_then(|at| attribute_after(&block[at..], "datetime"))
        .ok_or("the message has no <time datetime>")?;
    let published_at = Timestamp::parse_rfc3339(date)
        .map_err(|_| format!("the time `{date}` is not an RFC 3339 time"))?;
    let views = span_text(block, "tgme_widget_message_views").and_then(parse_count);
    let (id, url) = (format!("telegram:{post}"), format!("https://t.me/{post}"));
    let text = html_text(text_html);
    let engagement = Engagement {
        views,
        ..Default::default()
    };
    Ok(Post::new(id, url, source.to_owned(), text, published_at).with(engagement))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::assert_read;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><meta property="og:title" content="Kanal Uji &amp; Berita"></head><body>
<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget_message js-widget_message" data-post="kanaluji/41">
 <div class="tgme_widget_message_bubble"><div class="tgme_widget_message_text js-message_text" dir="auto">Pameran karya <b>warga binaan</b><br/>dibuka hari ini.<div class="x">Tambahan</div></div>
 <div class="tgme_widget_message_footer"><div class="tgme_widget_message_info"><span class="tgme_widget_message_views">1.2K</span>
 <span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" href="https://t.me/kanaluji/41"><time datetime="2026-11-20T01:30:00+00:00" class="time">08:30</time></a></span></div></div></div></div></div>
<div class="tgme_widget_message_wrap"><div class="tgme_widget_message service_message" data-post="kanaluji/40"><div class="tgme_widget_message_service">Channel created</div></div></div>
<div class="tgme_widget_message_wrap"><div class="tgme_widget_message" data-post="kanaluji/42"><div class="tgme_widget_message_text js-message_text">Tanpa waktu</div></div></div>
</body></html>"#;

    #[test]
    fn messages_are_read_with_views_and_textless_ones_passed_over() {
        let read = read("t.html", PAGE);
        assert_read(&read, 1, &["<time"]);
        let m = &read.items[0];
        assert_eq!(m.id, "telegram:kanaluji/41");
        assert_eq!(m.url, "https://t.me/kanaluji/41");
        assert_eq!(m.source, "Telegram: Kanal Uji & Berita");
        assert_eq!(
            m.text,
            "Pameran karya warga binaan dibuka hari ini. Tambahan"
        );
        assert_eq!(m.engagement.views, Some(1200));
    }

    #[test]
    fn a_page_without_messages_is_one_error() {
        let read = read("t.html", "<html><body>Channel not found</body></html>");
        assert_read(&read, 0, &["public"]);
    }
}
