//! The QUIC server: accepts agents, verifies who they are from their certificate, and runs the
//! collector's side of the sync protocol against the [`Store`]. Connections without a client
//! certificate may only enroll.

use crate::attachments::AttachmentDir;
use crate::authority::Authority;
use crate::config::CollectorConfig;
use crate::events::CollectorEvent;
use crate::store::{BatchOutcome, SiteStatus, Store, StoreError, TokenRefusal};
use pasopati_common::frame::{
    read_frame, write_frame, AgentFrame, CollectorFrame, EnrollRequest, FrameError, Limits,
    NackReason, Refusal, RefusalCode,
};
use pasopati_common::pii::PiiGuard;
use pasopati_common::sync::{
    CollectorSession, CollectorStep, HelloDecision, SessionViolation, StoreAnswer, StoreCommand,
};
use pasopati_common::token::EnrollmentToken;
use pasopati_common::{pki, SiteId, Timestamp};
use rustls_pki_types::CertificateDer;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long a peer may take to send its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Application error codes used when closing connections.
mod close {
    pub const NORMAL: u32 = 0;
    pub const PROTOCOL: u32 = 1;
    pub const REFUSED: u32 = 2;
    pub const REPLACED: u32 = 3;
    pub const SHUTDOWN: u32 = 4;
    pub const REVOKED: u32 = 5;
    pub const SUPERSEDED: u32 = 6;
}

/// State shared by all connections.
pub(crate) struct ServerState {
    pub store: Arc<Store>,
    pub authority: Arc<Authority>,
    pub config: CollectorConfig,
    pub limits: Limits,
    /// The collector's own PII check of every report (agents check first).
    pub guard: PiiGuard,
    /// Where every session's batches are stored, several to a commit.
    pub commits: crate::group_commit::GroupCommit,
    pub events: broadcast::Sender<CollectorEvent>,
    /// Where attachments are received and kept, beside the store.
    pub attachments: AttachmentDir,
    /// Media intake and the live analysis.
    pub newsroom: Arc<crate::newsroom::Newsroom>,
    /// The index of the dashboard's report lists and searches.
    pub report_index: Arc<crate::report_index::ReportIndex>,
    /// Cancelled when the collector cannot go on (the store must be reopened): `run` returns an
    /// error so the service manager restarts the process.
    pub fatal: CancellationToken,
    live: Mutex<HashMap<SiteId, (u64, quinn::Connection)>>,
    next_conn: AtomicU64,
    /// This process among the collectors on a shared store (random, per start).
    pub instance: String,
    /// The last alert recorded when this collector opened its store: the live event stream
    /// carries those recorded after it (`web::watch`).
    pub alerts_before_start: u64,
    /// Sites with a live session on another collector of a shared store, as that collector
    /// last published them (`cluster::share_live_sites`); empty on redb.
    elsewhere: Mutex<std::collections::HashSet<SiteId>>,
    /// How many refusals of peers without a certificate are recorded one by one.
    anonymous_refusals: Mutex<RefusalBudget>,
}

/// Refusals of unauthenticated peers recorded one by one per window; the rest are counted.
const REFUSALS_PER_WINDOW: u32 = 10;
/// The window of [`REFUSALS_PER_WINDOW`].
const REFUSAL_WINDOW_MS: i64 = 60_000;

/// Rate limit for recording refusals of unauthenticated peers: anyone on the network can cause
/// them, so they must not grow the store (or the log) without bound. In each window the first
/// [`REFUSALS_PER_WINDOW`] are recorded; the rest are counted and summarised in one record when
/// the next window starts. Pure: the caller gives the time.
#[derive(Debug, Default)]
pub(crate) struct RefusalBudget {
    window_start: i64,
    recorded: u32,
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefusalRecord {
    /// Record it.
    Record,
    /// Record it, after a summary of `suppressed` refusals since `since`.
    RecordAfterSummary { suppressed: u64, since: i64 },
    /// Count it only.
    Suppress,
}

impl RefusalBudget {
    pub(crate) fn admit(&mut self, now_ms: i64) -> RefusalRecord {
        if now_ms.saturating_sub(self.window_start) >= REFUSAL_WINDOW_MS
            || now_ms < self.window_start
        {
            let suppressed = std::mem::take(&mut self.suppressed);
            let since = self.window_start;
            self.window_start = now_ms;
            self.recorded = 1;
            return if suppressed > 0 {
                RefusalRecord::RecordAfterSummary { suppressed, since }
            } else {
                RefusalRecord::Record
            };
        }
        if self.recorded < REFUSALS_PER_WINDOW {
            self.recorded += 1;
            RefusalRecord::Record
        } else {
            self.suppressed += 1;
            RefusalRecord::Suppress
        }
    }
}

impl ServerState {
    pub(crate) fn new(
        store: Arc<Store>,
        authority: Arc<Authority>,
        config: CollectorConfig,
        events: broadcast::Sender<CollectorEvent>,
        report_index: Arc<crate::report_index::ReportIndex>,
    ) -> Result<ServerState, crate::CollectorError> {
        let limits = Limits::default();
        let alerts_before_start = store.last_alert()?;
        let commits =
            crate::group_commit::GroupCommit::start(&store, limits, PiiGuard::new(&config.pii))
                .map_err(|source| crate::CollectorError::Io {
                    what: "starting the group commit".into(),
                    source,
                })?;
        Ok(ServerState {
            report_index,
            commits,
            attachments: AttachmentDir::of(&store),
            newsroom: Arc::new(crate::newsroom::Newsroom::new(
                store.clone(),
                &config.pii,
                &config.analysis,
            )),
            guard: PiiGuard::new(&config.pii),
            store,
            authority,
            config,
            limits,
            events,
            fatal: CancellationToken::new(),
            live: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            instance: format!("{:016x}", pasopati_common::random_u64()),
            alerts_before_start,
            elsewhere: Mutex::new(std::collections::HashSet::new()),
            anonymous_refusals: Mutex::new(RefusalBudget::default()),
        })
    }

