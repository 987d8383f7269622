//! Who uses the dashboard and the API: users (Argon2id hashes made by the CLI), their
//! sessions (kept under the SHA-256 of the session id, used by `web/auth.rs`) and their API
//! tokens (kept under the SHA-256 of the token).

use super::audit::audit;
use super::{change_record, decode, encode, RedbStore, StoreError};
use bincode::{Decode, Encode};
use pasopati_common::Timestamp;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

/// Username → dashboard user.
pub(super) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// SHA-256 of an API token → the username it acts as.
pub(super) const API_TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("api_tokens");
/// SHA-256 of an API token → its [`ApiTokenInfo`] (creation and expiry). Tokens created before
/// tokens expired have no row here; they stay valid until revoked and are listed as `legacy`.
pub(super) const API_TOKEN_INFO: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("api_token_info");
/// SHA-256 of a dashboard session id → the session (sessions, web/auth.rs). Created on first
/// login; a store without it has no sessions.
pub(super) const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");

/// What a dashboard user may do, and over which part of the country. The national roles see
/// everything; the regional roles carry their scope, so a Kanwil user without a Kanwil cannot
/// exist. New roles are only ever appended (the store keeps roles by their position).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Role {
    /// Read only, the whole country.
    Viewer,
    /// Everything editorial: verdicts, publications, story edits; the whole country.
    Analyst,
    /// The fleet, users and sites, and everything an analyst does.
    Admin,
    /// A regional office's administrator: its sites and their tokens, and everything a Kanwil
    /// analyst does there.
    KanwilAdmin { kanwil: String },
    /// A regional office's analyst: its reports, the media and stories about its units, its
    /// alerts; editorial work on them.
    KanwilAnalyst { kanwil: String },
    /// One site's operator: its own reports and their sync state, the media about its unit,
    /// and the unit's official response to a story.
    UptOperator { site: String },
}

/// What a route needs of its user (the `access` of a row of the dashboard's routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Reading.
    Read,
    /// Editorial work: verdicts, publications, story edits, approving official responses.
    Edit,
    /// Writing a unit's official response to a story.
    Respond,
    /// Sites, their tokens and the fleet.
    Administer,
}

/// Which part of the country a user sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    National,
    Kanwil(String),
    Site(String),
}

impl Role {
    /// The role's name, as the CLI takes it and JSON shows it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::KanwilAdmin { .. } => "kanwil_admin",
            Role::KanwilAnalyst { .. } => "kanwil_analyst",
            Role::UptOperator { .. } => "upt_operator",
        }
    }

    /// One role of each kind (the regional ones with an empty scope), for tables of who may
    /// do what.
    pub fn every_kind() -> [Role; 6] {
        [
            Role::Viewer,
            Role::Analyst,
            Role::Admin,
            Role::KanwilAdmin {
                kanwil: String::new(),
            },
            Role::KanwilAnalyst {
                kanwil: String::new(),
            },
            Role::UptOperator {
                site: String::new(),
            },
        ]
    }

    /// The part of the country the role sees.
    pub fn scope(&self) -> Scope {
        match self {
            Role::Viewer | Role::Analyst | Role::Admin => Scope::National,
            Role::KanwilAdmin { kanwil } | Role::KanwilAnalyst { kanwil } => {
                Scope::Kanwil(kanwil.clone())
            }
            Role::UptOperator { site } => Scope::Site(site.clone()),
        }
    }

    /// Whether the role may do what a route needs (within its scope). This is the one table
    /// of who may do what.
    pub fn may(&self, need: Capability) -> bool {
        use Capability::*;
        match self {
            Role::Viewer => need == Read,
            Role::Analyst | Role::KanwilAnalyst { .. } => matches!(need, Read | Edit),
            Role::Admin | Role::KanwilAdmin { .. } => matches!(need, Read | Edit | Administer),
            Role::UptOperator { .. } => matches!(need, Read | Respond),
        }
    }

    /// The role a user is given from the CLI's words: a role name, with the Kanwil (already
    /// checked against the gazetteer) or the site a regional role needs.
    pub fn from_parts(
        name: &str,
        kanwil: Option<String>,
        site: Option<String>,
    ) -> Result<Role, String> {
        let name = name.trim().to_lowercase().replace('-', "_");
        let national = |role: Role| match (&kanwil, &site) {
            (None, None) => Ok(role),
            _ => Err(format!(
                "the role {name} sees the whole country; leave out --kanwil and --site \
                 (or use kanwil_admin, kanwil_analyst or upt_operator)"
            )),
        };
        let regional = |make: fn(String) -> Role| {
            match (&kanwil, &site) {
            (Some(k), None) => Ok(make(k.clone())),
            (None, _) => Err(format!(
                "the role {name} is for one regional office: add --kanwil, e.g. --kanwil \"Jawa Tengah\""
            )),
            (Some(_), Some(_)) => Err(format!("the role {name} takes --kanwil, not --site")),
        }
        };
        match name.as_str() {
            "viewer" => national(Role::Viewer),
            "analyst" => national(Role::Analyst),
            "admin" => national(Role::Admin),
            "kanwil_admin" => regional(|kanwil| Role::KanwilAdmin { kanwil }),
            "kanwil_analyst" => regional(|kanwil| Role::KanwilAnalyst { kanwil }),
            "upt_operator" => match (&kanwil, &site) {
                (None, Some(s)) => Ok(Role::UptOperator { site: s.clone() }),
                (None, None) => Err(
                    "the role upt_operator is for one site: add --site SITE_ID (`site list` shows them)".into(),
                ),
                (Some(_), _) => Err("the role upt_operator takes --site, not --kanwil".into()),
            },
            other => Err(format!(
                "role `{other}` is unknown; use admin, analyst, viewer, kanwil_admin, kanwil_analyst or upt_operator"
            )),
        }
    }

    /// The role and its scope, as the audit log and the CLI show them.
    pub fn describe(&self) -> String {
        match self.scope() {
            Scope::National => self.as_str().to_owned(),
            Scope::Kanwil(k) => format!("{}, Kanwil {k}", self.as_str()),
            Scope::Site(s) => format!("{}, site {s}", self.as_str()),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    /// A national role by name (the regional ones need their scope: [`Role::from_parts`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::from_parts(s, None, None)
    }
}

