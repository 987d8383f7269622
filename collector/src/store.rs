//! The collector's store: sites, enrollment tokens, reports, per-(site, epoch) high-water marks,
//! gaps and rejections, in one redb database.
//!
//! Every batch is applied in a single write transaction that stores the new reports and advances
//! the high-water mark together, committed with `Durability::Immediate` before the ack is sent.
//! That is the whole of the collector's exactly-once argument: a crash before the commit loses
//! the batch and the hwm together (the agent resends), a crash after it loses only the ack (the
//! resend is recognised as a replay).

use bincode::{Decode, Encode};
use pasopati_common::attachment::AttachmentRef;
use pasopati_common::frame::{
    decode_value, encode_value, Batch, Heartbeat, Limits, NackReason, RefusedReport,
};
use pasopati_common::ingest::{apply_batch_rules, BatchVerdict, Ledger};
use pasopati_common::pii::{Finding, PiiGuard};
use pasopati_common::storage::OpenError;
use pasopati_common::sync::HelloDecision;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, Report, ReportId, Seq, SiteId, SiteType, Timestamp};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use std::path::{Path, PathBuf};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
/// SHA-256 of the token secret → token record.
const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");
/// (site, epoch) → high-water mark.
const HWM: TableDefinition<(&str, u64), u64> = TableDefinition::new("hwm");
/// Report id → the site that first filed it. Only that site may send later revisions.
const OWNERS: TableDefinition<&[u8], &str> = TableDefinition::new("owners");
/// Arrival number → stored report. Arrival numbers are dense and give the order of storing.
const REPORTS: TableDefinition<u64, &[u8]> = TableDefinition::new("reports");
/// (site, epoch, seq) → arrival number.
const BY_POSITION: TableDefinition<(&str, u64, u64), u64> = TableDefinition::new("by_position");
/// Report id → arrival number.
/// Report id and revision (16 + 4 bytes) → arrival number of that revision.
const BY_ID: TableDefinition<&[u8], u64> = TableDefinition::new("by_id");
/// Report id → arrival number of its latest revision.
const LATEST: TableDefinition<&[u8], u64> = TableDefinition::new("latest");
/// (site, epoch, first missing seq) → gap record.
const GAPS: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("gaps");
/// Rejection number → rejection record.
const REJECTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("rejections");
/// (site, received at in ms) → heartbeat, kept for seven days per site.
const HEARTBEATS: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("heartbeats");
/// How long heartbeat history is kept.
const HEARTBEAT_HISTORY_MS: i64 = 7 * 86_400_000;
/// Arrival number → a report held back because it carries inmate identity data.
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// (site, BLAKE3 hash) → the reference of an attachment a stored report of the site brings and
/// the collector does not hold yet. Only these are accepted from the site.
const ATTACHMENTS_EXPECTED: TableDefinition<(&str, &[u8]), &[u8]> =
    TableDefinition::new("attachments_expected");
/// BLAKE3 hash → a stored attachment (its bytes are in `attachments/<hex>`).
const ATTACHMENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("attachments");
/// Arrival number → a media item (its text with identity data masked) and where the analysis
/// placed it when it arrived.
const MEDIA: TableDefinition<u64, &[u8]> = TableDefinition::new("media");
/// Media item id → arrival number (an import of the same id again is skipped).
const MEDIA_IDS: TableDefinition<&str, u64> = TableDefinition::new("media_ids");
/// Claim number → claim under verification.
const CLAIMS: TableDefinition<u64, &[u8]> = TableDefinition::new("claims");
/// Username → dashboard user.
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// SHA-256 of an API token → the username it acts as.
const API_TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("api_tokens");
/// SHA-256 of an API token → its [`ApiTokenInfo`] (creation and expiry). Tokens created before
/// tokens expired have no row here; they stay valid until revoked and are listed as `legacy`.
const API_TOKEN_INFO: TableDefinition<&[u8], &[u8]> = TableDefinition::new("api_token_info");
/// Publication number → press release draft or published item.
const PUBLICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("publications");
/// Audit entry number → hash-chained audit entry.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// SHA-256 of a dashboard session id → the session (sessions, web/auth.rs). Created on first
/// login; a store without it has no sessions.
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");

const NEXT_ARRIVAL: &str = "next_arrival";
const NEXT_MEDIA: &str = "next_media";
const NEXT_CLAIM: &str = "next_claim";
const NEXT_PUBLICATION: &str = "next_publication";
const NEXT_REJECTION: &str = "next_rejection";
const AUDIT_COUNT: &str = "audit_count";

/// The store's file name inside the data directory.
pub const STORE_FILE: &str = "collector.redb";

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store {path} is in use by another process (is `pasopati-collector run` running for this data directory?)")]
    Locked { path: String },
    #[error(
        "the store {path} cannot be opened: {message}. Check the permissions of the data directory"
    )]
    Open { path: String, message: String },
    #[error("the store {path} is damaged ({reason}). Start the daemon to move it aside, then restore the latest backup of collector.redb")]
    Damaged { path: String, reason: String },
    #[error("the store was damaged ({reason}) and is kept aside at {moved}. Restore the latest backup of collector.redb into the data directory and start again (agents resend what they still hold); or start again as is to begin with an empty store (agents are then refused until their sites are registered again)")]
    MovedAside { moved: String, reason: String },
    #[error("store error: {0}. Check free disk space and permissions of the data directory")]
    Storage(String),
    #[error("a stored record cannot be decoded ({0}); the store may be damaged")]
    Corrupt(String),
    #[error("an earlier write to the store failed (disk full? I/O error?), and the store must be reopened: free space if needed; the collector stops so that its service manager restarts it")]
    NeedsReopen,
    #[error("site `{0}` is already registered")]
    SiteExists(String),
    #[error("site `{0}` is not registered; register it with `pasopati-collector site add`")]
    UnknownSite(String),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                match redb::Error::from(e) {
                    redb::Error::PreviousIo => StoreError::NeedsReopen,
                    other => StoreError::Storage(other.to_string()),
                }
            }
        }
    )*};
}
storage_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Whether a site may sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteStatus {
    /// Registered, never enrolled.
    Pending,
    /// Enrolled.
    Active,
    /// Revoked by an admin.
    Revoked,
}

/// A registered site.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct SiteRecord {
    pub id: SiteId,
    pub name: String,
    pub site_type: SiteType,
    pub kanwil: String,
    pub status: SiteStatus,
    pub created_at: Timestamp,
    pub enrolled_at: Option<Timestamp>,
    /// SHA-256 of the current certificate.
    pub cert_fingerprint: Option<[u8; 32]>,
    /// SHA-256 of the certificate a renewal replaced, still accepted until the new one is first
    /// used, so an agent that crashed before saving its renewed certificate is not locked out.
    pub previous_fingerprint: Option<[u8; 32]>,
    pub cert_not_after: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The site's clock minus ours at its last `Hello` or heartbeat, in milliseconds.
    pub clock_offset_ms: Option<i64>,
    /// When the last new report from the site was stored.
    pub last_report_at: Option<Timestamp>,
    /// The latest heartbeat, when it arrived, and the backlog of the one before it.
    pub health: Option<Health>,
    pub last_seen_at: Option<Timestamp>,
    pub reports: u64,
}

#[derive(Clone, Debug, Encode, Decode)]
struct TokenRecord {
    site: SiteId,
    created_at: Timestamp,
    expires_at: Timestamp,
    used_at: Option<Timestamp>,
}

/// A report as the collector holds it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredReport {
    pub arrival: u64,
    pub site: SiteId,
    pub epoch: Epoch,
    pub seq: Seq,
    pub report: Report,
    pub content_hash: [u8; 32],
    pub received_at: Timestamp,
}

/// How a gap came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// A batch skipped seqs; it was refused and nothing after the gap was stored.
    SkippedSeqs,
    /// The agent no longer holds seqs the collector does not have: the collector lost them
    /// (restored from an older copy). They cannot be recovered from this agent.
    CollectorRollback,
    /// The collector holds seqs the agent has not given out: the agent's outbox was restored from
    /// an older copy. The agent starts a new epoch; reports are matched by id.
    AgentRollback,
}

/// A recorded gap.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Gap {
    pub site: SiteId,
    pub epoch: Epoch,
    pub from: Seq,
    pub to: Seq,
    pub kind: GapKind,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub times: u64,
}

/// A site's latest heartbeat as the collector keeps it.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct Health {
    pub heartbeat: Heartbeat,
    pub received_at: Timestamp,
    /// The backlog reported by the heartbeat before this one.
    pub previous_backlog: Option<u64>,
}

/// An attachment the collector holds.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredAttachment {
    pub reference: AttachmentRef,
    /// The first site that sent it.
    pub site: SiteId,
    pub stored_at: Timestamp,
}

/// A media item as the collector keeps it.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize)]
pub struct StoredMedia {
    pub arrival: u64,
    pub id: String,
    pub url: String,
    pub normalized_url: String,
    pub source: String,
    /// Title and text with NIKs, phone and register numbers and initials masked.
    pub title: String,
    pub text: String,
    pub published_at: i64,
    pub social: bool,
    pub imported_at: i64,
    /// Where the analysis placed it on arrival.
    pub duplicate_of: Option<String>,
    pub story: String,
    pub upt: Vec<String>,
    pub kanwil: Vec<String>,
    pub sentiment: f64,
    pub topic: String,
    pub category: String,
}

/// Record counts, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Report revisions stored (quarantined ones not counted).
    pub reports: u64,
    pub rejections: u64,
    pub quarantined: u64,
    pub gaps: u64,
    pub media: u64,
}

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

/// What a dashboard user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Everything editorial: verdicts, publications.
    Analyst,
    /// The fleet, users and sites, and everything an analyst does.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "role `{other}` is unknown; use admin, analyst or viewer"
            )),
        }
    }
}

/// A dashboard user.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// Argon2id in PHC string form; never shown.
    #[serde(skip)]
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// When an API token was made and when it stops working (Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ApiTokenInfo {
    pub created_at: i64,
    pub expires_at: i64,
}

/// A dashboard session as the store keeps it, under the SHA-256 of its id (the id itself is
/// only in the user's cookie).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredSession {
    pub username: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; the session is void from then on.
    pub expires_at: i64,
}

/// An API token as `api-token list` shows it; never the token or its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiTokenView {
    /// The first 8 bytes of the token's SHA-256 in hex: what `api-token revoke` takes.
    pub id: String,
    pub username: String,
    /// RFC 3339; `None` for a legacy token.
    pub created_at: Option<String>,
    /// RFC 3339; `None` for a legacy token, which never expires.
    pub expires_at: Option<String>,
    pub expired: bool,
    /// Created before tokens carried an expiry: revoke it and create a new one.
    pub legacy: bool,
}

/// The id of an API token: the first 8 bytes of its SHA-256 in hex.
pub fn api_token_id(hash: &[u8]) -> String {
    pasopati_common::hex(&hash[..hash.len().min(8)])
}

