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

/// Aborts a task when dropped: a reader spawned for one session ends with the session, on
/// every path out of it.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lowers the calling thread's scheduling priority to `nice` (1–19: the higher, the more it
/// yields). Background work that may lag, such as the collector's analysis of stored reports,
/// calls it so that it takes the cores only when sessions and the dashboard leave them free. A
/// refusal (some sandboxes forbid it) is ignored: the work still runs, at normal priority.
pub fn lower_this_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` and `setpriority` take plain integers, touch no memory of ours, and
        // affect only the calling thread (on Linux, `PRIO_PROCESS` with a thread id names that
        // thread).
        #[allow(unsafe_code)]
        let _ = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Wakes a background thread that waits for work (the collector's analysis placer and its
/// report index feeder): raised by whoever made work, and lowered by the waiter each time it
/// wakes, so raises while it works make one more round, never a backlog of wake-ups.
#[derive(Debug, Default)]
pub struct Wakeup {
    raised: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Wakeup {
    /// Raises it. Cheap and never blocking.
    pub fn raise(&self) {
        if let Ok(mut raised) = self.raised.lock() {
            *raised = true;
            self.wake.notify_one();
        }
    }

    /// Waits until raised or `timeout` passes, and lowers it.
    pub fn wait(&self, timeout: std::time::Duration) {
        let Ok(raised) = self.raised.lock() else {
            return;
        };
        if let Ok((mut raised, _)) = self.wake.wait_timeout_while(raised, timeout, |r| !*r) {
            *raised = false;
        }
    }
}