/// As JSON a role is its name, and a regional role also names its Kanwil or site.
impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A dashboard user.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// Argon2id in PHC string form; never shown.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// As `user list` shows a user: never the password hash; a regional user's Kanwil or site.
impl Serialize for User {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("username", &self.username)?;
        map.serialize_entry("role", self.role.as_str())?;
        match self.role.scope() {
            Scope::National => {}
            Scope::Kanwil(k) => map.serialize_entry("kanwil", &k)?,
            Scope::Site(s) => map.serialize_entry("site", &s)?,
        }
        map.serialize_entry("disabled", &self.disabled)?;
        map.serialize_entry("created_at", &self.created_at)?;
        map.end()
    }
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

/// Dashboard users.
impl RedbStore {
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
            format!("role={}", user.role.describe()),
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
        self.read_all(USERS)
    }

    /// Disables a user; false if there is no such user.
    pub fn disable_user(&self, username: &str, actor: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let disable = |user: &mut User| user.disabled = true;
        if change_record(&txn, USERS, username, disable)?.is_none() {
            return Ok(false);
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
        let mut details = Vec::new();
        let update = |user: &mut User| {
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
        };
        if change_record(&txn, USERS, username, update)?.is_none() {
            return Ok(false);
        }
        audit(
            &txn,
            actor,
            "user_update",
            &format!("user:{username}"),
            details.join("; "),
            Timestamp::now(),
        )?;
        txn.commit()?;
        Ok(true)
    }
}

/// API tokens: bearer tokens for the API and the feeds, acting as a user.
impl RedbStore {
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
}

/// Dashboard sessions (used by web/auth.rs), kept so that a restart signs nobody out.
impl RedbStore {
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
        let Some(table) = sessions_table(&txn)? else {
            return Ok(None);
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
        let Some(table) = sessions_table(&txn)? else {
            return Ok(0);
        };
        let mut n = 0;
        for entry in table.iter()? {
            let s: StoredSession = decode(entry?.1.value())?;
            n += usize::from(s.username == username);
        }
        Ok(n)
    }
}

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

/// The sessions table, read only.
type SessionsTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The sessions table of a read transaction; `None` before the first login made it.
fn sessions_table(txn: &redb::ReadTransaction) -> Result<Option<SessionsTable>, StoreError> {
    match txn.open_table(SESSIONS) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
impl RedbStore {
    pub(crate) fn insert_legacy_api_token_for_tests(&self, hash: &[u8; 32], username: &str) {
        let txn = self.db.begin_write().unwrap();
        txn.open_table(API_TOKENS)
            .unwrap()
            .insert(&hash[..], username)
            .unwrap();
        txn.commit().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::store;
    use super::*;

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
        store.insert_legacy_api_token_for_tests(&legacy, "budi");
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
        let actions = crate::store::fixtures::audit_actions(&store);
        assert!(actions.iter().any(|a| a == "api_token_revoke"));
        assert_eq!(
            actions.iter().filter(|a| *a == "api_token_create").count(),
            2
        );
    }
}