    /// Sites with a live session now.
    pub(crate) fn connected_sites(&self) -> Vec<SiteId> {
        match self.live.lock() {
            Ok(live) => live.keys().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Sites with a live session on any collector: this one's, and on a shared store those
    /// the others published within the last few seconds. What the dashboard, `site list` and
    /// the notifications call online; closing a connection needs [`Self::connected_sites`].
    pub(crate) fn online_sites(&self) -> Vec<SiteId> {
        let mut online: std::collections::HashSet<SiteId> =
            self.connected_sites().into_iter().collect();
        if let Ok(elsewhere) = self.elsewhere.lock() {
            online.extend(elsewhere.iter().cloned());
        }
        online.into_iter().collect()
    }

    /// Replaces the sites live on other collectors (see the field).
    pub(crate) fn set_elsewhere(&self, sites: Vec<SiteId>) {
        if let Ok(mut elsewhere) = self.elsewhere.lock() {
            *elsewhere = sites.into_iter().collect();
        }
    }

    fn register(&self, site: &SiteId, conn: &quinn::Connection) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let old = match self.live.lock() {
            Ok(mut live) => live.insert(site.clone(), (id, conn.clone())),
            Err(_) => None,
        };
        if let Some((_, old)) = old {
            tracing::warn!(%site, old = %old.remote_address(), new = %conn.remote_address(),
                "a second connection for this site replaces the first");
            old.close(
                close::REPLACED.into(),
                b"replaced by a newer connection of this site",
            );
        }
        let _ = self
            .events
            .send(CollectorEvent::SiteConnected(site.clone()));
        id
    }

    /// Closes the live connection of a revoked site; returns how many were closed.
    pub(crate) fn close_site(&self, site: &SiteId) -> u32 {
        self.close_live(site, close::REVOKED, "site revoked by the media center")
    }

    /// Closes the live connection of `site` with `code` and `reason`.
    fn close_live(&self, site: &SiteId, code: u32, reason: &str) -> u32 {
        let removed = match self.live.lock() {
            Ok(mut live) => live.remove(site),
            Err(_) => None,
        };
        match removed {
            Some((_, conn)) => {
                tracing::warn!(%site, remote = %conn.remote_address(), "{reason}: closing its connection");
                conn.close(code.into(), reason.as_bytes());
                let _ = self
                    .events
                    .send(CollectorEvent::SiteDisconnected(site.clone()));
                1
            }
            None => 0,
        }
    }

    fn unregister(&self, site: &SiteId, id: u64) {
        let removed = match self.live.lock() {
            Ok(mut live) => {
                if live.get(site).is_some_and(|(current, _)| *current == id) {
                    live.remove(site);
                    true
                } else {
                    false
                }
            }
            Err(_) => false,
        };
        if removed {
            let _ = self
                .events
                .send(CollectorEvent::SiteDisconnected(site.clone()));
        }
    }

    /// Logs a store failure; one that needs the store reopened stops the collector (its service
    /// manager restarts it), since every later write would fail too.
    pub(crate) fn store_failed(&self, e: &StoreError) {
        tracing::error!("store error: {e}");
        if matches!(e, StoreError::NeedsReopen) {
            self.fatal.cancel();
        }
    }

    /// Records and logs a refusal, and tells the event feed. Refusals of peers without a
    /// certificate are recorded at a bounded rate (see [`RefusalBudget`]).
    async fn reject(self: &Arc<Self>, site: Option<&SiteId>, reason: String) {
        if site.is_none() {
            let now = Timestamp::now();
            let decision = match self.anonymous_refusals.lock() {
                Ok(mut budget) => budget.admit(now.0),
                Err(_) => RefusalRecord::Record,
            };
            match decision {
                RefusalRecord::Suppress => return,
                RefusalRecord::RecordAfterSummary { suppressed, since } => {
                    let summary = format!(
                        "{suppressed} more refusals of unauthenticated peers since {} were counted, not recorded one by one (at most {REFUSALS_PER_WINDOW} a minute are)",
                        Timestamp(since).to_rfc3339()
                    );
                    tracing::warn!("{summary}");
                    self.record_rejection(None, summary).await;
                }
                RefusalRecord::Record => {}
            }
        }
        let who = site
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unauthenticated peer".into());
        tracing::warn!(site = %who, "refused: {reason}");
        self.record_rejection(site.cloned(), reason.clone()).await;
        let _ = self.events.send(CollectorEvent::Refused {
            site: site.cloned(),
            reason,
        });
    }

    /// Writes a refusal into the store's rejection log, off the async workers.
    async fn record_rejection(self: &Arc<Self>, site: Option<SiteId>, reason: String) {
        let written = store_call(self, move |st| {
            st.store.record_rejection(site.as_ref(), reason)
        })
        .await;
        if let Err(e) = written {
            self.call_failed(&e);
        }
    }

    /// Logs a store call that failed; see [`ServerState::store_failed`].
    fn call_failed(&self, e: &StoreCallError) {
        match e {
            StoreCallError::Store(e) => self.store_failed(e),
            StoreCallError::Unfinished(m) => tracing::error!("store call did not finish: {m}"),
        }
    }
}

/// Why a store call made off the async workers failed.
#[derive(Debug, thiserror::Error)]
enum StoreCallError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task did not finish (it panicked, or the runtime is shutting down).
    #[error("{0}")]
    Unfinished(String),
}

/// Runs `call` on the blocking pool, so that a connection's async task never waits for the
/// store's disk (a commit is `Durability::Immediate`) while other sessions wait for it.
async fn store_call<T: Send + 'static>(
    state: &Arc<ServerState>,
    call: impl FnOnce(&ServerState) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreCallError> {
    let st = state.clone();
    match tokio::task::spawn_blocking(move || call(&st)).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(StoreCallError::Unfinished(e.to_string())),
    }
}

