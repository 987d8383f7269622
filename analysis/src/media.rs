//! Media intake formats and the privacy pass every media text goes through before it is
//! stored or analysed.
//!
//! * JSONL: one object per line, `{"id","url","source","title","text","published_at"}` with an
//!   RFC 3339 time; optional `"kind": "news" | "social"` (otherwise a post on a social network's
//!   host or source name counts as social).
//! * RSS 2.0 (`<item>` with `title`, `link`, `description`, `pubDate` in RFC 2822, `guid`) and
//!   Atom (`<entry>` with `title`, `link href`, `summary`/`content`, `published`/`updated`,
//!   `id`).
//!
//! Privacy: the PII guard of `common` replaces NIKs, phone numbers and register numbers with a
//! marker, and initials introduced as such (`berinisial AB`, `inisial A.B.`, `(inisial AB)`),
//! with the rest of a list introduced that way (`berinisial AB (27), CD (30) dan RH (31)`),
//! become `[inisial]`: the press identifies inmates that way, and the media center stores no
//! more of an inmate's identity than it needs.

use crate::engine::{MediaItem, SiteReport};
use pasopati_protocol::pii::{Field, PiiGuard};
use pasopati_protocol::Timestamp;
use serde::Deserialize;

/// A line or entry that could not be read, with its line (JSONL) or entry number (feeds).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InputError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Checks that `errors` holds one error, whose reason says `says` (for the readers' tests).
#[cfg(test)]
pub(crate) fn assert_one_error(errors: &[InputError], says: &str) {
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].reason.contains(says), "{}", errors[0].reason);
}

/// Hosts and source names of social networks.
const SOCIAL: &[&str] = &[
    "x.com",
    "twitter",
    "facebook",
    "fb.com",
    "instagram",
    "tiktok",
    "youtube",
    "youtu.be",
    "threads",
    "whatsapp",
];

/// Whether a URL or source name is a social network.
pub fn is_social(url: &str, source: &str) -> bool {
    let u = crate::url::normalize_url(url);
    let host = u
        .strip_prefix("https://")
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    let s = source.to_lowercase();
    SOCIAL.iter().any(|k| {
        host == *k || host.ends_with(&format!(".{k}")) || host.starts_with(k) || s.contains(k)
    })
}

/// One media line. The common other names of each field (as scrapers and exports write them)
/// are accepted; any other field is refused with the line named, so a text under an unknown
/// name is never dropped silently.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaLine {
    id: String,
    #[serde(default, alias = "link")]
    url: String,
    #[serde(default, alias = "media", alias = "publisher")]
    source: String,
    #[serde(default, alias = "judul", alias = "headline")]
    title: String,
    #[serde(
        default,
        alias = "body",
        alias = "content",
        alias = "isi",
        alias = "description"
    )]
    text: String,
    #[serde(alias = "published", alias = "date", alias = "tanggal")]
    published_at: String,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportLine {
    id: String,
    site_id: String,
    category: String,
    title: String,
    body: String,
    occurred_at: String,
    /// `urgent` or `normal` (the default).
    #[serde(default)]
    priority: Option<String>,
}

/// Reads JSONL: each non-blank line is parsed as `L` and turned into a value by `convert`;
/// a line that fails either way becomes an error naming its line, and the rest is kept.
fn read_jsonl<L: serde::de::DeserializeOwned, T>(
    file: &str,
    text: &str,
    what: &str,
    convert: impl Fn(L) -> Result<T, String>,
) -> (Vec<T>, Vec<InputError>) {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<L>(line)
            .map_err(|e| format!("not a {what} object: {e}"))
            .and_then(&convert);
        match result {
            Ok(v) => values.push(v),
            Err(reason) => errors.push(InputError {
                file: file.to_owned(),
                line: n + 1,
                reason,
            }),
        }
    }
    (values, errors)
}

