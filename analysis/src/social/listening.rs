//! The CSV exports of social-listening tools, and of platforms' own analytics (Meta Business
//! Suite, YouTube Studio and the like), with a header row. Commas, semicolons or tabs are found
//! from the header; a UTF-8 byte-order mark is skipped.
//!
//! Columns are recognised by their common names, in English and Indonesian, whatever their
//! case, spaces or underscores (`Post URL`, `post_url`):
//!
//! | field | column names |
//! |---|---|
//! | text (required, or title) | text, content, message, post, caption, description, snippet, full text, mention, teks, isi |
//! | date (required) | date, published, published at, published date, publish date, publish time, created at, timestamp, time, post date, tanggal, waktu |
//! | id | id, post id, tweet id, mention id, content id |
//! | url | url, link, permalink, post url, post link, tautan |
//! | title | title, headline, judul |
//! | platform | platform, network, source, channel, site, sumber |
//! | author | author, username, user, handle, screen name, account, page name, akun |
//! | shares | shares, retweets, reposts, quotes, share count, dibagikan |
//! | replies | replies, comments, comment count, reply count, komentar, balasan |
//! | likes | likes, favorites, favourites, reactions, like count, suka |
//! | views | views, impressions, reach, video views, plays, tayangan, jangkauan |
//!
//! Other columns (sentiment scores, follower counts, countries…) are ignored; a header with
//! no text column or no date column is refused, naming line 1, the columns it has and the
//! names accepted, so that a file is never imported without its text. The first of two
//! columns for one field is used. A row whose date or count cannot be read is an error naming
//! its line and column; the others are imported.
//!
//! Dates: RFC 3339, RFC 2822, `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD` (without a zone, in WIB,
//! the media center's time), or Unix seconds. A date with slashes is refused: `03/04/2026` is
//! April in one tool and March in another.
//!
//! A row whose platform names news (`news`, `online news`, `berita`, `media online`) is a news
//! item; every other row is a social post.

use super::{error, parse_count, short_hash, Engagement, Post, SocialRead};
use crate::feed::parse_feed_date;
use pasopati_protocol::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Text,
    Date,
    Id,
    Url,
    Title,
    Platform,
    Author,
    Shares,
    Replies,
    Likes,
    Views,
}

const NAMES: &[(Field, &[&str])] = &[
    (
        Field::Text,
        &[
            "text",
            "content",
            "message",
            "post",
            "caption",
            "description",
            "snippet",
            "full text",
            "mention",
            "teks",
            "isi",
        ],
    ),
    (
        Field::Date,
        &[
            "date",
            "published",
            "published at",
            "published date",
            "publish date",
            "publish time",
            "created at",
            "timestamp",
            "time",
            "post date",
            "tanggal",
            "waktu",
        ],
    ),
    (
        Field::Id,
        &["id", "post id", "tweet id", "mention id", "content id"],
    ),
    (
        Field::Url,
        &[
            "url",
            "link",
            "permalink",
            "post url",
            "post link",
            "tautan",
        ],
    ),
    (Field::Title, &["title", "headline", "judul"]),
    (
        Field::Platform,
        &["platform", "network", "source", "channel", "site", "sumber"],
    ),
    (
        Field::Author,
        &[
            "author",
            "username",
            "user",
            "handle",
            "screen name",
            "account",
            "page name",
            "akun",
        ],
    ),
    (
        Field::Shares,
        &[
            "shares",
            "retweets",
            "reposts",
            "quotes",
            "share count",
            "dibagikan",
        ],
    ),
    (
        Field::Replies,
        &[
            "replies",
            "comments",
            "comment count",
            "reply count",
            "komentar",
            "balasan",
        ],
    ),
    (
        Field::Likes,
        &[
            "likes",
            "favorites",
            "favourites",
            "reactions",
            "like count",
            "suka",
        ],
    ),
    (
        Field::Views,
        &[
            "views",
            "impressions",
            "reach",
            "video views",
            "plays",
            "tayangan",
            "jangkauan",
        ],
    ),
];

/// A column name as compared: lower case, `_` and `-` as spaces, spaces collapsed.
fn normalise(name: &str) -> String {
    name.trim()
        .to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn field_of(column: &str) -> Option<Field> {
    let n = normalise(column);
    NAMES
        .iter()
        .find(|(_, names)| names.contains(&n.as_str()))
        .map(|(f, _)| *f)
}

fn accepted(field: Field) -> String {
    NAMES
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, names)| names.join(", "))
        .unwrap_or_default()
}

/// Reads a listening CSV.
pub(super) fn read(file: &str, text: &str) -> SocialRead {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = [',', ';', '\t']
        .into_iter()
        .max_by_key(|d| header_line.matches(*d).count())
        .unwrap_or(',');
    let records = match pasopati_protocol::csv::records_with(text, delimiter) {
        Ok(r) => r,
        Err(e) => return SocialRead::failed(file, 0, format!("not a readable CSV file: {e}")),
    };
    let mut rows = records.into_iter();
    let Some((header_at, header)) = rows.next() else {
        return SocialRead::failed(file, 1, "the file is empty: a header row is needed");
    };
    let mut columns: Vec<(Field, usize)> = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if let Some(f) = field_of(name) {
            if !columns.iter().any(|(g, _)| *g == f) {
                columns.push((f, i));
            }
        }
    }
    let column = |f: Field| columns.iter().find(|(g, _)| *g == f).map(|(_, i)| *i);
    let has_text = column(Field::Text).is_some() || column(Field::Title).is_some();
    let mut missing = Vec::new();
    if !has_text {
        missing.push(format!("a text column (one of: {})", accepted(Field::Text)));
    }
    if column(Field::Date).is_none() {
        missing.push(format!("a date column (one of: {})", accepted(Field::Date)));
    }
    if !missing.is_empty() {
        return SocialRead::failed(
            file,
            header_at,
            format!(
                "the header lacks {}; its columns are: {}",
                missing.join(" and "),
                header.join(", ")
            ),
        );
    }
    let mut read = SocialRead::default();
    for (line, row) in rows {
        if row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        match post(&row, &header, &column).and_then(|(p, social)| {
            p.into_item().map(|mut item| {
                item.social = social;
                item
            })
        }) {
            Ok(item) => read.items.push(item),
            Err(reason) => read.errors.push(error(file, line, reason)),
        }
    }
    read
}