/// Where a publication stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicationState {
    Draft,
    Approved,
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

/// A report held back from the main tables because it carries inmate identity data.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Quarantined {
    pub report: StoredReport,
    pub findings: Vec<Finding>,
}

/// A recorded refusal of a peer's frame or batch.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Rejection {
    pub at: Timestamp,
    pub site: Option<SiteId>,
    pub reason: String,
}

/// What applying a batch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Stored (or recognised) everything; `hwm` is the new high-water mark.
    Stored {
        hwm: Seq,
        stored: Vec<StoredReport>,
        replayed: u64,
        known_by_id: u64,
        /// Reports held in quarantine (inmate identity data found), not stored, with where
        /// the data is (never the value).
        quarantined: Vec<RefusedReport>,
        /// Reports refused (against the rules, or another site's report); their seqs are
        /// consumed and each is in the rejection log.
        refused: Vec<RefusedReport>,
    },
    /// Refused; nothing was stored.
    Refused { hwm: Seq, reason: NackReason },
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    pub site: Option<SiteId>,
    /// Only arrivals at or after this number.
    pub after_arrival: Option<u64>,
    pub limit: Option<usize>,
}

/// The redb store.
pub struct Store {
    db: Database,
    path: PathBuf,
}

fn encode<T: Encode>(v: &T) -> Vec<u8> {
    encode_value(v)
}

