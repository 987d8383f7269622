//! The collector's side of the local control channel: admin subcommands while the daemon runs.

use crate::admin::{self, AuditView, GapView, QuarantineView, ReportView, SiteAdd, SiteView};
use crate::server::ServerState;
use crate::store::ReportQuery;
use bincode::{Decode, Encode};
use pasopati_common::{HumanDuration, SiteId};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// A request from the CLI to the running daemon.
#[derive(Clone, Debug, Encode, Decode)]
pub enum CollectorRequest {
    SiteAdd(SiteAdd),
    SiteToken {
        site: SiteId,
        ttl: Option<HumanDuration>,
    },
    SiteRevoke(SiteId),
    /// Let a revoked site enroll again (keeping its history); answers a new token.
    SiteReinstate {
        site: SiteId,
        reason: String,
        ttl: Option<HumanDuration>,
    },
    SiteRename {
        site: SiteId,
        name: String,
        kanwil: Option<String>,
    },
    /// Remove a site that never sent a report.
    SiteRemove(SiteId),
    SiteList,
    /// Releases, rollouts and remote configuration (`crate::fleet`).
    Fleet(crate::fleet::FleetRequest),
    /// Move a quarantined report (by its number) into the reports.
    QuarantineRelease {
        number: u64,
        reason: String,
    },
    /// Erase a quarantined report's text, keeping only what recognises a resend.
    QuarantinePurge {
        number: u64,
        reason: String,
    },
    /// Change a user's password (hash made by the CLI) and/or role.
    UserUpdate {
        username: String,
        password_hash: Option<String>,
        role: Option<crate::store::Role>,
    },
    Reports {
        site: Option<SiteId>,
        limit: Option<u64>,
    },
    Gaps,
    Revisions(pasopati_common::ReportId),
    Quarantine,
    /// Write a consistent copy of the store into the data directory under this name (one
    /// `backup::snapshot_name` makes; never another path), for `backup`.
    StoreSnapshot(String),
    Attachments,
    /// Store and analyse media items (in pieces of a few hundred).
    MediaImport(Vec<pasopati_analysis::MediaItem>),
    /// Stored media items, from arrival `after`.
    Media {
        after: u64,
        limit: u64,
    },
    /// The stories of the live analysis.
    Stories,
    /// One story with each item and report and why it is there.
    StoryShow(String),
    /// An analyst's merge of story `from` into story `into`.
    StoryMerge {
        from: String,
        into: String,
        note: String,
    },
    /// An analyst's split of `docs` out of `story`.
    StorySplit {
        story: String,
        docs: Vec<String>,
        title: String,
        note: String,
    },
    /// Undo an analyst's story edit by its number.
    StoryUndo(u64),
    /// Every analyst's story edit.
    StoryEdits,
    /// Record today's risk scores now and answer the risk picture over `days`.
    Risk {
        days: i64,
    },
    /// Trends, spikes and coverage over the last `coverage_days`.
    Insights {
        coverage_days: Option<i64>,
    },
    ClaimAdd {
        claim: String,
        url: String,
        source: String,
        appeared_at: i64,
        item: Option<String>,
    },
    ClaimVerdict {
        number: u64,
        verdict: String,
        figure: Option<(String, String, i64)>,
        reports: Vec<String>,
        evidence: String,
    },
    Claims,
    /// Add a dashboard user (the password is hashed by the CLI; only the hash travels).
    UserAdd(crate::store::User),
    UserList,
    UserDisable(String),
    /// Store an API token's SHA-256 for a user, valid until `expires_at` (Unix ms).
    ApiTokenAdd {
        username: String,
        hash: [u8; 32],
        expires_at: i64,
    },
    /// Every API token (id, user, expiry), never the tokens.
    ApiTokenList,
    /// Revoke one API token by its id.
    ApiTokenRevoke(String),
    AuditShow,
    AuditVerify,
}

/// The daemon's answer.
#[derive(Debug, Encode, Decode)]
pub enum CollectorResponse {
    Token(String),
    Sites(Vec<SiteView>),
    Reports(Vec<ReportView>),
    Gaps(Vec<GapView>),
    Quarantine(Vec<QuarantineView>),
    Attachments(Vec<admin::AttachmentView>),
    MediaImported(crate::newsroom::ImportOutcome),
    /// One JSON document per line (media items, stories, claims, insights).
    Json(Vec<String>),
    ClaimAdded(u64),
    Done,
    Revoked {
        /// False if the site was already revoked.
        changed: bool,
        /// Live connections closed.
        closed: u32,
    },
    Audit(Vec<AuditView>),
    /// The chain verifies; this many entries.
    AuditOk(u64),
    /// The chain breaks at `entry`.
    AuditBroken {
        entry: u64,
        reason: String,
    },
    Failed(String),
}

