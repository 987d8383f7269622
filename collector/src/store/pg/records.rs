//! The PostgreSQL store's records other than reports: sites and enrollment tokens, users with
//! their sessions and API tokens, media and attachments, the numbered registers (claims,
//! publications, story edits), what polled sources left, risk days, and the audit log, which
//! each change appends to in its own transaction as in the redb store.

use super::store::{
    big, col, counter, dec, enc, next_number, record, records, unbig, Params, PgStore,
};
use crate::store::audit::AuditEntry;
use crate::store::responses::OfficialResponse;
use crate::store::sites::TokenRecord;
use crate::store::sources::{from_json, merge_engagement, to_json};
use crate::store::story_edits::{recorded_edit, undo_edit};
use crate::store::{
    api_token_id, verify_chain, ApiTokenInfo, ApiTokenView, AuditBreak, Claim, Publication,
    PublicationState, RecordedEdit, Role, SiteRecord, SiteStatus, StoreError, StoredAttachment,
    StoredAuditEntry, StoredMedia, StoredSession, TokenRefusal, User,
};
use crate::store::{AlertRecord, NewAlert};
use crate::store::{MediaView, SourceHealth};
use bincode::{Decode, Encode};
use pasopati_analysis::edits::StoryEdit;
use pasopati_analysis::risk::RiskScore;
use pasopati_analysis::social::Engagement;
use pasopati_common::attachment::AttachmentRef;
use pasopati_common::{SiteId, Timestamp};
use std::collections::{HashMap, HashSet};
use tokio_postgres::GenericClient;

/// Appends an audit entry inside the caller's transaction. The counter's row lock orders
/// appends, so the chain has one next entry however many collectors write.
pub(super) async fn audit(
    c: &impl GenericClient,
    actor: &str,
    action: &str,
    subject: &dyn std::fmt::Display,
    details: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let seq = next_number(c, "audit_count", 0).await?;
    let prev_hash = match seq.checked_sub(1) {
        Some(last) => {
            let row = c
                .query_opt("SELECT hash FROM audit WHERE seq = $1", &[&big(last)])
                .await?;
            match row {
                Some(row) => hash32(col(&row, 0)?)?,
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "audit entry {last} is missing"
                    )))
                }
            }
        }
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
    c.execute(
        "INSERT INTO audit (seq, at, actor, action, subject, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &big(entry.seq),
            &entry.at.0,
            &entry.actor,
            &entry.action,
            &entry.subject,
            &entry.details,
            &&entry.prev_hash[..],
            &&entry.hash[..],
        ],
    )
    .await?;
    Ok(())
}

fn hash32(raw: &[u8]) -> Result<[u8; 32], StoreError> {
    raw.try_into()
        .map_err(|_| StoreError::Corrupt(format!("a stored hash has {} bytes", raw.len())))
}

pub(super) fn status_name(status: SiteStatus) -> &'static str {
    match status {
        SiteStatus::Pending => "pending",
        SiteStatus::Active => "active",
        SiteStatus::Revoked => "revoked",
    }
}

/// The record of site `id`, locked until the transaction ends.
pub(super) async fn site_for_update(
    c: &impl GenericClient,
    id: &SiteId,
) -> Result<Option<SiteRecord>, StoreError> {
    record(
        c,
        "SELECT record FROM sites WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await
}

/// Writes a site's record back (its status and Kanwil columns with it).
pub(super) async fn put_site(c: &impl GenericClient, site: &SiteRecord) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO sites (id, status, kanwil, record) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET status = $2, kanwil = $3, record = $4",
        &[
            &site.id.as_str(),
            &status_name(site.status),
            &site.kanwil,
            &enc(site),
        ],
    )
    .await?;
    Ok(())
}

/// Changes site `id`'s record with `change`, if the site is registered.
pub(super) async fn update_site(
    c: &impl GenericClient,
    id: &SiteId,
    change: impl FnOnce(&mut SiteRecord),
) -> Result<(), StoreError> {
    if let Some(mut site) = site_for_update(c, id).await? {
        change(&mut site);
        put_site(c, &site).await?;
    }
    Ok(())
}

async fn registered(c: &impl GenericClient, id: &SiteId) -> Result<SiteRecord, StoreError> {
    site_for_update(c, id)
        .await?
        .ok_or_else(|| StoreError::UnknownSite(id.to_string()))
}

async fn audit_cert(
    c: &impl GenericClient,
    site: &SiteId,
    action: &str,
    cert: &[u8],
    now: Timestamp,
) -> Result<(), StoreError> {
    let fingerprint = pasopati_common::hex(&pasopati_common::pki::fingerprint(cert));
    let actor = format!("site:{site}");
    let details = format!("fingerprint={fingerprint}");
    audit(c, &actor, action, site, details, now).await
}

