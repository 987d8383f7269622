//! A report as staff file it, as it travels, and as the collector stores it.

use crate::taxonomy::Taxonomy;
use crate::{ReportId, Timestamp};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How fast a report must reach the media center. Urgent reports overtake a routine backlog.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Encode,
    Decode,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Normal,
    Urgent,
}

impl Priority {
    /// The lower-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" | "biasa" => Ok(Priority::Normal),
            "urgent" | "segera" | "mendesak" => Ok(Priority::Urgent),
            _ => Err(ReportError::Priority(s.to_owned())),
        }
    }
}

/// The longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest body accepted, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A report as it is filed and as it travels from agent to collector. Which site and which
/// `(epoch, seq)` it has are not part of it: the site comes from the certificate and the position
/// from the session.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Report {
    pub id: ReportId,
    pub category: String,
    pub priority: Priority,
    pub title: String,
    pub body: String,
    pub occurred_at: Timestamp,
    /// When this revision was filed.
    pub filed_at: Timestamp,
    /// 0 for the report as first filed; each edit or retraction files the next revision of the
    /// same report (same `id`), and the collector keeps them all, showing the latest.
    pub revision: u32,
    /// Set on the revision that retracts the report, with the reason given.
    pub retraction: Option<String>,
    /// Photos and documents, sent after the report itself; a revision keeps them.
    #[serde(default)]
    pub attachments: Vec<crate::attachment::AttachmentRef>,
}

/// Changes for a new revision of a report; `None` keeps a field as it was.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Revision {
    pub category: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub priority: Option<Priority>,
    pub occurred_at: Option<Timestamp>,
    /// Retract the report, with this reason.
    pub retract: Option<String>,
}

/// The longest retraction reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// What a person fills in; [`ReportDraft::validate`] turns it into a [`Report`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ReportDraft {
    pub category: String,
    pub title: String,
    pub body: String,
    /// `None` takes the category's default priority.
    pub priority: Option<Priority>,
    /// `None` means "when it was filed".
    pub occurred_at: Option<Timestamp>,
}

/// A report that cannot be accepted, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Encode, Decode)]
pub enum ReportError {
    #[error("category `{given}` is unknown; use one of: {known}")]
    Category { given: String, known: String },
    #[error("priority `{0}` is unknown; use `normal` or `urgent`")]
    Priority(String),
    #[error("the title is empty; write a short title")]
    EmptyTitle,
    #[error("the title has {0} characters; the limit is {MAX_TITLE_CHARS}")]
    TitleTooLong(usize),
    #[error("the body is empty; describe what happened")]
    EmptyBody,
    #[error("the body has {0} bytes; the limit is {MAX_BODY_BYTES}")]
    BodyTooLong(usize),
    #[error("the reason for the retraction is empty or longer than {MAX_REASON_CHARS} characters")]
    Reason,
    #[error("the report was retracted; a retracted report cannot be changed")]
    Retracted,
    #[error("the {field} contains a control character at character {position}; remove it (only line breaks and tabs are allowed in the body)")]
    ControlCharacter { field: String, position: usize },
    #[error("the {field} ({given}) is not plausible: {rule}")]
    Time {
        field: String,
        given: String,
        rule: String,
    },
    #[error("the report carries {0} attachments; the limit is {MAX_PER_REPORT}")]
    TooManyAttachments(usize),
    #[error("attachment {index} is not acceptable: {problem}")]
    Attachment { index: usize, problem: String },
    #[error("the edit changes nothing; change at least one field or leave the report as it is")]
    NoChange,
}

impl ReportError {
    /// The form or file field at fault (`report` when it is the report as a whole).
    pub fn field(&self) -> &'static str {
        match self {
            ReportError::Category { .. } => "category",
            ReportError::Priority(_) => "priority",
            ReportError::EmptyTitle | ReportError::TitleTooLong(_) => "title",
            ReportError::EmptyBody | ReportError::BodyTooLong(_) => "body",
            ReportError::ControlCharacter { field, .. } => match field.as_str() {
                "title" => "title",
                "body" => "body",
                _ => "report",
            },
            ReportError::Time { field, .. } if field == "time of the event" => "occurred_at",
            ReportError::TooManyAttachments(_) | ReportError::Attachment { .. } => "attachments",
            ReportError::Time { .. }
            | ReportError::Reason
            | ReportError::Retracted
            | ReportError::NoChange => "report",
        }
    }
}

