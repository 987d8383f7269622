//! Blocking work (redb transactions, file reads) run off the daemons' async threads.

/// Blocking work that never finished: it panicked, or the runtime cancelled it while stopping.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct TaskFailed {
    /// What the work was, as the operator reads it (`admin task`).
    pub what: &'static str,
    #[source]
    pub source: WorkLost,
}

/// Why blocking work did not return.
#[derive(Debug, thiserror::Error)]
pub enum WorkLost {
    /// It ran on the blocking threads and panicked there, or the runtime stopped first.
    #[error(transparent)]
    Pool(#[from] tokio::task::JoinError),
    /// It ran on the caller's thread and panicked; the message is the panic's.
    #[error("it stopped with an internal error: {0}")]
    Panicked(String),
}

/// Runs `work` on the blocking threads and returns its result, or [`TaskFailed`] naming `what`.
pub async fn run_blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TaskFailed> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| TaskFailed {
            what,
            source: source.into(),
        })
}

/// Runs `work`, which a person is waiting for (a report's durable commit), on the calling
/// thread where the runtime allows it, and returns its result, or [`TaskFailed`] naming `what`.
///
/// On a multi-threaded runtime the worker thread blocks in place and hands its other tasks to
/// another thread, so the work starts at once and the caller goes on when it returns. Sent to
/// the blocking threads instead, it would take two hand-offs, each of which may wait a
/// scheduler tick for a core while a drain keeps the site's cores busy: `bench-sync` measured
/// filing's p99 during a drain at 4.5–5.0 ms that way and 3.6–3.9 ms in place. On a
/// current-thread runtime (which cannot block in place) it goes to the blocking threads.
pub async fn run_blocking_in_place<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TaskFailed> {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !multi_threaded {
        return run_blocking(what, work).await;
    }
    tokio::task::block_in_place(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)))
        .map_err(|panic| TaskFailed {
            what,
            source: WorkLost::Panicked(
                panic_text(panic.as_ref()).unwrap_or_else(|| "a panic without a message".into()),
            ),
        })
}