/// Sites and their enrollment (the redb store's `sites.rs`).
impl PgStore {
    pub fn add_site(&self, site: &SiteRecord, actor: &str) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let inserted = txn
                .execute(
                    "INSERT INTO sites (id, status, kanwil, record) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO NOTHING",
                    &[
                        &site.id.as_str(),
                        &status_name(site.status),
                        &site.kanwil,
                        &enc(site),
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::SiteExists(site.id.to_string()));
            }
            let details = format!(
                "name={:?} type={} kanwil={:?}",
                site.name, site.site_type, site.kanwil
            );
            audit(&txn, actor, "site_add", &site.id, details, site.created_at).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn revoke_site(
        &self,
        site: &SiteId,
        actor: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let mut record = registered(&txn, site).await?;
            if record.status == SiteStatus::Revoked {
                return Ok(false);
            }
            record.status = SiteStatus::Revoked;
            record.revoked_at = Some(now);
            put_site(&txn, &record).await?;
            audit(&txn, actor, "site_revoke", site, String::new(), now).await?;
            txn.commit().await?;
            Ok(true)
        })
    }

    pub fn renew_cert<E: std::fmt::Display>(
        &self,
        site: &SiteId,
        presented: &[u8; 32],
        now: Timestamp,
        issue: impl FnOnce() -> Result<(Vec<u8>, Timestamp), E>,
    ) -> Result<Result<Vec<u8>, String>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let Some(mut record) = site_for_update(&txn, site).await? else {
                return Ok(Err(format!("site `{site}` is not registered")));
            };
            if record.status != SiteStatus::Active {
                return Ok(Err(format!("site `{site}` is not active")));
            }
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
            put_site(&txn, &record).await?;
            audit_cert(&txn, site, "cert_renewed", &cert, now).await?;
            txn.commit().await?;
            Ok(Ok(cert))
        })
    }

    pub fn retire_previous_cert(&self, site: &SiteId) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            update_site(&txn, site, |r| r.previous_fingerprint = None).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn site(&self, id: &SiteId) -> Result<Option<SiteRecord>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            record(
                &*c,
                "SELECT record FROM sites WHERE id = $1",
                &[&id.as_str()],
            )
            .await
        })
    }

    pub fn sites(&self) -> Result<Vec<SiteRecord>, StoreError> {
        self.all("SELECT record FROM sites ORDER BY id", &[])
    }

    pub fn revoked_sites(&self) -> Result<Vec<SiteId>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT id FROM sites WHERE status = 'revoked' ORDER BY id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    SiteId::new(col::<&str>(r, 0)?)
                        .map_err(|e| StoreError::Corrupt(format!("a stored site id: {e}")))
                })
                .collect()
        })
    }

    pub fn add_token(
        &self,
        site: &SiteId,
        secret_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            registered(&txn, site).await?;
            let token = TokenRecord {
                site: site.clone(),
                created_at: now,
                expires_at,
                used_at: None,
            };
            txn.execute(
                "INSERT INTO tokens (secret_hash, site, record) VALUES ($1, $2, $3)
                 ON CONFLICT (secret_hash) DO UPDATE SET site = $2, record = $3",
                &[&&secret_hash[..], &site.as_str(), &enc(&token)],
            )
            .await?;
            let details = format!(
                "expires_at={expires_at} token_hash={}",
                pasopati_common::hex(&secret_hash[..4])
            );
            audit(&txn, actor, "token_minted", site, details, now).await?;
            txn.commit().await?;
            Ok(())
        })
    }

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
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let token: Option<TokenRecord> = record(
                &txn,
                "SELECT record FROM tokens WHERE secret_hash = $1 FOR UPDATE",
                &[&&secret_hash[..]],
            )
            .await?;
            let mut token = match token {
                Some(t) if &t.site == site => t,
                _ => return Ok(Err(TokenRefusal::Unknown)),
            };
            if let Some(used) = token.used_at {
                return Ok(Err(TokenRefusal::Used(used)));
            }
            if now > token.expires_at {
                return Ok(Err(TokenRefusal::Expired(token.expires_at)));
            }
            let Some(mut record) = site_for_update(&txn, site).await? else {
                return Ok(Err(TokenRefusal::Unknown));
            };
            if record.status == SiteStatus::Revoked {
                return Ok(Err(TokenRefusal::Revoked));
            }
            let (cert, not_after) = match issue() {
                Ok(c) => c,
                Err(e) => return Ok(Err(TokenRefusal::BadRequest(e.to_string()))),
            };
            token.used_at = Some(now);
            txn.execute(
                "UPDATE tokens SET record = $2 WHERE secret_hash = $1",
                &[&&secret_hash[..], &enc(&token)],
            )
            .await?;
            record.status = SiteStatus::Active;
            record.enrolled_at = Some(now);
            record.cert_fingerprint = Some(pasopati_common::pki::fingerprint(&cert));
            record.previous_fingerprint = None;
            record.cert_not_after = Some(not_after);
            put_site(&txn, &record).await?;
            let actor = format!("site:{site}");
            let details = format!("token_hash={}", pasopati_common::hex(&secret_hash[..4]));
            audit(&txn, &actor, "token_used", site, details, now).await?;
            audit_cert(&txn, site, "cert_issued", &cert, now).await?;
            txn.commit().await?;
            Ok(Ok(cert))
        })
    }

    pub fn reinstate_site(
        &self,
        site: &SiteId,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let mut record = registered(&txn, site).await?;
            if record.status != SiteStatus::Revoked {
                return Ok(false);
            }
            record.status = SiteStatus::Pending;
            record.cert_fingerprint = None;
            record.previous_fingerprint = None;
            put_site(&txn, &record).await?;
            audit(&txn, actor, "site_reinstate", site, reason.to_owned(), now).await?;
            txn.commit().await?;
            Ok(true)
        })
    }

    pub fn rename_site(
        &self,
        site: &SiteId,
        name: &str,
        kanwil: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let mut record = registered(&txn, site).await?;
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
            put_site(&txn, &record).await?;
            audit(&txn, actor, "site_rename", site, details, now).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn remove_site(
        &self,
        site: &SiteId,
        actor: &str,
        now: Timestamp,
    ) -> Result<Result<(), String>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let record = registered(&txn, site).await?;
            let sent = txn
                .query_opt("SELECT 1 FROM hwm WHERE site = $1 LIMIT 1", &[&site.as_str()])
                .await?
                .is_some();
            if record.reports > 0 || sent {
                return Ok(Err(format!(
                    "site `{site}` has sent reports; they keep their site, so it cannot be removed. Revoke it instead (`site revoke`)"
                )));
            }
            txn.execute("DELETE FROM tokens WHERE site = $1", &[&site.as_str()])
                .await?;
            txn.execute("DELETE FROM sites WHERE id = $1", &[&site.as_str()])
                .await?;
            audit(&txn, actor, "site_remove", site, String::new(), now).await?;
            txn.commit().await?;
            Ok(Ok(()))
        })
    }
}