/// How far a site's clock may run ahead of the checker's (the agent's own clock when it files,
/// the collector's when it receives). A report labelled further in the future is refused: one
/// wrong date must never move the media center's calendar. Seven days leaves room for a site
/// whose clock drifted for days without being noticed; ordering never depends on it.
pub const CLOCK_SKEW_ALLOWANCE_MS: i64 = 7 * 24 * 3_600_000;

/// How far after its filing a report may say the event happened: a day, for a wrong time zone
/// or a date typed for tomorrow's scheduled activity.
pub const OCCURRED_AFTER_FILING_ALLOWANCE_MS: i64 = 24 * 3_600_000;

/// The earliest event time accepted (2000-01-01T00:00:00Z): the system keeps current reports.
pub const EARLIEST_OCCURRED_AT: Timestamp = Timestamp(946_684_800_000);

/// The earliest filing time accepted (2020-01-01T00:00:00Z): earlier means a site's clock
/// that was never set.
pub const EARLIEST_FILED_AT: Timestamp = Timestamp(1_577_836_800_000);

use crate::attachment::{MAX_NAME_CHARS, MAX_PER_REPORT};

impl ReportDraft {
    /// Checks every field and stamps the report with a fresh id and the filing time.
    pub fn validate(self, taxonomy: &Taxonomy, now: Timestamp) -> Result<Report, ReportError> {
        let category = check_category(taxonomy, &self.category)?;
        let title = normalise_title(&self.title);
        let body = normalise_body(&self.body);
        let report = Report {
            id: ReportId::generate(now),
            category: category.id.clone(),
            priority: self.priority.unwrap_or(category.default_priority),
            title,
            body,
            occurred_at: self.occurred_at.unwrap_or(now),
            filed_at: now,
            revision: 0,
            retraction: None,
            attachments: Vec::new(),
        };
        report.check(taxonomy, now)?;
        Ok(report)
    }
}

fn check_category<'t>(
    taxonomy: &'t Taxonomy,
    given: &str,
) -> Result<&'t crate::taxonomy::Category, ReportError> {
    taxonomy
        .get(given.trim())
        .ok_or_else(|| ReportError::Category {
            given: given.to_owned(),
            known: taxonomy.id_list(),
        })
}

