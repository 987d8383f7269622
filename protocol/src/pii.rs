//! The PII guard: inmate identity data must never leave the site (PRODUCT.md invariant 5).
//!
//! The agent checks every report before it is saved; the collector checks again and quarantines
//! what matches; the media center masks media texts with it. A finding names the field, the kind
//! of data and its position, never the value, so neither a refusal message nor a log line repeats
//! what it protects. Positions and lengths count characters of the original text, from 1.
//!
//! # Normalisation
//!
//! The guard matches on a normalised copy of the text ([`normalise`]) that remembers where each
//! of its characters came from. Each character is put in compatibility normal form (NFKC) on its
//! own, so full-width letters and digits, Roman numeral signs and exotic spaces become plain
//! ones. Invisible characters (format characters such as the zero-width space and joiners, the
//! word joiner, the soft hyphen, the byte-order mark and bidirectional controls, and variation
//! selectors) are dropped. Every Unicode decimal digit (Arabic-Indic, Devanagari, Bengali, Thai
//! and the others) becomes its ASCII digit. Cyrillic, Greek, Cherokee, Lisu and small-capital
//! letters that look like `A`, `B`, `I` or `V` become those Latin letters. Every run of
//! whitespace and punctuation (but not `+`) becomes one separator: a space when the run may
//! join two groups of one number, or `", "` when it ends a number. A run ends a number when it
//! is longer than [`SEPARATOR_LIMIT`] (three) characters, holds a comma or semicolon, holds a
//! sentence end (`.`, `!` or `?` followed by whitespace) or holds more than one line break.
//! Normalising a normalised text changes nothing, and what the guard finds in a text it finds in
//! the text's normal form.
//!
//! # What is recognised
//!
//! Numbers are read as groups of digits (maximal runs of digits, whatever letters or signs stand
//! around them, so `NIK:3273…`, `nik3273…adalah` and `HP0812…` are read) joined into one number
//! by joining separators, so `3201 0145 1290 0001`, `3201-0145-1290-0001`, a NIK on four lines
//! and `(0812) 3456-7890` are each one number. A group that is on its own a valid identifier is
//! one wherever it stands. The other groups of a number are an identifier only if they are one
//! together, or if they split at group boundaries into identifiers with nothing left over (two
//! numbers joined by ` / `); a date or a short number of at most three groups may stand before a
//! mobile number written with its leading `0` (`12-08-2025 0812 3456 7890`).
//!
//! * A NIK is exactly 16 digits with a valid structure (a province code, district and
//!   subdistrict not 00, day 01–31 or 41–71, month 01–12, serial not 0000), in one group or in
//!   groups of at least two digits. Sixteen digits inside a longer number are not a NIK.
//! * An Indonesian mobile number is `+62`, `0062`, `62` or `0`, after a country code an optional
//!   trunk `0` (`+62 (0) 812…`), then `8`, a digit other than 0, and 7 to 10 more digits (8 to
//!   11 after the `8`). The country code lies in the first group, the operator code (`812`) is
//!   not split, and every later group has at least two digits. Links such as `wa.me/62…` and
//!   `tel:+62…` are read like any other text.
//! * An inmate register number is a book, `A` or `B` not preceded by a letter, a separator, a
//!   Roman numeral `I` to `V` (for `B.II` an optional `a` or `b`, for `B.III` an optional `s`)
//!   not followed by a letter, an optional separator, then a number and any further groups
//!   (`B.I 123/2024`, `b-iia/34`, Cyrillic `В.І 12`). Case does not matter.
//! * A term of the configured deny list is found as a whole word, in any case, on the
//!   normalised text (so `Fulan  Bin\u{200b} Contoh` is `Fulan Bin Contoh`).
//!
//! [`PiiGuard::check`] reads the title and the body apart and then together (title, a line
//! break, body), so that a number split between them is found ([`Field::TitleAndBody`]);
//! [`PiiGuard::check_report`] adds the reason of a retraction and the attachments' names.
//!
//! # What is deliberately not matched
//!
//! Amounts following `Rp`, `IDR` or `USD`, and numbers written with thousands separators (a
//! first group of one to three digits not starting with 0 and then groups of exactly three, as
//! `62.812.345.678`) unless a `+` introduces them. Mobile-like numbers following an account's
//! name (`rekening`, `rek`, `norek`, `va`) within three words. Landlines (`(021) 525-3004`: the
//! digit after the trunk 0 is not 8) and the toll-free `0800`. Sixteen digits in a longer number
//! (`3201 0145 1290 0001 2345`) and seventeen-digit numbers. Digits written one by one with
//! visible separators (`3 2 0 1 …`: an identifier of several groups has no one-digit group but
//! a mobile number's trunk `0`), a NIK after other groups of the same number, and a NIK grouped
//! with commas. A book without a number (`A.I saja`), a book
//! glued to its numeral (`BI 7-Day Rate`), and class names (`Lapas Kelas IIA`).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