fn decode<T: Decode<()>>(raw: &[u8]) -> Result<T, StoreError> {
    decode_value(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Opens (creating if absent) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(STORE_FILE);
        let shown = path.display().to_string();
        let db = pasopati_common::storage::open(&path).map_err(|e| match e {
            OpenError::Locked { .. } => StoreError::Locked {
                path: shown.clone(),
            },
            OpenError::Damaged { reason, .. } => StoreError::Damaged {
                path: shown.clone(),
                reason,
            },
            OpenError::Other { reason, .. } => StoreError::Open {
                path: shown.clone(),
                message: reason,
            },
        })?;
        let txn = db.begin_write()?;
        txn.open_table(META)?;
        txn.open_table(SITES)?;
        txn.open_table(TOKENS)?;
        txn.open_table(HWM)?;
        txn.open_table(REPORTS)?;
        txn.open_table(BY_POSITION)?;
        txn.open_table(BY_ID)?;
        txn.open_table(LATEST)?;
        txn.open_table(OWNERS)?;
        txn.open_table(GAPS)?;
        txn.open_table(REJECTIONS)?;
        txn.open_table(AUDIT)?;
        txn.open_table(QUARANTINE)?;
        txn.open_table(HEARTBEATS)?;
        txn.open_table(ATTACHMENTS_EXPECTED)?;
        txn.open_table(ATTACHMENTS)?;
        txn.open_table(MEDIA)?;
        txn.open_table(MEDIA_IDS)?;
        txn.open_table(CLAIMS)?;
        txn.open_table(USERS)?;
        txn.open_table(API_TOKENS)?;
        txn.open_table(API_TOKEN_INFO)?;
        txn.open_table(PUBLICATIONS)?;
        txn.commit()?;
        Ok(Store { db, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers a new site.
    pub fn add_site(&self, site: &SiteRecord, actor: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sites = txn.open_table(SITES)?;
            if sites.get(site.id.as_str())?.is_some() {
                return Err(StoreError::SiteExists(site.id.to_string()));
            }
            sites.insert(site.id.as_str(), encode(site).as_slice())?;
        }
        audit(
            &txn,
            actor,
            "site_add",
            &site.id,
            format!(
                "name={:?} type={} kanwil={:?}",
                site.name, site.site_type, site.kanwil
            ),
            site.created_at,
        )?;
        txn.commit()?;
        Ok(())
    }

    /// Revokes a site: its connections are refused from now on. Returns false if it was already
    /// revoked.
    pub fn revoke_site(
        &self,
        site: &SiteId,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let changed = {
            let mut sites = txn.open_table(SITES)?;
            let mut record = registered(&sites, site)?;
            if record.status == SiteStatus::Revoked {
                false
            } else {
                record.status = SiteStatus::Revoked;
                record.revoked_at = Some(now);
                sites.insert(site.as_str(), encode(&record).as_slice())?;
                true
            }
        };
        if changed {
            audit(&txn, actor, "site_revoke", site, String::new(), now)?;
        }
        txn.commit()?;
        Ok(changed)
    }

    /// Issues a renewed certificate for a site that authenticated with its current one: the
    /// new certificate becomes current, the presented one stays accepted until the new one is
    /// first used.
    pub fn renew_cert<E: std::fmt::Display>(
        &self,
        site: &SiteId,
        presented: &[u8; 32],
        now: Timestamp,
        issue: impl FnOnce() -> Result<(Vec<u8>, Timestamp), E>,
    ) -> Result<Result<Vec<u8>, String>, StoreError> {
        let txn = self.db.begin_write()?;
        let cert = {
            let mut sites = txn.open_table(SITES)?;
            let mut record: SiteRecord = match sites.get(site.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Ok(Err(format!("site `{site}` is not registered"))),
            };
            if record.status != SiteStatus::Active {
                return Ok(Err(format!("site `{site}` is not active")));
            }
            // The previous certificate may renew too: the agent may have crashed before saving
            // the certificate of its last renewal.
            if record.cert_fingerprint.as_ref() != Some(presented)
                && record.previous_fingerprint.as_ref() != Some(presented)
            {
                return Ok(Err(
                    "this certificate is no longer current and cannot be renewed".into(),
                ));
            }
            let (cert, not_after) = match issue() {
                Ok(c) => c,
                Err(e) => return Ok(Err(e.to_string())),
            };
            record.previous_fingerprint = Some(*presented);
            record.cert_fingerprint = Some(pasopati_common::pki::fingerprint(&cert));
            record.cert_not_after = Some(not_after);
            sites.insert(site.as_str(), encode(&record).as_slice())?;
            cert
        };
        audit(
            &txn,
            &format!("site:{site}"),
            "cert_renewed",
            site,
            format!(
                "fingerprint={}",
                pasopati_common::hex(&pasopati_common::pki::fingerprint(&cert))
            ),
            now,
        )?;
        txn.commit()?;
        Ok(Ok(cert))
    }

    /// Notes that a site connected with its new certificate: the previous one is no longer
    /// accepted.
    pub fn retire_previous_cert(&self, site: &SiteId) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sites = txn.open_table(SITES)?;
            let record: Option<SiteRecord> = sites
                .get(site.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            if let Some(mut record) = record {
                if record.previous_fingerprint.take().is_some() {
                    sites.insert(site.as_str(), encode(&record).as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// One site.
    pub fn site(&self, id: &SiteId) -> Result<Option<SiteRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let sites = txn.open_table(SITES)?;
        let value = sites.get(id.as_str())?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// All sites, by id.
    pub fn sites(&self) -> Result<Vec<SiteRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let sites = txn.open_table(SITES)?;
        let mut out = Vec::new();
        for entry in sites.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Stores a token (by the hash of its secret) for a registered site.
    pub fn add_token(
        &self,
        site: &SiteId,
        secret_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
        actor: &str,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(SITES)?.get(site.as_str())?.is_none() {
                return Err(StoreError::UnknownSite(site.to_string()));
            }
            let record = TokenRecord {
                site: site.clone(),
                created_at: now,
                expires_at,
                used_at: None,
            };
            txn.open_table(TOKENS)?
                .insert(&secret_hash[..], encode(&record).as_slice())?;
        }
        audit(
            &txn,
            actor,
            "token_minted",
            site,
            format!(
                "expires_at={expires_at} token_hash={}",
                pasopati_common::hex(&secret_hash[..4])
            ),
            now,
        )?;
        txn.commit()?;
        Ok(())
    }

    /// Redeems a token and records the certificate `issue` returns, in one transaction: either
    /// the token is spent and the certificate recorded, or neither.
    pub fn redeem_token<E>(
        &self,
        site: &SiteId,
        secret_hash: &[u8; 32],
        now: Timestamp,
        issue: impl FnOnce() -> Result<(Vec<u8>, Timestamp), E>,
    ) -> Result<Result<Vec<u8>, TokenRefusal>, StoreError>
    where
        E: std::fmt::Display,
    {
        let txn = self.db.begin_write()?;
        let cert = {
            let mut tokens = txn.open_table(TOKENS)?;
            let record: Option<TokenRecord> = tokens
                .get(&secret_hash[..])?
                .map(|v| decode(v.value()))
                .transpose()?;
            let mut record = match record {
                Some(r) if &r.site == site => r,
                _ => return Ok(Err(TokenRefusal::Unknown)),
            };
            if let Some(used) = record.used_at {
                return Ok(Err(TokenRefusal::Used(used)));
            }
            if now > record.expires_at {
                return Ok(Err(TokenRefusal::Expired(record.expires_at)));
            }
            let mut sites = txn.open_table(SITES)?;
            let mut site_record: SiteRecord = match sites.get(site.as_str())? {
                Some(v) => decode(v.value())?,
                None => return Ok(Err(TokenRefusal::Unknown)),
            };
            if site_record.status == SiteStatus::Revoked {
                return Ok(Err(TokenRefusal::Revoked));
            }
            let (cert, not_after) = match issue() {
                Ok(c) => c,
                Err(e) => return Ok(Err(TokenRefusal::BadRequest(e.to_string()))),
            };
            record.used_at = Some(now);
            tokens.insert(&secret_hash[..], encode(&record).as_slice())?;
            site_record.status = SiteStatus::Active;
            site_record.enrolled_at = Some(now);
            // A new enrollment supersedes every earlier certificate of the site at once.
            site_record.cert_fingerprint = Some(pasopati_common::pki::fingerprint(&cert));
            site_record.previous_fingerprint = None;
            site_record.cert_not_after = Some(not_after);
            sites.insert(site.as_str(), encode(&site_record).as_slice())?;
            cert
        };
        let actor = format!("site:{site}");
        audit(
            &txn,
            &actor,
            "token_used",
            site,
            format!("token_hash={}", pasopati_common::hex(&secret_hash[..4])),
            now,
        )?;
        audit(
            &txn,
            &actor,
            "cert_issued",
            site,
            format!(
                "fingerprint={}",
                pasopati_common::hex(&pasopati_common::pki::fingerprint(&cert))
            ),
            now,
        )?;
        txn.commit()?;
        Ok(Ok(cert))
    }

    /// The high-water mark of (site, epoch); 0 if never seen.
    pub fn hwm(&self, site: &SiteId, epoch: Epoch) -> Result<Seq, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HWM)?;
        let value = table.get((site.as_str(), epoch.0))?;
        Ok(value.map(|v| v.value()).unwrap_or(0))
    }

    /// Applies a `Hello` decision: records a lost range as a gap and moves the hwm past it,
    /// records an agent rollback, and notes the site as seen.
    pub fn record_hello(
        &self,
        site: &SiteId,
        epoch: Epoch,
        decision: &HelloDecision,
        agent_time: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            if let HelloDecision::Welcome {
                hwm,
                lost,
                rerequested,
                agent_behind,
            } = decision
            {
                let mut gaps = txn.open_table(GAPS)?;
                if let Some(range) = lost {
                    upsert_gap(
                        &mut gaps,
                        site,
                        epoch,
                        *range.start(),
                        *range.end(),
                        GapKind::CollectorRollback,
                        now,
                    )?;
                }
                if let Some(set) = decision.hwm_to_record() {
                    txn.open_table(HWM)?.insert((site.as_str(), epoch.0), set)?;
                }
                if let Some(range) = rerequested {
                    record_rejection(
                        &txn,
                        Some(site),
                        format!(
                            "rollback detected for epoch {epoch}: seqs {}..={} were acknowledged \
                             earlier but are not in this store; the agent sends them again",
                            range.start(),
                            range.end()
                        ),
                        now,
                    )?;
                }
                if *agent_behind {
                    upsert_gap(
                        &mut gaps,
                        site,
                        epoch,
                        *hwm,
                        *hwm,
                        GapKind::AgentRollback,
                        now,
                    )?;
                }
            }
            touch_site(&txn, site, now, 0)?;
            let mut sites = txn.open_table(SITES)?;
            let record: Option<SiteRecord> = sites
                .get(site.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            if let Some(mut record) = record {
                record.clock_offset_ms = Some(agent_time.millis_since(now));
                sites.insert(site.as_str(), encode(&record).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Records a heartbeat: the site's latest health, its clock offset, and the history.
    pub fn record_heartbeat(
        &self,
        site: &SiteId,
        heartbeat: &Heartbeat,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sites = txn.open_table(SITES)?;
            let record: Option<SiteRecord> = sites
                .get(site.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            if let Some(mut record) = record {
                let previous_backlog = record.health.as_ref().map(|h| h.heartbeat.backlog);
                record.health = Some(Health {
                    heartbeat: heartbeat.clone(),
                    received_at: now,
                    previous_backlog,
                });
                record.clock_offset_ms = Some(heartbeat.agent_time.millis_since(now));
                record.last_seen_at = Some(now);
                sites.insert(site.as_str(), encode(&record).as_slice())?;
            }
            let mut history = txn.open_table(HEARTBEATS)?;
            // Two heartbeats within one millisecond keep both: the later one moves up a bit.
            let mut at = now.0;
            while history.get((site.as_str(), at))?.is_some() {
                at += 1;
            }
            history.insert((site.as_str(), at), encode(heartbeat).as_slice())?;
            let cutoff = now.0 - HEARTBEAT_HISTORY_MS;
            history.retain_in(
                (site.as_str(), i64::MIN)..(site.as_str(), cutoff),
                |_, _| false,
            )?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A site's heartbeat history, oldest first.
    pub fn heartbeats(&self, site: &SiteId) -> Result<Vec<(Timestamp, Heartbeat)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HEARTBEATS)?;
        let mut out = Vec::new();
        for entry in table.range((site.as_str(), i64::MIN)..=(site.as_str(), i64::MAX))? {
            let (k, v) = entry?;
            out.push((Timestamp(k.value().1), decode(v.value())?));
        }
        Ok(out)
    }

    /// Applies a batch from (site, epoch) in one durable transaction. The rules are
    /// `pasopati_common::ingest` (the same the simulation's model store follows); this is their
    /// redb ledger. A batch the rules refuse leaves nothing behind: its transaction is aborted
    /// and the refusal (with any gap) is recorded in a transaction of its own.
    pub fn apply_batch(
        &self,
        site: &SiteId,
        epoch: Epoch,
        batch: &Batch,
        limits: &Limits,
        guard: &PiiGuard,
        now: Timestamp,
    ) -> Result<BatchOutcome, StoreError> {
        let txn = self.db.begin_write()?;
        let hwm = {
            let hwm_table = txn.open_table(HWM)?;
            let hwm = hwm_table
                .get((site.as_str(), epoch.0))?
                .map(|v| v.value())
                .unwrap_or(0);
            hwm
        };
        let (verdict, stored) = {
            let mut ledger = RedbLedger::open(&txn, site, epoch, now)?;
            let verdict = apply_batch_rules(
                &mut ledger,
                site,
                hwm,
                batch,
                limits,
                Taxonomy::builtin(),
                |report| guard.check_report(report),
                now,
            )?;
            let stored = match &verdict {
                BatchVerdict::Applied(applied) => ledger.finish(applied.hwm)?,
                BatchVerdict::Refused { .. } => Vec::new(),
            };
            (verdict, stored)
        };
        match verdict {
            BatchVerdict::Refused {
                hwm,
                reason,
                skipped,
            } => {
                // Whatever the ledger changed for the reports before the refusal goes.
                txn.abort()?;
                let txn = self.db.begin_write()?;
                if let Some(range) = skipped {
                    let mut gaps = txn.open_table(GAPS)?;
                    upsert_gap(
                        &mut gaps,
                        site,
                        epoch,
                        *range.start(),
                        *range.end(),
                        GapKind::SkippedSeqs,
                        now,
                    )?;
                }
                let message = match &reason {
                    NackReason::Conflict { seq } if *seq <= hwm => {
                        format!("batch refused: epoch {epoch} {reason}; the stored report is kept")
                    }
                    NackReason::Conflict { seq } => format!(
                        "batch refused: report {} arrived again with different content",
                        batch.reports[(seq - batch.first_seq) as usize].id
                    ),
                    _ => format!("batch refused: {reason}"),
                };
                record_rejection(&txn, Some(site), message, now)?;
                txn.commit()?;
                Ok(BatchOutcome::Refused { hwm, reason })
            }
            BatchVerdict::Applied(applied) => {
                for r in &applied.refused {
                    record_rejection(
                        &txn,
                        Some(site),
                        format!(
                            "report {} revision {} (epoch {epoch}, seq {}) refused, not stored: {}",
                            r.id, r.revision, r.seq, r.reason
                        ),
                        now,
                    )?;
                }
                touch_site(&txn, site, now, stored.len() as u64)?;
                txn.commit()?;
                Ok(BatchOutcome::Stored {
                    hwm: applied.hwm,
                    stored,
                    replayed: applied.replayed,
                    known_by_id: applied.known_by_id,
                    quarantined: applied.quarantined,
                    refused: applied.refused,
                })
            }
        }
    }

    /// The reference of attachment `hash` if a stored report of `site` brings it and it is not
    /// held yet.
    pub fn expected_attachment(
        &self,
        site: &SiteId,
        hash: &[u8; 32],
    ) -> Result<Option<AttachmentRef>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ATTACHMENTS_EXPECTED)?;
        let value = table.get((site.as_str(), &hash[..]))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// The stored attachment with this hash.
    pub fn attachment(&self, hash: &[u8; 32]) -> Result<Option<StoredAttachment>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ATTACHMENTS)?;
        let value = table.get(&hash[..])?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Every stored attachment, in hash order.
    pub fn attachments(&self) -> Result<Vec<StoredAttachment>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ATTACHMENTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Records that attachment `reference`, sent by `site`, is verified and its file is in
    /// place; no site is expected to send it any more. Idempotent.
    pub fn record_attachment(
        &self,
        site: &SiteId,
        reference: &AttachmentRef,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut stored = txn.open_table(ATTACHMENTS)?;
            if stored.get(&reference.hash[..])?.is_none() {
                let record = StoredAttachment {
                    reference: reference.clone(),
                    site: site.clone(),
                    stored_at: now,
                };
                stored.insert(&reference.hash[..], encode(&record).as_slice())?;
            }
            let mut expected = txn.open_table(ATTACHMENTS_EXPECTED)?;
            let mut done = Vec::new();
            for entry in expected.iter()? {
                let (k, _) = entry?;
                let (s, h) = k.value();
                if h == &reference.hash[..] {
                    done.push(s.to_owned());
                }
            }
            for s in done {
                expected.remove((s.as_str(), &reference.hash[..]))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores media items not seen before (by id), in one transaction; returns how many were
    /// new. `make` builds each record from its arrival number, and is called only for new ids.
    pub fn add_media(
        &self,
        ids: &[String],
        mut make: impl FnMut(usize, u64) -> StoredMedia,
    ) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut added = Vec::with_capacity(ids.len());
        {
            let mut meta = txn.open_table(META)?;
            let mut media = txn.open_table(MEDIA)?;
            let mut by_id = txn.open_table(MEDIA_IDS)?;
            let mut next = meta.get(NEXT_MEDIA)?.map(|v| v.value()).unwrap_or(0);
            for (i, id) in ids.iter().enumerate() {
                if by_id.get(id.as_str())?.is_some() {
                    added.push(false);
                    continue;
                }
                let record = make(i, next);
                media.insert(next, encode(&record).as_slice())?;
                by_id.insert(id.as_str(), next)?;
                next += 1;
                added.push(true);
            }
            meta.insert(NEXT_MEDIA, next)?;
        }
        txn.commit()?;
        Ok(added)
    }

    /// Which of these media item ids are stored, read in one transaction.
    pub fn known_media<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEDIA_IDS)?;
        let mut known = std::collections::HashSet::new();
        for id in ids {
            if table.get(id)?.is_some() {
                known.insert(id.to_owned());
            }
        }
        Ok(known)
    }

    /// How many records some tables hold, read in one transaction without decoding them.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(StoreCounts {
            reports: txn.open_table(REPORTS)?.len()?,
            rejections: txn.open_table(REJECTIONS)?.len()?,
            quarantined: txn.open_table(QUARANTINE)?.len()?,
            gaps: txn.open_table(GAPS)?.len()?,
            media: txn.open_table(MEDIA)?.len()?,
        })
    }

    /// Media items in arrival order, from `after` (inclusive), at most `limit`.
    pub fn media(&self, after: u64, limit: usize) -> Result<Vec<StoredMedia>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MEDIA)?;
        let mut out = Vec::new();
        for entry in table.range(after..)?.take(limit) {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Adds a claim to the register; returns its number.
    pub fn add_claim(&self, mut claim: Claim, actor: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let number = {
            let mut meta = txn.open_table(META)?;
            let number = meta.get(NEXT_CLAIM)?.map(|v| v.value()).unwrap_or(1);
            claim.number = number;
            txn.open_table(CLAIMS)?
                .insert(number, encode(&claim).as_slice())?;
            meta.insert(NEXT_CLAIM, number + 1)?;
            number
        };
        audit(
            &txn,
            actor,
            "claim_add",
            &format!("claim:{number}"),
            claim.claim.chars().take(200).collect(),
            Timestamp(claim.created_at),
        )?;
        txn.commit()?;
        Ok(number)
    }

    /// Changes a claim with `change`; `None` if there is no such claim.
    pub fn update_claim(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut Claim),
    ) -> Result<Option<Claim>, StoreError> {
        let txn = self.db.begin_write()?;
        let claim = {
            let mut table = txn.open_table(CLAIMS)?;
            let existing = table.get(number)?.map(|v| decode::<Claim>(v.value()));
            let Some(mut claim) = existing.transpose()? else {
                return Ok(None);
            };
            change(&mut claim);
            table.insert(number, encode(&claim).as_slice())?;
            claim
        };
        audit(
            &txn,
            actor,
            action,
            &format!("claim:{number}"),
            format!("verdict={}", claim.verdict.as_str()),
            Timestamp::now(),
        )?;
        txn.commit()?;
        Ok(Some(claim))
    }

    /// Adds a user; refuses an existing username.
    pub fn add_user(&self, user: &User, actor: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            if users.get(user.username.as_str())?.is_some() {
                return Err(StoreError::Storage(format!(
                    "user `{}` exists already",
                    user.username
                )));
            }
            users.insert(user.username.as_str(), encode(user).as_slice())?;
        }
        audit(
            &txn,
            actor,
            "user_add",
            &format!("user:{}", user.username),
            format!("role={}", user.role.as_str()),
            Timestamp(user.created_at),
        )?;
        txn.commit()?;
        Ok(())
    }

    /// The user with this name.
    pub fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        let value = table.get(username)?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Disables a user; false if there is no such user.
    pub fn disable_user(&self, username: &str, actor: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            let existing = users.get(username)?.map(|v| decode::<User>(v.value()));
            let Some(mut user) = existing.transpose()? else {
                return Ok(false);
            };
            user.disabled = true;
            users.insert(username, encode(&user).as_slice())?;
        }
        // A disabled user's sessions go in the same transaction.
        remove_user_sessions(&txn, username)?;
        audit(
            &txn,
            actor,
            "user_disable",
            &format!("user:{username}"),
            String::new(),
            Timestamp::now(),
        )?;
        txn.commit()?;
        Ok(true)
    }

    /// Stores an API token (its SHA-256) for a user, valid until `expires_at` (Unix ms).
    pub fn add_api_token(
        &self,
        hash: &[u8; 32],
        username: &str,
        expires_at: i64,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let info = ApiTokenInfo {
            created_at: now.0,
            expires_at,
        };
        let txn = self.db.begin_write()?;
        txn.open_table(API_TOKENS)?.insert(&hash[..], username)?;
        txn.open_table(API_TOKEN_INFO)?
            .insert(&hash[..], encode(&info).as_slice())?;
        audit(
            &txn,
            actor,
            "api_token_create",
            &format!("user:{username}"),
            format!(
                "id={} expires_at={}",
                api_token_id(hash),
                Timestamp(expires_at).to_rfc3339()
            ),
            now,
        )?;
        txn.commit()?;
        Ok(())
    }

    /// The user an API token (by its SHA-256) acts as, if the token exists and has not
    /// expired.
    pub fn api_token_user(&self, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(username) = txn
            .open_table(API_TOKENS)?
            .get(&hash[..])?
            .map(|v| v.value().to_owned())
        else {
            return Ok(None);
        };
        let info = txn
            .open_table(API_TOKEN_INFO)?
            .get(&hash[..])?
            .map(|v| decode::<ApiTokenInfo>(v.value()))
            .transpose()?;
        match info {
            Some(info) if info.expires_at <= Timestamp::now().0 => Ok(None),
            _ => Ok(Some(username)),
        }
    }

    /// Every API token, expired ones included, by id.
    pub fn api_tokens(&self) -> Result<Vec<ApiTokenView>, StoreError> {
        let txn = self.db.begin_read()?;
        let tokens = txn.open_table(API_TOKENS)?;
        let infos = txn.open_table(API_TOKEN_INFO)?;
        let now = Timestamp::now().0;
        let mut out = Vec::new();
        for entry in tokens.iter()? {
            let (hash, username) = entry?;
            let info = infos
                .get(hash.value())?
                .map(|v| decode::<ApiTokenInfo>(v.value()))
                .transpose()?;
            out.push(ApiTokenView {
                id: api_token_id(hash.value()),
                username: username.value().to_owned(),
                created_at: info.as_ref().map(|i| Timestamp(i.created_at).to_rfc3339()),
                expires_at: info.as_ref().map(|i| Timestamp(i.expires_at).to_rfc3339()),
                expired: info.as_ref().is_some_and(|i| i.expires_at <= now),
                legacy: info.is_none(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Revokes the API token with this id (see [`api_token_id`]); returns the user it acted
    /// as, or `None` if no token has this id.
    pub fn revoke_api_token(&self, id: &str, actor: &str) -> Result<Option<String>, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        let txn = self.db.begin_write()?;
        let found = {
            let mut tokens = txn.open_table(API_TOKENS)?;
            let mut matching = Vec::new();
            for entry in tokens.iter()? {
                let (hash, username) = entry?;
                if api_token_id(hash.value()) == id {
                    matching.push((hash.value().to_vec(), username.value().to_owned()));
                }
            }
            if matching.len() > 1 {
                return Err(StoreError::Storage(format!(
                    "API token id `{id}` names {} tokens",
                    matching.len()
                )));
            }
            let Some((hash, username)) = matching.pop() else {
                return Ok(None);
            };
            tokens.remove(hash.as_slice())?;
            txn.open_table(API_TOKEN_INFO)?.remove(hash.as_slice())?;
            username
        };
        audit(
            &txn,
            actor,
            "api_token_revoke",
            &format!("user:{found}"),
            format!("id={id}"),
            Timestamp::now(),
        )?;
        txn.commit()?;
        Ok(Some(found))
    }

    // ---- Dashboard sessions (used by web/auth.rs) ----

    /// Stores a new session under the SHA-256 of its id. In the same transaction, expired
    /// sessions are swept and, if the user already has `max_per_user` live sessions, the
    /// oldest are removed so that at most that many remain.
    pub fn add_session(
        &self,
        hash: &[u8; 32],
        session: &StoredSession,
        max_per_user: usize,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().0;
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(SESSIONS)?;
            let mut expired = Vec::new();
            let mut mine: Vec<(i64, Vec<u8>)> = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                let s: StoredSession = decode(value.value())?;
                if s.expires_at <= now {
                    expired.push(key.value().to_vec());
                } else if s.username == session.username {
                    mine.push((s.created_at, key.value().to_vec()));
                }
            }
            mine.sort();
            let excess = (mine.len() + 1).saturating_sub(max_per_user.max(1));
            for key in expired
                .iter()
                .chain(mine.iter().take(excess).map(|(_, k)| k))
            {
                table.remove(key.as_slice())?;
            }
            table.insert(&hash[..], encode(session).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The live session stored under this SHA-256 of a session id; `None` if there is none or
    /// it has expired.
    pub fn session(&self, hash: &[u8; 32]) -> Result<Option<StoredSession>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(SESSIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(value) = table.get(&hash[..])? else {
            return Ok(None);
        };
        let s: StoredSession = decode(value.value())?;
        Ok((s.expires_at > Timestamp::now().0).then_some(s))
    }

    /// Removes the session stored under this SHA-256 of a session id (logout); false if there
    /// was none.
    pub fn remove_session(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = txn.open_table(SESSIONS)?.remove(&hash[..])?.is_some();
        txn.commit()?;
        Ok(removed)
    }

    /// How many sessions (live or not yet swept) a user has.
    pub fn session_count(&self, username: &str) -> Result<usize, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(SESSIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut n = 0;
        for entry in table.iter()? {
            let s: StoredSession = decode(entry?.1.value())?;
            n += usize::from(s.username == username);
        }
        Ok(n)
    }

    // ---- End of dashboard sessions ----

    /// Adds a publication draft; returns its number.
    pub fn add_publication(&self, mut p: Publication, actor: &str) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let number = {
            let mut meta = txn.open_table(META)?;
            let number = meta.get(NEXT_PUBLICATION)?.map(|v| v.value()).unwrap_or(1);
            p.number = number;
            txn.open_table(PUBLICATIONS)?
                .insert(number, encode(&p).as_slice())?;
            meta.insert(NEXT_PUBLICATION, number + 1)?;
            number
        };
        audit(
            &txn,
            actor,
            "publication_draft",
            &format!("publication:{number}"),
            p.title.chars().take(200).collect(),
            Timestamp(p.drafted_at),
        )?;
        txn.commit()?;
        Ok(number)
    }

    /// Approves a publication; `None` if there is none with this number.
    pub fn approve_publication(
        &self,
        number: u64,
        actor: &str,
    ) -> Result<Option<Publication>, StoreError> {
        let txn = self.db.begin_write()?;
        let p = {
            let mut table = txn.open_table(PUBLICATIONS)?;
            let existing = table.get(number)?.map(|v| decode::<Publication>(v.value()));
            let Some(mut p) = existing.transpose()? else {
                return Ok(None);
            };
            p.state = PublicationState::Approved;
            p.approved_by = Some(actor.to_owned());
            p.approved_at = Some(Timestamp::now().0);
            table.insert(number, encode(&p).as_slice())?;
            p
        };
        audit(
            &txn,
            actor,
            "publication_approve",
            &format!("publication:{number}"),
            String::new(),
            Timestamp::now(),
        )?;
        txn.commit()?;
        Ok(Some(p))
    }

    /// Every publication, oldest first.
    pub fn publications(&self) -> Result<Vec<Publication>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PUBLICATIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// The claim register, oldest first.
    pub fn claims(&self) -> Result<Vec<Claim>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CLAIMS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Records a refusal that is not about a batch (a malformed frame, a bad certificate).
    pub fn record_rejection(
        &self,
        site: Option<&SiteId>,
        reason: String,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        record_rejection(&txn, site, reason, Timestamp::now())?;
        txn.commit()?;
        Ok(())
    }

    /// Stored reports in arrival order, each at its latest revision (earlier revisions are in
    /// [`Store::revisions`]).
    pub fn reports(&self, query: &ReportQuery) -> Result<Vec<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let latest = txn.open_table(LATEST)?;
        let mut out = Vec::new();
        let limit = query.limit.unwrap_or(usize::MAX);
        for entry in reports.range(query.after_arrival.unwrap_or(0)..)? {
            if out.len() >= limit {
                break;
            }
            let r: StoredReport = decode(entry?.1.value())?;
            if query.site.as_ref().is_some_and(|s| s != &r.site) {
                continue;
            }
            if latest.get(&r.report.id.0[..])?.map(|v| v.value()) != Some(r.arrival) {
                continue;
            }
            out.push(r);
        }
        Ok(out)
    }

    /// Stored reports at their latest revision, newest first, that `keep` accepts: skips
    /// `offset` of them and returns at most `limit`, with the number of matches seen (which
    /// is the total when the scan reached the end).
    /// Without `count_all`, the scan ends once `limit` reports are found (the count is then a
    /// lower bound). `received_since` ends the scan at the first report received before it: arrivals are in
    /// order of receipt, and a report cannot have happened after it was received, so nothing
    /// older can be from after that time.
    pub fn reports_newest(
        &self,
        mut keep: impl FnMut(&StoredReport) -> bool,
        offset: usize,
        limit: usize,
        received_since: Option<Timestamp>,
        count_all: bool,
    ) -> Result<(Vec<StoredReport>, usize), StoreError> {
        let txn = self.db.begin_read()?;
        let reports = txn.open_table(REPORTS)?;
        let latest = txn.open_table(LATEST)?;
        let mut out = Vec::new();
        let mut matched = 0usize;
        for entry in reports.iter()?.rev() {
            let r: StoredReport = decode(entry?.1.value())?;
            if received_since.is_some_and(|t| r.received_at < t) {
                break;
            }
            if latest.get(&r.report.id.0[..])?.map(|v| v.value()) != Some(r.arrival) || !keep(&r) {
                continue;
            }
            matched += 1;
            if matched > offset && out.len() < limit {
                out.push(r);
            } else if limit == 0 || (out.len() >= limit && received_since.is_none() && !count_all) {
                break;
            }
        }
        Ok((out, matched))
    }

    /// Every stored revision of a report, oldest first.
    pub fn revisions(&self, id: &ReportId) -> Result<Vec<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_id = txn.open_table(BY_ID)?;
        let reports = txn.open_table(REPORTS)?;
        let mut from = id.0.to_vec();
        from.extend_from_slice(&[0; 4]);
        let mut to = id.0.to_vec();
        to.extend_from_slice(&[0xff; 4]);
        let mut out = Vec::new();
        for entry in by_id.range(from.as_slice()..=to.as_slice())? {
            if let Some(v) = reports.get(entry?.1.value())? {
                out.push(decode(v.value())?);
            }
        }
        Ok(out)
    }

    /// The latest revision of the report with this id.
    pub fn report(&self, id: &ReportId) -> Result<Option<StoredReport>, StoreError> {
        let txn = self.db.begin_read()?;
        let latest = txn.open_table(LATEST)?;
        let Some(arrival) = latest.get(&id.0[..])?.map(|v| v.value()) else {
            return Ok(None);
        };
        let reports = txn.open_table(REPORTS)?;
        let value = reports.get(arrival)?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// How many report revisions are stored (quarantined ones not counted).
    pub fn report_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(REPORTS)?.len()?)
    }

    /// Reports held in quarantine, oldest first.
    pub fn quarantine(&self) -> Result<Vec<Quarantined>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(QUARANTINE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// All recorded gaps.
    pub fn gaps(&self) -> Result<Vec<Gap>, StoreError> {
        let txn = self.db.begin_read()?;
        let gaps = txn.open_table(GAPS)?;
        let mut out = Vec::new();
        for entry in gaps.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// The audit log, oldest first, as stored (undecodable entries included as errors).
    pub fn audit_log(&self) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push((
                k.value(),
                decode_value(v.value()).map_err(|e| e.to_string()),
            ));
        }
        Ok(out)
    }

    /// How many audit entries were ever appended (kept apart from the entries, so entries
    /// removed from the end are noticed).
    pub fn audit_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get(AUDIT_COUNT)?;
        Ok(value.map(|v| v.value()).unwrap_or(0))
    }

    /// Walks the audit chain.
    pub fn verify_audit(&self) -> Result<Result<u64, AuditBreak>, StoreError> {
        Ok(verify_chain(&self.audit_log()?, self.audit_count()?))
    }

    /// All recorded rejections, oldest first.
    pub fn rejections(&self) -> Result<Vec<Rejection>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REJECTIONS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }
}

