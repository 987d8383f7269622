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
}

impl ReportDraft {
    /// Checks every field and stamps the report with a fresh id and the filing time.
    pub fn validate(self, taxonomy: &Taxonomy, now: Timestamp) -> Result<Report, ReportError> {
        let category = check_category(taxonomy, &self.category)?;
        let title = check_title(&self.title)?;
        let body = check_body(&self.body)?;
        Ok(Report {
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
        })
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

fn check_title(title: &str) -> Result<String, ReportError> {
    let title = title.trim().to_owned();
    if title.is_empty() {
        return Err(ReportError::EmptyTitle);
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(ReportError::TitleTooLong(chars));
    }
    Ok(title)
}

fn check_body(body: &str) -> Result<String, ReportError> {
    let body = body.trim().to_owned();
    if body.is_empty() {
        return Err(ReportError::EmptyBody);
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ReportError::BodyTooLong(body.len()));
    }
    Ok(body)
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
            next.title = check_title(&t)?;
        }
        if let Some(b) = changes.body {
            next.body = check_body(&b)?;
        }
        if let Some(p) = changes.priority {
            next.priority = p;
        }
        if let Some(t) = changes.occurred_at {
            next.occurred_at = t;
        }
        if let Some(reason) = changes.retract {
            let reason = reason.trim().to_owned();
            if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
                return Err(ReportError::Reason);
            }
            next.retraction = Some(reason);
        }
        next.revision = self.revision.saturating_add(1);
        next.filed_at = now;
        Ok(next)
    }

    /// The SHA-256 of the report's canonical encoding. Two copies of a report with the same
    /// `(site, epoch, seq)` must have the same hash, or the second is a conflict.
    pub fn content_hash(&self) -> [u8; 32] {
        crate::sha256(&crate::frame::encode_value(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .validate(t, Timestamp(5))
            .unwrap();
        assert_eq!(r.priority, Priority::Urgent);
        let r = draft("kegiatan_kedinasan")
            .validate(t, Timestamp(5))
            .unwrap();
        assert_eq!(r.priority, Priority::Normal);
        assert_eq!(r.occurred_at, Timestamp(5));
    }

    #[test]
    fn each_bad_field_is_named() {
        let t = Taxonomy::builtin();
        assert!(matches!(
            draft("olahraga").validate(t, Timestamp(0)),
            Err(ReportError::Category { .. })
        ));
        let mut d = draft("humas");
        d.title = "  ".into();
        assert_eq!(d.validate(t, Timestamp(0)), Err(ReportError::EmptyTitle));
        let mut d = draft("humas");
        d.body = "x".repeat(MAX_BODY_BYTES + 1);
        assert!(matches!(
            d.validate(t, Timestamp(0)),
            Err(ReportError::BodyTooLong(_))
        ));
    }

    #[test]
    fn revisions_keep_the_id_and_count_up() {
        let t = Taxonomy::builtin();
        let r = draft("humas").validate(t, Timestamp(1)).unwrap();
        let edited = r
            .revise(
                Revision {
                    title: Some("Judul baru".into()),
                    ..Revision::default()
                },
                t,
                Timestamp(2),
            )
            .unwrap();
        assert_eq!(
            (edited.id, edited.revision, edited.title.as_str()),
            (r.id, 1, "Judul baru")
        );
        assert_eq!(edited.body, r.body);
        assert_ne!(edited.content_hash(), r.content_hash());
        let retracted = edited
            .revise(
                Revision {
                    retract: Some("Salah input".into()),
                    ..Revision::default()
                },
                t,
                Timestamp(3),
            )
            .unwrap();
        assert_eq!(retracted.revision, 2);
        assert!(retracted
            .revise(Revision::default(), t, Timestamp(4))
            .is_err());
        assert!(r
            .revise(
                Revision {
                    retract: Some(" ".into()),
                    ..Revision::default()
                },
                t,
                Timestamp(4)
            )
            .is_err());
        assert!(r
            .revise(
                Revision {
                    category: Some("lain".into()),
                    ..Revision::default()
                },
                t,
                Timestamp(4)
            )
            .is_err());
    }

    #[test]
    fn content_hash_covers_every_field() {
        let r = draft("humas")
            .validate(Taxonomy::builtin(), Timestamp(1))
            .unwrap();
        let mut other = r.clone();
        other.body.push('!');
        assert_ne!(r.content_hash(), other.content_hash());
        assert_eq!(r.content_hash(), r.clone().content_hash());
    }
}