/// Reads every record `sql` finds, on a pooled connection.
impl PgStore {
    pub(super) fn all<T: Decode<()>>(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<T>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            records(&*c, sql, params).await
        })
    }

    pub(super) fn one<T: Decode<()>>(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<T>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            record(&*c, sql, params).await
        })
    }
}

/// Users, sessions and API tokens (the redb store's `users.rs`).
impl PgStore {
    pub fn add_user(&self, user: &User, actor: &str) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let inserted = txn
                .execute(
                    "INSERT INTO users (username, record) VALUES ($1, $2)
                     ON CONFLICT (username) DO NOTHING",
                    &[&user.username, &enc(user)],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::Storage(format!(
                    "user `{}` exists already",
                    user.username
                )));
            }
            let subject = format!("user:{}", user.username);
            let details = format!("role={}", user.role.describe());
            let at = Timestamp(user.created_at);
            audit(&txn, actor, "user_add", &subject, details, at).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.one("SELECT record FROM users WHERE username = $1", &[&username])
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.all("SELECT record FROM users ORDER BY username", &[])
    }

    pub fn disable_user(&self, username: &str, actor: &str) -> Result<bool, StoreError> {
        self.change_user(username, actor, "user_disable", |user| {
            user.disabled = true;
            String::new()
        })
    }

    pub fn update_user(
        &self,
        username: &str,
        password_hash: Option<String>,
        role: Option<Role>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        self.change_user(username, actor, "user_update", |user| {
            let mut details = Vec::new();
            if let Some(hash) = password_hash {
                user.password_hash = hash;
                details.push("password changed".to_owned());
            }
            if let Some(role) = role {
                details.push(format!(
                    "role {} -> {}",
                    user.role.describe(),
                    role.describe()
                ));
                user.role = role;
            }
            details.join("; ")
        })
    }

    /// Changes a user with `change` (which says what for the audit log); a disabled user's
    /// sessions go in the same transaction.
    fn change_user(
        &self,
        username: &str,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut User) -> String,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let user: Option<User> = record(
                &txn,
                "SELECT record FROM users WHERE username = $1 FOR UPDATE",
                &[&username],
            )
            .await?;
            let Some(mut user) = user else {
                return Ok(false);
            };
            let details = change(&mut user);
            txn.execute(
                "UPDATE users SET record = $2 WHERE username = $1",
                &[&username, &enc(&user)],
            )
            .await?;
            if user.disabled {
                txn.execute("DELETE FROM sessions WHERE username = $1", &[&username])
                    .await?;
            }
            let subject = format!("user:{username}");
            audit(&txn, actor, action, &subject, details, Timestamp::now()).await?;
            txn.commit().await?;
            Ok(true)
        })
    }

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
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            txn.execute(
                "INSERT INTO api_tokens (hash, username, info) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO UPDATE SET username = $2, info = $3",
                &[&&hash[..], &username, &enc(&info)],
            )
            .await?;
            let subject = format!("user:{username}");
            let details = format!(
                "id={} expires_at={}",
                api_token_id(hash),
                Timestamp(expires_at).to_rfc3339()
            );
            audit(&txn, actor, "api_token_create", &subject, details, now).await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn api_token_user(&self, hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let Some(row) = c
                .query_opt(
                    "SELECT username, info FROM api_tokens WHERE hash = $1",
                    &[&&hash[..]],
                )
                .await?
            else {
                return Ok(None);
            };
            let username: String = col(&row, 0)?;
            let info: Option<&[u8]> = col(&row, 1)?;
            match info.map(dec::<ApiTokenInfo>).transpose()? {
                Some(info) if info.expires_at <= Timestamp::now().0 => Ok(None),
                _ => Ok(Some(username)),
            }
        })
    }

    pub fn api_tokens(&self) -> Result<Vec<ApiTokenView>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query("SELECT hash, username, info FROM api_tokens", &[])
                .await?;
            let now = Timestamp::now().0;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let hash: &[u8] = col(row, 0)?;
                let info: Option<&[u8]> = col(row, 2)?;
                let info = info.map(dec::<ApiTokenInfo>).transpose()?;
                out.push(ApiTokenView {
                    id: api_token_id(hash),
                    username: col(row, 1)?,
                    created_at: info.as_ref().map(|i| Timestamp(i.created_at).to_rfc3339()),
                    expires_at: info.as_ref().map(|i| Timestamp(i.expires_at).to_rfc3339()),
                    expired: info.as_ref().is_some_and(|i| i.expires_at <= now),
                    legacy: info.is_none(),
                });
            }
            out.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(out)
        })
    }

    pub fn revoke_api_token(&self, id: &str, actor: &str) -> Result<Option<String>, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let rows = txn
                .query("SELECT hash, username FROM api_tokens FOR UPDATE", &[])
                .await?;
            let mut matching = Vec::new();
            for row in &rows {
                let hash: Vec<u8> = col(row, 0)?;
                if api_token_id(&hash) == id {
                    matching.push((hash, col::<String>(row, 1)?));
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
            txn.execute("DELETE FROM api_tokens WHERE hash = $1", &[&hash])
                .await?;
            let subject = format!("user:{username}");
            let details = format!("id={id}");
            audit(
                &txn,
                actor,
                "api_token_revoke",
                &subject,
                details,
                Timestamp::now(),
            )
            .await?;
            txn.commit().await?;
            Ok(Some(username))
        })
    }

    pub fn add_session(
        &self,
        hash: &[u8; 32],
        session: &StoredSession,
        max_per_user: usize,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().0;
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            txn.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&now])
                .await?;
            // The user's oldest sessions beyond the limit go; the user's row lock keeps two
            // logins at once from both keeping theirs.
            txn.execute(
                "SELECT 1 FROM users WHERE username = $1 FOR UPDATE",
                &[&session.username],
            )
            .await?;
            let keep = big(max_per_user.max(1) as u64 - 1);
            txn.execute(
                "DELETE FROM sessions WHERE hash IN (
                     SELECT hash FROM sessions WHERE username = $1
                     ORDER BY created_at DESC, hash OFFSET $2)",
                &[&session.username, &keep],
            )
            .await?;
            txn.execute(
                "INSERT INTO sessions (hash, username, created_at, expires_at, record)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO UPDATE SET username = $2, created_at = $3,
                     expires_at = $4, record = $5",
                &[
                    &&hash[..],
                    &session.username,
                    &session.created_at,
                    &session.expires_at,
                    &enc(session),
                ],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn session(&self, hash: &[u8; 32]) -> Result<Option<StoredSession>, StoreError> {
        let session: Option<StoredSession> =
            self.one("SELECT record FROM sessions WHERE hash = $1", &[&&hash[..]])?;
        Ok(session.filter(|s| s.expires_at > Timestamp::now().0))
    }

    pub fn remove_session(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let n = c
                .execute("DELETE FROM sessions WHERE hash = $1", &[&&hash[..]])
                .await?;
            Ok(n > 0)
        })
    }

    pub fn session_count(&self, username: &str) -> Result<usize, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let row = c
                .query_one(
                    "SELECT count(*) FROM sessions WHERE username = $1",
                    &[&username],
                )
                .await?;
            Ok(unbig(col(&row, 0)?)? as usize)
        })
    }
}

