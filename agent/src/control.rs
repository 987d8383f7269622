//! The agent's side of the local control channel: `report` and `status` while the daemon runs.

use crate::{AgentStatus, Shared};
use bincode::{Decode, Encode};
use pasopati_common::{ReportDraft, ReportId};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// A request from the CLI to the running daemon.
#[derive(Debug, Encode, Decode)]
pub enum AgentRequest {
    File(ReportDraft),
    Status,
}

/// The daemon's answer.
#[derive(Debug, Encode, Decode)]
pub enum AgentResponse {
    /// The report is durable in the outbox.
    Filed(ReportId),
    /// The report was not accepted; the message names the field at fault.
    Rejected(String),
    Status(AgentStatus),
    /// The daemon could not do it (for example, the disk is full).
    Failed(String),
}

/// Serves the control socket until shutdown.
pub(crate) async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (mut stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let request = match pasopati_common::control::read_request(&mut stream).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("bad control request: {e}");
                    return;
                }
            };
            let response = match request {
                AgentRequest::File(draft) => {
                    let s = shared.clone();
                    match tokio::task::spawn_blocking(move || s.file(draft)).await {
                        Ok(Ok(report)) => AgentResponse::Filed(report.id),
                        Ok(Err(crate::AgentError::Outbox(
                            crate::outbox::OutboxError::Invalid(e),
                        ))) => AgentResponse::Rejected(e.to_string()),
                        Ok(Err(e)) => AgentResponse::Failed(e.to_string()),
                        Err(e) => AgentResponse::Failed(e.to_string()),
                    }
                }
                AgentRequest::Status => match shared.status(true) {
                    Ok(s) => AgentResponse::Status(s),
                    Err(e) => AgentResponse::Failed(e.to_string()),
                },
            };
            if let Err(e) = pasopati_common::control::write_response(&mut stream, &response).await {
                tracing::warn!("control response not delivered: {e}");
            }
        });
    }
}
