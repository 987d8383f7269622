//! The collector's configuration file, `collector.toml` in its data directory, written by `init`.

use pasopati_common::config_file::{self, CheckedConfig, ConfigFileError};
use pasopati_common::pii::PiiConfig;
use pasopati_common::HumanDuration;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The configuration file's name inside the data directory.
pub const CONFIG_FILE: &str = "collector.toml";

/// Where the collector listens and what it tells agents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The UDP address of the QUIC listener for agents.
    pub quic_listen: SocketAddr,
    /// The TCP address of the dashboard and API (loopback by default).
    pub http_listen: SocketAddr,
    /// Mark session cookies `Secure`: set it when the dashboard is reached through a proxy
    /// that terminates TLS.
    #[serde(default)]
    pub http_secure_cookies: bool,
    /// `host:port` agents dial; written into enrollment tokens. Several collectors on one
    /// PostgreSQL store list them all, separated by commas, the same on every instance: agents
    /// try them in order and move to the next when one is lost.
    pub public_addr: String,
    /// Lifetime of site certificates (agents renew at about half of it).
    #[serde(default = "default_site_cert_lifetime")]
    pub site_cert_lifetime: HumanDuration,
    /// Default lifetime of enrollment tokens (`--ttl` overrides it per token).
    #[serde(default = "default_token_ttl")]
    pub token_ttl: HumanDuration,
    /// A site whose live connection carried nothing for this long is `offline` (one without a
    /// connection is offline at once).
    #[serde(default = "default_offline_after")]
    pub offline_after: HumanDuration,
    /// A site with no new report for this long is `silent`.
    #[serde(default = "default_silent_after")]
    pub silent_after: HumanDuration,
    /// The collector's re-check of every report: a `deny_list` of terms (the mode is ignored:
    /// whatever matches is quarantined).
    #[serde(default)]
    pub pii: PiiConfig,
    /// How the media analysis groups, compares and alerts.
    #[serde(default)]
    pub analysis: AnalysisSettings,
    /// The daily risk score of each UPT and Kanwil (`[risk]`).
    #[serde(default)]
    pub risk: RiskSettings,
    /// The dashboard behind its reverse proxy (`[dashboard]`).
    #[serde(default)]
    pub dashboard: DashboardSettings,
    /// News feeds (RSS 2.0 or Atom) polled for media items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<FeedConfig>,
    /// Social media sources polled for posts (`[[social]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub social: Vec<SocialConfig>,
    /// How feeds and social sources are polled (`[polling]`).
    #[serde(default)]
    pub polling: PollingSettings,
    /// A PostgreSQL store (`[store]`); without it the store is the embedded redb file in the
    /// data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreSettings>,
    #[serde(
        default,
        skip_serializing_if = "crate::notify::NotifySettings::is_empty"
    )]
    pub notify: crate::notify::NotifySettings,
}

/// A PostgreSQL store (`[store]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT][,HOST2[:PORT]…]/DATABASE?sslmode=require`;
    /// several hosts with `target_session_attrs=read-write` follow a failover.
    pub url: String,
    /// The CA certificate(s), PEM, that sign the database server's certificate (needed for
    /// `sslmode=require`); relative to the data directory unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// How many connections this collector opens at most (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

/// The analysis settings (`[analysis]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisSettings {
    /// How far apart two pieces of one story may be.
    pub story_window: HumanDuration,
    /// News spikes: a day against this many days before it.
    pub news_baseline_days: u32,
    /// Social spikes: an hour against this many hours before it.
    pub social_baseline_hours: u32,
    /// Least articles in a day (posts in an hour) for a spike.
    pub min_news: u32,
    pub min_social: u32,
    /// The coverage period of `insights`, in days.
    pub coverage_days: u32,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            story_window: HumanDuration::from_secs(72 * 3600),
            news_baseline_days: 14,
            social_baseline_hours: 12,
            min_news: 5,
            min_social: 10,
            coverage_days: 30,
        }
    }
}

impl AnalysisSettings {
    /// The engine's configuration.
    pub fn engine(&self) -> pasopati_analysis::EngineConfig {
        pasopati_analysis::EngineConfig {
            window_ms: self.story_window.0.as_millis() as i64,
            ..Default::default()
        }
    }

