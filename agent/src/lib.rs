//! The PASOPATI Edge site agent.
//!
//! Reports filed at a UPT go into a durable redb [`outbox::Outbox`] before anyone is told they
//! are saved; the [`sync`] loop sends them to the collector over QUIC with mutual TLS and deletes
//! them once the collector acknowledges its own durable commit. While the daemon runs, the CLI
//! reaches it through the [`control`] socket, because only one process may open the outbox.

pub mod attachments;
pub mod cli;
pub mod config;
pub mod control;
pub mod fleet;
mod health;
pub mod identity;
pub mod inbox;
pub mod launch;
mod liveness;
pub mod outbox;
mod sync;
mod web;

use crate::attachments::BlobError;
use crate::config::AgentConfig;
use crate::control::{AgentRequest, AgentResponse};
use crate::identity::Identity;
use crate::outbox::{Outbox, OutboxError};
use bincode::{Decode, Encode};
use pasopati_common::attachment::{AttachmentError, AttachmentRef};
use pasopati_common::control::ControlError;
use pasopati_common::frame::{FrameError, RefusalCode};
use pasopati_common::pii::{Field, Finding, Mode, PiiGuard};
use pasopati_common::pki::PkiError;
use pasopati_common::sync::ProtocolError;
use pasopati_common::token::TokenError;
use pasopati_common::{Report, ReportDraft, ReportId, Revision};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Anything the agent can fail at, each with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("identity: {0}")]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{dir} is already enrolled as {site}")]
    AlreadyEnrolled { dir: String, site: String },
    #[error("the collector refused the enrollment: {0}")]
    EnrollmentRefused(String),
    #[error("cannot reach the collector at {addr}: {message}")]
    Unreachable { addr: String, message: String },
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("session stream: {0}")]
    Frame(#[from] FrameError),
    #[error("the collector refused a batch: {0}")]
    BatchRefused(String),
    #[error("an agent is already running for {0} (its control socket answers)")]
    AlreadyRunning(String),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{path} answers in another protocol: this is not a PASOPATI agent's data directory (a collector's?)")]
    ForeignSocket { path: String },
    #[error("{0}")]
    Rejected(String),
    #[error(
        "report {0} is not known at this site (only reports filed here can be edited or retracted)"
    )]
    UnknownReport(ReportId),
    #[error("report refused: inmate identity data must not leave the site: {}. Remove it and file again", describe_findings(.0))]
    Pii(Vec<Finding>),
    #[error("{0}")]
    DaemonFailed(String),
    #[error("this site's certificate expired at {at}; reports stay queued. Ask the media center for a new token and enroll again")]
    CertificateExpired { at: String, dir: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Task(#[from] pasopati_common::task::TaskFailed),
    #[error("renewal: the renewal key is gone; the renewal will be retried")]
    RenewalKeyGone,
    #[error(transparent)]
    Attachment(#[from] attachments::BlobError),
    /// Not a failure: the agent stops so that it is started again on another version (a
    /// release installed, or a trial version given up); exit status `launch::EXIT_RESTART`.
    #[error("the agent restarts to run version {0}")]
    Restart(String),
}

/// Applies the PII guard to a draft: refuses it (block mode) or returns it with every finding
/// replaced by a marker (redact mode).
pub fn guard_draft(guard: &PiiGuard, mut draft: ReportDraft) -> Result<ReportDraft, AgentError> {
    let findings = guard.check(&draft.title, &draft.body);
    if findings.is_empty() {
        return Ok(draft);
    }
    match guard.mode {
        Mode::Block => Err(AgentError::Pii(findings)),
        Mode::Redact => {
            draft.title = guard.redact(Field::Title, &draft.title);
            draft.body = guard.redact(Field::Body, &draft.body);
            // What redaction cannot reach (a number split between title and body) is refused.
            let left = guard.check(&draft.title, &draft.body);
            if !left.is_empty() {
                return Err(AgentError::Pii(left));
            }
            tracing::warn!(
                count = findings.len(),
                "inmate identity data redacted from a report before saving"
            );
            Ok(draft)
        }
    }
}

fn describe_findings(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(Finding::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `pasopati-agent status` shows.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct AgentStatus {
    pub site_id: String,
    pub collector: String,
    pub epoch: String,
    /// Reports not yet acknowledged by the collector.
    pub backlog: u64,
    pub queued_urgent: u64,
    pub oldest_unsent_at: Option<String>,
    pub acked_seq: u64,
    pub next_seq: u64,
    pub last_sync_at: Option<String>,
    /// Bytes of unsent reports, and the outbox's limit.
    pub unsent_bytes: u64,
    pub max_bytes: u64,
    /// The outbox is full: new reports are refused until the backlog drains.
    pub quota_full: bool,
    /// Attachments waiting to be sent (after their reports).
    pub attachments_pending: u64,
    /// Whether a daemon is running for this data directory.
    pub daemon_running: bool,
    /// Whether the daemon has a live session with the collector.
    pub connected: bool,
    /// `connected`, `connecting`, `retrying`, `revoked` (an admin revoked this site),
    /// `expired` (the certificate expired), `refused` (another refusal), `stopped`, or
    /// `not running`.
    pub sync_state: String,
    /// The last sync failure, in words an operator can act on.
    pub last_error: Option<String>,
    /// The address of the local web form, while the daemon serves it.
    pub web_form: Option<String>,
    /// Why the daemon does not serve the form it is configured to serve (the port is taken, for
    /// example); it keeps syncing and retries.
    pub web_form_error: Option<String>,
    /// The site's time zone (`WIB`, `WITA`, `WIT`); every time above is RFC 3339 with its offset.
    pub time_zone: String,
    /// Report revisions the collector refused or quarantined, ever, as recorded here.
    pub center_verdicts: u64,
    /// The latest of them, newest first.
    pub latest_verdicts: Vec<VerdictView>,
    /// Files in the inbox folder that are not read (only `.json` and `.csv` are), untouched for
    /// a while: left where they are, named here so the operator can move them.
    pub inbox_ignored: Vec<String>,
    /// The version this agent runs.
    pub agent_version: String,
    /// The version of the center's settings it runs (0: none), and why the last ones offered
    /// were refused, if they were.
    pub center_settings: u64,
    pub center_settings_error: Option<String>,
    /// Where its last update stands (`idle`, `downloading`, `installed`, `healthy`,
    /// `rolled_back`, `refused`), with the version and reason.
    pub update: String,
}

/// A refused or quarantined report as `status` shows it.
#[derive(Clone, Debug, Serialize, Encode, Decode, PartialEq, Eq)]
pub struct VerdictView {
    pub id: String,
    pub revision: u32,
    /// `refused` (never stored) or `quarantined` (held aside at the center).
    pub verdict: String,
    /// Field, kind and position; never the value.
    pub reason: String,
    pub title: String,
    /// When the agent learned of it, RFC 3339 with the site's offset.
    pub at: String,
}

/// How many verdicts `status` lists.
pub const STATUS_VERDICTS: usize = 5;

/// Where the sync loop is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum SyncPhase {
    #[default]
    Stopped,
    Connecting,
    Connected,
    Retrying,
    Revoked,
    Expired,
    Refused,
}

impl SyncPhase {
    fn as_str(self) -> &'static str {
        match self {
            SyncPhase::Stopped => "stopped",
            SyncPhase::Connecting => "connecting",
            SyncPhase::Connected => "connected",
            SyncPhase::Retrying => "retrying",
            SyncPhase::Revoked => "revoked",
            SyncPhase::Expired => "expired",
            SyncPhase::Refused => "refused",
        }
    }
}

#[derive(Default)]
struct SyncState {
    phase: SyncPhase,
    last_error: Option<String>,
}

/// State shared by the sync loop, the control socket and in-process callers.
pub(crate) struct Shared {
    data_dir: PathBuf,
    /// `agent.toml` as the site wrote it.
    base_config: AgentConfig,
    /// What runs: `base_config` with the center's settings laid over it (`fleet.rs`).
    config: std::sync::RwLock<Arc<AgentConfig>>,
    /// Ticks whenever `config` changes, for the parts that follow it while they run.
    config_changed: tokio::sync::watch::Sender<u64>,
    /// The center's settings, release key and releases.
    fleet: fleet::Fleet,
    /// Cancelled with the version to start when the agent must restart into another.
    restart: Mutex<Option<String>>,
    restart_now: CancellationToken,
    outbox: Arc<Outbox>,
    blobs: attachments::Blobs,
    wake: Notify,
    state: Mutex<SyncState>,
    /// Where the web form listens, once it does.
    web_addr: Mutex<Option<std::net::SocketAddr>>,
    /// Why the configured web form is not served, while it is not.
    web_error: Mutex<Option<String>>,
    /// Cancelled when the outbox must be reopened (after an I/O error): the daemon stops with an
    /// error so its service manager restarts it.
    fatal: CancellationToken,
    /// Which of the collector addresses (`collector_addr`, a list when several collectors share
    /// one store) the next connection dials; it moves on after each failed attempt.
    next_collector: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// The configuration that runs now.
    pub(crate) fn config(&self) -> Arc<AgentConfig> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Runs `config` from now on: the outbox's quota and the log level change at once, and the
    /// web form and the inbox follow (`config_changed`).
    pub(crate) fn set_config(&self, config: AgentConfig) {
        self.outbox.set_max_bytes(config.outbox.max_bytes);
        if let Some(level) = &config.log.level {
            pasopati_common::logging::set_level(level);
        }
        match self.config.write() {
            Ok(mut c) => *c = Arc::new(config),
            Err(p) => *p.into_inner() = Arc::new(config),
        }
        self.config_changed.send_modify(|n| *n += 1);
    }

    /// Stops the daemon so that it starts again on `version`.
    pub(crate) fn restart_into(&self, version: String) {
        if let Ok(mut r) = self.restart.lock() {
            *r = Some(version);
        }
        self.restart_now.cancel();
    }

    /// The collector address the next connection dials.
    pub(crate) fn collector(&self) -> String {
        let config = self.config();
        let addrs = pasopati_common::collector_addrs(&config.collector_addr);
        let at = self
            .next_collector
            .load(std::sync::atomic::Ordering::Relaxed);
        match addrs.get(at % addrs.len().max(1)) {
            Some(addr) => (*addr).to_owned(),
            None => config.collector_addr.clone(),
        }
    }

    /// After a failed attempt: the next connection dials the next collector of the list (the
    /// same one when there is only one), after the same backoff.
    pub(crate) fn next_collector(&self) {
        self.next_collector
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn new(data_dir: PathBuf, base_config: AgentConfig, outbox: Arc<Outbox>) -> Shared {
        let (config, remote) = fleet::load_effective(&data_dir, &base_config);
        outbox.set_max_bytes(config.outbox.max_bytes);
        if let Some(level) = &config.log.level {
            pasopati_common::logging::set_level(level);
        }
        Shared {
            blobs: attachments::Blobs::new(&data_dir),
            fleet: fleet::Fleet::open(&data_dir, &remote),
            data_dir,
            base_config,
            config: std::sync::RwLock::new(Arc::new(config)),
            config_changed: tokio::sync::watch::channel(0).0,
            restart: Mutex::new(None),
            restart_now: CancellationToken::new(),
            outbox,
            wake: Notify::new(),
            state: Mutex::new(SyncState::default()),
            web_addr: Mutex::new(None),
            next_collector: std::sync::atomic::AtomicUsize::new(0),
            web_error: Mutex::new(None),
            fatal: CancellationToken::new(),
        }
    }

    /// Notes an outbox failure; one that needs the outbox reopened stops the daemon.
    pub(crate) fn outbox_failed<T>(&self, result: Result<T, AgentError>) -> Result<T, AgentError> {
        if let Err(AgentError::Outbox(OutboxError::NeedsReopen(cause))) = &result {
            tracing::error!("the outbox hit an I/O error ({cause}); the agent stops so that it is restarted and reopens the outbox");
            self.fatal.cancel();
        }
        result
    }

    fn revise(&self, id: ReportId, changes: Revision) -> Result<Report, AgentError> {
        let result = self.revise_inner(id, changes);
        self.outbox_failed(result)
    }

    fn revise_inner(&self, id: ReportId, changes: Revision) -> Result<Report, AgentError> {
        let latest = self
            .outbox
            .latest(&id)?
            .ok_or(AgentError::UnknownReport(id))?;
        let next = latest
            .revise(
                changes,
                pasopati_common::taxonomy::Taxonomy::builtin(),
                pasopati_common::Timestamp::now(),
            )
            .map_err(|e| AgentError::Outbox(OutboxError::Invalid(e)))?;
        let guard = PiiGuard::new(&self.config().pii);
        let findings = guard.check_report(&next);
        if !findings.is_empty() {
            return Err(AgentError::Pii(findings));
        }
        self.file_reports(std::slice::from_ref(&next))?;
        Ok(next)
    }

    fn file(&self, draft: ReportDraft) -> Result<Report, AgentError> {
        self.file_with(draft, Vec::new())
    }

    /// Files a report with attachments whose stripped blobs are already saved.
    fn file_with(
        &self,
        draft: ReportDraft,
        mut attachments: Vec<AttachmentRef>,
    ) -> Result<Report, AgentError> {
        if attachments.len() > pasopati_common::attachment::MAX_PER_REPORT {
            return Err(BlobError::Invalid(AttachmentError::TooMany).into());
        }
        let guard = PiiGuard::new(&self.config().pii);
        let draft = guard_draft(&guard, draft)?;
        let mut report = draft
            .validate(
                pasopati_common::taxonomy::Taxonomy::builtin(),
                pasopati_common::Timestamp::now(),
            )
            .map_err(|e| AgentError::Outbox(OutboxError::Invalid(e)))?;
        let mut seen = std::collections::HashSet::new();
        attachments.retain(|a| seen.insert(a.hash));
        report.attachments = attachments;
        report
            .check(
                pasopati_common::taxonomy::Taxonomy::builtin(),
                pasopati_common::Timestamp::now(),
            )
            .map_err(|e| AgentError::Outbox(OutboxError::Invalid(e)))?;
        // The whole report through the guard the collector applies too: what the draft's
        // check could not see (attachment names) is refused here.
        let findings = guard.check_report(&report);
        if !findings.is_empty() {
            return Err(AgentError::Pii(findings));
        }
        let filed =
            self.outbox
                .file_reports_once(std::slice::from_ref(&report), &report.attachments, None);
        self.outbox_failed(filed.map_err(AgentError::from))?;
        self.wake.notify_one();
        Ok(report)
    }

    /// Files a report with attachments uploaded through the control socket.
    fn file_with_uploads(
        &self,
        draft: ReportDraft,
        uploads: &[control::Upload],
    ) -> Result<Report, AgentError> {
        let max = self.config().attachments.max_bytes;
        let refs = uploads
            .iter()
            .map(|u| self.blobs.prepare_upload(&u.id, &u.name, max))
            .collect::<Result<Vec<_>, _>>()?;
        self.file_with(draft, refs)
    }

    /// Files a report with attachments read from files this process can read.
    fn file_with_files(&self, draft: ReportDraft, files: &[PathBuf]) -> Result<Report, AgentError> {
        let max = self.config().attachments.max_bytes;
        let refs = files
            .iter()
            .map(|f| self.blobs.prepare_file(f, max))
            .collect::<Result<Vec<_>, _>>()?;
        self.file_with(draft, refs)
    }

    fn file_reports(&self, reports: &[Report]) -> Result<(), AgentError> {
        // Bulk filing (inbox files, tests) takes validated reports; the guard still applies,
        // and in this path it blocks whatever the mode, since nobody is there to see a redaction.
        let guard = PiiGuard::new(&self.config().pii);
        let findings: Vec<_> = reports.iter().flat_map(|r| guard.check_report(r)).collect();
        if !findings.is_empty() {
            return Err(AgentError::Pii(findings));
        }
        let now = pasopati_common::Timestamp::now();
        for r in reports {
            r.check(pasopati_common::taxonomy::Taxonomy::builtin(), now)
                .map_err(|e| AgentError::Outbox(OutboxError::Invalid(e)))?;
        }
        self.outbox_failed(self.outbox.file_reports(reports).map_err(AgentError::from))?;
        self.wake.notify_one();
        Ok(())
    }

    /// The inbox folder watched for report files.
    fn inbox_dir(&self) -> PathBuf {
        self.config()
            .inbox
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("inbox"))
    }

    fn status(&self, daemon_running: bool) -> Result<AgentStatus, AgentError> {
        let stats = self.outbox.stats()?;
        let zone = self.config().zone();
        let json_time =
            |t: pasopati_common::Timestamp| pasopati_common::localtime::to_rfc3339_local(t, zone);
        let (center_verdicts, latest) = self.outbox.verdicts(STATUS_VERDICTS)?;
        let latest_verdicts = latest
            .into_iter()
            .map(|v| VerdictView {
                id: v.id.to_string(),
                revision: v.revision,
                verdict: match v.kind {
                    outbox::VerdictKind::Refused => "refused".into(),
                    outbox::VerdictKind::Quarantined => "quarantined".into(),
                },
                reason: v.reason,
                title: v.title,
                at: json_time(v.at),
            })
            .collect();
        let (phase, last_error) = match self.state.lock() {
            Ok(s) => (s.phase, s.last_error.clone()),
            Err(_) => (SyncPhase::Stopped, None),
        };
        let fleet_status = self.fleet.status();
        Ok(AgentStatus {
            site_id: self.config().site_id.to_string(),
            collector: self.config().collector_addr.clone(),
            epoch: stats.epoch.to_string(),
            backlog: stats.backlog,
            queued_urgent: stats.queued_urgent,
            oldest_unsent_at: stats.oldest_unsent_at.map(json_time),
            acked_seq: stats.acked_seq,
            next_seq: stats.next_seq,
            last_sync_at: stats.last_sync_at.map(json_time),
            unsent_bytes: stats.unsent_bytes,
            max_bytes: stats.max_bytes,
            quota_full: stats.quota_full,
            attachments_pending: stats.attachments_pending,
            daemon_running,
            connected: phase == SyncPhase::Connected,
            web_form: self
                .web_addr
                .lock()
                .ok()
                .and_then(|a| *a)
                .map(|a| format!("http://{a}/")),
            web_form_error: self.web_error.lock().ok().and_then(|e| e.clone()),
            time_zone: zone.to_string(),
            center_verdicts,
            latest_verdicts,
            inbox_ignored: inbox::ignored_files(&self.inbox_dir()),
            agent_version: pasopati_common::version().to_owned(),
            center_settings: fleet_status.config_version,
            center_settings_error: fleet_status.config_error,
            update: match &fleet_status.update {
                pasopati_common::fleet::UpdateState::Idle => "idle".to_owned(),
                pasopati_common::fleet::UpdateState::RolledBack { version, reason }
                | pasopati_common::fleet::UpdateState::Refused { version, reason } => {
                    format!("{} {version}: {reason}", fleet_status.update.name())
                }
                other => format!("{} {}", other.name(), other.version().unwrap_or_default()),
            },
            sync_state: if daemon_running {
                phase.as_str().to_owned()
            } else {
                "not running".to_owned()
            },
            last_error,
        })
    }

    fn set_phase(&self, phase: SyncPhase, error: Option<String>) {
        if let Ok(mut s) = self.state.lock() {
            // A connection attempt does not hide why the last one failed.
            if phase != SyncPhase::Connecting || s.phase == SyncPhase::Stopped {
                s.phase = phase;
            }
            if phase == SyncPhase::Connected {
                s.last_error = None;
            }
            if error.is_some() {
                s.last_error = error;
            }
        }
    }

    /// Logs a sync failure in words an operator can act on and shows it in `status`. The
    /// agent never deletes its identity or its reports because of an error from the network.
    fn record_error(&self, error: &AgentError) {
        if let AgentError::Outbox(OutboxError::NeedsReopen(_)) = error {
            self.fatal.cancel();
        }
        let message = error.to_string();
        let (phase, advice) = failure_meaning(error);
        match phase {
            SyncPhase::Retrying => tracing::warn!("sync failed: {message}{advice}"),
            _ => tracing::error!("{message}{advice}"),
        }
        self.set_phase(phase, Some(message));
    }
}

/// What a failed sync means at the site: the phase `status` shows, and what the log adds to
/// the error for the operator.
fn failure_meaning(error: &AgentError) -> (SyncPhase, &'static str) {
    match (sync::refusal_code(error), error) {
        (Some(RefusalCode::Revoked), _) => (
            SyncPhase::Revoked,
            ". This site is REVOKED at the media center: nothing is sent and every report \
             stays queued here. Contact the media center's admin",
        ),
        // The collector is up but cannot store now (its database failing over, its disk
        // full): nothing is wrong at this site, which must not be told to re-enroll.
        (Some(RefusalCode::Unavailable), _) => (
            SyncPhase::Retrying,
            ". Nothing is wrong at this site: reports stay queued and are sent again \
             automatically once the media center's collector can store them",
        ),
        (Some(_), _) => (
            SyncPhase::Refused,
            ". Reports stay queued at this site. Ask the media center's admin to check this \
             site's registration, then re-enroll with a new token if told to",
        ),
        (None, AgentError::CertificateExpired { .. }) => (SyncPhase::Expired, ""),
        (None, _) => (
            SyncPhase::Retrying,
            "; reports stay queued and will be retried",
        ),
    }
}

/// An enrolled agent, opened and ready to run.
pub struct Agent {
    shared: Arc<Shared>,
    identity: Identity,
}

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Serve the control socket in the data directory (off for many simulated agents in one
    /// process, which file through [`Agent::file`] instead).
    pub control_socket: bool,
    /// Watch the inbox folder.
    pub inbox: bool,
    /// Serve the web form (if the configuration enables it).
    pub web: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            control_socket: true,
            inbox: true,
            web: true,
        }
    }
}