#[doc(hidden)]
pub mod evaluation;
mod normalise;

use normalise::{is_separator, Normalised};
pub use normalise::{normalise, SEPARATOR_LIMIT};

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
    // New variants go at the end: findings are stored with bincode, which numbers variants.
    /// The reason given for a retraction.
    RetractionReason,
    /// A claim (a statement checked by the media center).
    Claim,
    /// The title and the body read as one text (title, a line break, body): a finding that
    /// reaches into both; its position counts in that joined text.
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

/// A match on the normalised text: start and end (exclusive) in normalised characters.
type Span = (usize, usize, PiiKind);

impl PiiGuard {
    pub fn new(config: &PiiConfig) -> PiiGuard {
        PiiGuard {
            deny: config
                .deny_list
                .iter()
                .map(|t| lower(&Normalised::new(t.trim()).chars))
                .map(|t| trim_separators(&t).to_vec())
                .filter(|t| !t.is_empty())
                .collect(),
            mode: config.mode,
        }
    }

    /// Every finding in a report's title and body, in order: those of the title, those of the
    /// body, then those that only appear when the title and the body are read as one text
    /// (title, a line break, body), e.g. a NIK begun in the title and ended in the body; these
    /// name [`Field::TitleAndBody`] and count their position in that joined text.
    pub fn check(&self, title: &str, body: &str) -> Vec<Finding> {
        let mut out = self.scan(Field::Title, title);
        out.extend(self.scan(Field::Body, body));
        if self.may_span(title, body) {
            out.extend(self.across(title, body));
        }
        out
    }

    /// Whether a finding could reach from the title into the body, judged on the two
    /// characters it would have to hold: the title's last and the body's first that are not
    /// separators (a finding is one unbroken stretch of the normalised text). A number needs a
    /// digit on both sides; a register number (`B.I 123/2024`, `B.IIIs 3`) one of its own
    /// characters on both sides (book, Roman numeral and class letters, digits); a deny-listed
    /// term anything. Reading the body a
    /// second time, joined to the title, is the PII scan's largest cost, and most reports
    /// (a title ending in a word, a body starting with one) cannot have such a finding.
    fn may_span(&self, title: &str, body: &str) -> bool {
        let (Some(last), Some(first)) = (
            normalise::last_visible(title),
            normalise::first_visible(body),
        ) else {
            return false;
        };
        if !self.deny.is_empty() {
            return true;
        }
        let (last, first) = (last.to_ascii_lowercase(), first.to_ascii_lowercase());
        let number = last.is_ascii_digit() && first.is_ascii_digit();
        // A register number holds its book letter, Roman numeral letters, a class letter and
        // digits; any two of them may stand either side of the break.
        let register_char = |c: char| matches!(c, 'a' | 'b' | 'i' | 'v' | 's' | '0'..='9');
        let register = register_char(last) && register_char(first);
        number || register
    }

    /// Every finding in a whole report: its title, its body, both read together (see
    /// [`PiiGuard::check`]), the reason of a retraction and the names of its attachments.
    pub fn check_report(&self, report: &crate::report::Report) -> Vec<Finding> {
        let mut out = self.check(&report.title, &report.body);
        if let Some(reason) = &report.retraction {
            out.extend(self.scan(Field::RetractionReason, reason));
        }
        for attachment in &report.attachments {
            out.extend(self.scan(Field::AttachmentName, &attachment.name));
        }
        out
    }

