//! The normaliser the PII guard matches on: it undoes the formatting that hides an identity
//! number from a plain matcher and remembers, for every character it writes, which character of
//! the original text it came from, so that findings and redaction point at the original.
//!
//! The steps, in order, for every character of the input:
//! 1. compatibility normalisation (NFKC) of the character on its own, so full-width forms,
//!    Roman numeral signs, circled and mathematical digits and exotic spaces become their plain
//!    forms (composition across characters is not attempted: each output character must come
//!    from exactly one input character);
//! 2. invisible characters are dropped: format characters (general category Cf: zero-width
//!    space, joiners, word joiner, soft hyphen, byte-order mark, bidirectional controls, tags),
//!    the combining grapheme joiner, variation selectors and Hangul fillers;
//! 3. every Unicode decimal digit (general category Nd: Arabic-Indic, Devanagari, Bengali, Thai
//!    and the rest) becomes the ASCII digit of the same value;
//! 4. Cyrillic, Greek and other letters that look like the Latin `A`, `B`, `I` or `V` (capital
//!    or small) become that Latin letter;
//! 5. every run of whitespace and punctuation (`+` excepted, since it introduces a country
//!    code) becomes one separator: a single space when it may join the groups of one number,
//!    or `", "` when it ends a number (see [`SEPARATOR_LIMIT`]).
//!
//! The result of normalising a normalised text is that text (the function is idempotent).

use unicode_normalization::UnicodeNormalization;

/// The longest run of separator characters (counted after the steps above) that still joins
/// two groups of digits into one number: `3201  0145` (two spaces) and `0812 - 3456` (three)
/// are one number each. A longer run, a run holding a list mark (`,` or `;`), a sentence end
/// (`.`, `!` or `?` followed by whitespace) or more than one line break ends the number.
pub const SEPARATOR_LIMIT: usize = 3;

/// A normalised text and, for each of its characters, the index (in characters, from 0) of
/// the original character it came from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Normalised {
    pub chars: Vec<char>,
    pub origin: Vec<usize>,
}

/// The normalised form of a text: see the module documentation of [`crate::pii`].
pub fn normalise(text: &str) -> String {
    Normalised::new(text).chars.into_iter().collect()
}

/// The normalised form of one character of the input, in order (empty for an invisible one):
/// steps 1 to 4 of the module documentation, without the separator runs of step 5.
fn normalised_char(c: char) -> impl Iterator<Item = char> {
    let expanded: Vec<char> = if c.is_ascii() {
        vec![c]
    } else {
        std::iter::once(c).nfkc().collect()
    };
    expanded
        .into_iter()
        .filter(|&d| !is_invisible(d))
        .map(|d| fold_confusable(ascii_digit(d)))
}

/// The first character of `text`'s normalised form that is not a separator, reading only as
/// far as it: the start of a body, where a finding that began in the title would go on.
pub(crate) fn first_visible(text: &str) -> Option<char> {
    text.chars()
        .flat_map(normalised_char)
        .find(|&c| !is_separator(c))
}

/// The last character of `text`'s normalised form that is not a separator, reading from the
/// end only as far as it: the end of a title.
pub(crate) fn last_visible(text: &str) -> Option<char> {
    text.chars().rev().find_map(|c| {
        normalised_char(c)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|&d| !is_separator(d))
    })
}

/// The separator characters seen since the last other character.
#[derive(Default)]
struct SeparatorRun {
    /// Index of the original character the run started at.
    start: Option<usize>,
    len: usize,
    list_mark: bool,
    sentence_end: bool,
    after_stop: bool,
    line_breaks: usize,
}

impl Normalised {
    pub fn new(text: &str) -> Normalised {
        let mut out = Normalised {
            chars: Vec::with_capacity(text.len()),
            origin: Vec::with_capacity(text.len()),
        };
        let mut run = SeparatorRun::default();
        for (index, c) in text.chars().enumerate() {
            if c.is_ascii() {
                out.push(c, index, &mut run);
            } else {
                for d in std::iter::once(c).nfkc() {
                    out.push(d, index, &mut run);
                }
            }
        }
        out.flush(&mut run);
        out
    }

    fn push(&mut self, c: char, index: usize, run: &mut SeparatorRun) {
        if is_invisible(c) {
            return;
        }
        let c = fold_confusable(ascii_digit(c));
        if is_separator(c) {
            if run.start.is_none() {
                run.start = Some(index);
            }
            run.len += 1;
            run.list_mark |= is_list_mark(c);
            run.sentence_end |= run.after_stop && c.is_whitespace();
            run.after_stop = matches!(c, '.' | '!' | '?' | '\u{6d4}' | '\u{3002}' | '\u{964}');
            if matches!(
                c,
                '\n' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
            ) {
                run.line_breaks += 1;
            }
        } else {
            self.flush(run);
            self.chars.push(c);
            self.origin.push(index);
        }
    }

