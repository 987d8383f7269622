//! Indonesian text normalisation: lower case, punctuation removed, numbers kept as tokens
//! (`1.500` and `1,500` become `1500`), stopwords dropped, and an optional light stemmer that
//! removes particles and possessive endings (`-lah`, `-kah`, `-pun`, `-nya`, `-ku`, `-mu`).
//!
//! The stemmer is deliberately light. Full Indonesian stemming (Nazief–Adriani) also strips
//! derivational affixes (`me-`, `di-`, `-kan`), which merges words analysts want apart
//! (`tahanan` "detainee" and `tahan` "hold"); the fixture measures both settings
//! (`tests/tests/analysis.rs`).

use std::borrow::Cow;
use std::sync::OnceLock;

/// Function words that carry no topic. Written for this project.
const STOPWORDS: &str =
    "ada adalah agar akan aku anda antara apa apakah atas atau bagai bagaimana \
bagi bahkan bahwa baik banyak baru beberapa begitu belum bersama beserta bila bisa boleh bukan \
cukup dalam dan dapat dari demi dengan di dia ia ialah ini itu jadi jika juga kalau kami kamu \
karena ke kemudian kepada ketika kini kita lagi lain lalu lebih maka mana masih mereka meski \
mungkin namun nanti oleh pada para pun saat saja sama sambil sampai sang sangat saya sebagai \
sebelum sedang sehingga sejak sekitar selain selama semua seperti serta sesudah setelah setiap \
sudah supaya tak tanpa telah tentang terhadap tersebut tetapi tidak untuk walau yaitu yakni yang \
hal pihak kata ujar ucap tutur jelas menurut kepadanya baca juga selengkapnya berita artikel \
red editor reporter wib wita wit hari senin selasa rabu kamis jumat sabtu minggu pukul tahun \
bulan tanggal se nya lah kah pula pun hingga usai kala tengah dini pagi siang sore malam";

fn stopwords() -> &'static WordMap<()> {
    static SET: OnceLock<WordMap<()>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut set = WordMap::default();
        for w in STOPWORDS.split_whitespace() {
            set.insert(w, ());
        }
        set
    })
}

/// Whether a (lower-case) word is a stopword.
pub fn is_stopword(word: &str) -> bool {
    stopwords().contains(word)
}

/// How to normalise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Apply the light stemmer.
    pub stem: bool,
}

/// Lower-case words and numbers of `text`, in order, with punctuation removed. Numbers written
/// with thousands separators (`1.500`, `2,5`) keep their digits together.
pub fn words(text: &str) -> Vec<String> {
    let mut buf = String::with_capacity(text.len());
    push_words(text, &mut buf);
    split_words(&buf).into_iter().map(str::to_owned).collect()
}

/// Appends the words of `text` (as [`words`] reads them) to `buf`, each followed by one space:
/// the engine reads an item's words as slices of one buffer instead of a string each.
pub fn push_words(text: &str, buf: &mut String) {
    let mut in_word = false;
    let mut prev = ' ';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        if c.is_ascii_alphanumeric() {
            buf.push(c.to_ascii_lowercase());
            in_word = true;
        } else if c.is_alphanumeric() {
            // Lower case never yields a space, so the words stay apart.
            buf.extend(c.to_lowercase());
            in_word = true;
        } else if (c == '.' || c == ',')
            && prev.is_ascii_digit()
            && next.is_some_and(|n| n.is_ascii_digit())
        {
            // A dot or comma between two digits belongs to the number.
        } else if c == '-' && in_word && next.is_some_and(char::is_alphanumeric) {
            // A hyphen inside a word (`warga-binaan`, `II-A`) joins it.
        } else if in_word {
            buf.push(' ');
            in_word = false;
        }
        prev = c;
    }
    if in_word {
        buf.push(' ');
    }
}

/// Calls `f` with the words of `text`, read as [`words`] reads them.
pub fn with_words<R>(text: &str, f: impl FnOnce(&[&str]) -> R) -> R {
    let mut buf = String::with_capacity(text.len() + 1);
    push_words(text, &mut buf);
    f(&split_words(&buf))
}

/// The words of a buffer written by [`push_words`].
pub fn split_words(buf: &str) -> Vec<&str> {
    buf.split(' ').filter(|w| !w.is_empty()).collect()
}

