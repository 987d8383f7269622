//! The frames agents and collector exchange, and their codec.
//!
//! On the wire every frame is a 4-byte big-endian length followed by that many bytes of bincode
//! 2 (standard configuration). The length is checked against [`MAX_FRAME_BYTES`] before a byte of
//! the body is read, the body is decoded with the same limit, and trailing bytes are refused, so
//! a hostile peer can neither make us allocate more than the limit nor smuggle data.

use crate::report::Report;
use crate::{Epoch, Seq};
use bincode::{Decode, Encode};

/// The largest frame either side accepts: 4 MiB.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a value with the project's bincode configuration. Encoding into a `Vec` has no limit
/// and cannot fail for this project's types (they hold no maps or sequences bincode rejects), so
/// the empty result on the impossible error path is never seen; sizes are checked by the callers.
pub fn encode_value<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, bincode::config::standard()).unwrap_or_default()
}

/// Decodes a whole value: the size limit applies, and bytes left over are an error.
pub fn decode_value<T: Decode<()>>(bytes: &[u8]) -> Result<T, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let (value, used) =
        bincode::decode_from_slice(bytes, config()).map_err(FrameError::Malformed)?;
    if used != bytes.len() {
        return Err(FrameError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// A frame that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("frame is malformed: {0}")]
    Malformed(#[source] bincode::error::DecodeError),
    /// A value the codec cannot encode; this project's types never are (see [`encode_value`]).
    #[error("frame is malformed: {0}")]
    Unencodable(#[source] bincode::error::EncodeError),
    #[error("frame has {extra} trailing bytes after its end")]
    TrailingBytes { extra: usize },
    #[error("the peer closed the stream")]
    Closed,
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes one frame for the wire: the 4-byte big-endian length, then the body. Refuses a frame
/// over the limit, so nothing is written for it.
pub fn encode_frame<T: Encode>(value: &T) -> Result<Vec<u8>, FrameError> {
    let body = bincode::encode_to_vec(value, bincode::config::standard())
        .map_err(FrameError::Unencodable)?;
    let mut wire = Vec::with_capacity(4 + body.len());
    wire.extend_from_slice(&length_prefix(body.len())?);
    wire.extend_from_slice(&body);
    Ok(wire)
}

/// The 4-byte big-endian length that goes before a body of `len` bytes; refused over the limit.
fn length_prefix(len: usize) -> Result<[u8; 4], FrameError> {
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok((len as u32).to_be_bytes())
}

/// The body length a frame's 4-byte header declares, refused when over the limit, so a reader
/// checks it before it allocates or reads a byte of the body.
pub fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(len)
}

/// Limits the collector announces in `Welcome`; the agent stays within them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Limits {
    /// Most reports in one `Batch`.
    pub max_batch_reports: u32,
    /// Most encoded bytes in one frame.
    pub max_frame_bytes: u32,
    /// Most batches the agent may send before it waits for an ack.
    pub max_batches_in_flight: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_reports: 1024,
            max_frame_bytes: MAX_FRAME_BYTES as u32,
            max_batches_in_flight: 4,
        }
    }
}

/// The first frame of a sync session.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    pub proto: u16,
    pub epoch: Epoch,
    /// The lowest seq not yet acknowledged (acked + 1).
    pub oldest_unacked: Seq,
    /// The lowest seq the agent can still resend. Agents keep recently acknowledged reports for
    /// a while, so a collector restored from an older copy can ask for them again; anything
    /// below this is gone from the agent.
    pub oldest_retained: Seq,
    /// The seq the agent will give its next report.
    pub next_seq: Seq,
    pub agent_version: String,
    /// The agent's wall clock, for the skew the collector shows. Never used for ordering.
    pub agent_time: crate::Timestamp,
}

/// The collector's answer to `Hello`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Welcome {
    /// The collector's high-water mark for this (site, epoch): every seq up to it is stored.
    pub hwm: Seq,
    pub limits: Limits,
    pub collector_time: crate::Timestamp,
}

