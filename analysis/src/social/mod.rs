//! Social media: the documents of sources with public, documented access, and the exports of
//! platforms and social-listening tools, read into media items with `social: true` and their
//! [`Engagement`]. Pure, like the rest of the crate: each reader takes a document's text and
//! returns items and errors; fetching and storing are the collector's.
//!
//! * `youtube.rs`: a channel's Atom feed (`/feeds/videos.xml?channel_id=…`) with
//!   `media:statistics views` and `media:starRating count`.
//! * `mastodon.rs`: the JSON of `/api/v1/timelines/tag/{tag}` and
//!   `/api/v1/accounts/{id}/statuses`.
//! * `bluesky.rs`: the JSON of `app.bsky.feed.searchPosts`.
//! * `telegram.rs`: a public channel's preview page `https://t.me/s/{channel}`.
//! * `exports.rs`: an X archive's `tweets.js`, and the JSON that Instagram, Facebook and
//!   TikTok give account holders when they download their data.
//! * `listening.rs`: the CSV of a social-listening tool (or of Meta Business Suite), with a
//!   header whose common column names are mapped.
//!
//! Every item's id starts with its network (`youtube:`, `mastodon:`, `bluesky:`, `telegram:`,
//! `x:`, `instagram:`, `facebook:`, `tiktok:`, `listening:`), so that two networks' numbers
//! never collide in the store.

mod bluesky;
mod exports;
mod listening;
mod mastodon;
mod telegram;
mod youtube;

use crate::engine::MediaItem;
use crate::media::InputError;
use pasopati_protocol::Timestamp;
use serde::{Deserialize, Serialize};

/// How people reacted to a post, as far as its source tells. `None` is "not given by this
/// source", which is not the same as zero.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    bincode::Encode,
    bincode::Decode,
    Serialize,
    Deserialize,
)]
#[serde(default)]
pub struct Engagement {
    /// Reposts, reblogs, retweets, shares and quotes.
    pub shares: Option<u64>,
    /// Replies and comments.
    pub replies: Option<u64>,
    /// Likes, favourites, reactions and star ratings.
    pub likes: Option<u64>,
    /// Views, plays and impressions.
    pub views: Option<u64>,
}

/// The most a single post weighs in a social spike: as much as four posts nobody reacted to.
pub const MAX_WEIGHT: f64 = 4.0;

impl Engagement {
    /// Whether the source gave any figure at all.
    pub fn is_known(&self) -> bool {
        self.shares.is_some()
            || self.replies.is_some()
            || self.likes.is_some()
            || self.views.is_some()
    }

    /// The reactions and a hundredth of the views: `shares + replies + likes + views / 100`.
    /// A share, a reply and a like each count as one reaction, and a hundred views as one,
    /// since looking costs a reader far less than answering.
    pub fn reach(&self) -> u64 {
        let reactions = self
            .shares
            .unwrap_or(0)
            .saturating_add(self.replies.unwrap_or(0))
            .saturating_add(self.likes.unwrap_or(0));
        reactions.saturating_add(self.views.unwrap_or(0) / 100)
    }

    /// How much the post weighs in a social spike: `1 + log10(1 + reach)`, at most
    /// [`MAX_WEIGHT`]. A post nobody reacted to weighs 1 (as every post did before engagement
    /// was known), one with 9 reactions 2, with 99 reactions 3, with 999 or more 4; the
    /// logarithm keeps one viral post from outweighing many ordinary ones.
    pub fn weight(&self) -> f64 {
        (1.0 + (1.0 + self.reach() as f64).log10()).min(MAX_WEIGHT)
    }
}

/// The formats read here, by the names the command line and collector.toml use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocialFormat {
    YouTube,
    Mastodon,
    Bluesky,
    Telegram,
    X,
    Instagram,
    Facebook,
    TikTok,
    ListeningCsv,
}

impl SocialFormat {
    /// Every format, with its name.
    pub const ALL: [(SocialFormat, &'static str); 9] = [
        (SocialFormat::YouTube, "youtube"),
        (SocialFormat::Mastodon, "mastodon"),
        (SocialFormat::Bluesky, "bluesky"),
        (SocialFormat::Telegram, "telegram"),
        (SocialFormat::X, "x"),
        (SocialFormat::Instagram, "instagram"),
        (SocialFormat::Facebook, "facebook"),
        (SocialFormat::TikTok, "tiktok"),
        (SocialFormat::ListeningCsv, "listening-csv"),
    ];

    /// The format's name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("", |(_, n)| n)
    }