fn post(
    row: &[String],
    header: &[String],
    column: &dyn Fn(Field) -> Option<usize>,
) -> Result<(Post, bool), String> {
    if row.len() != header.len() {
        return Err(format!(
            "the row has {} fields where the header has {}",
            row.len(),
            header.len()
        ));
    }
    let value = |f: Field| column(f).map_or("", |i| row[i].trim());
    let count = |f: Field| -> Result<Option<u64>, String> {
        let Some(i) = column(f) else { return Ok(None) };
        let raw = row[i].trim();
        if raw.is_empty() || raw == "-" {
            return Ok(None);
        }
        parse_count(raw)
            .map(Some)
            .ok_or_else(|| format!("column `{}`: `{raw}` is not a count", header[i]))
    };
    let date = value(Field::Date);
    let published_at = parse_date(date).ok_or_else(|| {
        format!(
            "column `{}`: `{date}` is not a date (write RFC 3339, or YYYY-MM-DD HH:MM in WIB)",
            column(Field::Date).map_or("", |i| header[i].as_str())
        )
    })?;
    let text = value(Field::Text).to_owned();
    let url = value(Field::Url).to_owned();
    let platform = value(Field::Platform);
    let author = value(Field::Author).trim_start_matches('@');
    let id = match (value(Field::Id), url.as_str()) {
        ("", "") => format!("{}:{}", published_at.0, short_hash(&text)),
        ("", url) => url.to_owned(),
        (id, _) if platform.is_empty() => id.to_owned(),
        (id, _) => format!("{}:{id}", platform.to_lowercase()),
    };
    let mut source = if platform.is_empty() {
        "Social listening".to_owned()
    } else {
        platform.to_owned()
    };
    if !author.is_empty() {
        source = format!("{source} @{author}");
    }
    let p = platform.to_lowercase();
    let news = ["news", "berita", "media online"]
        .iter()
        .any(|k| p.contains(k));
    let engagement = Engagement {
        shares: count(Field::Shares)?,
        replies: count(Field::Replies)?,
        likes: count(Field::Likes)?,
        views: count(Field::Views)?,
    };
    let post = Post::new(format!("listening:{id}"), url, source, text, published_at)
        .titled(value(Field::Title).to_owned())
        .with(engagement);
    Ok((post, !news))
}

/// A date as listening tools write it (see the module's list); a time without a zone is WIB.
fn parse_date(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    if t.is_empty() || t.contains('/') {
        return None;
    }
    if t.len() >= 9 && t.chars().all(|c| c.is_ascii_digit()) {
        return t.parse::<i64>().ok().and_then(super::from_unix_seconds);
    }
    if let Some(ts) = parse_feed_date(t) {
        return Some(ts);
    }
    let (day, clock) = t.split_once([' ', 'T']).unwrap_or((t, "00:00"));
    let clock = if clock.len() == 5 {
        format!("{clock}:00")
    } else {
        clock.to_owned()
    };
    Timestamp::parse_rfc3339(&format!("{day}T{clock}+07:00")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::social::assert_read;

    #[test]
    fn common_columns_are_mapped_and_bad_rows_named() {
        let csv = "\u{feff}Post ID;Platform;Author;Content;Published At;Retweets;Comments;Likes;Impressions;Followers;Sentiment\n\
                   101;Twitter;@akun_uji;Antrean kunjungan panjang;2026-11-20 08:00;3;1;9;1.2K;500;neg\n\
                   102;Online News;Portal Uji;Berita razia;2026-11-20T09:00:00+07:00;;;;;;\n\
                   103;Twitter;@akun_uji;Tanggal ganda;03/04/2026;;;;;;\n\
                   104;Twitter;@akun_uji;Angka aneh;2026-11-20;x;;;;;\n";
        let read = read("listening.csv", csv);
        assert_read(&read, 2, &["Published At", "Retweets"]);
        let tweet = &read.items[0];
        assert_eq!(tweet.id, "listening:twitter:101");
        assert_eq!(tweet.source, "Twitter @akun_uji");
        assert!(tweet.social);
        assert_eq!(
            tweet.published_at,
            Timestamp::parse_rfc3339("2026-11-20T08:00:00+07:00").unwrap()
        );
        assert_eq!(
            tweet.engagement,
            Engagement {
                shares: Some(3),
                replies: Some(1),
                likes: Some(9),
                views: Some(1200)
            }
        );
        assert!(!read.items[1].social, "a news row is news");
        let lines: Vec<usize> = read.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5]);
    }

    #[test]
    fn a_header_without_text_or_date_is_refused_with_its_columns() {
        let read = read("x.csv", "Kolom A,Waktu Posting\n1,2\n");
        assert_read(&read, 0, &["lacks a text column"]);
        let e = &read.errors[0];
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("Kolom A, Waktu Posting"), "{}", e.reason);
    }
}