/// A title as typed, made one line: trimmed, with pasted line breaks and tabs as spaces.
/// [`Report::check`] then judges it.
fn normalise_title(title: &str) -> String {
    title
        .trim()
        .chars()
        .map(|c| {
            if matches!(c, '\t' | '\r' | '\n') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A body as typed: trimmed, with Windows line ends (inbox CSVs, pasted text) as plain line
/// breaks. [`Report::check`] then judges it.
fn normalise_body(body: &str) -> String {
    body.trim().replace("\r\n", "\n")
}

impl Report {
    /// The next revision of this report with `changes` applied, filed at `now`.
    pub fn revise(
        &self,
        changes: Revision,
        taxonomy: &Taxonomy,
        now: Timestamp,
    ) -> Result<Report, ReportError> {
        if self.retraction.is_some() {
            return Err(ReportError::Retracted);
        }
        let mut next = self.clone();
        if let Some(c) = changes.category {
            next.category = check_category(taxonomy, &c)?.id.clone();
        }
        if let Some(t) = changes.title {
            next.title = normalise_title(&t);
        }
        if let Some(b) = changes.body {
            next.body = normalise_body(&b);
        }
        if let Some(p) = changes.priority {
            next.priority = p;
        }
        if let Some(t) = changes.occurred_at {
            next.occurred_at = t;
        }
        if let Some(reason) = changes.retract {
            next.retraction = Some(reason.trim().to_owned());
        }
        next.revision = self.revision.saturating_add(1);
        next.filed_at = now;
        let mut unchanged = next.clone();
        unchanged.revision = self.revision;
        unchanged.filed_at = self.filed_at;
        if unchanged == *self {
            return Err(ReportError::NoChange);
        }
        next.check(taxonomy, now)?;
        Ok(next)
    }

    /// Whether this report may be accepted, checked by the clock of whoever checks (`now`).
    ///
    /// This is the one rule for a report's shape, applied by the agent before it saves a
    /// report (through [`ReportDraft::validate`] and [`Report::revise`]) and by the collector to
    /// every report a site sends, so a modified or broken agent cannot store what an honest
    /// one would refuse. It checks the category, the title (one line, 1–200 characters), the
    /// body (up to 64 KiB), the retraction reason, control characters (none in the title or
    /// reason; only line breaks and tabs in the body), the times (see
    /// [`CLOCK_SKEW_ALLOWANCE_MS`]) and the attachment list. The PII guard is separate
    /// (`PiiGuard::check_report`) because its findings are quarantined, not refused.
    pub fn check(&self, taxonomy: &Taxonomy, now: Timestamp) -> Result<(), ReportError> {
        if taxonomy.get(&self.category).is_none() {
            return Err(ReportError::Category {
                given: printable(&self.category, 40),
                known: taxonomy.id_list(),
            });
        }
        let title = self.title.trim();
        if title.is_empty() {
            return Err(ReportError::EmptyTitle);
        }
        let chars = self.title.chars().count();
        if chars > MAX_TITLE_CHARS {
            return Err(ReportError::TitleTooLong(chars));
        }
        no_control("title", &self.title, false)?;
        if self.body.trim().is_empty() {
            return Err(ReportError::EmptyBody);
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ReportError::BodyTooLong(self.body.len()));
        }
        no_control("body", &self.body, true)?;
        if let Some(reason) = &self.retraction {
            if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                return Err(ReportError::Reason);
            }
            no_control("retraction reason", reason, false)?;
        }
        check_times(self.occurred_at, self.filed_at, now)?;
        if self.attachments.len() > MAX_PER_REPORT {
            return Err(ReportError::TooManyAttachments(self.attachments.len()));
        }
        for (i, a) in self.attachments.iter().enumerate() {
            let problem = if a.name.trim().is_empty() || a.name.chars().count() > MAX_NAME_CHARS {
                Some(format!(
                    "its name is empty or longer than {MAX_NAME_CHARS} characters"
                ))
            } else if a.name.contains(['/', '\\']) || a.name == "." || a.name == ".." {
                Some("its name is a path; only a file name is allowed".to_owned())
            } else if a.name.chars().any(forbidden_char) {
                Some("its name contains a control character".to_owned())
            } else if a.size == 0 || a.size > crate::attachment::HARD_MAX_BYTES {
                Some(format!(
                    "its size {} bytes is outside 1..={} bytes",
                    a.size,
                    crate::attachment::HARD_MAX_BYTES
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ReportError::Attachment {
                    index: i + 1,
                    problem,
                });
            }
        }
        Ok(())
    }

    /// The SHA-256 of the report's canonical encoding. Two copies of a report with the same
    /// `(site, epoch, seq)` must have the same hash, or the second is a conflict.
    pub fn content_hash(&self) -> [u8; 32] {
        // The encoding goes straight into the hash, never into a buffer of its own.
        struct Hashing(ring::digest::Context);
        impl bincode::enc::write::Writer for Hashing {
            fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
                self.0.update(bytes);
                Ok(())
            }
        }
        let mut hashing = Hashing(ring::digest::Context::new(&ring::digest::SHA256));
        // Encoding this project's types cannot fail (see `frame::encode_value`).
        let _ = bincode::encode_into_writer(self, &mut hashing, bincode::config::standard());
        let mut out = [0u8; 32];
        out.copy_from_slice(hashing.0.finish().as_ref());
        out
    }
}

/// Checks the times a report carries against the checker's clock.
pub fn check_times(
    occurred_at: Timestamp,
    filed_at: Timestamp,
    now: Timestamp,
) -> Result<(), ReportError> {
    let latest = Timestamp(now.0.saturating_add(CLOCK_SKEW_ALLOWANCE_MS));
    // A time outside its window names the field, the value and the rule (written only then).
    let within = |field: &str, t: Timestamp, window: [Timestamp; 2], rule: &dyn Fn() -> String| {
        if (window[0]..=window[1]).contains(&t) {
            Ok(())
        } else {
            Err(ReportError::Time {
                field: field.to_owned(),
                given: t.to_rfc3339(),
                rule: rule(),
            })
        }
    };
    within(
        "filing time",
        filed_at,
        [EARLIEST_FILED_AT, latest],
        &|| {
            format!(
                "it must lie between {} and 7 days after now ({}); check the site's clock",
                EARLIEST_FILED_AT.to_rfc3339(),
                now.to_rfc3339()
            )
        },
    )?;
    let occurred_latest = Timestamp(
        filed_at
            .0
            .saturating_add(OCCURRED_AFTER_FILING_ALLOWANCE_MS)
            .min(latest.0),
    );
    within(
        "time of the event",
        occurred_at,
        [EARLIEST_OCCURRED_AT, occurred_latest],
        &|| {
            format!(
            "it must lie between {} and one day after the report is filed; give the date the event happened",
            EARLIEST_OCCURRED_AT.to_rfc3339()
        )
        },
    )
}

/// Characters that never belong in report text: C0 and C1 controls, DEL, and the two
/// non-characters XML forbids (a feed built from the text must stay well-formed).
pub fn forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}')
}