/// Reads media JSONL; good lines become items, bad lines errors (the rest is kept).
pub fn read_media_jsonl(file: &str, text: &str) -> (Vec<MediaItem>, Vec<InputError>) {
    read_jsonl(file, text, "media", |parsed: MediaLine| {
        if parsed.id.trim().is_empty() {
            return Err("`id` is empty".into());
        }
        if parsed.title.trim().is_empty() && parsed.text.trim().is_empty() {
            return Err("both `title` and `text` are empty".into());
        }
        let published_at = Timestamp::parse_rfc3339(&parsed.published_at)
            .map_err(|e| format!("`published_at`: {e}"))?;
        let social = match parsed.kind.as_deref() {
            Some("social") => true,
            Some("news") => false,
            Some(other) => return Err(format!("`kind` `{other}` is neither news nor social")),
            None => is_social(&parsed.url, &parsed.source),
        };
        Ok(MediaItem {
            id: parsed.id,
            url: parsed.url,
            source: parsed.source,
            title: parsed.title,
            text: parsed.text,
            published_at,
            social,
            engagement: Default::default(),
        })
    })
}

/// Reads site reports as JSONL.
pub fn read_reports_jsonl(file: &str, text: &str) -> (Vec<SiteReport>, Vec<InputError>) {
    read_jsonl(file, text, "report", |parsed: ReportLine| {
        let occurred_at = Timestamp::parse_rfc3339(&parsed.occurred_at)
            .map_err(|e| format!("`occurred_at`: {e}"))?;
        Ok(SiteReport {
            id: parsed.id,
            site_id: parsed.site_id,
            category: parsed.category,
            title: parsed.title,
            body: parsed.body,
            occurred_at,
            urgent: parsed.priority.as_deref() == Some("urgent"),
        })
    })
}

/// Masks identity data in a media text: the guard's findings and introduced initials.
pub fn mask(guard: &PiiGuard, text: &str) -> String {
    let redacted = guard.redact(Field::Body, text);
    mask_initials(&redacted)
}

/// Replaces initials introduced by `inisial`/`berinisial` with `[inisial]`.
pub fn mask_initials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_lowercase();
        // Byte offsets of `to_lowercase` match the original for ASCII; find on the original
        // when the text is not ASCII.
        let found = if rest.is_ascii() {
            lower.find("inisial")
        } else {
            find_ascii_ci(rest, "inisial")
        };
        let Some(at) = found else {
            out.push_str(rest);
            return out;
        };
        let after = at + "inisial".len();
        out.push_str(&rest[..after]);
        let tail = &rest[after..];
        let trimmed = tail.trim_start_matches([' ', ':']);
        let skipped = tail.len() - trimmed.len();
        let initials_len = initials_at(trimmed);
        if initials_len > 0 {
            out.push_str(&tail[..skipped]);
            out.push_str("[inisial]");
            rest = &trimmed[initials_len..];
            rest = mask_listed_initials(rest, &mut out);
        } else {
            rest = tail;
        }
    }
}

/// Masks the further initials of a list introduced by `inisial`, as in `berinisial AB (27),
/// CD (30) dan RH (31)`: after the first initials (and their age in parentheses, if any) come
/// a comma, `dan`, `serta` or `&`, then initials. When the first initials carry an age, the
/// others must too, so that `berinisial AB (27) dan WBP lain` keeps its `WBP`. Returns the rest
/// of the text after the list, having written the list, masked, to `out`.
fn mask_listed_initials<'a>(mut rest: &'a str, out: &mut String) -> &'a str {
    let first_age = age_at(rest);
    loop {
        let age = age_at(rest);
        if (age > 0) != (first_age > 0) {
            return rest;
        }
        let after_age = &rest[age..];
        let connector = connector_at(after_age);
        if connector == 0 {
            return rest;
        }
        let candidate = &after_age[connector..];
        let initials = initials_at(candidate);
        if initials == 0 || (first_age > 0 && age_at(&candidate[initials..]) == 0) {
            return rest;
        }
        out.push_str(&rest[..age + connector]);
        out.push_str("[inisial]");
        rest = &candidate[initials..];
    }
}

/// The length of an age in parentheses at the start of `s` (` (27)`), or 0.
fn age_at(s: &str) -> usize {
    let trimmed = s.trim_start_matches(' ');
    let spaces = s.len() - trimmed.len();
    let Some(inner) = trimmed.strip_prefix('(') else {
        return 0;
    };
    let digits = inner.len() - inner.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if (1..=3).contains(&digits) && inner[digits..].starts_with(')') {
        spaces + digits + 2
    } else {
        0
    }
}