/// Corrections an admin makes after the fact: a way back for a revoked site, renaming and
/// removing sites, releasing or purging quarantined reports, changing a user's password or role.
/// Each is in the audit log, in the same transaction as the change.
impl Store {
    /// Lets a revoked site enroll again: it becomes pending, keeps its reports, high-water
    /// marks and gaps, and no earlier certificate is accepted. False if it was not revoked.
    pub fn reinstate_site(
        &self,
        site: &SiteId,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sites = txn.open_table(SITES)?;
            let mut record = registered(&sites, site)?;
            if record.status != SiteStatus::Revoked {
                return Ok(false);
            }
            record.status = SiteStatus::Pending;
            record.cert_fingerprint = None;
            record.previous_fingerprint = None;
            sites.insert(site.as_str(), encode(&record).as_slice())?;
        }
        audit(&txn, actor, "site_reinstate", site, reason.to_owned(), now)?;
        txn.commit()?;
        Ok(true)
    }

    /// Changes a site's name and, if given, its Kanwil.
    pub fn rename_site(
        &self,
        site: &SiteId,
        name: &str,
        kanwil: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let details = {
            let mut sites = txn.open_table(SITES)?;
            let mut record = registered(&sites, site)?;
            let details = format!(
                "name `{}` -> `{name}`; kanwil `{}` -> `{}`",
                record.name,
                record.kanwil,
                kanwil.unwrap_or(&record.kanwil)
            );
            record.name = name.to_owned();
            if let Some(k) = kanwil {
                record.kanwil = k.to_owned();
            }
            sites.insert(site.as_str(), encode(&record).as_slice())?;
            details
        };
        audit(&txn, actor, "site_rename", site, details, now)?;
        txn.commit()?;
        Ok(())
    }

    /// Removes a site registered by mistake, with its unused tokens. A site that ever stored a
    /// report is never removed (its reports must keep their site): revoke it instead. Returns
    /// the refusal in words, or `Ok(())`.
    pub fn remove_site(
        &self,
        site: &SiteId,
        actor: &str,
        now: Timestamp,
    ) -> Result<Result<(), String>, StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sites = txn.open_table(SITES)?;
            let record = registered(&sites, site)?;
            let has_data = record.reports > 0
                || txn
                    .open_table(HWM)?
                    .range((site.as_str(), 0)..=(site.as_str(), u64::MAX))?
                    .next()
                    .is_some();
            if has_data {
                return Ok(Err(format!(
                    "site `{site}` has sent reports; they keep their site, so it cannot be removed. Revoke it instead (`site revoke`)"
                )));
            }
            sites.remove(site.as_str())?;
            let mut tokens = txn.open_table(TOKENS)?;
            let mut mine = Vec::new();
            for entry in tokens.iter()? {
                let (k, v) = entry?;
                let token: TokenRecord = decode(v.value())?;
                if token.site == *site {
                    mine.push(k.value().to_vec());
                }
            }
            for k in mine {
                tokens.remove(k.as_slice())?;
            }
        }
        audit(&txn, actor, "site_remove", site, String::new(), now)?;
        txn.commit()?;
        Ok(Ok(()))
    }

    /// Releases a quarantined report into the reports (the guard was wrong: an admin read it
    /// and found no identity data). It becomes the shown revision if it is the newest.
    pub fn release_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<StoredReport>, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut quarantine = txn.open_table(QUARANTINE)?;
            let Some(held) = quarantine
                .remove(arrival)?
                .map(|v| decode::<Quarantined>(v.value()))
            else {
                return Ok(None);
            };
            let held = held?;
            if held.report.report.title.is_empty() {
                // Purged: nothing left to release.
                quarantine.insert(arrival, encode(&held).as_slice())?;
                return Ok(None);
            }
            let record = held.report;
            let mut reports = txn.open_table(REPORTS)?;
            reports.insert(arrival, encode(&record).as_slice())?;
            let mut latest = txn.open_table(LATEST)?;
            let newer = match latest.get(&record.report.id.0[..])?.map(|v| v.value()) {
                Some(a) => revision_at(&reports, &quarantine, a)?
                    .is_none_or(|r| record.report.revision >= r),
                None => true,
            };
            if newer {
                latest.insert(&record.report.id.0[..], arrival)?;
            }
            drop((reports, quarantine, latest));
            expect_attachments(&txn, &record.site, &record.report.attachments)?;
            record
        };
        audit(
            &txn,
            actor,
            "quarantine_release",
            &format!("report:{}", record.report.id),
            reason.to_owned(),
            now,
        )?;
        txn.commit()?;
        Ok(Some(record))
    }

    /// Purges a quarantined report's text (title, body, reason, attachment names). Its
    /// position and content hash stay, so a resend by the agent is still recognised as the same
    /// report and never stored. False if there is no such quarantined report.
    pub fn purge_quarantined(
        &self,
        arrival: u64,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let id = {
            let mut quarantine = txn.open_table(QUARANTINE)?;
            let Some(held) = quarantine
                .get(arrival)?
                .map(|v| decode::<Quarantined>(v.value()))
            else {
                return Ok(false);
            };
            let mut held = held?;
            held.report.report.title = String::new();
            held.report.report.body = String::new();
            held.report.report.retraction = held.report.report.retraction.map(|_| String::new());
            for a in &mut held.report.report.attachments {
                a.name = String::new();
            }
            quarantine.insert(arrival, encode(&held).as_slice())?;
            held.report.report.id
        };
        audit(
            &txn,
            actor,
            "quarantine_purge",
            &format!("report:{id}"),
            reason.to_owned(),
            now,
        )?;
        txn.commit()?;
        Ok(true)
    }

    /// Sets a user's password hash (Argon2id, made by the CLI) and, if given, role; the user's
    /// sessions and tokens keep their role only until their next check. False if no such user.
    pub fn update_user(
        &self,
        username: &str,
        password_hash: Option<String>,
        role: Option<Role>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let details = {
            let mut users = txn.open_table(USERS)?;
            let existing = users.get(username)?.map(|v| decode::<User>(v.value()));
            let Some(mut user) = existing.transpose()? else {
                return Ok(false);
            };
            let mut details = Vec::new();
            if let Some(hash) = password_hash {
                user.password_hash = hash;
                details.push("password changed".to_owned());
            }
            if let Some(role) = role {
                details.push(format!("role {} -> {}", user.role.as_str(), role.as_str()));
                user.role = role;
            }
            users.insert(username, encode(&user).as_slice())?;
            details.join("; ")
        };
        audit(
            &txn,
            actor,
            "user_update",
            &format!("user:{username}"),
            details,
            Timestamp::now(),
        )?;
        txn.commit()?;
        Ok(true)
    }
}