/// The agent's health, sent right after `Welcome` and then periodically. Nothing answers it.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct Heartbeat {
    pub agent_time: crate::Timestamp,
    pub agent_version: String,
    /// Reports not yet acknowledged.
    pub backlog: u64,
    pub oldest_unsent_at: Option<crate::Timestamp>,
    pub last_sync_at: Option<crate::Timestamp>,
    pub cpu_percent: f32,
    pub mem_used_bytes: u64,
    /// Free space on the volume holding the outbox.
    pub disk_free_bytes: u64,
    pub uptime_secs: u64,
    /// The outbox reached its quota and refuses new reports.
    pub quota_full: bool,
}

/// The longest agent version string a heartbeat may carry.
pub const MAX_VERSION_CHARS: usize = 64;
/// The most reports a heartbeat may claim to hold (far above any outbox quota).
pub const MAX_BACKLOG: u64 = 1_000_000_000;
/// Byte counts in a heartbeat stay below 1 EiB.
pub const MAX_HEARTBEAT_BYTES: u64 = 1 << 60;
/// Uptime stays below 100 years.
pub const MAX_UPTIME_SECS: u64 = 100 * 366 * 86_400;

impl Heartbeat {
    /// Whether every field lies in its bounds (the collector refuses a heartbeat that does not;
    /// the agent sends [`Heartbeat::bounded`] values, so an honest agent never trips it).
    pub fn check(&self) -> Result<(), String> {
        if self.agent_version.is_empty()
            || self.agent_version.chars().count() > MAX_VERSION_CHARS
            || !self.agent_version.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(format!(
                "agent_version must be 1..={MAX_VERSION_CHARS} printable ASCII characters"
            ));
        }
        if self.backlog > MAX_BACKLOG {
            return Err(format!("backlog {} is above {MAX_BACKLOG}", self.backlog));
        }
        if !self.cpu_percent.is_finite() || !(0.0..=100.0).contains(&self.cpu_percent) {
            return Err("cpu_percent must be a number from 0 to 100".into());
        }
        if self.mem_used_bytes > MAX_HEARTBEAT_BYTES || self.disk_free_bytes > MAX_HEARTBEAT_BYTES {
            return Err("a byte count is implausibly large".into());
        }
        if self.uptime_secs > MAX_UPTIME_SECS {
            return Err("uptime is implausibly long".into());
        }
        let plausible = |t: &crate::Timestamp| {
            t.0 >= crate::report::EARLIEST_FILED_AT.0 && t.0 <= 4_102_444_800_000
        };
        if !plausible(&self.agent_time)
            || !self.oldest_unsent_at.iter().all(plausible)
            || !self.last_sync_at.iter().all(plausible)
        {
            return Err("a time lies before 2020 or after 2099; check the site's clock".into());
        }
        Ok(())
    }

    /// The heartbeat with every field brought into the bounds [`Heartbeat::check`] applies.
    pub fn bounded(mut self) -> Heartbeat {
        self.agent_version = self
            .agent_version
            .chars()
            .filter(char::is_ascii_graphic)
            .take(MAX_VERSION_CHARS)
            .collect();
        if self.agent_version.is_empty() {
            self.agent_version = "unknown".into();
        }
        self.backlog = self.backlog.min(MAX_BACKLOG);
        self.cpu_percent = if self.cpu_percent.is_finite() {
            self.cpu_percent.clamp(0.0, 100.0)
        } else {
            0.0
        };
        self.mem_used_bytes = self.mem_used_bytes.min(MAX_HEARTBEAT_BYTES);
        self.disk_free_bytes = self.disk_free_bytes.min(MAX_HEARTBEAT_BYTES);
        self.uptime_secs = self.uptime_secs.min(MAX_UPTIME_SECS);
        self
    }
}

