//! Admin operations behind the CLI: registering sites and listing sites, reports and gaps. Each
//! runs either inside the daemon (reached over the control socket) or directly on the store
//! when no daemon runs; both paths call these functions.

use crate::attachments::AttachmentDir;
use crate::authority::Authority;
use crate::config::CollectorConfig;
use crate::store::{
    AuditEntry, Claim, Gap, GapKind, OfficialFigure, ReportQuery, Role, Scope, SiteRecord,
    SiteStatus, Store, StoreError, StoredReport, Verdict,
};
use bincode::{Decode, Encode};
use pasopati_common::attachment::AttachmentRef;
use pasopati_common::token::EnrollmentToken;
use pasopati_common::{HumanDuration, SiteId, SiteType, Timestamp};
use serde::Serialize;

/// Arguments of `site add`.
#[derive(Clone, Debug, Encode, Decode)]
pub struct SiteAdd {
    pub id: SiteId,
    pub name: String,
    pub site_type: SiteType,
    pub kanwil: String,
    /// How long the enrollment token is valid (default: `token_ttl` of the configuration).
    pub ttl: Option<HumanDuration>,
}

/// A site as `site list` shows it.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq)]
pub struct SiteView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub site_type: String,
    pub kanwil: String,
    /// `pending` (never enrolled), `online` (in contact), `buffering` (in contact, backlog
    /// growing), `offline` (no live connection, or one silent for `offline_after`), `silent`
    /// (no report for
    /// `silent_after`), or `revoked`.
    pub state: SiteState,
    /// Whether a session is live now.
    pub connected: bool,
    pub last_seen_at: Option<String>,
    pub enrolled_at: Option<String>,
    pub cert_not_after: Option<String>,
    pub revoked_at: Option<String>,
    /// The site's clock minus the collector's at its last contact, in milliseconds.
    pub clock_offset_ms: Option<i64>,
    pub reports: u64,
    pub last_report_at: Option<String>,
    /// From the latest heartbeat:
    pub backlog: Option<u64>,
    /// The backlog was counted before a batch the collector stored since.
    pub backlog_stale: bool,
    pub oldest_unsent_at: Option<String>,
    pub last_sync_at: Option<String>,
    pub disk_free_bytes: Option<u64>,
    pub mem_used_bytes: Option<u64>,
    pub cpu_percent: Option<f32>,
    pub agent_version: Option<String>,
    /// The site's outbox is full and refuses new reports.
    pub quota_full: Option<bool>,
    pub heartbeat_at: Option<String>,
    /// The version of the center's configuration the agent runs (from its last status; none
    /// from an agent of protocol 1).
    pub config_version: Option<u64>,
    /// The version the center wants it to run (0: no configuration set for it).
    pub config_wanted: u64,
    /// Why the agent did not apply the configuration last offered, if it did not.
    pub config_error: Option<String>,
    /// Where its update stands: `idle`, `downloading`, `installed`, `healthy`,
    /// `rolled_back` or `refused` (none from an agent of protocol 1).
    pub update: Option<String>,
}

/// An audit entry as `audit show` prints it.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct AuditView {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: String,
    pub hash: String,
}

/// A report as `reports` shows it.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct ReportView {
    pub id: String,
    pub site_id: String,
    pub epoch: String,
    pub seq: u64,
    pub category: String,
    pub priority: pasopati_common::Priority,
    pub title: String,
    pub body: String,
    pub occurred_at: String,
    pub filed_at: String,
    pub received_at: String,
    pub arrival: u64,
    /// 0 as first filed; each edit or retraction is the next revision.
    pub revision: u32,
    /// The reason, when the report was retracted.
    pub retraction: Option<String>,
    pub attachments: Vec<AttachmentView>,
}

/// An attachment as `reports` and `attachments` show it.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct AttachmentView {
    /// BLAKE3 of the stripped file, in hex; also its file name under `attachments/`.
    pub hash: String,
    pub name: String,
    pub media_type: String,
    pub size: u64,
    /// Whether the collector holds the file yet (it follows its report).
    pub stored: bool,
    /// Where the file is, once stored.
    pub path: Option<String>,
    /// The site that sent it first, and when (stored attachments only).
    pub site_id: Option<String>,
    pub stored_at: Option<String>,
}

