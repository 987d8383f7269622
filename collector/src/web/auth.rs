//! Users, passwords, sessions, API tokens and login throttling.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes) and a
//! random salt, stored in PHC form; a wrong password costs the same time as a right one.
//! Sessions live in the store, so a restart keeps everyone signed in: a random 256-bit id in an
//! HttpOnly, SameSite=Strict cookie (Secure when `http_secure_cookies` says the dashboard is
//! behind TLS), stored only as its SHA-256 (like API tokens), valid 12 hours, each with its own
//! CSRF token, at most [`MAX_SESSIONS_PER_USER`] per user (a new login ends the oldest). Logout
//! and disabling the user delete them. API tokens are 256-bit random values shown once and
//! stored as their SHA-256.
//!
//! Login throttling counts an attempt before its password is verified, so parallel attempts
//! cannot all slip under the limit: five attempts for one username from one client address
//! within 15 minutes lock that pair (a real user elsewhere, or another user at the same
//! address, can still sign in), and 50 from one address lock the address. The client address
//! is the peer's, or the one `X-Forwarded-For` names when the peer is a configured trusted
//! proxy. At most a few Argon2 verifications (19 MiB each) run at once; the rest wait briefly
//! for a turn or are told to come back (503 with `Retry-After`).

use super::Principal;
use crate::store::{Role, Store, StoredSession, User};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "pasopati_session";
/// The login form's pre-session CSRF cookie (double submit: the form carries the same value).
pub const LOGIN_COOKIE: &str = "pasopati_masuk";
/// How long a login form stays usable.
const LOGIN_FORM_TTL: Duration = Duration::from_secs(3600);
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The most sessions one user keeps; a login beyond it ends that user's oldest session.
pub const MAX_SESSIONS_PER_USER: usize = 20;
/// Attempts allowed per (username, client address) within [`THROTTLE_WINDOW`]; an attempt
/// counts from the moment it is admitted, and a successful one clears the pair's count.
const MAX_FAILURES: u32 = 5;
/// Attempts allowed per client address, whatever the username (password spraying).
const MAX_ADDRESS_FAILURES: u32 = 50;
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Throttling entries kept before the stale ones are swept.
const THROTTLE_SWEEP_AT: usize = 10_000;
/// How long a login waits for a turn at Argon2 before it is told to retry.
pub const VERIFY_WAIT: Duration = Duration::from_secs(5);
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

/// Sessions and throttling.
pub struct Auth {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    secure_cookies: bool,
    /// A hash to verify against when the user does not exist, so timing does not tell.
    dummy_hash: String,
    /// Turns at Argon2: each verification holds one, so memory stays bounded.
    verifying: Arc<tokio::sync::Semaphore>,
    /// Peers whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpAddr>,
    /// Signs the login form's tokens; random per process, so a restart voids open forms.
    form_key: ring::hmac::Key,
}

/// A login attempt admitted by the throttle: its counters, to clear on success or give back
/// when it was never verified.
pub struct Attempt {
    keys: [(String, u32); 2],
}

/// The outcome of a login attempt.
pub enum Login {
    /// The session id and its `Set-Cookie` header.
    Ok {
        cookie: String,
    },
    Wrong,
    /// The password was right but the session could not be stored.
    Failed(String),
}