/// Media and attachments (the redb store's `media.rs`).
impl PgStore {
    pub fn expected_attachment(
        &self,
        site: &SiteId,
        hash: &[u8; 32],
    ) -> Result<Option<AttachmentRef>, StoreError> {
        self.one(
            "SELECT record FROM attachments_expected WHERE site = $1 AND hash = $2",
            &[&site.as_str(), &&hash[..]],
        )
    }

    pub fn attachment(&self, hash: &[u8; 32]) -> Result<Option<StoredAttachment>, StoreError> {
        self.one(
            "SELECT record FROM attachments WHERE hash = $1",
            &[&&hash[..]],
        )
    }

    pub fn attachments(&self) -> Result<Vec<StoredAttachment>, StoreError> {
        self.all("SELECT record FROM attachments ORDER BY hash", &[])
    }

    pub fn record_attachment(
        &self,
        site: &SiteId,
        reference: &AttachmentRef,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let stored = StoredAttachment {
            reference: reference.clone(),
            site: site.clone(),
            stored_at: now,
        };
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            txn.execute(
                "INSERT INTO attachments (hash, record) VALUES ($1, $2)
                 ON CONFLICT (hash) DO NOTHING",
                &[&&reference.hash[..], &enc(&stored)],
            )
            .await?;
            txn.execute(
                "DELETE FROM attachments_expected WHERE hash = $1",
                &[&&reference.hash[..]],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn add_media(
        &self,
        ids: &[String],
        mut make: impl FnMut(usize, u64) -> StoredMedia,
    ) -> Result<Vec<bool>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            // The counter's row lock orders writers, so the known ids read next stay true.
            let mut next = next_number(&txn, "next_media", 0).await?;
            let rows = txn
                .query("SELECT id FROM media WHERE id = ANY($1)", &[&ids])
                .await?;
            let mut known = HashSet::new();
            for row in &rows {
                known.insert(col::<String>(row, 0)?);
            }
            let mut added = Vec::with_capacity(ids.len());
            let (mut numbers, mut new_ids, mut blobs) = (Vec::new(), Vec::new(), Vec::new());
            for (i, id) in ids.iter().enumerate() {
                if !known.insert(id.clone()) {
                    added.push(false);
                    continue;
                }
                let item = make(i, next);
                numbers.push(big(next));
                new_ids.push(id.clone());
                blobs.push(enc(&item));
                next += 1;
                added.push(true);
            }
            txn.execute(
                "INSERT INTO media (n, id, record)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[])",
                &[&numbers, &new_ids, &blobs],
            )
            .await?;
            txn.execute(
                "UPDATE meta SET value = $1 WHERE key = 'next_media'",
                &[&big(next)],
            )
            .await?;
            txn.commit().await?;
            Ok(added)
        })
    }

    pub fn known_media<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<&str> = ids.into_iter().collect();
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query("SELECT id FROM media WHERE id = ANY($1)", &[&ids])
                .await?;
            rows.iter().map(|r| col::<String>(r, 0)).collect()
        })
    }

    pub fn media_items<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<StoredMedia>, StoreError> {
        let ids: Vec<&str> = ids.into_iter().collect();
        let found: Vec<StoredMedia> =
            self.all("SELECT record FROM media WHERE id = ANY($1)", &[&ids])?;
        // In the order asked, as the redb store answers.
        let mut by_id: HashMap<String, StoredMedia> =
            found.into_iter().map(|m| (m.id.clone(), m)).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(*id)).collect())
    }

    pub fn media(&self, after: u64, limit: usize) -> Result<Vec<StoredMedia>, StoreError> {
        self.all(
            "SELECT record FROM media WHERE n >= $1 ORDER BY n LIMIT $2",
            &[&big(after), &big(limit as u64)],
        )
    }
}