/// The content tokens of `text`: words without stopwords, optionally stemmed.
pub fn content_tokens(text: &str, options: NormalizeOptions) -> Vec<String> {
    let mut buf = String::with_capacity(text.len());
    push_words(text, &mut buf);
    content_of(&split_words(&buf), options)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The content tokens of already split words.
pub fn content_of<'a>(words: &[&'a str], options: NormalizeOptions) -> Vec<&'a str> {
    words
        .iter()
        .filter(|w| {
            // Single letters are noise; single digits are figures.
            !is_stopword(w) && (!is_one_char(w) || w.chars().all(char::is_numeric))
        })
        .map(|w| if options.stem { stem(w) } else { w })
        .collect()
}

fn is_one_char(w: &str) -> bool {
    let mut chars = w.chars();
    chars.next().is_some() && chars.next().is_none()
}

/// Phrases that mark a sentence as a portal's furniture rather than the article: syndication
/// notes, "read also" links, bylines, calls to follow a channel.
const BOILERPLATE: &[&str] = &[
    "baca juga",
    "simak juga",
    "lihat juga",
    "artikel ini telah tayang",
    "telah tayang di",
    "simak berita",
    "ikuti berita",
    "dapatkan update",
    "dapatkan informasi",
    "google news",
    "whatsapp channel",
    "saluran whatsapp",
    "klik di sini",
    "klik link",
    "saksikan video",
    "tonton video",
    "hak cipta",
    "copyright",
    "all rights reserved",
    "editor:",
    "penulis:",
    "reporter:",
    "pewarta:",
    "sumber:",
    "foto:",
    "advertisement",
    "scroll to continue",
];

/// Labels that open a credit line (`Editor : Fulan`, `Red: Fulan`), read at the start of a
/// sentence after the space some portals put before the colon is removed.
const CREDIT_LABELS: &[&str] = &[
    "red:",
    "redaktur:",
    "penyunting:",
    "kontributor:",
    "laporan wartawan",
];

/// Whether a sentence is a portal's furniture: a boilerplate phrase, a credit line, or a bare
/// code in parentheses (`(ant/mhd)`, `(*/sb)`, `(hms)`) that signs a copy. `lower` is scratch
/// space, kept by the caller so that sentences cost no allocation.
fn is_furniture(sentence: &str, lower: &mut String) -> bool {
    let trimmed = sentence.trim();
    lower.clear();
    if trimmed.is_ascii() {
        lower.push_str(trimmed);
        lower.make_ascii_lowercase();
        if lower.contains(" :") {
            *lower = lower.replace(" :", ":");
        }
    } else {
        for c in trimmed.chars() {
            // The space some portals put before a colon goes (`Editor : Fulan`).
            if c == ':' && lower.ends_with(' ') {
                lower.pop();
            }
            lower.extend(c.to_lowercase());
        }
    }
    if BOILERPLATE.iter().any(|b| lower.contains(b)) {
        return true;
    }
    if CREDIT_LABELS.iter().any(|l| lower.starts_with(l)) {
        return true;
    }
    trimmed.starts_with('(')
        && trimmed.ends_with(')')
        && trimmed.chars().count() <= 24
        && !trimmed.contains(' ')
}

/// The text without boilerplate sentences (see [`BOILERPLATE`]), credit lines and signature
/// codes, and without a leading dateline (see [`strip_dateline`]). Sentences end at `.`, `!`,
/// `?` or a line break. A text with nothing to remove is returned as it is, without a copy.
pub fn strip_boilerplate(text: &str) -> Cow<'_, str> {
    let text = strip_dateline(text);
    let mut lower = String::new();
    let mut kept: Option<String> = None;
    let mut start = 0;
    let mut sentence_end = |start: usize, end: usize, kept: &mut Option<String>| {
        let sentence = &text[start..end];
        if is_furniture(sentence, &mut lower) {
            kept.get_or_insert_with(|| text[..start].to_owned());
        } else if let Some(out) = kept {
            out.push_str(sentence);
        }
    };
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = match c {
            '\n' | '!' | '?' => true,
            // A dot ends a sentence unless it sits inside a number (1.500) or an abbreviation
            // followed directly by a letter.
            '.' => chars.peek().is_none_or(|(_, n)| n.is_whitespace()),
            _ => false,
        };
        if ends {
            let end = i + c.len_utf8();
            sentence_end(start, end, &mut kept);
            start = end;
        }
    }
    if start < text.len() {
        sentence_end(start, text.len(), &mut kept);
    }
    match kept {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(text),
    }
}

/// How far into a text a dateline may reach, in bytes.
const DATELINE_MAX: usize = 64;