/// A run of consecutive reports starting at `first_seq`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Batch {
    pub first_seq: Seq,
    pub reports: Vec<Report>,
}

impl Batch {
    /// The seq of the last report, or `first_seq - 1` for an empty batch.
    pub fn last_seq(&self) -> Seq {
        (self.first_seq + self.reports.len() as u64).saturating_sub(1)
    }
}

/// Reports already encoded, each exactly as [`encode_value`] encodes a [`Report`], one after
/// another: what the agent's outbox keeps. They go out as a [`Batch`] frame as they are
/// ([`EncodedReports::into_batch_frame`]), not decoded and encoded again on the way (in a drain
/// that was a tenth of the agent's time per report).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedReports {
    count: usize,
    bytes: Vec<u8>,
}

/// A batch's wire frame in two parts, written one after the other: the length and the frame's
/// head (variant, first seq, count), then the reports' encodings as the outbox kept them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFrame {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

/// The variant index bincode's derive gives [`AgentFrame::Batch`] (its second variant); a test
/// holds [`EncodedReports::into_batch_frame`] to the derived encoding.
const AGENT_FRAME_BATCH: u32 = 1;

impl EncodedReports {
    /// Makes room for `bytes` more of encodings: a batch read up to a byte limit is reserved
    /// once rather than grown (and copied) as it fills.
    pub fn reserve(&mut self, bytes: usize) {
        self.bytes.reserve(bytes);
    }

    /// Appends one report's encoding.
    pub fn push(&mut self, encoded: &[u8]) {
        self.count += 1;
        self.bytes.extend_from_slice(encoded);
    }

    /// How many reports.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The bytes of the encodings together.
    pub fn encoded_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The wire frame of `AgentFrame::Batch(Batch { first_seq, reports })`, byte for byte what
    /// [`encode_frame`] makes of the decoded reports, in two parts so that the encodings go
    /// out without being copied. Refuses a frame over the limit.
    pub fn into_batch_frame(self, first_seq: Seq) -> Result<BatchFrame, FrameError> {
        // The variant, the first seq and the number of reports, as the derive writes them.
        let head = encode_value(&(AGENT_FRAME_BATCH, first_seq, self.count as u64));
        let prefix = length_prefix(head.len() + self.bytes.len())?;
        let mut framed_head = Vec::with_capacity(prefix.len() + head.len());
        framed_head.extend_from_slice(&prefix);
        framed_head.extend_from_slice(&head);
        Ok(BatchFrame {
            head: framed_head,
            body: self.bytes,
        })
    }

    /// The reports, decoded with the frame's limit.
    pub fn decode(&self) -> Result<Vec<Report>, FrameError> {
        let mut reports = Vec::with_capacity(self.count);
        let mut rest = &self.bytes[..];
        while !rest.is_empty() {
            let (report, used) =
                bincode::decode_from_slice(rest, config()).map_err(FrameError::Malformed)?;
            reports.push(report);
            rest = &rest[used..];
        }
        Ok(reports)
    }
}

/// An enrollment request, sent on a connection without a client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EnrollRequest {
    pub site_id: String,
    pub secret: Vec<u8>,
    /// A PKCS#10 request for the agent's fresh key. Its subject is ignored.
    pub csr_der: Vec<u8>,
}

/// Why a batch was refused. The agent resends from `hwm + 1` where that can help.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum NackReason {
    /// The batch started after `expected`: seqs were skipped.
    Gap { expected: Seq, got: Seq },
    /// A seq the collector holds arrived with other content.
    Conflict { seq: Seq },
    /// The batch broke the announced limits.
    OverLimit { reports: u32 },
    /// The collector could not store the batch (disk full, I/O error); try again later.
    Unavailable { message: String },
    /// Some reports of the batch were not stored. `refused` break the rules both sides apply
    /// (`Report::check`) or touch a report another site filed: they never will be stored.
    /// `quarantined` carry inmate identity data: an admin holds them aside, never shown (the
    /// reason names field, kind and position, never the value). Their seqs are consumed (`hwm`
    /// covers them) and everything else in the batch is stored. The agent records each for its
    /// operator and carries on.
    ReportsRefused {
        refused: Vec<RefusedReport>,
        quarantined: Vec<RefusedReport>,
    },
}

