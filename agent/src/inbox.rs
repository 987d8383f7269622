//! The inbox folder: other programs at the site drop report files here and the agent files them.
//!
//! Rules (also in the README):
//! * Only files whose names end in `.json` or `.csv` are read. Write a file under another name
//!   (for example `laporan.json.tmp`) and rename it when it is complete: a rename is atomic, so a
//!   half-written file is never read.
//! * JSON: one report object, or an array of them. CSV: a header row, one report per row,
//!   RFC 4180 quoting, fields separated by commas or (as a spreadsheet in an Indonesian locale
//!   saves it) semicolons, found from the header row.
//! * Text encodings: UTF-8 (with or without the byte-order mark Excel writes), UTF-16 with its
//!   byte-order mark ("Unicode text"), and otherwise Windows-1252 (what Excel's plain "CSV"
//!   writes on an Indonesian or English Windows). A file that is none of these is refused with
//!   the fix: save it as "CSV UTF-8". Fields: `category`, `title`, `body`, and optionally `priority`
//!   (`normal`/`urgent`), `occurred_at` (RFC 3339) and `attachments`: photos (JPEG, PNG) or PDF
//!   documents, named relative to the inbox folder (a subfolder such as `lampiran/` keeps them
//!   apart from report files); in JSON an array of names, in CSV names separated by `|`. Absolute
//!   paths and `..` are refused. The agent copies (and strips) the files; it leaves the originals.
//! * A file is filed whole or not at all: if any row is wrong, no row of it is filed, the file
//!   moves to `rejected/` beside `<name>.error.txt`, which names every wrong row and field and
//!   says why. Fix the file and drop it in again. A good file's reports are committed in one
//!   transaction and the file moves to `processed/`.
//! * A file is recognised by its content: if the agent stops between filing a file and moving
//!   it, the file is not filed a second time.
//! * Any other file (`notes.txt`, `laporan.xlsx`) is left where it is, since a file under another
//!   name may be one still being written; once it has been untouched for [`IGNORED_AFTER`], it is
//!   logged once and named in `status` and the form, with the file types that are read.

use crate::{guard_draft, AgentError, Shared};
use pasopati_common::pii::{Field, PiiGuard};
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Priority, Report, ReportDraft, Timestamp};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the inbox is scanned.
const POLL: Duration = Duration::from_secs(2);
/// Files larger than this are refused (a report body is at most 64 KiB).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How long a file that is not a report file must be untouched before the operator is told of
/// it (a program may be writing it under a temporary name, to rename it when done).
pub const IGNORED_AFTER: Duration = Duration::from_secs(120);
/// What an operator is told about a file the inbox does not read.
pub const IGNORED_HINT: &str = "only .json and .csv files are read from the inbox folder; move this file out (or save it as CSV UTF-8 with a .csv name)";

/// The outcome of one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Ingested {
    /// All rows filed; the count.
    Filed(usize),
    /// Filed before (the agent stopped before moving it).
    AlreadyFiled,
    /// Refused; one line per problem.
    Rejected(Vec<String>),
}

/// Watches `dir` until shutdown.
pub(crate) async fn watch(dir: PathBuf, shared: Arc<Shared>, shutdown: CancellationToken) {
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::error!(inbox = %dir.display(), "cannot create the inbox folder: {e}");
        return;
    }
    tracing::info!(inbox = %dir.display(), "watching the inbox folder");
    // Files not read, each logged once while it stays.
    let mut told: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        // The center may switch the inbox off and on; files wait while it is off.
        if !shared.config().inbox.enabled {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => continue,
                _ = shutdown.cancelled() => break,
            }
        }
        let d = dir.clone();
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || scan(&d, &s)).await;
        let d = dir.clone();
        if let Ok(ignored) = tokio::task::spawn_blocking(move || ignored_files(&d)).await {
            for name in &ignored {
                if !told.contains(name) {
                    tracing::warn!(inbox = %dir.display(), file = %name, "{IGNORED_HINT}");
                }
            }
            told = ignored.into_iter().collect();
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}

/// Ingests every ready file in `dir` once.
pub(crate) fn scan(dir: &Path, shared: &Shared) -> Vec<(PathBuf, Ingested)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && ready(p))
        .collect();
    files.sort();
    for path in files {
        let outcome = ingest(&path, shared);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let moved = match &outcome {
            Ok(Ingested::Filed(n)) => {
                tracing::info!(file = %name, reports = n, "inbox file filed");
                move_to(&path, "processed", None)
            }
            Ok(Ingested::AlreadyFiled) => move_to(&path, "processed", None),
            Ok(Ingested::Rejected(problems)) => {
                tracing::warn!(file = %name, problems = problems.len(), "inbox file rejected; see rejected/{name}.error.txt");
                move_to(&path, "rejected", Some(problems))
            }
            Err(e) => {
                // The outbox could not take it (full disk, quota): leave the file for later.
                tracing::warn!(file = %name, "inbox file not filed yet: {e}");
                continue;
            }
        };
        if let Err(e) = moved {
            tracing::error!(file = %name, "cannot move the inbox file: {e}");
        }
        if let Ok(o) = outcome {
            out.push((path, o));
        }
    }
    out
}

