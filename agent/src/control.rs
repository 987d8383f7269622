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
    Status(Box<AgentStatus>),
    /// The daemon could not do it (for example, the disk is full).
    Failed(String),
}

/// Serves the control socket until shutdown.
pub(crate) async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let answer = move |request: AgentRequest, _uid: Option<u32>| {
        vec![match request {
            AgentRequest::File(draft) => match shared.file(draft) {
                Ok(report) => AgentResponse::Filed(report.id),
                Err(crate::AgentError::Outbox(crate::outbox::OutboxError::Invalid(e))) => {
                    AgentResponse::Rejected(e.to_string())
                }
                Err(e @ crate::AgentError::Pii(_)) => AgentResponse::Rejected(e.to_string()),
                Err(e) => AgentResponse::Failed(e.to_string()),
            },
            AgentRequest::Status => match shared.status(true) {
                Ok(s) => AgentResponse::Status(Box::new(s)),
                Err(e) => AgentResponse::Failed(e.to_string()),
            },
        }]
    };
    pasopati_common::control::serve(listener, async move { shutdown.cancelled().await }, answer)
        .await;
}
