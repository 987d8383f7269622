//! The PII guard: inmate identity data must never leave the site (PRODUCT.md invariant 5).
//!
//! The agent checks every report before it is saved; the collector checks again and quarantines
//! what matches. A finding names the field, the kind of data and its position, never the value,
//! so neither a refusal message nor a log line repeats what it protects.
//!
//! Recognised:
//! * NIK: 16 digits, optionally grouped with spaces, dots or dashes, with a valid structure (a
//!   province code, district and subdistrict not 00, day 01–31 or 41–71, month 01–12, serial not
//!   0000);
//! * Indonesian mobile numbers: `+62`, `62` or `0`, then `8` and 8 to 11 more digits, with
//!   separators allowed;
//! * inmate register numbers: `A.I`–`A.V`, `B.I`, `B.IIa`, `B.IIb`, `B.III` followed by a number;
//! * terms from a configured deny list (case-insensitive, whole words).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// What kind of identity data was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Nik,
    Phone,
    RegisterNumber,
    DenyListed,
}

impl PiiKind {
    /// The name shown to people, in Bahasa Indonesia with the English term.
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Nik => "NIK (nomor induk kependudukan)",
            PiiKind::Phone => "nomor telepon",
            PiiKind::RegisterNumber => "nomor register WBP",
            PiiKind::DenyListed => "istilah terlarang (daftar larangan)",
        }
    }

    fn redaction(self) -> &'static str {
        match self {
            PiiKind::Nik => "[NIK DISAMARKAN]",
            PiiKind::Phone => "[NOMOR TELEPON DISAMARKAN]",
            PiiKind::RegisterNumber => "[NOMOR REGISTER DISAMARKAN]",
            PiiKind::DenyListed => "[DISAMARKAN]",
        }
    }
}

/// Which field of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Title,
    Body,
    /// The file name of an attachment.
    AttachmentName,
    /// The reason given for a retraction.
    RetractionReason,
    /// The text of a claim in the claims register.
    Claim,
    /// Title and body read together (a number split across the two).
    TitleAndBody,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Title => "title",
            Field::Body => "body",
            Field::AttachmentName => "attachment name",
            Field::RetractionReason => "retraction reason",
            Field::Claim => "claim",
            Field::TitleAndBody => "title and body",
        }
    }
}

/// One match: where and what, never the value.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Finding {
    pub field: Field,
    pub kind: PiiKind,
    /// Position of the first character, counted in characters from 1.
    pub position: usize,
    /// Length in characters.
    pub length: usize,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} contains a {} at character {}",
            self.field.as_str(),
            self.kind.label(),
            self.position
        )
    }
}

/// Block (refuse the report) or redact (replace the match and accept it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Block,
    Redact,
}

/// The guard's settings (the `[pii]` table of both daemons' configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    pub mode: Mode,
    /// Terms that must never leave the site, e.g. names of people in custody.
    pub deny_list: Vec<String>,
}

/// A configured guard.
#[derive(Clone, Debug, Default)]
pub struct PiiGuard {
    deny: Vec<Vec<char>>,
    pub mode: Mode,
}

/// Valid first two digits of a NIK (province codes of the Dukcapil numbering).
const PROVINCES: &[u8] = &[
    11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65,
    71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96, 97,
];

impl PiiGuard {
    pub fn new(config: &PiiConfig) -> PiiGuard {
        PiiGuard {
            deny: config
                .deny_list
                .iter()
                .map(|t| t.trim().to_lowercase().chars().collect::<Vec<char>>())
                .filter(|t| !t.is_empty())
                .collect(),
            mode: config.mode,
        }
    }

    /// Every finding in a report's title and body, in order.
    pub fn check(&self, title: &str, body: &str) -> Vec<Finding> {
        let mut out = self.scan(Field::Title, title);
        out.extend(self.scan(Field::Body, body));
        out
    }

    /// Every finding in a whole report: title, body, the retraction reason and attachment
    /// names. Both the agent (before saving) and the collector (on receipt) call this.
    pub fn check_report(&self, report: &crate::report::Report) -> Vec<Finding> {
        let mut out = self.check(&report.title, &report.body);
        if let Some(reason) = &report.retraction {
            out.extend(self.scan(Field::RetractionReason, reason));
        }
        for a in &report.attachments {
            out.extend(self.scan(Field::AttachmentName, &a.name));
        }
        out
    }