    /// The spike thresholds.
    pub fn spikes(&self) -> pasopati_analysis::insight::SpikeConfig {
        pasopati_analysis::insight::SpikeConfig {
            news_baseline_days: i64::from(self.news_baseline_days),
            social_baseline_hours: i64::from(self.social_baseline_hours),
            min_news: u64::from(self.min_news),
            min_social: u64::from(self.min_social),
            ..Default::default()
        }
    }
}

/// The risk score (`[risk]`): what counts, over how long, and how much each component weighs
/// (points per unit of its value; see `pasopati_analysis::risk`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RiskSettings {
    /// The days before each scored day that count.
    pub period_days: u32,
    pub weights: RiskWeightSettings,
}

/// Points per unit of each risk component (`[risk.weights]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RiskWeightSettings {
    /// Per media item of negative tone naming the unit.
    pub negative_coverage: u32,
    /// Per spike alert of the unit.
    pub spike: u32,
    /// Per report the site filed as urgent.
    pub urgent_report: u32,
    /// For a unit with neither a report nor a mention in `[analysis] coverage_days`.
    pub coverage_gap: u32,
    /// Per claim about the unit still unverified.
    pub unverified_claim: u32,
}

impl Default for RiskSettings {
    fn default() -> Self {
        RiskSettings {
            period_days: 7,
            weights: RiskWeightSettings::default(),
        }
    }
}

impl Default for RiskWeightSettings {
    fn default() -> Self {
        let w = pasopati_analysis::risk::RiskWeights::default();
        // The analysis crate's defaults are whole points.
        RiskWeightSettings {
            negative_coverage: w.negative_coverage as u32,
            spike: w.spike as u32,
            urgent_report: w.urgent_report as u32,
            coverage_gap: w.coverage_gap as u32,
            unverified_claim: w.unverified_claim as u32,
        }
    }
}

impl RiskSettings {
    /// The scoring configuration, with the analysis settings' coverage period and spikes.
    pub fn config(&self, analysis: &AnalysisSettings) -> pasopati_analysis::risk::RiskConfig {
        let w = &self.weights;
        pasopati_analysis::risk::RiskConfig {
            period_days: i64::from(self.period_days),
            coverage_days: i64::from(analysis.coverage_days),
            weights: pasopati_analysis::risk::RiskWeights {
                negative_coverage: f64::from(w.negative_coverage),
                spike: f64::from(w.spike),
                urgent_report: f64::from(w.urgent_report),
                coverage_gap: f64::from(w.coverage_gap),
                unverified_claim: f64::from(w.unverified_claim),
            },
            spikes: analysis.spikes(),
        }
    }
}

/// The dashboard's place on the network (`[dashboard]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardSettings {
    /// The address people and feed readers reach the dashboard at (`https://host[:port]`,
    /// no path), used for the links in the Atom and JSON feeds. Unset, links use
    /// `http://` and `http_listen`; request headers (`Host`, `X-Forwarded-Proto`) are never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Peers whose `X-Forwarded-For` names the client (the reverse proxy's address). From any
    /// other peer the header is ignored and the peer's own address is the client's. Empty by
    /// default.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl DashboardSettings {
    /// The base of absolute links (no trailing slash): `public_url`, else `http_listen`.
    pub fn base_url(&self, http_listen: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{http_listen}"),
        }
    }
}

/// One polled feed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// `http://` or `https://` address of the feed.
    pub url: String,
    /// How often to poll it (default 15 minutes; at least 1 minute outside tests).
    #[serde(default = "default_feed_every")]
    pub every: HumanDuration,
}

/// The kinds of social source polled.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SocialKind {
    Youtube,
    Mastodon,
    Bluesky,
    Telegram,
}

impl SocialKind {
    pub fn name(self) -> &'static str {
        match self {
            SocialKind::Youtube => "youtube",
            SocialKind::Mastodon => "mastodon",
            SocialKind::Bluesky => "bluesky",
            SocialKind::Telegram => "telegram",
        }
    }
}