/// Reports per response frame: a frame stays well under the 4 MiB limit even with 64 KiB bodies.
const REPORTS_PER_FRAME: usize = 50;

/// Answers one request with one or more frames; used by the daemon and the direct path.
/// `actor` names who asked, for the audit log.
pub(crate) fn answer(
    state: &ServerState,
    request: CollectorRequest,
    actor: &str,
) -> Vec<CollectorResponse> {
    match answer_one(state, request, actor) {
        CollectorResponse::Reports(reports) if reports.len() > REPORTS_PER_FRAME => reports
            .chunks(REPORTS_PER_FRAME)
            .map(|c| CollectorResponse::Reports(c.to_vec()))
            .collect(),
        CollectorResponse::Json(lines) if lines.len() > REPORTS_PER_FRAME => lines
            .chunks(REPORTS_PER_FRAME)
            .map(|c| CollectorResponse::Json(c.to_vec()))
            .collect(),
        CollectorResponse::Audit(entries) if entries.len() > 1000 => entries
            .chunks(1000)
            .map(|c| CollectorResponse::Audit(c.to_vec()))
            .collect(),
        other => vec![other],
    }
}

fn answer_one(state: &ServerState, request: CollectorRequest, actor: &str) -> CollectorResponse {
    let result = match request {
        CollectorRequest::SiteAdd(args) => {
            admin::site_add(&state.store, &state.authority, &state.config, args, actor)
                .map(CollectorResponse::Token)
        }
        CollectorRequest::SiteToken { site, ttl } => admin::site_token(
            &state.store,
            &state.authority,
            &state.config,
            &site,
            ttl,
            actor,
        )
        .map(CollectorResponse::Token),
        CollectorRequest::SiteRevoke(site) => {
            admin::site_revoke(&state.store, &site, actor).map(|changed| {
                let closed = state.close_site(&site);
                CollectorResponse::Revoked { changed, closed }
            })
        }
        CollectorRequest::SiteReinstate { site, reason, ttl } => admin::site_reinstate(
            &state.store,
            &state.authority,
            &state.config,
            &site,
            &reason,
            ttl,
            actor,
        )
        .map(CollectorResponse::Token),
        CollectorRequest::SiteRename { site, name, kanwil } => {
            admin::site_rename(&state.store, &site, &name, kanwil.as_deref(), actor)
                .map(|()| CollectorResponse::Done)
        }
        CollectorRequest::SiteRemove(site) => {
            admin::site_remove(&state.store, &site, actor).map(|()| CollectorResponse::Done)
        }
        CollectorRequest::QuarantineRelease { number, reason } => {
            admin::quarantine_release(&state.store, number, &reason, actor).map(|released| {
                state.report_index.reports_stored();
                let newsroom = state.newsroom.clone();
                tokio::task::spawn_blocking(move || newsroom.add_reports(&[released]));
                CollectorResponse::Done
            })
        }
        CollectorRequest::QuarantinePurge { number, reason } => {
            admin::quarantine_purge(&state.store, number, &reason, actor)
                .map(|()| CollectorResponse::Done)
        }
        CollectorRequest::UserUpdate {
            username,
            password_hash,
            role,
        } => match role.as_ref().map(|r| admin::check_role_scope(&state.store, r)) {
            Some(Err(e)) => Err(e),
            _ => done_if_found(
                state
                    .store
                    .update_user(&username, password_hash, role, actor),
                || format!("there is no user `{username}`; `user list` shows who there is"),
            ),
        },
        CollectorRequest::Fleet(request) => {
            crate::fleet::answer(&state.store, request, actor, pasopati_common::Timestamp::now())
                .map(CollectorResponse::Json)
                .map_err(|e| admin::AdminError::Invalid(e.to_string()))
        }
        CollectorRequest::SiteList => {
            admin::site_list(&state.store, &state.config, &state.online_sites())
                .map(CollectorResponse::Sites)
        }
        CollectorRequest::Reports { site, limit } => admin::reports(
            &state.store,
            &ReportQuery {
                site,
                after_arrival: None,
                limit: limit.map(|l| l as usize),
            },
        )
        .map(CollectorResponse::Reports),
        CollectorRequest::Gaps => admin::gaps(&state.store).map(CollectorResponse::Gaps),
        CollectorRequest::Revisions(id) => {
            admin::revisions(&state.store, &id).map(CollectorResponse::Reports)
        }
        CollectorRequest::StoreSnapshot(name) => store_snapshot(state, &name),
        CollectorRequest::Quarantine => {
            admin::quarantine(&state.store).map(CollectorResponse::Quarantine)
        }
        CollectorRequest::Attachments => {
            admin::attachments(&state.store).map(CollectorResponse::Attachments)
        }
        CollectorRequest::MediaImport(items) => state
            .newsroom
            .import(items)
            .map(CollectorResponse::MediaImported)
            .map_err(admin::AdminError::Store),
        CollectorRequest::Media { after, limit } => json_answer(state.store.media_views(after, limit as usize)),
        CollectorRequest::Stories => state
            .newsroom
            .stories()
            .map(|s| CollectorResponse::Json(json_lines(&s)))
            .map_err(admin::AdminError::Store),
        CollectorRequest::StoryShow(id) => match state.newsroom.story(&id) {
            Ok(Some(detail)) => Ok(CollectorResponse::Json(json_lines(&[detail]))),
            Ok(None) => Err(admin::AdminError::from(
                crate::newsroom::EditError::NoStory(id),
            )),
            Err(e) => Err(admin::AdminError::Store(e)),
        },
        CollectorRequest::StoryMerge { from, into, note } => state
            .newsroom
            .merge_stories(&from, &into, &note, actor)
            .map(|n| edited(n, &into))
            .map_err(admin::AdminError::from),
        CollectorRequest::StorySplit {
            story,
            docs,
            title,
            note,
        } => state
            .newsroom
            .split_story(&story, &docs, &title, &note, actor)
            .map(|n| edited(n, &format!("pisah-{n}")))
            .map_err(admin::AdminError::from),
        CollectorRequest::StoryUndo(number) => state
            .newsroom
            .undo_edit(number, actor)
            .map(|e| CollectorResponse::Json(json_lines(&[e])))
            .map_err(admin::AdminError::from),
        CollectorRequest::StoryEdits => json_answer(state.newsroom.edits()),
        CollectorRequest::Risk { days } => {
            let now = pasopati_common::Timestamp::now();
            crate::risk::record(&state.store, &state.newsroom, &state.config, now)
                .and_then(|_| crate::risk::picture(&state.store, &state.config, now, days))
                .map(|p| CollectorResponse::Json(json_lines(&[p])))
                .map_err(admin::AdminError::Store)
        }
        CollectorRequest::Insights { coverage_days } => state
            .newsroom
            .insights(coverage_days)
            .map(|v| CollectorResponse::Json(vec![v.to_string()]))
            .map_err(admin::AdminError::Store),
        CollectorRequest::ClaimAdd {
            claim,
            url,
            source,
            appeared_at,
            item,
        } => admin::claim_add(
            &state.store,
            &state.guard,
            claim,
            url,
            source,
            appeared_at,
            item,
            actor,
        )
        .map(CollectorResponse::ClaimAdded),
        CollectorRequest::ClaimVerdict {
            number,
            verdict,
            figure,
            reports,
            evidence,
        } => admin::claim_verdict(
            &state.store,
            &state.guard,
            number,
            &verdict,
            figure,
            reports,
            evidence,
            actor,
        )
        .map(|c| CollectorResponse::Json(vec![admin::claim_review(&c).to_string()])),
        CollectorRequest::UserAdd(user) => match state.store.user(&user.username) {
            Ok(Some(_)) => Err(admin::AdminError::Invalid(format!(
                "user `{}` exists already; change a password with `user passwd` or a role with `user role`",
                user.username
            ))),
            Ok(None) => admin::check_role_scope(&state.store, &user.role).and_then(|()| {
                state
                    .store
                    .add_user(&user, actor)
                    .map(|_| CollectorResponse::Done)
                    .map_err(admin::AdminError::Store)
            }),
            Err(e) => Err(admin::AdminError::Store(e)),
        },
        CollectorRequest::UserList => json_answer(state.store.users()),
        CollectorRequest::UserDisable(name) => {
            done_if_found(state.store.disable_user(&name, actor), || {
                format!("there is no user `{name}`")
            })
        }
        CollectorRequest::ApiTokenAdd {
            username,
            hash,
            expires_at,
        } => match state.store.user(&username) {
            Ok(Some(u)) if !u.disabled => state
                .store
                .add_api_token(&hash, &username, expires_at, actor)
                .map(|_| CollectorResponse::Done)
                .map_err(admin::AdminError::Store),
            Ok(_) => Err(admin::AdminError::Invalid(format!(
                "there is no active user `{username}`; add one with `pasopati-collector user add`"
            ))),
            Err(e) => Err(admin::AdminError::Store(e)),
        },
        CollectorRequest::ApiTokenList => json_answer(state.store.api_tokens()),
        CollectorRequest::ApiTokenRevoke(id) => done_if_found(
            state
                .store
                .revoke_api_token(&id, actor)
                .map(|user| user.is_some()),
            || format!("there is no API token `{id}`; see `pasopati-collector api-token list`"),
        ),
        CollectorRequest::Claims => admin::claims(&state.store).map(|c| {
            CollectorResponse::Json(
                c.iter()
                    .map(|c| admin::claim_review(c).to_string())
                    .collect(),
            )
        }),
        CollectorRequest::AuditShow => {
            admin::audit_show(&state.store).map(CollectorResponse::Audit)
        }
        CollectorRequest::AuditVerify => state
            .store
            .verify_audit()
            .map(|r| match r {
                Ok(n) => CollectorResponse::AuditOk(n),
                Err(b) => CollectorResponse::AuditBroken {
                    entry: b.entry,
                    reason: b.reason,
                },
            })
            .map_err(admin::AdminError::Store),
    };
    result.unwrap_or_else(|e| CollectorResponse::Failed(e.to_string()))
}