impl Agent {
    /// Opens the configuration, identity and outbox of an enrolled data directory.
    pub fn open(data_dir: &Path) -> Result<Agent, AgentError> {
        let config = AgentConfig::load(data_dir)?;
        let identity = Identity::load(data_dir)?;
        // A daemon already serving this directory answers on its socket: say so at once.
        if pasopati_common::control::daemon_answers(data_dir) {
            return Err(AgentError::AlreadyRunning(data_dir.display().to_string()));
        }
        // A CLI command may hold the outbox for a moment while the daemon starts; wait for it
        // rather than fail the daemon, and say that it waits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut said = false;
        let outbox = loop {
            match Outbox::open_or_recover(data_dir) {
                Err(OutboxError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    if !said {
                        said = true;
                        tracing::warn!(dir = %data_dir.display(),
                            "the outbox is held by another process (a CLI command, or an agent starting or stopping); waiting up to 30 s for it");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                // The quota is set by `Shared::new`, with the center's settings laid over.
                Ok((outbox, moved)) => {
                    if let Some(moved) = moved {
                        tracing::error!(
                            damaged = %moved.display(),
                            "the outbox was damaged: it is kept aside at this path and a fresh \
                             outbox was started (new reports are accepted). Reports still queued in \
                             the damaged file could not be read; send the file to the media center's \
                             support and re-file anything urgent"
                        );
                    }
                    break Arc::new(outbox);
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Agent {
            shared: Arc::new(Shared::new(data_dir.to_owned(), config, outbox)),
            identity,
        })
    }

    /// The site this agent speaks for.
    pub fn site_id(&self) -> &pasopati_common::SiteId {
        &self.identity.site_id
    }

    /// The outbox, for in-process callers and tests.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.shared.outbox
    }

    /// Files a report durably and wakes the sync loop.
    pub fn file(&self, draft: ReportDraft) -> Result<Report, AgentError> {
        self.shared.file(draft)
    }

    /// Files many validated reports in one durable transaction and wakes the sync loop.
    pub fn file_reports(&self, reports: &[Report]) -> Result<(), AgentError> {
        self.shared.file_reports(reports)
    }

    /// The agent's status as `status` shows it.
    pub fn status(&self) -> Result<AgentStatus, AgentError> {
        self.shared.status(true)
    }

    /// A handle that can file reports and read status while `run` owns the agent.
    pub fn handle(&self) -> AgentHandle {
        AgentHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs the daemon with the default options until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        self.run_with(RunOptions::default(), shutdown).await
    }

    /// Runs the daemon until `shutdown` is cancelled.
    pub async fn run_with(
        self,
        options: RunOptions,
        shutdown: CancellationToken,
    ) -> Result<(), AgentError> {
        // Stop on the caller's signal, or by itself when the outbox must be reopened.
        let shutdown = shutdown.child_token();
        let fatal = self.shared.fatal.clone();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            fatal.cancelled().await;
            stopper.cancel();
        });
        // Attachment files a crash left without a pending entry (or uploads the CLI abandoned).
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || match shared.outbox.pending_attachments() {
            Ok(pending) => shared.blobs.sweep(&pending),
            Err(e) => tracing::warn!("cannot list pending attachments to tidy their folder: {e}"),
        })
        .await;
        let control = if options.control_socket {
            let listener = pasopati_common::control::bind(&self.shared.data_dir)?;
            Some(tokio::spawn(control::serve(
                listener,
                self.shared.clone(),
                shutdown.clone(),
            )))
        } else {
            None
        };
        tracing::info!(
            site = %self.identity.site_id,
            collector = %self.shared.config().collector_addr,
            epoch = %self.shared.outbox.epoch(),
            "agent running"
        );
        let inbox = options.inbox.then(|| {
            let dir = self.shared.inbox_dir();
            tokio::spawn(inbox::watch(dir, self.shared.clone(), shutdown.clone()))
        });
        let web = options
            .web
            .then(|| tokio::spawn(web::switch(self.shared.clone(), shutdown.clone())));
        // A release installed (or a trial version given up) stops the daemon to start again.
        let restart = self.shared.restart_now.clone();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            restart.cancelled().await;
            stopper.cancel();
        });
        let watchdog = tokio::spawn(trial_watchdog(self.shared.clone(), shutdown.clone()));
        sync::sync_loop(self.shared.clone(), shutdown).await;
        watchdog.abort();
        if let Some(web) = web {
            let _ = web.await;
        }
        if let Some(inbox) = inbox {
            let _ = inbox.await;
        }
        if let Some(control) = control {
            let _ = control.await;
            let _ =
                std::fs::remove_file(pasopati_common::control::socket_path(&self.shared.data_dir));
        }
        let restart = self.shared.restart.lock().ok().and_then(|mut r| r.take());
        if let Some(version) = restart {
            return Err(AgentError::Restart(version));
        }
        if self.shared.fatal.is_cancelled() {
            // The I/O error itself was logged when it happened; redb's own word for what is left
            // is that the file must be reopened.
            return Err(AgentError::Outbox(OutboxError::NeedsReopen(
                redb::Error::PreviousIo,
            )));
        }
        Ok(())
    }
}

