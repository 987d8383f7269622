//! Notifications: telling people what needs them without a dashboard open. The notifier looks
//! at every report stored after its cursor; each rule of `[[notify.rules]]` gathers the urgent
//! ones of its channel's scope into one message per group window ("12 laporan mendesak dari 5
//! UPT dalam 10 menit"), at most `max_per_hour` messages an hour (a burst beyond that waits in
//! the open message). Messages and the cursor are written to the store's outbox in one
//! transaction (`store/notifications.rs`); a message is sent when its window has closed and
//! marked sent only after its channel took it, with backoff between failed attempts. So a crash
//! loses nothing and floods nobody: at worst the message being sent goes again, with the same
//! id, which the receiver drops.
//!
//! Channels: a JSON webhook, signed with HMAC-SHA-256 over the body (`X-Pasopati-Signature:
//! sha256=<hex>`) and carrying the message id (`X-Pasopati-Id`); the Telegram Bot API's
//! `sendMessage` to a chat, the message ending with its id ("#17") since the Bot API has no
//! field for one (a 429's `retry_after` is honoured); email over SMTP with STARTTLS
//! (`smtp.rs`), its `Message-ID` the same for every attempt.

use crate::store::{Notification, SiteRecord, Store, StoreError, StoredReport};
use pasopati_common::{HumanDuration, Priority, Timestamp};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[notify]` of collector.toml.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    pub channels: Vec<ChannelConfig>,
    pub rules: Vec<RuleConfig>,
}

impl NotifySettings {
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.rules.is_empty()
    }
}

/// A place messages go.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The name rules use.
    pub name: String,
    pub kind: ChannelKind,
    /// The webhook's address; for Telegram, the Bot API's (`https://api.telegram.org`); for
    /// email, the mail server's (`smtp://mail.example.go.id:587`).
    pub url: String,
    /// The file (relative to the data directory, or absolute) holding the HMAC key the
    /// webhook's receiver checks signatures with, the Telegram bot's token, or the SMTP
    /// user's password; keep it 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Email: the SMTP user (with `secret_file` for its password), the sender, the
    /// recipients, the CA file to trust the server by (else the public roots), and whether a
    /// relay on this machine may be spoken to without STARTTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub plain_loopback: bool,
    /// The Telegram chat the bot writes to (a group's id such as `-1001234567890`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// Only what happens in this Kanwil, or at this site (neither: the whole country).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kanwil: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Webhook,
    Telegram,
    Email,
}

/// What is told, to which channel, how grouped.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// `urgent_report`.
    pub event: String,
    pub channel: String,
    /// How long a message gathers events before it is sent.
    #[serde(default = "default_group")]
    pub group: HumanDuration,
    /// The most messages of this rule an hour; more events wait in the open message.
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
}

fn default_group() -> HumanDuration {
    HumanDuration::from_secs(600)
}

fn default_max_per_hour() -> u32 {
    6
}

/// The events rules can name.
pub const EVENTS: &[&str] = &["urgent_report"];

