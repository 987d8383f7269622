//! The sync protocol as two pure state machines, one per side, with no I/O: [`AgentSession`]
//! and [`CollectorSession`] (the per-report rules of a batch are in [`crate::ingest`]).
//!
//! The agent's outbox gives every report a dense seq within its epoch when the report is put in
//! line for sending; the collector keeps, per (site, epoch), a high-water mark (`hwm`): every seq
//! up to it is durably stored. The rules that make delivery exactly-once live here:
//!
//! * a batch must start at or below `hwm + 1`; one that starts above it skips seqs and is refused
//!   (a gap is never filled by guessing);
//! * the part of a batch at or below `hwm` is a replay: absorbed if its content hashes match,
//!   refused as a conflict if not;
//! * the collector acks only after its commit, and the agent deletes only what was acked;
//! * `Hello` tells the collector what the agent still holds, including recently acknowledged
//!   reports it retains: a collector restored from an older copy welcomes the agent with its
//!   older hwm and the agent resends from there; only what no agent holds any more is recorded as
//!   a gap, instead of being waited for forever.

use crate::frame::{CollectorFrame, Hello, Limits, NackReason, Refusal, RefusalCode, Welcome};
use crate::{Epoch, Seq, Timestamp};
use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// A peer broke the protocol; the session must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("the collector acknowledged seq {hwm} but only {sent} were sent")]
    AckBeyondSent { hwm: Seq, sent: Seq },
    #[error("the collector's high-water mark went back from {was} to {now}")]
    AckWentBack { was: Seq, now: Seq },
    #[error(
        "the collector answered a later batch (up to seq {hwm}) before the batch ending at seq \
         {oldest}, whose answer may name refused reports; reconnecting to hear it (a collector \
         answers in order: if this repeats, the collector needs an update)"
    )]
    AnswerOutOfOrder { oldest: Seq, hwm: Seq },
    #[error(
        "the collector already holds seq {hwm} of epoch {epoch}, but this outbox has only reached \
         {next_seq_minus_one}: the outbox was restored from an older copy; a new epoch is needed"
    )]
    EpochBehindCollector {
        epoch: Epoch,
        hwm: Seq,
        next_seq_minus_one: Seq,
    },
    #[error("batch {first}..={last} does not follow the last one sent ({sent})")]
    NotContiguous { first: Seq, last: Seq, sent: Seq },
    #[error("the collector refused the session: {}", .0.message)]
    Refused(Refusal),
}