/// While this version runs on trial (`launch.rs`), gives it up once its health timeout passes
/// without a healthy session: the version before runs from the next start.
async fn trial_watchdog(shared: Arc<Shared>, shutdown: CancellationToken) {
    let state = launch::LaunchState::load(&shared.data_dir);
    let Some(trial) = state
        .trial
        .filter(|t| t.version == pasopati_common::version())
    else {
        return;
    };
    let left = trial.installed_at + i64::from(trial.health_timeout_secs) * 1000
        - pasopati_common::Timestamp::now().0;
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_millis(left.max(0) as u64)) => {}
        _ = shutdown.cancelled() => return,
    }
    // Still on trial (a healthy session would have ended it)?
    let now = launch::LaunchState::load(&shared.data_dir);
    if now
        .trial
        .as_ref()
        .is_some_and(|t| t.version == trial.version)
    {
        let reason = format!(
            "no healthy session with the collector within {} s of installing",
            trial.health_timeout_secs
        );
        tracing::error!(version = %trial.version, "{reason}; going back to the version before");
        if let Err(e) = launch::give_up(&shared.data_dir, &reason) {
            tracing::error!("{e}");
        }
        shared.restart_into(
            trial
                .previous
                .unwrap_or_else(|| "the packaged version".into()),
        );
    }
}

