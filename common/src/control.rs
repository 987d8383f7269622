//! The local control channel between a daemon and its own CLI: a Unix socket in the data
//! directory, mode 0600, carrying one request frame and one or more response frames per
//! connection.
//!
//! redb lets one process open a database. While a daemon runs, the CLI's subcommands go through
//! this socket; when no daemon answers, the CLI opens the database itself.

use crate::frame::{read_frame, write_frame, FrameError};
use bincode::{Decode, Encode};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};

/// The socket's file name inside a data directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The socket path of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Which daemon a control socket belongs to. Each connection starts with the client's 8-byte
/// channel tag and each answer with the server's, so a CLI pointed at the other program's data
/// directory is told so instead of failing to decode a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Agent,
    Collector,
}

impl Channel {
    fn tag(self) -> &'static [u8; 8] {
        match self {
            Channel::Agent => b"PSPAGNT1",
            Channel::Collector => b"PSPCOLL1",
        }
    }

    fn describe(tag: &[u8; 8]) -> String {
        if tag == Channel::Agent.tag() {
            "a PASOPATI agent".into()
        } else if tag == Channel::Collector.tag() {
            "a PASOPATI collector".into()
        } else {
            "another program (or another version)".into()
        }
    }
}

/// A control-channel failure.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket: {0}")]
    Frame(#[from] FrameError),
    #[error("the daemon closed the control connection without answering")]
    NoAnswer,
    #[error("the control socket answers in another protocol: it belongs to {found}")]
    OtherProtocol { found: String },
}

/// Whether a daemon answers on the control socket of `data_dir` now (a stale socket file of a
/// crashed daemon does not): a second daemon for the same directory must not start.
pub fn daemon_answers(data_dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket_path(data_dir)).is_ok()
}

/// Binds the control socket, replacing a stale one left by a crashed daemon, with mode 0600.
pub fn bind(data_dir: &Path) -> Result<UnixListener, ControlError> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Sends one request to the daemon of `data_dir` and reads every response frame until the daemon
/// closes the connection (long lists come in several frames, each under the frame limit).
/// `Ok(None)` when no daemon is listening (no socket, or a stale one), so the caller may open the
/// database itself.
pub async fn call<Req, Resp>(
    data_dir: &Path,
    channel: Channel,
    request: &Req,
) -> Result<Option<Vec<Resp>>, ControlError>
where
    Req: Encode,
    Resp: Decode<()>,
{
    let path = socket_path(data_dir);
    let mut stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(source) => {
            return Err(ControlError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    };
    // The other program's daemon answers a stranger with its own tag and closes without
    // reading the request, so writing the request may fail (a broken pipe) while that tag waits
    // to be read: read it before judging the write.
    let sent = match stream.write_all(channel.tag()).await {
        Ok(()) => write_frame(&mut stream, request).await,
        Err(e) => Err(e.into()),
    };
    let mut tag = [0u8; 8];
    match stream.read_exact(&mut tag).await {
        Ok(_) => {}
        Err(_) if sent.is_err() => {
            return Err(sent.err().map_or(ControlError::NoAnswer, Into::into))
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ControlError::NoAnswer)
        }
        Err(e) => return Err(io(e)),
    }
    if &tag != channel.tag() {
        return Err(ControlError::OtherProtocol {
            found: Channel::describe(&tag),
        });
    }
    sent?;
    let mut responses = Vec::new();
    while let Some(resp) = read_frame(&mut stream).await? {
        responses.push(resp);
    }
    if responses.is_empty() {
        return Err(ControlError::NoAnswer);
    }
    Ok(Some(responses))
}

/// Serves a control socket until `shutdown` resolves. Each connection carries one request; the
/// `answer` runs on the blocking pool (answers touch the database) with the caller's Unix uid,
/// and its frames are written back in order before the connection is closed.
pub async fn serve<Req, Resp, F>(
    listener: UnixListener,
    channel: Channel,
    shutdown: impl std::future::Future<Output = ()>,
    answer: F,
) where
    Req: Decode<()> + Send + 'static,
    Resp: Encode + Send + Sync + 'static,
    F: Fn(Req, Option<u32>) -> Vec<Resp> + Send + Sync + 'static,
{
    let answer = std::sync::Arc::new(answer);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (mut stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut tag = [0u8; 8];
            if stream.read_exact(&mut tag).await.is_err() {
                return;
            }
            // Say who answers either way: a client of the other program learns so.
            if stream.write_all(channel.tag()).await.is_err() || &tag != channel.tag() {
                tracing::warn!(
                    "a control request from {} was refused (wrong socket for it)",
                    Channel::describe(&tag)
                );
                return;
            }
            let request: Req = match read_frame(&mut stream).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("bad control request: {e}");
                    return;
                }
            };
            let uid = stream.peer_cred().ok().map(|c| c.uid());
            // A person waits for the answer (a report being filed): in place, not handed to
            // another thread and back.
            let responses =
                match crate::task::run_blocking_in_place("a control request", move || {
                    answer(request, uid)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("control request failed: {e}");
                        return;
                    }
                };
            for response in responses {
                if let Err(e) = write_frame(&mut stream, &response).await {
                    tracing::warn!("control response not delivered: {e}");
                    return;
                }
            }
        });
    }
}

/// Resolves on SIGTERM or Ctrl-C: the daemons' signal to stop cleanly.
pub async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping");
}