/// The text a caught panic carried, if it was text.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> Option<String> {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
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
/// calls it so that it takes the cores only when sessions and the dashboard leave them free. It
/// only ever lowers: a thread already at `nice` or below (a daemon started at nice 15, or a
/// thread spawned by one at nice 19) keeps its place, even where the process could raise it
/// (as root). A refusal (some sandboxes forbid it) is ignored: the work still runs, at normal
/// priority.
pub fn lower_this_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid`, `getpriority` and `setpriority` take plain integers, touch no
        // memory of ours, and affect only the calling thread (on Linux, `PRIO_PROCESS` with a
        // thread id names that thread). `getpriority` may return -1 as a value, so errno is
        // cleared before and read after.
        #[allow(unsafe_code)]
        let _ = unsafe {
            let tid = libc::gettid() as libc::id_t;
            *libc::__errno_location() = 0;
            let current = libc::getpriority(libc::PRIO_PROCESS, tid);
            let known = !(current == -1 && *libc::__errno_location() != 0);
            if known && current >= nice {
                0
            } else {
                libc::setpriority(libc::PRIO_PROCESS, tid, nice)
            }
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Wakes a background thread that waits for work (the collector's analysis placer and its
/// report index feeder): raised by whoever made work, and lowered by the waiter each time it
/// wakes, so raises while it works make one more round, never a backlog of wake-ups. It also
/// remembers when it was last raised, so that a [`Pacer`] can tell whether work keeps arriving.
#[derive(Debug, Default)]
pub struct Wakeup {
    state: std::sync::Mutex<Raised>,
    wake: std::sync::Condvar,
}

/// A [`Wakeup`]'s state: whether it is raised, and when it last was.
#[derive(Debug, Default)]
struct Raised {
    now: bool,
    last: Option<std::time::Instant>,
}

impl Wakeup {
    /// Raises it. Cheap and never blocking.
    pub fn raise(&self) {
        let at = std::time::Instant::now();
        if let Ok(mut state) = self.state.lock() {
            state.now = true;
            state.last = Some(at);
            self.wake.notify_one();
        }
    }

    /// Waits until raised or `timeout` passes, and lowers it.
    pub fn wait(&self, timeout: std::time::Duration) {
        let Ok(state) = self.state.lock() else {
            return;
        };
        if let Ok((mut state, _)) = self.wake.wait_timeout_while(state, timeout, |s| !s.now) {
            state.now = false;
        }
    }

    /// Whether it was raised within the last `window`, lowered since or not.
    pub fn raised_within(&self, window: std::time::Duration) -> bool {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.last)
            .is_some_and(|last| last.elapsed() < window)
    }
}

/// Keeps a background loop to a share of the time while the work it follows keeps arriving.
///
/// A low scheduling priority alone does not keep the collector's analysis from slowing a
/// backlog drain: on two cores, the placer and the report index, at nice 10, took 0.85 of a
/// core while 200,000 reports drained and the drain went 30 % slower than without them
/// (TESTING.md, "What a drain shares its cores with"). Paced, they work a page, then pause
/// `1 / share - 1` times as long (at most [`Pacer::LONGEST_PAUSE`]), as long as their
/// [`Wakeup`] was raised within [`Pacer::ARRIVING`]. The share is of wall time, so a page slowed
/// by a busy machine counts in full: a loop gets at most its share of a core, often less. Once
/// arrivals stop, they run flat out and catch up; and a spell of arrivals that lasts long
/// enough for the pauses to add up to [`Pacer::MOST_PAUSED`] (by default) ends the pausing until the
/// arrivals stop, so the lag pacing adds stays bounded however long a drain lasts. The lag
/// this costs is the analysis's, never a report's durability or its acknowledgement.
#[derive(Debug)]
pub struct Pacer<'a> {
    arrivals: &'a Wakeup,
    share: f64,
    resumed: std::cell::Cell<std::time::Instant>,
    /// The pauses of the current spell of arrivals, added up, and the most they may add up to.
    paused: std::cell::Cell<std::time::Duration>,
    most_paused: std::time::Duration,
}

impl<'a> Pacer<'a> {
    /// How recently its wakeup must have been raised for work to count as still arriving (the
    /// collector raises it at each commit, every few milliseconds during a drain).
    pub const ARRIVING: std::time::Duration = std::time::Duration::from_millis(500);

    /// The longest single pause, so that a stop is noticed soon after a long page.
    pub const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

    /// The most a loop pauses in one spell of arrivals; after that it runs flat out until the
    /// arrivals stop.
    pub const MOST_PAUSED: std::time::Duration = std::time::Duration::from_secs(30);

    /// A pacer that keeps its loop to `share` (0–1] of the time while `arrivals` keeps being
    /// raised.
    pub fn new(arrivals: &'a Wakeup, share: f64) -> Pacer<'a> {
        Pacer {
            arrivals,
            share,
            resumed: std::cell::Cell::new(std::time::Instant::now()),
            paused: std::cell::Cell::new(std::time::Duration::ZERO),
            most_paused: Self::MOST_PAUSED,
        }
    }

    /// The same pacer with another bound on the pauses of one spell of arrivals.
    pub fn pausing_at_most(mut self, most_paused: std::time::Duration) -> Pacer<'a> {
        self.most_paused = most_paused;
        self
    }

    /// Marks the start of a round of work (after a wait for the wakeup, which is not work).
    pub fn resume(&self) {
        self.resumed.set(std::time::Instant::now());
    }

    /// Called between two pages of work: pauses, if work is still arriving, for as long as the
    /// share asks after the work done since the last call or [`Pacer::resume`]. Returns the
    /// pause.
    pub fn between_pages(&self) -> std::time::Duration {
        let worked = self.resumed.get().elapsed();
        let pause = if self.arrivals.raised_within(Self::ARRIVING) {
            let left = self.most_paused.saturating_sub(self.paused.get());
            pause_after(worked, self.share).min(left)
        } else {
            // The spell is over: the next one may pause again.
            self.paused.set(std::time::Duration::ZERO);
            std::time::Duration::ZERO
        };
        if !pause.is_zero() {
            std::thread::sleep(pause);
            self.paused.set(self.paused.get() + pause);
        }
        self.resume();
        pause
    }

    /// Between two pages of a loop that `stopped` may end: whether to stop. A stop is answered
    /// at once, without a pause first; otherwise it pauses ([`Pacer::between_pages`]) and asks
    /// again.
    pub fn stop_or_pause(&self, stopped: impl Fn() -> bool) -> bool {
        stopped() || {
            self.between_pages();
            stopped()
        }
    }
}

/// The pause after `worked` that keeps a loop to `share` of the time: `worked × (1/share − 1)`,
/// at most [`Pacer::LONGEST_PAUSE`]; none for a share of 1 or more (or not a number).
fn pause_after(worked: std::time::Duration, share: f64) -> std::time::Duration {
    if !(share > 0.0 && share < 1.0) {
        return std::time::Duration::ZERO;
    }
    // A tiny share makes a factor too large for a `Duration`: that is the longest pause too.
    std::time::Duration::try_from_secs_f64(worked.as_secs_f64() * (1.0 / share - 1.0))
        .map_or(Pacer::LONGEST_PAUSE, |d| d.min(Pacer::LONGEST_PAUSE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_a_person_waits_for_runs_on_the_calling_thread_of_a_multi_threaded_runtime() {
        let caller = std::thread::current().id();
        let ran_on = run_blocking_in_place("a test", || std::thread::current().id())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ran_on, caller);
        // Its panic is an error naming the work, and the worker carries on.
        let failed = run_blocking_in_place("filing a test report", || -> u8 {
            panic!("invented failure")
        })
        .await;
        let message = failed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("filing a test report"), "{message}");
        assert!(message.contains("invented failure"), "{message}");
        assert_eq!(run_blocking_in_place("again", || 7).await.ok(), Some(7));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_sends_it_to_the_blocking_threads() {
        let caller = std::thread::current().id();
        let ran_on = run_blocking_in_place("a test", || std::thread::current().id())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(ran_on, caller);
    }

    #[cfg(target_os = "linux")]
    fn this_thread_nice() -> i32 {
        // SAFETY: plain integers in and out, about the calling thread only.
        #[allow(unsafe_code)]
        unsafe {
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lowering_a_priority_never_raises_it() {
        std::thread::spawn(|| {
            let start = this_thread_nice();
            if start > 17 {
                // Already yielding about as far as it can go: nothing to lower here.
                return;
            }
            lower_this_thread_priority(start + 2);
            if this_thread_nice() == start {
                // This sandbox refuses any change of priority: nothing to check.
                return;
            }
            assert_eq!(this_thread_nice(), start + 2);
            // Asked for less yielding than it already does: it stays, even as root.
            lower_this_thread_priority(start + 1);
            assert_eq!(this_thread_nice(), start + 2);
            lower_this_thread_priority(19);
            assert_eq!(this_thread_nice(), 19);
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }

    #[test]
    fn a_pause_keeps_the_work_to_its_share() {
        let ms = Duration::from_millis;
        assert_eq!(pause_after(ms(10), 0.1), ms(90));
        assert_eq!(pause_after(ms(10), 0.5), ms(10));
        // Long pages pause at most so long, and a whole core (or nonsense) never pauses.
        assert_eq!(pause_after(ms(100), 0.1), Pacer::LONGEST_PAUSE);
        assert_eq!(pause_after(ms(10), 1.0), Duration::ZERO);
        assert_eq!(pause_after(ms(10), 0.0), Duration::ZERO);
        assert_eq!(pause_after(ms(10), f64::NAN), Duration::ZERO);
        assert_eq!(pause_after(ms(10), 1e-300), Pacer::LONGEST_PAUSE);
    }

    #[test]
    fn a_pacer_pauses_only_while_work_keeps_arriving() {
        let arrivals = Wakeup::default();
        let pacer = Pacer::new(&arrivals, 0.25);
        // Never raised: nothing arrives, no pause however long the page.
        std::thread::sleep(Duration::from_millis(4));
        assert_eq!(pacer.between_pages(), Duration::ZERO);

        // Raised just now: a page of at least 4 ms pauses at least three times as long.
        arrivals.raise();
        pacer.resume();
        std::thread::sleep(Duration::from_millis(4));
        let pause = pacer.between_pages();
        assert!(pause >= Duration::from_millis(12), "{pause:?}");
        assert!(pause <= Pacer::LONGEST_PAUSE, "{pause:?}");

        // Waiting lowers the wakeup but keeps when it was raised.
        arrivals.wait(Duration::ZERO);
        assert!(arrivals.raised_within(Pacer::ARRIVING));
        assert!(!arrivals.raised_within(Duration::ZERO));
    }

    #[test]
    fn a_long_spell_of_arrivals_stops_the_pausing_until_it_ends() {
        let arrivals = Wakeup::default();
        let most = Duration::from_millis(10);
        let pacer = Pacer::new(&arrivals, 0.5).pausing_at_most(most);
        arrivals.raise();
        let mut pauses = Vec::new();
        for _ in 0..3 {
            pacer.resume();
            std::thread::sleep(Duration::from_millis(8));
            pauses.push(pacer.between_pages());
        }
        // Pages of 8 ms or more at half the time would pause 24 ms or more; the spell allows 10.
        assert_eq!(pauses.iter().sum::<Duration>(), most, "{pauses:?}");
        assert_eq!(pauses[2], Duration::ZERO);

        // Once the arrivals stop, a new spell may pause again.
        std::thread::sleep(Pacer::ARRIVING);
        assert_eq!(pacer.between_pages(), Duration::ZERO);
        arrivals.raise();
        pacer.resume();
        std::thread::sleep(Duration::from_millis(4));
        assert!(pacer.between_pages() >= Duration::from_millis(4));
    }

    #[test]
    fn a_stop_is_answered_without_a_pause() {
        let arrivals = Wakeup::default();
        let pacer = Pacer::new(&arrivals, 0.01);
        arrivals.raise();
        pacer.resume();
        std::thread::sleep(Duration::from_millis(50));
        // Work arriving and a long page: only a stop saves the full pause.
        let asked = std::time::Instant::now();
        assert!(pacer.stop_or_pause(|| true));
        assert!(
            asked.elapsed() < Pacer::LONGEST_PAUSE,
            "{:?}",
            asked.elapsed()
        );
        assert!(!pacer.stop_or_pause(|| false));
        assert!(
            asked.elapsed() >= Pacer::LONGEST_PAUSE,
            "{:?}",
            asked.elapsed()
        );
    }
}
