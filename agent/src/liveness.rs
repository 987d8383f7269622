//! Whether the collector is still there while the agent waits for its reply.
//!
//! A collector that dies without closing its connection (SIGKILL, a power cut, a frozen
//! machine) sends nothing more, and QUIC's idle timeout would take 30 s to say so. While a
//! reply is awaited, the agent instead watches the packets its connection receives: the
//! collector's QUIC stack acknowledges everything the agent sends within a round trip, even
//! while its application is busy committing. When nothing has arrived for half the limit, the
//! agent sends one ping (a QUIC datagram, which the collector acknowledges and never reads);
//! when nothing has arrived for the whole limit, the collector is taken for gone and the agent
//! moves on (to the next collector address, with the usual backoff). A collector that answers
//! packets but never replies is still caught by the sync loop's longer acknowledgement timeout.
//!
//! This is the pure rule; `sync.rs` feeds it quinn's counters on a timer.

use std::time::Duration;
use tokio::time::Instant;

/// The shortest silence taken for a dead collector. A link's round trip stretches it (see
/// [`Liveness::limit`]).
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// How many round trips of silence a slow link is allowed, when that is longer than
/// [`SILENCE_LIMIT`].
const ROUND_TRIPS: u32 = 8;

/// What the sync loop should do after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing: the collector answered recently, or no reply is awaited.
    Alive,
    /// Send one ping, so that a live collector has something to acknowledge.
    Ping,
    /// Nothing has arrived for this long while a reply was awaited: give up the connection.
    Silent(Duration),
}

/// The silence watch of one connection.
#[derive(Debug)]
pub(crate) struct Liveness {
    received: u64,
    quiet_since: Instant,
    pinged: bool,
}

impl Liveness {
    pub(crate) fn new(now: Instant, received: u64) -> Liveness {
        Liveness {
            received,
            quiet_since: now,
            pinged: false,
        }
    }

    /// How much silence means the collector is gone, on a link with this round trip.
    pub(crate) fn limit(rtt: Duration) -> Duration {
        SILENCE_LIMIT.max(rtt.saturating_mul(ROUND_TRIPS))
    }

    /// Takes the connection's count of received datagrams at `now`. Silence is counted only
    /// while a reply is awaited: an idle session owes the agent nothing.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        received: u64,
        awaiting_reply: bool,
        rtt: Duration,
    ) -> Verdict {
        if received != self.received || !awaiting_reply {
            self.received = received;
            self.quiet_since = now;
            self.pinged = false;
            return Verdict::Alive;
        }
        let quiet = now.saturating_duration_since(self.quiet_since);
        let limit = Liveness::limit(rtt);
        if quiet >= limit {
            Verdict::Silent(quiet)
        } else if quiet >= limit / 2 && !self.pinged {
            self.pinged = true;
            Verdict::Ping
        } else {
            Verdict::Alive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(40);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_silent_collector_is_pinged_once_then_given_up() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 10);
        assert_eq!(l.observe(at(t0, 1_000), 10, true, RTT), Verdict::Alive);
        assert_eq!(l.observe(at(t0, 2_500), 10, true, RTT), Verdict::Ping);
        assert_eq!(l.observe(at(t0, 3_000), 10, true, RTT), Verdict::Alive);
        assert_eq!(l.observe(at(t0, 4_999), 10, true, RTT), Verdict::Alive);
        assert_eq!(
            l.observe(at(t0, 5_000), 10, true, RTT),
            Verdict::Silent(Duration::from_secs(5))
        );
    }

    #[test]
    fn any_packet_from_the_collector_restarts_the_watch() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 10);
        assert_eq!(l.observe(at(t0, 2_600), 10, true, RTT), Verdict::Ping);
        // The ping's acknowledgement arrives: the collector lives, however long its reply takes.
        assert_eq!(l.observe(at(t0, 2_700), 11, true, RTT), Verdict::Alive);
        assert_eq!(l.observe(at(t0, 5_000), 11, true, RTT), Verdict::Alive);
        // Quiet again: pinged again, half the limit after the last packet.
        assert_eq!(l.observe(at(t0, 5_200), 11, true, RTT), Verdict::Ping);
        assert_eq!(l.observe(at(t0, 7_000), 11, true, RTT), Verdict::Alive);
        assert_eq!(
            l.observe(at(t0, 7_700), 11, true, RTT),
            Verdict::Silent(Duration::from_secs(5))
        );
    }

    #[test]
    fn an_idle_session_owes_nothing() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 10);
        for s in 1..60 {
            assert_eq!(l.observe(at(t0, s * 1_000), 10, false, RTT), Verdict::Alive);
        }
        // The watch starts when a reply is first awaited, not when the session went quiet.
        assert_eq!(l.observe(at(t0, 61_000), 10, true, RTT), Verdict::Alive);
        assert_eq!(l.observe(at(t0, 63_600), 10, true, RTT), Verdict::Ping);
    }

    #[test]
    fn a_long_round_trip_allows_a_longer_silence() {
        let satellite = Duration::from_millis(900);
        assert_eq!(Liveness::limit(satellite), Duration::from_millis(7_200));
        assert_eq!(Liveness::limit(RTT), SILENCE_LIMIT);
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 0);
        assert_eq!(l.observe(at(t0, 5_000), 0, true, satellite), Verdict::Ping);
        assert_eq!(l.observe(at(t0, 7_000), 0, true, satellite), Verdict::Alive);
        assert!(matches!(
            l.observe(at(t0, 7_200), 0, true, satellite),
            Verdict::Silent(_)
        ));
    }
}