/// Why the notification settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("[notify]: {0}")]
    Settings(String),
    #[error("[notify]: the secret file {path} of channel `{channel}` cannot be read: {source}")]
    Secret {
        channel: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A channel ready to send: its settings and its key.
struct Channel {
    config: ChannelConfig,
    secret: Vec<u8>,
    /// For email: the server, ready to send to.
    smtp: Option<crate::smtp::Server>,
}

/// The notifier: the settings checked, the channels' keys read.
pub struct Notifier {
    rules: Vec<RuleConfig>,
    channels: Vec<Channel>,
    agent: ureq::Agent,
}

impl Notifier {
    /// Checks the settings (every rule's event and channel known, every key readable).
    pub fn new(settings: &NotifySettings, data_dir: &Path) -> Result<Notifier, NotifyError> {
        let mut channels = Vec::new();
        for c in &settings.channels {
            if channels.iter().any(|x: &Channel| x.config.name == c.name) {
                return Err(NotifyError::Settings(format!(
                    "two channels are named `{}`",
                    c.name
                )));
            }
            let web = c.url.starts_with("https://") || c.url.starts_with("http://");
            if c.kind != ChannelKind::Email && !web {
                return Err(NotifyError::Settings(format!(
                    "channel `{}`: the url must start with https:// (or http:// inside the center's network)",
                    c.name
                )));
            }
            if c.kind == ChannelKind::Telegram && c.chat_id.as_deref().is_none_or(str::is_empty) {
                return Err(NotifyError::Settings(format!(
                    "channel `{}`: a telegram channel needs chat_id, the chat the bot writes to",
                    c.name
                )));
            }
            let needs_secret = c.kind != ChannelKind::Email || c.user.is_some();
            let secret = match (&c.secret_file, needs_secret) {
                (Some(file), true) => {
                    let path = data_dir.join(file);
                    let secret = std::fs::read(&path).map_err(|source| NotifyError::Secret {
                        channel: c.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    let secret = secret.trim_ascii().to_vec();
                    if secret.len() < 16 && c.kind == ChannelKind::Webhook {
                        return Err(NotifyError::Settings(format!(
                            "channel `{}`: the secret in {} is shorter than 16 bytes",
                            c.name,
                            path.display()
                        )));
                    }
                    secret
                }
                (None, true) => {
                    return Err(NotifyError::Settings(format!(
                        "channel `{}` needs secret_file (the webhook's key, the bot's token, or the SMTP user's password)",
                        c.name
                    )))
                }
                (_, false) => Vec::new(),
            };
            let smtp = match c.kind {
                ChannelKind::Email => Some(email_server(c, &secret, data_dir)?),
                _ => None,
            };
            channels.push(Channel {
                config: c.clone(),
                secret,
                smtp,
            });
        }
        for r in &settings.rules {
            if !EVENTS.contains(&r.event.as_str()) {
                return Err(NotifyError::Settings(format!(
                    "a rule names the event `{}`; known events: {}",
                    r.event,
                    EVENTS.join(", ")
                )));
            }
            if !channels.iter().any(|c| c.config.name == r.channel) {
                return Err(NotifyError::Settings(format!(
                    "a rule names the channel `{}`, which no [[notify.channels]] defines",
                    r.channel
                )));
            }
            if r.group.0.is_zero() || r.max_per_hour == 0 {
                return Err(NotifyError::Settings(format!(
                    "the rule for `{}` needs a group window above zero and max_per_hour of 1 or more",
                    r.channel
                )));
            }
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .user_agent(concat!("pasopati-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Notifier {
            rules: settings.rules.clone(),
            channels,
            agent,
        })
    }

    /// Gathers the urgent reports stored since the cursor into the outbox (one transaction
    /// with the cursor's move). On the first look the cursor starts after what is stored: a
    /// new notifier does not tell the past.
    pub fn gather(&self, store: &Store, now: Timestamp) -> Result<usize, NotifyError> {
        let Some(cursor) = store.notify_cursor()? else {
            let start = store
                .newest_shown(0, 1)?
                .first()
                .map_or(0, |r| r.arrival + 1);
            store.save_notifications(Vec::new(), Some(start))?;
            return Ok(0);
        };
        let (reports, next) = store.latest_from(cursor, 1_000)?;
        if next == cursor {
            return Ok(0);
        }
        let urgent: Vec<&StoredReport> = reports
            .iter()
            .filter(|r| r.report.priority == Priority::Urgent && r.report.revision <= 1)
            .collect();
        let mut changed: Vec<Notification> = Vec::new();
        if !urgent.is_empty() {
            let sites = store.sites()?;
            let outbox = store.notifications(100)?;
            for rule in self.rules.iter().filter(|r| r.event == "urgent_report") {
                let Some(channel) = self.channels.iter().find(|c| c.config.name == rule.channel)
                else {
                    continue;
                };
                let mine: Vec<&&StoredReport> = urgent
                    .iter()
                    .filter(|r| in_scope(&channel.config, &sites, r.site.as_str()))
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let open = changed
                    .iter()
                    .position(|n| open_for(n, rule, now))
                    .or_else(|| {
                        outbox.iter().find(|n| open_for(n, rule, now)).map(|n| {
                            changed.push(n.clone());
                            changed.len() - 1
                        })
                    });
                let index = match open {
                    Some(i) => i,
                    None => {
                        changed.push(new_message(rule, &outbox, now));
                        changed.len() - 1
                    }
                };
                let message = &mut changed[index];
                for r in mine {
                    message.count += 1;
                    if !message.sites.contains(&r.site.to_string()) {
                        message.sites.push(r.site.to_string());
                    }
                    if message.lines.len() < 5 {
                        let name = sites
                            .iter()
                            .find(|s| s.id == r.site)
                            .map_or_else(|| r.site.to_string(), |s| s.name.clone());
                        message.lines.push(format!("{name}: {}", r.report.title));
                    }
                }
            }
        }
        let n = changed.len();
        store.save_notifications(changed, Some(next))?;
        Ok(n)
    }

    /// Sends every message whose window has closed and whose backoff has passed; returns how
    /// many went. A message is marked sent only after its channel took it.
    pub fn send_due(&self, store: &Store, now: Timestamp) -> Result<usize, NotifyError> {
        let mut sent = 0;
        for mut n in store.notifications(0)? {
            if n.sent_at.is_some() || n.due_at > now.0 || n.next_attempt_at > now.0 {
                continue;
            }
            let result = match self.channels.iter().find(|c| c.config.name == n.channel) {
                Some(channel) => match channel.config.kind {
                    ChannelKind::Webhook => self.post(channel, &n),
                    ChannelKind::Telegram => self.send_telegram(channel, &n),
                    ChannelKind::Email => send_email(channel, &n),
                },
                None => Err(Refusal::from(format!(
                    "the channel `{}` is no longer configured",
                    n.channel
                ))),
            };
            match result {
                Ok(()) => {
                    pasopati_common::faults::failpoint("collector.notify_after_send");
                    n.sent_at = Some(Timestamp::now().0);
                    n.last_error = None;
                    sent += 1;
                }
                Err(refusal) => {
                    n.attempts += 1;
                    let wait = refusal.retry_after.unwrap_or_else(|| backoff(n.attempts));
                    n.next_attempt_at = now.0 + wait.as_millis() as i64;
                    tracing::warn!(channel = %n.channel, id = n.id, attempts = n.attempts,
                        "notification not delivered, trying again in {}s: {}", wait.as_secs(), refusal.message);
                    n.last_error = Some(refusal.message);
                }
            }
            store.save_notifications(vec![n], None)?;
        }
        Ok(sent)
    }

    /// Sends a message with the Bot API's `sendMessage`; the text ends with the message's id.
    fn send_telegram(&self, channel: &Channel, n: &Notification) -> Result<(), Refusal> {
        let token = String::from_utf8_lossy(&channel.secret);
        let url = format!(
            "{}/bot{}/sendMessage",
            channel.config.url.trim_end_matches('/'),
            token
        );
        let body = serde_json::json!({
            "chat_id": channel.config.chat_id,
            "text": format!("{}\n#{}", text(n), n.id),
            "disable_web_page_preview": true,
        })
        .to_string();
        let mut response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            // The token is part of the address: never repeat the transport's message.
            .map_err(|_| Refusal::from("the Telegram Bot API could not be reached".to_owned()))?;
        let status = response.status().as_u16();
        let answer: serde_json::Value = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if (200..300).contains(&status) && answer["ok"] == true {
            return Ok(());
        }
        Err(Refusal {
            message: format!(
                "the Telegram Bot API answered HTTP {status}: {}",
                answer["description"].as_str().unwrap_or("no description")
            ),
            retry_after: answer["parameters"]["retry_after"]
                .as_u64()
                .map(Duration::from_secs),
        })
    }

    /// Posts a message to a webhook: JSON, signed over the exact body.
    fn post(&self, channel: &Channel, n: &Notification) -> Result<(), Refusal> {
        let body = serde_json::json!({
            "id": n.id,
            "event": n.event,
            "text": text(n),
            "count": n.count,
            "sites": n.sites,
            "opened_at": Timestamp(n.opened_at).to_rfc3339(),
        })
        .to_string();
        let signature = signature(&channel.secret, body.as_bytes());
        let response = self
            .agent
            .post(&channel.config.url)
            .header("Content-Type", "application/json")
            .header("X-Pasopati-Id", &n.id.to_string())
            .header("X-Pasopati-Signature", &format!("sha256={signature}"))
            .send(body.as_bytes())
            .map_err(|e| Refusal::from(e.to_string()))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(Refusal::from(format!("the webhook answered HTTP {status}")))
        }
    }
}

/// An email channel's server, from its settings: `smtp://HOST[:PORT]` (587 by default), a
/// sender and at least one recipient.
fn email_server(
    c: &ChannelConfig,
    password: &[u8],
    data_dir: &Path,
) -> Result<crate::smtp::Server, NotifyError> {
    let bad = |what: &str| NotifyError::Settings(format!("channel `{}`: {what}", c.name));
    let rest = c
        .url
        .strip_prefix("smtp://")
        .ok_or_else(|| bad("an email channel's url is smtp://HOST:PORT (port 587 by default)"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse::<u16>()
                .map_err(|_| bad("the port in the url is not a number"))?,
        ),
        None => (rest.to_owned(), 587),
    };
    if host.is_empty() {
        return Err(bad("the url names no mail server"));
    }
    if c.from.as_deref().is_none_or(|f| !f.contains('@')) {
        return Err(bad("an email channel needs from = \"sender@domain\""));
    }
    if c.to.is_empty() || c.to.iter().any(|t| !t.contains('@')) {
        return Err(bad("an email channel needs to = [\"someone@domain\", …]"));
    }
    let ca = c.ca_file.as_ref().map(|f| data_dir.join(f));
    let tls = crate::smtp::tls_config(ca.as_deref()).map_err(|e| bad(&e.to_string()))?;
    Ok(crate::smtp::Server {
        host,
        port,
        plain_loopback: c.plain_loopback,
        user: c.user.clone(),
        password: c
            .user
            .as_ref()
            .map(|_| String::from_utf8_lossy(password).into_owned()),
        tls,
    })
}

/// Sends a message as an email; its Message-ID is the same on every attempt.
fn send_email(channel: &Channel, n: &Notification) -> Result<(), Refusal> {
    let Some(server) = &channel.smtp else {
        return Err(Refusal::from("the email channel has no server".to_owned()));
    };
    let text = text(n);
    let mail = crate::smtp::Mail {
        from: channel.config.from.clone().unwrap_or_default(),
        to: channel.config.to.clone(),
        message_id: format!("notification-{}-{}@pasopati", n.id, n.opened_at),
        subject: text.lines().next().unwrap_or("PASOPATI").to_owned(),
        text,
        html: None,
        date: rfc2822(Timestamp::now()),
    };
    crate::smtp::send(server, &mail).map_err(|e| Refusal::from(e.to_string()))
}

/// A time as an email's Date header, in WIB.
fn rfc2822(t: Timestamp) -> String {
    let wib = time::UtcOffset::from_hms(7, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
        .map(|d| d.to_offset(wib))
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}

/// Why a channel did not take a message, and when it asked to be tried again.
struct Refusal {
    message: String,
    retry_after: Option<Duration>,
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal {
            message,
            retry_after: None,
        }
    }
}

/// The hex HMAC-SHA-256 of `body` under `secret`, as the webhook's receiver recomputes it.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    pasopati_common::hex(ring::hmac::sign(&key, body).as_ref())
}

/// Whether a site is in a channel's scope.
fn in_scope(channel: &ChannelConfig, sites: &[SiteRecord], site: &str) -> bool {
    if let Some(only) = &channel.site {
        return only == site;
    }
    match &channel.kanwil {
        Some(k) => sites
            .iter()
            .any(|s| s.id.as_str() == site && &s.kanwil == k),
        None => true,
    }
}

/// Whether `n` is the rule's message still gathering at `now`.
fn open_for(n: &Notification, rule: &RuleConfig, now: Timestamp) -> bool {
    n.sent_at.is_none() && n.channel == rule.channel && n.event == rule.event && n.due_at > now.0
}

/// A new message of `rule` opened at `now`: due at the end of its window, or later if the
/// rule's hourly limit is reached (then when the oldest of the last hour's is an hour old).
fn new_message(rule: &RuleConfig, outbox: &[Notification], now: Timestamp) -> Notification {
    let hour = 3_600_000;
    let mut recent: Vec<i64> = outbox
        .iter()
        .filter(|n| n.channel == rule.channel && n.event == rule.event)
        .map(|n| n.opened_at)
        .filter(|&t| t > now.0 - hour)
        .collect();
    recent.sort_unstable();
    let mut due = now.0 + rule.group.0.as_millis() as i64;
    if recent.len() >= rule.max_per_hour as usize {
        let oldest = recent[recent.len() - rule.max_per_hour as usize];
        due = due.max(oldest + hour);
    }
    Notification {
        id: 0,
        channel: rule.channel.clone(),
        event: rule.event.clone(),
        opened_at: now.0,
        due_at: due,
        count: 0,
        sites: Vec::new(),
        lines: Vec::new(),
        sent_at: None,
        attempts: 0,
        next_attempt_at: 0,
        last_error: None,
    }
}

/// The message as people read it, in Bahasa Indonesia.
pub fn text(n: &Notification) -> String {
    let minutes = ((n.due_at - n.opened_at) / 60_000).max(1);
    let mut out = format!(
        "{} laporan mendesak dari {} UPT dalam {} menit",
        n.count,
        n.sites.len(),
        minutes
    );
    for l in &n.lines {
        out.push_str("\n- ");
        out.push_str(l);
    }
    if n.count as usize > n.lines.len() {
        out.push_str(&format!(
            "\n… dan {} lainnya",
            n.count as usize - n.lines.len()
        ));
    }
    out
}

/// The wait after the `attempts`-th failure: 5 s doubling to at most 10 minutes.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs((5u64 << attempts.min(7).saturating_sub(1)).min(600))
}

/// Runs the notifier every second until `shutdown`.
pub async fn run(notifier: Arc<Notifier>, store: Arc<Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (n, s) = (notifier.clone(), store.clone());
        let work = tokio::task::spawn_blocking(move || {
            let now = Timestamp::now();
            n.gather(&s, now)?;
            n.send_due(&s, Timestamp::now())
        })
        .await;
        match work {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("notifications: {e}"),
            Err(e) => tracing::error!("notifications: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max: u32) -> RuleConfig {
        RuleConfig {
            event: "urgent_report".into(),
            channel: "pusat".into(),
            group: HumanDuration::from_secs(600),
            max_per_hour: max,
        }
    }

    #[test]
    fn a_message_waits_for_its_window_and_the_hourly_limit() {
        let now = Timestamp(10 * 3_600_000);
        let fresh = new_message(&rule(2), &[], now);
        assert_eq!(fresh.due_at, now.0 + 600_000);
        // Two messages in the last hour, the limit is two: the next waits until the older is
        // an hour old.
        let earlier = |minutes: i64| Notification {
            opened_at: now.0 - minutes * 60_000,
            ..new_message(&rule(2), &[], now)
        };
        let outbox = [earlier(50), earlier(20)];
        let held = new_message(&rule(2), &outbox, now);
        assert_eq!(held.due_at, now.0 - 50 * 60_000 + 3_600_000);
        assert!(!open_for(&held, &rule(2), Timestamp(held.due_at)));
        assert!(open_for(&held, &rule(2), now));
    }

    #[test]
    fn a_burst_reads_as_one_message() {
        let n = Notification {
            count: 12,
            sites: (0..5).map(|i| format!("lapas-{i}")).collect(),
            lines: (0..5)
                .map(|i| format!("Lapas Uji {i}: kebakaran kecil (uji)"))
                .collect(),
            ..new_message(&rule(6), &[], Timestamp(0))
        };
        let t = text(&n);
        assert!(
            t.starts_with("12 laporan mendesak dari 5 UPT dalam 10 menit\n- Lapas Uji 0"),
            "{t}"
        );
        assert!(t.ends_with("… dan 7 lainnya"), "{t}");
    }

    #[test]
    fn signatures_are_hmac_sha256_and_backoff_is_bounded() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(30), Duration::from_secs(320));
    }
}