/// One polled social source (`[[social]]`). Which fields a kind needs:
///
/// * `youtube`: `channel` (the `UC…` channel id) or `url` (the channel's feed address).
/// * `mastodon`: `instance` and either `tag` (a hashtag, without `#`) or `account` (the
///   account's numeric id on that instance).
/// * `bluesky`: `query` (search words); `instance` defaults to `https://public.api.bsky.app`.
/// * `telegram`: `channel` (the public channel's name, as in `t.me/<name>`).
///
/// `instance` also replaces the default address of YouTube (`https://www.youtube.com`) and
/// Telegram (`https://t.me`), which is how the tests point them at a local server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SocialConfig {
    pub kind: SocialKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// How often to poll it (default 15 minutes).
    #[serde(default = "default_feed_every")]
    pub every: HumanDuration,
}

/// How sources are polled (`[polling]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PollingSettings {
    /// At least this long between two requests to one host, whichever sources they serve.
    pub per_host_interval: HumanDuration,
    /// How long one request may take.
    pub timeout: HumanDuration,
    /// The largest document read, in bytes.
    pub max_bytes: u64,
    /// The longest wait after repeated failures.
    pub backoff_cap: HumanDuration,
}

impl Default for PollingSettings {
    fn default() -> Self {
        PollingSettings {
            per_host_interval: HumanDuration::from_secs(2),
            timeout: HumanDuration::from_secs(30),
            max_bytes: 10 * 1024 * 1024,
            backoff_cap: HumanDuration::from_secs(6 * 3600),
        }
    }
}

/// Whether `text` is one or more of ASCII letters, digits and the characters of `extra`.
fn plain(text: &str, extra: &[char]) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

impl SocialConfig {
    /// Checks that the fields the kind needs are there and well formed.
    pub fn check(&self) -> Result<(), String> {
        let kind = self.kind.name();
        let need = |field: &Option<String>, name: &str| -> Result<String, String> {
            field
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("[[social]] kind = \"{kind}\" needs `{name}`"))
        };
        for (name, value) in [("instance", &self.instance), ("url", &self.url)] {
            if let Some(v) = value {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(format!(
                        "[[social]] {name} `{v}` is not an http:// or https:// address"
                    ));
                }
            }
        }
        if self.every.0 < std::time::Duration::from_secs(1) {
            return Err(format!(
                "[[social]] every of a {kind} source is under a second"
            ));
        }
        match self.kind {
            SocialKind::Youtube => {
                if self.url.is_none() {
                    let channel = need(&self.channel, "channel` (the UC… channel id) or `url")?;
                    if !plain(&channel, &['_', '-']) {
                        return Err(format!("[[social]] youtube channel `{channel}` is not a channel id (letters, digits, _ and -, as in UCxxxxxxxx)"));
                    }
                }
            }
            SocialKind::Mastodon => {
                need(&self.instance, "instance` (such as https://mastodon.social")?;
                match (&self.tag, &self.account) {
                    (Some(tag), None) if plain(tag.trim_start_matches('#'), &['_']) => {}
                    (None, Some(account)) if account.chars().all(|c| c.is_ascii_digit()) && !account.is_empty() => {}
                    (Some(tag), None) => return Err(format!("[[social]] mastodon tag `{tag}` is not a hashtag (letters, digits and _)")),
                    (None, Some(account)) => return Err(format!("[[social]] mastodon account `{account}` is not an account's numeric id (look it up with /api/v1/accounts/lookup?acct=name)")),
                    _ => return Err("[[social]] kind = \"mastodon\" needs either `tag` or `account`, not both".into()),
                }
            }
            SocialKind::Bluesky => {
                need(&self.query, "query")?;
            }
            SocialKind::Telegram => {
                let channel = need(&self.channel, "channel")?;
                if !plain(&channel, &['_']) {
                    return Err(format!("[[social]] telegram channel `{channel}` is not a public channel name (letters, digits and _, as in t.me/<name>)"));
                }
            }
        }
        Ok(())
    }
}

fn default_feed_every() -> HumanDuration {
    HumanDuration::from_secs(900)
}

fn default_site_cert_lifetime() -> HumanDuration {
    HumanDuration::from_secs(90 * 86_400)
}

fn default_offline_after() -> HumanDuration {
    HumanDuration::from_secs(600)
}