/// What the agent's I/O layer must do after a frame from the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// Everything up to `hwm` is stored centrally: delete it from the outbox.
    Acked { hwm: Seq },
    /// Nothing new is stored; carry on.
    Nothing,
    /// The last batch was refused. Everything up to `hwm` is stored. End the session and try
    /// again after a backoff; the refusal is logged with its reason.
    Refused { hwm: Seq, reason: NackReason },
    /// The renewed certificate arrived: store it with the new key, then reconnect with it.
    Renewed { cert_der: Vec<u8> },
    /// The renewal was refused; keep the current certificate and try again later.
    RenewalRefused { message: String },
    /// The collector holds the first `received` bytes of the attachment `hash` (all of it when
    /// `received` is its size).
    ChunkAcked { hash: [u8; 32], received: u64 },
    /// The collector will never take this attachment: drop it, logging the reason.
    AttachmentRefused { hash: [u8; 32], reason: String },
    /// What the center wants of the agent now (the answer to a `Status`).
    Directives(crate::fleet::Directives),
    /// Part of a release the agent fetched (empty: nothing more, or no longer offered).
    ReleasePart {
        sha256: [u8; 32],
        offset: u64,
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentState {
    AwaitWelcome,
    Streaming,
}

/// The agent's side of one session.
#[derive(Debug, Clone)]
pub struct AgentSession {
    state: AgentState,
    epoch: Epoch,
    next_seq: Seq,
    acked: Seq,
    sent: Seq,
    in_flight: VecDeque<Seq>,
    limits: Limits,
    renewing: bool,
    /// The attachment whose chunk awaits its `ChunkAck`.
    chunk_outstanding: Option<[u8; 32]>,
    /// `Status` frames sent whose `Directives` have not arrived (protocol 2).
    statuses_outstanding: u32,
    /// The release whose `Fetch` awaits its `ReleasePart` (protocol 2).
    fetch_outstanding: Option<[u8; 32]>,
}

impl AgentSession {
    /// Starts a session for an outbox whose everything up to `acked` was acknowledged, which
    /// can still resend from `oldest_retained`, and which has given out seqs below `next_seq`.
    /// Returns the `Hello` to send.
    pub fn start(
        epoch: Epoch,
        acked: Seq,
        oldest_retained: Seq,
        next_seq: Seq,
        now: Timestamp,
    ) -> (AgentSession, Hello) {
        let hello = Hello {
            proto: crate::PROTOCOL_VERSION,
            epoch,
            oldest_unacked: acked + 1,
            oldest_retained: oldest_retained.clamp(1, acked + 1),
            next_seq,
            agent_version: crate::version().to_owned(),
            agent_time: now,
        };
        let session = AgentSession {
            state: AgentState::AwaitWelcome,
            epoch,
            next_seq,
            acked,
            sent: acked,
            in_flight: VecDeque::new(),
            limits: Limits::default(),
            renewing: false,
            chunk_outstanding: None,
            statuses_outstanding: 0,
            fetch_outstanding: None,
        };
        (session, hello)
    }

    /// Feeds one frame from the collector.
    pub fn handle(&mut self, frame: CollectorFrame) -> Result<AgentEvent, ProtocolError> {
        match (self.state, frame) {
            (AgentState::AwaitWelcome, CollectorFrame::Welcome(Welcome { hwm, limits, .. })) => {
                if hwm >= self.next_seq {
                    return Err(ProtocolError::EpochBehindCollector {
                        epoch: self.epoch,
                        hwm,
                        next_seq_minus_one: self.next_seq.saturating_sub(1),
                    });
                }
                self.state = AgentState::Streaming;
                self.limits = limits;
                if hwm < self.acked {
                    // The collector lost what it had acknowledged (restored from an older copy)
                    // and asks for it again: resend from its hwm, from the retained reports.
                    self.acked = hwm;
                    self.sent = hwm;
                    return Ok(AgentEvent::Nothing);
                }
                self.sent = hwm;
                Ok(self.advance(hwm))
            }
            (AgentState::Streaming, CollectorFrame::Ack { hwm }) => {
                if hwm > self.sent {
                    return Err(ProtocolError::AckBeyondSent {
                        hwm,
                        sent: self.sent,
                    });
                }
                if hwm < self.acked {
                    return Err(ProtocolError::AckWentBack {
                        was: self.acked,
                        now: hwm,
                    });
                }
                self.answers_oldest_batch(hwm)?;
                Ok(self.advance(hwm))
            }
            (AgentState::Streaming, CollectorFrame::Nack { hwm, reason }) => {
                if hwm > self.sent {
                    return Err(ProtocolError::AckBeyondSent {
                        hwm,
                        sent: self.sent,
                    });
                }
                self.answers_oldest_batch(hwm)?;
                let hwm = hwm.max(self.acked);
                self.advance(hwm);
                Ok(AgentEvent::Refused { hwm, reason })
            }
            (AgentState::Streaming, CollectorFrame::Renewed { cert_der }) if self.renewing => {
                self.renewing = false;
                Ok(AgentEvent::Renewed { cert_der })
            }
            (AgentState::Streaming, CollectorFrame::RenewalRefused { message })
                if self.renewing =>
            {
                self.renewing = false;
                Ok(AgentEvent::RenewalRefused { message })
            }
            (AgentState::Streaming, CollectorFrame::ChunkAck { hash, received })
                if self.chunk_outstanding == Some(hash) =>
            {
                self.chunk_outstanding = None;
                Ok(AgentEvent::ChunkAcked { hash, received })
            }
            (AgentState::Streaming, CollectorFrame::AttachmentRefused { hash, reason })
                if self.chunk_outstanding == Some(hash) =>
            {
                self.chunk_outstanding = None;
                Ok(AgentEvent::AttachmentRefused { hash, reason })
            }
            (AgentState::Streaming, CollectorFrame::Directives(directives))
                if self.statuses_outstanding > 0 =>
            {
                self.statuses_outstanding -= 1;
                Ok(AgentEvent::Directives(directives))
            }
            (
                AgentState::Streaming,
                CollectorFrame::ReleasePart {
                    sha256,
                    offset,
                    data,
                },
            ) if self.fetch_outstanding == Some(sha256) => {
                self.fetch_outstanding = None;
                Ok(AgentEvent::ReleasePart {
                    sha256,
                    offset,
                    data,
                })
            }
            (_, CollectorFrame::Refused(refusal)) => Err(ProtocolError::Refused(refusal)),
            (AgentState::AwaitWelcome, other) => Err(ProtocolError::Unexpected {
                expected: "Welcome",
                got: collector_frame_name(&other),
            }),
            (AgentState::Streaming, other) => Err(ProtocolError::Unexpected {
                expected: "Ack or Nack",
                got: collector_frame_name(&other),
            }),
        }
    }

    /// Checks that an answer reaching `hwm` answers the oldest batch in flight. The collector
    /// answers batches in order, each reaching no further than its own last seq, so an answer
    /// beyond that answers a later batch: the oldest one's answer went missing, and with it
    /// perhaps the verdicts on its reports, which a cumulative acknowledgement would pass over
    /// unheard. Ending the session instead leaves the acknowledged seq where it was; the next
    /// `Welcome` stops below the first verdict not heard, and the answer to the batch sent
    /// again names it.
    fn answers_oldest_batch(&self, hwm: Seq) -> Result<(), ProtocolError> {
        match self.in_flight.front() {
            Some(&oldest) if hwm > oldest => Err(ProtocolError::AnswerOutOfOrder { oldest, hwm }),
            _ => Ok(()),
        }
    }

    fn advance(&mut self, hwm: Seq) -> AgentEvent {
        while self.in_flight.front().is_some_and(|&last| last <= hwm) {
            self.in_flight.pop_front();
        }
        if hwm > self.acked {
            self.acked = hwm;
            AgentEvent::Acked { hwm }
        } else {
            AgentEvent::Nothing
        }
    }

    /// Whether the session is ready for another batch (welcomed, and the window has room).
    pub fn can_send(&self) -> bool {
        self.state == AgentState::Streaming
            && self.in_flight.len() < self.limits.max_batches_in_flight.max(1) as usize
    }

    /// How many more batches the window has room for now.
    pub fn free_slots(&self) -> usize {
        match self.state {
            AgentState::Streaming => (self.limits.max_batches_in_flight.max(1) as usize)
                .saturating_sub(self.in_flight.len()),
            AgentState::AwaitWelcome => 0,
        }
    }

    /// The seq the next batch must start at.
    pub fn next_batch_start(&self) -> Seq {
        self.sent + 1
    }

    /// The limits the collector announced.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Records that a batch `first..=last` was sent.
    pub fn batch_sent(&mut self, first: Seq, last: Seq) -> Result<(), ProtocolError> {
        if first != self.sent + 1 || last < first {
            return Err(ProtocolError::NotContiguous {
                first,
                last,
                sent: self.sent,
            });
        }
        self.sent = last;
        self.next_seq = self.next_seq.max(last + 1);
        self.in_flight.push_back(last);
        Ok(())
    }

    /// Notes that the outbox gave out seqs up to `next_seq - 1` since the session started.
    pub fn seqs_assigned(&mut self, next_seq: Seq) {
        self.next_seq = self.next_seq.max(next_seq);
    }

    /// Whether a renewal may be requested now (welcomed, none in flight).
    pub fn can_renew(&self) -> bool {
        self.state == AgentState::Streaming && !self.renewing
    }

    /// Records that a `Renew` was sent.
    pub fn renewal_sent(&mut self) {
        self.renewing = true;
    }

    /// Batches sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether an attachment chunk may go now. Reports always come first: a chunk goes only
    /// when no batch awaits its ack (the caller also checks that no report waits to be sent),
    /// and one chunk at a time, so a report filed during a transfer waits for one chunk at most.
    pub fn can_send_chunk(&self) -> bool {
        self.state == AgentState::Streaming
            && self.in_flight.is_empty()
            && self.chunk_outstanding.is_none()
    }

    /// Records that a chunk of attachment `hash` was sent.
    pub fn chunk_sent(&mut self, hash: [u8; 32]) {
        self.chunk_outstanding = Some(hash);
    }

    /// Whether the agent waits for an answer to a batch, a chunk, a status or a fetch.
    pub fn awaiting_reply(&self) -> bool {
        !self.in_flight.is_empty()
            || self.chunk_outstanding.is_some()
            || self.statuses_outstanding > 0
            || self.fetch_outstanding.is_some()
    }

    /// Whether a `Status` may go now (welcomed; one at a time).
    pub fn can_send_status(&self) -> bool {
        self.state == AgentState::Streaming && self.statuses_outstanding == 0
    }

    /// Records that a `Status` was sent.
    pub fn status_sent(&mut self) {
        self.statuses_outstanding += 1;
    }

    /// Whether part of a release may be fetched now. Reports come first, as for attachments:
    /// only when no batch awaits its ack and no chunk or fetch is outstanding (the caller also
    /// checks that no report waits), so an urgent report waits for one part at most.
    pub fn can_fetch(&self) -> bool {
        self.can_send_chunk() && self.fetch_outstanding.is_none()
    }

    /// Records that a `Fetch` for release `sha256` was sent.
    pub fn fetch_sent(&mut self, sha256: [u8; 32]) {
        self.fetch_outstanding = Some(sha256);
    }

    /// Everything up to this seq is known stored centrally.
    pub fn acked(&self) -> Seq {
        self.acked
    }
}

fn collector_frame_name(frame: &CollectorFrame) -> &'static str {
    match frame {
        CollectorFrame::Welcome(_) => "Welcome",
        CollectorFrame::Ack { .. } => "Ack",
        CollectorFrame::Nack { .. } => "Nack",
        CollectorFrame::Enrolled { .. } => "Enrolled",
        CollectorFrame::Refused(_) => "Refused",
        CollectorFrame::Renewed { .. } => "Renewed",
        CollectorFrame::RenewalRefused { .. } => "RenewalRefused",
        CollectorFrame::ChunkAck { .. } => "ChunkAck",
        CollectorFrame::AttachmentRefused { .. } => "AttachmentRefused",
        CollectorFrame::Directives(_) => "Directives",
        CollectorFrame::ReleasePart { .. } => "ReleasePart",
    }
}

/// What the collector decides on `Hello`, given its stored high-water mark for (site, epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloDecision {
    /// Welcome the agent with this `hwm`.
    Welcome {
        hwm: Seq,
        /// The agent no longer holds these seqs, yet the collector does not have them: the
        /// collector lost them (restored from an older copy). Record them as a gap and move on.
        lost: Option<RangeInclusive<Seq>>,
        /// The agent had these acknowledged, the collector does not have them (it was restored
        /// from an older copy), and the agent still holds them: they will be sent again.
        rerequested: Option<RangeInclusive<Seq>>,
        /// The collector holds seqs the agent has not given out: the agent's outbox went back in
        /// time. The agent will start a new epoch; record it.
        agent_behind: bool,
    },
    Refuse(Refusal),
}