    /// The format of a name, or an error listing the names there are.
    pub fn parse(name: &str) -> Result<SocialFormat, String> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
                format!(
                    "unknown social format `{name}`; the formats are {}",
                    names.join(", ")
                )
            })
    }
}

/// What a document gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SocialRead {
    pub items: Vec<MediaItem>,
    /// Posts or rows that could not be read, by number; the rest is kept.
    pub errors: Vec<InputError>,
    /// The newest post's id (Mastodon) or time (Bluesky), so that the next poll asks only for
    /// newer posts; `None` when the document held none or the source has no such parameter.
    pub newest: Option<String>,
}

impl SocialRead {
    /// A read that gave no items, only one error about the whole document (or its header at
    /// `line`).
    fn failed(file: &str, line: usize, reason: impl Into<String>) -> SocialRead {
        SocialRead {
            errors: vec![error(file, line, reason)],
            ..Default::default()
        }
    }
}

/// Reads a document of `format`; `file` names it in errors.
pub fn read(format: SocialFormat, file: &str, text: &str) -> SocialRead {
    match format {
        SocialFormat::YouTube => youtube::read(file, text),
        SocialFormat::Mastodon => mastodon::read(file, text),
        SocialFormat::Bluesky => bluesky::read(file, text),
        SocialFormat::Telegram => telegram::read(file, text),
        SocialFormat::X => exports::read_x(file, text),
        SocialFormat::Instagram => exports::read_instagram(file, text),
        SocialFormat::Facebook => exports::read_facebook(file, text),
        SocialFormat::TikTok => exports::read_tiktok(file, text),
        SocialFormat::ListeningCsv => listening::read(file, text),
    }
}

/// The parts of a post every reader fills.
struct Post {
    id: String,
    url: String,
    source: String,
    title: String,
    text: String,
    published_at: Timestamp,
    engagement: Engagement,
}

impl Post {
    /// A post without a title, and with no engagement until [`Post::with`] gives it.
    fn new(id: String, url: String, source: String, text: String, published_at: Timestamp) -> Post {
        Post {
            id,
            url,
            source,
            title: String::new(),
            text,
            published_at,
            engagement: Engagement::default(),
        }
    }

    /// The post with a title (a video's, or a listening tool's headline).
    fn titled(self, title: String) -> Post {
        Post { title, ..self }
    }

    /// The post with the engagement its source gave.
    fn with(self, engagement: Engagement) -> Post {
        Post { engagement, ..self }
    }

    /// The media item of a post, or why there is none.
    fn into_item(self) -> Result<MediaItem, String> {
        if self.id.trim().is_empty() {
            return Err("the post has no id".into());
        }
        if self.title.trim().is_empty() && self.text.trim().is_empty() {
            return Err("the post has no text".into());
        }
        Ok(MediaItem {
            id: self.id,
            url: self.url,
            source: self.source,
            title: self.title,
            text: self.text,
            published_at: self.published_at,
            social: true,
            engagement: self.engagement,
        })
    }
}

/// An error of `file` at `line` (a post's or row's number; 0 for the whole document).
fn error(file: &str, line: usize, reason: impl Into<String>) -> InputError {
    InputError {
        file: file.to_owned(),
        line,
        reason: reason.into(),
    }
}

/// Collects posts into a [`SocialRead`]: each `Ok` post becomes an item, each failure an error
/// naming the post's number (1-based).
fn collect(file: &str, posts: Vec<Result<Post, String>>) -> SocialRead {
    let mut read = SocialRead::default();
    for (n, post) in posts.into_iter().enumerate() {
        match post.and_then(Post::into_item) {
            Ok(item) => read.items.push(item),
            Err(reason) => {
                read.errors
                    .push(error(file, n + 1, format!("post {}: {reason}", n + 1)))
            }
        }
    }
    read
}

/// A post's source: the network's name alone, or followed by `separator` and the channel or
/// account when there is one (`YouTube: Kanal`, `Mastodon @akun`).
fn source_name(network: &str, separator: &str, name: &str) -> String {
    if name.is_empty() {
        network.to_owned()
    } else {
        format!("{network}{separator}{name}")
    }
}