    /// Every finding in one field.
    pub fn scan(&self, field: Field, text: &str) -> Vec<Finding> {
        let chars: Vec<char> = text.chars().collect();
        let mut found: Vec<(usize, usize, PiiKind)> = Vec::new();
        digit_runs(&chars, &mut found);
        register_numbers(&chars, &mut found);
        self.deny_listed(&chars, &mut found);
        found.sort_by_key(|&(start, _, _)| start);
        found
            .into_iter()
            .map(|(start, end, kind)| Finding {
                field,
                kind,
                position: start + 1,
                length: end - start,
            })
            .collect()
    }

    /// The text with every finding replaced by a marker.
    pub fn redact(&self, field: Field, text: &str) -> String {
        let findings = self.scan(field, text);
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            let start = f.position - 1;
            if start < at {
                continue;
            }
            out.extend(&chars[at..start]);
            out.push_str(f.kind.redaction());
            at = start + f.length;
        }
        out.extend(&chars[at.min(chars.len())..]);
        out
    }

    fn deny_listed(&self, chars: &[char], found: &mut Vec<(usize, usize, PiiKind)>) {
        // Lower-case character by character, so positions stay those of the original text
        // (a character whose lower case is longer keeps its first character).
        let hay: Vec<char> = chars
            .iter()
            .map(|c| c.to_lowercase().next().unwrap_or(*c))
            .collect();
        for term in &self.deny {
            let n = term.len();
            if n == 0 || n > hay.len() {
                continue;
            }
            for start in 0..=hay.len() - n {
                if &hay[start..start + n] == term.as_slice()
                    && (start == 0 || !hay[start - 1].is_alphanumeric())
                    && (start + n == hay.len() || !hay[start + n].is_alphanumeric())
                {
                    found.push((start, start + n, PiiKind::DenyListed));
                }
            }
        }
    }
}

fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '.' | '-' | '\u{a0}')
}

/// Finds NIKs and phone numbers: maximal runs of digits joined by single separators.
fn digit_runs(chars: &[char], found: &mut Vec<(usize, usize, PiiKind)>) {
    let mut i = 0;
    while i < chars.len() {
        let plus = chars[i] == '+' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        if !(chars[i].is_ascii_digit() || plus) {
            i += 1;
            continue;
        }
        // A run may not continue a word or a longer number.
        let preceded =
            i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '/' || chars[i - 1] == ',');
        let start = i;
        let mut end = if plus { i + 1 } else { i };
        let mut digits = String::new();
        while end < chars.len() {
            if chars[end].is_ascii_digit() {
                digits.push(chars[end]);
                end += 1;
            } else if is_sep(chars[end])
                && chars.get(end + 1).is_some_and(|c| c.is_ascii_digit())
                && !digits.is_empty()
            {
                end += 1;
            } else {
                break;
            }
        }
        let followed = chars
            .get(end)
            .is_some_and(|c| c.is_alphanumeric() || *c == '/' || *c == ',');
        i = end.max(i + 1);
        if preceded || followed {
            continue;
        }
        if digits.len() == 16 && valid_nik(digits.as_bytes()) {
            found.push((start, end, PiiKind::Nik));
        } else if is_phone(&digits, plus) {
            found.push((start, end, PiiKind::Phone));
        }
    }
}

fn two(d: &[u8]) -> u8 {
    (d[0] - b'0') * 10 + (d[1] - b'0')
}

fn valid_nik(d: &[u8]) -> bool {
    let province = two(&d[0..2]);
    let district = two(&d[2..4]);
    let subdistrict = two(&d[4..6]);
    let day = two(&d[6..8]);
    let month = two(&d[8..10]);
    let serial = &d[12..16];
    PROVINCES.contains(&province)
        && district != 0
        && subdistrict != 0
        && ((1..=31).contains(&day) || (41..=71).contains(&day))
        && (1..=12).contains(&month)
        && serial != b"0000"
}

fn is_phone(digits: &str, plus: bool) -> bool {
    let rest = if let Some(r) = digits.strip_prefix("62") {
        r
    } else if !plus {
        match digits.strip_prefix('0') {
            Some(r) => r,
            None => return false,
        }
    } else {
        return false;
    };
    rest.starts_with('8') && (9..=12).contains(&rest.len())
}