/// The text without its leading datelines: `JAKARTA, KOMPAS.com - `, `Kutacane (ANTARA) - `,
/// `POS-KUPANG.COM, KUPANG – `, `Denpasar - `. A syndicated copy often puts its own dateline
/// in front of the original's, so they are removed while they last. A dateline is at most six
/// words before a spaced dash, each a capitalised word, a word with a dot (a portal's domain) or
/// a word in parentheses.
pub fn strip_dateline(text: &str) -> &str {
    let mut rest = text.trim_start();
    loop {
        let head_end = rest
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| i >= DATELINE_MAX)
            .unwrap_or(rest.len());
        let head = &rest[..head_end];
        let Some((at, dash)) = [" - ", " – ", " — "]
            .iter()
            .filter_map(|d| head.find(d).map(|at| (at, d.len())))
            .min()
        else {
            return rest;
        };
        let words: Vec<&str> = rest[..at].split_whitespace().collect();
        let dateline_word = |w: &&str| {
            let w = w.trim_end_matches(',');
            (w.starts_with('(') && w.ends_with(')'))
                || w.contains('.')
                || w.chars().next().is_some_and(char::is_uppercase)
        };
        if words.is_empty() || words.len() > 6 || !words.iter().all(dateline_word) {
            return rest;
        }
        rest = rest[at + dash..].trim_start();
    }
}

/// Removes particles and possessive endings from a word of at least five letters. Only endings
/// go, so the stem is the start of the word.
pub fn stem(word: &str) -> &str {
    let mut w = word;
    for suffix in ["lah", "kah", "tah", "pun"] {
        if w.len() >= suffix.len() + 4 && w.ends_with(suffix) {
            w = &w[..w.len() - suffix.len()];
            break;
        }
    }
    for suffix in ["nya", "ku", "mu"] {
        if w.len() >= suffix.len() + 4 && w.ends_with(suffix) {
            w = &w[..w.len() - suffix.len()];
            break;
        }
    }
    w
}

/// Whether a token is a number.
pub fn is_number(token: &str) -> bool {
    !token.is_empty() && token.chars().all(|c| c.is_ascii_digit())
}

/// A stable 64-bit hash (FNV-1a followed by a SplitMix64 finaliser), the same on every machine
/// and run, so fingerprints can be stored.
pub fn hash64(data: &[u8]) -> u64 {
    mix64(fnv(FNV_START, data))
}

/// The hash of `tokens` joined by single spaces, without joining them: the same value as
/// `hash64(tokens.join(" ").as_bytes())`.
pub fn hash_tokens<S: AsRef<str>>(tokens: &[S]) -> u64 {
    let mut h = FNV_START;
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            h = fnv(h, b" ");
        }
        h = fnv(h, t.as_ref().as_bytes());
    }
    mix64(h)
}

/// Where FNV-1a starts.
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `data`, from state `h`: [`hash64`] of several pieces without joining them.
pub(crate) fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fast hasher for the engine's maps of words, ids and numbers (SipHash, the standard
/// one, was a tenth of the engine's time). Eight bytes at a time are folded in by
/// rotate-xor-multiply and the result is finished with [`mix64`]. Each process starts from its
/// own random seed, so which keys share a bucket cannot be worked out from outside, although
/// this is not a keyed hash in the cryptographic sense: the maps hold at most a window of
/// media text, and a flood of crafted words slows the analysis, never the reports.
#[derive(Clone, Copy, Debug)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Builds [`FastHasher`]s from the process's seed.
#[derive(Clone, Copy, Debug)]
pub struct FastState(u64);

impl Default for FastState {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        FastState(*SEED.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x5a5a);
            h.finish()
        }))
    }
}

impl std::hash::BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// A map with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;
/// A set with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, FastState>;

/// A map keyed by words, for the look-ups made for every word of every item. Words of up to
/// 15 bytes (nearly all) are packed into the key itself (see [`packed`]): a look-up hashes and
/// compares two machine words instead of hashing bytes and comparing strings kept elsewhere
/// in memory. Longer words are kept in a second map.
#[derive(Debug, Clone)]
pub struct WordMap<V> {
    short: FastMap<u128, V>,
    long: FastMap<Box<str>, V>,
}

impl<V> Default for WordMap<V> {
    fn default() -> Self {
        WordMap {
            short: FastMap::default(),
            long: FastMap::default(),
        }
    }
}

/// A word of up to 15 bytes as one number: its bytes, then its length in the last byte, so that
/// two words share a key only when they are equal.
pub fn packed(word: &str) -> Option<u128> {
    let bytes = word.as_bytes();
    if bytes.len() > 15 {
        return None;
    }
    let mut key = [0u8; 16];
    key[..bytes.len()].copy_from_slice(bytes);
    key[15] = bytes.len() as u8;
    Some(u128::from_le_bytes(key))
}

