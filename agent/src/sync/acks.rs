//! When the sync records an acknowledgement in the outbox. A plain acknowledgement is recorded
//! without an fsync of its own (`Outbox::ack`): losing it costs a resend the collector absorbs,
//! never a report. So while a backlog drains the sync need not take the outbox's write lock for
//! each batch's acknowledgement (a report being filed waits for that lock): it records them a
//! few batches at a time, and at once whenever no other batch is awaited, so an idle agent's
//! outbox always shows what the collector holds (and at once while the outbox refuses reports
//! for its quota, so that space the collector frees is free at once). Acknowledgements still unrecorded when a
//! session ends are recorded then.

use pasopati_common::Seq;
use std::time::Duration;
use tokio::time::Instant;

/// Acknowledgements received but not yet recorded in the outbox.
#[derive(Debug, Default)]
pub(super) struct UnrecordedAcks {
    hwm: Option<Seq>,
    batches: u32,
    since: Option<Instant>,
}

impl UnrecordedAcks {
    /// The most batches' acknowledgements left unrecorded while more are awaited.
    const MAX_BATCHES: u32 = 4;
    /// The longest an acknowledgement is left unrecorded when another arrives.
    const MAX_AGE: Duration = Duration::from_secs(1);

    /// Notes an acknowledgement of everything up to `hwm`, and returns the hwm to record now,
    /// if any: at once when no other batch's answer is awaited (`awaiting_more` false), otherwise once
    /// [`Self::MAX_BATCHES`] batches' acknowledgements are unrecorded or the oldest of them is
    /// [`Self::MAX_AGE`] old.
    pub(super) fn note(&mut self, hwm: Seq, awaiting_more: bool, now: Instant) -> Option<Seq> {
        self.hwm = Some(self.hwm.map_or(hwm, |h| h.max(hwm)));
        self.batches += 1;
        let since = *self.since.get_or_insert(now);
        let due = !awaiting_more
            || self.batches >= Self::MAX_BATCHES
            || now.duration_since(since) >= Self::MAX_AGE;
        if due {
            self.take()
        } else {
            None
        }
    }

    /// The hwm of the acknowledgements not yet recorded, forgetting them: the caller records it
    /// (or an acknowledgement that covers it).
    pub(super) fn take(&mut self) -> Option<Seq> {
        self.batches = 0;
        self.since = None;
        self.hwm.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_recorded_a_few_batches_at_a_time_and_at_once_when_idle() {
        let t0 = Instant::now();
        let mut acks = UnrecordedAcks::default();
        // While more answers are awaited, every fourth batch records the highest hwm.
        assert_eq!(acks.note(10, true, t0), None);
        assert_eq!(acks.note(20, true, t0), None);
        assert_eq!(acks.note(30, true, t0), None);
        assert_eq!(acks.note(40, true, t0), Some(40));
        // The last answer awaited records at once.
        assert_eq!(acks.note(50, true, t0), None);
        assert_eq!(acks.note(60, false, t0), Some(60));
        assert_eq!(acks.take(), None);
        // An acknowledgement a second old is recorded with the next.
        assert_eq!(acks.note(70, true, t0), None);
        assert_eq!(acks.note(80, true, t0 + Duration::from_millis(999)), None);
        assert_eq!(acks.note(90, true, t0 + Duration::from_secs(1)), Some(90));
        // What a session leaves unrecorded is taken once.
        assert_eq!(acks.note(100, true, t0), None);
        assert_eq!(acks.take(), Some(100));
        assert_eq!(acks.take(), None);
        // An hwm never goes back.
        assert_eq!(acks.note(120, true, t0), None);
        assert_eq!(acks.note(110, false, t0), Some(120));
    }
}
