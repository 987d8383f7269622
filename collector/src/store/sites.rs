//! Sites and their enrollment: registering, renaming, removing, revoking and reinstating a
//! site, the one-time enrollment tokens (kept as the SHA-256 of their secret), and the
//! certificate each site holds (issued at enrollment, renewed over the sync session).

use super::audit::audit;
use super::{change_record, decode, encode, RedbStore, StoreError, HWM, SITES};
use bincode::{Decode, Encode};
use pasopati_common::frame::Heartbeat;
use pasopati_common::{SiteId, SiteType, Timestamp};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

/// SHA-256 of the token secret → token record.
pub(super) const TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tokens");

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

impl SiteRecord {
    /// A site as first registered: `status` (pending, or active for a site enrolled another
    /// way, as in tests), no certificate, no contact and no report yet.
    pub fn new(
        id: SiteId,
        name: String,
        site_type: SiteType,
        kanwil: String,
        status: SiteStatus,
        created_at: Timestamp,
    ) -> SiteRecord {
        SiteRecord {
            id,
            name,
            site_type,
            kanwil,
            status,
            created_at,
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
        }
    }
}

/// An enrollment token as stored, under the SHA-256 of its secret.
#[derive(Clone, Debug, Encode, Decode)]
pub(super) struct TokenRecord {
    pub(super) site: SiteId,
    pub(super) created_at: Timestamp,
    pub(super) expires_at: Timestamp,
    pub(super) used_at: Option<Timestamp>,
}

/// A site's latest heartbeat as the collector keeps it.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct Health {
    pub heartbeat: Heartbeat,
    pub received_at: Timestamp,
    /// The backlog reported by the heartbeat before this one.
    pub previous_backlog: Option<u64>,
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

impl RedbStore {
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
        audit_cert(&txn, site, "cert_renewed", &cert, now)?;
        txn.commit()?;
        Ok(Ok(cert))
    }

    /// Notes that a site connected with its new certificate: the previous one is no longer
    /// accepted.
    pub fn retire_previous_cert(&self, site: &SiteId) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        update_site(&txn, site, |record| {
            record.previous_fingerprint = None;
        })?;
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
        self.read_all(SITES)
    }

    /// The sites revoked now.
    pub fn revoked_sites(&self) -> Result<Vec<SiteId>, StoreError> {
        Ok(self
            .sites()?
            .into_iter()
            .filter(|s| s.status == SiteStatus::Revoked)
            .map(|s| s.id)
            .collect())
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
        audit(
            &txn,
            &format!("site:{site}"),
            "token_used",
            site,
            format!("token_hash={}", pasopati_common::hex(&secret_hash[..4])),
            now,
        )?;
        audit_cert(&txn, site, "cert_issued", &cert, now)?;
        txn.commit()?;
        Ok(Ok(cert))
    }
}

/// Corrections an admin makes after the fact: a way back for a revoked site, renaming and
/// removing sites, releasing or purging quarantined reports, changing a user's password or role.
/// Each is in the audit log, in the same transaction as the change.
impl RedbStore {
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

/// Records in the audit log, as the site's own act, a certificate issued to it, by its SHA-256.
fn audit_cert(
    txn: &redb::WriteTransaction,
    site: &SiteId,
    action: &str,
    cert: &[u8],
    now: Timestamp,
) -> Result<(), StoreError> {
    let fingerprint = pasopati_common::hex(&pasopati_common::pki::fingerprint(cert));
    audit(
        txn,
        &format!("site:{site}"),
        action,
        site,
        format!("fingerprint={fingerprint}"),
        now,
    )
}

/// Changes the record of `site` within `txn`, if the site is registered (a site removed
/// meanwhile is left alone).
pub(super) fn update_site(
    txn: &redb::WriteTransaction,
    site: &SiteId,
    change: impl FnOnce(&mut SiteRecord),
) -> Result<(), StoreError> {
    change_record(txn, SITES, site.as_str(), change)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{site, store};
    use super::*;

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
        let actions = crate::store::fixtures::audit_actions(&s);
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
}