/// A clonable handle on a running agent.
#[derive(Clone)]
pub struct AgentHandle {
    shared: Arc<Shared>,
}

impl AgentHandle {
    /// Files a report durably and wakes the sync loop.
    pub fn file(&self, draft: ReportDraft) -> Result<Report, AgentError> {
        self.shared.file(draft)
    }

    /// Files a report with attachments read from `files`.
    pub fn file_with_files(
        &self,
        draft: ReportDraft,
        files: &[PathBuf],
    ) -> Result<Report, AgentError> {
        self.shared.file_with_files(draft, files)
    }

    /// Files many validated reports in one durable transaction.
    pub fn file_reports(&self, reports: &[Report]) -> Result<(), AgentError> {
        self.shared.file_reports(reports)
    }

    /// The agent's status.
    pub fn status(&self) -> Result<AgentStatus, AgentError> {
        self.shared.status(true)
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.shared.outbox
    }

    /// Where the web form listens, once it does.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.web_addr.lock().ok().and_then(|a| *a)
    }
}

/// Refuses, before anything talks to its control socket, a folder that is not an agent's data
/// directory: one that does not exist, a collector's, or one not enrolled.
fn check_data_dir(data_dir: &Path) -> Result<(), AgentError> {
    if !data_dir.is_dir() {
        return Err(AgentError::Config(config::ConfigError::NotEnrolled {
            path: data_dir.display().to_string(),
            dir: data_dir.display().to_string(),
        }));
    }
    if !AgentConfig::path(data_dir).exists() {
        return Err(config::missing_config(data_dir).into());
    }
    Ok(())
}