/// Why a token was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Used(Timestamp),
    Expired(Timestamp),
    Revoked,
    BadRequest(String),
}

/// The by-id key of a report revision: its id and its revision, big-endian.
/// Notes the attachments a newly stored report brings that the collector does not hold yet.
/// The ingest rules' ledger over one write transaction: positions, the (id, revision) index,
/// owners, the latest revision shown, and arrival numbers.
struct RedbLedger<'t> {
    txn: &'t redb::WriteTransaction,
    site: SiteId,
    epoch: Epoch,
    now: Timestamp,
    reports: redb::Table<'t, u64, &'static [u8]>,
    quarantine: redb::Table<'t, u64, &'static [u8]>,
    by_position: redb::Table<'t, (&'static str, u64, u64), u64>,
    by_id: redb::Table<'t, &'static [u8], u64>,
    latest: redb::Table<'t, &'static [u8], u64>,
    owners: redb::Table<'t, &'static [u8], &'static str>,
    next_arrival: u64,
    stored: Vec<StoredReport>,
}

impl<'t> RedbLedger<'t> {
    fn open(
        txn: &'t redb::WriteTransaction,
        site: &SiteId,
        epoch: Epoch,
        now: Timestamp,
    ) -> Result<RedbLedger<'t>, StoreError> {
        let next_arrival = {
            let meta = txn.open_table(META)?;
            let next = meta.get(NEXT_ARRIVAL)?.map(|v| v.value()).unwrap_or(0);
            next
        };
        Ok(RedbLedger {
            txn,
            site: site.clone(),
            epoch,
            now,
            reports: txn.open_table(REPORTS)?,
            quarantine: txn.open_table(QUARANTINE)?,
            by_position: txn.open_table(BY_POSITION)?,
            by_id: txn.open_table(BY_ID)?,
            latest: txn.open_table(LATEST)?,
            owners: txn.open_table(OWNERS)?,
            next_arrival,
            stored: Vec::new(),
        })
    }

    /// Moves the hwm and the arrival counter with the data; returns the reports stored.
    fn finish(self, hwm: Seq) -> Result<Vec<StoredReport>, StoreError> {
        let mut meta = self.txn.open_table(META)?;
        meta.insert(NEXT_ARRIVAL, self.next_arrival)?;
        let mut hwm_table = self.txn.open_table(HWM)?;
        let old = hwm_table
            .get((self.site.as_str(), self.epoch.0))?
            .map(|v| v.value())
            .unwrap_or(0);
        if hwm > old {
            hwm_table.insert((self.site.as_str(), self.epoch.0), hwm)?;
        }
        Ok(self.stored)
    }
}