/// Files in the inbox folder that are not read (not `.json` or `.csv`) and have been untouched
/// for [`IGNORED_AFTER`]. Hidden files are a program's own business and not named.
pub(crate) fn ignored_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now();
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= IGNORED_AFTER);
            path.is_file() && !name.starts_with('.') && !ready(&path) && old
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn ready(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !name.starts_with('.') && (name.ends_with(".json") || name.ends_with(".csv"))
}

fn move_to(path: &Path, folder: &str, problems: Option<&Vec<String>>) -> std::io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let target_dir = parent.join(folder);
    std::fs::create_dir_all(&target_dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut target = target_dir.join(&name);
    if target.exists() {
        target = target_dir.join(format!("{}-{name}", Timestamp::now().0));
    }
    if let Some(problems) = problems {
        let mut text = format!(
            "{name} was not filed: no report of it was saved. Fix the lines below and put the whole file in the inbox again.\n"
        );
        for p in problems {
            text.push_str(p);
            text.push('\n');
        }
        let target_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::fs::write(target_dir.join(format!("{target_name}.error.txt")), text)?;
    }
    std::fs::rename(path, target)
}

fn ingest(path: &Path, shared: &Shared) -> Result<Ingested, AgentError> {
    let io = |source: std::io::Error| AgentError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    if let Some(inbox) = path.parent() {
        if let Err(problem) = inside(inbox, path) {
            return Ok(Ingested::Rejected(vec![problem]));
        }
    }
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Ok(Ingested::Rejected(vec![format!(
            "the file has {size} bytes; the limit is {MAX_FILE_BYTES}"
        )]));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = match decode_text(&bytes) {
        Ok(text) => text,
        Err(problem) => return Ok(Ingested::Rejected(vec![problem])),
    };
    let rows = if path.extension().is_some_and(|e| e == "csv") {
        parse_csv(&text)
    } else {
        parse_json(&text)
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(problem) => return Ok(Ingested::Rejected(vec![problem])),
    };
    let guard = PiiGuard::new(&shared.config().pii);
    let mut reports: Vec<Report> = Vec::new();
    let mut attachments = Vec::new();
    let mut problems = Vec::new();
    let now = Timestamp::now();
    let inbox = path.parent().unwrap_or(Path::new("."));
    for (label, row) in rows {
        match row_to_report(row, &guard, now) {
            Ok((mut report, names)) => {
                let mut bad = Vec::new();
                if names.len() > pasopati_common::attachment::MAX_PER_REPORT {
                    bad.push(pasopati_common::attachment::AttachmentError::TooMany.to_string());
                }
                for name in names
                    .iter()
                    .take(pasopati_common::attachment::MAX_PER_REPORT)
                {
                    let prepared = attachment_path(inbox, name).and_then(|file| {
                        shared
                            .blobs
                            .prepare_file(&file, shared.config().attachments.max_bytes)
                            .map_err(|e| e.to_string())
                    });
                    match prepared {
                        Ok(a) if !guard.scan(Field::AttachmentName, &a.name).is_empty() => bad
                            .push(format!(
                                "`{name}`: the file name contains inmate identity data; rename the file"
                            )),
                        Ok(a) => {
                            if !report.attachments.iter().any(|x| x.hash == a.hash) {
                                report.attachments.push(a);
                            }
                        }
                        Err(e) => bad.push(format!("`{name}`: {e}")),
                    }
                }
                if bad.is_empty() {
                    attachments.extend(report.attachments.iter().cloned());
                    reports.push(report);
                }
                problems.extend(
                    bad.into_iter()
                        .map(|p| format!("{label}: field `attachments`: {p}")),
                );
            }
            Err(p) => problems.extend(p.into_iter().map(|p| format!("{label}: {p}"))),
        }
    }
    if reports.is_empty() && problems.is_empty() {
        problems.push("the file holds no report".into());
    }
    if !problems.is_empty() {
        return Ok(Ingested::Rejected(problems));
    }
    let hash = pasopati_common::sha256(&bytes);
    let n = reports.len();
    let filed = shared.outbox_failed(
        shared
            .outbox
            .file_reports_once(&reports, &attachments, Some(&hash))
            .map_err(AgentError::from),
    )?;
    if filed {
        shared.wake.notify_one();
        Ok(Ingested::Filed(n))
    } else {
        Ok(Ingested::AlreadyFiled)
    }
}

/// One row: field name → value, as read.
type Row = Vec<(String, String)>;