/// Accepts connections until `shutdown` is cancelled.
pub(crate) async fn serve(
    endpoint: quinn::Endpoint,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => i,
            _ = shutdown.cancelled() => break,
        };
        let Some(incoming) = incoming else { break };
        // Unvalidated addresses must first prove they can receive (stateless retry), so a
        // spoofed source cannot make us do handshake work or amplify traffic.
        if !incoming.remote_address_validated() {
            if let Err(e) = incoming.retry() {
                tracing::debug!("retry not possible: {e}");
            }
            continue;
        }
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    state
                        .reject(
                            None,
                            format!("connection from {remote} failed its TLS handshake: {e}"),
                        )
                        .await;
                    return;
                }
            };
            tokio::select! {
                _ = handle_connection(conn.clone(), state) => {}
                _ = shutdown.cancelled() => {
                    conn.close(close::SHUTDOWN.into(), b"collector shutting down");
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    endpoint.close(close::SHUTDOWN.into(), b"collector shutting down");
    tasks.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

async fn handle_connection(conn: quinn::Connection, state: Arc<ServerState>) {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok());
    match chain.as_ref().and_then(|c| c.first()) {
        Some(cert) => {
            let cert = cert.clone();
            sync_connection(conn, cert, state).await
        }
        None => enrollment_connection(conn, state).await,
    }
}

/// Records why a connection is dropped (see [`ServerState::reject`]) and closes it with `code`
/// and `reason`, without a refusal frame: the peer broke the protocol or named no site.
async fn drop_connection(
    state: &Arc<ServerState>,
    conn: &quinn::Connection,
    site: Option<&SiteId>,
    message: String,
    code: u32,
    reason: &[u8],
) {
    state.reject(site, message).await;
    conn.close(code.into(), reason);
}

async fn refuse(
    conn: &quinn::Connection,
    send: Option<&mut quinn::SendStream>,
    code: RefusalCode,
    message: String,
) {
    if let Some(send) = send {
        let _ = write_frame(send, &CollectorFrame::Refused(Refusal { code, message })).await;
        let _ = send.finish();
        // Give the agent a moment to read the refusal and close on its side.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
    }
    conn.close(close::REFUSED.into(), b"refused");
}

async fn first_frame(recv: &mut quinn::RecvStream) -> Result<AgentFrame, FrameError> {
    match tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame::<_, AgentFrame>(recv)).await {
        Ok(Ok(Some(frame))) => Ok(frame),
        Ok(Ok(None)) => Err(FrameError::Closed),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no frame within 10 s",
        ))),
    }
}

