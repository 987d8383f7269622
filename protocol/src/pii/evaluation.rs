//! Tables of written forms the guard must block or allow, and their score.
//!
//! A table is UTF-8 text: lines starting with `#` are comments, blank lines are skipped, and
//! every other line is `expect<TAB>kind<TAB>text`, where `expect` is `block` or `allow` and
//! `kind` is `nik`, `phone` or `register` for a block row and `none` for an allow row. In the
//! text, `\t`, `\n`, `\\` and `\u{HEX}` are escapes. A block row counts as found when the
//! guard reports its kind anywhere in the text; an allow row counts as a false positive when
//! the guard reports anything.

use super::{Field, PiiGuard, PiiKind};

/// What a row expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Block(PiiKind),
    Allow,
}

/// One written form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its line in the table, from 1.
    pub line: usize,
    pub expected: Expected,
    pub text: String,
}

/// A line of a table that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct TableError {
    pub line: usize,
    pub reason: String,
}

/// Reads a table.
pub fn parse_table(table: &str) -> Result<Vec<Row>, TableError> {
    let mut rows = Vec::new();
    for (n, line) in table.lines().enumerate() {
        let line_no = n + 1;
        let error = |reason: String| TableError {
            line: line_no,
            reason,
        };
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let (Some(expect), Some(kind), Some(text)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(error("expected three tab-separated columns".into()));
        };
        let expected = match (expect, kind) {
            ("block", "nik") => Expected::Block(PiiKind::Nik),
            ("block", "phone") => Expected::Block(PiiKind::Phone),
            ("block", "register") => Expected::Block(PiiKind::RegisterNumber),
            ("allow", "none") => Expected::Allow,
            _ => {
                return Err(error(format!(
                    "`{expect}` `{kind}` is not a known expectation"
                )))
            }
        };
        rows.push(Row {
            line: line_no,
            expected,
            text: unescape(text).map_err(error)?,
        });
    }
    Ok(rows)
}

/// Undoes the escapes `\t`, `\n`, `\\` and `\u{HEX}`.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err("`\\u` must be followed by `{HEX}`".into());
                }
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("`\\u{{{hex}}}` is not a character"))?;
                out.push(code);
            }
            other => return Err(format!("unknown escape `\\{}`", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

/// How a guard did on a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Score {
    /// Block rows whose kind was found.
    pub true_positives: usize,
    /// Allow rows with a finding.
    pub false_positives: usize,
    /// Block rows whose kind was not found.
    pub false_negatives: usize,
    /// Allow rows without a finding.
    pub true_negatives: usize,
    /// Lines of the block rows missed.
    pub missed: Vec<usize>,
    /// Lines of the allow rows with a finding.
    pub wrongly_blocked: Vec<usize>,
}

impl Score {
    pub fn rows(&self) -> usize {
        self.true_positives + self.false_positives + self.false_negatives + self.true_negatives
    }

    /// Found identifiers that were expected, among all blocked rows (1 when nothing was).
    pub fn precision(&self) -> f64 {
        share(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Block rows found, among all block rows (1 when there are none).
    pub fn recall(&self) -> f64 {
        share(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// The rows the guard got wrong, by line, or `None` when it got every row right.
    pub fn wrong_rows(&self) -> Option<String> {
        (!self.missed.is_empty() || !self.wrongly_blocked.is_empty()).then(|| {
            format!(
                "missed lines {:?}, wrongly blocked lines {:?}",
                self.missed, self.wrongly_blocked
            )
        })
    }

    /// `set=<name> rows=<n> precision=<p> recall=<r> false_positives=<n>`.
    pub fn summary(&self, set: &str) -> String {
        format!(
            "set={set} rows={} precision={:.3} recall={:.3} false_positives={}",
            self.rows(),
            self.precision(),
            self.recall(),
            self.false_positives
        )
    }
}

/// `part` of `whole` as a fraction, or 1 when `whole` is empty (nothing to get wrong).
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// Scores a guard on rows (each text is scanned as a report body).
pub fn evaluate(guard: &PiiGuard, rows: &[Row]) -> Score {
    let mut score = Score::default();
    for row in rows {
        let findings = guard.scan(Field::Body, &row.text);
        match row.expected {
            Expected::Block(kind) if findings.iter().any(|f| f.kind == kind) => {
                score.true_positives += 1;
            }
            Expected::Block(_) => {
                score.false_negatives += 1;
                score.missed.push(row.line);
            }
            Expected::Allow if findings.is_empty() => score.true_negatives += 1,
            Expected::Allow => {
                score.false_positives += 1;
                score.wrongly_blocked.push(row.line);
            }
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_escapes_are_read() {
        let rows = parse_table("# c\n\nblock\tnik\ta\\tb\\n\\\\\\u{200B}x\nallow\tnone\tRp 1\n")
            .unwrap_or_default();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].text, "a\tb\n\\\u{200b}x");
        assert_eq!(rows[0].line, 3);
        assert_eq!(rows[1].expected, Expected::Allow);
        assert_eq!(parse_table("block\tname\tx").map_err(|e| e.line), Err(1));
        assert!(parse_table("allow\tnone\t\\u{zz}").is_err());
    }

    /// The shortcut of [`PiiGuard::check`] (the joined title and body are read only when a
    /// finding could reach across) never skips one: every form of the development table, cut
    /// into a title and a body at every character, with and without a deny list.
    #[test]
    fn the_cross_field_shortcut_never_misses_a_finding() {
        let rows = parse_table(include_str!("../../../tests/fixtures/pii/forms.tsv"))
            .unwrap_or_else(|e| panic!("forms.tsv: {e}"));
        let guards = [
            PiiGuard::default(),
            PiiGuard::new(&crate::pii::PiiConfig {
                deny_list: vec!["Fulan Contoh".into()],
                ..crate::pii::PiiConfig::default()
            }),
        ];
        let mut cuts = 0;
        for guard in &guards {
            for row in &rows {
                let chars: Vec<char> = row.text.chars().collect();
                for cut in 0..=chars.len() {
                    let title: String = chars[..cut].iter().collect();
                    let body: String = chars[cut..].iter().collect();
                    let full = {
                        let mut out = guard.scan(crate::pii::Field::Title, &title);
                        out.extend(guard.scan(crate::pii::Field::Body, &body));
                        out.extend(guard.across(&title, &body));
                        out
                    };
                    assert_eq!(guard.check(&title, &body), full, "{title:?} | {body:?}");
                    cuts += 1;
                }
            }
        }
        assert!(cuts > 10_000, "{cuts}");
    }

    #[test]
    fn the_development_table_is_blocked_and_allowed() {
        let rows = parse_table(include_str!("../../../tests/fixtures/pii/forms.tsv"))
            .unwrap_or_else(|e| panic!("forms.tsv: {e}"));
        let score = evaluate(&PiiGuard::default(), &rows);
        println!("{}", score.summary("dev"));
        assert!(rows.len() >= 200, "{} rows", rows.len());
        if let Some(wrong) = score.wrong_rows() {
            panic!("{wrong}");
        }
    }
}
