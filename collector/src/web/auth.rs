//! Users, passwords, sessions, API tokens and login throttling.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes) and a
//! random salt, stored in PHC form; a wrong password costs the same time as a right one.
//! Sessions live in memory (a restart signs everyone out): a random 256-bit id in an HttpOnly,
//! SameSite=Strict cookie (Secure when `http_secure_cookies` says the dashboard is behind TLS),
//! valid 12 hours, each with its own CSRF token. API tokens are 256-bit random values shown once
//! and stored as their SHA-256.

use super::Principal;
use crate::store::{Role, Store, User};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "pasopati_session";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per username or address within [`THROTTLE_WINDOW`].
const MAX_FAILURES: u32 = 5;
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The prefix of API tokens, so they are recognisable in a leak scan.
pub const TOKEN_PREFIX: &str = "pst_";

/// Why a user or password cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the username must be 1 to 64 letters, digits, `.`, `-` or `_`")]
    Username,
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes a password with Argon2id and a fresh salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < 12 {
        return Err(UserError::WeakPassword);
    }
    let salt_bytes = pasopati_common::random_bytes::<16>();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UserError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Checks a username's form.
pub fn check_username(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(UserError::Username)
    }
}

/// A new user record.
pub fn new_user(username: &str, role: Role, password: &str) -> Result<User, UserError> {
    check_username(username)?;
    Ok(User {
        username: username.to_owned(),
        role,
        password_hash: hash_password(password)?,
        disabled: false,
        created_at: pasopati_common::Timestamp::now().0,
    })
}

/// A fresh API token and its SHA-256 (what is stored).
pub fn new_api_token() -> (String, [u8; 32]) {
    let token = format!(
        "{TOKEN_PREFIX}{}",
        pasopati_common::hex(&pasopati_common::random_bytes::<32>())
    );
    let hash = pasopati_common::sha256(token.as_bytes());
    (token, hash)
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Session {
    username: String,
    csrf: String,
    expires: Instant,
}

/// Sessions and throttling.
pub struct Auth {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    secure_cookies: bool,
    /// A hash to verify against when the user does not exist, so timing does not tell.
    dummy_hash: String,
}

/// The outcome of a login attempt.
pub enum Login {
    /// The session id and its `Set-Cookie` header.
    Ok {
        cookie: String,
    },
    Wrong,
    Throttled,
}

impl Auth {
    pub fn new(secure_cookies: bool) -> Auth {
        Auth {
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            secure_cookies,
            dummy_hash: hash_password("tidak-pernah-dipakai-sebagai-sandi").unwrap_or_default(),
        }
    }

    fn throttled(&self, keys: &[String]) -> bool {
        let Ok(f) = self.failures.lock() else {
            return true;
        };
        keys.iter().any(|k| {
            f.get(k)
                .is_some_and(|(n, since)| *n >= MAX_FAILURES && since.elapsed() < THROTTLE_WINDOW)
        })
    }

    fn record_failure(&self, keys: &[String]) {
        if let Ok(mut f) = self.failures.lock() {
            for k in keys {
                let e = f.entry(k.clone()).or_insert((0, Instant::now()));
                if e.1.elapsed() >= THROTTLE_WINDOW {
                    *e = (0, Instant::now());
                }
                e.0 += 1;
            }
        }
    }

    /// Checks a username and password; on success opens a session.
    pub fn login(&self, store: &Store, username: &str, password: &str, addr: &str) -> Login {
        let keys = [format!("user:{username}"), format!("addr:{addr}")];
        if self.throttled(&keys) {
            return Login::Throttled;
        }
        let user = store.user(username).ok().flatten().filter(|u| !u.disabled);
        let hash = user
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let verified = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        let Some(user) = user.filter(|_| verified) else {
            self.record_failure(&keys);
            return Login::Wrong;
        };
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&keys[0]);
        }
        let id = pasopati_common::hex(&pasopati_common::random_bytes::<32>());
        let csrf = pasopati_common::hex(&pasopati_common::random_bytes::<16>());
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| v.expires > Instant::now());
            s.insert(
                id.clone(),
                Session {
                    username: user.username,
                    csrf,
                    expires: Instant::now() + SESSION_TTL,
                },
            );
        }
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        Login::Ok {
            cookie: format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION_TTL.as_secs()
            ),
        }
    }

    /// Ends the session of these headers; returns the cookie that clears it.
    pub fn logout(&self, headers: &HeaderMap) -> String {
        if let Some(id) = session_id(headers) {
            if let Ok(mut s) = self.sessions.lock() {
                s.remove(&id);
            }
        }
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
    }

    /// The signed-in user of a request: a live session cookie, or a bearer API token. The
    /// user's current record decides (a disabled user is signed out at once).
    pub fn principal(&self, store: &Store, headers: &HeaderMap) -> Option<Principal> {
        if let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let hash = pasopati_common::sha256(token.trim().as_bytes());
            let username = store.api_token_user(&hash).ok().flatten()?;
            let user = store
                .user(&username)
                .ok()
                .flatten()
                .filter(|u| !u.disabled)?;
            return Some(Principal {
                username: user.username,
                role: user.role,
                csrf: None,
            });
        }
        let id = session_id(headers)?;
        let (username, csrf) = {
            let s = self.sessions.lock().ok()?;
            let session = s.get(&id).filter(|v| v.expires > Instant::now())?;
            (session.username.clone(), session.csrf.clone())
        };
        let user = store
            .user(&username)
            .ok()
            .flatten()
            .filter(|u| !u.disabled)?;
        Some(Principal {
            username: user.username,
            role: user.role,
            csrf: Some(csrf),
        })
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_weak_ones_are_refused() {
        let h = hash_password("sandi-panjang-sekali").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password(b"sandi-panjang-sekali", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"salah", &parsed)
            .is_err());
        assert!(matches!(
            hash_password("pendek"),
            Err(UserError::WeakPassword)
        ));
        assert!(check_username("analis.satu").is_ok());
        assert!(check_username("bad name").is_err());
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
