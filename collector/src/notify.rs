//! Notifications: telling people what needs them without a dashboard open.
//!
//! Each rule of `[[notify.rules]]` names an event and a channel; the channel's `kanwil` or
//! `site` is the rule's scope (a Kanwil gets its own channel and rules). The events:
//! - `urgent_report`: every new urgent report, read from the store after the notifier's cursor;
//! - `spike`, `negative_story`, `coverage_gap`, `silent_site` (no contact for `hours`) and
//!   `rollout_paused`: conditions, worked out every few seconds from the analysis, the site
//!   table and the fleet, each told once when it starts to hold (a key per condition is kept
//!   as told until it no longer holds, so one that ends and comes back is told again);
//! - `morning_digest`: the day before's digest (`web/digest.rs`) at `at` (06:30 WIB by
//!   default), once a day.
//!
//! What a rule tells gathers into one message per group window ("12 laporan mendesak dari 5
//! UPT dalam 10 menit"), at most `max_per_hour` messages an hour (a burst beyond that waits in
//! the open message). Messages, the cursor and the told conditions are written to the store's
//! outbox in one transaction (`store/notifications.rs`); a message is sent when its window has
//! closed and marked sent only after its channel took it, with backoff between failed
//! attempts. So a crash loses nothing and floods nobody: at worst the message being sent goes
//! again, with the same id, which the receiver drops. On a shared PostgreSQL store only the
//! collector leading the media desk gathers and sends, so every instance can carry the same
//! `[notify]`.
//!
//! Channels: a JSON webhook, signed with HMAC-SHA-256 over the body (`X-Pasopati-Signature:
//! sha256=<hex>`) and carrying the message id (`X-Pasopati-Id`); the Telegram Bot API's
//! `sendMessage` to a chat, the message ending with its id ("#17") since the Bot API has no
//! field for one (a 429's `retry_after` is honoured); email over SMTP with STARTTLS
//! (`smtp.rs`), its `Message-ID` the same for every attempt, the digest with an HTML part.

use crate::store::{
    Notification, OutboxChange, Scope, SiteRecord, SiteStatus, Store, StoreError, StoredReport,
};
use crate::web::scope::Reach;
use crate::web::show::Names;
use crate::ServerState;
use pasopati_analysis::insight::{date_string, day_of};
use pasopati_common::{HumanDuration, Priority, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    /// One of [`EVENTS`].
    pub event: String,
    pub channel: String,
    /// How long a message gathers events before it is sent.
    #[serde(default = "default_group")]
    pub group: HumanDuration,
    /// The most messages of this rule an hour; more events wait in the open message.
    #[serde(default = "default_max_per_hour")]
    pub max_per_hour: u32,
    /// `silent_site`: how long without contact makes a site silent (`24h` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_for: Option<HumanDuration>,
    /// `morning_digest`: the time of day it is sent, `HH:MM` WIB (06:30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl RuleConfig {
    /// The name its told conditions are kept under: channel, event and what tunes it.
    fn name(&self) -> String {
        match self.event.as_str() {
            "silent_site" => format!(
                "{}/{}/{}s",
                self.channel,
                self.event,
                self.silent_for().as_secs()
            ),
            _ => format!("{}/{}", self.channel, self.event),
        }
    }

    /// What the conditions it tells depend on, whatever the channel: its event, and for
    /// `silent_site` its window.
    fn conditions_key(&self) -> String {
        match self.event.as_str() {
            "silent_site" => format!("silent_site/{}", self.silent_for().as_millis()),
            other => other.to_owned(),
        }
    }

    fn silent_for(&self) -> Duration {
        self.silent_for
            .map_or(Duration::from_secs(24 * 3_600), |d| d.0)
    }

    /// The digest's time of day in minutes after midnight WIB, if `at` reads as `HH:MM`.
    fn digest_minute(&self) -> Option<i64> {
        let at = self.at.as_deref().unwrap_or("06:30");
        let (h, m) = at.split_once(':')?;
        let (h, m): (i64, i64) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
        ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
    }
}

fn default_group() -> HumanDuration {
    HumanDuration::from_secs(600)
}

fn default_max_per_hour() -> u32 {
    6
}

/// The events rules can name.
pub const EVENTS: &[&str] = &[
    "urgent_report",
    "spike",
    "negative_story",
    "coverage_gap",
    "silent_site",
    "rollout_paused",
    "morning_digest",
];

/// How often conditions are worked out again (the urgent reports are read every second).
const CONDITIONS_EVERY: Duration = Duration::from_secs(5);

