//! The units' official responses ("tanggapan resmi") to stories: written by a site's operator,
//! approved by an analyst who sees the site, and turned into a press-release draft by a national
//! analyst. Numbered like the other registers, with every change in the audit log.

use super::{RedbStore, Register, StoreError};
use bincode::{Decode, Encode};
use pasopati_common::Timestamp;
use redb::TableDefinition;
use serde::Serialize;

/// Response number → official response.
pub(super) const RESPONSES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("official_responses");

/// Where an official response stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseState {
    /// Written by the unit, waiting for an analyst.
    Submitted,
    /// Approved by an analyst: the media center may use it.
    Approved,
}

impl ResponseState {
    /// The state's name on the dashboard, in Bahasa Indonesia.
    pub fn label(self) -> &'static str {
        match self {
            ResponseState::Submitted => "diajukan",
            ResponseState::Approved => "disetujui",
        }
    }
}

/// A unit's official response to a story.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct OfficialResponse {
    pub number: u64,
    /// The story responded to, and its title when the response was written.
    pub story: String,
    pub story_title: String,
    /// The site whose response it is.
    pub site: String,
    pub text: String,
    pub written_by: String,
    pub written_at: i64,
    pub state: ResponseState,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    /// The press-release draft made from it, if any.
    pub publication: Option<u64>,
}

/// Where responses are kept, numbered from `next_response`.
const RESPONSE_REGISTER: Register = Register {
    table: RESPONSES,
    counter: "next_response",
    kind: "response",
};

impl OfficialResponse {
    /// What the audit log says of a response filed, and of one changed (both backends).
    pub(super) fn filed_details(&self) -> String {
        format!("site={} story={}", self.site, self.story)
    }

    pub(super) fn changed_details(&self) -> String {
        format!("state={}", self.state.label())
    }
}

impl RedbStore {
    /// Files a unit's response; returns its number.
    pub fn add_response(&self, mut r: OfficialResponse, actor: &str) -> Result<u64, StoreError> {
        let at = Timestamp(r.written_at);
        self.add_numbered(&RESPONSE_REGISTER, actor, "response_add", at, |number| {
            r.number = number;
            let details = r.filed_details();
            (r, details)
        })
    }

    /// Changes a response with `change`, audited as `action`; `None` if there is no such
    /// response.
    pub fn update_response(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut OfficialResponse),
    ) -> Result<Option<OfficialResponse>, StoreError> {
        let now = Timestamp::now();
        self.change_numbered(&RESPONSE_REGISTER, number, actor, action, now, |r| {
            change(r);
            r.changed_details()
        })
    }

    /// Every response, oldest first.
    pub fn responses(&self) -> Result<Vec<OfficialResponse>, StoreError> {
        self.read_all(RESPONSES)
    }
}
