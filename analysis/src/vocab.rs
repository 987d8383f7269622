//! The engine's vocabulary: every term it has met, numbered in the order it met them.
//!
//! Looking a word up is the commonest thing the engine does (every content word of every item),
//! so the index is a [`WordMap`], which packs short words into its keys. The terms themselves
//! are [`Texts`], end to end in one string.

use crate::text::WordMap;
use crate::texts::Texts;
use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

/// Terms and their numbers.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    /// Every term, numbered.
    terms: Texts,
    /// Term → number.
    index: WordMap<u32>,
}

impl Vocabulary {
    /// The number of `term`, if it has been met.
    pub fn get(&self, term: &str) -> Option<u32> {
        self.index.get(term).copied()
    }

    /// The number of `term`, given a new one if it has not been met.
    pub fn intern(&mut self, term: &str) -> u32 {
        if let Some(id) = self.get(term) {
            return id;
        }
        let id = self.terms.push(term);
        self.index(term, id);
        id
    }

    fn index(&mut self, term: &str, id: u32) {
        self.index.insert(term, id);
    }

    /// The term numbered `id` (empty for a number never given).
    pub fn term(&self, id: u32) -> &str {
        self.terms.get(id)
    }

    /// How many terms there are.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether no term has been met.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

/// Only the terms are written; the index is rebuilt when they are read back.
impl Encode for Vocabulary {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.terms.encode(e)
    }
}

impl<Ctx> Decode<Ctx> for Vocabulary {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        let terms: Texts = Decode::decode(d)?;
        let mut vocabulary = Vocabulary::default();
        for (id, term) in terms.iter().enumerate() {
            vocabulary.index(term, id as u32);
        }
        vocabulary.terms = terms;
        Ok(vocabulary)
    }
}

bincode::impl_borrow_decode!(Vocabulary);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_keep_their_numbers_short_or_long_and_survive_a_round_trip() {
        let mut v = Vocabulary::default();
        let long = "pemasyarakatannya-berkelanjutan";
        let words = [
            "kabur",
            "",
            "a",
            "lapas\0",
            long,
            "123456789012345",
            "1234567890123456",
        ];
        let ids: Vec<u32> = words.iter().map(|w| v.intern(w)).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(v.intern("kabur"), 0);
        assert_eq!(v.get("lapas"), None, "a trailing zero byte is another word");
        for (w, id) in words.iter().zip(&ids) {
            assert_eq!(v.term(*id), *w);
        }
        assert_eq!(v.term(99), "");
        let config = bincode::config::standard();
        let bytes = bincode::encode_to_vec(&v, config).unwrap();
        let (back, _): (Vocabulary, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
        for (w, id) in words.iter().zip(&ids) {
            assert_eq!(back.get(w), Some(*id));
            assert_eq!(back.term(*id), *w);
        }
    }
}