    /// The findings of the joined title and body that reach into both.
    pub(crate) fn across(&self, title: &str, body: &str) -> Vec<Finding> {
        let title_chars = title.chars().count();
        if title_chars == 0 || body.is_empty() {
            return Vec::new();
        }
        let joined = format!("{title}\n{body}");
        self.scan(Field::TitleAndBody, &joined)
            .into_iter()
            .filter(|f| f.position <= title_chars && f.position + f.length > title_chars + 1)
            .collect()
    }

    /// Every finding in one field.
    pub fn scan(&self, field: Field, text: &str) -> Vec<Finding> {
        // Every identifier the guard knows holds a digit, and a plain-ASCII text normalises to
        // its own characters (with separators), so an ASCII text without a digit holds none
        // unless a term is deny-listed. Most routine report bodies are such texts, and this
        // saves reading them character by character.
        if self.deny.is_empty() && text.is_ascii() && !text.bytes().any(|b| b.is_ascii_digit()) {
            return Vec::new();
        }
        self.scan_normalised(field, text)
    }

    /// [`PiiGuard::scan`] without its shortcut: the text is always normalised and read.
    fn scan_normalised(&self, field: Field, text: &str) -> Vec<Finding> {
        let normalised = Normalised::new(text);
        let chars = &normalised.chars;
        let mut found: Vec<Span> = Vec::new();
        numbers(chars, &mut found);
        register_numbers(chars, &mut found);
        self.deny_listed(chars, &mut found);
        found.sort_by_key(|&(start, end, _)| (start, end));
        found
            .into_iter()
            .filter(|&(start, end, _)| start < end)
            .map(|(start, end, kind)| {
                // Positions in the original text: from the character the first matched one
                // came from to the character the last one came from.
                let first = normalised.origin[start];
                let last = normalised.origin[end - 1];
                Finding {
                    field,
                    kind,
                    position: first + 1,
                    length: last + 1 - first,
                }
            })
            .collect()
    }