fn default_silent_after() -> HumanDuration {
    HumanDuration::from_secs(7 * 86_400)
}

fn default_token_ttl() -> HumanDuration {
    HumanDuration::from_secs(72 * 3_600)
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path} is missing: {dir} is not a collector data directory")]
    NotInitialised { path: String, dir: String },
    #[error(transparent)]
    File(#[from] ConfigFileError),
}

impl CollectorConfig {
    /// Where the store of the collector in `data_dir` is.
    pub fn store_location(&self, data_dir: &Path) -> crate::store::StoreLocation {
        match &self.store {
            None => crate::store::StoreLocation::Redb(data_dir.to_owned()),
            Some(settings) => crate::store::StoreLocation::Postgres(crate::store::pg::PgOptions {
                url: settings.url.clone(),
                ca_file: settings.ca_file.as_ref().map(|f| data_dir.join(f)),
                max_connections: settings.max_connections,
            }),
        }
    }

    /// Defaults for `init`: QUIC on all interfaces, port 4433; HTTP on loopback only.
    pub fn with_defaults(
        quic_listen: Option<SocketAddr>,
        http_listen: Option<SocketAddr>,
        public_addr: Option<String>,
    ) -> CollectorConfig {
        let quic_listen = quic_listen.unwrap_or_else(|| ([0, 0, 0, 0], 4433).into());
        let public_addr = public_addr.unwrap_or_else(|| {
            if quic_listen.ip().is_unspecified() {
                format!("127.0.0.1:{}", quic_listen.port())
            } else {
                quic_listen.to_string()
            }
        });
        CollectorConfig {
            quic_listen,
            http_listen: http_listen.unwrap_or_else(|| ([127, 0, 0, 1], 8080).into()),
            public_addr,
            site_cert_lifetime: default_site_cert_lifetime(),
            token_ttl: default_token_ttl(),
            offline_after: default_offline_after(),
            silent_after: default_silent_after(),
            pii: PiiConfig::default(),
            http_secure_cookies: false,
            analysis: AnalysisSettings::default(),
            risk: RiskSettings::default(),
            dashboard: DashboardSettings::default(),
            feeds: Vec::new(),
            store: None,
            notify: Default::default(),
            social: Vec::new(),
            polling: PollingSettings::default(),
        }
    }

    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONFIG_FILE)
    }

    /// Loads `collector.toml` from `data_dir`.
    pub fn load(data_dir: &Path) -> Result<CollectorConfig, ConfigError> {
        let path = Self::path(data_dir);
        if !path.exists() {
            return Err(ConfigError::NotInitialised {
                path: path.display().to_string(),
                dir: data_dir.display().to_string(),
            });
        }
        Ok(config_file::read_toml(&path)?)
    }

    /// Loads and checks a configuration file anywhere (for `validate --config`).
    pub fn load_file(path: &Path) -> Result<CollectorConfig, ConfigError> {
        Ok(config_file::load_checked(path)?)
    }

    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        let a = &self.analysis;
        if a.news_baseline_days == 0 || a.social_baseline_hours == 0 || a.coverage_days == 0 {
            return Err("[analysis] news_baseline_days, social_baseline_hours and coverage_days must be above 0".into());
        }
        if self.risk.period_days == 0 || self.risk.period_days > 366 {
            return Err("[risk] period_days must be between 1 and 366".into());
        }
        for feed in &self.feeds {
            if !(feed.url.starts_with("http://") || feed.url.starts_with("https://")) {
                return Err(format!(
                    "[[feeds]] url `{}` is not an http:// or https:// address",
                    feed.url
                ));
            }
            if feed.every.0 < std::time::Duration::from_secs(1) {
                return Err(format!(
                    "[[feeds]] every for `{}` is under a second",
                    feed.url
                ));
            }
        }
        for source in &self.social {
            source.check()?;
        }
        let p = &self.polling;
        if p.timeout.0.is_zero() || p.max_bytes == 0 || p.backoff_cap.0.is_zero() {
            return Err("[polling] timeout, max_bytes and backoff_cap must be above 0".into());
        }
        if let Some(url) = &self.dashboard.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .unwrap_or_default();
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains(['/', '?', '#', '"', '<', '>', ' ']) {
                return Err(format!(
                    "[dashboard] public_url `{url}` is not http(s)://host[:port] without a path"
                ));
            }
        }
        if !pasopati_common::is_host_port_list(&self.public_addr) {
            return Err(format!(
                    "public_addr `{}` is not host:port (the address agents dial, e.g. collector.example.go.id:4433; with several collectors on one PostgreSQL store, every one of them separated by commas)",
                    self.public_addr
            ));
        }
        for (name, d) in [
            ("site_cert_lifetime", self.site_cert_lifetime),
            ("token_ttl", self.token_ttl),
            ("offline_after", self.offline_after),
            ("silent_after", self.silent_after),
        ] {
            if d.0.is_zero() {
                return Err(format!("{name} must be longer than zero"));
            }
        }
        Ok(())
    }

    /// Writes `collector.toml` atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        Ok(config_file::save_toml(
            &Self::path(data_dir),
            "# PASOPATI Edge collector configuration, written by `pasopati-collector init`.\n\
             # Nothing listens anywhere but on the addresses below.\n",
            self,
        )?)
    }
}

