//! The agent's side of the local control channel: `report` (file, edit, retract) and `status`.
//! The same [`answer`] runs inside the daemon and, when no daemon runs, in the CLI process on the
//! outbox it opens itself, so both paths apply the same checks (PII guard, quota, validation).

use crate::{AgentError, AgentStatus, Shared};
use bincode::{Decode, Encode};
use pasopati_common::{ReportDraft, ReportId, Revision};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// A request from the CLI.
#[derive(Clone, Debug, Encode, Decode)]
pub enum AgentRequest {
    File(ReportDraft),
    /// File the next revision of a report (an edit or a retraction).
    Revise {
        id: ReportId,
        changes: Revision,
    },
    Status,
}

/// The answer.
#[derive(Debug, Encode, Decode)]
pub enum AgentResponse {
    /// The report (or its new revision) is durable in the outbox.
    Filed {
        id: ReportId,
        revision: u32,
    },
    /// The report was not accepted; the message names the field at fault.
    Rejected(String),
    Status(Box<AgentStatus>),
    /// It could not be done (for example, the disk is full).
    Failed(String),
}

/// Answers one request on `shared`.
pub(crate) fn answer(
    shared: &Shared,
    request: AgentRequest,
    daemon_running: bool,
) -> AgentResponse {
    let filed = |result: Result<pasopati_common::Report, AgentError>| match result {
        Ok(report) => AgentResponse::Filed {
            id: report.id,
            revision: report.revision,
        },
        Err(AgentError::Outbox(crate::outbox::OutboxError::Invalid(e))) => {
            AgentResponse::Rejected(e.to_string())
        }
        Err(e @ (AgentError::Pii(_) | AgentError::UnknownReport(_))) => {
            AgentResponse::Rejected(e.to_string())
        }
        Err(e) => AgentResponse::Failed(e.to_string()),
    };
    match request {
        AgentRequest::File(draft) => filed(shared.file(draft)),
        AgentRequest::Revise { id, changes } => filed(shared.revise(id, changes)),
        AgentRequest::Status => match shared.status(daemon_running) {
            Ok(s) => AgentResponse::Status(Box::new(s)),
            Err(e) => AgentResponse::Failed(e.to_string()),
        },
    }
}

/// Serves the control socket until shutdown.
pub(crate) async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let answer =
        move |request: AgentRequest, _uid: Option<u32>| vec![answer(&shared, request, true)];
    pasopati_common::control::serve(listener, async move { shutdown.cancelled().await }, answer)
        .await;
}