    /// The text with every finding replaced by a marker; overlapping findings share one.
    pub fn redact(&self, field: Field, text: &str) -> String {
        let findings = self.scan(field, text);
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            let start = f.position - 1;
            let end = (start + f.length).min(chars.len());
            if start < at {
                // It overlaps the previous finding: hide the rest of it under that marker.
                at = at.max(end);
                continue;
            }
            out.extend(&chars[at..start]);
            out.push_str(f.kind.redaction());
            at = end;
        }
        out.extend(&chars[at.min(chars.len())..]);
        out
    }

    fn deny_listed(&self, chars: &[char], found: &mut Vec<Span>) {
        if self.deny.is_empty() {
            return;
        }
        let hay = lower(chars);
        for term in &self.deny {
            let n = term.len();
            if n > hay.len() {
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

/// Lower case, character by character, so positions stay those of the text (a character whose
/// lower case is longer keeps its first character).
fn lower(chars: &[char]) -> Vec<char> {
    chars
        .iter()
        .map(|c| c.to_lowercase().next().unwrap_or(*c))
        .collect()
}

fn trim_separators(chars: &[char]) -> &[char] {
    let start = chars.iter().position(|&c| !is_separator(c));
    let end = chars.iter().rposition(|&c| !is_separator(c));
    match (start, end) {
        (Some(s), Some(e)) => &chars[s..=e],
        _ => &[],
    }
}

/// A maximal run of ASCII digits in the normalised text.
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

/// Finds NIKs and mobile numbers in the normalised text.
///
/// Groups (maximal runs of digits) joined by a single joining separator (a space in the
/// normalised text, see [`SEPARATOR_LIMIT`]) form a run; a `+` starts a new run. In a run, a
/// group that is on its own a valid NIK or mobile number is one; the groups between such
/// groups are one number if they form one together, or several if they split, at group
/// boundaries, into valid identifiers with nothing left over. Anything else is one longer
/// number and not an identifier.
fn numbers(chars: &[char], found: &mut Vec<Span>) {
    let mut groups: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(Group { start, end: i });
        } else {
            i += 1;
        }
    }
    let mut first = 0;
    for k in 1..=groups.len() {
        let joined = k < groups.len()
            && groups[k].start == groups[k - 1].end + 1
            && chars[groups[k - 1].end] == ' ';
        if !joined {
            run(chars, &groups[first..k], found);
            first = k;
        }
    }
}

/// How many groups of another number may stand before a mobile number in one run.
const LEADING_GROUPS: usize = 3;

/// The identifiers in one run of groups.
fn run(chars: &[char], groups: &[Group], found: &mut Vec<Span>) {
    let Some(head) = groups.first() else {
        return;
    };
    if money_cue(chars, head.start) {
        return;
    }
    let plus = head.start > 0 && chars[head.start - 1] == '+';
    let account = account_cue(chars, head.start);
    let digits: Vec<Vec<u8>> = groups
        .iter()
        .map(|g| chars[g.start..g.end].iter().map(|&c| c as u8).collect())
        .collect();
    let identify = |from: usize, to: usize| -> Option<PiiKind> {
        identifier(&digits[from..to], plus && from == 0, account)
    };
    let mut span = |from: usize, to: usize, kind: PiiKind| {
        // A `+` before a country code is part of the number.
        let start = if plus && from == 0 {
            groups[0].start - 1
        } else {
            groups[from].start
        };
        found.push((start, groups[to - 1].end, kind));
    };
    // Groups that are identifiers on their own anchor the rest.
    let mut between = 0;
    for k in 0..=groups.len() {
        let anchor = if k < groups.len() {
            identify(k, k + 1)
        } else {
            None
        };
        if k < groups.len() && anchor.is_none() {
            continue;
        }
        if let Some(kind) = anchor {
            span(k, k + 1, kind);
        }
        // The groups between two anchors.
        if k > between && !thousands(&digits[between..k], plus && between == 0) {
            let mut parts = partition(between, k, &identify);
            // A date or a number of a few groups may stand just before a mobile number
            // written with its leading 0 (`12-08-2025 0812 3456 7890`, `No. 12 0812 …`).
            for skip in 1..=LEADING_GROUPS.min(k - between - 1) {
                if !parts.is_empty() {
                    break;
                }
                if digits[between + skip].first() == Some(&b'0') {
                    parts = partition(between + skip, k, &identify);
                    if parts.first().is_some_and(|p| p.2 != PiiKind::Phone) {
                        parts.clear();
                    }
                }
            }
            for (from, to, kind) in parts {
                span(from, to, kind);
            }
        }
        between = k + 1;
    }
}

/// Splits groups `from..to` into identifiers with nothing left over: the whole if it is one,
/// otherwise the split found by dynamic programming over group boundaries (an identifier spans
/// at most nine groups), or nothing.
fn partition(
    from: usize,
    to: usize,
    identify: &dyn Fn(usize, usize) -> Option<PiiKind>,
) -> Vec<(usize, usize, PiiKind)> {
    if let Some(kind) = identify(from, to) {
        return vec![(from, to, kind)];
    }
    const MOST_GROUPS: usize = 9;
    // `best[k]`: how groups `from..from + k` end, as (start of the last identifier, its kind).
    let n = to - from;
    let mut best: Vec<Option<(usize, PiiKind)>> = vec![None; n + 1];
    let mut reached = vec![false; n + 1];
    reached[0] = true;
    for k in 0..n {
        if !reached[k] {
            continue;
        }
        for len in 1..=MOST_GROUPS.min(n - k) {
            if let Some(kind) = identify(from + k, from + k + len) {
                reached[k + len] = true;
                best[k + len] = Some((k, kind));
            }
        }
    }
    let mut out = Vec::new();
    let mut k = n;
    while k > 0 {
        let Some((start, kind)) = best[k].filter(|_| reached[k]) else {
            return Vec::new();
        };
        out.push((from + start, from + k, kind));
        k = start;
    }
    out.reverse();
    out
}

/// Whether groups are written like an amount or a count with thousands separators
/// (`1.250.000.000`, `62.812.345.678`): a first group of one to three digits not starting with
/// 0, then at least two groups of exactly three. Such a number is not an identifier unless a `+`
/// introduces it.
fn thousands(groups: &[Vec<u8>], plus: bool) -> bool {
    let Some((head, rest)) = groups.split_first() else {
        return false;
    };
    !plus
        && (1..=3).contains(&head.len())
        && head.first() != Some(&b'0')
        && rest.len() >= 2
        && rest.iter().all(|g| g.len() == 3)
}

/// The word just before position `at` (letters only, across at most one separator), lower case.
fn word_before(chars: &[char], mut at: usize) -> (String, usize) {
    if at > 0 && chars[at - 1] == ' ' {
        at -= 1;
    }
    let end = at;
    while at > 0 && chars[at - 1].is_alphabetic() {
        at -= 1;
    }
    (chars[at..end].iter().collect::<String>().to_lowercase(), at)
}

/// An amount of money: the number follows `Rp`, `IDR` or `USD`.
fn money_cue(chars: &[char], at: usize) -> bool {
    let (word, _) = word_before(chars, at);
    matches!(word.as_str(), "rp" | "idr" | "usd")
}

/// A bank account: one of the three words before the number names an account (`rekening`,
/// `rek`, `norek`, `va`) and no word between names a telephone. The words of a redaction
/// marker (`[NIK DISAMARKAN]`) do not count, so that redacting a text never uncovers a number.
fn account_cue(chars: &[char], mut at: usize) -> bool {
    let mut words = 0;
    for _ in 0..8 {
        let (word, start) = word_before(chars, at);
        match word.as_str() {
            "" => return false,
            "rekening" | "rek" | "norek" | "va" | "account" => return true,
            "hp" | "wa" | "telp" | "tel" | "telepon" | "ponsel" | "handphone" | "whatsapp" => {
                return false
            }
            "nik" | "nomor" | "register" | "disamarkan" => {}
            _ => words += 1,
        }
        if words == 3 {
            return false;
        }
        at = start;
    }
    false
}

/// What groups of digits are together, if anything: a NIK, or a mobile number (unless it
/// follows a bank account's name).
fn identifier(groups: &[Vec<u8>], plus: bool, account: bool) -> Option<PiiKind> {
    let total: usize = groups.iter().map(Vec::len).sum();
    if total > 17 || groups.is_empty() {
        return None;
    }
    let digits: Vec<u8> = groups.concat();
    let several = groups.len() > 1;
    if total == 16 && !(several && groups.iter().any(|g| g.len() < 2)) && valid_nik(&digits) {
        return Some(PiiKind::Nik);
    }
    let ends: Vec<usize> = groups
        .iter()
        .scan(0, |end, g| {
            *end += g.len();
            Some(*end)
        })
        .collect();
    if !account && is_phone(&digits, &ends, plus) {
        return Some(PiiKind::Phone);
    }
    None
}

fn two(d: &[u8]) -> u8 {
    (d[0] - b'0') * 10 + (d[1] - b'0')
}

fn valid_nik(d: &[u8]) -> bool {
    if d.len() != 16 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
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

/// Whether digits, with the ends of their groups, are an Indonesian mobile number: `+62`,
/// `0062`, `62` or `0`; after a country code an optional trunk `0` (`+62 (0) 812…`); then `8`
/// and 8 to 11 more digits. The country code lies in the first group, the `8` and the two
/// digits after it (the operator's code) in one group, and every later group has at least two
/// digits, except a trunk `0` standing alone.
fn is_phone(digits: &[u8], ends: &[usize], plus: bool) -> bool {
    let (prefix, country) = if !plus && digits.starts_with(b"0062") {
        (4, true)
    } else if digits.starts_with(b"62") {
        (2, true)
    } else if !plus && digits.starts_with(b"0") {
        (1, false)
    } else {
        return false;
    };
    if ends.first().is_none_or(|&end| end < prefix) {
        return false;
    }
    let mut at = prefix;
    let mut trunk_group = None;
    if country && digits.get(at) == Some(&b'0') {
        if ends.contains(&(at + 1)) && ends.contains(&at) {
            trunk_group = Some(at);
        }
        at += 1;
    }
    // No operator code starts with 80 (`0800` is a toll-free prefix).
    if digits.get(at) != Some(&b'8')
        || digits.get(at + 1).is_none_or(|&d| d == b'0')
        || !(9..=12).contains(&(digits.len() - at))
    {
        return false;
    }
    let holder_end = ends.iter().copied().find(|&end| end > at).unwrap_or(0);
    if holder_end < at + 3 {
        return false;
    }
    ends.windows(2)
        .all(|w| w[1] - w[0] >= 2 || (w[1] - w[0] == 1 && trunk_group == Some(w[0])))
}

/// The position after the separator at `at` in the normalised text (a joining space or an
/// ending `", "`), if there is one. Register numbers accept both: `B. I. 15` is one.
fn after_separator(chars: &[char], at: usize) -> Option<usize> {
    match chars.get(at..at + 2) {
        Some([',', ' ']) => Some(at + 2),
        _ if chars.get(at) == Some(&' ') => Some(at + 1),
        _ => None,
    }
}

/// Finds register numbers in the normalised text: a book (`A` or `B` standing alone, a
/// separator, `I`–`V` in Roman numerals, for `B.II` an optional `a` or `b`, for `B.III` an
/// optional `s`), an optional separator, and a number, whose further groups (`123/2024`) are
/// included. Letters are compared without case.
fn register_numbers(chars: &[char], found: &mut Vec<Span>) {
    const ROMANS: &[&str] = &["iii", "ii", "iv", "i", "v"];
    let lower_at = |k: usize| chars.get(k).map(|c| c.to_ascii_lowercase());
    let mut i = 0;
    while i < chars.len() {
        let book = lower_at(i);
        // The book letter starts a word; a number may stand just before it (`12B.I 3`).
        if !matches!(book, Some('a' | 'b')) || (i > 0 && chars[i - 1].is_alphabetic()) {
            i += 1;
            continue;
        }
        let Some(mut end) = after_separator(chars, i + 1) else {
            i += 1;
            continue;
        };
        let Some(roman) = ROMANS.iter().find(|r| {
            r.chars()
                .enumerate()
                .all(|(k, rc)| lower_at(end + k) == Some(rc))
        }) else {
            i += 1;
            continue;
        };
        end += roman.len();
        let suffix = match (book, *roman) {
            (Some('b'), "ii") => ['a', 'b'].as_slice(),
            (Some('b'), "iii") => ['s'].as_slice(),
            _ => [].as_slice(),
        };
        if lower_at(end).is_some_and(|c| suffix.contains(&c)) {
            end += 1;
        }
        // The book ends there: `B.Indonesia` is not `B.I`.
        if chars.get(end).is_some_and(|c| c.is_alphabetic()) {
            i += 1;
            continue;
        }
        end = after_separator(chars, end).unwrap_or(end);
        if !chars.get(end).is_some_and(char::is_ascii_digit) {
            i += 1;
            continue;
        }
        while end < chars.len()
            && (chars[end].is_ascii_digit()
                || (chars[end] == ' ' && chars.get(end + 1).is_some_and(char::is_ascii_digit)))
        {
            end += 1;
        }
        found.push((i, end, PiiKind::RegisterNumber));
        i = end;
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

    /// A guard that blocks and denies the (made-up) name `Fulan Bin Contoh`.
    fn fulan_denied() -> PiiGuard {
        PiiGuard::new(&PiiConfig {
            mode: Mode::Block,
            deny_list: vec!["Fulan Bin Contoh".into()],
        })
    }

    /// Asserts that each text holds one finding, of `kind`.
    fn assert_found(kind: PiiKind, texts: &[&str]) {
        for text in texts {
            assert_eq!(kinds(text), [kind], "{text}");
        }
    }

    #[test]
    fn the_shortcut_for_ascii_without_digits_agrees_with_reading_the_text() {
        // Generated texts of the characters identifiers are made of, other than digits: book
        // letters, Roman numerals, separators, `+`, and words around them.
        let guard = PiiGuard::default();
        let pieces = [
            "B", "b", "A", ".", "I", "II", "IIa", "IIIs", "IV", "V", " ", "  ", "-", "/", "+", ",",
            ":", "\n", "NIK", "no", "HP", "Rp", "lapas", "blok", "s", "(", ")", "o", "O", "l", "x",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..12 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(pieces[(state >> 33) as usize % pieces.len()]);
            }
            assert_eq!(
                guard.scan(Field::Body, &text),
                guard.scan_normalised(Field::Body, &text),
                "{text:?}"
            );
            assert!(
                guard.scan_normalised(Field::Body, &text).is_empty(),
                "{text:?}"
            );
        }
        // With a digit, or a deny list, the text is read (the number is the invented one of
        // the tests below).
        assert!(!guard.scan(Field::Body, "NIK 3201014512900001").is_empty());
        assert!(!fulan_denied()
            .scan(Field::Body, "kata Fulan Bin Contoh")
            .is_empty());
    }

    /// Asserts that no text holds a finding.
    fn assert_clean(texts: &[&str]) {
        for text in texts {
            assert!(kinds(text).is_empty(), "{text}");
        }
    }

    // Every number below is invented and structurally made up for the test; none is a real
    // person's.
    #[test]
    fn niks_are_found_with_any_grouping() {
        assert_found(
            PiiKind::Nik,
            &[
                "NIK 3201014512900001 tercatat",
                "nik: 3201 0145 1290 0001.",
                "32.01.01.451290.0001",
            ],
        );
        let f = PiiGuard::default().scan(Field::Body, "a 3201014512900001");
        assert_eq!((f[0].position, f[0].length), (3, 16));
    }

    #[test]
    fn sixteen_digits_without_nik_structure_are_not_niks() {
        assert_clean(&[
            "3201013212900001",         // day 32
            "3201011513900001",         // month 13
            "3201011512900000",         // serial 0000
            "9901011512900001",         // province 99
            "Rp 1.500.000.000.000.000", // money
            "32010145129000011",        // 17 digits
        ]);
    }

    #[test]
    fn phone_numbers_are_found() {
        assert_found(
            PiiKind::Phone,
            &[
                "hubungi 081234567890",
                "hubungi +62 812-3456-7890",
                "62812345678",
                "0812.3456.789",
            ],
        );
        assert_clean(&[
            "08-12-2025",  // a date
            "021 5551234", // a landline
            "0812345",     // too short
        ]);
    }

    #[test]
    fn register_numbers_are_found() {
        assert_found(
            PiiKind::RegisterNumber,
            &[
                "register B.I 123/2024",
                "A.II-45",
                "reg. B.IIa.7/2025",
                "B.III 9",
            ],
        );
        assert_clean(&[
            "Lapas Kelas IIA Bogor, Rutan Kelas IIB 2",
            "BI 7-Day Rate dan B.Indonesia 3",
            "A.I saja", // a book without a number
        ]);
    }

    #[test]
    fn deny_list_matches_whole_words_in_any_case() {
        let guard = fulan_denied();
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

    #[test]
    fn ordinary_formatting_does_not_hide_identifiers() {
        assert_eq!(kinds("NIK:3201014512900001, lalu"), [PiiKind::Nik]);
        assert_eq!(kinds("nik3201014512900001adalah"), [PiiKind::Nik]);
        assert_eq!(kinds("3201\t0145\n1290  0001"), [PiiKind::Nik]);
        assert_eq!(kinds("３２０１０１４５１２９００００１"), [PiiKind::Nik]);
        assert_eq!(kinds("٣٢٠١٠١٤٥١٢٩٠٠٠٠١"), [PiiKind::Nik]);
        assert_eq!(kinds("3201\u{200b}0145\u{ad}12900001"), [PiiKind::Nik]);
        assert_eq!(kinds("(0812) 3456-7890"), [PiiKind::Phone]);
        assert_eq!(kinds("+62 (0) 812 3456 7890"), [PiiKind::Phone]);
        assert_eq!(kinds("0062 812 3456 7890"), [PiiKind::Phone]);
        assert_eq!(kinds("HP081234567890"), [PiiKind::Phone]);
        assert_eq!(kinds("wa.me/6281234567890"), [PiiKind::Phone]);
        assert_eq!(kinds("tel:+6281234567890"), [PiiKind::Phone]);
        assert_eq!(kinds("b.iia 34"), [PiiKind::RegisterNumber]);
        assert_eq!(kinds("B-IIa/34"), [PiiKind::RegisterNumber]);
        assert_eq!(kinds("\u{412}.\u{406} 12"), [PiiKind::RegisterNumber]);
    }

    #[test]
    fn one_number_is_not_two_and_lists_are_split() {
        assert!(kinds("3201 0145 1290 0001 2345").is_empty(), "20 digits");
        assert!(kinds("3201 0145 1290 0001 7").is_empty(), "17 digits");
        assert_eq!(
            kinds("3201 0145 1290 0001, 3201 0145 1290 0002"),
            [PiiKind::Nik, PiiKind::Nik]
        );
        assert_eq!(
            kinds("0812-3456-7890 / 0813-9876-5432"),
            [PiiKind::Phone, PiiKind::Phone]
        );
        assert_eq!(kinds("12-08-2025 0812 3456 7890"), [PiiKind::Phone]);
        assert!(kinds("3201     0145 1290 0001").is_empty(), "a gap of five");
        assert!(kinds("Rp 62.812.345.678").is_empty(), "money");
        assert!(
            kinds("no. rekening BNI 0812345678").is_empty(),
            "an account"
        );
        assert!(kinds("0800 1234 567").is_empty(), "toll-free");
    }

    #[test]
    fn positions_count_in_the_original_text() {
        let g = PiiGuard::default();
        let text = "ＨＰ\u{200b} (0812) 3456-7890 ya";
        let f = g.scan(Field::Body, text);
        assert_eq!((f[0].position, f[0].length), (6, 15));
        assert_eq!(
            g.redact(Field::Body, text),
            "ＨＰ\u{200b} ([NOMOR TELEPON DISAMARKAN] ya"
        );
        let f = g.scan(Field::Body, "NIK ３２０１ 0145 1290 0001.");
        assert_eq!((f[0].position, f[0].length), (5, 19));
    }

    #[test]
    fn a_number_split_between_title_and_body_is_found() {
        let g = PiiGuard::default();
        let f = g.check("Laporan NIK 3201 0145", "1290 0001 tercatat");
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].field, f[0].kind, f[0].position, f[0].length),
            (Field::TitleAndBody, PiiKind::Nik, 13, 19)
        );
        // What the title or the body holds alone is not reported twice.
        let f = g.check("HP 081234567890", "NIK 3201014512900001");
        let fields: Vec<Field> = f.iter().map(|f| f.field).collect();
        assert_eq!(fields, [Field::Title, Field::Body]);
    }

    #[test]
    fn a_whole_report_is_checked() {
        let mut report = crate::ReportDraft {
            category: "humas".into(),
            title: "Kegiatan 3201 0145".into(),
            body: "1290 0001 hadir".into(),
            priority: None,
            occurred_at: None,
        }
        .validate(
            crate::taxonomy::Taxonomy::builtin(),
            crate::Timestamp::now(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        report.retraction = Some("salah ketik, HP 0812 3456 7890".into());
        report.attachments.push(crate::attachment::AttachmentRef {
            hash: [0; 32],
            name: "ktp_3201014512900001.jpg".into(),
            media_type: crate::attachment::MediaType::Jpeg,
            size: 1,
        });
        let fields: Vec<Field> = PiiGuard::default()
            .check_report(&report)
            .iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(
            fields,
            [
                Field::TitleAndBody,
                Field::RetractionReason,
                Field::AttachmentName
            ]
        );
    }

    #[test]
    fn stored_fields_keep_their_numbers() {
        let config = bincode::config::standard();
        let fields = [
            Field::Title,
            Field::Body,
            Field::AttachmentName,
            Field::RetractionReason,
            Field::Claim,
            Field::TitleAndBody,
        ];
        for (n, field) in fields.into_iter().enumerate() {
            let bytes = bincode::encode_to_vec(field, config).unwrap_or_default();
            assert_eq!(bytes, [n as u8], "{field:?}");
        }
        assert_eq!(Field::TitleAndBody.as_str(), "title and body");
        assert_eq!(Field::RetractionReason.as_str(), "retraction reason");
    }

    #[test]
    fn the_deny_list_reads_the_normalised_text() {
        let guard = fulan_denied();
        let f = guard.scan(Field::Body, "oleh fulan  bin\u{200b} CONTOH.");
        assert_eq!((f.len(), f[0].position, f[0].length), (1, 6, 18));
    }
}