/// A control-socket failure, with a socket that answers in another protocol named as such (an
/// agent data directory should never hold another program's socket).
fn control_failed(data_dir: &Path, e: ControlError) -> AgentError {
    match e {
        ControlError::OtherProtocol { .. }
        | ControlError::Frame(
            FrameError::Malformed(_)
            | FrameError::TrailingBytes { .. }
            | FrameError::TooLarge { .. },
        ) => AgentError::ForeignSocket {
            path: pasopati_common::control::socket_path(data_dir)
                .display()
                .to_string(),
        },
        other => AgentError::Control(other),
    }
}

/// Runs a request through the data directory's daemon if one answers, else on the outbox
/// directly, with the same code the daemon runs.
async fn request(data_dir: &Path, request: AgentRequest) -> Result<AgentResponse, AgentError> {
    check_data_dir(data_dir)?;
    for attempt in 0..20 {
        let answer = pasopati_common::control::call(
            data_dir,
            pasopati_common::control::Channel::Agent,
            &request,
        )
        .await
        .map_err(|e| control_failed(data_dir, e))?
        .and_then(|r| r.into_iter().next());
        if let Some(answer) = answer {
            return Ok(answer);
        }
        let config = AgentConfig::load(data_dir)?;
        let dir = data_dir.to_owned();
        let req = request.clone();
        let direct = pasopati_common::task::run_blocking(
            "outbox task",
            move || -> Result<AgentResponse, OutboxError> {
                let outbox = Outbox::open(&dir)?;
                let shared = Shared::new(dir, config, Arc::new(outbox));
                Ok(control::answer(&shared, req, false))
            },
        )
        .await?;
        match direct {
            Err(OutboxError::Locked { .. } | OutboxError::Damaged { .. }) if attempt < 19 => {
                // A daemon is starting or stopping (and sets a damaged outbox aside as it
                // starts); its socket will answer shortly.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return Ok(other?),
        }
    }
    Err(AgentError::DaemonFailed(
        "the outbox is held by a process that does not answer on control.sock".into(),
    ))
}

fn filed(response: AgentResponse) -> Result<(ReportId, u32), AgentError> {
    match response {
        AgentResponse::Filed { id, revision } => Ok((id, revision)),
        AgentResponse::Rejected(m) => Err(AgentError::Rejected(m)),
        AgentResponse::Failed(m) => Err(AgentError::DaemonFailed(m)),
        AgentResponse::Status(_) | AgentResponse::Uploaded { .. } => {
            Err(AgentError::DaemonFailed("unexpected answer".into()))
        }
    }
}

/// Files a report for the data directory. Returns once the report is durable.
pub async fn file_report(data_dir: &Path, draft: ReportDraft) -> Result<ReportId, AgentError> {
    file_report_with(data_dir, draft, &[]).await
}

/// The size of one upload piece on the control socket.
const UPLOAD_PIECE_BYTES: usize = 1024 * 1024;

/// Files a report with attachments: this process reads each file and hands it to the agent in
/// pieces (the daemon may not be allowed to read the file where it lies), then files the report.
/// Returns once the report and its stripped attachments are durable.
pub async fn file_report_with(
    data_dir: &Path,
    draft: ReportDraft,
    files: &[PathBuf],
) -> Result<ReportId, AgentError> {
    if files.len() > pasopati_common::attachment::MAX_PER_REPORT {
        return Err(BlobError::Invalid(AttachmentError::TooMany).into());
    }
    let mut uploads = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io = |source: std::io::Error| AgentError::Io {
            what: format!("reading attachment {}", file.display()),
            source,
        };
        let size = tokio::fs::metadata(file).await.map_err(io)?.len();
        let limit = pasopati_common::attachment::HARD_MAX_BYTES;
        if size > limit {
            return Err(BlobError::Invalid(AttachmentError::TooLarge { name, size, limit }).into());
        }
        let bytes = tokio::fs::read(file).await.map_err(io)?;
        let id = pasopati_common::random_bytes::<16>();
        let mut offset = 0u64;
        for piece in bytes.chunks(UPLOAD_PIECE_BYTES) {
            let req = AgentRequest::UploadPiece {
                id,
                offset,
                data: piece.to_vec(),
            };
            match request(data_dir, req).await? {
                AgentResponse::Uploaded { received } => offset = received,
                AgentResponse::Failed(m) => return Err(AgentError::DaemonFailed(m)),
                _ => return Err(AgentError::DaemonFailed("unexpected answer".into())),
            }
        }
        uploads.push(control::Upload { id, name });
    }
    filed(request(data_dir, AgentRequest::File { draft, uploads }).await?).map(|(id, _)| id)
}