/// How long a negative story stays news: its last item within this many hours.
const NEGATIVE_STORY_HOURS: i64 = 24;

/// A Telegram message's length limit is 4,096 characters; longer texts are cut before it.
const TELEGRAM_MAX_CHARS: usize = 3_900;

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
    #[error("the morning digest for channel `{0}` could not be built (the log above says why)")]
    Digest(String),
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
    /// When conditions were last worked out.
    conditions_at: Mutex<Option<Instant>>,
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
            if r.silent_for.is_some() && r.event != "silent_site" {
                return Err(NotifyError::Settings(format!(
                    "the rule for `{}` on `{}` has silent_for, which only silent_site takes",
                    r.event, r.channel
                )));
            }
            if r.silent_for().is_zero() {
                return Err(NotifyError::Settings(format!(
                    "the silent_site rule on `{}` needs silent_for above zero (\"24h\", say)",
                    r.channel
                )));
            }
            if r.at.is_some() && r.event != "morning_digest" {
                return Err(NotifyError::Settings(format!(
                    "the rule for `{}` on `{}` has at, which only morning_digest takes",
                    r.event, r.channel
                )));
            }
            if r.digest_minute().is_none() {
                return Err(NotifyError::Settings(format!(
                    "the morning_digest rule on `{}`: at = \"{}\" is not a time of day such as \"06:30\" (WIB)",
                    r.channel,
                    r.at.as_deref().unwrap_or_default()
                )));
            }
            if settings
                .rules
                .iter()
                .filter(|o| o.name() == r.name())
                .count()
                > 1
            {
                return Err(NotifyError::Settings(format!(
                    "two rules tell `{}` to channel `{}`; keep one",
                    r.event, r.channel
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
            conditions_at: Mutex::new(None),
        })
    }

    /// One pass: the urgent reports stored since the cursor, and (every few seconds) the
    /// conditions and the digests, into the outbox in one transaction with the cursor's move
    /// and the told conditions. On the first look the cursor starts after what is stored: a
    /// new notifier does not tell past reports. Returns how many messages it opened or grew.
    pub(crate) fn gather(&self, state: &ServerState, now: Timestamp) -> Result<usize, NotifyError> {
        let store = &state.store;
        let Some(cursor) = store.notify_cursor()? else {
            begin(store)?;
            return Ok(0);
        };
        let (reports, next) = store.latest_from(cursor, 1_000)?;
        let conditions_due = {
            let mut at = self.conditions_at.lock().unwrap_or_else(|e| e.into_inner());
            let due = at.is_none_or(|t| t.elapsed() >= CONDITIONS_EVERY);
            if due {
                *at = Some(Instant::now());
            }
            due
        };
        if next == cursor && !conditions_due {
            return Ok(0);
        }
        let limit = self
            .rules
            .iter()
            .map(|r| r.max_per_hour as usize)
            .sum::<usize>()
            + 64;
        let mut pass = Pass {
            outbox: store.recent_notifications(limit)?,
            changed: Vec::new(),
            now,
        };
        let sites = store.sites()?;
        let names = Names::of_sites(&sites);
        // Each channel's scope, from the site table read once for the pass.
        let reaches: HashMap<&str, Reach> = self
            .channels
            .iter()
            .map(|c| {
                let scope = match (&c.config.site, &c.config.kanwil) {
                    (Some(site), _) => Scope::Site(site.clone()),
                    (None, Some(k)) => Scope::Kanwil(k.clone()),
                    (None, None) => Scope::National,
                };
                (c.config.name.as_str(), Reach::of_scope(&sites, scope))
            })
            .collect();

        let mut urgent: Vec<Event> = Vec::new();
        for r in reports
            .iter()
            .filter(|r| r.report.priority == Priority::Urgent)
        {
            if r.report.revision > 0 && told_urgent_before(store, r, cursor)? {
                continue;
            }
            urgent.push(urgent_event(r, &names));
        }
        let mut active_changes = Vec::new();
        let told = if conditions_due {
            store.notify_active()?
        } else {
            BTreeMap::new()
        };
        // Worked out once per pass for each event (and silence window), whatever the
        // number of channels.
        let mut conditions: HashMap<String, Vec<Event>> = HashMap::new();
        for rule in &self.rules {
            let Some(reach) = reaches.get(rule.channel.as_str()) else {
                continue;
            };
            if rule.event == "urgent_report" {
                let mine: Vec<&Event> = urgent.iter().filter(|e| e.within(reach)).collect();
                pass.add(rule, &mine);
                continue;
            }
            if !conditions_due {
                continue;
            }
            let before = told.get(&rule.name()).cloned().unwrap_or_default();
            if rule.event == "morning_digest" {
                if let Some(day) = digest_day(rule, now, &before) {
                    // A digest that cannot be built now is tried again at the next pass; it
                    // holds up nothing else.
                    match crate::web::digest::build(state, reach, day - 1) {
                        Ok(digest) => {
                            pass.changed.push(digest_message(rule, &digest, now));
                            active_changes.push((rule.name(), vec![date_string(day)]));
                        }
                        Err(_) => tracing::warn!(
                            "notifications: {}",
                            NotifyError::Digest(rule.channel.clone())
                        ),
                    }
                }
                continue;
            }
            let key = rule.conditions_key();
            if !conditions.contains_key(&key) {
                let found = conditions_of(state, &rule.event, rule, &sites, &names, now)?;
                conditions.insert(key.clone(), found);
            }
            let mine: Vec<&Event> = conditions
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|e| e.within(reach))
                .collect();
            let (new, holding) = newly_holding(&before, &mine);
            pass.add(rule, &new);
            if holding != before {
                active_changes.push((rule.name(), holding));
            }
        }
        let n = pass.changed.len();
        store.save_notifications(OutboxChange {
            messages: pass.changed,
            cursor: (next != cursor).then_some(next),
            active: active_changes,
        })?;
        Ok(n)
    }

    /// Sends every message whose window has closed and whose backoff has passed; returns how
    /// many went. A message is marked sent only after its channel took it.
    pub fn send_due(&self, store: &Store, now: Timestamp) -> Result<usize, NotifyError> {
        let mut sent = 0;
        for mut n in store.pending_notifications()? {
            if n.due_at > now.0 || n.next_attempt_at > now.0 {
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
            store.save_notifications(OutboxChange {
                messages: vec![n],
                ..OutboxChange::default()
            })?;
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
            "text": format!("{}\n#{}", cut(&text(n), TELEGRAM_MAX_CHARS), n.id),
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
            "subject": subject(n),
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
        subject: subject(n),
        text,
        html: n.html.clone(),
        date: rfc2822(Timestamp::now()),
    };
    crate::smtp::send(server, &mail).map_err(|e| Refusal::from(e.to_string()))
}

/// A message's subject: the digest's own, else its first line.
fn subject(n: &Notification) -> String {
    n.subject
        .clone()
        .unwrap_or_else(|| text(n).lines().next().unwrap_or("PASOPATI").to_owned())
}

/// `text` cut to at most `max` characters, ending with "…" when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
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

/// Places the notifier's cursor after the reports stored so far, unless it has one: a new
/// notifier does not tell past reports. Called when the collector starts, before it serves
/// sites and whether or not it leads, so reports arriving before the first look are told.
pub(crate) fn begin(store: &Store) -> Result<(), NotifyError> {
    if store.notify_cursor()?.is_some() {
        return Ok(());
    }
    let start = store
        .newest_shown(0, 1)?
        .first()
        .map_or(0, |r| r.arrival + 1);
    store.save_notifications(OutboxChange {
        cursor: Some(start),
        ..OutboxChange::default()
    })?;
    Ok(())
}

/// One thing a rule may tell: an urgent report, or a condition that holds now.
#[derive(Clone, Debug, PartialEq)]
struct Event {
    /// Stable while the condition holds: what the outbox keeps as told.
    key: String,
    /// The site or unit it is about (a message counts each once).
    about: String,
    /// The sites, units and Kanwil it concerns, for the channels' scopes.
    sites: Vec<String>,
    upt: Vec<String>,
    kanwil: Vec<String>,
    /// Its line in a message.
    line: String,
}

impl Event {
    /// Whether a channel of `reach` is told of it.
    fn within(&self, reach: &Reach) -> bool {
        reach.is_national()
            || self.sites.iter().any(|s| reach.site(s))
            || reach.tagged(&self.upt, &self.kanwil)
    }
}

/// The messages one pass opens or grows.
struct Pass {
    /// The newest messages of the outbox (for open windows and the hourly limits).
    outbox: Vec<Notification>,
    changed: Vec<Notification>,
    now: Timestamp,
}

impl Pass {
    /// Adds `events` to the rule's open message, or to a new one.
    fn add(&mut self, rule: &RuleConfig, events: &[&Event]) {
        if events.is_empty() {
            return;
        }
        let now = self.now;
        let open = self
            .changed
            .iter()
            .position(|n| open_for(n, rule, now))
            .or_else(|| {
                self.outbox
                    .iter()
                    .find(|n| open_for(n, rule, now))
                    .map(|n| {
                        self.changed.push(n.clone());
                        self.changed.len() - 1
                    })
            });
        let index = match open {
            Some(i) => i,
            None => {
                self.changed.push(new_message(rule, &self.outbox, now));
                self.changed.len() - 1
            }
        };
        let message = &mut self.changed[index];
        for e in events {
            message.count += 1;
            if !message.sites.contains(&e.about) {
                message.sites.push(e.about.clone());
            }
            if message.lines.len() < 5 {
                message.lines.push(e.line.clone());
            }
        }
    }
}

/// Whether an earlier revision of `r` was urgent and looked at before `cursor` (so told): a
/// revision of an urgent report is not news, but a report revised before the notifier first
/// saw it, or one that became urgent, is.
fn told_urgent_before(store: &Store, r: &StoredReport, cursor: u64) -> Result<bool, StoreError> {
    Ok(store.revisions(&r.report.id)?.iter().any(|earlier| {
        earlier.arrival < cursor
            && earlier.report.revision < r.report.revision
            && earlier.report.priority == Priority::Urgent
    }))
}

/// An urgent report as an event.
fn urgent_event(r: &StoredReport, names: &Names) -> Event {
    let site = r.site.to_string();
    Event {
        key: r.report.id.to_string(),
        line: format!("{}: {}", names.unit(&site), r.report.title),
        about: site.clone(),
        upt: vec![site.clone()],
        sites: vec![site],
        kanwil: Vec::new(),
    }
}

/// The conditions of `event` that hold at `now`, across the whole country.
fn conditions_of(
    state: &ServerState,
    event: &str,
    rule: &RuleConfig,
    sites: &[SiteRecord],
    names: &Names,
    now: Timestamp,
) -> Result<Vec<Event>, NotifyError> {
    Ok(match event {
        "spike" => {
            let insights = state.newsroom.insights(None)?;
            spikes(insights["alerts"].as_array().map_or(&[][..], Vec::as_slice))
        }
        "negative_story" => negative_stories(&state.newsroom.stories()?, names, now),
        "coverage_gap" => {
            let insights = state.newsroom.insights(None)?;
            coverage_gaps(&insights["coverage"]["negative_without_reports"], names)
        }
        "silent_site" => {
            let connected = state.online_sites();
            let quiet: Vec<SiteRecord> = sites
                .iter()
                .filter(|s| !connected.contains(&s.id))
                .cloned()
                .collect();
            silent_sites(&quiet, rule.silent_for(), names, now)
        }
        "rollout_paused" => crate::fleet::rollout::current(&state.store)?
            .map(|r| paused_rollout(&r))
            .into_iter()
            .flatten()
            .collect(),
        _ => Vec::new(),
    })
}

/// Spike alerts, as the analysis gives them (JSON), each for its series and period.
fn spikes(alerts: &[serde_json::Value]) -> Vec<Event> {
    alerts
        .iter()
        .map(|a| {
            let series = a["series"].as_str().unwrap_or_default();
            let unit = series.strip_prefix("upt:").map(str::to_owned);
            Event {
                key: format!(
                    "{}:{series}:{}",
                    a["kind"].as_str().unwrap_or_default(),
                    a["period"].as_str().unwrap_or_default()
                ),
                about: series.to_owned(),
                sites: Vec::new(),
                upt: unit.into_iter().collect(),
                kanwil: Vec::new(),
                line: format!(
                    "{}: {} item pada {} (biasanya {:.1})",
                    a["label"].as_str().unwrap_or(series),
                    a["count"].as_u64().unwrap_or(0),
                    a["period"].as_str().unwrap_or_default(),
                    a["baseline_mean"].as_f64().unwrap_or(0.0)
                ),
            }
        })
        .collect()
}

/// Stories with media whose tone is negative and whose last item is under a day old.
fn negative_stories(
    stories: &[pasopati_analysis::batch::StoryResult],
    names: &Names,
    now: Timestamp,
) -> Vec<Event> {
    let since = now.0 - NEGATIVE_STORY_HOURS * 3_600_000;
    stories
        .iter()
        .filter(|s| !s.items.is_empty())
        .filter(|s| pasopati_analysis::sentiment::class(s.sentiment as f32) == "negatif")
        .filter(|s| Timestamp::parse_rfc3339(&s.last_seen).is_ok_and(|t| t.0 >= since))
        .map(|s| {
            let about = s
                .upt
                .first()
                .or(s.kanwil.first())
                .cloned()
                .unwrap_or_else(|| s.id.clone());
            let units = if s.upt.is_empty() {
                s.kanwil
                    .iter()
                    .map(|k| format!("Kanwil {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                names.units(&s.upt)
            };
            Event {
                key: s.id.clone(),
                about,
                sites: Vec::new(),
                upt: s.upt.clone(),
                kanwil: s.kanwil.clone(),
                line: format!("{} ({} item; {units})", s.title, s.items.len()),
            }
        })
        .collect()
}

/// Units whose media coverage is mostly negative while they filed nothing (the analysis'
/// `negative_without_reports`, JSON).
fn coverage_gaps(gaps: &serde_json::Value, names: &Names) -> Vec<Event> {
    gaps.as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let upt = g["upt"].as_str()?.to_owned();
            Some(Event {
                key: upt.clone(),
                line: format!(
                    "{}: {} item media, {:.0}% negatif, tanpa laporan UPT",
                    names.unit(&upt),
                    g["items"].as_u64().unwrap_or(0),
                    g["negative_share"].as_f64().unwrap_or(0.0) * 100.0
                ),
                about: upt.clone(),
                sites: Vec::new(),
                upt: vec![upt],
                kanwil: Vec::new(),
            })
        })
        .collect()
}

/// Enrolled sites not heard from for `silent_for` (of those not connected here now; on a
/// shared store a site connected to another collector counts by its last heartbeat there);
/// the key carries the last contact, so a site that comes back and goes silent again is told
/// again.
fn silent_sites(
    sites: &[SiteRecord],
    silent_for: Duration,
    names: &Names,
    now: Timestamp,
) -> Vec<Event> {
    let limit = now.0 - silent_for.as_millis().min(i64::MAX as u128) as i64;
    sites
        .iter()
        .filter(|s| s.status == SiteStatus::Active)
        .filter_map(|s| {
            let last = s.last_seen_at.or(s.enrolled_at)?;
            (last.0 < limit).then(|| {
                let id = s.id.to_string();
                Event {
                    key: format!("{id}@{}", last.0),
                    line: format!(
                        "{}: terakhir terhubung {} ({})",
                        s.name,
                        names.time(&id, last.0),
                        ago(now.0 - last.0)
                    ),
                    about: id.clone(),
                    upt: vec![id.clone()],
                    sites: vec![id],
                    kanwil: Vec::new(),
                }
            })
        })
        .collect()
}

/// How long ago, in words: "3 jam lalu", "2 hari lalu".
fn ago(ms: i64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        m if m < 120 => format!("{m} menit lalu"),
        m if m < 48 * 60 => format!("{} jam lalu", m / 60),
        m => format!("{} hari lalu", m / (24 * 60)),
    }
}

