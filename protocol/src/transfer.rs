//! The attachment transfer as pure rules for both sides, with no I/O.
//!
//! An attachment follows its report one chunk at a time. The agent first probes (an empty chunk)
//! to learn how much the collector holds, then sends from there; the collector writes a chunk
//! only if its `offset` is exactly what it holds, so a chunk resent after a cut is never written
//! twice, and answers with how much it holds either way. The collector's file work (the partial
//! file, syncing, verifying, moving into place) and the agent's blob reads stay in their I/O
//! shells; the offsets and the resume rule are here.

use crate::attachment::{AttachmentRef, CHUNK_BYTES, HARD_MAX_BYTES, MAX_CHUNK_BYTES};
use crate::frame::Chunk;

/// A chunk that breaks the protocol: the session is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkViolation {
    #[error("a chunk of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("an attachment of {0} bytes is over the limit")]
    AttachmentTooLarge(u64),
    #[error("a chunk runs past the attachment's size")]
    PastEnd,
}

/// Checks a chunk's sizes, before the collector looks anything up.
pub fn check_chunk(chunk: &Chunk) -> Result<(), ChunkViolation> {
    if chunk.data.len() > MAX_CHUNK_BYTES {
        return Err(ChunkViolation::TooLarge(chunk.data.len()));
    }
    if chunk.size > HARD_MAX_BYTES {
        return Err(ChunkViolation::AttachmentTooLarge(chunk.size));
    }
    if chunk.offset.saturating_add(chunk.data.len() as u64) > chunk.size {
        return Err(ChunkViolation::PastEnd);
    }
    Ok(())
}

/// What the collector does with a checked chunk of an attachment it expects, holding `held`
/// bytes of it in its partial file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    /// The partial file is longer than the attachment (this code never writes one): delete it
    /// and start over rather than keep a wrong file.
    pub discard_partial: bool,
    /// Append the chunk's data to the partial file (its offset is exactly what is held).
    pub append: bool,
    /// How much is held once the plan is carried out.
    pub held_after: u64,
    /// All of it is held: verify, then move into place (else answer `ChunkAck { held_after }`).
    pub complete: bool,
    /// An empty chunk found part of the attachment held: a transfer cut off earlier resumes.
    pub resuming: bool,
}

/// Plans the collector's answer to a checked chunk.
pub fn plan_chunk(chunk: &Chunk, held: u64) -> ChunkPlan {
    let discard_partial = held > chunk.size;
    let held = if discard_partial { 0 } else { held };
    let append = !chunk.data.is_empty() && chunk.offset == held;
    let held_after = if append {
        held + chunk.data.len() as u64
    } else {
        held
    };
    ChunkPlan {
        discard_partial,
        append,
        held_after,
        complete: held_after >= chunk.size,
        resuming: chunk.data.is_empty() && held > 0,
    }
}

/// What the agent must read and send next for the attachment in transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRequest {
    /// Ask how much the collector holds: send an empty chunk at offset 0.
    Probe { hash: [u8; 32], size: u64 },
    /// Read `len` bytes at `offset` of the blob and send them.
    Read {
        hash: [u8; 32],
        size: u64,
        offset: u64,
        len: usize,
    },
}

impl ChunkRequest {
    /// The chunk for this request, given the bytes read (none for a probe).
    pub fn chunk(&self, data: Vec<u8>) -> Chunk {
        match *self {
            ChunkRequest::Probe { hash, size } => Chunk {
                hash,
                size,
                offset: 0,
                data: Vec::new(),
            },
            ChunkRequest::Read {
                hash, size, offset, ..
            } => Chunk {
                hash,
                size,
                offset,
                data,
            },
        }
    }
}

/// What a `ChunkAck` means for the agent's transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// About another attachment (or none in transfer): nothing changes.
    Ignored,
    /// The collector holds all of it: the transfer is done; forget the attachment and its blob.
    Delivered(AttachmentRef),
    /// The first answer found part of it held already: the transfer resumes from `from`.
    Resuming { from: u64 },
    /// More of it is held; the next chunk goes from there.
    Progress,
}

/// The agent's side of one attachment transfer at a time.
#[derive(Debug, Clone, Default)]
pub struct ChunkSender {
    current: Option<AttachmentRef>,
    /// What the collector said it holds; `None` until it answered the first probe.
    received: Option<u64>,
}

impl ChunkSender {
    /// The attachment in transfer.
    pub fn current(&self) -> Option<&AttachmentRef> {
        self.current.as_ref()
    }

    /// Starts transferring `next` (the outbox's next pending attachment, if any).
    pub fn start(&mut self, next: Option<AttachmentRef>) {
        self.current = next;
        self.received = None;
    }