/// One report the collector refused, with the reason (never the report's text).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RefusedReport {
    pub seq: Seq,
    pub id: crate::ReportId,
    pub revision: u32,
    pub reason: String,
}

impl std::fmt::Display for NackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NackReason::Gap { expected, got } => {
                write!(f, "gap: expected seq {expected}, batch starts at {got}")
            }
            NackReason::Conflict { seq } => {
                write!(f, "conflict: seq {seq} is stored with different content")
            }
            NackReason::OverLimit { reports } => {
                write!(f, "batch of {reports} reports is over the announced limit")
            }
            NackReason::Unavailable { message } => {
                write!(f, "collector cannot store now: {message}")
            }
            NackReason::ReportsRefused {
                refused,
                quarantined,
            } => {
                write!(
                    f,
                    "{} report(s) refused, {} quarantined:",
                    refused.len(),
                    quarantined.len()
                )?;
                for r in refused.iter().chain(quarantined) {
                    write!(
                        f,
                        " report {} revision {} (seq {}): {};",
                        r.id, r.revision, r.seq, r.reason
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Why the collector refuses a session or an enrollment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum RefusalCode {
    /// The connection carries no client certificate and did not ask to enroll.
    NotEnrolled,
    /// The certificate names a site the collector does not know.
    UnknownSite,
    /// The site is revoked.
    Revoked,
    /// The certificate was replaced by a newer enrollment.
    CertificateSuperseded,
    /// The enrollment token is unknown.
    TokenUnknown,
    /// The enrollment token was used already.
    TokenUsed,
    /// The enrollment token has expired.
    TokenExpired,
    /// The certificate signing request is unusable.
    BadRequest,
    /// The agent speaks another protocol version.
    ProtocolVersion,
    /// The collector is in trouble; try again later.
    Unavailable,
}

/// A refusal with a message an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

/// Frames an agent sends.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub enum AgentFrame {
    Hello(Hello),
    Batch(Batch),
    Enroll(EnrollRequest),
    /// A request, within an authenticated session, for a certificate for a fresh key. The
    /// identity is the session's site; the CSR's subject is ignored.
    Renew {
        csr_der: Vec<u8>,
    },
    /// The agent's health; see [`Heartbeat`].
    Heartbeat(Heartbeat),
    /// Part of an attachment; see [`Chunk`].
    Chunk(Chunk),
    /// Protocol 2: what the agent runs and where its configuration and update stand; answered
    /// with [`CollectorFrame::Directives`]. See [`crate::fleet`].
    Status(crate::fleet::AgentStatus),
    /// Protocol 2: asks for the part of the release `sha256` from `offset`; answered with
    /// [`CollectorFrame::ReleasePart`].
    Fetch {
        sha256: [u8; 32],
        offset: u64,
    },
}

/// Part of an attachment. An empty `data` asks how much the collector already holds. The
/// collector writes `data` only if `offset` is exactly what it holds, so a chunk resent after a
/// cut is never written twice, and answers with [`CollectorFrame::ChunkAck`] either way.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Chunk {
    /// BLAKE3 of the whole attachment.
    pub hash: [u8; 32],
    /// The attachment's size in bytes.
    pub size: u64,
    pub offset: u64,
    pub data: Vec<u8>,
}

/// Frames the collector sends.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum CollectorFrame {
    Welcome(Welcome),
    /// Everything up to `hwm` is durably stored.
    Ack {
        hwm: Seq,
    },
    /// The last batch was refused; everything up to `hwm` is durably stored.
    Nack {
        hwm: Seq,
        reason: NackReason,
    },
    /// Enrollment succeeded: the agent's certificate and the collector's CA certificate (DER).
    Enrolled {
        cert_der: Vec<u8>,
        ca_der: Vec<u8>,
    },
    Refused(Refusal),
    /// The renewed certificate (DER) for the key of the last `Renew`.
    Renewed {
        cert_der: Vec<u8>,
    },
    /// The last `Renew` was refused; the current certificate stays valid.
    RenewalRefused {
        message: String,
    },
    /// The collector durably holds the first `received` bytes of the attachment; when that is
    /// its whole size, the attachment is verified and stored.
    ChunkAck {
        hash: [u8; 32],
        received: u64,
    },
    /// The collector will not take this attachment (no stored report of the site refers to it,
    /// it does not match its hash, or it still carries metadata); the agent drops it.
    AttachmentRefused {
        hash: [u8; 32],
        reason: String,
    },
    /// Protocol 2: the answer to a `Status`: what the center wants of the agent now.
    Directives(crate::fleet::Directives),
    /// Protocol 2: the answer to a `Fetch`: up to [`crate::fleet::RELEASE_PART_BYTES`] of the
    /// release from `offset` (empty past its end, or when the center no longer offers it).
    ReleasePart {
        sha256: [u8; 32],
        offset: u64,
        data: Vec<u8>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::hello;

    #[test]
    fn encoded_reports_make_the_batch_frame_of_the_reports() {
        for n in [1usize, 3, 200] {
            let reports: Vec<Report> = (0..n)
                .map(|i| {
                    let mut r = crate::fixtures::report(i as u64 + 1);
                    r.body = "Isi laporan ".repeat(i % 7);
                    r
                })
                .collect();
            let mut encoded = EncodedReports::default();
            for r in &reports {
                encoded.push(&encode_value(r));
            }
            assert_eq!(encoded.len(), n);
            assert_eq!(encoded.decode().unwrap(), reports);
            for first_seq in [1, 300, u64::MAX / 3] {
                let batch = AgentFrame::Batch(Batch {
                    first_seq,
                    reports: reports.clone(),
                });
                let frame = encoded.clone().into_batch_frame(first_seq).unwrap();
                assert_eq!(
                    [frame.head, frame.body].concat(),
                    encode_frame(&batch).unwrap(),
                    "{n} reports from seq {first_seq}"
                );
            }
        }
    }

    #[test]
    fn frames_round_trip_through_the_codec() {
        let wire = encode_frame(&hello()).unwrap();
        let len = body_len([wire[0], wire[1], wire[2], wire[3]]).unwrap();
        assert_eq!(len, wire.len() - 4);
        assert_eq!(decode_value::<AgentFrame>(&wire[4..]).unwrap(), hello());
    }

    #[test]
    fn an_oversized_declared_length_is_refused() {
        let header = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(matches!(body_len(header), Err(FrameError::TooLarge { .. })));
        assert_eq!(
            body_len((MAX_FRAME_BYTES as u32).to_be_bytes()).unwrap(),
            MAX_FRAME_BYTES
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        let err = decode_value::<AgentFrame>(&[0xff, 0xfe, 0xfd, 0xfc]).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");

        let mut body = encode_value(&hello());
        body.push(0);
        let err = decode_value::<AgentFrame>(&body).unwrap_err();
        assert!(
            matches!(err, FrameError::TrailingBytes { extra: 1 }),
            "{err}"
        );
    }

    #[test]
    fn a_huge_declared_vector_does_not_allocate() {
        // A Batch claiming 2^60 reports in a few bytes must fail on the limit, not abort.
        let mut bytes = vec![1u8]; // variant Batch
        bytes.push(1); // first_seq = 1
        bytes.push(0xfd); // u64 varint marker
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode_value::<AgentFrame>(&bytes).is_err());
    }
}