/// A numbered register: claims, publications, analysts' story edits.
struct Register {
    table: &'static str,
    counter: &'static str,
    kind: &'static str,
}

const CLAIMS: Register = Register {
    table: "claims",
    counter: "next_claim",
    kind: "claim",
};
const PUBLICATIONS: Register = Register {
    table: "publications",
    counter: "next_publication",
    kind: "publication",
};
const RESPONSES: Register = Register {
    table: "official_responses",
    counter: "next_response",
    kind: "response",
};
const STORY_EDITS: Register = Register {
    table: "story_edits",
    counter: "next_story_edit",
    kind: "story_edit",
};

/// The registers (the redb store's `publications.rs` and `story_edits.rs`).
impl PgStore {
    fn add_numbered<T: Encode>(
        &self,
        register: &Register,
        actor: &str,
        action: &str,
        at: Timestamp,
        make: impl FnOnce(u64) -> (T, String),
    ) -> Result<u64, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let number = next_number(&txn, register.counter, 1).await?;
            let (item, details) = make(number);
            let sql = format!("INSERT INTO {} (n, record) VALUES ($1, $2)", register.table);
            txn.execute(&sql, &[&big(number), &enc(&item)]).await?;
            let subject = format!("{}:{number}", register.kind);
            let details = details.chars().take(200).collect();
            audit(&txn, actor, action, &subject, details, at).await?;
            txn.commit().await?;
            Ok(number)
        })
    }

    fn change_numbered<T: Encode + Decode<()>>(
        &self,
        register: &Register,
        number: u64,
        actor: &str,
        action: &str,
        at: Timestamp,
        change: impl FnOnce(&mut T) -> String,
    ) -> Result<Option<T>, StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let select = format!(
                "SELECT record FROM {} WHERE n = $1 FOR UPDATE",
                register.table
            );
            let Some(mut item) = record::<T>(&txn, &select, &[&big(number)]).await? else {
                return Ok(None);
            };
            let details = change(&mut item);
            let update = format!("UPDATE {} SET record = $2 WHERE n = $1", register.table);
            txn.execute(&update, &[&big(number), &enc(&item)]).await?;
            let subject = format!("{}:{number}", register.kind);
            audit(&txn, actor, action, &subject, details, at).await?;
            txn.commit().await?;
            Ok(Some(item))
        })
    }

    pub fn add_claim(&self, mut claim: Claim, actor: &str) -> Result<u64, StoreError> {
        let at = Timestamp(claim.created_at);
        self.add_numbered(&CLAIMS, actor, "claim_add", at, |number| {
            claim.number = number;
            let details = claim.claim.clone();
            (claim, details)
        })
    }

    pub fn update_claim(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut Claim),
    ) -> Result<Option<Claim>, StoreError> {
        let now = Timestamp::now();
        self.change_numbered(&CLAIMS, number, actor, action, now, |claim: &mut Claim| {
            change(claim);
            format!("verdict={}", claim.verdict.as_str())
        })
    }

    pub fn claims(&self) -> Result<Vec<Claim>, StoreError> {
        self.all("SELECT record FROM claims ORDER BY n", &[])
    }

    pub fn add_publication(&self, mut p: Publication, actor: &str) -> Result<u64, StoreError> {
        let at = Timestamp(p.drafted_at);
        self.add_numbered(&PUBLICATIONS, actor, "publication_draft", at, |number| {
            p.number = number;
            let details = p.title.clone();
            (p, details)
        })
    }

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
        self.change_numbered(&PUBLICATIONS, number, actor, action, now, approve)
    }

    pub fn publications(&self) -> Result<Vec<Publication>, StoreError> {
        self.all("SELECT record FROM publications ORDER BY n", &[])
    }

    pub fn add_response(&self, mut r: OfficialResponse, actor: &str) -> Result<u64, StoreError> {
        let at = Timestamp(r.written_at);
        self.add_numbered(&RESPONSES, actor, "response_add", at, |number| {
            r.number = number;
            let details = r.filed_details();
            (r, details)
        })
    }

    pub fn update_response(
        &self,
        number: u64,
        actor: &str,
        action: &str,
        change: impl FnOnce(&mut OfficialResponse),
    ) -> Result<Option<OfficialResponse>, StoreError> {
        let now = Timestamp::now();
        self.change_numbered(&RESPONSES, number, actor, action, now, |r| {
            change(r);
            r.changed_details()
        })
    }

    pub fn responses(&self) -> Result<Vec<OfficialResponse>, StoreError> {
        self.all("SELECT record FROM official_responses ORDER BY n", &[])
    }

    pub fn add_story_edit(
        &self,
        edit: StoryEdit,
        note: &str,
        actor: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.add_numbered(&STORY_EDITS, actor, "story_edit", now, |number| {
            recorded_edit(number, edit, note, actor, now)
        })
    }

    pub fn undo_story_edit(
        &self,
        number: u64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<RecordedEdit>, StoreError> {
        let undo = |r: &mut RecordedEdit| {
            undo_edit(r, actor, now);
            String::new()
        };
        self.change_numbered(&STORY_EDITS, number, actor, "story_edit_undo", now, undo)
    }

    pub fn story_edits(&self) -> Result<Vec<RecordedEdit>, StoreError> {
        self.all("SELECT record FROM story_edits ORDER BY n", &[])
    }
}