impl Auth {
    pub fn new(secure_cookies: bool, trusted_proxies: Vec<IpAddr>) -> Auth {
        // One Argon2 verification per core, at most four: 19 MiB each.
        let turns = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .clamp(1, 4);
        Auth {
            failures: Mutex::new(HashMap::new()),
            secure_cookies,
            dummy_hash: hash_password("tidak-pernah-dipakai-sebagai-sandi").unwrap_or_default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(turns)),
            trusted_proxies,
            form_key: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                &pasopati_common::random_bytes::<32>(),
            ),
        }
    }

    /// A fresh login-form token (`nonce.signature`) and the `Set-Cookie` header carrying it.
    pub fn login_form_token(&self) -> (String, String) {
        let nonce = pasopati_common::hex(&pasopati_common::random_bytes::<16>());
        let tag = ring::hmac::sign(&self.form_key, nonce.as_bytes());
        let token = format!("{nonce}.{}", pasopati_common::hex(tag.as_ref()));
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let cookie = format!(
            "{LOGIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login; Max-Age={}{secure}",
            LOGIN_FORM_TTL.as_secs()
        );
        (token, cookie)
    }

    /// Whether a login POST carries a form token equal to its cookie and signed here.
    pub fn login_form_ok(&self, headers: &HeaderMap, field: Option<&str>) -> bool {
        let (Some(cookie), Some(field)) = (cookie(headers, LOGIN_COOKIE), field) else {
            return false;
        };
        if !constant_time_eq(cookie.as_bytes(), field.as_bytes()) {
            return false;
        }
        let Some((nonce, tag)) = field.split_once('.') else {
            return false;
        };
        pasopati_common::unhex(tag)
            .is_some_and(|tag| ring::hmac::verify(&self.form_key, nonce.as_bytes(), &tag).is_ok())
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, in which case the
    /// right-most address of `X-Forwarded-For` that is not itself a trusted proxy (each proxy
    /// appends the address it received the request from, so entries to its left are whatever
    /// the client wrote).
    pub fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer_ip = peer.ip().to_canonical();
        if !self.trusted_proxies.contains(&peer_ip) {
            return peer_ip;
        }
        let hops: Vec<String> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_owned())
            .collect();
        let mut client = peer_ip;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
                break;
            };
            client = ip;
            if !self.trusted_proxies.contains(&ip) {
                break;
            }
        }
        client
    }

    /// Admits a login attempt for `username` from `client` and counts it at once, before any
    /// password is verified; `None` if the pair or the address is locked.
    pub fn admit(&self, username: &str, client: IpAddr) -> Option<Attempt> {
        let name: String = username.chars().take(64).collect();
        let attempt = Attempt {
            keys: [
                (format!("user:{name}@{client}"), MAX_FAILURES),
                (format!("addr:{client}"), MAX_ADDRESS_FAILURES),
            ],
        };
        let mut f = self.failures.lock().ok()?;
        if f.len() >= THROTTLE_SWEEP_AT {
            f.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        }
        let locked = attempt.keys.iter().any(|(k, max)| {
            f.get(k)
                .is_some_and(|(n, since)| *n >= *max && since.elapsed() < THROTTLE_WINDOW)
        });
        if locked {
            return None;
        }
        for (k, _) in &attempt.keys {
            let e = f.entry(k.clone()).or_insert((0, Instant::now()));
            if e.1.elapsed() >= THROTTLE_WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
        Some(attempt)
    }

    /// Takes back an attempt that was never verified (no turn at Argon2 came).
    pub fn give_back(&self, attempt: &Attempt) {
        if let Ok(mut f) = self.failures.lock() {
            for (k, _) in &attempt.keys {
                if let Some(e) = f.get_mut(k) {
                    e.0 = e.0.saturating_sub(1);
                }
            }
        }
    }

    /// Waits up to [`VERIFY_WAIT`] for a turn at Argon2; `None` when none came.
    pub async fn turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::time::timeout(VERIFY_WAIT, self.verifying.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Verifies a password (blocking: Argon2 takes tens of milliseconds; call it with a turn
    /// from [`Auth::turn`] held). A missing or disabled user costs the same time.
    pub fn verify(&self, store: &Store, username: &str, password: &str) -> Option<User> {
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
        user.filter(|_| verified)
    }

    /// Ends an admitted attempt: a verified user clears the pair's count, uncounts the attempt
    /// for the address, and gets a session; anyone else keeps the attempt counted.
    pub fn finish(&self, store: &Store, attempt: &Attempt, user: Option<User>) -> Login {
        let Some(user) = user else {
            return Login::Wrong;
        };
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&attempt.keys[0].0);
            if let Some(e) = f.get_mut(&attempt.keys[1].0) {
                e.0 = e.0.saturating_sub(1);
            }
        }
        let id = pasopati_common::hex(&pasopati_common::random_bytes::<32>());
        let csrf = pasopati_common::hex(&pasopati_common::random_bytes::<16>());
        let now = pasopati_common::Timestamp::now().0;
        let session = StoredSession {
            username: user.username,
            csrf,
            created_at: now,
            expires_at: now + SESSION_TTL.as_millis() as i64,
        };
        let hash = pasopati_common::sha256(id.as_bytes());
        if let Err(e) = store.add_session(&hash, &session, MAX_SESSIONS_PER_USER) {
            return Login::Failed(e.to_string());
        }
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        Login::Ok {
            cookie: format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION_TTL.as_secs()
            ),
        }
    }

    /// Ends the session of these headers (deleting it from the store); returns the cookie that
    /// clears it.
    pub fn logout(&self, store: &Store, headers: &HeaderMap) -> Result<String, String> {
        if let Some(id) = session_id(headers) {
            store
                .remove_session(&pasopati_common::sha256(id.as_bytes()))
                .map_err(|e| e.to_string())?;
        }
        Ok(format!(
            "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        ))
    }

    /// The signed-in user of a request: a live session cookie, or a bearer API token. The
    /// user's current record decides (a disabled user is signed out at once), and so does the
    /// site table for what a regional user sees; a store that cannot say signs nobody in.
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
            let reach = super::scope::Reach::of(store, &user.role).ok()?;
            return Some(Principal {
                username: user.username,
                role: user.role,
                reach: Arc::new(reach),
                csrf: None,
            });
        }
        let id = session_id(headers)?;
        let session = store
            .session(&pasopati_common::sha256(id.as_bytes()))
            .ok()
            .flatten()?;
        let csrf = session.csrf;
        let user = store
            .user(&session.username)
            .ok()
            .flatten()
            .filter(|u| !u.disabled)?;
        let reach = super::scope::Reach::of(store, &user.role).ok()?;
        Some(Principal {
            username: user.username,
            role: user.role,
            reach: Arc::new(reach),
            csrf: Some(csrf),
        })
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

/// The value of the cookie `name`, if set and not empty.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
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

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("198.51.100.1, 203.0.113.7, 10.0.0.1"),
        );
        let untrusted = Auth::new(false, Vec::new());
        let peer = SocketAddr::new(proxy, 4000);
        assert_eq!(untrusted.client_address(peer, &headers), proxy);
        let trusted = Auth::new(false, vec![proxy]);
        assert_eq!(
            trusted.client_address(peer, &headers),
            IpAddr::from([203, 0, 113, 7])
        );
        let other = SocketAddr::new([192, 0, 2, 5].into(), 4000);
        assert_eq!(
            trusted.client_address(other, &headers),
            IpAddr::from([192, 0, 2, 5])
        );
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("bukan-alamat"),
        );
        assert_eq!(trusted.client_address(peer, &headers), proxy);
    }

    #[test]
    fn attempts_are_counted_before_verification() {
        let auth = Auth::new(false, Vec::new());
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let admitted: Vec<Attempt> = (0..8).filter_map(|_| auth.admit("ana", a)).collect();
        assert_eq!(admitted.len(), MAX_FAILURES as usize);
        assert!(auth.admit("ana", b).is_some());
        assert!(auth.admit("budi", a).is_some());
        auth.give_back(&admitted[0]);
        assert!(auth.admit("ana", a).is_some());
        assert!(auth.admit("ana", a).is_none());
    }
}
