//! The engine written out and read back, so a collector restarts without placing every stored
//! item again (at a million items that took minutes).
//!
//! A snapshot is a header (a magic string, the format's version, and a fingerprint of what
//! gives the engine's numbers their meaning: its configuration, the gazetteer's units and the
//! lexicon) and the engine's state in bincode. What the engine derives from the gazetteer is
//! not written; it is built again. A snapshot whose header does not match, that does not
//! decode within its size limit, or that is damaged is refused with the reason, and the
//! caller places everything again: a snapshot only ever saves time. Where in the store a
//! snapshot was taken is the caller's business (`tag`, written and read back as given).
//!
//! Names the engine keeps as `&'static str` (topics and categories) are written as text and
//! read back through the topic table and the taxonomy.

use crate::chunked::Chunked;
use crate::engine::{Doc, Engine, EngineConfig, Story, Why};
use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use std::io::{Read, Write};

/// The first bytes of every snapshot.
const MAGIC: [u8; 8] = *b"PSPANLS1";
/// The format's version: moved on whenever what is written changes.
const VERSION: u32 = 4;
/// The most a snapshot's state may claim, so that a damaged length is refused instead of
/// allocated (a million documents take about a third of this).
pub const MAX_SNAPSHOT_BYTES: usize = 2 << 30;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not an analysis snapshot (no magic bytes)")]
    NotASnapshot,
    #[error("snapshot made by another version or configuration of the analysis")]
    Stale,
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[source] EncodeError),
    #[error("cannot decode the snapshot: {0}")]
    Decode(#[source] DecodeError),
}

/// The header of a snapshot.
#[derive(Encode, Decode)]
struct Header {
    magic: [u8; 8],
    version: u32,
    fingerprint: u64,
    tag: Vec<u64>,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// What gives `engine`'s numbers their meaning: its configuration, units and lexicon.
fn fingerprint(engine: &Engine) -> u64 {
    let mut text = format!("{:?}", engine.config);
    for u in engine.gazetteer.upts() {
        text.push_str(&u.id);
        text.push('\n');
    }
    text.push_str(&format!("{}", engine.lexicon_size()));
    crate::text::hash64(text.as_bytes())
}

impl Engine {
    /// Writes the engine to `out`, with `tag` (where in the store it was taken).
    pub fn write_snapshot(&self, out: &mut impl Write, tag: &[u64]) -> Result<(), SnapshotError> {
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            fingerprint: fingerprint(self),
            tag: tag.to_vec(),
        };
        bincode::encode_into_std_write(&header, out, config()).map_err(SnapshotError::Encode)?;
        bincode::encode_into_std_write(StateRef(self), out, config())
            .map_err(SnapshotError::Encode)?;
        Ok(())
    }

    /// Reads an engine written by [`Engine::write_snapshot`] under the same `config`, reading
    /// at most `limit` bytes (and never more than [`MAX_SNAPSHOT_BYTES`]); returns it with its
    /// tag.
    pub fn read_snapshot(
        engine_config: EngineConfig,
        input: &mut impl Read,
        limit: usize,
    ) -> Result<(Engine, Vec<u64>), SnapshotError> {
        let mut input = input.take(limit as u64);
        let limited = config().with_limit::<{ 64 * 1024 }>();
        let header: Header = bincode::decode_from_std_read(&mut input, limited)
            .map_err(|_| SnapshotError::NotASnapshot)?;
        if header.magic != MAGIC {
            return Err(SnapshotError::NotASnapshot);
        }
        let mut engine = Engine::with_defaults(engine_config);
        if header.version != VERSION || header.fingerprint != fingerprint(&engine) {
            return Err(SnapshotError::Stale);
        }
        let bounded = config().with_limit::<MAX_SNAPSHOT_BYTES>();
        let state: State =
            bincode::decode_from_std_read(&mut input, bounded).map_err(SnapshotError::Decode)?;
        state.into_engine(&mut engine);
        Ok((engine, header.tag))
    }
}

/// The engine's state, borrowed for writing. The fields are written in the order
/// [`State`] reads them.
struct StateRef<'a>(&'a Engine);

impl Encode for StateRef<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let s = self.0;
        s.vocab.encode(e)?;
        s.df.encode(e)?;
        s.seen.encode(e)?;
        s.docs.encode(e)?;
        s.stories.encode(e)?;
        s.names.encode(e)?;
        s.sources.encode(e)?;
        s.source_ids.encode(e)?;
        s.by_url.encode(e)?;
        s.by_content.encode(e)?;
        s.sim.encode(e)?;
        s.sim_docs.encode(e)?;
        s.by_unit.encode(e)?;
        s.by_term.encode(e)?;
        s.by_number.encode(e)?;
        s.by_id.encode(e)?;
        s.newest.encode(e)?;
        s.since_compaction.encode(e)?;
        s.lists.encode(e)
    }
}