impl CheckedConfig for CollectorConfig {
    fn check(&self) -> Result<(), String> {
        CollectorConfig::check(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses() {
        let example: CollectorConfig =
            toml::from_str(include_str!("../../config/collector.example.toml")).unwrap();
        assert!(example.http_listen.ip().is_loopback());
        example.check().unwrap();
    }

    #[test]
    fn public_url_is_checked_and_gives_feed_links() {
        let mut c = CollectorConfig::with_defaults(None, None, None);
        assert_eq!(c.dashboard.base_url(c.http_listen), "http://127.0.0.1:8080");
        c.dashboard.public_url = Some("https://pasopati.example.go.id/".into());
        c.check().unwrap();
        assert_eq!(
            c.dashboard.base_url(c.http_listen),
            "https://pasopati.example.go.id"
        );
        c.dashboard.public_url = Some("https://x.example/<script>".into());
        assert!(c.check().is_err());
        c.dashboard.public_url = Some("ftp://x.example".into());
        assert!(c.check().is_err());
    }

    #[test]
    fn social_sources_are_checked_with_their_kind_named() {
        let parse = |text: &str| -> Result<(), String> {
            let mut c = CollectorConfig::with_defaults(None, None, None);
            c.social = toml::from_str::<CollectorConfig>(&format!(
                "quic_listen = \"0.0.0.0:4433\"\nhttp_listen = \"127.0.0.1:8080\"\npublic_addr = \"a.example:4433\"\n{text}"
            ))
            .map_err(|e| e.to_string())?
            .social;
            c.check()
        };
        parse("[[social]]\nkind = \"mastodon\"\ninstance = \"https://fedi.example\"\ntag = \"lapas\"\n").unwrap();
        parse("[[social]]\nkind = \"youtube\"\nchannel = \"UCabc_DEF-1\"\n").unwrap();
        let e = parse("[[social]]\nkind = \"mastodon\"\ninstance = \"https://fedi.example\"\n")
            .unwrap_err();
        assert!(e.contains("either `tag` or `account`"), "{e}");
        let e = parse("[[social]]\nkind = \"telegram\"\n").unwrap_err();
        assert!(e.contains("needs `channel`"), "{e}");
        let e =
            parse("[[social]]\nkind = \"bluesky\"\nquery = \"lapas\"\ninstance = \"ftp://x\"\n")
                .unwrap_err();
        assert!(e.contains("not an http"), "{e}");
        let e = parse("[[social]]\nkind = \"myspace\"\n").unwrap_err();
        assert!(e.contains("myspace"), "{e}");
    }

    #[test]
    fn defaults_listen_on_loopback_for_http() {
        let c = CollectorConfig::with_defaults(None, None, None);
        assert!(c.http_listen.ip().is_loopback());
        assert_eq!(c.public_addr, "127.0.0.1:4433");
        let dir = tempfile::tempdir().unwrap();
        c.save(dir.path()).unwrap();
        assert_eq!(CollectorConfig::load(dir.path()).unwrap(), c);
    }
}