/// A paused rollout, told to the channels whose scope holds one of its sites.
fn paused_rollout(r: &crate::fleet::rollout::Rollout) -> Option<Event> {
    (r.state == crate::fleet::rollout::RolloutState::Paused).then(|| Event {
        key: format!("{}@{}@{}", r.version, r.started_at, r.resumed_at),
        about: r.version.clone(),
        sites: r.waves.iter().flat_map(|w| w.sites.clone()).collect(),
        upt: Vec::new(),
        kanwil: Vec::new(),
        line: format!(
            "Rilis {} berhenti di gelombang {} dari {}: {}",
            r.version,
            r.wave + 1,
            r.waves.len(),
            r.reason.as_deref().unwrap_or("tanpa keterangan")
        ),
    })
}

/// Of the conditions holding now, those not told before, and the keys to keep as told.
fn newly_holding<'a>(before: &[String], now: &[&'a Event]) -> (Vec<&'a Event>, Vec<String>) {
    let told: BTreeSet<&str> = before.iter().map(String::as_str).collect();
    let new = now
        .iter()
        .filter(|e| !told.contains(e.key.as_str()))
        .copied()
        .collect();
    let holding: BTreeSet<String> = now.iter().map(|e| e.key.clone()).collect();
    (new, holding.into_iter().collect())
}