/// A quarantined report as `quarantine` shows it: where the identity data is, not what it is.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct QuarantineView {
    /// The number `quarantine release` and `quarantine purge` take.
    pub number: u64,
    pub id: String,
    pub site_id: String,
    pub epoch: String,
    pub seq: u64,
    pub category: String,
    pub received_at: String,
    pub findings: Vec<pasopati_common::pii::Finding>,
}

/// A gap as `gaps` shows it.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct GapView {
    pub site_id: String,
    pub epoch: String,
    pub from_seq: u64,
    pub to_seq: u64,
    pub kind: GapKind,
    pub first_seen: String,
    pub last_seen: String,
    pub times: u64,
}

/// Who runs an admin command on this machine, for the audit log.
pub fn local_actor(uid: Option<u32>) -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = uid.or_else(|| std::fs::metadata("/proc/self").ok().map(|m| m.uid()));
    match uid {
        Some(uid) => format!("local-admin uid={uid}"),
        None => "local-admin".into(),
    }
}

/// An admin operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::newsroom::EditError> for AdminError {
    fn from(e: crate::newsroom::EditError) -> AdminError {
        match e {
            crate::newsroom::EditError::Store(e) => AdminError::Store(e),
            refused => AdminError::Invalid(refused.to_string()),
        }
    }
}

/// The Kanwil of the gazetteer (`config/upt.csv`) that `given` names, in its own spelling: case,
/// spacing and a leading "Kanwil" do not matter. Anything else is refused with the nearest
/// names, so a typo never becomes a 39th Kanwil.
/// A site's name and Kanwil as registered, or its id and no Kanwil if it is not (any more).
pub fn site_name_and_kanwil(store: &Store, site: &str) -> (String, String) {
    SiteId::new(site)
        .ok()
        .and_then(|s| store.site(&s).ok().flatten())
        .map(|s| (s.name, s.kanwil))
        .unwrap_or_else(|| (site.to_owned(), String::new()))
}

/// Checks the scope of a regional role before a user gets it: an upt_operator's site must be
/// registered (a Kanwil was checked against the gazetteer when the CLI read it).
pub fn check_role_scope(store: &Store, role: &Role) -> Result<(), AdminError> {
    match role.scope() {
        Scope::Site(site) => {
            let known = SiteId::new(&site)
                .ok()
                .map(|id| store.site(&id))
                .transpose()?
                .flatten()
                .is_some();
            if known {
                Ok(())
            } else {
                Err(AdminError::Invalid(format!(
                    "there is no site `{site}`; `pasopati-collector site list` shows the sites"
                )))
            }
        }
        Scope::Kanwil(kanwil) => canonical_kanwil(&kanwil).map(|_| ()),
        Scope::National => Ok(()),
    }
}

pub fn canonical_kanwil(given: &str) -> Result<String, AdminError> {
    let known = pasopati_analysis::gazetteer::Gazetteer::builtin().kanwil_names();
    let fold = |s: &str| {
        let lower = s.trim().to_lowercase();
        let lower = lower
            .strip_prefix("kanwil ")
            .map(str::to_owned)
            .unwrap_or(lower);
        lower.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let wanted = fold(given);
    if wanted.is_empty() {
        return Err(AdminError::Invalid(
            "the Kanwil is empty; give the regional office, e.g. \"Jawa Barat\"".into(),
        ));
    }
    if let Some(k) = known.iter().find(|k| fold(k) == wanted) {
        return Ok(k.clone());
    }
    let mut near: Vec<(usize, &String)> = known
        .iter()
        .map(|k| (edit_distance(&fold(k), &wanted), k))
        .filter(|(d, _)| *d <= 3)
        .collect();
    near.sort();
    let hint = match near.first() {
        Some((_, k)) => format!("did you mean `{k}`? "),
        None => String::new(),
    };
    Err(AdminError::Invalid(format!(
        "Kanwil `{}` is not one of the {} Kanwil of config/upt.csv; {hint}Known: {}",
        pasopati_common::terminal::escape(given.trim()),
        known.len(),
        known.join(", ")
    )))
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Lets a revoked site back in (`site reinstate`): the site becomes pending and keeps its
/// history, and a fresh enrollment token is minted. At the site, `pasopati-agent enroll --force`
/// with that token keeps the outbox, so every report queued while revoked is then sent.
pub fn site_reinstate(
    store: &Store,
    authority: &Authority,
    config: &CollectorConfig,
    site: &SiteId,
    reason: &str,
    ttl: Option<HumanDuration>,
    actor: &str,
) -> Result<String, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AdminError::Invalid(
            "the reason is empty; say why the site may come back (it goes into the audit log)"
                .into(),
        ));
    }
    if !store.reinstate_site(site, actor, reason, Timestamp::now())? {
        return Err(AdminError::Invalid(format!(
            "site `{site}` is not revoked; to re-enroll it use `site token`"
        )));
    }
    mint_token(store, authority, config, site, ttl, Timestamp::now(), actor)
}