impl Ledger for RedbLedger<'_> {
    type Error = StoreError;

    fn hash_at(&mut self, seq: Seq) -> Result<Option<[u8; 32]>, StoreError> {
        let arrival = self
            .by_position
            .get((self.site.as_str(), self.epoch.0, seq))?
            .map(|v| v.value());
        match arrival {
            Some(a) => stored_hash(&self.reports, &self.quarantine, a),
            None => Ok(None),
        }
    }

    fn hash_of_revision(
        &mut self,
        id: &ReportId,
        revision: u32,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        let mut key = [0u8; 20];
        key[..16].copy_from_slice(&id.0);
        key[16..].copy_from_slice(&revision.to_be_bytes());
        let arrival = self.by_id.get(&key[..])?.map(|v| v.value());
        match arrival {
            Some(a) => stored_hash(&self.reports, &self.quarantine, a),
            None => Ok(None),
        }
    }

    fn owner(&mut self, id: &ReportId) -> Result<Option<SiteId>, StoreError> {
        owner_of(
            &self.owners,
            &self.by_id,
            &self.reports,
            &self.quarantine,
            id,
        )
    }

    fn hold(
        &mut self,
        seq: Seq,
        report: &Report,
        hash: [u8; 32],
        findings: Vec<Finding>,
    ) -> Result<(), StoreError> {
        let arrival = self.next_arrival;
        let record = StoredReport {
            arrival,
            site: self.site.clone(),
            epoch: self.epoch,
            seq,
            report: report.clone(),
            content_hash: hash,
            received_at: self.now,
        };
        let clean = findings.is_empty();
        if clean {
            self.reports.insert(arrival, encode(&record).as_slice())?;
            expect_attachments(self.txn, &self.site, &report.attachments)?;
            self.stored.push(record);
        } else {
            self.quarantine.insert(
                arrival,
                encode(&Quarantined {
                    report: record,
                    findings,
                })
                .as_slice(),
            )?;
        }
        let key = revision_key(report);
        self.by_position
            .insert((self.site.as_str(), self.epoch.0, seq), arrival)?;
        self.by_id.insert(&key[..], arrival)?;
        if self.owners.get(&report.id.0[..])?.is_none() {
            self.owners.insert(&report.id.0[..], self.site.as_str())?;
        }
        // The highest clean revision is the one shown; an older one arriving late only joins
        // the history, and a quarantined one never hides the clean revision before it.
        let newer = clean
            && match self.latest.get(&report.id.0[..])?.map(|v| v.value()) {
                Some(a) => revision_at(&self.reports, &self.quarantine, a)?
                    .is_none_or(|r| report.revision >= r),
                None => true,
            };
        if newer {
            self.latest.insert(&report.id.0[..], arrival)?;
        }
        self.next_arrival += 1;
        Ok(())
    }

    fn link(&mut self, seq: Seq, report: &Report) -> Result<(), StoreError> {
        let key = revision_key(report);
        let arrival = self.by_id.get(&key[..])?.map(|v| v.value());
        if let Some(a) = arrival {
            self.by_position
                .insert((self.site.as_str(), self.epoch.0, seq), a)?;
        }
        Ok(())
    }
}

fn expect_attachments(
    txn: &redb::WriteTransaction,
    site: &SiteId,
    attachments: &[AttachmentRef],
) -> Result<(), StoreError> {
    if attachments.is_empty() {
        return Ok(());
    }
    let stored = txn.open_table(ATTACHMENTS)?;
    let mut expected = txn.open_table(ATTACHMENTS_EXPECTED)?;
    for a in attachments {
        if stored.get(&a.hash[..])?.is_none() {
            expected.insert((site.as_str(), &a.hash[..]), encode(a).as_slice())?;
        }
    }
    Ok(())
}

fn revision_key(report: &Report) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(&report.id.0);
    key[16..].copy_from_slice(&report.revision.to_be_bytes());
    key
}

/// The record of a registered site, or the error naming it unknown.
fn registered(
    sites: &redb::Table<&'static str, &'static [u8]>,
    site: &SiteId,
) -> Result<SiteRecord, StoreError> {
    match sites.get(site.as_str())? {
        Some(v) => decode(v.value()),
        None => Err(StoreError::UnknownSite(site.to_string())),
    }
}

/// The site that owns report `id`: the one that first filed it. Reports stored before the
/// owners table existed are found through any stored revision.
fn owner_of(
    owners: &redb::Table<&'static [u8], &'static str>,
    by_id: &redb::Table<&'static [u8], u64>,
    reports: &redb::Table<u64, &'static [u8]>,
    quarantine: &redb::Table<u64, &'static [u8]>,
    id: &ReportId,
) -> Result<Option<SiteId>, StoreError> {
    if let Some(site) = owners.get(&id.0[..])? {
        return Ok(SiteId::new(site.value()).ok());
    }
    let mut from = [0u8; 20];
    from[..16].copy_from_slice(&id.0);
    let mut to = [0xffu8; 20];
    to[..16].copy_from_slice(&id.0);
    for entry in by_id.range(&from[..]..=&to[..])? {
        let arrival = entry?.1.value();
        if let Some(v) = reports.get(arrival)? {
            return Ok(Some(decode::<StoredReport>(v.value())?.site));
        }
        if let Some(v) = quarantine.get(arrival)? {
            return Ok(Some(decode::<Quarantined>(v.value())?.report.site));
        }
    }
    Ok(None)
}

/// The revision of the report at `arrival`, stored or quarantined.
fn revision_at(
    reports: &redb::Table<u64, &'static [u8]>,
    quarantine: &redb::Table<u64, &'static [u8]>,
    arrival: u64,
) -> Result<Option<u32>, StoreError> {
    if let Some(v) = reports.get(arrival)? {
        return Ok(Some(decode::<StoredReport>(v.value())?.report.revision));
    }
    match quarantine.get(arrival)? {
        Some(v) => Ok(Some(
            decode::<Quarantined>(v.value())?.report.report.revision,
        )),
        None => Ok(None),
    }
}

/// The content hash of the report at `arrival`, stored or quarantined.
fn stored_hash(
    reports: &redb::Table<u64, &'static [u8]>,
    quarantine: &redb::Table<u64, &'static [u8]>,
    arrival: u64,
) -> Result<Option<[u8; 32]>, StoreError> {
    if let Some(v) = reports.get(arrival)? {
        return Ok(Some(decode::<StoredReport>(v.value())?.content_hash));
    }
    match quarantine.get(arrival)? {
        Some(v) => Ok(Some(decode::<Quarantined>(v.value())?.report.content_hash)),
        None => Ok(None),
    }
}

fn upsert_gap(
    gaps: &mut redb::Table<(&'static str, u64, u64), &'static [u8]>,
    site: &SiteId,
    epoch: Epoch,
    from: Seq,
    to: Seq,
    kind: GapKind,
    now: Timestamp,
) -> Result<(), StoreError> {
    let key = (site.as_str(), epoch.0, from);
    let existing: Option<Gap> = gaps.get(key)?.map(|v| decode(v.value())).transpose()?;
    let gap = match existing {
        Some(mut g) if g.kind == kind => {
            g.to = g.to.max(to);
            g.last_seen = now;
            g.times += 1;
            g
        }
        _ => Gap {
            site: site.clone(),
            epoch,
            from,
            to,
            kind,
            first_seen: now,
            last_seen: now,
            times: 1,
        },
    };
    gaps.insert(key, encode(&gap).as_slice())?;
    Ok(())
}

fn record_rejection(
    txn: &redb::WriteTransaction,
    site: Option<&SiteId>,
    reason: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let n = meta.get(NEXT_REJECTION)?.map(|v| v.value()).unwrap_or(0);
    meta.insert(NEXT_REJECTION, n + 1)?;
    let record = Rejection {
        at: now,
        site: site.cloned(),
        reason,
    };
    txn.open_table(REJECTIONS)?
        .insert(n, encode(&record).as_slice())?;
    Ok(())
}

fn touch_site(
    txn: &redb::WriteTransaction,
    site: &SiteId,
    now: Timestamp,
    new_reports: u64,
) -> Result<(), StoreError> {
    let mut sites = txn.open_table(SITES)?;
    let record: Option<SiteRecord> = sites
        .get(site.as_str())?
        .map(|v| decode(v.value()))
        .transpose()?;
    if let Some(mut record) = record {
        record.last_seen_at = Some(now);
        record.reports += new_reports;
        if new_reports > 0 {
            record.last_report_at = Some(now);
        }
        sites.insert(site.as_str(), encode(&record).as_slice())?;
    }
    Ok(())
}

/// One entry of the hash-chained audit log.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: Timestamp,
    /// Who: `local-admin uid=N` for the CLI, `site:<id>` for an agent.
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl AuditEntry {
    fn compute_hash(&self) -> [u8; 32] {
        let body = encode(&(
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            &self.subject,
            &self.details,
            self.prev_hash,
        ));
        pasopati_common::sha256(&body)
    }
}

/// An audit entry as found at a position of the log: decoded, or why it does not decode.
pub type StoredAuditEntry = (u64, Result<AuditEntry, String>);

/// Where and why the audit chain breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first entry (by position) that does not verify.
    pub entry: u64,
    pub reason: String,
}

