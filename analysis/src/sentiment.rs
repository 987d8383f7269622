//! Lexicon-based sentiment for Indonesian, from `config/sentimen.tsv` (written for this
//! project). Each word (or two-word phrase) of the lexicon adds its score; a negator up to
//! two content words before it (`tidak aman`, `belum kondusif`, `bukan kerusuhan`, `tidak ada
//! napi yang kabur`) flips and halves
//! it; an intensifier right before or after it (`sangat buruk`, `aman sekali`) multiplies it by
//! 1.5. The sum `s` becomes `s / sqrt(s² + 4)`, in −1..1, so one strong word gives about ±0.4
//! and a string of them approaches ±1. A story's sentiment is the mean of its items'.

use crate::text::words;
use crate::text::WordMap;

/// The lexicon shipped in `config/sentimen.tsv`.
pub const BUILTIN_TSV: &str = include_str!("../../config/sentimen.tsv");

const NEGATORS: &[&str] = &[
    "tidak", "tak", "bukan", "belum", "tanpa", "jangan", "enggan", "gagal", "tiada", "nggak",
    "gak", "ga",
];
const INTENSIFIERS: &[&str] = &[
    "sangat", "amat", "sekali", "paling", "terlalu", "makin", "semakin", "sungguh", "benar",
    "begitu",
];
/// How far back a negator reaches.
const NEGATION_WINDOW: usize = 2;

/// The class a score falls in, as the breakdowns and the dashboard name it: `negatif` below
/// −0.2, `positif` above 0.2, `netral` between. A document's score is an `f32`; a story's is
/// an `f64` rounded to three decimals, which keeps its class when narrowed to an `f32`.
pub fn class(score: f32) -> &'static str {
    if score < -0.2 {
        "negatif"
    } else if score > 0.2 {
        "positif"
    } else {
        "netral"
    }
}

/// The lexicon.
#[derive(Clone, Debug, Default)]
pub struct Lexicon {
    words: WordMap<f64>,
    /// Two-word phrases: first word → (second word, score).
    phrases: WordMap<Vec<(String, f64)>>,
}

/// A lexicon line that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("sentiment lexicon line {line}: {reason}")]
pub struct LexiconError {
    pub line: usize,
    pub reason: String,
}

impl Lexicon {
    /// How many words and phrases it scores.
    pub fn len(&self) -> usize {
        self.words.len() + self.phrases.values().map(Vec::len).sum::<usize>()
    }

    /// Whether it scores nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shipped lexicon.
    pub fn builtin() -> &'static Lexicon {
        static L: std::sync::OnceLock<Lexicon> = std::sync::OnceLock::new();
        // The shipped file is checked by a unit test; an empty lexicon is the fallback.
        L.get_or_init(|| Lexicon::from_tsv(BUILTIN_TSV).unwrap_or_default())
    }

    /// Reads `word<TAB>score` lines.
    pub fn from_tsv(text: &str) -> Result<Lexicon, LexiconError> {
        let mut lexicon = Lexicon::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: &str| LexiconError {
                line: n + 1,
                reason: reason.to_owned(),
            };
            let (term, score) = line.split_once('\t').ok_or_else(|| err("no tab"))?;
            let score: f64 = score
                .trim()
                .parse()
                .map_err(|_| err("the score is not a number"))?;
            if !(-1.0..=1.0).contains(&score) {
                return Err(err("the score is outside -1..1"));
            }
            match words(term).as_slice() {
                [w] => {
                    lexicon.words.insert(w, score);
                }
                [a, b] => {
                    let seconds = lexicon.phrases.entry_or_insert_with(a, Vec::new);
                    match seconds.iter_mut().find(|(x, _)| x == b) {
                        Some(entry) => entry.1 = score,
                        None => seconds.push((b.clone(), score)),
                    }
                }
                _ => return Err(err("a term is one or two words")),
            }
        }
        Ok(lexicon)
    }

    fn word_score(&self, w: &str) -> Option<f64> {
        self.words.get(w).copied().or_else(|| {
            ["nya", "lah", "kah"]
                .iter()
                .find_map(|s| w.strip_suffix(s).and_then(|b| self.words.get(b).copied()))
        })
    }

    /// The sentiment of a text, in −1..1.
    pub fn score(&self, text: &str) -> f64 {
        crate::text::with_words(text, |w| self.score_words(w))
    }

    /// Like [`Lexicon::score`] on text already split by [`crate::text::words`].
    pub fn score_words(&self, w: &[&str]) -> f64 {
        let mut sum = 0.0;
        let mut i = 0;
        while i < w.len() {
            let (score, used) = match w.get(i + 1).and_then(|next| {
                self.phrases
                    .get(w[i])?
                    .iter()
                    .find(|(second, _)| second == next)
                    .map(|(_, score)| score)
            }) {
                Some(&s) => (s, 2),
                None => match self.word_score(w[i]) {
                    Some(s) => (s, 1),
                    None => {
                        i += 1;
                        continue;
                    }
                },
            };
            let mut s = score;
            if negated(w, i) {
                s = -s * 0.5;
            }
            let prev = i.checked_sub(1).and_then(|p| w.get(p));
            let next = w.get(i + used);
            if prev.is_some_and(|p| INTENSIFIERS.contains(p))
                || next.is_some_and(|n| INTENSIFIERS.contains(n))
            {
                s *= 1.5;
            }
            sum += s;
            i += used;
        }
        sum / (sum * sum + 4.0).sqrt()
    }
}

/// Whether a negator comes within [`NEGATION_WINDOW`] content words before word `i`
/// (stopwords such as `ada` and `yang` are not counted: "tidak ada napi yang kabur").
fn negated(w: &[&str], i: usize) -> bool {
    let mut counted = 0;
    for word in w[..i].iter().rev() {
        if NEGATORS.contains(word) {
            return true;
        }
        if !crate::text::is_stopword(word) {
            counted += 1;
            if counted >= NEGATION_WINDOW {
                return false;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(text: &str) -> f64 {
        Lexicon::builtin().score(text)
    }

    #[test]
    fn the_shipped_lexicon_reads() {
        let l = Lexicon::from_tsv(BUILTIN_TSV).unwrap();
        assert!(l.words.len() > 150, "{}", l.words.len());
        assert!(Lexicon::from_tsv("aman\t3").is_err());
    }

    #[test]
    fn polarity_negation_and_intensifiers() {
        assert!(score("Situasi lapas aman dan kondusif") > 0.3);
        assert!(score("Kerusuhan dan kebakaran di rutan, dua napi tewas") < -0.6);
        assert_eq!(score("Petugas mendata warga binaan"), 0.0);
        // Negation flips.
        assert!(score("Situasi tidak aman") < 0.0);
        assert!(score("Keadaan belum kondusif") < 0.0);
        assert!(score("Isu itu bukan kerusuhan") > 0.0);
        assert!(score("Tidak ada napi yang kabur") > 0.0);
        // Intensifiers strengthen.
        assert!(score("Pelayanan sangat buruk") < score("Pelayanan buruk"));
        assert!(score("aman sekali") > score("aman"));
        // Phrases count once.
        assert!(score("pungutan liar") < -0.3);
        for t in [
            "",
            "aman aman aman aman aman aman aman aman",
            "kabur kabur kabur kabur",
        ] {
            let s = score(t);
            assert!((-1.0..=1.0).contains(&s), "{t}: {s}");
        }
    }
}