/// Finds register numbers: `A.I`…`A.V`, `B.I`, `B.IIa`, `B.IIb`, `B.III`, then a number.
fn register_numbers(chars: &[char], found: &mut Vec<(usize, usize, PiiKind)>) {
    const BOOKS: &[&str] = &[
        "A.III", "A.II", "A.IV", "A.I", "A.V", "B.IIIs", "B.III", "B.IIa", "B.IIb", "B.I",
    ];
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i] == 'A' || chars[i] == 'B') || (i > 0 && chars[i - 1].is_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut matched = None;
        for book in BOOKS {
            let b: Vec<char> = book.chars().collect();
            if chars.len() >= i + b.len() && chars[i..i + b.len()] == b[..] {
                // The book must end there (B.I must not be the start of "B.Ind...").
                let after = i + b.len();
                if chars.get(after).is_some_and(|c| c.is_alphabetic()) {
                    continue;
                }
                matched = Some(after);
                break;
            }
        }
        let Some(mut end) = matched else {
            i += 1;
            continue;
        };
        // Then separators, then at least one digit.
        while end < chars.len() && matches!(chars[end], ' ' | '.' | '-' | '/' | ':') {
            end += 1;
        }
        if chars.get(end).is_some_and(|c| c.is_ascii_digit()) {
            while end < chars.len()
                && (chars[end].is_ascii_digit()
                    || (matches!(chars[end], '/' | '.' | '-')
                        && chars.get(end + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                end += 1;
            }
            found.push((i, end, PiiKind::RegisterNumber));
            i = end;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<PiiKind> {
        PiiGuard::default()
            .scan(Field::Body, text)
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    // Every number below is invented and structurally made up for the test; none is a real
    // person's.
    #[test]
    fn niks_are_found_with_any_grouping() {
        assert_eq!(kinds("NIK 3201014512900001 tercatat"), [PiiKind::Nik]);
        assert_eq!(kinds("nik: 3201 0145 1290 0001."), [PiiKind::Nik]);
        assert_eq!(kinds("32.01.01.451290.0001"), [PiiKind::Nik]);
        let f = PiiGuard::default().scan(Field::Body, "a 3201014512900001");
        assert_eq!((f[0].position, f[0].length), (3, 16));
    }

    #[test]
    fn sixteen_digits_without_nik_structure_are_not_niks() {
        assert!(kinds("3201013212900001").is_empty(), "day 32");
        assert!(kinds("3201011513900001").is_empty(), "month 13");
        assert!(kinds("3201011512900000").is_empty(), "serial 0000");
        assert!(kinds("9901011512900001").is_empty(), "province 99");
        assert!(kinds("Rp 1.500.000.000.000.000").is_empty(), "money");
        assert!(kinds("32010145129000011").is_empty(), "17 digits");
    }

    #[test]
    fn phone_numbers_are_found() {
        assert_eq!(kinds("hubungi 081234567890"), [PiiKind::Phone]);
        assert_eq!(kinds("hubungi +62 812-3456-7890"), [PiiKind::Phone]);
        assert_eq!(kinds("62812345678"), [PiiKind::Phone]);
        assert_eq!(kinds("0812.3456.789"), [PiiKind::Phone]);
        assert!(kinds("08-12-2025").is_empty(), "a date");
        assert!(kinds("021 5551234").is_empty(), "a landline");
        assert!(kinds("0812345").is_empty(), "too short");
    }

    #[test]
    fn register_numbers_are_found() {
        assert_eq!(kinds("register B.I 123/2024"), [PiiKind::RegisterNumber]);
        assert_eq!(kinds("A.II-45"), [PiiKind::RegisterNumber]);
        assert_eq!(kinds("reg. B.IIa.7/2025"), [PiiKind::RegisterNumber]);
        assert_eq!(kinds("B.III 9"), [PiiKind::RegisterNumber]);
        assert!(kinds("Lapas Kelas IIA Bogor, Rutan Kelas IIB 2").is_empty());
        assert!(kinds("BI 7-Day Rate dan B.Indonesia 3").is_empty());
        assert!(kinds("A.I saja").is_empty(), "a book without a number");
    }

    #[test]
    fn deny_list_matches_whole_words_in_any_case() {
        let guard = PiiGuard::new(&PiiConfig {
            mode: Mode::Block,
            deny_list: vec!["Fulan Bin Contoh".into()],
        });
        let f = guard.scan(Field::Title, "Kunjungan untuk fulan bin contoh hari ini");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, PiiKind::DenyListed);
        assert!(guard.scan(Field::Title, "Fulan Bin Contohnya").is_empty());
    }

    #[test]
    fn findings_name_the_place_not_the_value() {
        let f = &PiiGuard::default().check("t", "nomor 081234567890")[0];
        let text = f.to_string();
        assert!(text.contains("body") && text.contains("nomor telepon") && text.contains("7"));
        assert!(!text.contains("081234567890"));
    }

    #[test]
    fn redaction_replaces_only_the_match() {
        let g = PiiGuard::default();
        assert_eq!(
            g.redact(Field::Body, "hubungi 081234567890 segera"),
            "hubungi [NOMOR TELEPON DISAMARKAN] segera"
        );
    }
}