impl std::fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit entry {}: {}", self.entry, self.reason)
    }
}

/// Checks a chain read from the store; `count` is how many entries were ever appended.
pub fn verify_chain(entries: &[StoredAuditEntry], count: u64) -> Result<u64, AuditBreak> {
    let mut prev = [0u8; 32];
    for (expected, (key, entry)) in (0u64..).zip(entries) {
        let broken = |reason: String| AuditBreak {
            entry: expected,
            reason,
        };
        if *key != expected {
            return Err(broken(format!(
                "is missing (the next stored entry is {key}): entries were removed"
            )));
        }
        let entry = entry
            .as_ref()
            .map_err(|e| broken(format!("cannot be decoded ({e}): it was changed")))?;
        if entry.seq != expected {
            return Err(broken(format!(
                "holds entry {} instead: entries were reordered",
                entry.seq
            )));
        }
        if entry.prev_hash != prev {
            return Err(broken(
                "does not follow the entry before it: entries were removed or reordered".into(),
            ));
        }
        if entry.compute_hash() != entry.hash {
            return Err(broken(
                "its content does not match its hash: it was changed".into(),
            ));
        }
        prev = entry.hash;
    }
    let stored = entries.len() as u64;
    if stored != count {
        return Err(AuditBreak {
            entry: stored,
            reason: format!("the log holds {stored} entries but {count} were appended: entries were removed from the end"),
        });
    }
    Ok(stored)
}

/// Appends an audit entry inside the caller's transaction, so the entry and the change it
/// records commit together.
/// Removes every session of a user within `txn` (dashboard sessions; see `Store::add_session`).
fn remove_user_sessions(txn: &redb::WriteTransaction, username: &str) -> Result<(), StoreError> {
    let mut table = txn.open_table(SESSIONS)?;
    let mut doomed = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let s: StoredSession = decode(value.value())?;
        if s.username == username {
            doomed.push(key.value().to_vec());
        }
    }
    for key in doomed {
        table.remove(key.as_slice())?;
    }
    Ok(())
}