/// `Done` for a change the store made; the refusal `missing` words when there was nothing to
/// change.
fn done_if_found(
    found: Result<bool, crate::store::StoreError>,
    missing: impl FnOnce() -> String,
) -> Result<CollectorResponse, admin::AdminError> {
    match found {
        Ok(true) => Ok(CollectorResponse::Done),
        Ok(false) => Err(admin::AdminError::Invalid(missing())),
        Err(e) => Err(admin::AdminError::Store(e)),
    }
}

/// Stored records as the answer of one JSON document a line.
fn json_answer<T: serde::Serialize>(
    records: Result<Vec<T>, crate::store::StoreError>,
) -> Result<CollectorResponse, admin::AdminError> {
    Ok(CollectorResponse::Json(json_lines(&records?)))
}

/// The answer to a recorded story edit: its number and the story that shows it.
fn edited(number: u64, story: &str) -> CollectorResponse {
    CollectorResponse::Json(vec![
        serde_json::json!({ "edit": number, "story": story }).to_string()
    ])
}

/// Copies the store for a backup into the data directory; answers how many reports it holds.
fn store_snapshot(state: &ServerState, name: &str) -> Result<CollectorResponse, admin::AdminError> {
    if !crate::backup::is_snapshot_name(name) {
        return Err(admin::AdminError::Invalid(format!(
            "`{name}` is not a name for a store copy; use `pasopati-collector backup`"
        )));
    }
    let dir = state.store.data_dir();
    let summary = state.store.snapshot_to(&dir.join(name))?;
    tracing::info!(
        copy = name,
        reports = summary.reports,
        entries = summary.entries,
        "store copied for a backup"
    );
    Ok(CollectorResponse::Json(vec![serde_json::json!({
        "reports": summary.reports,
        "entries": summary.entries,
        "tables": summary.tables,
    })
    .to_string()]))
}

/// Each value as one line of JSON.
fn json_lines<T: serde::Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| serde_json::to_string(v).ok())
        .collect()
}

/// Serves the control socket until shutdown.
pub(crate) async fn serve(
    listener: UnixListener,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
) {
    let answer = move |request: CollectorRequest, uid: Option<u32>| {
        answer(&state, request, &admin::local_actor(uid))
    };
    pasopati_common::control::serve(
        listener,
        pasopati_common::control::Channel::Collector,
        shutdown.cancelled_owned(),
        answer,
    )
    .await;
}