/// What polled sources left, and risk days (the redb store's `sources.rs` and `risk.rs`).
impl PgStore {
    pub fn put_engagement(&self, items: &[(String, Engagement)]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            // In id order, so two writers lock the rows in the same order.
            let mut items: Vec<&(String, Engagement)> = items.iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            for (id, new) in items {
                let old = txn
                    .query_opt(
                        "SELECT record FROM media_engagement WHERE id = $1 FOR UPDATE",
                        &[id],
                    )
                    .await?;
                let old: Engagement = match &old {
                    Some(row) => from_json(col::<&[u8]>(row, 0)?)?,
                    None => Engagement::default(),
                };
                let merged = merge_engagement(new, &old);
                txn.execute(
                    "INSERT INTO media_engagement (id, record) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET record = $2",
                    &[id, &to_json(&merged)?],
                )
                .await?;
            }
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn engagement_all(&self) -> Result<HashMap<String, Engagement>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query("SELECT id, record FROM media_engagement", &[])
                .await?;
            rows.iter()
                .map(|r| Ok((col::<String>(r, 0)?, from_json(col::<&[u8]>(r, 1)?)?)))
                .collect()
        })
    }

    pub fn media_views(&self, after: u64, limit: usize) -> Result<Vec<MediaView>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT m.record, e.record FROM media m
                     LEFT JOIN media_engagement e ON e.id = m.id
                     WHERE m.n >= $1 ORDER BY m.n LIMIT $2",
                    &[&big(after), &big(limit as u64)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let engagement: Option<&[u8]> = col(r, 1)?;
                    Ok(MediaView {
                        media: dec(col::<&[u8]>(r, 0)?)?,
                        engagement: engagement.map(from_json).transpose()?,
                    })
                })
                .collect()
        })
    }

    pub fn media_views_newest(
        &self,
        before: u64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(u64, MediaView)>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT m.n, m.record, e.record FROM media m
                     LEFT JOIN media_engagement e ON e.id = m.id
                     WHERE m.n < $1 ORDER BY m.n DESC OFFSET $2 LIMIT $3",
                    &[&big(before), &big(skip as u64), &big(limit as u64)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let engagement: Option<&[u8]> = col(r, 2)?;
                    Ok((
                        unbig(col(r, 0)?)?,
                        MediaView {
                            media: dec(col::<&[u8]>(r, 1)?)?,
                            engagement: engagement.map(from_json).transpose()?,
                        },
                    ))
                })
                .collect()
        })
    }

    pub fn engagement(&self, id: &str) -> Result<Option<Engagement>, StoreError> {
        self.json_get("SELECT record FROM media_engagement WHERE id = $1", id)
    }

    pub fn source_health(&self, key: &str) -> Result<Option<SourceHealth>, StoreError> {
        self.json_get("SELECT record FROM source_health WHERE key = $1", key)
    }

    pub fn put_source_health(&self, health: &SourceHealth) -> Result<(), StoreError> {
        let json = to_json(health)?;
        self.run(async {
            let c = self.pool.get().await?;
            c.execute(
                "INSERT INTO source_health (key, record) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET record = $2",
                &[&health.key, &json],
            )
            .await?;
            Ok(())
        })
    }

    fn json_get<T: for<'de> serde::Deserialize<'de>>(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            match c.query_opt(sql, &[&key]).await? {
                Some(row) => Ok(Some(from_json(col::<&[u8]>(&row, 0)?)?)),
                None => Ok(None),
            }
        })
    }

    pub fn record_risk_day(&self, day: i64, scores: &[RiskScore]) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            // The day's row first: two writers of one day (the daemon's keeper and `risk`, or
            // two collectors) take turns instead of deadlocking on its scores.
            txn.execute(
                "INSERT INTO risk_days (day, n) VALUES ($1, 0)
                 ON CONFLICT (day) DO UPDATE SET n = risk_days.n",
                &[&day],
            )
            .await?;
            txn.execute("DELETE FROM risk WHERE day = $1", &[&day])
                .await?;
            let units: Vec<String> = scores.iter().map(|s| s.scope.key()).collect();
            let blobs: Vec<Vec<u8>> = scores.iter().map(enc).collect();
            txn.execute(
                "INSERT INTO risk (day, unit, record)
                 SELECT $1::bigint, * FROM unnest($2::text[], $3::bytea[])
                 ON CONFLICT (day, unit) DO UPDATE SET record = excluded.record",
                &[&day, &units, &blobs],
            )
            .await?;
            txn.execute(
                "INSERT INTO risk_days (day, n) VALUES ($1, $2)
                 ON CONFLICT (day) DO UPDATE SET n = $2",
                &[&day, &big(scores.len() as u64)],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    pub fn risk_days(&self, first: i64, last: i64) -> Result<Vec<i64>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT day FROM risk_days WHERE day BETWEEN $1 AND $2 ORDER BY day",
                    &[&first, &last],
                )
                .await?;
            rows.iter().map(|r| col(r, 0)).collect()
        })
    }

    pub fn risk_history(&self, first: i64, last: i64) -> Result<Vec<(i64, RiskScore)>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT day, record FROM risk WHERE day BETWEEN $1 AND $2 ORDER BY day, unit",
                    &[&first, &last],
                )
                .await?;
            rows.iter()
                .map(|r| Ok((col(r, 0)?, dec(col::<&[u8]>(r, 1)?)?)))
                .collect()
        })
    }
}

