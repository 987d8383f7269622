//! Blocking work (redb transactions, file reads) run off the daemons' async threads.

/// Blocking work that never finished: it panicked, or the runtime cancelled it while stopping.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct TaskFailed {
    /// What the work was, as the operator reads it (`admin task`).
    pub what: &'static str,
    #[source]
    pub source: tokio::task::JoinError,
}

/// Runs `work` on the blocking threads and returns its result, or [`TaskFailed`] naming `what`.
pub async fn run_blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TaskFailed> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| TaskFailed { what, source })
}