/// Renames a site, and moves it to another Kanwil if given.
pub fn site_rename(
    store: &Store,
    site: &SiteId,
    name: &str,
    kanwil: Option<&str>,
    actor: &str,
) -> Result<(), AdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AdminError::Invalid("--name is empty".into()));
    }
    let kanwil = kanwil.map(canonical_kanwil).transpose()?;
    Ok(store.rename_site(site, name, kanwil.as_deref(), actor, Timestamp::now())?)
}

/// Removes a site that never sent a report (registered by mistake).
pub fn site_remove(store: &Store, site: &SiteId, actor: &str) -> Result<(), AdminError> {
    store
        .remove_site(site, actor, Timestamp::now())?
        .map_err(AdminError::Invalid)
}

/// Adds a claim to the register, unverified; returns its number. Identity data in the claim
/// (a NIK, a phone or register number, a deny-listed name, introduced initials) is masked
/// before it is stored, as in imported media: the register quotes public text, but the center
/// keeps no inmate identity data.
#[allow(clippy::too_many_arguments)]
pub fn claim_add(
    store: &Store,
    guard: &pasopati_common::pii::PiiGuard,
    claim: String,
    url: String,
    source: String,
    appeared_at: i64,
    item: Option<String>,
    actor: &str,
) -> Result<u64, AdminError> {
    let claim = pasopati_analysis::media::mask(guard, claim.trim());
    if claim.is_empty() || claim.chars().count() > 2000 {
        return Err(AdminError::Invalid(
            "--claim is empty or longer than 2,000 characters; quote the claim as it appeared"
                .into(),
        ));
    }
    if url.trim().is_empty() && item.is_none() {
        return Err(AdminError::Invalid(
            "say where the claim appeared: --url, or --item for an imported media item".into(),
        ));
    }
    let now = Timestamp::now();
    Ok(store.add_claim(
        Claim {
            number: 0,
            claim,
            appeared_url: url.trim().to_owned(),
            appeared_source: source.trim().to_owned(),
            appeared_at,
            item,
            verdict: Verdict::BelumTerverifikasi,
            official_figure: None,
            evidence: String::new(),
            linked_reports: Vec::new(),
            created_by: actor.to_owned(),
            created_at: now.0,
            reviewed_by: None,
            reviewed_at: None,
        },
        actor,
    )?)
}

