//! The media center's editorial records: the claims register (claims that appeared in the
//! media, with verdicts and their evidence, as schema.org's ClaimReview) and press releases
//! drafted from verified reports, approved before they are published in the feeds.

use super::{RedbStore, Register, StoreError};
use bincode::{Decode, Encode};
use pasopati_common::Timestamp;
use redb::TableDefinition;
use serde::Serialize;

/// Claim number → claim under verification.
pub(super) const CLAIMS: TableDefinition<u64, &[u8]> = TableDefinition::new("claims");
/// Publication number → press release draft or published item.
pub(super) const PUBLICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("publications");

/// A verdict on a claim, in the words of the media center.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Benar,
    Salah,
    Menyesatkan,
    BelumTerverifikasi,
}

impl Verdict {
    /// Every verdict, in the order forms offer them.
    pub const ALL: [Verdict; 4] = [
        Verdict::Benar,
        Verdict::Salah,
        Verdict::Menyesatkan,
        Verdict::BelumTerverifikasi,
    ];

    /// The verdict's name, as the CLI and the forms take it and JSON shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Benar => "benar",
            Verdict::Salah => "salah",
            Verdict::Menyesatkan => "menyesatkan",
            Verdict::BelumTerverifikasi => "belum_terverifikasi",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().replace([' ', '-'], "_").as_str() {
            "benar" => Ok(Verdict::Benar),
            "salah" => Ok(Verdict::Salah),
            "menyesatkan" => Ok(Verdict::Menyesatkan),
            "belum_terverifikasi" | "belum" => Ok(Verdict::BelumTerverifikasi),
            other => Err(format!(
                "verdict `{other}` is unknown; use benar, salah, menyesatkan or belum_terverifikasi"
            )),
        }
    }
}

/// The official figure a verdict rests on.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct OfficialFigure {
    pub value: String,
    pub source: String,
    pub as_of: i64,
}

/// A claim in the register (the fields of schema.org's ClaimReview).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Claim {
    pub number: u64,
    /// What is claimed.
    pub claim: String,
    /// Where and when it appeared.
    pub appeared_url: String,
    pub appeared_source: String,
    pub appeared_at: i64,
    /// The media item it came from, if imported.
    pub item: Option<String>,
    pub verdict: Verdict,
    pub official_figure: Option<OfficialFigure>,
    pub evidence: String,
    pub linked_reports: Vec<String>,
    pub created_by: String,
    pub created_at: i64,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<i64>,
}

/// Where a publication stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicationState {
    Draft,
    Approved,
}

impl PublicationState {
    /// The state's name on the dashboard, in Bahasa Indonesia.
    pub fn label(self) -> &'static str {
        match self {
            PublicationState::Draft => "draf",
            PublicationState::Approved => "terbit",
        }
    }
}

/// A press release drafted from verified reports.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct Publication {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub reports: Vec<String>,
    pub kanwil: Option<String>,
    pub state: PublicationState,
    pub drafted_by: String,
    pub drafted_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
}

/// Where claims are kept, numbered from `next_claim`.
const CLAIM_REGISTER: Register = Register {
    table: CLAIMS,
    counter: "next_claim",
    kind: "claim",
};
/// Where publications are kept, numbered from `next_publication`.
const PUBLICATION_REGISTER: Register = Register {
    table: PUBLICATIONS,
    counter: "next_publication",
    kind: "publication",
};

/// The claims register.
impl RedbStore {
    /// Adds a claim to the register; returns its number.
    pub fn add_claim(&self, mut claim: Claim, actor: &str) -> Result<u64, StoreError> {
        let at = Timestamp(claim.created_at);
        self.add_numbered(&CLAIM_REGISTER, actor, "claim_add", at, |number| {
            claim.number = number;
            let details = claim.claim.clone();
            (claim, details)
        })
    }

    /// Changes a claim with `change`; `None` if there is no such claim.
    pub fn update_claim(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut Claim),
    ) -> Result<Option<Claim>, StoreError> {
        let now = Timestamp::now();
        self.change_numbered(&CLAIM_REGISTER, number, actor, action, now, |claim| {
            change(claim);
            format!("verdict={}", claim.verdict.as_str())
        })
    }

    /// The claim register, oldest first.
    pub fn claims(&self) -> Result<Vec<Claim>, StoreError> {
        self.read_all(CLAIMS)
    }
}

/// Press releases.
impl RedbStore {
    /// Adds a publication draft; returns its number.
    pub fn add_publication(&self, mut p: Publication, actor: &str) -> Result<u64, StoreError> {
        let at = Timestamp(p.drafted_at);
        self.add_numbered(
            &PUBLICATION_REGISTER,
            actor,
            "publication_draft",
            at,
            |number| {
                p.number = number;
                let details = p.title.clone();
                (p, details)
            },
        )
    }

    /// Approves a publication; `None` if there is none with this number.
    pub fn approve_publication(
        &self,
        number: u64,
        actor: &str,
    ) -> Result<Option<Publication>, StoreError> {
        let now = Timestamp::now();
        let approve = |p: &mut Publication| {
            p.state = PublicationState::Approved;
            p.approved_by = Some(actor.to_owned());
            p.approved_at = Some(now.0);
            String::new()
        };
        let action = "publication_approve";
        self.change_numbered(&PUBLICATION_REGISTER, number, actor, action, now, approve)
    }

    /// Every publication, oldest first.
    pub fn publications(&self) -> Result<Vec<Publication>, StoreError> {
        self.read_all(PUBLICATIONS)
    }
}
