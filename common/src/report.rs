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
    pub filed_at: Timestamp,
}

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
}

impl ReportDraft {
    /// Checks every field and stamps the report with a fresh id and the filing time.
    pub fn validate(self, taxonomy: &Taxonomy, now: Timestamp) -> Result<Report, ReportError> {
        let category = taxonomy
            .get(self.category.trim())
            .ok_or_else(|| ReportError::Category {
                given: self.category.clone(),
                known: taxonomy.id_list(),
            })?;
        let title = self.title.trim().to_owned();
        if title.is_empty() {
            return Err(ReportError::EmptyTitle);
        }
        let title_chars = title.chars().count();
        if title_chars > MAX_TITLE_CHARS {
            return Err(ReportError::TitleTooLong(title_chars));
        }
        let body = self.body.trim().to_owned();
        if body.is_empty() {
            return Err(ReportError::EmptyBody);
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(ReportError::BodyTooLong(body.len()));
        }
        Ok(Report {
            id: ReportId::generate(now),
            category: category.id.clone(),
            priority: self.priority.unwrap_or(category.default_priority),
            title,
            body,
            occurred_at: self.occurred_at.unwrap_or(now),
            filed_at: now,
        })
    }
}

impl Report {
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