/// Records a verdict with its evidence (identity data in the evidence masked).
#[allow(clippy::too_many_arguments)]
pub fn claim_verdict(
    store: &Store,
    guard: &pasopati_common::pii::PiiGuard,
    number: u64,
    verdict: &str,
    figure: Option<(String, String, i64)>,
    reports: Vec<String>,
    evidence: String,
    actor: &str,
) -> Result<Claim, AdminError> {
    let verdict: Verdict = verdict.parse().map_err(AdminError::Invalid)?;
    if verdict != Verdict::BelumTerverifikasi && figure.is_none() && evidence.trim().is_empty() {
        return Err(AdminError::Invalid(
            "a verdict needs its evidence: --official-figure with --figure-source and --as-of, or --evidence".into(),
        ));
    }
    let now = Timestamp::now().0;
    store
        .update_claim(number, actor, "claim_verdict", |c| {
            c.verdict = verdict;
            if let Some((value, source, as_of)) = figure {
                c.official_figure = Some(OfficialFigure {
                    value,
                    source,
                    as_of,
                });
            }
            for r in reports {
                if !c.linked_reports.contains(&r) {
                    c.linked_reports.push(r);
                }
            }
            if !evidence.trim().is_empty() {
                c.evidence = pasopati_analysis::media::mask(guard, evidence.trim());
            }
            c.reviewed_by = Some(actor.to_owned());
            c.reviewed_at = Some(now);
        })?
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "there is no claim {number}; see `pasopati-collector claims`"
            ))
        })
}

/// The claim register.
pub fn claims(store: &Store) -> Result<Vec<Claim>, AdminError> {
    Ok(store.claims()?)
}

/// A claim as schema.org's ClaimReview, with the register's own fields added.
pub fn claim_review(c: &Claim) -> serde_json::Value {
    let time = |ms: i64| Timestamp(ms).to_rfc3339();
    serde_json::json!({
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "identifier": c.number,
        "claimReviewed": c.claim,
        "itemReviewed": {
            "@type": "Claim",
            "appearance": {
                "@type": "CreativeWork",
                "url": c.appeared_url,
                "publisher": c.appeared_source,
                "datePublished": time(c.appeared_at),
            },
            "mediaItem": c.item,
        },
        "reviewRating": {
            "@type": "Rating",
            "alternateName": c.verdict.as_str(),
        },
        "author": c.reviewed_by,
        "datePublished": c.reviewed_at.map(time),
        "officialFigure": c.official_figure.as_ref().map(|f| serde_json::json!({
            "value": f.value,
            "source": f.source,
            "asOf": time(f.as_of),
        })),
        "evidence": c.evidence,
        "linkedReports": c.linked_reports,
        "createdBy": c.created_by,
        "createdAt": time(c.created_at),
    })
}

/// Registers a site and mints its first enrollment token; returns the token.
pub fn site_add(
    store: &Store,
    authority: &Authority,
    config: &CollectorConfig,
    args: SiteAdd,
    actor: &str,
) -> Result<String, AdminError> {
    let name = args.name.trim().to_owned();
    let kanwil = args.kanwil.trim().to_owned();
    if name.is_empty() {
        return Err(AdminError::Invalid(
            "the name is empty; give the UPT's name, e.g. \"Lapas Kelas IIA Contoh\"".into(),
        ));
    }
    let kanwil = canonical_kanwil(&kanwil)?;
    let now = Timestamp::now();
    let record = SiteRecord::new(
        args.id.clone(),
        name,
        args.site_type,
        kanwil,
        SiteStatus::Pending,
        now,
    );
    store.add_site(&record, actor)?;
    mint_token(store, authority, config, &args.id, args.ttl, now, actor)
}

/// Mints a fresh enrollment token for a registered site (re-enrollment after a disk failure or
/// a lost token). Once used, the new certificate replaces the old one.
pub fn site_token(
    store: &Store,
    authority: &Authority,
    config: &CollectorConfig,
    site: &SiteId,
    ttl: Option<HumanDuration>,
    actor: &str,
) -> Result<String, AdminError> {
    match store.site(site)? {
        None => Err(AdminError::Store(StoreError::UnknownSite(site.to_string()))),
        Some(s) if s.status == SiteStatus::Revoked => Err(AdminError::Invalid(format!(
            "site `{site}` is revoked; a revoked site cannot be enrolled again"
        ))),
        Some(_) => mint_token(store, authority, config, site, ttl, Timestamp::now(), actor),
    }
}