/// An attachment named in an inbox file, inside the inbox folder.
fn attachment_path(inbox: &Path, name: &str) -> Result<PathBuf, String> {
    let relative = Path::new(name);
    let escapes = relative.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if name.trim().is_empty() || escapes {
        return Err(
            "name the file relative to the inbox folder, without `..` or a leading `/`".into(),
        );
    }
    let path = inbox.join(relative);
    if !path.is_file() {
        return Err(format!(
            "no such file in the inbox folder ({})",
            path.display()
        ));
    }
    inside(inbox, &path)
}

/// The real path of `path` if it lies inside the inbox folder once every symbolic link is
/// followed: a link to a file or folder elsewhere must not carry that file to the center.
fn inside(inbox: &Path, path: &Path) -> Result<PathBuf, String> {
    let outside = || {
        format!(
            "`{}` is a link to a place outside the inbox folder; copy the file itself into the inbox",
            path.display()
        )
    };
    let inbox = std::fs::canonicalize(inbox).map_err(|e| format!("inbox folder: {e}"))?;
    let real = std::fs::canonicalize(path).map_err(|_| outside())?;
    if real.starts_with(&inbox) {
        Ok(real)
    } else {
        Err(outside())
    }
}

/// A validated report and the attachment names its row gives.
fn row_to_report(
    row: Row,
    guard: &PiiGuard,
    now: Timestamp,
) -> Result<(Report, Vec<String>), Vec<String>> {
    let mut problems = Vec::new();
    let mut draft = ReportDraft::default();
    let mut attachments = Vec::new();
    for (field, value) in row {
        match field.as_str() {
            "category" => draft.category = value,
            "title" => draft.title = value,
            "body" => draft.body = value,
            "priority" if value.trim().is_empty() => {}
            "priority" => match value.parse::<Priority>() {
                Ok(p) => draft.priority = Some(p),
                Err(e) => problems.push(format!("field `priority`: {e}")),
            },
            "occurred_at" if value.trim().is_empty() => {}
            "occurred_at" => match Timestamp::parse_rfc3339(&value) {
                Ok(t) => draft.occurred_at = Some(t),
                Err(e) => problems.push(format!("field `occurred_at`: {e}")),
            },
            "attachments" => {
                attachments = value
                    .split('|')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect()
            }
            other => problems.push(format!(
                "field `{other}` is unknown; use category, title, body, priority, occurred_at, attachments"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let draft = match guard_draft(guard, draft) {
        Ok(d) => d,
        Err(AgentError::Pii(findings)) => {
            return Err(findings
                .iter()
                .map(|f| {
                    format!(
                        "field `{}`: contains a {} at character {}",
                        f.field.as_str(),
                        f.kind.label(),
                        f.position
                    )
                })
                .collect())
        }
        Err(e) => return Err(vec![e.to_string()]),
    };
    let report = draft.validate(Taxonomy::builtin(), now).map_err(|e| {
        let field = e.field();
        vec![format!("field `{field}`: {e}")]
    })?;
    Ok((report, attachments))
}

fn parse_json(text: &str) -> Result<Vec<(String, Row)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the JSON is not valid: {e}"))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return Err("the JSON must be a report object or an array of them".into()),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let label = format!("item {}", i + 1);
            let serde_json::Value::Object(map) = item else {
                return Err(format!("{label}: not a JSON object"));
            };
            let row = map
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::Array(a) if a.iter().all(|v| v.is_string()) => a
                            .iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join("|"),
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect();
            Ok((label, row))
        })
        .collect()
}

/// The file's text: UTF-8 (a leading byte-order mark dropped), UTF-16 with a byte-order mark,
/// or else Windows-1252, the "ANSI" code page Excel writes plain CSV in on Indonesian Windows.
/// The five bytes Windows-1252 leaves undefined mean the file is in none of these.
fn decode_text(bytes: &[u8]) -> Result<String, String> {
    const FIX: &str = "the file's text encoding is not recognised. In Excel choose File > Save As > \"CSV UTF-8 (Comma delimited)\" / Berkas tidak dikenali: simpan sebagai CSV UTF-8 (File > Simpan Sebagai > \"CSV UTF-8\")";
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return String::from_utf8(rest.to_vec()).map_err(|_| FIX.to_owned());
    }
    let utf16 = |rest: &[u8], big_endian: bool| {
        if !rest.len().is_multiple_of(2) {
            return Err(FIX.to_owned());
        }
        let units = rest.chunks_exact(2).map(|p| {
            if big_endian {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from_le_bytes([p[0], p[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| FIX.to_owned())
    };
    if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        return utf16(rest, false);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        return utf16(rest, true);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    if bytes.contains(&0) {
        // UTF-16 without its mark, or not text at all.
        return Err(FIX.to_owned());
    }
    bytes
        .iter()
        .map(|&b| windows_1252(b).ok_or_else(|| FIX.to_owned()))
        .collect()
}

/// One byte of Windows-1252: Latin-1 but for 0x80–0x9F, which hold typographic marks (curly
/// quotes, dashes, the euro sign); five of those are undefined.
fn windows_1252(b: u8) -> Option<char> {
    const HIGH: [u16; 32] = [
        0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
        0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
        0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9f => match HIGH[usize::from(b - 0x80)] {
            0 => None,
            c => char::from_u32(u32::from(c)),
        },
        _ => Some(char::from(b)),
    }
}

/// The field names a report file may use.
const FIELDS: [&str; 6] = [
    "category",
    "title",
    "body",
    "priority",
    "occurred_at",
    "attachments",
];

/// The field separator of a CSV file, judged from its header row: of comma, semicolon and tab,
/// the one that splits the header into the most known field names (a comma on a tie).
fn delimiter(text: &str) -> char {
    let header = text.lines().next().unwrap_or_default();
    let known = |d: char| {
        header
            .split(d)
            .filter(|f| FIELDS.contains(&f.trim().trim_matches('"').to_lowercase().as_str()))
            .count()
    };
    [';', '\t']
        .into_iter()
        .fold((',', known(',')), |best, d| {
            let k = known(d);
            if k > best.1 {
                (d, k)
            } else {
                best
            }
        })
        .0
}

fn parse_csv(text: &str) -> Result<Vec<(String, Row)>, String> {
    let text = text.trim_start_matches('\u{feff}');
    let records = pasopati_common::csv::records_with(text, delimiter(text))?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err("the CSV is empty; it needs a header row".into());
    };
    let header: Vec<String> = header
        .into_iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let mut out = Vec::new();
    for (line, fields) in records {
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let label = format!("row {line}");
        if fields.len() != header.len() {
            return Err(format!(
                "{label}: has {} fields but the header has {}",
                fields.len(),
                header.len()
            ));
        }
        out.push((label, header.iter().cloned().zip(fields).collect()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_takes_an_object_or_an_array() {
        assert_eq!(
            parse_json(r#"{"category":"humas","title":"t","body":"b"}"#)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            parse_json(r#"[{"title":"a"},{"title":"b"}]"#)
                .unwrap()
                .len(),
            2
        );
        assert!(parse_json("[1]").is_err());
        assert!(parse_json("nope").is_err());
    }

    #[test]
    fn excel_encodings_are_read_and_anything_else_is_refused_with_the_fix() {
        // "Kunjungan “tertib” – café" as Excel's plain CSV writes it (Windows-1252).
        let cp1252 = b"Kunjungan \x93tertib\x94 \x96 caf\xe9";
        assert_eq!(
            decode_text(cp1252).unwrap(),
            "Kunjungan \u{201c}tertib\u{201d} \u{2013} caf\u{e9}"
        );
        assert_eq!(decode_text(b"\xef\xbb\xbfjudul").unwrap(), "judul");
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("café".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_text(&utf16).unwrap(), "café");
        let err = decode_text(b"a\x81b").unwrap_err();
        assert!(
            err.contains("CSV UTF-8") && err.contains("simpan sebagai CSV UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn the_delimiter_is_found_from_the_header() {
        assert_eq!(delimiter("category;title;body\nhumas;a, b;c"), ';');
        assert_eq!(delimiter("category,title,body\nhumas;x,a;b,c"), ',');
        assert_eq!(delimiter("\"category\"\t\"title\"\tbody\n"), '\t');
        let rows = parse_csv("category;title;body\r\nhumas;Siaran, pers;Isi; dua\r\n");
        assert!(rows.is_err(), "a row with an extra separator is named");
        let rows = parse_csv("category;title;body\r\nhumas;Siaran, pers;\"Isi; dua\"\r\n").unwrap();
        assert_eq!(rows[0].1[1].1, "Siaran, pers");
        assert_eq!(rows[0].1[2].1, "Isi; dua");
    }

    #[test]
    fn a_bad_row_names_the_field() {
        let guard = PiiGuard::default();
        let row = |c: &str, b: &str| {
            vec![
                ("category".to_owned(), c.to_owned()),
                ("title".into(), "Judul".into()),
                ("body".into(), b.to_owned()),
            ]
        };
        assert!(row_to_report(row("humas", "Isi."), &guard, Timestamp::now()).is_ok());
        let err = row_to_report(row("olahraga", "Isi."), &guard, Timestamp::now()).unwrap_err();
        assert!(err[0].starts_with("field `category`"), "{err:?}");
        let err = row_to_report(
            row("humas", "Hubungi 081234567890"),
            &guard,
            Timestamp::now(),
        )
        .unwrap_err();
        assert!(
            err[0].contains("field `body`") && err[0].contains("telepon"),
            "{err:?}"
        );
    }
}