    /// Writes the pending separator run as its canonical form.
    fn flush(&mut self, run: &mut SeparatorRun) {
        let Some(start) = run.start else {
            return;
        };
        let ends_number =
            run.list_mark || run.sentence_end || run.len > SEPARATOR_LIMIT || run.line_breaks > 1;
        if ends_number {
            self.chars.push(',');
            self.origin.push(start);
        }
        self.chars.push(' ');
        self.origin.push(start);
        *run = SeparatorRun::default();
    }
}

/// Whether a character is whitespace or punctuation (after NFKC; `+` is not a separator).
pub(crate) fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_whitespace() || (c.is_ascii_punctuation() && c != '+');
    }
    c.is_whitespace() || in_ranges(c, PUNCTUATION)
}

fn is_list_mark(c: char) -> bool {
    matches!(
        c,
        ',' | ';' | '\u{60c}' | '\u{61b}' | '\u{3001}' | '\u{204f}'
    )
}

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let c = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Characters that are not shown: format characters (Cf), the combining grapheme joiner,
/// variation selectors and Hangul fillers. Sorted, inclusive ranges.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

fn is_invisible(c: char) -> bool {
    !c.is_ascii() && in_ranges(c, INVISIBLE)
}

/// Punctuation outside ASCII that NFKC leaves as it is (general categories Pc, Pd, Ps, Pe, Pi,
/// Pf and Po, and the minus sign). Sorted, inclusive ranges.
const PUNCTUATION: &[(u32, u32)] = &[
    (0x00A1, 0x00A1),
    (0x00A7, 0x00A7),
    (0x00AB, 0x00AB),
    (0x00B6, 0x00B7),
    (0x00BB, 0x00BB),
    (0x00BF, 0x00BF),
    (0x037E, 0x037E),
    (0x0387, 0x0387),
    (0x055A, 0x055F),
    (0x0589, 0x058A),
    (0x05BE, 0x05BE),
    (0x05C0, 0x05C0),
    (0x05C3, 0x05C3),
    (0x05C6, 0x05C6),
    (0x05F3, 0x05F4),
    (0x0609, 0x060A),
    (0x060C, 0x060D),
    (0x061B, 0x061B),
    (0x061D, 0x061F),
    (0x066A, 0x066D),
    (0x06D4, 0x06D4),
    (0x0964, 0x0965),
    (0x0970, 0x0970),
    (0x0E4F, 0x0E4F),
    (0x0E5A, 0x0E5B),
    (0x10FB, 0x10FB),
    (0x1360, 0x1368),
    (0x166E, 0x166E),
    (0x169B, 0x169C),
    (0x16EB, 0x16ED),
    (0x17D4, 0x17D6),
    (0x17D8, 0x17DA),
    (0x1800, 0x180A),
    (0x2010, 0x2027),
    (0x2030, 0x2043),
    (0x2045, 0x2051),
    (0x2053, 0x205E),
    (0x207D, 0x207E),
    (0x208D, 0x208E),
    (0x2212, 0x2212),
    (0x2308, 0x230B),
    (0x2329, 0x232A),
    (0x2768, 0x2775),
    (0x27C5, 0x27C6),
    (0x27E6, 0x27EF),
    (0x2983, 0x2998),
    (0x29D8, 0x29DB),
    (0x29FC, 0x29FD),
    (0x2CF9, 0x2CFC),
    (0x2CFE, 0x2CFF),
    (0x2E00, 0x2E4F),
    (0x3001, 0x3003),
    (0x3008, 0x3011),
    (0x3014, 0x301F),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x30A0, 0x30A0),
    (0x30FB, 0x30FB),
    (0xA4FE, 0xA4FF),
    (0xA60D, 0xA60F),
    (0xFD3E, 0xFD3F),
    (0xFE10, 0xFE19),
    (0xFE30, 0xFE52),
    (0xFE54, 0xFE61),
    (0xFE63, 0xFE63),
    (0xFE68, 0xFE68),
    (0xFE6A, 0xFE6B),
    (0xFF01, 0xFF0A),
    (0xFF0C, 0xFF0F),
    (0xFF1A, 0xFF1B),
    (0xFF1F, 0xFF20),
    (0xFF3B, 0xFF3D),
    (0xFF3F, 0xFF3F),
    (0xFF5B, 0xFF5B),
    (0xFF5D, 0xFF5D),
    (0xFF5F, 0xFF65),
];

/// The code point of the digit zero of every block of Unicode decimal digits (general category
/// Nd) outside ASCII; each block holds the digits zero to nine in order. Full-width and
/// mathematical digits are already mapped by NFKC but are listed too. Sorted.
pub(crate) const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0,
    0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