fn mint_token(
    store: &Store,
    authority: &Authority,
    config: &CollectorConfig,
    site: &SiteId,
    ttl: Option<HumanDuration>,
    now: Timestamp,
    actor: &str,
) -> Result<String, AdminError> {
    let mut token =
        EnrollmentToken::mint(config.public_addr.clone(), authority.ca_fingerprint(), site);
    // The release key, once the center has one, goes with the token: the agent trusts it from
    // enrollment on instead of from its first session.
    token.release_key = crate::fleet::release::public_key(store)?
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok());
    let ttl = ttl.unwrap_or(config.token_ttl);
    let expires = Timestamp(now.0.saturating_add(ttl.as_millis_i64()));
    store.add_token(
        site,
        &EnrollmentToken::secret_hash(&token.secret),
        now,
        expires,
        actor,
    )?;
    Ok(token.encode())
}

/// Revokes a site in the store. The daemon also closes its live connection.
pub fn site_revoke(store: &Store, site: &SiteId, actor: &str) -> Result<bool, AdminError> {
    Ok(store.revoke_site(site, actor, Timestamp::now())?)
}

/// The audit log as stored (entries that do not decode are skipped here; `audit verify`
/// reports them).
pub fn audit_show(store: &Store) -> Result<Vec<AuditView>, AdminError> {
    Ok(store
        .audit_log()?
        .into_iter()
        .filter_map(|(_, e)| e.ok())
        .map(audit_view)
        .collect())
}

fn audit_view(e: AuditEntry) -> AuditView {
    AuditView {
        seq: e.seq,
        at: e.at.to_rfc3339(),
        actor: e.actor,
        action: e.action,
        subject: e.subject,
        details: e.details,
        hash: pasopati_common::hex(&e.hash),
    }
}

/// Whether the backlog of the site's last heartbeat predates a batch the collector stored
/// since: the agent has sent since, so the count is out of date (shown as stale, and it does not
/// make the site `buffering`).
pub fn backlog_stale(site: &SiteRecord) -> bool {
    match (&site.health, site.last_report_at) {
        (Some(h), Some(batch)) => batch > h.received_at,
        _ => false,
    }
}

/// The state of a site as `site list`, the dashboard and the event stream show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Encode, Decode)]
#[serde(rename_all = "lowercase")]
pub enum SiteState {
    /// Registered, never enrolled.
    Pending,
    /// In contact.
    Online,
    /// In contact, its backlog growing.
    Buffering,
    /// No live connection (or one silent for `offline_after`).
    Offline,
    /// In contact but no new report for `silent_after`.
    Silent,
    /// Revoked by an admin.
    Revoked,
}

impl SiteState {
    /// Every state, in the order pages list them.
    pub const ALL: [SiteState; 6] = [
        SiteState::Online,
        SiteState::Buffering,
        SiteState::Offline,
        SiteState::Silent,
        SiteState::Revoked,
        SiteState::Pending,
    ];

    /// The name in JSON, CSS classes and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteState::Pending => "pending",
            SiteState::Online => "online",
            SiteState::Buffering => "buffering",
            SiteState::Offline => "offline",
            SiteState::Silent => "silent",
            SiteState::Revoked => "revoked",
        }
    }

    /// The name on the dashboard, in Bahasa Indonesia.
    pub fn label(self) -> &'static str {
        match self {
            SiteState::Pending => "belum terdaftar",
            SiteState::Online => "online",
            SiteState::Buffering => "menumpuk",
            SiteState::Offline => "offline",
            SiteState::Silent => "senyap",
            SiteState::Revoked => "dicabut",
        }
    }
}

impl std::fmt::Display for SiteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for SiteState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The state of a site at `now`, as `site list` and the fleet view show it.
pub fn site_state(
    site: &SiteRecord,
    connected: bool,
    now: Timestamp,
    config: &CollectorConfig,
) -> SiteState {
    let offline_after = config.offline_after.as_millis_i64();
    let silent_after = config.silent_after.as_millis_i64();
    match site.status {
        SiteStatus::Revoked => return SiteState::Revoked,
        SiteStatus::Pending => return SiteState::Pending,
        SiteStatus::Active => {}
    }
    // Only a live connection is contact: a stopped agent is offline as soon as its
    // connection closes. A connection that carried nothing (hello, batch, heartbeat) for
    // `offline_after` is offline too (a hung agent kept alive). Without a running daemon no
    // site is connected.
    let in_contact = connected
        && site
            .last_seen_at
            .is_none_or(|t| now.millis_since(t) <= offline_after);
    if !in_contact {
        return SiteState::Offline;
    }
    let growing = !backlog_stale(site)
        && site.health.as_ref().is_some_and(|h| {
            let backlog = h.heartbeat.backlog;
            backlog > 0 && h.previous_backlog.is_some_and(|p| backlog > p)
        });
    if growing {
        return SiteState::Buffering;
    }
    let last_report = site.last_report_at.or(site.enrolled_at);
    if last_report.is_some_and(|t| now.millis_since(t) > silent_after) {
        return SiteState::Silent;
    }
    SiteState::Online
}