async fn enrollment_connection(conn: quinn::Connection, state: Arc<ServerState>) {
    let remote = conn.remote_address();
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(FIRST_FRAME_TIMEOUT, conn.accept_bi()).await
    else {
        conn.close(close::PROTOCOL.into(), b"no stream");
        return;
    };
    let request = match first_frame(&mut recv).await {
        Ok(AgentFrame::Enroll(r)) => r,
        Ok(_) => {
            state
                .reject(
                    None,
                    format!("{remote} sent a sync frame without a client certificate"),
                )
                .await;
            let message = "this connection has no site certificate; enroll first with `pasopati-agent enroll`".to_owned();
            refuse(&conn, Some(&mut send), RefusalCode::NotEnrolled, message).await;
            return;
        }
        Err(e) => {
            let message = format!("{remote} sent an unreadable enrollment frame: {e}");
            drop_connection(
                &state,
                &conn,
                None,
                message,
                close::PROTOCOL,
                b"malformed frame",
            )
            .await;
            return;
        }
    };
    let (code, message) = match enroll(&state, request).await {
        Ok((site, cert_der)) => {
            // The certificate this enrollment replaces is no longer accepted: its live session
            // (if any) ends now, not at its next reconnect.
            state.close_live(
                &site,
                close::SUPERSEDED,
                "certificate replaced by a new enrollment",
            );
            tracing::info!(%site, %remote, "site enrolled; certificate issued");
            let frame = CollectorFrame::Enrolled {
                cert_der,
                ca_der: state.authority.ca_der().to_vec(),
            };
            let _ = write_frame(&mut send, &frame).await;
            let _ = send.finish();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
            return;
        }
        Err(refusal) => refusal,
    };
    state
        .reject(None, format!("enrollment from {remote} refused: {message}"))
        .await;
    refuse(&conn, Some(&mut send), code, message).await;
}

async fn enroll(
    state: &Arc<ServerState>,
    request: EnrollRequest,
) -> Result<(SiteId, Vec<u8>), (RefusalCode, String)> {
    let site =
        SiteId::new(request.site_id).map_err(|e| (RefusalCode::BadRequest, e.to_string()))?;
    let hash = EnrollmentToken::secret_hash(&request.secret);
    let st = state.clone();
    let s = site.clone();
    let result = tokio::task::spawn_blocking(move || {
        let lifetime = st.config.site_cert_lifetime.0;
        st.store.redeem_token(&s, &hash, Timestamp::now(), || {
            st.authority.sign_site(&request.csr_der, &s, lifetime)
        })
    })
    .await;
    let unavailable = |m: String| {
        (
            RefusalCode::Unavailable,
            format!("the collector cannot enroll now ({m}); try again later"),
        )
    };
    match result {
        Err(e) => Err(unavailable(e.to_string())),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Ok(Ok(Ok(cert))) => Ok((site, cert)),
        Ok(Ok(Err(refusal))) => Err(match refusal {
            TokenRefusal::Unknown => (
                RefusalCode::TokenUnknown,
                format!("the enrollment token for site `{site}` is not known to this collector (mistyped, or minted by another installation); ask the media center for a new token"),
            ),
            TokenRefusal::Used(at) => (
                RefusalCode::TokenUsed,
                format!("this enrollment token was already used at {at}; each token works once. Ask the media center for a new token"),
            ),
            TokenRefusal::Expired(at) => (
                RefusalCode::TokenExpired,
                format!("this enrollment token expired at {at}; ask the media center for a new token"),
            ),
            TokenRefusal::Revoked => (
                RefusalCode::Revoked,
                format!("site `{site}` is revoked at the media center; contact its admin"),
            ),
            TokenRefusal::BadRequest(m) => (RefusalCode::BadRequest, m),
        }),
    }
}