/// The engine's state as read back.
#[derive(Decode)]
struct State {
    vocab: crate::vocab::Vocabulary,
    df: Vec<u32>,
    seen: u32,
    docs: Chunked<Doc>,
    stories: Chunked<Story>,
    names: crate::texts::Texts,
    sources: Vec<String>,
    source_ids: crate::text::FastMap<String, u32>,
    by_url: crate::text::FastMap<u64, u32>,
    by_content: crate::text::FastMap<u64, u32>,
    sim: crate::simhash::SimIndex,
    sim_docs: Vec<u32>,
    by_unit: crate::text::FastMap<u16, Vec<u32>>,
    by_term: crate::text::FastMap<u32, Vec<u32>>,
    by_number: crate::text::FastMap<u64, Vec<u32>>,
    by_id: crate::text::FastMap<u64, u32>,
    newest: i64,
    since_compaction: u32,
    lists: crate::lists::Lists,
}

impl State {
    fn into_engine(self, e: &mut Engine) {
        e.vocab = self.vocab;
        e.df = self.df;
        e.seen = self.seen;
        e.docs = self.docs;
        e.briefs = self.stories.iter().map(crate::engine::Brief::of).collect();
        e.stories = self.stories;
        e.names = self.names;
        e.sources = self.sources;
        e.source_ids = self.source_ids;
        e.by_url = self.by_url;
        e.by_content = self.by_content;
        e.sim = self.sim;
        e.sim_docs = self.sim_docs;
        e.by_unit = self.by_unit;
        e.by_term = self.by_term;
        e.by_number = self.by_number;
        e.by_id = self.by_id;
        e.newest = self.newest;
        e.since_compaction = self.since_compaction;
        e.lists = self.lists;
    }
}

impl<T: Encode> Encode for Chunked<T> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (self.len() as u64).encode(e)?;
        for item in self.iter() {
            item.encode(e)?;
        }
        Ok(())
    }
}

impl<'de, Ctx, T: Decode<Ctx>> bincode::BorrowDecode<'de, Ctx> for Chunked<T> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, DecodeError> {
        <Self as Decode<Ctx>>::decode(d)
    }
}

impl<Ctx, T: Decode<Ctx>> Decode<Ctx> for Chunked<T> {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        let len = u64::decode(d)?;
        let mut out = Chunked::default();
        for _ in 0..len {
            // Each item is at least a byte: a damaged length runs into the limit, not memory.
            d.claim_bytes_read(1)?;
            out.push(T::decode(d)?);
        }
        Ok(out)
    }
}

/// A topic or category read back (see the module documentation).
fn name<Ctx, D: Decoder<Context = Ctx>>(d: &mut D) -> Result<&'static str, DecodeError> {
    let text = String::decode(d)?;
    crate::topic::static_name(&text)
        .ok_or_else(|| DecodeError::OtherString(format!("unknown topic or category `{text}`")))
}

impl Encode for Doc {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.id.encode(e)?;
        self.report.encode(e)?;
        self.urgent.encode(e)?;
        self.time.encode(e)?;
        self.source.encode(e)?;
        self.social.encode(e)?;
        self.story.encode(e)?;
        self.duplicate_of.encode(e)?;
        self.upt.encode(e)?;
        self.kanwil.encode(e)?;
        self.category.encode(e)?;
        self.topic.encode(e)?;
        self.sentiment.encode(e)?;
        self.numbers.encode(e)?;
        self.figures.encode(e)?;
        self.key_terms.encode(e)?;
        self.why.encode(e)
    }
}

impl<Ctx> Decode<Ctx> for Doc {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Doc {
            id: Decode::decode(d)?,
            report: Decode::decode(d)?,
            urgent: Decode::decode(d)?,
            time: Decode::decode(d)?,
            source: Decode::decode(d)?,
            social: Decode::decode(d)?,
            story: Decode::decode(d)?,
            duplicate_of: Decode::decode(d)?,
            upt: Decode::decode(d)?,
            kanwil: Decode::decode(d)?,
            category: name(d)?,
            topic: name(d)?,
            sentiment: Decode::decode(d)?,
            numbers: Decode::decode(d)?,
            figures: Decode::decode(d)?,
            key_terms: Decode::decode(d)?,
            why: Decode::decode(d)?,
        })
    }
}

impl Encode for Story {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.id.encode(e)?;
        self.title.encode(e)?;
        self.first.encode(e)?;
        self.last.encode(e)?;
        self.upt.encode(e)?;
        self.category.encode(e)?;
        self.topic.encode(e)?;
        self.topics.encode(e)?;
        self.numbers.encode(e)?;
        self.quantities.encode(e)?;
        self.terms.encode(e)?;
        self.docs.encode(e)
    }
}

impl<Ctx> Decode<Ctx> for Story {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Story {
            id: Decode::decode(d)?,
            title: Decode::decode(d)?,
            first: Decode::decode(d)?,
            last: Decode::decode(d)?,
            upt: Decode::decode(d)?,
            category: name(d)?,
            topic: name(d)?,
            topics: Decode::decode(d)?,
            numbers: Decode::decode(d)?,
            quantities: Decode::decode(d)?,
            terms: Decode::decode(d)?,
            docs: Decode::decode(d)?,
        })
    }
}

