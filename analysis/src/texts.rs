//! Strings kept end to end in one buffer and numbered in the order they came: the engine's
//! ids, titles and terms. A million documents' ids as `String`s cost a heap allocation and 24
//! bytes of header each; here they cost their bytes and one offset.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

/// Numbered strings, end to end.
#[derive(Debug, Default, Clone)]
pub struct Texts {
    text: String,
    /// Where each string ends in `text`.
    ends: Vec<u64>,
}

impl Texts {
    /// Adds `s` and returns its number.
    pub fn push(&mut self, s: &str) -> u32 {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u64);
        (self.ends.len() - 1) as u32
    }

    /// The string numbered `n` (empty for a number never given).
    pub fn get(&self, n: u32) -> &str {
        let i = n as usize;
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = i.checked_sub(1).map_or(0, |s| self.ends[s]);
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// How many strings there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Every string, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len() as u32).map(|n| self.get(n))
    }
}

/// Written as the text and each string's length (a byte or two each), not its end.
impl Encode for Texts {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.text.encode(e)?;
        (self.ends.len() as u64).encode(e)?;
        let mut start = 0;
        for &end in &self.ends {
            (end - start).encode(e)?;
            start = end;
        }
        Ok(())
    }
}

impl<Ctx> Decode<Ctx> for Texts {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        let text: String = Decode::decode(d)?;
        let count = u64::decode(d)?;
        // Every string must lie inside the text, in order, on character boundaries.
        let mut ends = Vec::new();
        let mut end = 0u64;
        for _ in 0..count {
            // Each length is at least a byte: a damaged count runs into the limit, not memory.
            d.claim_bytes_read(1)?;
            end = end.saturating_add(u64::decode(d)?);
            let fits =
                usize::try_from(end).is_ok_and(|e| e <= text.len() && text.is_char_boundary(e));
            if !fits {
                return Err(DecodeError::OtherString(
                    "a string outside the text it is kept in".into(),
                ));
            }
            ends.push(end);
        }
        Ok(Texts { text, ends })
    }
}

bincode::impl_borrow_decode!(Texts);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_keep_their_numbers_and_damage_is_refused() {
        let mut t = Texts::default();
        let words = ["m1", "", "Kebakaran di Lapas Contoh", "é"];
        let ids: Vec<u32> = words.iter().map(|w| t.push(w)).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(t.iter().collect::<Vec<_>>(), words);
        assert_eq!(t.get(9), "");
        let config = bincode::config::standard();
        let bytes = bincode::encode_to_vec(&t, config).unwrap();
        let (back, _): (Texts, usize) = bincode::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), words);
        // An end inside a character, or past the text, is refused.
        let bad = (String::from("é"), 1u64, 1u64);
        let bytes = bincode::encode_to_vec(bad, config).unwrap();
        assert!(bincode::decode_from_slice::<Texts, _>(&bytes, config).is_err());
        let bad = (String::from("ab"), 2u64, 1u64, 2u64);
        let bytes = bincode::encode_to_vec(bad, config).unwrap();
        assert!(bincode::decode_from_slice::<Texts, _>(&bytes, config).is_err());
    }
}
