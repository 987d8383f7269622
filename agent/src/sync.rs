//! The sync loop: connect, run one session of the protocol in `pasopati_common::sync`, and on any
//! failure wait with jittered exponential backoff and try again. All protocol decisions are made
//! by `AgentSession`; this module only moves frames and calls the outbox.

use crate::identity::{client_endpoint, resolve};
use crate::outbox::Outbox;
use crate::{AgentError, Shared};
use pasopati_common::backoff::Backoff;
use pasopati_common::frame::{
    read_frame, write_frame, AgentFrame, Batch, CollectorFrame, FrameError,
};
use pasopati_common::sync::{AgentEvent, AgentSession, ProtocolError};
use pasopati_common::{pki, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long batches may wait for an acknowledgement before the session is abandoned. A
/// collector commits a batch in milliseconds; this only catches a peer that stopped answering
/// while its connection still looks alive.
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// How a session ended without error.
enum SessionEnd {
    Shutdown,
}

/// Runs until `shutdown` is cancelled.
pub(crate) async fn sync_loop(
    shared: Arc<Shared>,
    client: quinn::ClientConfig,
    shutdown: CancellationToken,
) {
    let settings = shared.config.sync.clone();
    let mut backoff = Backoff::new(settings.backoff());
    let mut endpoint: Option<quinn::Endpoint> = None;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let result = session(&shared, &client, &mut endpoint, &mut backoff, &shutdown).await;
        shared.set_connected(false);
        match result {
            Ok(SessionEnd::Shutdown) => break,
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
            Err(e) => shared.record_error(&e),
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
    if let Some(endpoint) = endpoint {
        endpoint.close(0u32.into(), b"agent stopping");
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::outbox::OutboxError> + Send + 'static,
) -> Result<T, AgentError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AgentError::Io {
            what: "outbox task".into(),
            message: e.to_string(),
        })?
        .map_err(AgentError::Outbox)
}

async fn session(
    shared: &Arc<Shared>,
    client: &quinn::ClientConfig,
    endpoint_slot: &mut Option<quinn::Endpoint>,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, AgentError> {
    let settings = &shared.config.sync;
    let addr_text = &shared.config.collector_addr;
    let unreachable = |message: String| AgentError::Unreachable {
        addr: addr_text.clone(),
        message,
    };
    let remote = resolve(addr_text).await?;
    if endpoint_slot.is_none() {
        *endpoint_slot = Some(client_endpoint(remote)?);
    }
    let Some(endpoint) = endpoint_slot.as_ref() else {
        return Err(unreachable("no endpoint".into()));
    };
    let connecting = endpoint
        .connect_with(client.clone(), remote, pki::COLLECTOR_SERVER_NAME)
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = tokio::select! {
        r = tokio::time::timeout(Duration::from_millis(settings.connect_timeout_ms), connecting) => {
            r.map_err(|_| unreachable("connection attempt timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?
        }
        _ = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
    };
    let result = run_session(shared, &conn, backoff, shutdown).await;
    let reason: &[u8] = match &result {
        Ok(_) => b"agent stopping",
        Err(_) => b"session error",
    };
    conn.close(0u32.into(), reason);
    result
}

async fn run_session(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, AgentError> {
    let settings = &shared.config.sync;
    let outbox: Arc<Outbox> = shared.outbox.clone();
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| AgentError::Unreachable {
        addr: shared.config.collector_addr.clone(),
        message: e.to_string(),
    })?;
    let (acked, next_seq) = outbox.positions()?;
    let (mut session, hello) =
        AgentSession::start(outbox.epoch(), acked, next_seq, Timestamp::now());
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
    let _abort_reader = AbortOnDrop(reader);

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
            let ob = outbox.clone();
            let Some(staged) =
                blocking(move || ob.batch_from(start, max_reports, max_bytes)).await?
            else {
                break;
            };
            let first = staged.first_seq;
            let last = first + staged.reports.len() as u64 - 1;
            session.seqs_assigned(last + 1);
            write_frame(
                &mut send,
                &AgentFrame::Batch(Batch {
                    first_seq: first,
                    reports: staged.reports,
                }),
            )
            .await?;
            session.batch_sent(first, last)?;
            tracing::debug!(first, last, "batch sent");
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
                        let ob = outbox.clone();
                        blocking(move || ob.ack(hwm)).await?;
                        tracing::debug!(hwm, "acknowledged");
                    }
                    AgentEvent::Nothing => {}
                    AgentEvent::Refused { hwm, reason } => {
                        let ob = outbox.clone();
                        blocking(move || ob.ack(hwm)).await?;
                        return Err(AgentError::BatchRefused(reason.to_string()));
                    }
                }
                if welcome {
                    backoff.reset();
                    shared.set_connected(true);
                    tracing::info!(
                        collector = %shared.config.collector_addr,
                        epoch = %outbox.epoch(),
                        hwm = session.acked(),
                        "connected to the collector"
                    );
                }
            }
            _ = shared.wake.notified(), if session.can_send() => {}
            _ = tokio::time::sleep(ACK_TIMEOUT), if session.in_flight() > 0 => {
                return Err(AgentError::Unreachable {
                    addr: shared.config.collector_addr.clone(),
                    message: format!("no acknowledgement for {}s", ACK_TIMEOUT.as_secs()),
                });
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
