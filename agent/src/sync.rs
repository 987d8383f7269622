//! The sync loop: load the identity, connect, run one session of the protocol in
//! `pasopati_common::sync`, and on any failure wait with jittered exponential backoff and try
//! again. All protocol decisions are made by `AgentSession`; this module moves frames, calls the
//! outbox, and renews the certificate at about half its lifetime.

use crate::attachments::Blobs;
use crate::identity::{self, client_endpoint, resolve, Identity};
use crate::liveness::{Liveness, Verdict};
use crate::outbox::Outbox;
use crate::{AgentError, Shared, SyncPhase};
use bytes::Bytes;
use pasopati_common::backoff::Backoff;
use pasopati_common::frame::{
    read_frame, write_frame, AgentFrame, Chunk, CollectorFrame, FrameError, NackReason, RefusalCode,
};
use pasopati_common::profile;
use pasopati_common::sync::{AgentEvent, AgentSession, ProtocolError};
use pasopati_common::transfer::{ChunkRequest, ChunkSender, SenderEvent};
use pasopati_common::{pki, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long batches may wait for an acknowledgement before the session is abandoned. A
/// collector commits a batch in milliseconds; this only catches a peer whose QUIC stack still
/// answers while its application does not. A collector that sends nothing at all is caught
/// sooner, by the silence watch (`liveness.rs`).
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the silence watch looks at the connection while a reply is awaited.
const WATCH_EVERY: Duration = Duration::from_millis(500);

mod acks;
use acks::UnrecordedAcks;

/// How a session ended without error.
enum SessionEnd {
    Shutdown,
    /// A renewed certificate was saved; reconnect with it at once.
    Renewed,
}

/// Runs until `shutdown` is cancelled.
pub(crate) async fn sync_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let settings = shared.config().sync.clone();
    let mut backoff = Backoff::new(settings.backoff());
    let mut endpoint: Option<quinn::Endpoint> = None;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        shared.set_phase(SyncPhase::Connecting, None);
        let result = attempt(&shared, &mut endpoint, &mut backoff, &shutdown).await;
        match result {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Renewed) => {
                tracing::info!("certificate renewed; reconnecting with it");
                continue;
            }
            Err(AgentError::Protocol(ProtocolError::EpochBehindCollector { .. })) => {
                tracing::warn!(
                    "the collector already holds reports this outbox has not sent: the outbox \
                     was restored from an older copy; starting a new epoch and resending"
                );
                let outbox = shared.outbox.clone();
                match tokio::task::spawn_blocking(move || outbox.start_new_epoch()).await {
                    Ok(Ok(epoch)) => tracing::info!(%epoch, "new epoch started"),
                    Ok(Err(e)) => shared.record_error(&AgentError::Outbox(e)),
                    Err(e) => tracing::error!("epoch change task failed: {e}"),
                }
                continue;
            }
            Err(e) => {
                shared.record_error(&e);
                shared.next_collector();
            }
        }
        let delay = backoff.next_delay(pasopati_common::random_u64());
        tracing::debug!(
            ?delay,
            attempt = backoff.attempts(),
            "retrying after backoff"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    shared.set_phase(SyncPhase::Stopped, None);
    if let Some(endpoint) = endpoint {
        endpoint.close(0u32.into(), b"agent stopping");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
) -> Result<T, AgentError> {
    pasopati_common::task::run_blocking("agent task", f).await?
}

/// One connection attempt with the identity as it is on disk now (so a renewal or a
/// re-enrollment made while the daemon runs is picked up).
async fn attempt(
    shared: &Arc<Shared>,
    endpoint_slot: &mut Option<quinn::Endpoint>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, AgentError> {
    let dir = shared.data_dir.clone();
    let identity = blocking(move || Identity::load(&dir)).await?;
    let (not_before, not_after) = identity.validity()?;
    let now = Timestamp::now();
    if now >= not_after {
        return Err(AgentError::CertificateExpired {
            at: not_after.to_rfc3339(),
            dir: shared.data_dir.display().to_string(),
        });
    }
    let client = identity.client_config()?;
    let settings = &shared.config().sync;
    let addr_text = shared.collector();
    let unreachable = |message: String| AgentError::Unreachable {
        addr: addr_text.clone(),
        message,
    };
    let remote = resolve(&addr_text).await?;
    // A list may mix address families; the endpoint must match the collector dialled.
    let family_differs = endpoint_slot
        .as_ref()
        .and_then(|e| e.local_addr().ok())
        .is_some_and(|local| local.is_ipv6() != remote.is_ipv6());
    if endpoint_slot.is_none() || family_differs {
        *endpoint_slot = Some(client_endpoint(remote)?);
    }
    let Some(endpoint) = endpoint_slot.as_ref() else {
        return Err(unreachable("no endpoint".into()));
    };
    let connecting = endpoint
        .connect_with(client, remote, pki::COLLECTOR_SERVER_NAME)
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = tokio::select! {
        r = tokio::time::timeout(Duration::from_millis(settings.connect_timeout_ms), connecting) => {
            r.map_err(|_| unreachable("connection attempt timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?
        }
        _ = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
    };
    // Renew at 45–60 % of the lifetime, drawn per session so a fleet enrolled together does
    // not renew together.
    let fraction = 0.45 + (pasopati_common::random_u64() % 1500) as f64 / 10_000.0;
    let lifetime_ms = not_after.millis_since(not_before).max(0) as f64;
    let renew_at = Timestamp(not_before.0 + (lifetime_ms * fraction) as i64);
    let renew_in = Duration::from_millis(renew_at.millis_since(now).max(0) as u64);
    let renewal = Renewal {
        site: identity.site_id.clone(),
        at: Instant::now() + renew_in,
        retry_after: Duration::from_millis((lifetime_ms / 10.0).max(1000.0) as u64),
    };
    let mut unrecorded = UnrecordedAcks::default();
    let result = run_session(shared, &conn, renewal, backoff, shutdown, &mut unrecorded).await;
    if let Some(hwm) = unrecorded.take() {
        let (ob, retain) = (shared.outbox.clone(), shared.config().sync.retain_acked);
        if let Err(e) = blocking(move || Ok(ob.ack(hwm, retain)?)).await {
            // Only a resend of what the collector already holds is lost.
            tracing::warn!(hwm, "cannot record the session's last acknowledgement: {e}");
        }
    }
    let reason: &[u8] = match &result {
        Ok(_) => b"agent stopping",
        Err(_) => b"session error",
    };
    conn.close(0u32.into(), reason);
    result
}

struct Renewal {
    site: pasopati_common::SiteId,
    at: Instant,
    retry_after: Duration,
}

async fn run_session(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
    mut renewal: Renewal,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
    unrecorded: &mut UnrecordedAcks,
) -> Result<SessionEnd, AgentError> {
    let settings = &shared.config().sync;
    let outbox: Arc<Outbox> = shared.outbox.clone();
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| AgentError::Unreachable {
        addr: shared.collector(),
        message: e.to_string(),
    })?;
    let positions = outbox.positions()?;
    let (mut session, hello) = AgentSession::start(
        outbox.epoch(),
        positions.acked,
        positions.oldest_retained,
        positions.next_seq,
        Timestamp::now(),
    );
    let retain = settings.retain_acked;
    let mut next_heartbeat: Option<Instant> = None;
    // Protocol 2: a `Status` goes after the `Welcome`, after each heartbeat and whenever what it
    // says changed; the first `Directives` of a session make a version on trial healthy.
    let mut status_due = false;
    let mut directed = false;
    // The backlog the last heartbeat reported, and whether the outbox had nothing left to
    // stage the last time the loop asked.
    let mut reported_backlog = 0u64;
    let mut queue_empty = false;
    let mut probe = crate::health::HealthProbe::new(&shared.data_dir);
    let mut transfer = Transfer::default();
    write_frame(&mut send, &AgentFrame::Hello(hello)).await?;

    // Frames are read by their own task: reading is not cancel-safe, so it must not sit in a
    // `select!` beside the other events.
    let (tx, mut rx) = mpsc::channel::<Result<CollectorFrame, FrameError>>(16);
    let reader = tokio::spawn(async move {
        loop {
            let frame = read_frame::<_, CollectorFrame>(&mut recv).await;
            let stop = !matches!(frame, Ok(Some(_)));
            let item = match frame {
                Ok(Some(f)) => Ok(f),
                Ok(None) => Err(FrameError::Closed),
                Err(e) => Err(e),
            };
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let _abort_reader = pasopati_common::task::AbortOnDrop(reader);

    let received = |conn: &quinn::Connection| conn.stats().udp_rx.datagrams;
    let mut liveness = Liveness::new(Instant::now(), received(conn));
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The acknowledgement timeout counts from the loop's last event other than the watch's own
    // ticks (a write of a large batch on a slow link is not counted against it).
    let mut ack_deadline = Instant::now() + ACK_TIMEOUT;
    let mut woke_for_watch = false;

    loop {
        while session.can_send() {
            let limits = session.limits();
            let max_reports = settings
                .batch_max_reports
                .min(limits.max_batch_reports as usize)
                .max(1);
            let max_bytes = settings
                .batch_max_bytes
                .min(limits.max_frame_bytes as usize / 2)
                .max(1);
            let start = session.next_batch_start();
            let batches = session.free_slots();
            let ob = outbox.clone();
            let staged =
                blocking(move || Ok(ob.batch_from(start, max_reports, max_bytes, batches)?))
                    .await?;
            let Some(staged) = staged else {
                queue_empty = true;
                break;
            };
            queue_empty = false;
            pasopati_common::faults::failpoint("agent.after_stage");
            let first = staged.first_seq;
            let last = first + staged.reports.len() as u64 - 1;
            session.seqs_assigned(last + 1);
            let sending = profile::AGENT_SEND.start();
            profile::AGENT_SEND.add_items(staged.reports.len() as u64);
            // The reports go out as the outbox keeps them (`EncodedReports`), handed to the
            // stream rather than copied into its buffer.
            let frame = staged.reports.into_batch_frame(first)?;
            send.write_all_chunks(&mut [Bytes::from(frame.head), Bytes::from(frame.body)])
                .await
                .map_err(|e| FrameError::Io(e.into()))?;
            drop(sending);
            session.batch_sent(first, last)?;
            tracing::debug!(first, last, "batch sent");
        }
        if status_due && session.can_send_status() {
            write_frame(&mut send, &AgentFrame::Status(shared.fleet.status())).await?;
            session.status_sent();
            status_due = false;
        }
        // Attachments go only when every report is sent and acknowledged; one chunk at a time.
        if session.can_send_chunk() {
            if let Some(chunk) = transfer.next_chunk(&outbox, &shared.blobs).await? {
                let hash = chunk.hash;
                write_frame(&mut send, &AgentFrame::Chunk(chunk)).await?;
                session.chunk_sent(hash);
            }
        }
        // A release's parts go last: no report waiting, nothing unanswered, one part at a time.
        if queue_empty && session.can_fetch() {
            if let Some((sha256, offset)) = shared.fleet.next_fetch() {
                write_frame(&mut send, &AgentFrame::Fetch { sha256, offset }).await?;
                session.fetch_sent(sha256);
            }
        }
        if !std::mem::take(&mut woke_for_watch) {
            ack_deadline = Instant::now() + ACK_TIMEOUT;
        }
        if !session.awaiting_reply() {
            liveness.observe(Instant::now(), received(conn), false, conn.rtt());
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                let _ = send.finish();
                return Ok(SessionEnd::Shutdown);
            }
            frame = rx.recv() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(FrameError::Closed.into()),
                };
                let welcome = matches!(frame, CollectorFrame::Welcome(_));
                match session.handle(frame)? {
                    AgentEvent::Acked { hwm } => {
                        pasopati_common::faults::failpoint("agent.after_ack");
                        // With a report refused for the quota, what the collector holds frees
                        // space at once.
                        let may_wait = session.in_flight() > 0 && !outbox.quota_refused();
                        if let Some(hwm) = unrecorded.note(hwm, may_wait, Instant::now()) {
                            let ob = outbox.clone();
                            blocking(move || Ok(profile::AGENT_ACK.time(|| ob.ack(hwm, retain))?))
                                .await?;
                        }
                        tracing::debug!(hwm, "acknowledged");
                        // Everything sent is acknowledged after a heartbeat that reported a
                        // backlog: tell the center at once that the queue drained, so its fleet
                        // view does not show the old count until the next heartbeat.
                        if reported_backlog > 0
                            && queue_empty
                            && !session.awaiting_reply()
                            && next_heartbeat.is_some()
                        {
                            next_heartbeat = Some(Instant::now());
                        }
                    }
                    AgentEvent::Nothing => {}
                    AgentEvent::Refused { hwm, reason: NackReason::ReportsRefused { refused, quarantined } } => {
                        // The rest of the batch is stored; these never will be (refused) or are
                        // held aside by an admin (quarantined). Record the acknowledgement and
                        // the verdicts in one transaction (the form and `status` show them), tell
                        // the operator, and carry on.
                        let ob = outbox.clone();
                        let (r, q) = (refused.clone(), quarantined.clone());
                        // This acknowledgement covers any not yet recorded.
                        unrecorded.take();
                        blocking(move || Ok(ob.ack_with_verdicts(hwm, retain, &r, &q)?)).await?;
                        for r in &refused {
                            tracing::error!(report = %r.id, revision = r.revision, seq = r.seq,
                                "the collector refused this report and will not store it: {}. \
                                 File it again, corrected, or ask the media center's admin", r.reason);
                        }
                        for r in &quarantined {
                            tracing::error!(report = %r.id, revision = r.revision, seq = r.seq,
                                "the collector quarantined this report ({}); it is not shown at the \
                                 center. Remove the identity data and file it again", r.reason);
                        }
                        shared.set_phase(
                            SyncPhase::Connected,
                            Some(AgentError::BatchRefused(
                                NackReason::ReportsRefused { refused, quarantined }.to_string(),
                            )
                            .to_string()),
                        );
                    }
                    AgentEvent::Refused { hwm, reason } => {
                        let ob = outbox.clone();
                        unrecorded.take();
                        blocking(move || Ok(ob.ack(hwm, retain)?)).await?;
                        return Err(AgentError::BatchRefused(reason.to_string()));
                    }
                    AgentEvent::Renewed { cert_der } => {
                        let dir = shared.data_dir.clone();
                        let site = renewal.site.clone();
                        blocking(move || identity::complete_renewal(&dir, &site, &cert_der)).await?;
                        let _ = send.finish();
                        return Ok(SessionEnd::Renewed);
                    }
                    AgentEvent::RenewalRefused { message } => {
                        tracing::warn!("certificate renewal refused: {message}; the current certificate stays in use");
                        renewal.at = Instant::now() + renewal.retry_after;
                    }
                    AgentEvent::ChunkAcked { hash, received } => {
                        transfer.acked(&outbox, &shared.blobs, hash, received).await?;
                    }
                    AgentEvent::AttachmentRefused { hash, reason } => {
                        tracing::error!(attachment = %pasopati_common::hex(&hash),
                            "the collector refused an attachment ({reason}); it is dropped from the outbox");
                        transfer.finished(&outbox, &shared.blobs, hash).await?;
                    }
                    AgentEvent::Directives(directives) => {
                        let sh = shared.clone();
                        let first = !directed;
                        directed = true;
                        let (outcome, healthy) = blocking(move || {
                            let outcome = sh.fleet.on_directives(directives, &sh.base_config, Timestamp::now());
                            // A session welcomed and answered: a version on trial is healthy.
                            let healthy = first && crate::launch::healthy(&sh.data_dir).map_err(|e| AgentError::Io {
                                what: "cannot record the new version as healthy".into(),
                                source: std::io::Error::other(e.to_string()),
                            })?;
                            Ok((outcome, healthy))
                        }).await?;
                        if healthy {
                            tracing::info!(version = pasopati_common::version(), "this version came back healthy; it stays");
                        }
                        if let Some(config) = outcome.config {
                            // A shorter heartbeat interval counts from now.
                            let every = Duration::from_secs(config.sync.heartbeat_secs.max(1));
                            next_heartbeat = next_heartbeat.map(|at| at.min(Instant::now() + every));
                            shared.set_config(config);
                        }
                        status_due |= outcome.status_changed || healthy;
                    }
                    AgentEvent::ReleasePart { sha256, offset, data } => {
                        let sh = shared.clone();
                        let part = blocking(move || Ok(sh.fleet.on_part(sha256, offset, &data, Timestamp::now()))).await?;
                        match part {
                            crate::fleet::PartOutcome::More => {}
                            crate::fleet::PartOutcome::Stopped => status_due = true,
                            crate::fleet::PartOutcome::Installed(version) => {
                                // The outbox is as it was; the daemon stops and starts again
                                // on the new version.
                                shared.restart_into(version);
                            }
                        }
                    }
                }
                if welcome {
                    status_due = true;
                    next_heartbeat = Some(Instant::now());
                    backoff.reset();
                    shared.set_phase(SyncPhase::Connected, None);
                    tracing::info!(
                        collector = %shared.collector(),
                        epoch = %outbox.epoch(),
                        hwm = session.acked(),
                        "connected to the collector"
                    );
                }
            }
            _ = shared.wake.notified(), if session.can_send() => {}
            _ = tokio::time::sleep_until(next_heartbeat.unwrap_or_else(Instant::now)), if next_heartbeat.is_some() => {
                let ob = outbox.clone();
                let stats = blocking(move || Ok(ob.stats()?)).await?;
                let heartbeat = probe.heartbeat(&stats);
                reported_backlog = heartbeat.backlog;
                write_frame(&mut send, &AgentFrame::Heartbeat(heartbeat)).await?;
                status_due = true;
                // Read each time: the center may change the interval while the session runs.
                let every = Duration::from_secs(shared.config().sync.heartbeat_secs.max(1));
                next_heartbeat = Some(Instant::now() + every);
            }
            _ = tokio::time::sleep_until(renewal.at), if session.can_renew() => {
                let dir = shared.data_dir.clone();
                let site = renewal.site.clone();
                let csr_der = blocking(move || identity::begin_renewal(&dir, &site)).await?;
                write_frame(&mut send, &AgentFrame::Renew { csr_der }).await?;
                session.renewal_sent();
                tracing::info!("certificate renewal requested");
            }
            _ = watch.tick(), if session.awaiting_reply() => {
                woke_for_watch = true;
                match liveness.observe(Instant::now(), received(conn), true, conn.rtt()) {
                    Verdict::Alive => {}
                    Verdict::Ping => {
                        // One byte the collector's QUIC stack acknowledges. If it cannot go
                        // (a peer without datagrams), the silence limit still applies.
                        if let Err(e) = conn.send_datagram((&b"p"[..]).into()) {
                            tracing::debug!("ping not sent: {e}");
                        }
                    }
                    Verdict::Silent(quiet) => {
                        return Err(AgentError::Unreachable {
                            addr: shared.collector(),
                            message: format!(
                                "nothing received from the collector for {:.1}s while a reply \
                                 was awaited",
                                quiet.as_secs_f64()
                            ),
                        });
                    }
                }
            }
            _ = tokio::time::sleep_until(ack_deadline), if session.awaiting_reply() => {
                return Err(AgentError::Unreachable {
                    addr: shared.collector(),
                    message: format!("no acknowledgement for {}s", ACK_TIMEOUT.as_secs()),
                });
            }
        }
    }
}

/// The attachment being sent, and how much of it the collector holds.
#[derive(Default)]
struct Transfer {
    /// The offsets and the resume rule; this shell reads blobs and updates the outbox.
    sender: ChunkSender,
}

impl Transfer {
    /// The next chunk to send: a probe (empty data) for a new attachment, else the bytes from
    /// where the collector stands. `None` when nothing waits.
    async fn next_chunk(
        &mut self,
        outbox: &Arc<Outbox>,
        blobs: &Blobs,
    ) -> Result<Option<Chunk>, AgentError> {
        if self.sender.current().is_none() {
            let ob = outbox.clone();
            let next = blocking(move || Ok(ob.next_attachment()?)).await?;
            self.sender.start(next);
        }
        let Some(request) = self.sender.next_request() else {
            return Ok(None);
        };
        let ChunkRequest::Read {
            hash, offset, len, ..
        } = request
        else {
            return Ok(Some(request.chunk(Vec::new())));
        };
        let b = blobs.clone();
        match blocking(move || Ok(b.read_range(&hash, offset, len)?)).await {
            Ok(data) if data.len() == len => Ok(Some(request.chunk(data))),
            result => {
                let why = match result {
                    Err(e) => e.to_string(),
                    Ok(_) => "the file is shorter than recorded".into(),
                };
                tracing::error!(attachment = %pasopati_common::hex(&hash),
                    "an attachment waiting to be sent cannot be read ({why}); it is dropped");
                self.finished(outbox, blobs, hash).await?;
                Ok(None)
            }
        }
    }

    async fn acked(
        &mut self,
        outbox: &Arc<Outbox>,
        blobs: &Blobs,
        hash: [u8; 32],
        received: u64,
    ) -> Result<(), AgentError> {
        match self.sender.acked(hash, received) {
            SenderEvent::Ignored | SenderEvent::Progress => Ok(()),
            SenderEvent::Delivered(current) => {
                tracing::info!(attachment = %pasopati_common::hex(&hash), name = %current.name,
                    bytes = current.size, "attachment delivered");
                self.finished(outbox, blobs, hash).await
            }
            SenderEvent::Resuming { from } => {
                if let Some(current) = self.sender.current() {
                    tracing::info!(attachment = %pasopati_common::hex(&hash), name = %current.name,
                        from, of = current.size, "resuming an attachment cut off earlier");
                }
                Ok(())
            }
        }
    }

    /// Forgets an attachment the collector holds or will never take, and deletes its blob.
    async fn finished(
        &mut self,
        outbox: &Arc<Outbox>,
        blobs: &Blobs,
        hash: [u8; 32],
    ) -> Result<(), AgentError> {
        let ob = outbox.clone();
        blocking(move || Ok(ob.attachment_done(&hash)?)).await?;
        blobs.remove(&hash);
        self.sender.finish();
        Ok(())
    }
}

/// Whether a refusal means the site cannot sync until an admin acts.
pub(crate) fn refusal_code(error: &AgentError) -> Option<RefusalCode> {
    match error {
        AgentError::Protocol(ProtocolError::Refused(r)) => Some(r.code),
        _ => None,
    }
}
