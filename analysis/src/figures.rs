//! Figures in text: a number, what it counts, and what happened to them (`50 narapidana
//! kabur` is 50 people who escaped; `12 unit ponsel ditemukan` is 12 phones found). Used to flag
//! media text whose figures disagree with the site's own report of the same story.
//!
//! A figure is a number (digits, or a number word up to twenty) followed within three words by
//! a counted noun; the event is the first event word within five words after the noun. Only
//! figures with an event are compared, since a bare count (`1.500 warga binaan`, the capacity)
//! is not a claim about the event.

use serde::Serialize;

/// One figure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, bincode::Encode, bincode::Decode)]
pub struct Figure {
    /// `orang:kabur`, `ponsel:ditemukan`, …
    pub key: String,
    pub value: u64,
}

const NUMBER_WORDS: &[(&str, u64)] = &[
    ("satu", 1),
    ("seorang", 1),
    ("dua", 2),
    ("tiga", 3),
    ("empat", 4),
    ("lima", 5),
    ("enam", 6),
    ("tujuh", 7),
    ("delapan", 8),
    ("sembilan", 9),
    ("sepuluh", 10),
    ("sebelas", 11),
    ("belasan", 0),
    ("dua belas", 12),
    ("puluhan", 0),
    ("ratusan", 0),
];

/// Counted nouns → their class.
const NOUNS: &[(&str, &str)] = &[
    ("narapidana", "orang"),
    ("napi", "orang"),
    ("warga", "orang"),
    ("wbp", "orang"),
    ("tahanan", "orang"),
    ("orang", "orang"),
    ("penghuni", "orang"),
    ("anak", "orang"),
    ("andikpas", "orang"),
    ("klien", "orang"),
    ("pria", "orang"),
    ("wanita", "orang"),
    ("petugas", "petugas"),
    ("sipir", "petugas"),
    ("pegawai", "petugas"),
    ("pelaku", "orang"),
    ("ponsel", "ponsel"),
    ("hp", "ponsel"),
    ("handphone", "ponsel"),
    ("telepon", "ponsel"),
    ("unit", "unit"),
    ("gram", "gram"),
    ("kilogram", "kilogram"),
    ("kg", "kilogram"),
    ("paket", "paket"),
    ("butir", "butir"),
    ("sel", "sel"),
    ("kamar", "sel"),
    ("blok", "blok"),
];

/// Event words → the event.
const EVENTS: &[(&str, &str)] = &[
    ("kabur", "kabur"),
    ("melarikan", "kabur"),
    ("lolos", "kabur"),
    ("buron", "kabur"),
    ("tewas", "tewas"),
    ("meninggal", "tewas"),
    ("wafat", "tewas"),
    ("luka", "luka"),
    ("terluka", "luka"),
    ("ditemukan", "ditemukan"),
    ("disita", "ditemukan"),
    ("diamankan", "ditemukan"),
    ("ditangkap", "ditangkap"),
    ("tertangkap", "ditangkap"),
    ("menerima", "remisi"),
    ("mendapat", "remisi"),
    ("remisi", "remisi"),
    ("bebas", "bebas"),
    ("dipindahkan", "dipindahkan"),
    ("terbakar", "terbakar"),
    ("positif", "positif"),
];

fn number_at(w: &[&str], i: usize) -> Option<(u64, usize)> {
    let t = &w[i];
    if crate::text::is_number(t) && t.len() <= 9 {
        return t.parse().ok().map(|v| (v, 1));
    }
    if w.get(i + 1).is_some_and(|n| *n == "belas") {
        let unit = NUMBER_WORDS.iter().find(|(k, _)| k == t).map(|(_, v)| *v)?;
        return (unit > 1 && unit < 10).then_some((10 + unit, 2));
    }
    NUMBER_WORDS
        .iter()
        .find(|(k, v)| k == t && *v > 0)
        .map(|(_, v)| (*v, 1))
}

/// The figures of a text, in order.
pub fn figures(text: &str) -> Vec<Figure> {
    crate::text::with_words(text, figures_of)
}

/// Like [`figures`] on text already split by [`crate::text::words`].
pub fn figures_of(w: &[&str]) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let Some((value, used)) = number_at(w, i) else {
            i += 1;
            continue;
        };
        let class_of = |x: &&str| NOUNS.iter().find(|(k, _)| k == x).map(|(_, c)| *c);
        let start = i + used;
        let first = (start..w.len().min(start + 3)).find(|&k| class_of(&w[k]).is_some());
        let mut noun = None;
        let mut j = start;
        if let Some(mut k) = first {
            noun = class_of(&w[k]);
            // A run of nouns names the thing counted last (`unit ponsel`, `orang napi`).
            while let Some(next) = w.get(k + 1).and_then(class_of) {
                if next != "orang" {
                    noun = Some(next);
                }
                k += 1;
            }
            j = k + 1;
        }
        if let Some(noun) = noun {
            let event = w[j.min(w.len())..w.len().min(j + 6)]
                .iter()
                .find_map(|x| EVENTS.iter().find(|(k, _)| k == x).map(|(_, e)| *e));
            if let Some(event) = event {
                out.push(Figure {
                    key: format!("{noun}:{event}"),
                    value,
                });
            }
        }
        i += used;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(String, u64)> {
        figures(text)
            .into_iter()
            .map(|f| (f.key, f.value))
            .collect()
    }

    #[test]
    fn counts_with_their_event() {
        for (text, key, count) in [
            ("Sebanyak 50 narapidana kabur dari Lapas", "orang:kabur", 50),
            ("52 warga binaan melarikan diri", "orang:kabur", 52),
            ("dua orang napi tewas", "orang:tewas", 2),
            (
                "petugas menemukan 12 unit ponsel yang kemudian disita",
                "ponsel:ditemukan",
                12,
            ),
            ("tujuh belas tahanan dipindahkan", "orang:dipindahkan", 17),
        ] {
            assert_eq!(keys(text), [(key.into(), count)], "{text}");
        }
        // A capacity is not a claim about the event.
        assert!(keys("Lapas berkapasitas 1.500 orang itu dihuni 3.000 warga binaan").is_empty());
    }
}