/// The length of a list connector at the start of `s` (`, `, ` dan `, `, serta `, ` & `), with
/// the spaces around it, or 0.
fn connector_at(s: &str) -> usize {
    let mut len = s.len() - s.trim_start_matches(' ').len();
    let mut found = false;
    if s[len..].starts_with(',') {
        len += 1;
        len += s[len..].len() - s[len..].trim_start_matches(' ').len();
        found = true;
    }
    for word in ["dan ", "serta ", "& "] {
        if s[len..].starts_with(word) {
            len += word.len();
            len += s[len..].len() - s[len..].trim_start_matches(' ').len();
            found = true;
            break;
        }
    }
    if found {
        len
    } else {
        0
    }
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .char_indices()
        .find(|(i, _)| {
            haystack
                .get(*i..*i + needle.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(needle))
        })
        .map(|(i, _)| i)
}

/// The length of initials at the start of `s`: one to four capital letters, possibly with
/// dots (`AB`, `A.B.`, `ABC`), followed by a non-letter.
fn initials_at(s: &str) -> usize {
    let mut letters = 0;
    let mut len = 0;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            letters += 1;
            len += 1;
        } else if c == '.' && letters > 0 {
            len += 1;
        } else {
            if c.is_alphabetic() {
                return 0;
            }
            break;
        }
        if letters > 4 {
            return 0;
        }
    }
    if letters == 0 {
        0
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_named_and_the_rest_kept() {
        let text = concat!(
            r#"{"id":"a","url":"https://detik.com/x","source":"detik","title":"T","text":"Isi","published_at":"2026-11-01T08:00:00+07:00"}"#,
            "\n",
            "bukan json\n",
            r#"{"id":"b","url":"https://x.com/u/status/1","source":"X","title":"T","text":"Isi","published_at":"kemarin"}"#,
            "\n\n",
            r#"{"id":"c","url":"https://x.com/u/status/2","source":"X","title":"","text":"Cuitan","published_at":"2026-11-01T09:00:00Z"}"#,
            "\n",
        );
        let (items, errors) = read_media_jsonl("m.jsonl", text);
        assert_eq!(items.len(), 2);
        assert!(!items[0].social && items[1].social);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(errors[1].reason.contains("published_at"));
    }

    #[test]
    fn common_field_names_are_read_and_unknown_ones_refused() {
        let text = concat!(
            r#"{"id":"a","link":"https://detik.com/x","source":"detik","judul":"T","body":"Isi berita","published_at":"2026-11-01T08:00:00+07:00"}"#,
            "\n",
            r#"{"id":"b","title":"T","teks":"Isi","published_at":"2026-11-01T08:00:00+07:00"}"#,
            "\n",
        );
        let (items, errors) = read_media_jsonl("m.jsonl", text);
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].title.as_str(), items[0].text.as_str()),
            ("T", "Isi berita")
        );
        assert_one_error(&errors, "unknown field `teks`");
    }

    #[test]
    fn initials_and_identity_numbers_are_masked() {
        let guard = PiiGuard::default();
        // Masks `text` and checks that none of `gone` is left in it.
        let masked_without = |text: &str, gone: &[&str]| {
            let masked = mask(&guard, text);
            for g in gone {
                assert!(!masked.contains(g), "{g}: {masked}");
            }
            masked
        };
        let masked = masked_without(
            "Napi berinisial AB (35) kabur; rekannya, inisial C.D., tertangkap. Hubungi 0812-3456-7890.",
            &["AB", "C.D.", "3456"],
        );
        assert!(masked.contains("berinisial [inisial] (35)"), "{masked}");
        // Every initials of a list introduced that way are masked, not only the first.
        assert_eq!(
            mask(
                &guard,
                "Dua napi berinisial AB (27), CD (30) dan RH (31) ditangkap."
            ),
            "Dua napi berinisial [inisial] (27), [inisial] (30) dan [inisial] (31) ditangkap."
        );
        assert_eq!(
            mask_initials("inisial AB, CD serta EF hadir"),
            "inisial [inisial], [inisial] serta [inisial] hadir"
        );
        assert_eq!(
            mask_initials("berinisial AB (27) dan WBP lain"),
            "berinisial [inisial] (27) dan WBP lain"
        );
        // Identity numbers in any of the forms the guard knows are masked too.
        masked_without(
            "NIK:３２０１\u{200b}0145 1290 0001, WA wa.me/6281234567890",
            &["0145", "6281"],
        );
        // Ordinary words after `inisial` stay.
        assert_eq!(
            mask_initials("inisial nama tidak disebut"),
            "inisial nama tidak disebut"
        );
    }
}