impl Encode for Why {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            Why::Copy { of, evidence } => {
                0u8.encode(e)?;
                of.encode(e)?;
                evidence.encode(e)
            }
            Why::SharedUnit { unit, score } => {
                1u8.encode(e)?;
                unit.encode(e)?;
                score.encode(e)
            }
            Why::FollowUp {
                unit,
                score,
                hours_since_last,
            } => {
                2u8.encode(e)?;
                unit.encode(e)?;
                score.encode(e)?;
                hours_since_last.encode(e)
            }
            Why::SimilarContent {
                score,
                event,
                figures,
            } => {
                3u8.encode(e)?;
                score.encode(e)?;
                event.encode(e)?;
                figures.encode(e)
            }
            Why::NewStory { nearest } => {
                4u8.encode(e)?;
                nearest.encode(e)
            }
        }
    }
}

impl<Ctx> Decode<Ctx> for Why {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(match u8::decode(d)? {
            0 => Why::Copy {
                of: Decode::decode(d)?,
                evidence: Decode::decode(d)?,
            },
            1 => Why::SharedUnit {
                unit: Decode::decode(d)?,
                score: Decode::decode(d)?,
            },
            2 => Why::FollowUp {
                unit: Decode::decode(d)?,
                score: Decode::decode(d)?,
                hours_since_last: Decode::decode(d)?,
            },
            3 => Why::SimilarContent {
                score: Decode::decode(d)?,
                event: name(d)?,
                figures: Decode::decode(d)?,
            },
            4 => Why::NewStory {
                nearest: Decode::decode(d)?,
            },
            other => {
                return Err(DecodeError::OtherString(format!(
                    "unknown placement reason {other}"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::story_results;
    use crate::engine::{MediaItem, SiteReport};
    use pasopati_protocol::Timestamp;

    fn item(i: usize) -> MediaItem {
        let units = [
            "Lapas Kelas IIA Palu",
            "Rutan Kelas I Makassar",
            "Lapas Kelas I Cipinang",
        ];
        MediaItem {
            id: format!("m{i}"),
            url: format!("https://uji.example/{i}"),
            source: format!("portal{}", i % 3),
            title: format!("{} kabur dari {}", 2 + i % 5, units[i % 3]),
            text: format!(
                "{} narapidana {} kabur pada dini hari; petugas mengejar {} orang.",
                2 + i % 5,
                units[i % 3],
                i % 7
            ),
            published_at: Timestamp(1_760_000_000_000 + i as i64 * 3_600_000),
            social: i.is_multiple_of(4),
            engagement: Default::default(),
        }
    }

    fn report(i: usize) -> SiteReport {
        SiteReport {
            id: format!("r{i}"),
            site_id: "lapas-palu".into(),
            category: "kejadian_menonjol".into(),
            title: "Napi kabur".into(),
            body: "Dua napi kabur dari Lapas Palu pada dini hari.".into(),
            occurred_at: Timestamp(1_760_000_000_000 + i as i64 * 3_600_000),
            urgent: i.is_multiple_of(2),
        }
    }

    #[test]
    fn an_engine_read_back_places_the_next_items_as_the_original_does() {
        let mut original = Engine::with_defaults(EngineConfig::default());
        for i in 0..40 {
            original.add_item(&item(i));
            if i.is_multiple_of(10) {
                original.add_report(&report(i));
            }
        }
        let mut bytes = Vec::new();
        original.write_snapshot(&mut bytes, &[7, 9]).unwrap();
        let (mut restored, tag) =
            Engine::read_snapshot(EngineConfig::default(), &mut bytes.as_slice(), usize::MAX)
                .unwrap();
        assert_eq!(tag, [7, 9]);
        assert_eq!(story_results(&restored), story_results(&original));
        for i in 40..60 {
            assert_eq!(restored.add_item(&item(i)), original.add_item(&item(i)));
        }
        assert_eq!(story_results(&restored), story_results(&original));
        assert_eq!(restored.reason_of(3), original.reason_of(3));
    }

    #[test]
    fn a_snapshot_of_another_configuration_or_damaged_is_refused() {
        let mut engine = Engine::with_defaults(EngineConfig::default());
        engine.add_item(&item(1));
        let mut bytes = Vec::new();
        engine.write_snapshot(&mut bytes, &[]).unwrap();
        let other = EngineConfig {
            window_ms: 1,
            ..EngineConfig::default()
        };
        assert!(matches!(
            Engine::read_snapshot(other, &mut bytes.as_slice(), usize::MAX),
            Err(SnapshotError::Stale)
        ));
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            Engine::read_snapshot(EngineConfig::default(), &mut &cut[..], usize::MAX),
            Err(SnapshotError::Decode(_))
        ));
        assert!(matches!(
            Engine::read_snapshot(EngineConfig::default(), &mut &b"not this"[..], usize::MAX),
            Err(SnapshotError::NotASnapshot)
        ));
        // A limit below the snapshot's size is a refusal, not an allocation.
        assert!(
            Engine::read_snapshot(EngineConfig::default(), &mut bytes.as_slice(), 100).is_err()
        );
    }
}