fn audit(
    txn: &redb::WriteTransaction,
    actor: &str,
    action: &str,
    subject: &dyn std::fmt::Display,
    details: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(AUDIT_COUNT)?.map(|v| v.value()).unwrap_or(0);
    let mut table = txn.open_table(AUDIT)?;
    let prev_hash = match seq.checked_sub(1) {
        Some(last) => match table.get(last)? {
            Some(v) => decode::<AuditEntry>(v.value())?.hash,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "audit entry {last} is missing"
                )))
            }
        },
        None => [0u8; 32],
    };
    let mut entry = AuditEntry {
        seq,
        at: now,
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_string(),
        details,
        prev_hash,
        hash: [0u8; 32],
    };
    entry.hash = entry.compute_hash();
    table.insert(seq, encode(&entry).as_slice())?;
    meta.insert(AUDIT_COUNT, seq + 1)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pasopati_common::{Priority, ReportId};

    /// A plausible time for test reports (2026-01-01T00:00:00Z): the collector refuses reports
    /// from before 2020 or far in its future.
    pub(crate) const T0: i64 = 1_767_225_600_000;

    pub(crate) fn site() -> SiteId {
        SiteId::new("lapas-contoh").unwrap()
    }

    pub(crate) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_site(
                &SiteRecord {
                    id: site(),
                    name: "Lapas Contoh".into(),
                    site_type: SiteType::Lapas,
                    kanwil: "Contoh".into(),
                    status: SiteStatus::Active,
                    created_at: Timestamp(0),
                    enrolled_at: None,
                    cert_fingerprint: None,
                    previous_fingerprint: None,
                    cert_not_after: None,
                    revoked_at: None,
                    clock_offset_ms: None,
                    last_report_at: None,
                    health: None,
                    last_seen_at: None,
                    reports: 0,
                },
                "test",
            )
            .unwrap();
        (dir, store)
    }

    pub(crate) fn report(n: u64) -> Report {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        Report {
            id: ReportId(id),
            category: "humas".into(),
            priority: Priority::Normal,
            title: format!("Laporan {n}"),
            body: "Isi".into(),
            occurred_at: Timestamp(T0),
            filed_at: Timestamp(T0),
            revision: 0,
            retraction: None,
            attachments: Vec::new(),
        }
    }

    pub(crate) fn batch(first: u64, n: u64) -> Batch {
        Batch {
            first_seq: first,
            reports: (first..first + n).map(report).collect(),
        }
    }

    const E: Epoch = Epoch(9);

    fn stored_outcome(out: BatchOutcome) -> (Seq, usize, u64, Vec<RefusedReport>) {
        match out {
            BatchOutcome::Stored {
                hwm,
                stored,
                quarantined,
                refused,
                ..
            } => (hwm, stored.len(), quarantined.len() as u64, refused),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_sites_edit_or_retraction_is_refused_and_the_owners_report_kept() {
        let (_d, s) = store();
        let other = SiteId::new("rutan-lain").unwrap();
        let l = Limits::default();
        let g = PiiGuard::default();
        let now = Timestamp(T0 + 10);
        let original = report(1);
        s.apply_batch(&site(), E, &batch(1, 1), &l, &g, now)
            .unwrap();
        let mut edit = original.clone();
        edit.revision = 1;
        edit.title = "Teks situs lain".into();
        let mut retract = original.clone();
        retract.revision = 2;
        retract.retraction = Some("disembunyikan".into());
        let foreign = Batch {
            first_seq: 1,
            reports: vec![edit, retract, report(50)],
        };
        let (hwm, stored, _, refused) =
            stored_outcome(s.apply_batch(&other, E, &foreign, &l, &g, now).unwrap());
        assert_eq!(
            (hwm, stored),
            (3, 1),
            "seqs consumed, the clean report stored"
        );
        assert_eq!(
            refused.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2],
            "{refused:?}"
        );
        assert!(refused[0].reason.contains("another site"));
        let shown = s.report(&original.id).unwrap().unwrap();
        assert_eq!(
            (shown.site, shown.report.title),
            (site(), original.title.clone())
        );
        assert!(shown.report.retraction.is_none());
        assert!(s
            .rejections()
            .unwrap()
            .iter()
            .any(|r| r.reason.contains("refused, not stored")));
        // The owner itself may still edit.
        let mut own = original.clone();
        own.revision = 1;
        own.title = "Judul diperbaiki".into();
        let b = Batch {
            first_seq: 2,
            reports: vec![own],
        };
        let (_, stored, _, refused) =
            stored_outcome(s.apply_batch(&site(), E, &b, &l, &g, now).unwrap());
        assert_eq!((stored, refused.len()), (1, 0));
        assert_eq!(
            s.report(&original.id).unwrap().unwrap().report.title,
            "Judul diperbaiki"
        );
    }

    #[test]
    fn a_revision_held_with_other_content_is_refused_by_seq_and_the_batch_goes_on() {
        // A batch whose third report repeats the second one's (id, revision) with other content
        // (an outbox restored from an older copy numbers its next edit like one it already
        // delivered). Before, the whole batch was refused as a conflict, for ever, and the
        // reports before it were committed without the hwm or the arrival counter: the next
        // batch of any site overwrote them. Now the twin is refused by seq and the rest stored.
        let (_d, s) = store();
        let other = SiteId::new("rutan-lain").unwrap();
        let l = Limits::default();
        let g = PiiGuard::default();
        let now = Timestamp(T0 + 10);
        let mut twin = report(2);
        twin.title = "Isi lain".into();
        let b = Batch {
            first_seq: 1,
            reports: vec![report(1), report(2), twin, report(4)],
        };
        let (hwm, stored, _, refused) =
            stored_outcome(s.apply_batch(&site(), E, &b, &l, &g, now).unwrap());
        assert_eq!((hwm, stored), (4, 3));
        assert_eq!(refused.iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        assert!(refused[0].reason.contains("other content"), "{refused:?}");
        assert_eq!(s.hwm(&site(), E).unwrap(), 4);
        // Another site's report takes the next arrival; nothing of the first site's is
        // overwritten.
        let theirs = Batch {
            first_seq: 1,
            reports: vec![report(100)],
        };
        stored_outcome(s.apply_batch(&other, E, &theirs, &l, &g, now).unwrap());
        for n in [1, 2, 4] {
            let mine = s.report(&report(n).id).unwrap().unwrap();
            assert_eq!((mine.site, mine.report), (site(), report(n)));
        }
        let theirs = s.report(&report(100).id).unwrap().unwrap();
        assert_eq!((theirs.site, theirs.report), (other, report(100)));
    }

    #[test]
    fn a_quarantined_revision_never_hides_the_clean_one() {
        let (_d, s) = store();
        let l = Limits::default();
        let g = PiiGuard::default();
        let now = Timestamp(T0 + 10);
        let original = report(1);
        s.apply_batch(&site(), E, &batch(1, 1), &l, &g, now)
            .unwrap();
        let mut leaky = original.clone();
        leaky.revision = 1;
        leaky.body = "Hubungi 081234567890".into();
        let b = Batch {
            first_seq: 2,
            reports: vec![leaky],
        };
        let (_, stored, quarantined, _) =
            stored_outcome(s.apply_batch(&site(), E, &b, &l, &g, now).unwrap());
        assert_eq!((stored, quarantined), (0, 1));
        let shown = s.report(&original.id).unwrap().unwrap();
        assert_eq!(
            shown.report.revision, 0,
            "the clean revision stays the one shown"
        );
    }

    #[test]
    fn reports_against_the_shared_rules_are_refused_one_by_one() {
        let (_d, s) = store();
        let l = Limits::default();
        let g = PiiGuard::default();
        let now = Timestamp(T0 + 10);
        let mut bad = Vec::new();
        let mut r = report(10);
        r.title = "x".repeat(1_000);
        bad.push(r);
        let mut r = report(11);
        r.category = "<script>alert(1)</script>".into();
        bad.push(r);
        let mut r = report(12);
        r.occurred_at = Timestamp(253_402_300_799_000); // 9999-12-31
        bad.push(r);
        let mut r = report(13);
        r.occurred_at = Timestamp(i64::MIN);
        bad.push(r);
        let mut r = report(14);
        r.title = "Judul\u{1}".into();
        bad.push(r);
        let mut r = report(15);
        r.body = String::new();
        bad.push(r);
        let n = bad.len() as u64;
        bad.push(report(16));
        let b = Batch {
            first_seq: 1,
            reports: bad,
        };
        let (hwm, stored, _, refused) =
            stored_outcome(s.apply_batch(&site(), E, &b, &l, &g, now).unwrap());
        assert_eq!(
            (hwm, stored, refused.len() as u64),
            (n + 1, 1, n),
            "{refused:?}"
        );
        assert_eq!(s.report_count().unwrap(), 1);
        // A replay of the refused seqs is absorbed (nothing to compare), not a conflict.
        let again = s
            .apply_batch(&site(), E, &b, &l, &g, Timestamp(T0 + 11))
            .unwrap();
        assert!(matches!(again, BatchOutcome::Stored { hwm, .. } if hwm == n + 1));
    }

    #[test]
    fn replays_are_absorbed_and_conflicts_refused() {
        let (_d, s) = store();
        let l = Limits::default();
        let out = s
            .apply_batch(
                &site(),
                E,
                &batch(1, 3),
                &l,
                &PiiGuard::default(),
                Timestamp(T0 + 5),
            )
            .unwrap();
        assert!(matches!(out, BatchOutcome::Stored { hwm: 3, .. }));
        let out = s
            .apply_batch(
                &site(),
                E,
                &batch(2, 4),
                &l,
                &PiiGuard::default(),
                Timestamp(T0 + 6),
            )
            .unwrap();
        match out {
            BatchOutcome::Stored {
                hwm,
                stored,
                replayed,
                ..
            } => {
                assert_eq!((hwm, stored.len(), replayed), (5, 2, 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.report_count().unwrap(), 5);
        let mut evil = batch(2, 1);
        evil.reports[0].body = "diubah".into();
        let out = s
            .apply_batch(
                &site(),
                E,
                &evil,
                &l,
                &PiiGuard::default(),
                Timestamp(T0 + 7),
            )
            .unwrap();
        assert_eq!(
            out,
            BatchOutcome::Refused {
                hwm: 5,
                reason: NackReason::Conflict { seq: 2 }
            }
        );
        assert_eq!(s.report(&report(2).id).unwrap().unwrap().report.body, "Isi");
        assert_eq!(s.rejections().unwrap().len(), 1);
        assert_eq!(s.site(&site()).unwrap().unwrap().reports, 5);
    }

    #[test]
    fn gaps_are_refused_and_recorded() {
        let (_d, s) = store();
        let l = Limits::default();
        let out = s
            .apply_batch(
                &site(),
                E,
                &batch(3, 2),
                &l,
                &PiiGuard::default(),
                Timestamp(T0 + 5),
            )
            .unwrap();
        assert!(matches!(out, BatchOutcome::Refused { hwm: 0, .. }));
        assert_eq!(s.report_count().unwrap(), 0);
        let gaps = s.gaps().unwrap();
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (gaps[0].from, gaps[0].to, gaps[0].kind),
            (1, 2, GapKind::SkippedSeqs)
        );
    }

    #[test]
    fn a_report_under_a_new_epoch_is_recognised_by_id() {
        let (_d, s) = store();
        let l = Limits::default();
        s.apply_batch(
            &site(),
            E,
            &batch(1, 2),
            &l,
            &PiiGuard::default(),
            Timestamp(T0 + 5),
        )
        .unwrap();
        let again = Batch {
            first_seq: 1,
            reports: vec![report(2), report(7)],
        };
        match s
            .apply_batch(
                &site(),
                Epoch(10),
                &again,
                &l,
                &PiiGuard::default(),
                Timestamp(T0 + 6),
            )
            .unwrap()
        {
            BatchOutcome::Stored {
                hwm,
                stored,
                known_by_id,
                ..
            } => {
                assert_eq!((hwm, stored.len(), known_by_id), (2, 1, 1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.report_count().unwrap(), 3);
    }

    #[test]
    fn collector_rollback_is_recorded_as_a_gap() {
        let (_d, s) = store();
        let decision = HelloDecision::Welcome {
            hwm: 10,
            lost: Some(4..=10),
            rerequested: None,
            agent_behind: false,
        };
        s.record_hello(&site(), E, &decision, Timestamp(3), Timestamp(1))
            .unwrap();
        assert_eq!(s.site(&site()).unwrap().unwrap().clock_offset_ms, Some(2));
        assert_eq!(s.hwm(&site(), E).unwrap(), 10);
        assert_eq!(s.gaps().unwrap()[0].kind, GapKind::CollectorRollback);
    }

    #[test]
    fn tokens_are_single_use_and_expire() {
        let (_d, s) = store();
        let hash = [1u8; 32];
        s.add_token(&site(), &hash, Timestamp(0), Timestamp(100), "test")
            .unwrap();
        let issue = || Ok::<_, String>((vec![1, 2, 3], Timestamp(1000)));
        assert_eq!(
            s.redeem_token(&site(), &[2u8; 32], Timestamp(1), issue)
                .unwrap(),
            Err(TokenRefusal::Unknown)
        );
        let other = SiteId::new("rutan-lain").unwrap();
        assert_eq!(
            s.redeem_token(&other, &hash, Timestamp(1), issue).unwrap(),
            Err(TokenRefusal::Unknown)
        );
        assert!(s
            .redeem_token(&site(), &hash, Timestamp(1), issue)
            .unwrap()
            .is_ok());
        assert_eq!(
            s.redeem_token(&site(), &hash, Timestamp(2), issue).unwrap(),
            Err(TokenRefusal::Used(Timestamp(1)))
        );
        let hash2 = [3u8; 32];
        s.add_token(&site(), &hash2, Timestamp(0), Timestamp(100), "test")
            .unwrap();
        assert_eq!(
            s.redeem_token(&site(), &hash2, Timestamp(101), issue)
                .unwrap(),
            Err(TokenRefusal::Expired(Timestamp(100)))
        );
        let failing = || Err::<(Vec<u8>, Timestamp), _>("bad csr");
        assert!(matches!(
            s.redeem_token(&site(), &hash2, Timestamp(5), failing)
                .unwrap(),
            Err(TokenRefusal::BadRequest(_))
        ));
        // A failed issue leaves the token unused.
        assert!(s
            .redeem_token(&site(), &hash2, Timestamp(5), issue)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn the_audit_chain_verifies_and_names_tampering() {
        let (_d, s) = store();
        s.add_token(&site(), &[1; 32], Timestamp(0), Timestamp(100), "admin")
            .unwrap();
        s.revoke_site(&site(), "admin", Timestamp(2)).unwrap();
        let log = s.audit_log().unwrap();
        assert_eq!(s.verify_audit().unwrap(), Ok(3));
        let actions: Vec<_> = log
            .iter()
            .map(|(_, e)| e.as_ref().unwrap().action.clone())
            .collect();
        assert_eq!(actions, ["site_add", "token_minted", "site_revoke"]);

        let mut changed = log.clone();
        if let Ok(e) = &mut changed[1].1 {
            e.details.push('!');
        }
        assert_eq!(verify_chain(&changed, 3).unwrap_err().entry, 1);
        let removed: Vec<_> = log.iter().filter(|(k, _)| *k != 1).cloned().collect();
        assert_eq!(verify_chain(&removed, 3).unwrap_err().entry, 1);
        let mut swapped = log.clone();
        let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = b;
        swapped[2].1 = a;
        assert_eq!(verify_chain(&swapped, 3).unwrap_err().entry, 1);
        assert_eq!(verify_chain(&log[..2], 3).unwrap_err().entry, 2);
    }

    #[test]
    fn renewal_keeps_the_presented_certificate_until_the_new_one_is_used() {
        let (_d, s) = store();
        s.add_token(&site(), &[1; 32], Timestamp(0), Timestamp(100), "admin")
            .unwrap();
        let first = s
            .redeem_token(&site(), &[1; 32], Timestamp(1), || {
                Ok::<_, String>((vec![1], Timestamp(50)))
            })
            .unwrap()
            .unwrap();
        let fp1 = pasopati_common::pki::fingerprint(&first);
        let second = s
            .renew_cert(&site(), &fp1, Timestamp(2), || {
                Ok::<_, String>((vec![2], Timestamp(90)))
            })
            .unwrap()
            .unwrap();
        let record = s.site(&site()).unwrap().unwrap();
        assert_eq!(
            record.cert_fingerprint,
            Some(pasopati_common::pki::fingerprint(&second))
        );
        assert_eq!(record.previous_fingerprint, Some(fp1));
        s.retire_previous_cert(&site()).unwrap();
        assert_eq!(s.site(&site()).unwrap().unwrap().previous_fingerprint, None);
        let stale = s
            .renew_cert(&site(), &fp1, Timestamp(3), || {
                Ok::<_, String>((vec![3], Timestamp(90)))
            })
            .unwrap();
        assert!(stale.is_err(), "a retired certificate renewed");
        let actions: Vec<_> = s
            .audit_log()
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.unwrap().action)
            .collect();
        assert_eq!(
            actions,
            [
                "site_add",
                "token_minted",
                "token_used",
                "cert_issued",
                "cert_renewed"
            ]
        );
    }

    #[test]
    fn api_tokens_expire_are_revoked_one_by_one_and_old_records_still_read() {
        let (_dir, store) = store();
        let now = Timestamp::now().0;
        let live = pasopati_common::sha256(b"pst_hidup");
        let stale = pasopati_common::sha256(b"pst_basi");
        store
            .add_api_token(&live, "ana", now + 3_600_000, "test")
            .unwrap();
        store.add_api_token(&stale, "ana", now - 1, "test").unwrap();
        // A record written before tokens expired: only the hash → username row.
        let legacy = pasopati_common::sha256(b"pst_lama");
        {
            let txn = store.db.begin_write().unwrap();
            txn.open_table(API_TOKENS)
                .unwrap()
                .insert(&legacy[..], "budi")
                .unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(store.api_token_user(&live).unwrap().as_deref(), Some("ana"));
        assert_eq!(store.api_token_user(&stale).unwrap(), None);
        assert_eq!(
            store.api_token_user(&legacy).unwrap().as_deref(),
            Some("budi")
        );
        let listed = store.api_tokens().unwrap();
        assert_eq!(listed.len(), 3);
        let old = listed.iter().find(|t| t.username == "budi").unwrap();
        assert!(old.legacy && !old.expired && old.expires_at.is_none());
        assert!(listed
            .iter()
            .any(|t| t.expired && t.id == api_token_id(&stale)));
        assert_eq!(
            store
                .revoke_api_token(&api_token_id(&legacy), "test")
                .unwrap()
                .as_deref(),
            Some("budi")
        );
        assert_eq!(store.api_token_user(&legacy).unwrap(), None);
        assert_eq!(store.revoke_api_token("tidakada", "test").unwrap(), None);
        assert_eq!(store.api_tokens().unwrap().len(), 2);
        let actions: Vec<String> = store
            .audit_log()
            .unwrap()
            .into_iter()
            .filter_map(|(_, e)| e.ok().map(|e| e.action))
            .collect();
        assert!(actions.iter().any(|a| a == "api_token_revoke"));
        assert_eq!(
            actions.iter().filter(|a| *a == "api_token_create").count(),
            2
        );
    }
}