async fn sync_connection(
    conn: quinn::Connection,
    cert: CertificateDer<'static>,
    state: Arc<ServerState>,
) {
    let remote = conn.remote_address();
    let site = match pki::site_of_cert(&cert) {
        Ok((site, _)) => site,
        Err(e) => {
            let message = format!("{remote} presented a certificate without a site: {e}");
            let reason = b"certificate names no site";
            drop_connection(&state, &conn, None, message, close::REFUSED, reason).await;
            return;
        }
    };
    let Ok(Ok((mut send, recv))) =
        tokio::time::timeout(FIRST_FRAME_TIMEOUT, conn.accept_bi()).await
    else {
        conn.close(close::PROTOCOL.into(), b"no stream");
        return;
    };
    // The site must exist, be active, and this must be its current certificate.
    let s = site.clone();
    let record = match store_call(&state, move |st| st.store.site(&s)).await {
        Ok(r) => r,
        Err(e) => {
            state.call_failed(&e);
            refuse(
                &conn,
                Some(&mut send),
                RefusalCode::Unavailable,
                "the collector's store is unavailable; try again later".into(),
            )
            .await;
            return;
        }
    };
    let presented = pki::fingerprint(&cert);
    let refusal = match &record {
        None => Some((RefusalCode::UnknownSite, format!("site `{site}` is not registered at this collector"))),
        Some(r) if r.status == SiteStatus::Revoked => Some((RefusalCode::Revoked, format!("site `{site}` has been revoked by the media center; reports stay queued at the site. Contact the media center's admin"))),
        Some(r) if r.cert_fingerprint != Some(presented) && r.previous_fingerprint != Some(presented) => Some((RefusalCode::CertificateSuperseded, format!("this certificate of site `{site}` was replaced by a newer enrollment; use the newest certificate or re-enroll with a new token"))),
        Some(_) => None,
    };
    if let Some((code, message)) = refusal {
        state.reject(Some(&site), message.clone()).await;
        refuse(&conn, Some(&mut send), code, message).await;
        return;
    }
    if record
        .as_ref()
        .is_some_and(|r| r.cert_fingerprint == Some(presented) && r.previous_fingerprint.is_some())
    {
        // The renewed certificate is in use: the one it replaced is no longer accepted.
        let s = site.clone();
        if let Err(e) = store_call(&state, move |st| st.store.retire_previous_cert(&s)).await {
            state.call_failed(&e);
        }
    }
    let conn_id = state.register(&site, &conn);
    let result = run_sync(&conn, &site, presented, &mut send, recv, &state).await;
    state.unregister(&site, conn_id);
    match result {
        Ok(()) => conn.close(close::NORMAL.into(), b"bye"),
        Err(SyncEnd::Peer(e)) => {
            tracing::debug!(%site, "session ended: {e}");
        }
        Err(SyncEnd::Violation(reason)) => {
            let why = b"protocol violation";
            drop_connection(&state, &conn, Some(&site), reason, close::PROTOCOL, why).await;
        }
        Err(SyncEnd::Refused(code, message)) => {
            state.reject(Some(&site), message.clone()).await;
            refuse(&conn, Some(&mut send), code, message).await;
        }
    }
}

enum SyncEnd {
    /// The peer went away; nothing to record.
    Peer(String),
    /// The peer broke the protocol; record and close.
    Violation(String),
    /// Refuse the session with a frame.
    Refused(RefusalCode, String),
}

async fn run_sync(
    conn: &quinn::Connection,
    site: &SiteId,
    presented: [u8; 32],
    send: &mut quinn::SendStream,
    mut recv: quinn::RecvStream,
    state: &Arc<ServerState>,
) -> Result<(), SyncEnd> {
    // The session rules live in `CollectorSession`; this is its I/O: reading frames, the
    // store, the certificate authority, the attachment directory and writing answers.
    let mut io = SessionIo {
        conn,
        site,
        presented,
        send,
        state,
        session: CollectorSession::new(state.limits),
        applying: VecDeque::new(),
    };
    let hello = match first_frame(&mut recv).await {
        Ok(frame) => frame,
        Err(FrameError::Closed) => return Err(SyncEnd::Peer("closed before Hello".into())),
        Err(e) => return Err(SyncEnd::Violation(format!("unreadable Hello: {e}"))),
    };
    // The rest are read by a task of their own: reading is not cancel-safe, and the session
    // reads and examines a site's next batch while the store's writer applies the one before.
    let (tx, mut frames) = tokio::sync::mpsc::channel(1);
    let _reader = pasopati_common::task::AbortOnDrop(tokio::spawn(read_frames(recv, tx)));
    let mut next = Some(hello);
    loop {
        let frame = match next.take() {
            Some(frame) => frame,
            None => {
                tokio::select! {
                    biased;
                    answer = oldest(&mut io.applying) => {
                        io.applying.pop_front();
                        io.answered(answer?).await?;
                        continue;
                    }
                    frame = frames.recv() => match frame {
                        Some(Ok(f)) => f,
                        Some(Err(FrameError::Io(e))) => return Err(SyncEnd::Peer(e.to_string())),
                        Some(Err(FrameError::Closed)) => {
                            return Err(SyncEnd::Peer("stream closed mid-frame".into()))
                        }
                        Some(Err(e)) => {
                            return Err(SyncEnd::Violation(format!(
                                "bad frame on the session stream: {e}"
                            )))
                        }
                        // The agent finished its side: the answers still to come are for
                        // nobody (their tasks tell the newsroom all the same).
                        None => return Ok(()),
                    },
                }
            }
        };
        // A frame the session cannot take yet (anything but a batch behind batches still
        // being applied, or a batch beyond the pipeline) waits for the oldest answer.
        if !io.session.can_take(&frame) {
            if io.applying.is_empty() {
                return Err(violation(SessionViolation::OutOfTurn(
                    "a frame the session cannot take, with no answer to wait for",
                )));
            }
            let answer = oldest(&mut io.applying).await;
            io.applying.pop_front();
            io.answered(answer?).await?;
            next = Some(frame);
            continue;
        }
        let agent_time = match &frame {
            AgentFrame::Hello(hello) => Some(hello.agent_time),
            _ => None,
        };
        let step = io
            .session
            .handle(frame, Timestamp::now())
            .map_err(violation)?;
        io.drive(step, agent_time).await?;
    }
}