/// All sites; `online` lists the sites with a live session.
pub fn site_list(
    store: &Store,
    config: &CollectorConfig,
    online: &[SiteId],
) -> Result<Vec<SiteView>, AdminError> {
    let now = Timestamp::now();
    let online: std::collections::HashSet<&SiteId> = online.iter().collect();
    let layers = crate::fleet::config::layers(store)?;
    let running = crate::fleet::running(store)?;
    Ok(store
        .sites()?
        .into_iter()
        .map(|s| {
            let connected = online.contains(&s.id);
            let wanted = crate::fleet::config::merge(&layers, &s).version;
            let run = running.get(s.id.as_str());
            let state = site_state(&s, connected, now, config);
            let hb = s.health.as_ref().map(|h| &h.heartbeat);
            SiteView {
                connected,
                last_report_at: s.last_report_at.map(|t| t.to_rfc3339()),
                backlog: hb.map(|h| h.backlog),
                backlog_stale: backlog_stale(&s),
                oldest_unsent_at: hb.and_then(|h| h.oldest_unsent_at).map(|t| t.to_rfc3339()),
                // The collector's own record of the last batch it stored from the site, or the
                // agent's report of its last acknowledged batch if that is later.
                last_sync_at: s
                    .last_report_at
                    .max(hb.and_then(|h| h.last_sync_at))
                    .map(|t| t.to_rfc3339()),
                disk_free_bytes: hb.map(|h| h.disk_free_bytes),
                mem_used_bytes: hb.map(|h| h.mem_used_bytes),
                cpu_percent: hb.map(|h| h.cpu_percent),
                // What the agent last said it runs: its status (which a version change sends at
                // once), else its heartbeat.
                agent_version: run
                    .map(|r| r.agent_version.clone())
                    .or_else(|| hb.map(|h| h.agent_version.clone())),
                quota_full: hb.map(|h| h.quota_full),
                heartbeat_at: s.health.as_ref().map(|h| h.received_at.to_rfc3339()),
                config_version: run.map(|r| r.config_version),
                config_wanted: wanted,
                config_error: run.and_then(|r| r.config_error.clone()),
                update: run.map(|r| r.update.clone()),
                id: s.id.to_string(),
                name: s.name,
                site_type: s.site_type.to_string(),
                kanwil: s.kanwil,
                state,
                last_seen_at: s.last_seen_at.map(|t| t.to_rfc3339()),
                enrolled_at: s.enrolled_at.map(|t| t.to_rfc3339()),
                cert_not_after: s.cert_not_after.map(|t| t.to_rfc3339()),
                revoked_at: s.revoked_at.map(|t| t.to_rfc3339()),
                clock_offset_ms: s.clock_offset_ms,
                reports: s.reports,
            }
        })
        .collect())
}

/// Each site's state as the dashboard shows it, without the rest of its view: every site, or
/// only `only`.
pub fn site_states(
    store: &Store,
    config: &CollectorConfig,
    online: &[SiteId],
    only: Option<&SiteId>,
) -> Result<Vec<(SiteId, SiteState)>, AdminError> {
    let now = Timestamp::now();
    let online: std::collections::HashSet<&SiteId> = online.iter().collect();
    let sites = match only {
        Some(id) => store.site(id)?.into_iter().collect(),
        None => store.sites()?,
    };
    Ok(sites
        .into_iter()
        .map(|s| {
            let state = site_state(&s, online.contains(&s.id), now, config);
            (s.id, state)
        })
        .collect())
}