/// The ASCII digit of a Unicode decimal digit; any other character is returned as it is.
fn ascii_digit(c: char) -> char {
    if (c as u32) < 0x660 {
        return c;
    }
    let code = c as u32;
    let at = DIGIT_ZEROS.partition_point(|&zero| zero <= code);
    match at.checked_sub(1).map(|i| DIGIT_ZEROS[i]) {
        Some(zero) if code - zero < 10 => char::from(b'0' + (code - zero) as u8),
        _ => c,
    }
}

/// Letters of other scripts that look like the Latin letters register numbers are written
/// with (`A`, `B`, `I`, `V`), with the Latin letter they stand for.
const CONFUSABLES: &[(char, char)] = &[
    ('\u{131}', 'i'),  // Latin small dotless i
    ('\u{251}', 'a'),  // Latin small alpha
    ('\u{26a}', 'I'),  // Latin letter small capital I
    ('\u{299}', 'B'),  // Latin letter small capital B
    ('\u{391}', 'A'),  // Greek capital alpha
    ('\u{392}', 'B'),  // Greek capital beta
    ('\u{399}', 'I'),  // Greek capital iota
    ('\u{3b1}', 'a'),  // Greek small alpha
    ('\u{3b2}', 'b'),  // Greek small beta
    ('\u{3b9}', 'i'),  // Greek small iota
    ('\u{3bd}', 'v'),  // Greek small nu
    ('\u{406}', 'I'),  // Cyrillic capital Byelorussian-Ukrainian I
    ('\u{410}', 'A'),  // Cyrillic capital A
    ('\u{412}', 'B'),  // Cyrillic capital VE
    ('\u{42c}', 'b'),  // Cyrillic capital soft sign
    ('\u{430}', 'a'),  // Cyrillic small A
    ('\u{432}', 'b'),  // Cyrillic small VE
    ('\u{44c}', 'b'),  // Cyrillic small soft sign
    ('\u{456}', 'i'),  // Cyrillic small Byelorussian-Ukrainian I
    ('\u{474}', 'V'),  // Cyrillic capital izhitsa
    ('\u{475}', 'v'),  // Cyrillic small izhitsa
    ('\u{4c0}', 'I'),  // Cyrillic letter palochka
    ('\u{4cf}', 'i'),  // Cyrillic small palochka
    ('\u{13aa}', 'A'), // Cherokee GO
    ('\u{13d9}', 'V'), // Cherokee DO
    ('\u{13f4}', 'B'), // Cherokee YV
    ('\u{1d00}', 'A'), // Latin letter small capital A
    ('\u{1d20}', 'V'), // Latin letter small capital V
    ('\u{a4d0}', 'B'), // Lisu BA
    ('\u{a4e6}', 'V'), // Lisu HA
    ('\u{a4ee}', 'A'), // Lisu A
    ('\u{a4f2}', 'I'), // Lisu I
];

fn fold_confusable(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match CONFUSABLES.binary_search_by_key(&c, |&(from, _)| from) {
        Ok(i) => CONFUSABLES[i].1,
        Err(_) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_sorted_and_the_digit_blocks_are_numeric() {
        assert!(INVISIBLE.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(PUNCTUATION.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(DIGIT_ZEROS.windows(2).all(|w| w[0] + 10 <= w[1]));
        assert!(CONFUSABLES.windows(2).all(|w| w[0].0 < w[1].0));
        for &zero in DIGIT_ZEROS {
            for k in 0..10 {
                let c = char::from_u32(zero + k).unwrap_or('x');
                assert!(c.is_numeric(), "U+{:04X} is not numeric", zero + k);
                assert_eq!(ascii_digit(c), char::from(b'0' + k as u8));
            }
        }
    }

    #[test]
    fn formatting_is_undone_and_positions_kept() {
        assert_eq!(normalise("３２０１"), "3201");
        assert_eq!(normalise("٣٢٠١ ३२०१ ৩২০১"), "3201 3201 3201");
        assert_eq!(normalise("32\u{200b}01\u{ad}45"), "320145");
        assert_eq!(normalise("В.І 12"), "B I 12");
        assert_eq!(normalise("(0812)  3456-7890"), " 0812 3456 7890");
        assert_eq!(normalise("a, b. c\n\nd     e"), "a, b, c, d, e");
        let n = Normalised::new("x\u{200b}３\u{2009}4");
        assert_eq!(n.chars, ['x', '3', ' ', '4']);
        assert_eq!(n.origin, [0, 2, 3, 4]);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for text in [
            "NIK: ３２０１\u{2009}0145 ., ;  x",
            "Ⅱ ⑴ … ‒ 「B」 \r\n\r\n ٣",
            "+62 (0) 812—3456",
        ] {
            let once = normalise(text);
            assert_eq!(normalise(&once), once, "{text:?}");
        }
    }
}