fn no_control(field: &'static str, text: &str, multiline: bool) -> Result<(), ReportError> {
    if text.is_ascii() {
        // The same rule byte by byte (in ASCII a byte is a character): controls are 0x00–0x1f
        // and 0x7f. Each block of 64 bytes is checked whole, without stopping at the first
        // control (which the compiler turns into a few vector instructions); only a block with
        // one is read again for where it is. A report's body is a kilobyte or so, checked for
        // every report the collector receives.
        let forbidden =
            |b: u8| (b < 0x20 && !(multiline && matches!(b, b'\n' | b'\t' | b'\r'))) | (b == 0x7f);
        let found = text
            .as_bytes()
            .chunks(64)
            .enumerate()
            .find_map(|(i, block)| {
                if block.iter().fold(false, |any, &b| any | forbidden(b)) {
                    block
                        .iter()
                        .position(|&b| forbidden(b))
                        .map(|at| i * 64 + at)
                } else {
                    None
                }
            });
        return match found {
            Some(i) => Err(ReportError::ControlCharacter {
                field: field.to_owned(),
                position: i + 1,
            }),
            None => Ok(()),
        };
    }
    no_control_by_char(field, text, multiline)
}

/// [`no_control`] read character by character, for any text.
fn no_control_by_char(field: &'static str, text: &str, multiline: bool) -> Result<(), ReportError> {
    for (i, c) in text.chars().enumerate() {
        let allowed = multiline && matches!(c, '\n' | '\t' | '\r');
        if forbidden_char(c) && !allowed {
            return Err(ReportError::ControlCharacter {
                field: field.to_owned(),
                position: i + 1,
            });
        }
    }
    Ok(())
}