/// The alerts the media desk raised (the redb store's `alerts.rs`).
impl PgStore {
    pub fn record_alerts(&self, alerts: &[NewAlert]) -> Result<Vec<AlertRecord>, StoreError> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            // One numbering writer at a time, so numbers are given in commit order and a
            // reader past number n has seen every alert before it. Readers are not blocked.
            txn.execute("LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE", &[])
                .await?;
            let row = txn
                .query_one("SELECT COALESCE(MAX(number), 0) FROM alerts", &[])
                .await?;
            let mut next = unbig(col(&row, 0)?)? + 1;
            let mut recorded = Vec::new();
            for alert in alerts {
                let inserted = txn
                    .execute(
                        "INSERT INTO alerts (number, key, raised_at, record) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (key) DO NOTHING",
                        &[&big(next), &alert.key, &alert.raised_at, &alert.json],
                    )
                    .await?;
                if inserted == 1 {
                    recorded.push(AlertRecord {
                        number: next,
                        key: alert.key.clone(),
                        raised_at: alert.raised_at,
                        json: alert.json.clone(),
                    });
                    next += 1;
                }
            }
            txn.commit().await?;
            Ok(recorded)
        })
    }

    pub fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT number, key, raised_at, record FROM alerts WHERE number > $1
                     ORDER BY number LIMIT $2",
                    &[&big(after), &big(limit as u64)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(AlertRecord {
                        number: unbig(col(r, 0)?)?,
                        key: col(r, 1)?,
                        raised_at: col(r, 2)?,
                        json: col(r, 3)?,
                    })
                })
                .collect()
        })
    }

    pub fn last_alert(&self) -> Result<u64, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let row = c
                .query_one("SELECT COALESCE(MAX(number), 0) FROM alerts", &[])
                .await?;
            unbig(col(&row, 0)?)
        })
    }
}