impl HelloDecision {
    /// The hwm the store must set when it records this decision: the welcomed hwm when a range
    /// was recorded lost (the collector will not wait for it), else none (the stored one stays).
    pub fn hwm_to_record(&self) -> Option<Seq> {
        match self {
            HelloDecision::Welcome {
                hwm, lost: Some(_), ..
            } => Some(*hwm),
            _ => None,
        }
    }

    /// Whether recording this decision records more than that the site was seen: a lost range
    /// (and the hwm moved past it), a re-requested range, an agent behind. Such a record must be durable before
    /// the `Welcome` goes out; a plain one (last seen, clock offset) may wait for the store's
    /// next durable commit, as a heartbeat does, so that a fleet reconnecting at once does not
    /// cost the store a sync to disk per site.
    pub fn records_more_than_seen(&self) -> bool {
        match self {
            HelloDecision::Welcome {
                lost,
                rerequested,
                agent_behind,
                ..
            } => lost.is_some() || rerequested.is_some() || *agent_behind,
            HelloDecision::Refuse(_) => true,
        }
    }
}

/// Decides on a `Hello`. `stored_hwm` is 0 for an epoch never seen.
pub fn decide_hello(stored_hwm: Seq, hello: &Hello) -> HelloDecision {
    if !(crate::OLDEST_PROTOCOL_VERSION..=crate::PROTOCOL_VERSION).contains(&hello.proto) {
        let advice = if hello.proto > crate::PROTOCOL_VERSION {
            "upgrade the collector first (collectors are upgraded before their agents)"
        } else {
            "install a newer agent at the site"
        };
        return HelloDecision::Refuse(Refusal {
            code: RefusalCode::ProtocolVersion,
            message: format!(
                "agent speaks protocol {} but this collector speaks {} to {}; {advice}",
                hello.proto,
                crate::OLDEST_PROTOCOL_VERSION,
                crate::PROTOCOL_VERSION
            ),
        });
    }
    if hello.oldest_unacked == 0
        || hello.next_seq == 0
        || hello.oldest_unacked > hello.next_seq
        || hello.oldest_retained == 0
        || hello.oldest_retained > hello.oldest_unacked
    {
        return HelloDecision::Refuse(Refusal {
            code: RefusalCode::BadRequest,
            message: format!(
                "inconsistent Hello: oldest_retained={} oldest_unacked={} next_seq={}",
                hello.oldest_retained, hello.oldest_unacked, hello.next_seq
            ),
        });
    }
    let mut hwm = stored_hwm;
    let mut lost = None;
    if hello.oldest_retained > stored_hwm + 1 {
        lost = Some(stored_hwm + 1..=hello.oldest_retained - 1);
        hwm = hello.oldest_retained - 1;
    }
    HelloDecision::Welcome {
        hwm,
        lost,
        rerequested: (hwm + 1 < hello.oldest_unacked).then(|| hwm + 1..=hello.oldest_unacked - 1),
        agent_behind: stored_hwm >= hello.next_seq,
    }
}

/// How a batch relates to what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Seqs already stored: compare content hashes, store nothing.
    pub replayed: Option<RangeInclusive<Seq>>,
    /// Seqs to store, ending the transaction with `hwm = *fresh.end()`.
    pub fresh: Option<RangeInclusive<Seq>>,
}

/// Places a batch of `len` reports starting at `first_seq` against the stored `hwm`.
pub fn plan_batch(
    hwm: Seq,
    first_seq: Seq,
    len: usize,
    limits: &Limits,
) -> Result<BatchPlan, NackReason> {
    if len > limits.max_batch_reports as usize {
        return Err(NackReason::OverLimit {
            reports: len.min(u32::MAX as usize) as u32,
        });
    }
    if first_seq == 0 || first_seq > hwm + 1 {
        return Err(NackReason::Gap {
            expected: hwm + 1,
            got: first_seq,
        });
    }
    if len == 0 {
        return Ok(BatchPlan {
            replayed: None,
            fresh: None,
        });
    }
    let last = first_seq + len as u64 - 1;
    let replayed = (first_seq <= hwm).then(|| first_seq..=last.min(hwm));
    let fresh = (last > hwm).then(|| (hwm + 1).max(first_seq)..=last);
    Ok(BatchPlan { replayed, fresh })
}

/// What the collector's I/O shell must do next for a session.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorStep {
    /// Read the stored hwm of (site, `epoch`) and the lowest seq from `verdicts_from` on that
    /// has a verdict kept ([`crate::ingest::Ledger::verdicts_within`]), then call
    /// [`CollectorSession::hwm_read`].
    ReadHwm { epoch: Epoch, verdicts_from: Seq },
    /// Carry out this store command, then report how it went with
    /// [`CollectorSession::answered`].
    Store(StoreCommand),
    /// Send this frame; the session carries on.
    Send(CollectorFrame),
    /// Send this refusal and close the connection.
    Refuse(Refusal),
    /// Nothing to do; read the next frame.
    Nothing,
}

/// A change the collector's store must make for a session (the site is the session's own).
#[derive(Debug, Clone, PartialEq)]
pub enum StoreCommand {
    /// Record the session's start: the decision on its `Hello` (gaps, rollbacks) and the
    /// agent's clock. Answer with [`StoreAnswer::Done`].
    RecordHello {
        epoch: Epoch,
        decision: HelloDecision,
        agent_time: Timestamp,
        now: Timestamp,
    },
    /// Record a heartbeat that passed [`crate::frame::Heartbeat::check`]. Answer with
    /// [`StoreAnswer::Done`].
    RecordHeartbeat {
        heartbeat: crate::frame::Heartbeat,
        now: Timestamp,
    },
    /// Record a rejection the admin sees (a refused heartbeat). Answer with
    /// [`StoreAnswer::Done`].
    RecordRejection { message: String, now: Timestamp },
    /// Apply a batch in one durable transaction (the rules are [`crate::ingest`]). Answer with
    /// [`StoreAnswer::Reply`] carrying the `Ack` or `Nack`, only after the commit.
    ApplyBatch {
        epoch: Epoch,
        batch: crate::frame::Batch,
        now: Timestamp,
    },
    /// Sign a certificate for the session's site and a fresh key. Answer with
    /// [`StoreAnswer::Reply`] carrying `Renewed` or `RenewalRefused`.
    Renew { csr_der: Vec<u8>, now: Timestamp },
    /// Receive an attachment chunk. Answer with [`StoreAnswer::Reply`] carrying `ChunkAck` or
    /// `AttachmentRefused`.
    Chunk {
        chunk: crate::frame::Chunk,
        now: Timestamp,
    },
    /// Protocol 2: record what the agent runs (it passed [`crate::fleet::AgentStatus::check`])
    /// and decide what the center wants of it. Answer with [`StoreAnswer::Reply`] carrying
    /// `Directives`.
    RecordStatus {
        status: crate::fleet::AgentStatus,
        now: Timestamp,
    },
    /// Protocol 2: read part of a release the site is offered. Answer with
    /// [`StoreAnswer::Reply`] carrying `ReleasePart`.
    Fetch { sha256: [u8; 32], offset: u64 },
}

/// How the store carried out a [`StoreCommand`].
#[derive(Debug, Clone, PartialEq)]
pub enum StoreAnswer {
    /// Recorded; nothing to send.
    Done,
    /// Done; this is the frame to send to the agent.
    Reply(CollectorFrame),
}