impl<V> WordMap<V> {
    pub fn get(&self, word: &str) -> Option<&V> {
        match packed(word) {
            Some(key) => self.short.get(&key),
            None => self.long.get(word),
        }
    }

    pub fn contains(&self, word: &str) -> bool {
        self.get(word).is_some()
    }

    /// The value of `word`, inserted by `make` if there is none.
    pub fn entry_or_insert_with(&mut self, word: &str, make: impl FnOnce() -> V) -> &mut V {
        match packed(word) {
            Some(key) => self.short.entry(key).or_insert_with(make),
            None => self.long.entry(word.into()).or_insert_with(make),
        }
    }

    pub fn insert(&mut self, word: &str, value: V) {
        match packed(word) {
            Some(key) => {
                self.short.insert(key, value);
            }
            None => {
                self.long.insert(word.into(), value);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.short.values().chain(self.long.values())
    }
}

/// SplitMix64's finaliser.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_tokens_equals_hashing_them_joined() {
        for tokens in [
            vec![],
            vec!["a".to_owned()],
            vec!["dua".into(), "napi".into(), "1500".into()],
        ] {
            assert_eq!(hash_tokens(&tokens), hash64(tokens.join(" ").as_bytes()));
        }
        // The fast hasher tells apart what differs in length only.
        use std::hash::BuildHasher;
        let s = FastState::default();
        assert_ne!(s.hash_one("ab"), s.hash_one("ab\0"));
        assert_eq!(s.hash_one("kabur"), FastState::default().hash_one("kabur"));
    }

    #[test]
    fn numbers_stay_whole_and_punctuation_goes() {
        assert_eq!(
            words("Sebanyak 1.500 WBP (warga-binaan) menerima Remisi, Rp2,5 juta!"),
            [
                "sebanyak",
                "1500",
                "wbp",
                "wargabinaan",
                "menerima",
                "remisi",
                "rp25",
                "juta"
            ]
        );
    }

    #[test]
    fn stopwords_go_and_stemming_is_optional() {
        let text = "Petugasnya tidak melihat bahwa pintunya terbuka";
        assert_eq!(
            content_tokens(text, NormalizeOptions::default()),
            ["petugasnya", "melihat", "pintunya", "terbuka"]
        );
        assert_eq!(
            content_tokens(text, NormalizeOptions { stem: true }),
            ["petugas", "melihat", "pintu", "terbuka"]
        );
    }

    #[test]
    fn boilerplate_sentences_go() {
        let text = "Dua napi kabur. Baca juga: Razia di Rutan. Petugas mengejar!\nArtikel ini telah tayang di Portal dengan judul X.\nEditor: Fulan";
        assert_eq!(
            strip_boilerplate(text),
            "Dua napi kabur. Petugas mengejar!\n\n"
        );
        assert_eq!(
            strip_boilerplate("Sebanyak 1.500 orang."),
            "Sebanyak 1.500 orang."
        );
    }

    #[test]
    fn datelines_and_credit_lines_go() {
        assert_eq!(
            strip_dateline("JAKARTA, KOMPAS.com - Sebanyak 1.186 napi bebas."),
            "Sebanyak 1.186 napi bebas."
        );
        assert_eq!(
            strip_dateline("JAKARTA, iNews.id - Jakarta (ANTARA) - Dua napi kabur."),
            "Dua napi kabur."
        );
        assert_eq!(
            strip_dateline("POS-KUPANG.COM, KUPANG – Remisi Natal."),
            "Remisi Natal."
        );
        // A sentence that happens to hold a dash is not a dateline.
        assert_eq!(
            strip_dateline("Dua napi kabur - keduanya residivis."),
            "Dua napi kabur - keduanya residivis."
        );
        let copy = "Denpasar - Dua napi kabur. Polisi mengejar.\nEditor : Dwi\nRed: Fulan\nSumber : Antara\n(ant/mhd)";
        assert_eq!(
            content_tokens(&strip_boilerplate(copy), NormalizeOptions::default()),
            content_tokens(
                "Dua napi kabur. Polisi mengejar.",
                NormalizeOptions::default()
            )
        );
    }

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(hash64(b"lapas"), hash64(b"lapas"));
        assert_ne!(hash64(b"lapas"), hash64(b"rutan"));
        // Pinned, so stored fingerprints stay valid across releases.
        assert_eq!(hash64(b""), mix64(0xcbf2_9ce4_8422_2325));
    }
}