/// What a sync session's I/O works with.
struct SessionIo<'a> {
    conn: &'a quinn::Connection,
    site: &'a SiteId,
    presented: [u8; 32],
    send: &'a mut quinn::SendStream,
    state: &'a Arc<ServerState>,
    session: CollectorSession,
    /// Batches handed to the store's writer whose answers are still to come, oldest first.
    /// Each is a task of its own: it tells the newsroom and the event feed about what its
    /// batch stored even if the session ends first.
    applying: VecDeque<tokio::task::JoinHandle<Result<StoreAnswer, SyncEnd>>>,
}

/// Reads the agent's frames into `frames` until the stream ends (`None` is never sent: the
/// channel closing says it ended), an error (sent, then the task ends), or the session stops.
async fn read_frames(
    mut recv: quinn::RecvStream,
    frames: tokio::sync::mpsc::Sender<Result<AgentFrame, FrameError>>,
) {
    loop {
        let item = match read_frame::<_, AgentFrame>(&mut recv).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if frames.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// The answer of the oldest batch being applied, left in the deque for the caller to pop
/// (polled by reference, it stays there if a frame arrives first); never, when none is.
async fn oldest(
    applying: &mut VecDeque<tokio::task::JoinHandle<Result<StoreAnswer, SyncEnd>>>,
) -> Result<StoreAnswer, SyncEnd> {
    match applying.front_mut() {
        Some(handle) => answer_of(handle).await,
        None => std::future::pending().await,
    }
}

/// The answer a batch's task gives, or the refusal that says it could not finish.
async fn answer_of(
    handle: &mut tokio::task::JoinHandle<Result<StoreAnswer, SyncEnd>>,
) -> Result<StoreAnswer, SyncEnd> {
    handle.await.unwrap_or_else(|e| {
        Err(SyncEnd::Refused(
            RefusalCode::Unavailable,
            format!("the collector could not finish storing a batch ({e}); reports stay queued, try again later"),
        ))
    })
}

impl SessionIo<'_> {
    /// Gives the session the store's answer to its oldest command, and sends what follows.
    async fn answered(&mut self, answer: StoreAnswer) -> Result<(), SyncEnd> {
        let step = self
            .session
            .answered(answer, Timestamp::now())
            .map_err(violation)?;
        self.drive(step, None).await
    }

    /// Carries out what the session asked for, and what that leads to, until it has nothing
    /// more to do now. A batch goes to the store's writer and its answer joins `applying`.
    async fn drive(
        &mut self,
        mut step: CollectorStep,
        agent_time: Option<Timestamp>,
    ) -> Result<(), SyncEnd> {
        let (state, site) = (self.state, self.site);
        loop {
            step = match step {
                CollectorStep::Nothing => return Ok(()),
                CollectorStep::Send(frame) => {
                    let replying = pasopati_common::profile::COLLECTOR_REPLY.start();
                    write_frame(self.send, &frame)
                        .await
                        .map_err(|e| SyncEnd::Peer(e.to_string()))?;
                    drop(replying);
                    if let (CollectorFrame::Welcome(w), Some(epoch)) =
                        (&frame, self.session.epoch())
                    {
                        tracing::info!(%site, %epoch, hwm = w.hwm, remote = %self.conn.remote_address(),
                            clock_offset_ms = agent_time.map(|t| t.millis_since(w.collector_time)),
                            "session started");
                    }
                    return Ok(());
                }
                CollectorStep::Refuse(refusal) => {
                    return Err(SyncEnd::Refused(refusal.code, refusal.message))
                }
                CollectorStep::ReadHwm {
                    epoch,
                    verdicts_from,
                } => {
                    let s = site.clone();
                    let (stored, first_verdict) = store_call(state, move |st| {
                        Ok::<_, crate::store::StoreError>((
                            st.store.hwm(&s, epoch)?,
                            st.store.first_verdict_from(&s, epoch, verdicts_from)?,
                        ))
                    })
                    .await
                    .map_err(|e| {
                        SyncEnd::Refused(
                            RefusalCode::Unavailable,
                            format!("store unavailable: {e}"),
                        )
                    })?;
                    self.session
                        .hwm_read(stored, first_verdict, Timestamp::now())
                        .map_err(violation)?
                }
                CollectorStep::Store(StoreCommand::ApplyBatch { epoch, batch, now }) => {
                    let answer = hand_to_writer(state, site, epoch, batch, now).await?;
                    self.applying.push_back(answer);
                    return Ok(());
                }
                CollectorStep::Store(command) => {
                    let answer = carry_out(state, site, self.presented, command).await?;
                    self.session
                        .answered(answer, Timestamp::now())
                        .map_err(violation)?
                }
            };
        }
    }
}

/// Examines a batch (checks, hashes and the PII guard run here, in parallel across sessions,
/// so the store's one writer only applies the rules that need the store) and queues it for the
/// writer's next group commit; returns the task that gives its answer once it is durable.
async fn hand_to_writer(
    state: &Arc<ServerState>,
    site: &SiteId,
    epoch: pasopati_common::Epoch,
    batch: pasopati_common::frame::Batch,
    now: Timestamp,
) -> Result<tokio::task::JoinHandle<Result<StoreAnswer, SyncEnd>>, SyncEnd> {
    let mut job = crate::store::BatchJob {
        site: site.clone(),
        epoch,
        batch,
        now,
        examined: None,
    };
    let job = blocking(state, move |st| {
        job.examine(&st.guard);
        Ok(job)
    })
    .await?;
    let outcome = state
        .commits
        .enqueue(job)
        .map_err(|e| cannot_store(state, &e))?;
    let (state, site) = (state.clone(), site.clone());
    Ok(tokio::spawn(async move {
        let outcome = outcome.await.map_err(|e| cannot_store(&state, &e))?;
        Ok(StoreAnswer::Reply(batch_reply(
            &state, &site, epoch, outcome,
        )))
    }))
}

fn violation(v: SessionViolation) -> SyncEnd {
    SyncEnd::Violation(v.to_string())
}

/// Carries out what a sync session asked of the store (and the authority and the attachment
/// directory), logging as it goes.
async fn carry_out(
    state: &Arc<ServerState>,
    site: &SiteId,
    presented: [u8; 32],
    command: StoreCommand,
) -> Result<StoreAnswer, SyncEnd> {
    match command {
        StoreCommand::RecordHello {
            epoch,
            decision,
            agent_time,
            now,
        } => {
            if let HelloDecision::Welcome {
                lost,
                rerequested,
                agent_behind,
                hwm,
            } = &decision
            {
                if let Some(range) = rerequested {
                    tracing::warn!(%site, %epoch, from = range.start(), to = range.end(),
                        "rollback detected: this collector lacks seqs the agent had acknowledged (restored from an older copy?); asking the agent to send them again");
                }
                if let Some(range) = lost {
                    tracing::error!(%site, %epoch, from = range.start(), to = range.end(),
                        "the agent no longer holds seqs this collector lacks (collector restored from an older copy?); recorded as a gap");
                }
                if *agent_behind {
                    tracing::warn!(%site, %epoch, hwm,
                        "the agent's outbox is behind this collector (restored from an older copy?); it will start a new epoch");
                }
            }
            let s = site.clone();
            blocking(state, move |st| {
                st.store.record_hello(&s, epoch, &decision, agent_time, now)
            })
            .await?;
            Ok(StoreAnswer::Done)
        }
        StoreCommand::RecordHeartbeat { heartbeat, now } => {
            let s = site.clone();
            blocking(state, move |st| {
                st.store.record_heartbeat(&s, &heartbeat, now)
            })
            .await?;
            Ok(StoreAnswer::Done)
        }
        StoreCommand::RecordRejection { message, .. } => {
            tracing::warn!(%site, "{message}");
            state.reject(Some(site), message).await;
            Ok(StoreAnswer::Done)
        }
        StoreCommand::ApplyBatch { epoch, batch, now } => {
            answer_of(&mut hand_to_writer(state, site, epoch, batch, now).await?).await
        }
        StoreCommand::Renew { csr_der, .. } => Ok(StoreAnswer::Reply(
            renew(state, site, presented, csr_der).await?,
        )),
        StoreCommand::Chunk { chunk, now } => {
            let s = site.clone();
            let reply = blocking(state, move |st| {
                st.attachments.receive(&st.store, &s, &chunk, now)
            })
            .await?
            .map_err(|v| SyncEnd::Violation(format!("bad attachment chunk: {v}")))?;
            if let CollectorFrame::AttachmentRefused { reason, .. } = &reply {
                state
                    .reject(Some(site), format!("attachment refused: {reason}"))
                    .await;
            }
            Ok(StoreAnswer::Reply(reply))
        }
        StoreCommand::RecordStatus { status, now } => {
            // Running the fleet never holds up reports: a failure here is logged and answered
            // with no directives, and the session goes on.
            let s = site.clone();
            let directives = store_call(state, move |st| {
                let record = st
                    .store
                    .site(&s)?
                    .ok_or_else(|| crate::store::StoreError::UnknownSite(s.to_string()))?;
                let directives = crate::fleet::on_status(&st.store, &record, &status, now)
                    .map_err(|e| crate::store::StoreError::Storage(e.to_string()))?;
                crate::fleet::rollout::step(&st.store)?;
                Ok(directives)
            })
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(%site, "cannot answer the agent's status: {e}");
                pasopati_common::fleet::Directives {
                    config: None,
                    release: None,
                    release_key: None,
                }
            });
            Ok(StoreAnswer::Reply(CollectorFrame::Directives(directives)))
        }
        StoreCommand::Fetch { sha256, offset } => {
            let data = blocking(state, move |st| {
                crate::fleet::release::package_part(
                    &st.store,
                    &sha256,
                    offset,
                    pasopati_common::fleet::RELEASE_PART_BYTES,
                )
                .map_err(|e| crate::store::StoreError::Storage(e.to_string()))
            })
            .await?;
            Ok(StoreAnswer::Reply(CollectorFrame::ReleasePart {
                sha256,
                offset,
                data,
            }))
        }
    }
}

