//! Fault injection for the test harness, off unless its environment variables are set.
//!
//! * `PASOPATI_FAILPOINTS=name=N[,name=N...]`: the N-th time the process passes failpoint
//!   `name`, it kills itself with SIGKILL, as a power cut at exactly that point would. Names:
//!   `collector.after_commit` (batch stored, ack not sent), `agent.after_ack` (ack received, not
//!   yet recorded in the outbox), `agent.after_stage` (seqs given, batch not sent),
//!   `collector.migrate_after_chunk` (`store migrate` wrote a chunk, the next not begun),
//!   `collector.notify_after_send` (a channel took a notification, the outbox not yet told).
//! * `PASOPATI_CLOCK_OFFSET_MS=±N`: shifts this process's wall clock (as [`crate::Timestamp::now`]
//!   reads it) by N milliseconds, to test skewed site clocks.
//!
//! Both are read once, and only in builds with the `failpoints` feature (the tests crate turns
//! it on); release builds and the packages are built without it, so there both are inert
//! whatever the environment says.

#[cfg(feature = "failpoints")]
use std::collections::HashMap;
#[cfg(feature = "failpoints")]
use std::sync::{Mutex, OnceLock};

#[cfg(feature = "failpoints")]
fn plan() -> &'static Mutex<HashMap<String, u64>> {
    static PLAN: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let mut plan = HashMap::new();
        if let Ok(spec) = std::env::var("PASOPATI_FAILPOINTS") {
            for item in spec.split(',') {
                if let Some((name, n)) = item.split_once('=') {
                    if let Ok(n) = n.trim().parse::<u64>() {
                        plan.insert(name.trim().to_owned(), n);
                    }
                }
            }
        }
        Mutex::new(plan)
    })
}

/// Passes failpoint `name`; does nothing without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
pub fn failpoint(_name: &str) {}

/// Passes failpoint `name`; kills the process if its planned hit has come.
#[cfg(feature = "failpoints")]
pub fn failpoint(name: &str) {
    let fire = match plan().lock() {
        Ok(mut plan) => match plan.get_mut(name) {
            Some(left) if *left <= 1 => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        },
        Err(_) => false,
    };
    if fire {
        eprintln!("failpoint {name}: killing this process (SIGKILL)");
        // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// The clock offset in milliseconds: always 0 without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
pub fn clock_offset_ms() -> i64 {
    0
}

/// The clock offset in milliseconds (0 unless injected).
#[cfg(feature = "failpoints")]
pub fn clock_offset_ms() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("PASOPATI_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}