    /// What to send next: a probe until the collector answered, then the bytes from where it
    /// stands, at most [`CHUNK_BYTES`] at a time.
    pub fn next_request(&self) -> Option<ChunkRequest> {
        let current = self.current.as_ref()?;
        let (hash, size) = (current.hash, current.size);
        Some(match self.received {
            None => ChunkRequest::Probe { hash, size },
            Some(offset) => ChunkRequest::Read {
                hash,
                size,
                offset,
                len: (size.saturating_sub(offset) as usize).min(CHUNK_BYTES),
            },
        })
    }

    /// The collector holds the first `received` bytes of attachment `hash`.
    pub fn acked(&mut self, hash: [u8; 32], received: u64) -> SenderEvent {
        let Some(current) = self.current.as_ref().filter(|c| c.hash == hash) else {
            return SenderEvent::Ignored;
        };
        if received >= current.size {
            let done = current.clone();
            self.finish();
            return SenderEvent::Delivered(done);
        }
        let resuming = self.received.is_none() && received > 0;
        self.received = Some(received);
        if resuming {
            SenderEvent::Resuming { from: received }
        } else {
            SenderEvent::Progress
        }
    }

    /// Forgets the attachment in transfer (delivered, refused, or unreadable).
    pub fn finish(&mut self) {
        self.current = None;
        self.received = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachment::MediaType;

    fn chunk(size: u64, offset: u64, len: usize) -> Chunk {
        Chunk {
            hash: [1; 32],
            size,
            offset,
            data: vec![0; len],
        }
    }

    #[test]
    fn sizes_are_checked_before_anything_else() {
        assert_eq!(check_chunk(&chunk(10, 0, 10)), Ok(()));
        assert_eq!(check_chunk(&chunk(10, 5, 6)), Err(ChunkViolation::PastEnd));
        assert_eq!(
            check_chunk(&chunk(HARD_MAX_BYTES + 1, 0, 0)),
            Err(ChunkViolation::AttachmentTooLarge(HARD_MAX_BYTES + 1))
        );
        assert_eq!(
            check_chunk(&chunk(HARD_MAX_BYTES, 0, MAX_CHUNK_BYTES + 1)),
            Err(ChunkViolation::TooLarge(MAX_CHUNK_BYTES + 1))
        );
        assert_eq!(
            check_chunk(&Chunk {
                offset: u64::MAX,
                ..chunk(10, 0, 1)
            }),
            Err(ChunkViolation::PastEnd),
            "no overflow"
        );
    }

    #[test]
    fn a_chunk_is_written_only_at_the_held_length() {
        let fresh = plan_chunk(&chunk(10, 0, 4), 0);
        assert!(fresh.append && !fresh.complete && fresh.held_after == 4);
        // Resent after a cut: already held, not written twice.
        let again = plan_chunk(&chunk(10, 0, 4), 4);
        assert!(!again.append && again.held_after == 4);
        let last = plan_chunk(&chunk(10, 4, 6), 4);
        assert!(last.append && last.complete && last.held_after == 10);
        let probe = plan_chunk(&chunk(10, 0, 0), 4);
        assert!(!probe.append && probe.resuming && probe.held_after == 4);
        let wrong = plan_chunk(&chunk(10, 0, 3), 12);
        assert!(wrong.discard_partial && wrong.append && wrong.held_after == 3);
        // A probe for a fully held partial file (a crash before it was moved) completes it.
        assert!(plan_chunk(&chunk(10, 0, 0), 10).complete);
    }

    fn reference(size: u64) -> AttachmentRef {
        AttachmentRef {
            hash: [1; 32],
            name: "foto.jpg".into(),
            media_type: MediaType::Jpeg,
            size,
        }
    }

    #[test]
    fn the_sender_probes_resumes_and_finishes() {
        let mut s = ChunkSender::default();
        assert_eq!(s.next_request(), None);
        let size = CHUNK_BYTES as u64 + 10;
        s.start(Some(reference(size)));
        assert_eq!(
            s.next_request(),
            Some(ChunkRequest::Probe {
                hash: [1; 32],
                size
            })
        );
        assert_eq!(s.acked([2; 32], 5), SenderEvent::Ignored);
        assert_eq!(s.acked([1; 32], 5), SenderEvent::Resuming { from: 5 });
        assert_eq!(
            s.next_request(),
            Some(ChunkRequest::Read {
                hash: [1; 32],
                size,
                offset: 5,
                len: CHUNK_BYTES
            })
        );
        assert_eq!(
            s.acked([1; 32], 5 + CHUNK_BYTES as u64),
            SenderEvent::Progress
        );
        assert!(matches!(
            s.next_request(),
            Some(ChunkRequest::Read { len: 5, .. })
        ));
        assert_eq!(
            s.acked([1; 32], size),
            SenderEvent::Delivered(reference(size))
        );
        assert_eq!(s.current(), None);
    }
}