/// The answer to a stored (or refused) batch, after telling the newsroom and the event feed
/// about the reports it stored.
fn batch_reply(
    state: &Arc<ServerState>,
    site: &SiteId,
    epoch: pasopati_common::Epoch,
    outcome: BatchOutcome,
) -> CollectorFrame {
    match outcome {
        BatchOutcome::Stored {
            hwm,
            stored,
            replayed,
            known_by_id,
            quarantined,
            refused,
        } => {
            if replayed > 0 || known_by_id > 0 {
                tracing::info!(%site, %epoch, replayed, known_by_id, "replayed reports absorbed");
            }
            if !quarantined.is_empty() {
                tracing::error!(%site, %epoch, quarantined = quarantined.len(),
                    "reports carrying inmate identity data were quarantined, not stored; see `pasopati-collector quarantine` and ask the site to check its agent's PII guard");
            }
            if !stored.is_empty() {
                // The placer and the report index read them back from the store (see
                // `newsroom::placer` and `report_index`).
                state.newsroom.reports_stored();
                state.report_index.reports_stored();
            }
            for report in stored {
                let _ = state
                    .events
                    .send(CollectorEvent::ReportStored(Box::new(report)));
            }
            if refused.is_empty() && quarantined.is_empty() {
                CollectorFrame::Ack { hwm }
            } else {
                let reason = NackReason::ReportsRefused {
                    refused,
                    quarantined,
                };
                tracing::error!(%site, %epoch, "{reason}");
                CollectorFrame::Nack { hwm, reason }
            }
        }
        BatchOutcome::Refused { hwm, reason } => {
            tracing::error!(%site, %epoch, "batch refused: {reason}");
            CollectorFrame::Nack { hwm, reason }
        }
    }
}

