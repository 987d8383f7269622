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
    /// File a report with the attachments uploaded before it.
    File {
        draft: ReportDraft,
        uploads: Vec<Upload>,
    },
    /// A piece of a file to attach, appended to upload `id` at `offset` (0 starts it).
    /// Attachments travel in pieces because one control frame holds at most 4 MiB.
    UploadPiece {
        id: [u8; 16],
        offset: u64,
        data: Vec<u8>,
    },
    /// File the next revision of a report (an edit or a retraction).
    Revise {
        id: ReportId,
        changes: Revision,
    },
    Status,
}

/// A finished upload and the file name staff gave it.
#[derive(Clone, Debug, Encode, Decode)]
pub struct Upload {
    pub id: [u8; 16],
    pub name: String,
}

/// The answer.
#[derive(Debug, Encode, Decode)]
pub enum AgentResponse {
    /// The upload holds this many bytes.
    Uploaded {
        received: u64,
    },
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
        Err(
            e @ (AgentError::Pii(_)
            | AgentError::UnknownReport(_)
            | AgentError::Attachment(crate::attachments::BlobError::Invalid(_))),
        ) => AgentResponse::Rejected(e.to_string()),
        Err(e) => AgentResponse::Failed(e.to_string()),
    };
    match request {
        AgentRequest::File { draft, uploads } => {
            let result = shared.file_with_uploads(draft, &uploads);
            for upload in &uploads {
                shared.blobs.discard_upload(&upload.id);
            }
            filed(result)
        }
        AgentRequest::UploadPiece { id, offset, data } => {
            match shared.blobs.append_upload(&id, offset, &data) {
                Ok(received) => AgentResponse::Uploaded { received },
                Err(e) => AgentResponse::Failed(e.to_string()),
            }
        }
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
    pasopati_common::control::serve(
        listener,
        pasopati_common::control::Channel::Agent,
        shutdown.cancelled_owned(),
        answer,
    )
    .await;
}