/// A value from elsewhere, shortened and with control characters shown as `?`, for a message.
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if forbidden_char(c) { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_control_check_is_the_character_check() {
        for (b, at) in (0u8..128).flat_map(|b| [(b, 2), (b, 63), (b, 64), (b, 150)]) {
            let mut text = "a".repeat(200);
            text.insert(at, char::from(b));
            for multiline in [false, true] {
                let fast = no_control("body", &text, multiline).map_err(|e| e.to_string());
                let slow = no_control_by_char("body", &text, multiline).map_err(|e| e.to_string());
                assert_eq!(fast, slow, "byte {b:#x}, multiline {multiline}");
            }
        }
    }
    use crate::fixtures::T0;

    fn draft(category: &str) -> ReportDraft {
        ReportDraft {
            category: category.into(),
            title: "Apel pagi".into(),
            body: "Apel pagi diikuti seluruh petugas.".into(),
            ..ReportDraft::default()
        }
    }

    #[test]
    fn notable_incidents_default_to_urgent() {
        let t = Taxonomy::builtin();
        let r = draft("kejadian_menonjol")
            .validate(t, Timestamp(T0 + 5))
            .unwrap();
        assert_eq!(r.priority, Priority::Urgent);
        let r = draft("kegiatan_kedinasan")
            .validate(t, Timestamp(T0 + 5))
            .unwrap();
        assert_eq!(r.priority, Priority::Normal);
        assert_eq!(r.occurred_at, Timestamp(T0 + 5));
    }

    #[test]
    fn each_bad_field_is_named() {
        let t = Taxonomy::builtin();
        assert!(matches!(
            draft("olahraga").validate(t, Timestamp(T0)),
            Err(ReportError::Category { .. })
        ));
        let mut d = draft("humas");
        d.title = "  ".into();
        assert_eq!(d.validate(t, Timestamp(T0)), Err(ReportError::EmptyTitle));
        let mut d = draft("humas");
        d.body = "x".repeat(MAX_BODY_BYTES + 1);
        assert!(matches!(
            d.validate(t, Timestamp(T0)),
            Err(ReportError::BodyTooLong(_))
        ));
    }

    #[test]
    fn revisions_keep_the_id_and_count_up() {
        let t = Taxonomy::builtin();
        let revise =
            |r: &Report, change: Revision, at: i64| r.revise(change, t, Timestamp(T0 + at));
        let r = draft("humas").validate(t, Timestamp(T0 + 1)).unwrap();
        let title = Revision {
            title: Some("Judul baru".into()),
            ..Revision::default()
        };
        let edited = revise(&r, title, 2).unwrap();
        assert_eq!(
            (edited.id, edited.revision, edited.title.as_str()),
            (r.id, 1, "Judul baru")
        );
        assert_eq!(edited.body, r.body);
        assert_ne!(edited.content_hash(), r.content_hash());
        let retraction = Revision {
            retract: Some("Salah input".into()),
            ..Revision::default()
        };
        let retracted = revise(&edited, retraction, 3).unwrap();
        assert_eq!(retracted.revision, 2);
        assert!(revise(&retracted, Revision::default(), 4).is_err());
        // A blank retraction reason and an unknown category are refused.
        let blank_reason = Revision {
            retract: Some(" ".into()),
            ..Revision::default()
        };
        let unknown_category = Revision {
            category: Some("lain".into()),
            ..Revision::default()
        };
        for bad in [blank_reason, unknown_category] {
            assert!(revise(&r, bad, 4).is_err());
        }
    }

    #[test]
    fn content_hash_covers_every_field() {
        let r = draft("humas")
            .validate(Taxonomy::builtin(), Timestamp(T0 + 1))
            .unwrap();
        let mut other = r.clone();
        other.body.push('!');
        assert_ne!(r.content_hash(), other.content_hash());
        assert_eq!(r.content_hash(), r.clone().content_hash());
        assert_eq!(
            r.content_hash(),
            crate::sha256(&crate::frame::encode_value(&r)),
            "the hash of the report's encoding"
        );
    }

    #[test]
    fn the_shared_rule_refuses_what_no_agent_would_send() {
        let t = Taxonomy::builtin();
        let now = Timestamp(T0);
        let good = draft("humas").validate(t, now).unwrap();
        assert_eq!(good.check(t, now), Ok(()));
        let refused = |f: &dyn Fn(&mut Report)| {
            let mut r = good.clone();
            f(&mut r);
            r.check(t, now).unwrap_err()
        };
        assert!(matches!(
            refused(&|r| r.title = "x".repeat(201)),
            ReportError::TitleTooLong(201)
        ));
        assert!(matches!(
            refused(&|r| r.category = "<script>".into()),
            ReportError::Category { .. }
        ));
        assert!(matches!(
            refused(&|r| r.body = " ".into()),
            ReportError::EmptyBody
        ));
        assert!(matches!(
            refused(&|r| r.title = "a\u{1}b".into()),
            ReportError::ControlCharacter { position: 2, .. }
        ));
        assert!(matches!(
            refused(&|r| r.body = "a\u{7f}".into()),
            ReportError::ControlCharacter { .. }
        ));
        assert!(matches!(
            refused(&|r| r.retraction = Some("alasan\u{1b}[2J".into())),
            ReportError::ControlCharacter { .. }
        ));
        assert!(matches!(
            refused(&|r| r.occurred_at = Timestamp(i64::MIN)),
            ReportError::Time { .. }
        ));
        assert!(matches!(
            refused(&|r| r.occurred_at = Timestamp(T0 + 2 * 86_400_000)),
            ReportError::Time { .. }
        ));
        assert!(matches!(
            refused(&|r| r.filed_at = Timestamp(T0 + 8 * 86_400_000)),
            ReportError::Time { .. }
        ));
        let attachment = crate::attachment::AttachmentRef {
            hash: [1; 32],
            name: "foto.jpg".into(),
            media_type: crate::attachment::MediaType::Jpeg,
            size: 10,
        };
        let too_many = vec![attachment.clone(); MAX_PER_REPORT + 1];
        assert!(matches!(
            refused(&|r| r.attachments = too_many.clone()),
            ReportError::TooManyAttachments(11)
        ));
        let mut huge = attachment.clone();
        huge.size = crate::attachment::HARD_MAX_BYTES + 1;
        assert!(matches!(
            refused(&|r| r.attachments = vec![huge.clone()]),
            ReportError::Attachment { index: 1, .. }
        ));
        let mut path = attachment;
        path.name = "../etc/passwd".into();
        assert!(matches!(
            refused(&|r| r.attachments = vec![path.clone()]),
            ReportError::Attachment { .. }
        ));
        // Line breaks and tabs belong in a body; in a title they become spaces.
        let mut d = draft("humas");
        d.title = "Dua\nbaris".into();
        d.body = "Baris satu\r\nbaris\tdua".into();
        let r = d.validate(t, now).unwrap();
        assert_eq!(
            (r.title.as_str(), r.body.as_str()),
            ("Dua baris", "Baris satu\nbaris\tdua")
        );
    }

    #[test]
    fn an_edit_that_changes_nothing_is_refused() {
        let t = Taxonomy::builtin();
        let r = draft("humas").validate(t, Timestamp(T0)).unwrap();
        let same = Revision {
            title: Some(r.title.clone()),
            ..Revision::default()
        };
        assert_eq!(
            r.revise(same, t, Timestamp(T0 + 1)),
            Err(ReportError::NoChange)
        );
    }
}