/// The day (WIB) whose digest is due at `now` and not sent yet: today, once the rule's time
/// of day has come.
fn digest_day(rule: &RuleConfig, now: Timestamp, before: &[String]) -> Option<i64> {
    let today = day_of(now.0);
    let minute = (now.0 + 7 * 3_600_000).rem_euclid(86_400_000) / 60_000;
    let due = rule.digest_minute().is_some_and(|at| minute >= at);
    (due && !before.contains(&date_string(today))).then_some(today)
}

/// The digest as a message, written whole now.
fn digest_message(
    rule: &RuleConfig,
    digest: &crate::web::digest::Digest,
    now: Timestamp,
) -> Notification {
    let subject = digest.subject();
    let html = maud::html! {
        (maud::DOCTYPE)
        html lang="id" {
            head {
                meta charset="utf-8";
                title { (subject) }
            }
            body style="font-family: sans-serif; max-width: 46em; margin: auto; line-height: 1.45" {
                h1 style="font-size: 1.3em" { (subject) }
                (digest.html())
            }
        }
    };
    Notification {
        due_at: now.0,
        count: 1,
        subject: Some(subject),
        body: Some(digest.text()),
        html: Some(html.into_string()),
        ..new_message(rule, &[], now)
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
    Notification::opening(&rule.channel, &rule.event, now.0, due)
}

/// The message as people read it, in Bahasa Indonesia: a headline saying how many of what,
/// the first lines, and how many more.
pub fn text(n: &Notification) -> String {
    if let Some(body) = &n.body {
        return body.clone();
    }
    let minutes = ((n.due_at - n.opened_at) / 60_000).max(1);
    let mut out = match n.event.as_str() {
        "urgent_report" => format!(
            "{} laporan mendesak dari {} UPT dalam {} menit",
            n.count,
            n.sites.len(),
            minutes
        ),
        "spike" => format!("{} lonjakan pemberitaan", n.count),
        "negative_story" => format!("{} cerita media bernada negatif", n.count),
        "coverage_gap" => format!(
            "{} UPT diberitakan negatif tanpa laporan dari UPT itu",
            n.count
        ),
        "silent_site" => format!("{} UPT tidak terhubung ke pusat", n.count),
        "rollout_paused" => "Peluncuran rilis berhenti".to_owned(),
        other => format!("{} pemberitahuan {other}", n.count),
    };
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

/// Runs the notifier every second until `shutdown`; on a shared PostgreSQL store only while
/// this collector leads the media desk (the analysis the conditions come from is its).
pub(crate) async fn run(
    notifier: Arc<Notifier>,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !state.newsroom.leads() {
            continue;
        }
        let (n, s) = (notifier.clone(), state.clone());
        let work = tokio::task::spawn_blocking(move || {
            n.gather(&s, Timestamp::now())?;
            n.send_due(&s.store, Timestamp::now())
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
            silent_for: None,
            at: None,
        }
    }

    fn event(key: &str, site: &str) -> Event {
        Event {
            key: key.into(),
            about: site.into(),
            sites: vec![site.into()],
            upt: vec![site.into()],
            kanwil: Vec::new(),
            line: format!("{site}: {key}"),
        }
    }

    #[test]
    fn a_revision_is_told_only_when_no_urgent_one_was_seen_before() {
        use crate::store::fixtures::{apply, report, site, store, T0};
        use pasopati_common::frame::Batch;
        let (_dir, store) = store();
        let urgent = |mut r: pasopati_common::Report| {
            r.priority = Priority::Urgent;
            r
        };
        let revised = |mut r: pasopati_common::Report| {
            r.revision = 1;
            r.filed_at = Timestamp(T0 + 1_000);
            r
        };
        let first = Batch {
            first_seq: 1,
            reports: vec![urgent(report(1)), report(2)],
        };
        apply(
            &store,
            &site(),
            pasopati_common::Epoch(1),
            &first,
            Timestamp(T0 + 10),
        );
        let cursor = store.latest_from(0, 100).unwrap().1;
        let second = Batch {
            first_seq: 3,
            reports: vec![revised(urgent(report(1))), revised(urgent(report(2)))],
        };
        apply(
            &store,
            &site(),
            pasopati_common::Epoch(1),
            &second,
            Timestamp(T0 + 20),
        );
        let latest = |n: u64| store.report(&report(n).id).unwrap().unwrap();
        // Report 1 was urgent when the notifier looked: its revision is not news.
        assert!(told_urgent_before(&store, &latest(1), cursor).unwrap());
        // Report 2 became urgent with its revision: news.
        assert!(!told_urgent_before(&store, &latest(2), cursor).unwrap());
        // Revised before the notifier first looked: news too.
        assert!(!told_urgent_before(&store, &latest(1), 0).unwrap());
    }

    #[test]
    fn a_condition_is_told_once_while_it_holds_and_again_when_it_comes_back() {
        let (a, b) = (event("a", "lapas-satu"), event("b", "lapas-dua"));
        let (new, holding) = newly_holding(&[], &[&a, &b]);
        assert_eq!(new, vec![&a, &b]);
        assert_eq!(holding, vec!["a".to_owned(), "b".to_owned()]);
        // Still holding: nothing new.
        let (new, again) = newly_holding(&holding, &[&b, &a]);
        assert!(new.is_empty());
        assert_eq!(again, holding);
        // `a` ends; when it holds again it is told again.
        let (_, without_a) = newly_holding(&holding, &[&b]);
        assert_eq!(without_a, vec!["b".to_owned()]);
        let (new, _) = newly_holding(&without_a, &[&a, &b]);
        assert_eq!(new, vec![&a]);
    }

    #[test]
    fn a_site_is_silent_after_its_window_and_a_new_silence_is_a_new_key() {
        let now = Timestamp(1_800_000_000_000);
        let hour = 3_600_000;
        let site = |id: &str, status, seen: Option<i64>| {
            let mut s = SiteRecord::new(
                pasopati_common::SiteId::new(id).unwrap_or_else(|e| panic!("{e}")),
                format!("Lapas Uji {id}"),
                pasopati_common::SiteType::Lapas,
                "Jawa Tengah".into(),
                status,
                Timestamp(now.0 - 100 * hour),
            );
            s.enrolled_at = Some(Timestamp(now.0 - 90 * hour));
            s.last_seen_at = seen.map(Timestamp);
            s
        };
        let sites = [
            site("diam", SiteStatus::Active, Some(now.0 - 30 * hour)),
            site("hidup", SiteStatus::Active, Some(now.0 - hour)),
            site("dicabut", SiteStatus::Revoked, Some(now.0 - 50 * hour)),
            site("belum", SiteStatus::Pending, None),
            // Enrolled and never heard from since: silent from its enrolment.
            site("bisu", SiteStatus::Active, None),
        ];
        let names = Names::of_sites(&sites);
        let day = Duration::from_secs(24 * 3_600);
        let silent = silent_sites(&sites, day, &names, now);
        let keys: Vec<&str> = silent.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("diam@{}", now.0 - 30 * hour),
                format!("bisu@{}", now.0 - 90 * hour)
            ]
        );
        assert!(
            silent[0]
                .line
                .starts_with("Lapas Uji diam: terakhir terhubung "),
            "{}",
            silent[0].line
        );
        assert!(
            silent[0].line.ends_with("(30 jam lalu)"),
            "{}",
            silent[0].line
        );
        assert!(
            silent[1].line.ends_with("(3 hari lalu)"),
            "{}",
            silent[1].line
        );
        // A longer window: only the one silent for three days.
        assert_eq!(silent_sites(&sites, day * 2, &names, now).len(), 1);
    }

    #[test]
    fn the_digest_is_due_once_a_day_after_its_time_wib() {
        let rule = RuleConfig {
            event: "morning_digest".into(),
            at: Some("06:30".into()),
            ..rule(6)
        };
        let at = |t: &str| Timestamp::parse_rfc3339(t).unwrap_or_else(|e| panic!("{e}"));
        // 06:29 WIB is too early; 06:30 WIB is the day's turn.
        assert_eq!(
            digest_day(&rule, at("2026-12-02T06:29:00+07:00"), &[]),
            None
        );
        let day = digest_day(&rule, at("2026-12-02T06:30:00+07:00"), &[]);
        assert_eq!(day.map(date_string).as_deref(), Some("2026-12-02"));
        // Once told, not again that day; the next day again.
        let told = vec!["2026-12-02".to_owned()];
        assert_eq!(
            digest_day(&rule, at("2026-12-02T23:59:00+07:00"), &told),
            None
        );
        let next = digest_day(&rule, at("2026-12-03T07:00:00+07:00"), &told);
        assert_eq!(next.map(date_string).as_deref(), Some("2026-12-03"));
        // A time that is not a time is refused with the settings.
        let bad = RuleConfig {
            at: Some("6.30".into()),
            ..rule.clone()
        };
        assert_eq!(bad.digest_minute(), None);
        assert_eq!(rule.digest_minute(), Some(390));
    }

    #[test]
    fn a_paused_rollout_and_spikes_reach_the_scopes_of_what_they_concern() {
        use crate::fleet::rollout::{Rollout, RolloutState, Wave};
        let rollout = Rollout {
            version: "0.9.1".into(),
            waves: vec![
                Wave {
                    label: "uji".into(),
                    sites: vec!["lapas-satu".into()],
                },
                Wave {
                    label: "sisanya".into(),
                    sites: vec!["lapas-dua".into()],
                },
            ],
            wave: 1,
            state: RolloutState::Paused,
            reason: Some("lapas-dua kembali ke rilis sebelumnya".into()),
            ..Rollout::default()
        };
        let e = paused_rollout(&rollout).unwrap_or_else(|| panic!("not an event"));
        assert_eq!(
            e.line,
            "Rilis 0.9.1 berhenti di gelombang 2 dari 2: lapas-dua kembali ke rilis sebelumnya"
        );
        let running = Rollout {
            state: RolloutState::Running,
            ..rollout.clone()
        };
        assert_eq!(paused_rollout(&running), None);
        let resumed_and_paused_again = Rollout {
            resumed_at: 5,
            ..rollout
        };
        assert_ne!(
            paused_rollout(&resumed_and_paused_again).map(|e| e.key),
            Some(e.key.clone())
        );

        let alerts = [
            serde_json::json!({"kind": "news", "series": "upt:lapas-satu", "label": "Lapas Uji Satu",
                "period": "2026-12-01", "count": 9, "baseline_mean": 1.25}),
            serde_json::json!({"kind": "news", "series": "all", "label": "Semua berita",
                "period": "2026-12-01", "count": 40, "baseline_mean": 12.0}),
        ];
        let found = spikes(&alerts);
        assert_eq!(found[0].key, "news:upt:lapas-satu:2026-12-01");
        assert_eq!(
            found[0].line,
            "Lapas Uji Satu: 9 item pada 2026-12-01 (biasanya 1.2)"
        );
        assert_eq!(found[0].upt, vec!["lapas-satu".to_owned()]);
        assert!(
            found[1].upt.is_empty(),
            "a national series concerns no unit"
        );
    }

    #[test]
    fn each_event_has_its_own_headline_and_the_digest_its_own_text() {
        let of = |event: &str, count: u64| Notification {
            event: event.into(),
            count,
            lines: vec!["baris".into()],
            ..new_message(&rule(6), &[], Timestamp(0))
        };
        assert!(
            text(&of("spike", 2)).starts_with("2 lonjakan pemberitaan\n- baris\n… dan 1 lainnya")
        );
        assert!(
            text(&of("negative_story", 1)).starts_with("1 cerita media bernada negatif\n- baris")
        );
        assert!(text(&of("silent_site", 1)).starts_with("1 UPT tidak terhubung ke pusat"));
        assert!(text(&of("coverage_gap", 1)).starts_with("1 UPT diberitakan negatif tanpa laporan"));
        assert!(text(&of("rollout_paused", 1)).starts_with("Peluncuran rilis berhenti"));
        let digest = Notification {
            subject: Some("Ringkasan pagi".into()),
            body: Some("isi ringkasan".into()),
            ..of("morning_digest", 1)
        };
        assert_eq!(text(&digest), "isi ringkasan");
        assert_eq!(subject(&digest), "Ringkasan pagi");
        assert_eq!(subject(&of("spike", 2)), "2 lonjakan pemberitaan");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_what_to_change() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("kunci"),
            "kunci-webhook-uji-yang-cukup-panjang",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let channel = ChannelConfig {
            name: "pusat".into(),
            kind: ChannelKind::Webhook,
            url: "http://127.0.0.1:9/hook".into(),
            secret_file: Some("kunci".into()),
            user: None,
            from: None,
            to: Vec::new(),
            ca_file: None,
            plain_loopback: false,
            chat_id: None,
            kanwil: None,
            site: None,
        };
        let refused = |rules: Vec<RuleConfig>| {
            let settings = NotifySettings {
                channels: vec![channel.clone()],
                rules,
            };
            match Notifier::new(&settings, dir.path()) {
                Ok(_) => String::new(),
                Err(e) => e.to_string(),
            }
        };
        let silent = RuleConfig {
            event: "silent_site".into(),
            silent_for: Some(HumanDuration::from_secs(3_600)),
            ..rule(6)
        };
        assert_eq!(refused(vec![silent.clone()]), "");
        assert!(
            refused(vec![silent.clone(), silent.clone()]).contains("two rules tell `silent_site`")
        );
        let other_window = RuleConfig {
            silent_for: Some(HumanDuration::from_secs(7_200)),
            ..silent.clone()
        };
        assert_eq!(refused(vec![silent.clone(), other_window]), "");
        assert!(refused(vec![RuleConfig {
            at: Some("25:00".into()),
            event: "morning_digest".into(),
            ..rule(6)
        }])
        .contains("is not a time of day"));
        assert!(refused(vec![RuleConfig {
            silent_for: Some(HumanDuration::from_secs(60)),
            ..rule(6)
        }])
        .contains("only silent_site takes"));
        assert!(refused(vec![RuleConfig {
            event: "lonjakan".into(),
            ..rule(6)
        }])
        .contains("known events: urgent_report, spike"));
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