/// The RFC 3339 time in field `field`, or the error naming the field and its value.
fn rfc3339(field: &str, value: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(value)
        .map_err(|_| format!("`{field}` `{value}` is not an RFC 3339 time"))
}

/// Asserts that `read` gave `items` items and, in order, one error holding each of `errors`.
#[cfg(test)]
fn assert_read(read: &SocialRead, items: usize, errors: &[&str]) {
    assert_eq!(read.items.len(), items, "{:?}", read.errors);
    assert_eq!(read.errors.len(), errors.len(), "{:?}", read.errors);
    for (error, part) in read.errors.iter().zip(errors) {
        assert!(error.reason.contains(part), "{part}: {:?}", read.errors);
    }
}

/// A timestamp from Unix seconds.
fn from_unix_seconds(seconds: i64) -> Option<Timestamp> {
    seconds.checked_mul(1000).map(Timestamp)
}

/// Repairs the text of Meta's data downloads (Instagram, Facebook), which write each byte of
/// the UTF-8 text as its own `\u00XX` escape, so that `é` arrives as `Ã©`. A text whose
/// characters are all below U+0100 and whose bytes are valid UTF-8 is decoded again; any
/// other text is left as it is.
pub fn repair_meta_text(text: &str) -> String {
    if text.is_ascii() || text.chars().any(|c| u32::from(c) > 0xFF) {
        return text.to_owned();
    }
    let bytes: Vec<u8> = text.chars().map(|c| u32::from(c) as u8).collect();
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_owned())
}

/// A count as pages and exports write it: `1234`, `1,234`, `1.234`, `1.2K`, `3,4 rb`, `2M`,
/// `1,5 jt`. `None` when it is not a count.
pub fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim().to_lowercase().replace(' ', "");
    if t.is_empty() {
        return None;
    }
    let (number, factor) = [
        ("rb", 1_000.0),
        ("jt", 1_000_000.0),
        ("k", 1_000.0),
        ("m", 1_000_000.0),
        ("b", 1_000_000_000.0),
    ]
    .iter()
    .find_map(|(suffix, f)| t.strip_suffix(suffix).map(|n| (n.to_owned(), *f)))
    .unwrap_or((t.clone(), 1.0));
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    {
        return None;
    }
    if factor == 1.0 {
        // Without a suffix, dots and commas group thousands.
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        return digits.parse().ok();
    }
    // With a suffix, one dot or comma is the decimal mark.
    let value: f64 = number.replace(',', ".").parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * factor).round() as u64)
}

/// A count given as a JSON number or a string holding one (exports write both).
fn json_count(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => parse_count(s),
        _ => None,
    }
}