/// Why the collector ends a session: the agent broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionViolation {
    #[error("the first frame was {got}, not Hello")]
    FrameBeforeHello { got: &'static str },
    #[error("a second Hello on one session")]
    SecondHello,
    #[error("Enroll on a sync session")]
    EnrollOnSyncSession,
    #[error("a second Renew on one session")]
    SecondRenew,
    #[error("{frame} is not part of protocol {proto}, which the agent's Hello named")]
    NotInProtocol { frame: &'static str, proto: u16 },
    #[error("status refused: {0}")]
    BadStatus(String),
    /// The I/O shell called the session out of turn (a frame while a store command or a read
    /// was outstanding, or an answer nobody asked for). This is a bug in the shell, not the
    /// agent's doing; the session ends all the same.
    #[error("the session was driven out of turn: {0}")]
    OutOfTurn(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum CollectorState {
    AwaitHello,
    ReadingHwm { hello: Hello },
    RecordingHello { epoch: Epoch, hwm: Seq },
    Open { epoch: Epoch },
    Closed,
}

/// What the session waits for from the store while open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outstanding {
    Record,
    Reply,
    /// A batch's answer; the last seq it covers (the one before it, for an empty batch).
    BatchReply(Seq),
}

/// How many batches of one session the collector takes before the first of them is answered:
/// while the store's writer applies one, the next is read and examined, so a site draining
/// alone never leaves the writer waiting for its next batch. Answers still go out in order,
/// each after its batch's commit. (The agent's window, [`Limits::max_batches_in_flight`], is
/// larger; the rest wait in the connection's buffers.)
pub const PIPELINED_BATCHES: usize = 2;

/// The collector's side of one sync session, for the site its client certificate names. Like
/// quinn-proto's `Connection`, it does no I/O: the shell feeds it each decoded frame and the
/// time, carries out the [`CollectorStep`] it returns, and reports the store's answers back.
/// It owns the session rules: `Hello` first (decided by [`decide_hello`]); at most one `Renew`;
/// a second `Hello`, an `Enroll` or any frame before `Hello` end the session; heartbeats are
/// checked and a refused one is recorded once per session.
#[derive(Debug, Clone)]
pub struct CollectorSession {
    state: CollectorState,
    limits: Limits,
    /// The store commands whose answers are awaited, oldest first: one command, or up to
    /// [`PIPELINED_BATCHES`] batches.
    outstanding: VecDeque<Outstanding>,
    renewed: bool,
    heartbeat_refused: bool,
    /// The highest hwm this session has told the agent (in its `Welcome`, then its answers).
    answered: Seq,
    /// The protocol version the agent's `Hello` named (0 before it).
    proto: u16,
}

impl CollectorSession {
    /// A session that announces `limits` in its `Welcome`.
    pub fn new(limits: Limits) -> CollectorSession {
        CollectorSession {
            state: CollectorState::AwaitHello,
            limits,
            outstanding: VecDeque::new(),
            renewed: false,
            heartbeat_refused: false,
            answered: 0,
            proto: 0,
        }
    }

    /// The protocol version the agent's `Hello` named (0 before it arrived).
    pub fn proto(&self) -> u16 {
        self.proto
    }

    /// The epoch of the session, once its `Hello` arrived.
    pub fn epoch(&self) -> Option<Epoch> {
        match &self.state {
            CollectorState::ReadingHwm { hello } => Some(hello.epoch),
            CollectorState::RecordingHello { epoch, .. } | CollectorState::Open { epoch } => {
                Some(*epoch)
            }
            CollectorState::AwaitHello | CollectorState::Closed => None,
        }
    }

    /// Whether the session is welcomed and streaming.
    pub fn is_open(&self) -> bool {
        matches!(self.state, CollectorState::Open { .. })
    }

    /// Feeds one frame from the agent, received at `now`.
    pub fn handle(
        &mut self,
        frame: crate::frame::AgentFrame,
        now: Timestamp,
    ) -> Result<CollectorStep, SessionViolation> {
        use crate::frame::AgentFrame;
        if !self.can_take(&frame) {
            return self.violation(SessionViolation::OutOfTurn(
                "a frame arrived while a store command was outstanding",
            ));
        }
        let (epoch, frame) = match (&self.state, frame) {
            (_, AgentFrame::Enroll(_)) => {
                return self.violation(SessionViolation::EnrollOnSyncSession)
            }
            (CollectorState::AwaitHello, AgentFrame::Hello(hello)) => {
                let (epoch, verdicts_from) = (hello.epoch, hello.oldest_unacked);
                self.proto = hello.proto;
                self.state = CollectorState::ReadingHwm { hello };
                return Ok(CollectorStep::ReadHwm {
                    epoch,
                    verdicts_from,
                });
            }
            (CollectorState::AwaitHello, other) => {
                return self.violation(SessionViolation::FrameBeforeHello {
                    got: agent_frame_name(&other),
                })
            }
            (CollectorState::Open { .. }, AgentFrame::Hello(_)) => {
                return self.violation(SessionViolation::SecondHello)
            }
            (CollectorState::Open { epoch }, frame) => (*epoch, frame),
            (CollectorState::ReadingHwm { .. } | CollectorState::RecordingHello { .. }, _) => {
                return self.violation(SessionViolation::OutOfTurn(
                    "a frame arrived before the Hello was answered",
                ))
            }
            (CollectorState::Closed, _) => {
                return Err(SessionViolation::OutOfTurn("the session is closed"))
            }
        };
        let (command, outstanding) = match frame {
            AgentFrame::Batch(batch) => {
                // An empty batch covers nothing: its answer moves nothing on.
                let last = (batch.first_seq + batch.reports.len() as Seq).saturating_sub(1);
                (
                    StoreCommand::ApplyBatch { epoch, batch, now },
                    Outstanding::BatchReply(last),
                )
            }
            AgentFrame::Renew { csr_der } => {
                // One renewal per session: an agent reconnects with its new certificate at once,
                // so a second request on the same session is abuse (it would grow the audit log).
                if self.renewed {
                    return self.violation(SessionViolation::SecondRenew);
                }
                self.renewed = true;
                (StoreCommand::Renew { csr_der, now }, Outstanding::Reply)
            }
            AgentFrame::Heartbeat(heartbeat) => match heartbeat.check() {
                Ok(()) => (
                    StoreCommand::RecordHeartbeat { heartbeat, now },
                    Outstanding::Record,
                ),
                // Recorded once per session, so a looping agent cannot grow the store.
                Err(_) if self.heartbeat_refused => return Ok(CollectorStep::Nothing),
                Err(problem) => {
                    self.heartbeat_refused = true;
                    (
                        StoreCommand::RecordRejection {
                            message: format!("heartbeat refused: {problem}"),
                            now,
                        },
                        Outstanding::Record,
                    )
                }
            },
            AgentFrame::Chunk(chunk) => (StoreCommand::Chunk { chunk, now }, Outstanding::Reply),
            AgentFrame::Status(_) | AgentFrame::Fetch { .. } if self.proto < 2 => {
                return self.violation(SessionViolation::NotInProtocol {
                    frame: agent_frame_name(&frame),
                    proto: self.proto,
                })
            }
            AgentFrame::Status(status) => match status.check() {
                Ok(()) => (
                    StoreCommand::RecordStatus { status, now },
                    Outstanding::Reply,
                ),
                Err(problem) => return self.violation(SessionViolation::BadStatus(problem)),
            },
            AgentFrame::Fetch { sha256, offset } => {
                (StoreCommand::Fetch { sha256, offset }, Outstanding::Reply)
            }
            // Handled above; kept exhaustive so a new frame type is a compile error here.
            AgentFrame::Hello(_) | AgentFrame::Enroll(_) => {
                return self.violation(SessionViolation::OutOfTurn("unreachable frame"))
            }
        };
        self.outstanding.push_back(outstanding);
        Ok(CollectorStep::Store(command))
    }

    /// Whether `frame` may be fed now: nothing while the `Hello`'s hwm is being read; anything
    /// when no store command is outstanding; a batch also while fewer than
    /// [`PIPELINED_BATCHES`] batches (and nothing else) await their answers. Otherwise the
    /// shell first gives the outstanding answers ([`CollectorSession::answered`]), oldest
    /// first.
    pub fn can_take(&self, frame: &crate::frame::AgentFrame) -> bool {
        if matches!(self.state, CollectorState::ReadingHwm { .. }) {
            return false;
        }
        let batch = matches!(frame, crate::frame::AgentFrame::Batch(_));
        self.outstanding.is_empty()
            || (batch
                && self.outstanding.len() < PIPELINED_BATCHES
                && self
                    .outstanding
                    .iter()
                    .all(|o| matches!(o, Outstanding::BatchReply(_))))
    }

    /// How many store commands await their answers.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// The stored hwm the session asked for with [`CollectorStep::ReadHwm`] (0 for an epoch
    /// never seen) and the lowest seq with a verdict from the seq it named, read at `now`.
    ///
    /// A verdict the agent has not heard (the answer that named it was lost with a connection
    /// or a crash) must reach it, so the `Welcome` then stops below that seq: the agent sends
    /// the seqs from there again, and the answer to that batch names their verdicts
    /// ([`crate::ingest::apply_batch_rules`] finds them for replayed seqs).
    pub fn hwm_read(
        &mut self,
        stored: Seq,
        first_verdict: Option<Seq>,
        now: Timestamp,
    ) -> Result<CollectorStep, SessionViolation> {
        let CollectorState::ReadingHwm { hello } = &self.state else {
            return self.violation(SessionViolation::OutOfTurn("an hwm nobody asked for"));
        };
        let decision = decide_hello(stored, hello);
        match &decision {
            HelloDecision::Refuse(refusal) => {
                let refusal = refusal.clone();
                self.state = CollectorState::Closed;
                Ok(CollectorStep::Refuse(refusal))
            }
            HelloDecision::Welcome { hwm, .. } => {
                let (epoch, agent_time) = (hello.epoch, hello.agent_time);
                // Only a verdict the agent has not heard and the Welcome would cover: above its
                // acknowledged seqs, at or below the stored hwm.
                // (Never when the agent is behind: it must see the whole hwm to start a new
                // epoch, and the seqs it would send again are not the ones judged.)
                let welcome_hwm = match first_verdict {
                    Some(seq)
                        if seq >= hello.oldest_unacked && seq <= *hwm && *hwm < hello.next_seq =>
                    {
                        seq - 1
                    }
                    _ => *hwm,
                };
                self.state = CollectorState::RecordingHello {
                    epoch,
                    hwm: welcome_hwm,
                };
                self.outstanding.push_back(Outstanding::Record);
                Ok(CollectorStep::Store(StoreCommand::RecordHello {
                    epoch,
                    decision,
                    agent_time,
                    now,
                }))
            }
        }
    }

    /// How the store carried out the oldest [`CollectorStep::Store`] not yet answered, at
    /// `now`.
    pub fn answered(
        &mut self,
        answer: StoreAnswer,
        now: Timestamp,
    ) -> Result<CollectorStep, SessionViolation> {
        match (self.outstanding.pop_front(), answer) {
            (Some(Outstanding::Record), StoreAnswer::Done) => {
                if let CollectorState::RecordingHello { epoch, hwm } = self.state {
                    self.state = CollectorState::Open { epoch };
                    self.answered = hwm;
                    return Ok(CollectorStep::Send(CollectorFrame::Welcome(Welcome {
                        hwm,
                        limits: self.limits,
                        collector_time: now,
                    })));
                }
                Ok(CollectorStep::Nothing)
            }
            (Some(Outstanding::Reply), StoreAnswer::Reply(frame)) => Ok(CollectorStep::Send(frame)),
            (Some(Outstanding::BatchReply(last)), StoreAnswer::Reply(frame)) => {
                Ok(CollectorStep::Send(self.answer_batch(last, frame)))
            }
            _ => self.violation(SessionViolation::OutOfTurn(
                "a store answer that does not match the command",
            )),
        }
    }

    /// The store's answer to the batch that ended at seq `last`, made true for this agent: its
    /// hwm never runs ahead of what this session has answered, so a verdict the agent has not
    /// heard is never covered by an hwm it hears first. An `Ack` or `ReportsRefused` may reach
    /// the batch's own end (its answer names the verdicts on its seqs); a batch refused as a
    /// whole (a gap, a conflict) moves nothing on. ("Stored up to here" stays true when lower.)
    fn answer_batch(&mut self, last: Seq, frame: CollectorFrame) -> CollectorFrame {
        let (hwm, reason) = match frame {
            CollectorFrame::Ack { hwm } => (hwm, None),
            CollectorFrame::Nack { hwm, reason } => (hwm, Some(reason)),
            other => return other,
        };
        let reach = match &reason {
            None | Some(NackReason::ReportsRefused { .. }) => last.max(self.answered),
            Some(_) => self.answered,
        };
        let hwm = hwm.min(reach);
        self.answered = self.answered.max(hwm);
        match reason {
            None => CollectorFrame::Ack { hwm },
            Some(reason) => CollectorFrame::Nack { hwm, reason },
        }
    }

    fn violation(&mut self, v: SessionViolation) -> Result<CollectorStep, SessionViolation> {
        self.state = CollectorState::Closed;
        self.outstanding.clear();
        Err(v)
    }
}

/// The name of an agent frame's kind, for messages.
pub fn agent_frame_name(frame: &crate::frame::AgentFrame) -> &'static str {
    use crate::frame::AgentFrame;
    match frame {
        AgentFrame::Hello(_) => "Hello",
        AgentFrame::Batch(_) => "Batch",
        AgentFrame::Enroll(_) => "Enroll",
        AgentFrame::Renew { .. } => "Renew",
        AgentFrame::Heartbeat(_) => "Heartbeat",
        AgentFrame::Chunk(_) => "Chunk",
        AgentFrame::Status(_) => "Status",
        AgentFrame::Fetch { .. } => "Fetch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(hwm: Seq) -> CollectorFrame {
        CollectorFrame::Welcome(Welcome {
            hwm,
            limits: Limits::default(),
            collector_time: Timestamp(0),
        })
    }

    fn hello(epoch: u64) -> crate::frame::AgentFrame {
        let (_, hello) = AgentSession::start(Epoch(epoch), 0, 1, 1, Timestamp(0));
        crate::frame::AgentFrame::Hello(hello)
    }

    fn heartbeat(version: &str) -> crate::frame::AgentFrame {
        crate::frame::AgentFrame::Heartbeat(crate::fixtures::heartbeat(
            Timestamp(crate::fixtures::T0),
            version,
        ))
    }

    const NOW: Timestamp = Timestamp(1_767_225_600_000);

    /// A session welcomed at hwm 0 for epoch 5.
    fn open_session() -> CollectorSession {
        let mut s = CollectorSession::new(Limits::default());
        assert_eq!(
            s.handle(hello(5), NOW),
            Ok(CollectorStep::ReadHwm {
                epoch: Epoch(5),
                verdicts_from: 1
            })
        );
        assert!(matches!(
            s.hwm_read(0, None, NOW),
            Ok(CollectorStep::Store(StoreCommand::RecordHello { .. }))
        ));
        assert!(!s.is_open(), "not open before the Hello is recorded");
        assert_eq!(
            s.answered(StoreAnswer::Done, NOW),
            Ok(CollectorStep::Send(CollectorFrame::Welcome(Welcome {
                hwm: 0,
                limits: Limits::default(),
                collector_time: NOW
            })))
        );
        assert!(s.is_open());
        s
    }

    /// An open session that has been handed an empty batch and waits for the store's answer.
    fn storing_an_empty_batch() -> CollectorSession {
        let mut s = open_session();
        s.handle(
            crate::frame::AgentFrame::Batch(crate::frame::Batch {
                first_seq: 1,
                reports: vec![],
            }),
            NOW,
        )
        .unwrap();
        s
    }

    #[test]
    fn collector_session_wants_hello_first() {
        let mut s = CollectorSession::new(Limits::default());
        assert_eq!(
            s.handle(heartbeat("1.0"), NOW),
            Err(SessionViolation::FrameBeforeHello { got: "Heartbeat" })
        );
        let mut s = CollectorSession::new(Limits::default());
        let batch = crate::frame::AgentFrame::Batch(crate::frame::Batch {
            first_seq: 1,
            reports: vec![],
        });
        assert!(matches!(
            s.handle(batch, NOW),
            Err(SessionViolation::FrameBeforeHello { got: "Batch" })
        ));
        assert!(s.handle(hello(5), NOW).is_err(), "a violation closes it");
    }

    #[test]
    fn a_release_part_is_fetched_only_when_no_report_waits_and_one_at_a_time() {
        let (mut s, _) = AgentSession::start(Epoch(1), 0, 1, 1, Timestamp(0));
        assert!(
            !s.can_fetch() && !s.can_send_status(),
            "not before the Welcome"
        );
        s.handle(welcome(0)).unwrap();
        assert!(s.can_fetch());
        s.batch_sent(1, 1).unwrap();
        assert!(!s.can_fetch(), "a batch awaits its ack");
        s.handle(CollectorFrame::Ack { hwm: 1 }).unwrap();
        assert!(s.can_fetch());
        s.fetch_sent([1; 32]);
        assert!(!s.can_fetch() && s.awaiting_reply(), "one part at a time");
        let part = |sha| CollectorFrame::ReleasePart {
            sha256: sha,
            offset: 0,
            data: vec![1, 2, 3],
        };
        assert!(matches!(
            s.clone().handle(part([2; 32])),
            Err(ProtocolError::Unexpected { .. })
        ));
        assert!(matches!(
            s.handle(part([1; 32])),
            Ok(AgentEvent::ReleasePart { .. })
        ));
        assert!(s.can_fetch() && !s.awaiting_reply());
        // Directives answer a status; unasked, they break the protocol.
        let directives = CollectorFrame::Directives(crate::fleet::Directives {
            config: None,
            release: None,
            release_key: None,
        });
        assert!(s.clone().handle(directives.clone()).is_err());
        s.status_sent();
        assert!(!s.can_send_status());
        assert!(matches!(
            s.handle(directives),
            Ok(AgentEvent::Directives(_))
        ));
    }

    #[test]
    fn a_collector_serves_the_protocol_before_and_keeps_its_sessions_to_it() {
        let mut s = CollectorSession::new(Limits::default());
        let (_, mut old) = AgentSession::start(Epoch(3), 0, 1, 1, Timestamp(0));
        old.proto = crate::OLDEST_PROTOCOL_VERSION;
        s.handle(crate::frame::AgentFrame::Hello(old), NOW).unwrap();
        assert!(matches!(
            s.hwm_read(0, None, NOW),
            Ok(CollectorStep::Store(StoreCommand::RecordHello { .. }))
        ));
        s.answered(StoreAnswer::Done, NOW).unwrap();
        assert_eq!(s.proto(), 1);
        let fetch = crate::frame::AgentFrame::Fetch {
            sha256: [0; 32],
            offset: 0,
        };
        assert_eq!(
            s.handle(fetch, NOW),
            Err(SessionViolation::NotInProtocol {
                frame: "Fetch",
                proto: 1
            })
        );
    }

    #[test]
    fn collector_session_refuses_a_bad_hello_with_a_refusal() {
        let mut s = CollectorSession::new(Limits::default());
        let (_, mut bad) = AgentSession::start(Epoch(1), 0, 1, 1, Timestamp(0));
        bad.proto = 99;
        s.handle(crate::frame::AgentFrame::Hello(bad), NOW).unwrap();
        assert!(matches!(
            s.hwm_read(0, None, NOW),
            Ok(CollectorStep::Refuse(Refusal {
                code: RefusalCode::ProtocolVersion,
                ..
            }))
        ));
    }

    #[test]
    fn collector_session_ends_on_a_second_hello() {
        let mut s = open_session();
        assert_eq!(s.handle(hello(5), NOW), Err(SessionViolation::SecondHello));
        assert!(!s.is_open());
    }

    #[test]
    fn collector_session_ends_on_enroll_before_or_after_hello() {
        let enroll = crate::frame::AgentFrame::Enroll(crate::frame::EnrollRequest {
            site_id: "lapas-a".into(),
            secret: vec![],
            csr_der: vec![],
        });
        let mut s = CollectorSession::new(Limits::default());
        assert_eq!(
            s.handle(enroll.clone(), NOW),
            Err(SessionViolation::EnrollOnSyncSession)
        );
        let mut s = open_session();
        assert_eq!(
            s.handle(enroll, NOW),
            Err(SessionViolation::EnrollOnSyncSession)
        );
    }

    #[test]
    fn collector_session_allows_one_renew() {
        let mut s = open_session();
        let renew = crate::frame::AgentFrame::Renew { csr_der: vec![1] };
        assert_eq!(
            s.handle(renew.clone(), NOW),
            Ok(CollectorStep::Store(StoreCommand::Renew {
                csr_der: vec![1],
                now: NOW
            }))
        );
        let reply = CollectorFrame::RenewalRefused {
            message: "no".into(),
        };
        assert_eq!(
            s.answered(StoreAnswer::Reply(reply.clone()), NOW),
            Ok(CollectorStep::Send(reply))
        );
        assert_eq!(s.handle(renew, NOW), Err(SessionViolation::SecondRenew));
    }

    /// A session for an agent that sent up to seq 6 and heard acks up to 2, where the store
    /// holds hwm 6 and a verdict on seq 4 whose answer was lost.
    fn session_with_an_unheard_verdict(first_verdict: Option<Seq>) -> (CollectorSession, Seq) {
        let mut s = CollectorSession::new(Limits::default());
        let (_, hello) = AgentSession::start(Epoch(5), 2, 1, 7, Timestamp(0));
        s.handle(crate::frame::AgentFrame::Hello(hello), NOW)
            .unwrap();
        s.hwm_read(6, first_verdict, NOW).unwrap();
        let Ok(CollectorStep::Send(CollectorFrame::Welcome(w))) =
            s.answered(StoreAnswer::Done, NOW)
        else {
            panic!("no Welcome")
        };
        (s, w.hwm)
    }

    #[test]
    fn a_welcome_stops_below_a_verdict_the_agent_has_not_heard() {
        assert_eq!(session_with_an_unheard_verdict(None).1, 6);
        assert_eq!(session_with_an_unheard_verdict(Some(4)).1, 3);
        // A verdict the agent heard already (at or below its acks) changes nothing.
        assert_eq!(session_with_an_unheard_verdict(Some(2)).1, 6);
        // An agent behind the store (outbox restored) sees the whole hwm, to start a new epoch.
        let mut s = CollectorSession::new(Limits::default());
        let (_, behind) = AgentSession::start(Epoch(5), 0, 1, 3, Timestamp(0));
        s.handle(crate::frame::AgentFrame::Hello(behind), NOW)
            .unwrap();
        s.hwm_read(6, Some(1), NOW).unwrap();
        assert!(matches!(
            s.answered(StoreAnswer::Done, NOW),
            Ok(CollectorStep::Send(CollectorFrame::Welcome(Welcome {
                hwm: 6,
                ..
            })))
        ));
    }

    #[test]
    fn an_answer_never_runs_ahead_of_what_the_session_answered() {
        let (mut s, welcomed) = session_with_an_unheard_verdict(Some(4));
        assert_eq!(welcomed, 3);
        let batch = |first_seq, n| {
            crate::frame::AgentFrame::Batch(crate::frame::Batch {
                first_seq,
                reports: (0..n).map(|_| sample_report()).collect(),
            })
        };
        // A whole-batch refusal (a gap, reordered) moves nothing on, whatever the store's hwm.
        s.handle(batch(6, 1), NOW).unwrap();
        let gap = CollectorFrame::Nack {
            hwm: 6,
            reason: NackReason::Gap {
                expected: 7,
                got: 6,
            },
        };
        assert!(matches!(
            s.answered(StoreAnswer::Reply(gap), NOW),
            Ok(CollectorStep::Send(CollectorFrame::Nack { hwm: 3, .. }))
        ));
        // The batch sent again from seq 4 is answered up to its own end, not the store's.
        s.handle(batch(4, 2), NOW).unwrap();
        assert_eq!(
            s.answered(StoreAnswer::Reply(CollectorFrame::Ack { hwm: 6 }), NOW),
            Ok(CollectorStep::Send(CollectorFrame::Ack { hwm: 5 }))
        );
        s.handle(batch(6, 1), NOW).unwrap();
        assert_eq!(
            s.answered(StoreAnswer::Reply(CollectorFrame::Ack { hwm: 6 }), NOW),
            Ok(CollectorStep::Send(CollectorFrame::Ack { hwm: 6 }))
        );
    }

    #[test]
    fn a_session_takes_a_second_batch_before_the_first_is_answered_and_answers_in_order() {
        let mut s = open_session();
        let batch = |first_seq, n| {
            crate::frame::AgentFrame::Batch(crate::frame::Batch {
                first_seq,
                reports: (0..n).map(|_| sample_report()).collect(),
            })
        };
        assert!(s.can_take(&batch(1, 3)));
        s.handle(batch(1, 3), NOW).unwrap();
        assert!(
            s.can_take(&batch(4, 2)),
            "the next batch is read while one is applied"
        );
        assert!(
            !s.can_take(&heartbeat("1.0")),
            "anything else waits for the answers"
        );
        s.handle(batch(4, 2), NOW).unwrap();
        assert_eq!(s.outstanding(), PIPELINED_BATCHES);
        assert!(!s.can_take(&batch(6, 1)), "no more than the pipeline holds");
        assert!(matches!(
            s.clone().handle(batch(6, 1), NOW),
            Err(SessionViolation::OutOfTurn(_))
        ));
        // The store applied both before the first answer went out: its hwm is already 5, but
        // the first answer covers only its own batch.
        assert_eq!(
            s.answered(StoreAnswer::Reply(CollectorFrame::Ack { hwm: 5 }), NOW),
            Ok(CollectorStep::Send(CollectorFrame::Ack { hwm: 3 }))
        );
        assert!(s.can_take(&batch(6, 1)) && !s.can_take(&heartbeat("1.0")));
        assert_eq!(
            s.answered(StoreAnswer::Reply(CollectorFrame::Ack { hwm: 5 }), NOW),
            Ok(CollectorStep::Send(CollectorFrame::Ack { hwm: 5 }))
        );
        assert!(s.can_take(&heartbeat("1.0")));
        assert!(
            s.answered(StoreAnswer::Reply(CollectorFrame::Ack { hwm: 5 }), NOW)
                .is_err(),
            "an answer nobody asked for"
        );
    }

    fn sample_report() -> crate::Report {
        crate::Report {
            id: crate::ReportId([7; 16]),
            category: "humas".into(),
            priority: crate::Priority::Normal,
            title: "Laporan".into(),
            body: "Isi".into(),
            occurred_at: NOW,
            filed_at: NOW,
            revision: 0,
            retraction: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn collector_session_stores_batches_and_sends_the_stores_answer() {
        let mut s = open_session();
        let batch = crate::frame::Batch {
            first_seq: 1,
            reports: vec![],
        };
        assert_eq!(
            s.handle(crate::frame::AgentFrame::Batch(batch.clone()), NOW),
            Ok(CollectorStep::Store(StoreCommand::ApplyBatch {
                epoch: Epoch(5),
                batch,
                now: NOW
            }))
        );
        assert!(
            matches!(
                s.handle(heartbeat("1.0"), NOW),
                Err(SessionViolation::OutOfTurn(_))
            ),
            "no frame is taken while the batch is being stored"
        );
        let mut s = storing_an_empty_batch();
        assert!(
            s.answered(StoreAnswer::Done, NOW).is_err(),
            "a batch is answered with the frame to send"
        );
        let mut s = storing_an_empty_batch();
        let ack = CollectorFrame::Ack { hwm: 0 };
        assert_eq!(
            s.answered(StoreAnswer::Reply(ack.clone()), NOW),
            Ok(CollectorStep::Send(ack))
        );
    }

    #[test]
    fn collector_session_records_heartbeats_and_a_refused_one_once() {
        let mut s = open_session();
        assert!(matches!(
            s.handle(heartbeat("1.0"), NOW),
            Ok(CollectorStep::Store(StoreCommand::RecordHeartbeat { .. }))
        ));
        assert_eq!(
            s.answered(StoreAnswer::Done, NOW),
            Ok(CollectorStep::Nothing)
        );
        let bad = heartbeat("");
        assert!(matches!(
            s.handle(bad.clone(), NOW),
            Ok(CollectorStep::Store(StoreCommand::RecordRejection { ref message, .. }))
                if message.starts_with("heartbeat refused")
        ));
        s.answered(StoreAnswer::Done, NOW).unwrap();
        assert_eq!(
            s.handle(bad, NOW),
            Ok(CollectorStep::Nothing),
            "a second refused heartbeat is not recorded again"
        );
        assert!(s.is_open(), "a refused heartbeat does not end the session");
    }

    #[test]
    fn plan_classifies_replay_fresh_and_gap() {
        let l = Limits::default();
        assert_eq!(
            plan_batch(0, 1, 3, &l),
            Ok(BatchPlan {
                replayed: None,
                fresh: Some(1..=3)
            })
        );
        assert_eq!(
            plan_batch(5, 4, 4, &l),
            Ok(BatchPlan {
                replayed: Some(4..=5),
                fresh: Some(6..=7)
            })
        );
        assert_eq!(
            plan_batch(9, 2, 3, &l),
            Ok(BatchPlan {
                replayed: Some(2..=4),
                fresh: None
            })
        );
        assert_eq!(
            plan_batch(5, 7, 1, &l),
            Err(NackReason::Gap {
                expected: 6,
                got: 7
            })
        );
        assert!(matches!(
            plan_batch(0, 0, 1, &l),
            Err(NackReason::Gap { .. })
        ));
        assert!(matches!(
            plan_batch(0, 1, l.max_batch_reports as usize + 1, &l),
            Err(NackReason::OverLimit { .. })
        ));
    }

    #[test]
    fn hello_detects_collector_rollback_and_agent_rollback() {
        // The agent had 1..=10 acknowledged and still holds 7..=10.
        let (_, hello) = AgentSession::start(Epoch(1), 10, 7, 15, Timestamp(0));
        // A welcome to an agent that is not behind the collector.
        let welcome = |hwm, lost, rerequested| HelloDecision::Welcome {
            hwm,
            lost,
            rerequested,
            agent_behind: false,
        };
        // The collector only has up to 4: 5..=6 are gone everywhere, 7..=10 are asked again.
        assert_eq!(
            decide_hello(4, &hello),
            welcome(6, Some(5..=6), Some(7..=10))
        );
        assert_eq!(decide_hello(8, &hello), welcome(8, None, Some(9..=10)));
        assert_eq!(decide_hello(12, &hello), welcome(12, None, None));
        assert_eq!(decide_hello(4, &hello).hwm_to_record(), Some(6));
        assert_eq!(decide_hello(8, &hello).hwm_to_record(), None);
        // Only a plain welcome (nothing lost, asked again or behind) is a record of being seen.
        assert!(decide_hello(4, &hello).records_more_than_seen());
        assert!(decide_hello(8, &hello).records_more_than_seen());
        assert!(decide_hello(20, &hello).records_more_than_seen());
        assert!(!decide_hello(12, &hello).records_more_than_seen());
        assert!(matches!(
            decide_hello(20, &hello),
            HelloDecision::Welcome {
                agent_behind: true,
                ..
            }
        ));
        let mut old = hello.clone();
        old.proto = 99;
        assert!(matches!(decide_hello(0, &old), HelloDecision::Refuse(_)));
    }

    #[test]
    fn agent_session_tracks_window_and_acks() {
        let (mut s, hello) = AgentSession::start(Epoch(7), 0, 1, 1, Timestamp(0));
        assert_eq!(hello.oldest_unacked, 1);
        assert!(!s.can_send(), "nothing may be sent before Welcome");
        assert_eq!(s.handle(welcome(0)), Ok(AgentEvent::Nothing));
        s.seqs_assigned(11);
        s.batch_sent(1, 5).unwrap();
        s.batch_sent(6, 10).unwrap();
        assert_eq!(s.in_flight(), 2);
        assert!(s.batch_sent(12, 13).is_err(), "a skipped seq is caught");
        assert_eq!(
            s.handle(CollectorFrame::Ack { hwm: 5 }),
            Ok(AgentEvent::Acked { hwm: 5 })
        );
        assert_eq!(s.in_flight(), 1);
        assert!(s.handle(CollectorFrame::Ack { hwm: 11 }).is_err());
        assert!(s.handle(CollectorFrame::Ack { hwm: 3 }).is_err());
    }

    #[test]
    fn an_answer_that_passes_over_an_earlier_batch_ends_the_session() {
        let refused = |seq| NackReason::ReportsRefused {
            refused: vec![crate::frame::RefusedReport {
                seq,
                id: crate::ReportId([seq as u8; 16]),
                revision: 0,
                reason: "contoh".into(),
            }],
            quarantined: Vec::new(),
        };
        for second in [
            CollectorFrame::Ack { hwm: 10 },
            CollectorFrame::Nack {
                hwm: 10,
                reason: refused(7),
            },
        ] {
            let (mut s, _) = AgentSession::start(Epoch(7), 0, 1, 1, Timestamp(0));
            s.handle(welcome(0)).unwrap();
            s.seqs_assigned(11);
            s.batch_sent(1, 5).unwrap();
            s.batch_sent(6, 10).unwrap();
            // The answer to 1..=5 (which may name verdicts) has not come.
            assert_eq!(
                s.handle(second),
                Err(ProtocolError::AnswerOutOfOrder { oldest: 5, hwm: 10 })
            );
            assert_eq!(s.acked(), 0, "nothing is taken as acknowledged");
        }
        // In order, each answer is taken.
        let (mut s, _) = AgentSession::start(Epoch(7), 0, 1, 1, Timestamp(0));
        s.handle(welcome(0)).unwrap();
        s.seqs_assigned(11);
        s.batch_sent(1, 5).unwrap();
        s.batch_sent(6, 10).unwrap();
        let first = CollectorFrame::Nack {
            hwm: 5,
            reason: refused(2),
        };
        assert!(matches!(
            s.handle(first),
            Ok(AgentEvent::Refused { hwm: 5, .. })
        ));
        assert_eq!(
            s.handle(CollectorFrame::Ack { hwm: 10 }),
            Ok(AgentEvent::Acked { hwm: 10 })
        );
    }

    #[test]
    fn welcome_with_a_higher_hwm_skips_what_is_stored() {
        let (mut s, _) = AgentSession::start(Epoch(7), 2, 3, 9, Timestamp(0));
        assert_eq!(s.handle(welcome(6)), Ok(AgentEvent::Acked { hwm: 6 }));
        assert_eq!(s.next_batch_start(), 7);
    }

    #[test]
    fn welcome_below_the_acked_seq_resends_retained_reports() {
        let (mut s, _) = AgentSession::start(Epoch(7), 8, 3, 12, Timestamp(0));
        assert_eq!(s.handle(welcome(4)), Ok(AgentEvent::Nothing));
        assert_eq!(s.next_batch_start(), 5);
        s.batch_sent(5, 11).unwrap();
        assert_eq!(
            s.handle(CollectorFrame::Ack { hwm: 11 }),
            Ok(AgentEvent::Acked { hwm: 11 })
        );
    }

    #[test]
    fn welcome_beyond_the_outbox_means_a_restored_outbox() {
        let (mut s, _) = AgentSession::start(Epoch(7), 0, 1, 3, Timestamp(0));
        assert!(matches!(
            s.handle(welcome(5)),
            Err(ProtocolError::EpochBehindCollector { .. })
        ));
    }

    #[test]
    fn renewal_answers_are_only_taken_when_asked_for() {
        let (mut s, _) = AgentSession::start(Epoch(7), 0, 1, 1, Timestamp(0));
        assert!(!s.can_renew());
        s.handle(welcome(0)).unwrap();
        let unasked = CollectorFrame::Renewed { cert_der: vec![1] };
        assert!(s.handle(unasked.clone()).is_err());
        assert!(s.can_renew());
        s.renewal_sent();
        assert!(!s.can_renew());
        assert_eq!(
            s.handle(unasked),
            Ok(AgentEvent::Renewed { cert_der: vec![1] })
        );
        assert!(s.can_renew());
    }

    #[test]
    fn chunks_wait_for_batches_and_answers_must_match_the_chunk() {
        let (mut s, _) = AgentSession::start(Epoch(1), 0, 1, 3, Timestamp(0));
        assert!(!s.can_send_chunk(), "not before Welcome");
        s.handle(welcome(0)).unwrap();
        s.batch_sent(1, 2).unwrap();
        assert!(!s.can_send_chunk(), "a batch awaits its ack");
        s.handle(CollectorFrame::Ack { hwm: 2 }).unwrap();
        assert!(s.can_send_chunk());
        let hash = [7; 32];
        s.chunk_sent(hash);
        assert!(!s.can_send_chunk() && s.awaiting_reply());
        // An answer about another attachment is a protocol error.
        let mut other = s.clone();
        assert!(other
            .handle(CollectorFrame::ChunkAck {
                hash: [8; 32],
                received: 1
            })
            .is_err());
        assert_eq!(
            s.handle(CollectorFrame::ChunkAck { hash, received: 10 }),
            Ok(AgentEvent::ChunkAcked { hash, received: 10 })
        );
        assert!(s.can_send_chunk() && !s.awaiting_reply());
        // Unasked, a ChunkAck is a protocol error too.
        assert!(s
            .handle(CollectorFrame::ChunkAck { hash, received: 10 })
            .is_err());
    }

    #[test]
    fn frames_out_of_order_are_protocol_errors() {
        let (mut s, _) = AgentSession::start(Epoch(7), 0, 1, 1, Timestamp(0));
        assert!(s.handle(CollectorFrame::Ack { hwm: 0 }).is_err());
    }
}