/// Issues a renewed certificate for the session's site (the identity comes from the session,
/// never from the request).
async fn renew(
    state: &Arc<ServerState>,
    site: &SiteId,
    presented: [u8; 32],
    csr_der: Vec<u8>,
) -> Result<CollectorFrame, SyncEnd> {
    let s = site.clone();
    let result = blocking(state, move |st| {
        let lifetime = st.config.site_cert_lifetime.0;
        st.store.renew_cert(&s, &presented, Timestamp::now(), || {
            st.authority.sign_site(&csr_der, &s, lifetime)
        })
    })
    .await?;
    Ok(match result {
        Ok(cert_der) => {
            tracing::info!(%site, "certificate renewed");
            CollectorFrame::Renewed { cert_der }
        }
        Err(message) => {
            state
                .reject(Some(site), format!("renewal refused: {message}"))
                .await;
            CollectorFrame::RenewalRefused { message }
        }
    })
}

/// [`store_call`] for a sync session: a failure refuses the session (the agent keeps its
/// reports and tries again later), and one that needs the store reopened stops the collector.
async fn blocking<T: Send + 'static>(
    state: &Arc<ServerState>,
    call: impl FnOnce(&ServerState) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SyncEnd> {
    match store_call(state, call).await {
        Ok(v) => Ok(v),
        Err(StoreCallError::Store(e)) => Err(cannot_store(state, &e)),
        Err(StoreCallError::Unfinished(m)) => Err(SyncEnd::Refused(RefusalCode::Unavailable, m)),
    }
}

/// A session's end when the store failed it: logged (and the daemon stopped if the store must
/// be reopened), and the agent told to keep its reports and come back.
fn cannot_store(state: &ServerState, e: &StoreError) -> SyncEnd {
    state.store_failed(e);
    SyncEnd::Refused(
        RefusalCode::Unavailable,
        format!("the collector cannot store now ({e}); reports stay queued, try again later"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_refusals_are_recorded_at_a_bounded_rate_and_summarised() {
        let mut budget = RefusalBudget::default();
        let t0 = 1_767_225_600_000;
        let decisions: Vec<_> = (0..1_000).map(|i| budget.admit(t0 + i)).collect();
        let recorded = decisions
            .iter()
            .filter(|d| **d != RefusalRecord::Suppress)
            .count();
        assert_eq!(recorded, REFUSALS_PER_WINDOW as usize);
        assert_eq!(
            budget.admit(t0 + REFUSAL_WINDOW_MS + 5),
            RefusalRecord::RecordAfterSummary {
                suppressed: 990,
                since: t0
            }
        );
        assert_eq!(
            budget.admit(t0 + REFUSAL_WINDOW_MS + 6),
            RefusalRecord::Record
        );
    }
}