/// Which sites have a live session on which collector (`cluster::share_live_sites`); only a
/// shared store has several collectors, so the redb store has no counterpart.
impl PgStore {
    /// Beats this collector's `alive_at`, and when `sites` is given, replaces the sites it has
    /// live sessions with. Collectors silent for an hour are forgotten.
    pub fn publish_live_sites(
        &self,
        instance: &str,
        sites: Option<&[SiteId]>,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            txn.execute(
                "INSERT INTO collector_instances (instance, alive_at) VALUES ($1, now())
                 ON CONFLICT (instance) DO UPDATE SET alive_at = now()",
                &[&instance],
            )
            .await?;
            if let Some(sites) = sites {
                let names: Vec<&str> = sites.iter().map(SiteId::as_str).collect();
                txn.execute("DELETE FROM live_sites WHERE instance = $1", &[&instance])
                    .await?;
                txn.execute(
                    "INSERT INTO live_sites (instance, site) SELECT $1, unnest($2::text[])",
                    &[&instance, &names],
                )
                .await?;
            }
            txn.execute(
                "DELETE FROM collector_instances WHERE alive_at < now() - interval '1 hour'",
                &[],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    /// The sites with a live session on another collector that beat within `within`.
    pub fn live_sites_elsewhere(
        &self,
        instance: &str,
        within: std::time::Duration,
    ) -> Result<Vec<SiteId>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT DISTINCT l.site FROM live_sites l
                     JOIN collector_instances i ON i.instance = l.instance
                     WHERE l.instance <> $1
                       AND i.alive_at > now() - make_interval(secs => $2::float8)",
                    &[&instance, &within.as_secs_f64()],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let name: String = col(r, 0)?;
                    SiteId::new(&name)
                        .map_err(|e| StoreError::Corrupt(format!("a live site's id `{name}`: {e}")))
                })
                .collect()
        })
    }
}

/// The audit log (the redb store's `audit.rs`).
impl PgStore {
    pub fn audit_log(&self) -> Result<Vec<StoredAuditEntry>, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT seq, at, actor, action, subject, details, prev_hash, hash
                     FROM audit ORDER BY seq",
                    &[],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let seq = unbig(col(row, 0)?)?;
                let entry = (|| {
                    Ok::<_, StoreError>(AuditEntry {
                        seq,
                        at: Timestamp(col(row, 1)?),
                        actor: col(row, 2)?,
                        action: col(row, 3)?,
                        subject: col(row, 4)?,
                        details: col(row, 5)?,
                        prev_hash: hash32(col(row, 6)?)?,
                        hash: hash32(col(row, 7)?)?,
                    })
                })();
                out.push((seq, entry.map_err(|e| e.to_string())));
            }
            Ok(out)
        })
    }

    pub fn audit_count(&self) -> Result<u64, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            counter(&*c, "audit_count", 0).await
        })
    }

    pub fn verify_audit(&self) -> Result<Result<u64, AuditBreak>, StoreError> {
        Ok(verify_chain(&self.audit_log()?, self.audit_count()?))
    }
}

#[cfg(test)]
impl PgStore {
    pub(crate) fn insert_legacy_api_token_for_tests(&self, hash: &[u8; 32], username: &str) {
        self.run(async {
            let c = self.pool.get().await?;
            c.execute(
                "INSERT INTO api_tokens (hash, username, info) VALUES ($1, $2, NULL)",
                &[&&hash[..], &username],
            )
            .await?;
            Ok(())
        })
        .unwrap();
    }
}

impl PgStore {
    /// Keeps an attachment's bytes in the database, for every collector on it. Idempotent.
    pub fn put_attachment_bytes(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<(), StoreError> {
        self.put_blob(Blobs::ATTACHMENTS, hash, bytes)
    }

    /// An attachment's bytes as the database keeps them, if it does.
    pub fn attachment_bytes(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        self.blob(Blobs::ATTACHMENTS, hash)
    }

    /// Keeps content-addressed bytes under their hash in `table`, once.
    pub(super) fn put_blob(
        &self,
        table: Blobs,
        hash: &[u8; 32],
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} ({key}, bytes) VALUES ($1, $2) ON CONFLICT ({key}) DO NOTHING",
            table.table,
            key = table.key
        );
        self.run(async {
            let c = self.pool.get().await?;
            c.execute(&sql, &[&&hash[..], &bytes]).await?;
            Ok(())
        })
    }

    /// The bytes `table` keeps under `hash`, if any.
    pub(super) fn blob(
        &self,
        table: Blobs,
        hash: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = format!("SELECT bytes FROM {} WHERE {} = $1", table.table, table.key);
        self.run(async {
            let c = self.pool.get().await?;
            let row = c.query_opt(&sql, &[&&hash[..]]).await?;
            row.map(|r| col::<Vec<u8>>(&r, 0)).transpose()
        })
    }
}

/// A table of content-addressed bytes: its name and its hash column.
#[derive(Clone, Copy)]
pub(super) struct Blobs {
    table: &'static str,
    key: &'static str,
}

impl Blobs {
    pub(super) const ATTACHMENTS: Blobs = Blobs {
        table: "attachment_bytes",
        key: "hash",
    };
    pub(super) const RELEASE_PACKAGES: Blobs = Blobs {
        table: "release_packages",
        key: "sha256",
    };
}