/// Files the next revision of a report (an edit or, with `changes.retract`, a retraction).
/// Returns the new revision number once it is durable.
pub async fn revise_report(
    data_dir: &Path,
    id: ReportId,
    changes: Revision,
) -> Result<u32, AgentError> {
    filed(request(data_dir, AgentRequest::Revise { id, changes }).await?).map(|(_, r)| r)
}

/// The status of the data directory's agent: from the running daemon if there is one.
pub async fn status(data_dir: &Path) -> Result<AgentStatus, AgentError> {
    match request(data_dir, AgentRequest::Status).await? {
        AgentResponse::Status(s) => Ok(*s),
        AgentResponse::Failed(m) => Err(AgentError::DaemonFailed(m)),
        _ => Err(AgentError::DaemonFailed("unexpected answer".into())),
    }
}

pub use identity::enroll;

#[cfg(test)]
mod tests {
    use super::*;
    use pasopati_common::frame::Refusal;
    use pasopati_common::sync::ProtocolError;

    fn refused(code: RefusalCode) -> AgentError {
        AgentError::Protocol(ProtocolError::Refused(Refusal {
            code,
            message: "the collector says no".into(),
        }))
    }

    #[test]
    fn a_collector_that_cannot_store_now_is_retried_not_a_reason_to_re_enroll() {
        let (phase, advice) = failure_meaning(&refused(RefusalCode::Unavailable));
        assert_eq!(phase, SyncPhase::Retrying);
        assert!(!advice.contains("re-enroll"), "{advice}");
        let (phase, advice) = failure_meaning(&refused(RefusalCode::UnknownSite));
        assert_eq!(phase, SyncPhase::Refused);
        assert!(advice.contains("re-enroll"), "{advice}");
        assert_eq!(
            failure_meaning(&refused(RefusalCode::Revoked)).0,
            SyncPhase::Revoked
        );
    }
}