/// A short stable hash of a text, for posts that come without an id (Meta's exports).
fn short_hash(text: &str) -> String {
    format!("{:016x}", crate::text::hash64(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorded documents of `tests/fixtures/social/`, each with its format, the items it
    /// must give and the errors it must report.
    #[test]
    fn every_fixture_reads_as_recorded() {
        macro_rules! fixture {
            ($name:literal) => {
                (
                    $name,
                    include_str!(concat!("../../../tests/fixtures/social/", $name)),
                )
            };
        }
        let cases = [
            (SocialFormat::YouTube, fixture!("youtube.xml"), 2, 0),
            (SocialFormat::Mastodon, fixture!("mastodon_tag.json"), 2, 0),
            (SocialFormat::Bluesky, fixture!("bluesky_search.json"), 2, 0),
            (SocialFormat::Telegram, fixture!("telegram.html"), 2, 0),
            (SocialFormat::X, fixture!("tweets.js"), 2, 0),
            (
                SocialFormat::Instagram,
                fixture!("instagram_posts_1.json"),
                2,
                0,
            ),
            (
                SocialFormat::Facebook,
                fixture!("facebook_your_posts_1.json"),
                2,
                0,
            ),
            (
                SocialFormat::TikTok,
                fixture!("user_data_tiktok.json"),
                2,
                0,
            ),
            (SocialFormat::ListeningCsv, fixture!("listening.csv"), 2, 1),
            (
                SocialFormat::ListeningCsv,
                fixture!("listening_no_text.csv"),
                0,
                1,
            ),
        ];
        for (format, (name, text), items, errors) in cases {
            let read = read(format, name, text);
            assert_eq!(
                (read.items.len(), read.errors.len()),
                (items, errors),
                "{name}: {:?}",
                read.errors
            );
            for item in &read.items {
                let prefix = if format == SocialFormat::ListeningCsv {
                    "listening"
                } else {
                    format.name()
                };
                assert!(
                    item.id.starts_with(&format!("{prefix}:")),
                    "{name}: {}",
                    item.id
                );
                assert!(!item.text.is_empty(), "{name}: {}", item.id);
            }
        }
        let ig = read(
            SocialFormat::Instagram,
            "ig",
            include_str!("../../../tests/fixtures/social/instagram_posts_1.json"),
        );
        assert_eq!(
            ig.items[0].text,
            "Kegiatan pramuka di lapas uji — semangat kebersamaan ✨"
        );
    }

    #[test]
    fn engagement_weighs_logarithmically_and_is_capped() {
        let none = Engagement::default();
        assert_eq!(none.weight(), 1.0);
        let some = Engagement {
            shares: Some(4),
            replies: Some(2),
            likes: Some(3),
            views: None,
        };
        assert_eq!(some.reach(), 9);
        assert!((some.weight() - 2.0).abs() < 1e-9);
        let viral = Engagement {
            views: Some(50_000_000),
            ..Default::default()
        };
        assert_eq!(viral.weight(), MAX_WEIGHT);
    }

    #[test]
    fn counts_are_read_as_pages_write_them() {
        for (text, n) in [
            ("1234", Some(1234)),
            ("1,234", Some(1234)),
            ("1.234", Some(1234)),
            ("1.2K", Some(1200)),
            ("3,4 rb", Some(3400)),
            ("2M", Some(2_000_000)),
            ("1,5 jt", Some(1_500_000)),
            ("", None),
            ("banyak", None),
            ("-3", None),
        ] {
            assert_eq!(parse_count(text), n, "{text}");
        }
    }

    #[test]
    fn meta_text_is_repaired_and_other_text_kept() {
        for (text, repaired) in [
            ("Kegiatan \u{c3}\u{a9}", "Kegiatan é"),
            ("Biasa saja", "Biasa saja"),
            ("Kafé ☕", "Kafé ☕"),
            // Latin-1 text that is not UTF-8 read byte by byte stays as it was.
            ("café", "café"),
        ] {
            assert_eq!(repair_meta_text(text), repaired, "{text}");
        }
    }

    #[test]
    fn formats_are_named_and_unknown_names_list_the_others() {
        for (format, name) in SocialFormat::ALL {
            assert_eq!(SocialFormat::parse(name), Ok(format));
            assert_eq!(format.name(), name);
        }
        let refused = SocialFormat::parse("myspace").unwrap_err();
        assert!(refused.contains("listening-csv"), "{refused}");
    }
}

/// The text of a post's HTML: tags removed (block tags such as `p`, `br`, `div` and `li`
/// become a space, inline ones such as `a`, `span` and `b` nothing, so `#<span>lapas</span>`
/// stays `#lapas`), entities resolved, whitespace collapsed.
pub fn html_text(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "p",
        "br",
        "div",
        "li",
        "ul",
        "ol",
        "blockquote",
        "tr",
        "td",
        "h1",
        "h2",
        "h3",
        "h4",
    ];
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find(['<', '&']) {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        if let Some(entity) = tail.strip_prefix('&') {
            match entity.find(';').filter(|&end| end > 0 && end <= 10) {
                Some(end) => {
                    out.push_str(&crate::feed::resolve_entity(&entity[..end]));
                    rest = &entity[end + 1..];
                }
                None => {
                    out.push('&');
                    rest = entity;
                }
            }
            continue;
        }
        let Some(close) = tail.find('>') else {
            // An unclosed tag: the rest is not text.
            rest = "";
            break;
        };
        let name: String = tail[1..close]
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if BLOCKS.contains(&name.as_str()) {
            out.push(' ');
        }
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod html_tests {
    use super::html_text;

    #[test]
    fn block_tags_separate_and_inline_tags_join() {
        assert_eq!(
            html_text("<p>Satu<br>dua <a href=\"x\">#<span>lapas</span></a> &amp; &#8211; &lt;3</p><p>Tiga</p>"),
            "Satu dua #lapas & \u{2013} <3 Tiga"
        );
        assert_eq!(html_text("A & B <b"), "A & B");
    }
}