/// Reports in arrival order.
pub fn reports(store: &Store, query: &ReportQuery) -> Result<Vec<ReportView>, AdminError> {
    store
        .reports(query)?
        .into_iter()
        .map(|r| report_view(store, r))
        .collect()
}

/// Every attachment the collector holds.
pub fn attachments(store: &Store) -> Result<Vec<AttachmentView>, AdminError> {
    let dir = AttachmentDir::of(store);
    Ok(store
        .attachments()?
        .into_iter()
        .map(|a| AttachmentView {
            hash: a.reference.hex(),
            name: a.reference.name.clone(),
            media_type: a.reference.media_type.mime().to_owned(),
            size: a.reference.size,
            stored: true,
            path: Some(dir.path(&a.reference.hash).display().to_string()),
            site_id: Some(a.site.to_string()),
            stored_at: Some(a.stored_at.to_rfc3339()),
        })
        .collect())
}

fn attachment_view(store: &Store, a: &AttachmentRef) -> Result<AttachmentView, AdminError> {
    let stored = store.attachment(&a.hash)?;
    let dir = AttachmentDir::of(store);
    Ok(AttachmentView {
        hash: a.hex(),
        name: a.name.clone(),
        media_type: a.media_type.mime().to_owned(),
        size: a.size,
        path: stored
            .as_ref()
            .map(|_| dir.path(&a.hash).display().to_string()),
        site_id: stored.as_ref().map(|s| s.site.to_string()),
        stored_at: stored.as_ref().map(|s| s.stored_at.to_rfc3339()),
        stored: stored.is_some(),
    })
}

/// The view of one stored report.
pub fn report_view(store: &Store, r: StoredReport) -> Result<ReportView, AdminError> {
    let attachments = r
        .report
        .attachments
        .iter()
        .map(|a| attachment_view(store, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReportView {
        id: r.report.id.to_string(),
        site_id: r.site.to_string(),
        epoch: r.epoch.to_string(),
        seq: r.seq,
        category: r.report.category,
        priority: r.report.priority,
        title: r.report.title,
        body: r.report.body,
        occurred_at: r.report.occurred_at.to_rfc3339(),
        filed_at: r.report.filed_at.to_rfc3339(),
        received_at: r.received_at.to_rfc3339(),
        arrival: r.arrival,
        revision: r.report.revision,
        retraction: r.report.retraction,
        attachments,
    })
}

/// Reports held in quarantine.
pub fn quarantine(store: &Store) -> Result<Vec<QuarantineView>, AdminError> {
    Ok(store
        .quarantine()?
        .into_iter()
        .map(|q| QuarantineView {
            number: q.report.arrival,
            id: q.report.report.id.to_string(),
            site_id: q.report.site.to_string(),
            epoch: q.report.epoch.to_string(),
            seq: q.report.seq,
            category: q.report.report.category,
            received_at: q.report.received_at.to_rfc3339(),
            findings: q.findings,
        })
        .collect())
}

/// Releases quarantined report `number` into the reports, after an admin read it and found no
/// identity data (the guard was wrong); the reason goes into the audit log.
pub fn quarantine_release(
    store: &Store,
    number: u64,
    reason: &str,
    actor: &str,
) -> Result<crate::store::StoredReport, AdminError> {
    let reason = nonempty_reason(reason)?;
    store
        .release_quarantined(number, actor, reason, Timestamp::now())?
        .ok_or_else(|| {
            AdminError::Invalid(format!(
                "no quarantined report number {number} with text to release; `quarantine` lists them"
            ))
        })
}

/// Erases the text of quarantined report `number` (keeping what recognises a resend).
pub fn quarantine_purge(
    store: &Store,
    number: u64,
    reason: &str,
    actor: &str,
) -> Result<(), AdminError> {
    let reason = nonempty_reason(reason)?;
    if store.purge_quarantined(number, actor, reason, Timestamp::now())? {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "no quarantined report number {number}; `quarantine` lists them"
        )))
    }
}

fn nonempty_reason(reason: &str) -> Result<&str, AdminError> {
    let reason = reason.trim();
    if reason.is_empty() {
        Err(AdminError::Invalid(
            "the reason is empty; say why (it goes into the audit log)".into(),
        ))
    } else {
        Ok(reason)
    }
}

/// Every revision of one report, oldest first.
pub fn revisions(
    store: &Store,
    id: &pasopati_common::ReportId,
) -> Result<Vec<ReportView>, AdminError> {
    let revisions = store.revisions(id)?;
    if revisions.is_empty() {
        return Err(AdminError::Invalid(format!(
            "no stored report has id {id} (a quarantined one is listed by `quarantine`; `reports` lists the ids)"
        )));
    }
    revisions
        .into_iter()
        .map(|r| report_view(store, r))
        .collect()
}

/// All recorded gaps.
pub fn gaps(store: &Store) -> Result<Vec<GapView>, AdminError> {
    Ok(store.gaps()?.into_iter().map(gap_view).collect())
}

fn gap_view(g: Gap) -> GapView {
    GapView {
        site_id: g.site.to_string(),
        epoch: g.epoch.to_string(),
        from_seq: g.from,
        to_seq: g.to,
        kind: g.kind,
        first_seen: g.first_seen.to_rfc3339(),
        last_seen: g.last_seen.to_rfc3339(),
        times: g.times,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasopati_common::frame::Heartbeat;

    fn site(status: SiteStatus) -> SiteRecord {
        SiteRecord {
            enrolled_at: Some(Timestamp(0)),
            last_report_at: Some(Timestamp(1_000)),
            last_seen_at: Some(Timestamp(1_000)),
            reports: 1,
            ..SiteRecord::new(
                SiteId::new("s").unwrap(),
                "n".into(),
                SiteType::Lapas,
                "k".into(),
                status,
                Timestamp(0),
            )
        }
    }

    fn health(backlog: u64, previous: Option<u64>) -> crate::store::Health {
        crate::store::Health {
            heartbeat: Heartbeat {
                agent_time: Timestamp(0),
                agent_version: "v".into(),
                backlog,
                oldest_unsent_at: None,
                last_sync_at: None,
                cpu_percent: 0.0,
                mem_used_bytes: 0,
                disk_free_bytes: 0,
                uptime_secs: 0,
                quota_full: false,
            },
            received_at: Timestamp(1_000),
            previous_backlog: previous,
        }
    }

    #[test]
    fn states_follow_contact_backlog_and_reports() {
        let config = CollectorConfig::with_defaults(None, None, None);
        let minute = 60_000;
        let day = 86_400_000;
        let s = site(SiteStatus::Active);
        assert_eq!(site_state(&s, true, Timestamp(2_000), &config), "online");
        // Offline as soon as the connection closed, not `offline_after` later.
        assert_eq!(site_state(&s, false, Timestamp(2_000), &config), "offline");
        // A connection that carried nothing for `offline_after` is offline too.
        assert_eq!(
            site_state(&s, true, Timestamp(11 * minute), &config),
            "offline"
        );
        let mut growing = s.clone();
        growing.health = Some(health(9, Some(5)));
        assert_eq!(
            site_state(&growing, true, Timestamp(2_000), &config),
            "buffering"
        );
        growing.health = Some(health(9, Some(12)));
        assert_eq!(
            site_state(&growing, true, Timestamp(2_000), &config),
            "online",
            "draining"
        );
        assert_eq!(
            site_state(&growing, false, Timestamp(2_000), &config),
            "offline",
            "cut off with a backlog: offline (the backlog is shown beside it)"
        );
        let mut quiet = s.clone();
        quiet.last_seen_at = Some(Timestamp(8 * day));
        assert_eq!(
            site_state(&quiet, true, Timestamp(8 * day), &config),
            "silent"
        );
        assert_eq!(
            site_state(&site(SiteStatus::Revoked), true, Timestamp(0), &config),
            "revoked"
        );
        assert_eq!(
            site_state(&site(SiteStatus::Pending), false, Timestamp(0), &config),
            "pending"
        );
    }
}
